// The wire-level batch reader (support/kafka-wire.js) that transaction tests use to check
// read_committed visibility themselves (Tansu's Fetch never lists aborted transactions):
// classifyTransactions on hand-built batches, the parser against a scripted fake broker
// (control batches, 64-bit producer ids, a truncated trailing batch), and the reader against
// the real broker with records written and read back by kafkajs.
const net = require('node:net');
const zlib = require('node:zlib');
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');
const { brokers, uniqueName, readTopic } = require('./helpers');
const { readPartitionBatches, classifyTransactions, readTopicTransactions } = require('./support/kafka-wire');

jest.setTimeout(60000);

/** @typedef {import('./support/kafka-wire').WireBatch} WireBatch */

// ------------------------------------------------------------------------------- classifyTransactions

/**
 * A hand-built data batch: one record per value, offsets from baseOffset.
 * @param {{ baseOffset: number, values: string[], producerId?: string, transactional?: boolean, partition?: number }} options
 * @returns {WireBatch}
 */
function dataBatch({ baseOffset, values, producerId = '-1', transactional = producerId !== '-1', partition = 0 }) {
  return {
    partition,
    baseOffset,
    lastOffsetDelta: values.length - 1,
    producerId,
    producerEpoch: transactional ? 0 : -1,
    baseSequence: transactional ? 0 : -1,
    isTransactional: transactional,
    isControl: false,
    compression: 'none',
    records: values.map((value, i) => ({
      offset: baseOffset + i,
      key: null,
      value: Buffer.from(value),
      headers: {},
      partition,
    })),
  };
}

/**
 * A hand-built control batch; with `withType: false` only its record key says commit or abort.
 * @param {{ offset: number, producerId: string, type: 'commit' | 'abort', partition?: number, withType?: boolean }} options
 * @returns {WireBatch}
 */
function markerBatch({ offset, producerId, type, partition = 0, withType = true }) {
  const key = Buffer.alloc(4);
  key.writeInt16BE(type === 'commit' ? 1 : 0, 2);
  return {
    partition,
    baseOffset: offset,
    lastOffsetDelta: 0,
    producerId,
    producerEpoch: 0,
    baseSequence: -1,
    isTransactional: true,
    isControl: true,
    compression: 'none',
    records: [{ offset, key, value: Buffer.alloc(6), headers: {}, partition }],
    ...(withType ? { controlType: type } : {}),
  };
}

/** @param {{ value: Buffer | null }[]} records */
const values = (records) => records.map((record) => record.value?.toString());

describe('classifyTransactions', () => {
  test('non-transactional batches are committed', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['a', 'b'] }),
      dataBatch({ baseOffset: 2, values: ['c'] }),
    ]);
    expect(values(result.committed)).toEqual(['a', 'b', 'c']);
    expect(result.committed.map((record) => record.offset)).toEqual([0, 1, 2]);
    expect(result).toMatchObject({ aborted: [], open: [], markers: [] });
  });

  test('a COMMIT marker makes the transaction visible', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['t1', 't2'], producerId: '7' }),
      dataBatch({ baseOffset: 2, values: ['t3'], producerId: '7' }),
      markerBatch({ offset: 3, producerId: '7', type: 'commit' }),
    ]);
    expect(values(result.committed)).toEqual(['t1', 't2', 't3']);
    expect(result).toMatchObject({ aborted: [], open: [] });
    expect(result.markers).toEqual([{ partition: 0, offset: 3, producerId: '7', producerEpoch: 0, type: 'commit' }]);
  });

  test('an ABORT marker hides the transaction', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['t1', 't2'], producerId: '7' }),
      markerBatch({ offset: 2, producerId: '7', type: 'abort' }),
      dataBatch({ baseOffset: 3, values: ['plain'] }),
    ]);
    expect(values(result.aborted)).toEqual(['t1', 't2']);
    expect(values(result.committed)).toEqual(['plain']);
    expect(result.open).toEqual([]);
    expect(result.markers.map((marker) => marker.type)).toEqual(['abort']);
  });

  test('a transaction with no marker yet is open', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['plain'] }),
      dataBatch({ baseOffset: 1, values: ['t1'], producerId: '7' }),
    ]);
    expect(values(result.open)).toEqual(['t1']);
    expect(values(result.committed)).toEqual(['plain']);
    expect(result).toMatchObject({ aborted: [], markers: [] });
  });

  test('interleaved producers are settled by their own markers only', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['a1'], producerId: '1' }),
      dataBatch({ baseOffset: 1, values: ['b1'], producerId: '2' }),
      dataBatch({ baseOffset: 2, values: ['a2'], producerId: '1' }),
      dataBatch({ baseOffset: 3, values: ['c1'], producerId: '3' }),
      markerBatch({ offset: 4, producerId: '1', type: 'commit' }),
      dataBatch({ baseOffset: 5, values: ['plain'] }),
      dataBatch({ baseOffset: 6, values: ['b2'], producerId: '2' }),
      markerBatch({ offset: 7, producerId: '2', type: 'abort' }),
    ]);
    expect(values(result.committed)).toEqual(['a1', 'a2', 'plain']);
    expect(values(result.aborted)).toEqual(['b1', 'b2']);
    expect(values(result.open)).toEqual(['c1']);
    expect(result.markers.map((marker) => [marker.offset, marker.producerId, marker.type])).toEqual([
      [4, '1', 'commit'],
      [7, '2', 'abort'],
    ]);
  });

  test('a producer that aborts and then commits: each marker settles only what came before it', () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['first'], producerId: '9' }),
      markerBatch({ offset: 1, producerId: '9', type: 'abort' }),
      dataBatch({ baseOffset: 2, values: ['second', 'third'], producerId: '9' }),
      markerBatch({ offset: 4, producerId: '9', type: 'commit' }),
      dataBatch({ baseOffset: 5, values: ['fourth'], producerId: '9' }),
    ]);
    expect(values(result.aborted)).toEqual(['first']);
    expect(values(result.committed)).toEqual(['second', 'third']);
    expect(values(result.open)).toEqual(['fourth']);
  });

  test("a marker settles its producer's records in its own partition only; results are sorted", () => {
    const result = classifyTransactions([
      dataBatch({ baseOffset: 0, values: ['p1-t'], producerId: '5', partition: 1 }),
      dataBatch({ baseOffset: 0, values: ['p0-t'], producerId: '5', partition: 0 }),
      markerBatch({ offset: 1, producerId: '5', type: 'commit', partition: 0 }),
      dataBatch({ baseOffset: 1, values: ['p1-plain'], partition: 1 }),
      dataBatch({ baseOffset: 2, values: ['p0-plain'], partition: 0 }),
    ]);
    expect(result.committed.map((record) => [record.partition, record.offset])).toEqual([
      [0, 0],
      [0, 2],
      [1, 1],
    ]);
    expect(values(result.open)).toEqual(['p1-t']);
    expect(result.markers).toEqual([{ partition: 0, offset: 1, producerId: '5', producerEpoch: 0, type: 'commit' }]);
  });

  test('a control batch without controlType is read from its record key; a marker with nothing pending is harmless', () => {
    const result = classifyTransactions([
      markerBatch({ offset: 0, producerId: '3', type: 'abort', withType: false }),
      dataBatch({ baseOffset: 1, values: ['t'], producerId: '3' }),
      markerBatch({ offset: 2, producerId: '3', type: 'commit', withType: false }),
    ]);
    expect(values(result.committed)).toEqual(['t']);
    expect(result.aborted).toEqual([]);
    expect(result.markers.map((marker) => marker.type)).toEqual(['abort', 'commit']);
  });
});

// ------------------------------------------------------------------------------- a scripted fake broker

/** @param {number} size @param {(buffer: Buffer) => void} write */
function fixed(size, write) {
  const buffer = Buffer.alloc(size);
  write(buffer);
  return buffer;
}
const int8 = (/** @type {number} */ v) => fixed(1, (b) => b.writeInt8(v));
const int16 = (/** @type {number} */ v) => fixed(2, (b) => b.writeInt16BE(v));
const int32 = (/** @type {number} */ v) => fixed(4, (b) => b.writeInt32BE(v));
const int64 = (/** @type {bigint | number} */ v) => fixed(8, (b) => b.writeBigInt64BE(BigInt(v)));
const string = (/** @type {string} */ s) => Buffer.concat([int16(Buffer.byteLength(s)), Buffer.from(s)]);

/** A zigzag varint. @param {number} value */
function varint(value) {
  let raw = value >= 0 ? BigInt(value) << 1n : (-BigInt(value) << 1n) - 1n;
  const bytes = [];
  do {
    let byte = Number(raw & 0x7fn);
    raw >>= 7n;
    if (raw > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (raw > 0n);
  return Buffer.from(bytes);
}
const varBytes = (/** @type {Buffer | null} */ b) => (b === null ? varint(-1) : Buffer.concat([varint(b.length), b]));

/** CRC-32C, written here independently of the reader's. @param {Buffer} buffer */
function crc32c(buffer) {
  let crc = ~0;
  for (const byte of buffer) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/**
 * Encodes a v2 record batch.
 * @param {{ baseOffset: number, producerId: bigint, producerEpoch: number, baseSequence: number, attributes: number,
 *   records: { key: Buffer | null, value: Buffer | null, headers?: [string, Buffer | null][] }[], gzip?: boolean }} batch
 */
function encodeBatch({ baseOffset, producerId, producerEpoch, baseSequence, attributes, records, gzip = false }) {
  let body = Buffer.concat(
    records.map(({ key, value, headers = [] }, i) => {
      const record = Buffer.concat([
        int8(0),
        varint(i * 10), // timestampDelta
        varint(i),
        varBytes(key),
        varBytes(value),
        varint(headers.length),
        ...headers.flatMap(([name, headerValue]) => [varBytes(Buffer.from(name)), varBytes(headerValue)]),
      ]);
      return Buffer.concat([varint(record.length), record]);
    }),
  );
  if (gzip) body = zlib.gzipSync(body);
  const afterCrc = Buffer.concat([
    int16(attributes | (gzip ? 1 : 0)),
    int32(records.length - 1),
    int64(1700000000000),
    int64(1700000000000),
    int64(producerId),
    int16(producerEpoch),
    int32(baseSequence),
    int32(records.length),
    body,
  ]);
  const afterLength = Buffer.concat([int32(0), int8(2), fixed(4, (b) => b.writeUInt32BE(crc32c(afterCrc))), afterCrc]);
  return Buffer.concat([int64(baseOffset), int32(afterLength.length), afterLength]);
}

/**
 * A broker on an ephemeral port answering ApiVersions v0 and Fetch v4 with `recordsAt(offset)`.
 * @param {(offset: number) => Buffer} recordsAt
 * @param {{ highWatermark: number, lastStableOffset: number }} marks
 */
async function fakeBroker(recordsAt, { highWatermark, lastStableOffset }) {
  /** @type {number[]} */
  const fetchOffsets = [];
  /** @type {{ apiKey: number, apiVersion: number, isolationLevel: number }[]} */
  const fetches = [];
  const server = net.createServer((socket) => {
    let received = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 4 && received.length >= 4 + received.readInt32BE(0)) {
        const frame = received.subarray(4, 4 + received.readInt32BE(0));
        received = received.subarray(4 + frame.length);
        const apiKey = frame.readInt16BE(0);
        const correlationId = frame.readInt32BE(4);
        const bodyStart = 8 + 2 + frame.readInt16BE(8);
        let body;
        if (apiKey === 18) {
          body = Buffer.concat([int16(0), int32(1), int16(1), int16(0), int16(17)]);
        } else {
          const request = frame.subarray(bodyStart);
          fetches.push({ apiKey, apiVersion: frame.readInt16BE(2), isolationLevel: request.readInt8(16) });
          const topic = request.subarray(23, 23 + request.readInt16BE(21)).toString();
          const partitionAt = 23 + Buffer.byteLength(topic) + 4;
          const offset = Number(request.readBigInt64BE(partitionAt + 4));
          fetchOffsets.push(offset);
          const records = recordsAt(offset);
          body = Buffer.concat([
            int32(0),
            int32(1),
            string(topic),
            int32(1),
            int32(request.readInt32BE(partitionAt)),
            int16(0),
            int64(highWatermark),
            int64(lastStableOffset),
            int32(-1), // aborted_transactions: null
            int32(records.length),
            records,
          ]);
        }
        socket.write(Buffer.concat([int32(4 + body.length), int32(correlationId), body]));
      }
    });
  });
  await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve())));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { port: address.port, fetchOffsets, fetches, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe('readPartitionBatches against a scripted broker', () => {
  test('parses data and control batches, int64 producer ids and gzip, and refetches a truncated batch', async () => {
    const bigProducerId = 9007199254740993n; // 2^53 + 1: not exact as a Number
    const batches = [
      encodeBatch({
        baseOffset: 0,
        producerId: -1n,
        producerEpoch: -1,
        baseSequence: -1,
        attributes: 0,
        records: [
          { key: Buffer.from('k0'), value: Buffer.from('v0'), headers: [['h', Buffer.from('x')]] },
          { key: null, value: null, headers: [['empty', null]] },
        ],
      }),
      encodeBatch({
        baseOffset: 2,
        producerId: bigProducerId,
        producerEpoch: 3,
        baseSequence: 0,
        attributes: 0x10,
        gzip: true,
        records: [{ key: Buffer.from('tk'), value: Buffer.alloc(300, 7) }],
      }),
      encodeBatch({
        baseOffset: 3,
        producerId: bigProducerId,
        producerEpoch: 3,
        baseSequence: -1,
        attributes: 0x30,
        records: [{ key: Buffer.from([0, 0, 0, 1]), value: Buffer.from([0, 0, 0, 0, 0, 0]) }],
      }),
    ];
    // From offset 0 the broker cuts the second batch short; from 2 it sends the rest.
    const broker = await fakeBroker(
      (offset) =>
        offset === 0
          ? Buffer.concat([batches[0], batches[1].subarray(0, 40)])
          : offset === 2
            ? Buffer.concat([batches[1], batches[2]])
            : Buffer.alloc(0),
      { highWatermark: 4, lastStableOffset: 4 },
    );
    try {
      const result = await readPartitionBatches({
        host: '127.0.0.1',
        port: broker.port,
        topic: 'scripted',
        partition: 2,
      });
      expect(broker.fetchOffsets).toEqual([0, 2, 4]);
      // Fetch v4, read_uncommitted, so the broker hides nothing.
      expect(new Set(broker.fetches.map((fetch) => JSON.stringify(fetch)))).toEqual(
        new Set([JSON.stringify({ apiKey: 1, apiVersion: 4, isolationLevel: 0 })]),
      );
      expect(result.highWatermark).toBe(4);
      expect(result.lastStableOffset).toBe(4);
      expect(result.batches.map(({ records, ...batch }) => batch)).toEqual([
        {
          partition: 2,
          baseOffset: 0,
          lastOffsetDelta: 1,
          producerId: '-1',
          producerEpoch: -1,
          baseSequence: -1,
          isTransactional: false,
          isControl: false,
          compression: 'none',
        },
        {
          partition: 2,
          baseOffset: 2,
          lastOffsetDelta: 0,
          producerId: '9007199254740993',
          producerEpoch: 3,
          baseSequence: 0,
          isTransactional: true,
          isControl: false,
          compression: 'gzip',
        },
        {
          partition: 2,
          baseOffset: 3,
          lastOffsetDelta: 0,
          producerId: '9007199254740993',
          producerEpoch: 3,
          baseSequence: -1,
          isTransactional: true,
          isControl: true,
          compression: 'none',
          controlType: 'commit',
        },
      ]);
      expect(result.batches[0].records).toEqual([
        { offset: 0, key: Buffer.from('k0'), value: Buffer.from('v0'), headers: { h: Buffer.from('x') }, partition: 2 },
        { offset: 1, key: null, value: null, headers: { empty: null }, partition: 2 },
      ]);
      expect(result.batches[1].records).toEqual([
        { offset: 2, key: Buffer.from('tk'), value: Buffer.alloc(300, 7), headers: {}, partition: 2 },
      ]);

      const classified = classifyTransactions(result.batches);
      expect(classified.committed.map((record) => record.offset)).toEqual([0, 1, 2]);
      expect(classified.markers).toEqual([
        { partition: 2, offset: 3, producerId: '9007199254740993', producerEpoch: 3, type: 'commit' },
      ]);
    } finally {
      await broker.close();
    }
  });

  test('a corrupted batch is refused by its crc', async () => {
    const batch = encodeBatch({
      baseOffset: 0,
      producerId: -1n,
      producerEpoch: -1,
      baseSequence: -1,
      attributes: 0,
      records: [{ key: null, value: Buffer.from('intact') }],
    });
    batch[batch.length - 3] ^= 0xff;
    const broker = await fakeBroker(() => batch, { highWatermark: 1, lastStableOffset: 1 });
    try {
      await expect(
        readPartitionBatches({ host: '127.0.0.1', port: broker.port, topic: 'scripted', partition: 0 }),
      ).rejects.toThrow(/crc/);
    } finally {
      await broker.close();
    }
  });
});

// ------------------------------------------------------------------------------- the real broker

describe('readPartitionBatches against the broker', () => {
  /** @type {import('kafkajs').Kafka} */
  let kafka;
  /** @type {import('kafkajs').Producer} */
  let producer;
  /** @type {string} */
  let host;
  /** @type {number} */
  let port;

  beforeAll(async () => {
    const [first] = brokers();
    host = first.slice(0, first.lastIndexOf(':'));
    port = Number(first.slice(first.lastIndexOf(':') + 1));
    kafka = new Kafka({ brokers: brokers(), clientId: 'kafka-wire-test', logLevel: logLevel.NOTHING });
    // Tansu refuses kafkajs's idempotent producer.
    producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false });
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
  });

  /** @param {number} partitions */
  async function freshTopic(partitions) {
    const topic = uniqueName('wire');
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    return topic;
  }

  test('returns every record with its offset, key, value and headers, all committed, as kafkajs reads them', async () => {
    const topic = await freshTopic(3);
    /** @type {{ partition: number, key: string | null, value: string | null, headers?: Record<string, string> }[][]} */
    const sends = [
      [
        { partition: 0, key: 'k-0', value: 'v-0', headers: { trace: 't0', kind: 'first' } },
        { partition: 0, key: null, value: 'no key' },
        { partition: 1, key: 'k-1', value: null },
      ],
      [{ partition: 0, key: 'k-2', value: 'v-2', headers: { empty: '' } }],
      [
        { partition: 2, key: 'k-3', value: 'v-3'.repeat(100) },
        { partition: 0, key: 'k-4', value: 'v-4' },
      ],
    ];
    for (const [i, messages] of sends.entries()) {
      await producer.send({
        topic,
        acks: -1,
        compression: i === 2 ? CompressionTypes.GZIP : CompressionTypes.None,
        messages,
      });
    }
    const sent = sends.flat();

    const result = await readTopicTransactions({ brokers: brokers().join(','), topic, partitions: 3 });
    expect(result).toMatchObject({ aborted: [], open: [], markers: [] });
    expect(result.partitions.map((p) => [p.partition, p.highWatermark, p.lastStableOffset])).toEqual([
      [0, 4, 4],
      [1, 1, 1],
      [2, 1, 1],
    ]);
    const batches = result.partitions.flatMap((p) => p.batches);
    // kafkajs sends one batch per partition per request.
    expect(batches).toHaveLength(5);
    for (const batch of batches) {
      expect(batch).toMatchObject({ producerId: '-1', isTransactional: false, isControl: false });
    }
    expect(batches.map((batch) => batch.compression)).toEqual(['none', 'none', 'gzip', 'none', 'gzip']);

    /** @param {Buffer | null} buffer */
    const text = (buffer) => (buffer === null ? null : buffer.toString());
    /** @param {Record<string, Buffer | null | undefined>} headers */
    const headerText = (headers) => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, text(v ?? null)]));
    const wire = result.committed.map((record) => ({
      partition: record.partition,
      offset: record.offset,
      key: text(record.key),
      value: text(record.value),
      headers: headerText(record.headers),
    }));
    // What was sent, in each partition's order.
    const expected = [0, 1, 2].flatMap((partition) =>
      sent
        .filter((message) => message.partition === partition)
        .map((message, offset) => ({
          partition,
          offset,
          key: message.key,
          value: message.value,
          headers: message.headers ?? {},
        })),
    );
    expect(wire).toEqual(expected);

    // And what an independent consumer reads.
    const consumed = await readTopic(topic, sent.length);
    const read = consumed
      .map((message) => ({
        partition: message.partition,
        offset: Number(message.offset),
        key: text(message.key),
        value: text(message.value),
        headers: headerText(message.headers ?? {}),
      }))
      .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    expect(wire).toEqual(read);
  });

  test('reads batches bigger than the 1 MiB per partition it asks for, and takes brokers as an array', async () => {
    const topic = await freshTopic(1);
    await producer.send({ topic, acks: -1, messages: [{ value: Buffer.alloc(700000, 1) }] });
    await producer.send({
      topic,
      acks: -1,
      messages: [{ value: Buffer.alloc(700000, 2) }, { value: Buffer.alloc(700000, 3) }],
    });
    await producer.send({ topic, acks: -1, messages: [{ value: Buffer.from('small') }] });
    const result = await readTopicTransactions({ brokers: brokers(), topic, partitions: 1 });
    expect(result.partitions[0].highWatermark).toBe(4);
    expect(result.partitions[0].batches.map((batch) => batch.baseOffset)).toEqual([0, 1, 3]);
    expect(result.committed.map((record) => [record.offset, record.value?.length, record.value?.[0]])).toEqual([
      [0, 700000, 1],
      [1, 700000, 2],
      [2, 700000, 3],
      [3, 5, 's'.charCodeAt(0)],
    ]);
  });

  test('an empty partition has no batches', async () => {
    const topic = await freshTopic(1);
    await expect(readPartitionBatches({ host, port, topic, partition: 0 })).resolves.toEqual({
      highWatermark: 0,
      lastStableOffset: 0,
      batches: [],
    });
  });

  test('a batch in a codec other than none or gzip is refused, naming the codec', async () => {
    const topic = await freshTopic(1);
    // helpers.js registers lz4 with kafkajs.
    await producer.send({ topic, acks: -1, compression: CompressionTypes.LZ4, messages: [{ value: 'lz4 value' }] });
    await expect(readPartitionBatches({ host, port, topic, partition: 0 })).rejects.toThrow(
      /compressed with lz4.*compression\.type 'none'/,
    );
  });
});
