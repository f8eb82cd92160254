// A wire-level reader of a partition's raw record batches, control batches included,
// for checking transactions. Tansu hides an open transaction's records from read_committed
// readers (last stable offset) and writes commit/abort markers, but its Fetch responses
// always carry an empty AbortedTransactions list, so every client delivers aborted records
// to read_committed readers. Tests therefore read the batches themselves and apply the
// markers the way a Kafka broker and client do together (classifyTransactions).
const net = require('node:net');
const zlib = require('node:zlib');

/**
 * @typedef {{ offset: number, key: Buffer | null, value: Buffer | null, headers: Record<string, Buffer | null>, partition: number }} WireRecord
 * @typedef {{
 *   partition: number,
 *   baseOffset: number,
 *   lastOffsetDelta: number,
 *   producerId: string,
 *   producerEpoch: number,
 *   baseSequence: number,
 *   isTransactional: boolean,
 *   isControl: boolean,
 *   compression: string,
 *   records: WireRecord[],
 *   controlType?: 'commit' | 'abort',
 * }} WireBatch
 * @typedef {{ partition: number, offset: number, producerId: string, producerEpoch: number, type: 'commit' | 'abort' }} WireMarker
 * @typedef {{ committed: WireRecord[], aborted: WireRecord[], open: WireRecord[], markers: WireMarker[] }} Classification
 * @typedef {{
 *   errorCode: number,
 *   highWatermark: number,
 *   lastStableOffset: number,
 *   abortedTransactions: { producerId: string, firstOffset: number }[] | null,
 *   records: Buffer | null,
 * }} FetchPartition
 */

const API_FETCH = 1;
const API_VERSIONS = 18;
// Fetch v4 to v11 use the classic (non-flexible) encoding this file implements.
const FETCH_MIN_VERSION = 4;
const FETCH_MAX_VERSION = 11;
const CLIENT_ID = 'kafka-wire-test';
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
// Errors worth retrying until the deadline: UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
// NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT.
const RETRIABLE = new Set([3, 5, 6, 7]);

// ------------------------------------------------------------------------------- encoding

class Writer {
  constructor() {
    /** @type {Buffer[]} */
    this.parts = [];
  }

  /** @param {number} size @param {(buffer: Buffer) => void} write */
  fixed(size, write) {
    const buffer = Buffer.alloc(size);
    write(buffer);
    this.parts.push(buffer);
    return this;
  }

  /** @param {number} value */
  int8(value) {
    return this.fixed(1, (b) => b.writeInt8(value));
  }

  /** @param {number} value */
  int16(value) {
    return this.fixed(2, (b) => b.writeInt16BE(value));
  }

  /** @param {number} value */
  int32(value) {
    return this.fixed(4, (b) => b.writeInt32BE(value));
  }

  /** @param {number | bigint} value */
  int64(value) {
    return this.fixed(8, (b) => b.writeBigInt64BE(BigInt(value)));
  }

  /** A nullable string with an int16 length. @param {string | null} value */
  string(value) {
    if (value === null) return this.int16(-1);
    const bytes = Buffer.from(value, 'utf8');
    this.int16(bytes.length);
    this.parts.push(bytes);
    return this;
  }

  /**
   * An array with an int32 count.
   * @template T
   * @param {T[]} items
   * @param {(item: T) => void} write
   */
  array(items, write) {
    this.int32(items.length);
    for (const item of items) write(item);
    return this;
  }

  build() {
    return Buffer.concat(this.parts);
  }
}

// ------------------------------------------------------------------------------- decoding

class Reader {
  /** @param {Buffer} buffer @param {string} what */
  constructor(buffer, what) {
    this.buffer = buffer;
    this.pos = 0;
    this.what = what;
  }

  /** @param {number} size */
  take(size) {
    if (size < 0 || this.pos + size > this.buffer.length) {
      throw new Error(`${this.what}: truncated at byte ${this.pos} (wanted ${size} of ${this.buffer.length})`);
    }
    const start = this.pos;
    this.pos += size;
    return start;
  }

  int8() {
    return this.buffer.readInt8(this.take(1));
  }

  int16() {
    return this.buffer.readInt16BE(this.take(2));
  }

  int32() {
    return this.buffer.readInt32BE(this.take(4));
  }

  uint32() {
    return this.buffer.readUInt32BE(this.take(4));
  }

  int64() {
    return this.buffer.readBigInt64BE(this.take(8));
  }

  /** @param {number} size */
  bytes(size) {
    const start = this.take(size);
    return this.buffer.subarray(start, start + size);
  }

  /** A nullable string with an int16 length. */
  string() {
    const length = this.int16();
    return length < 0 ? null : this.bytes(length).toString('utf8');
  }

  /** Nullable bytes with an int32 length. */
  int32Bytes() {
    const length = this.int32();
    return length < 0 ? null : this.bytes(length);
  }

  /**
   * A nullable array with an int32 count.
   * @template T
   * @param {() => T} read
   * @returns {T[] | null}
   */
  array(read) {
    const count = this.int32();
    if (count < 0) return null;
    const items = [];
    for (let i = 0; i < count; i += 1) items.push(read());
    return items;
  }

  /** An unsigned LEB128 varint, as a BigInt (up to 64 bits). */
  unsignedVarlong() {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      if (shift > 63n) throw new Error(`${this.what}: varint longer than 10 bytes at byte ${this.pos}`);
      const byte = this.buffer[this.take(1)];
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7n;
    }
  }

  /** A zigzag varlong, as a BigInt. */
  varlong() {
    const raw = this.unsignedVarlong();
    return (raw >> 1n) ^ -(raw & 1n);
  }

  /** A zigzag varint (32 bits), as a Number. */
  varint() {
    const raw = this.unsignedVarlong();
    if (raw > 0xffffffffn) throw new Error(`${this.what}: varint out of 32-bit range at byte ${this.pos}`);
    return Number((raw >> 1n) ^ -(raw & 1n));
  }

  /** Nullable bytes with a zigzag varint length (-1 = null). */
  varintBytes() {
    const length = this.varint();
    return length < 0 ? null : Buffer.from(this.bytes(length));
  }

  get remaining() {
    return this.buffer.length - this.pos;
  }
}

// CRC-32C (Castagnoli), which a v2 record batch carries over everything after its crc field.
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** @param {Buffer} buffer */
function crc32c(buffer) {
  let crc = 0xffffffff;
  for (let i = 0; i < buffer.length; i += 1) crc = CRC32C_TABLE[(crc ^ buffer[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// ------------------------------------------------------------------------------- connection

/**
 * One TCP connection speaking request header v1 and response header v0.
 * @param {string} host
 * @param {number} port
 * @param {number} timeoutMs for connecting and for each request
 */
async function connect(host, port, timeoutMs) {
  const socket = net.connect({ host, port });
  socket.setNoDelay(true);
  await /** @type {Promise<void>} */ (
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    })
  );

  let correlationId = 0;
  let received = Buffer.alloc(0);
  /** @type {Map<number, { resolve: (body: Buffer) => void, reject: (error: Error) => void, timer: NodeJS.Timeout }>} */
  const pending = new Map();
  /** @param {Error} error */
  const failAll = (error) => {
    for (const { reject, timer } of pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    pending.clear();
  };
  socket.on('data', (chunk) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    while (received.length >= 4) {
      const size = received.readInt32BE(0);
      if (received.length < 4 + size) break;
      const frame = received.subarray(4, 4 + size);
      received = received.subarray(4 + size);
      const id = frame.readInt32BE(0);
      const waiter = pending.get(id);
      if (waiter) {
        pending.delete(id);
        clearTimeout(waiter.timer);
        waiter.resolve(frame.subarray(4));
      }
    }
  });
  socket.on('error', (error) => failAll(error));
  socket.on('close', () => failAll(new Error(`connection to ${host}:${port} closed`)));

  return {
    /**
     * Sends one request and resolves with its response body (after the correlation id).
     * @param {number} apiKey
     * @param {number} apiVersion
     * @param {Buffer} body
     * @returns {Promise<Buffer>}
     */
    request(apiKey, apiVersion, body) {
      correlationId += 1;
      const id = correlationId;
      const header = new Writer().int16(apiKey).int16(apiVersion).int32(id).string(CLIENT_ID).build();
      const size = Buffer.alloc(4);
      size.writeInt32BE(header.length + body.length);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`request api_key=${apiKey} v${apiVersion} to ${host}:${port} timed out`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        socket.write(Buffer.concat([size, header, body]));
      });
    },
    close() {
      socket.destroy();
    },
  };
}

/**
 * The broker's supported versions per api key (ApiVersions v0).
 * @param {{ request: (apiKey: number, apiVersion: number, body: Buffer) => Promise<Buffer> }} connection
 * @returns {Promise<Map<number, { min: number, max: number }>>}
 */
async function apiVersions(connection) {
  const reader = new Reader(await connection.request(API_VERSIONS, 0, Buffer.alloc(0)), 'ApiVersions response');
  const errorCode = reader.int16();
  if (errorCode !== 0) throw new Error(`ApiVersions failed with error code ${errorCode}`);
  const versions = new Map();
  for (const entry of reader.array(() => ({ key: reader.int16(), min: reader.int16(), max: reader.int16() })) ?? []) {
    versions.set(entry.key, { min: entry.min, max: entry.max });
  }
  return versions;
}

/**
 * The Fetch version to use: v4 if the broker takes it, else the lowest non-flexible one it does.
 * @param {Map<number, { min: number, max: number }>} versions
 */
function pickFetchVersion(versions) {
  const range = versions.get(API_FETCH);
  if (!range) throw new Error('the broker does not support Fetch');
  const version = Math.max(range.min, FETCH_MIN_VERSION);
  if (version > Math.min(range.max, FETCH_MAX_VERSION)) {
    throw new Error(`the broker supports Fetch v${range.min}-v${range.max}, none of v4-v11`);
  }
  return version;
}

/**
 * Encodes a Fetch request (v4 to v11) for one partition, read_uncommitted.
 * @param {number} version
 * @param {{ topic: string, partition: number, offset: number, partitionMaxBytes: number }} request
 */
function fetchRequest(version, { topic, partition, offset, partitionMaxBytes }) {
  const writer = new Writer()
    .int32(-1) // replica_id
    .int32(100) // max_wait_ms
    .int32(1) // min_bytes
    .int32(Math.max(partitionMaxBytes, 50 * 1024 * 1024)) // max_bytes
    .int8(0); // isolation_level: read_uncommitted, so nothing is hidden
  if (version >= 7) writer.int32(0).int32(-1); // session_id, session_epoch: no fetch session
  writer.array([topic], (name) => {
    writer.string(name).array([partition], (index) => {
      writer.int32(index);
      if (version >= 9) writer.int32(-1); // current_leader_epoch
      writer.int64(offset);
      if (version >= 5) writer.int64(-1); // log_start_offset
      writer.int32(partitionMaxBytes);
    });
  });
  if (version >= 7) writer.array([], () => {}); // forgotten_topics_data
  if (version >= 11) writer.string(''); // rack_id
  return writer.build();
}

/**
 * Decodes a Fetch response (v4 to v11), returning the one partition asked for.
 * @param {number} version
 * @param {Buffer} body
 * @param {string} topic
 * @param {number} partition
 * @returns {FetchPartition}
 */
function parseFetchResponse(version, body, topic, partition) {
  const reader = new Reader(body, 'Fetch response');
  reader.int32(); // throttle_time_ms
  if (version >= 7) {
    const errorCode = reader.int16();
    reader.int32(); // session_id
    if (errorCode !== 0) {
      return /** @type {FetchPartition} */ ({
        errorCode,
        highWatermark: -1,
        lastStableOffset: -1,
        abortedTransactions: null,
        records: null,
      });
    }
  }
  /** @type {FetchPartition[]} */
  const found = [];
  reader.array(() => {
    const name = reader.string();
    reader.array(() => {
      const index = reader.int32();
      const errorCode = reader.int16();
      const highWatermark = Number(reader.int64());
      const lastStableOffset = Number(reader.int64());
      if (version >= 5) reader.int64(); // log_start_offset
      const abortedTransactions = reader.array(() => ({
        producerId: reader.int64().toString(),
        firstOffset: Number(reader.int64()),
      }));
      if (version >= 11) reader.int32(); // preferred_read_replica
      const records = reader.int32Bytes();
      if (name === topic && index === partition) {
        found.push({ errorCode, highWatermark, lastStableOffset, abortedTransactions, records });
      }
    });
  });
  if (found.length === 0) throw new Error(`the Fetch response has no ${topic}/${partition}`);
  return found[0];
}

// ------------------------------------------------------------------------------- record batches

/**
 * Parses the records of one v2 batch.
 * @param {Buffer} data the (decompressed) records section
 * @param {number} count
 * @param {number} baseOffset
 * @param {number} partition
 */
function parseRecords(data, count, baseOffset, partition) {
  const reader = new Reader(data, `records of the batch at offset ${baseOffset}`);
  /** @type {WireRecord[]} */
  const records = [];
  for (let i = 0; i < count; i += 1) {
    const length = reader.varint();
    const record = new Reader(reader.bytes(length), `record ${i} of the batch at offset ${baseOffset}`);
    record.int8(); // attributes (unused)
    record.varlong(); // timestampDelta
    const offsetDelta = record.varint();
    const key = record.varintBytes();
    const value = record.varintBytes();
    const headerCount = record.varint();
    /** @type {Record<string, Buffer | null>} */
    const headers = {};
    for (let h = 0; h < headerCount; h += 1) {
      const headerKey = record.varintBytes();
      headers[headerKey === null ? '' : headerKey.toString('utf8')] = record.varintBytes();
    }
    records.push({ offset: baseOffset + offsetDelta, key, value, headers, partition });
  }
  return records;
}

/**
 * Parses the complete v2 record batches in a Fetch response's records bytes; a truncated
 * trailing batch (the broker cut it at the size limit) is left out.
 * @param {Buffer} buffer
 * @param {number} partition
 * @returns {WireBatch[]}
 */
function parseBatches(buffer, partition) {
  /** @type {WireBatch[]} */
  const batches = [];
  let pos = 0;
  while (buffer.length - pos >= 12) {
    const batchLength = buffer.readInt32BE(pos + 8);
    const end = pos + 12 + batchLength;
    if (end > buffer.length) break;
    const reader = new Reader(buffer.subarray(pos, end), `the batch at byte ${pos}`);
    pos = end;
    const baseOffset = Number(reader.int64());
    reader.int32(); // batchLength
    reader.int32(); // partitionLeaderEpoch
    const magic = reader.int8();
    if (magic !== 2) throw new Error(`the batch at offset ${baseOffset} has magic ${magic}; only v2 batches are read`);
    const crc = reader.uint32();
    const computed = crc32c(reader.buffer.subarray(reader.pos));
    if (computed !== crc) {
      throw new Error(`the batch at offset ${baseOffset} has crc ${crc}, but its bytes give ${computed}`);
    }
    const attributes = reader.int16();
    const lastOffsetDelta = reader.int32();
    reader.int64(); // baseTimestamp
    reader.int64(); // maxTimestamp
    const producerId = reader.int64().toString();
    const producerEpoch = reader.int16();
    const baseSequence = reader.int32();
    const recordCount = reader.int32();
    const compression = CODECS[attributes & 0x07] ?? `codec ${attributes & 0x07}`;
    const isTransactional = (attributes & 0x10) !== 0;
    const isControl = (attributes & 0x20) !== 0;
    let data = reader.bytes(reader.remaining);
    if (compression === 'gzip') {
      data = zlib.gunzipSync(data);
    } else if (compression !== 'none') {
      throw new Error(
        `the batch at offset ${baseOffset} is compressed with ${compression}; the wire reader reads only ` +
          "none and gzip: produce with compression.type 'none'",
      );
    }
    /** @type {WireBatch} */
    const batch = {
      partition,
      baseOffset,
      lastOffsetDelta,
      producerId,
      producerEpoch,
      baseSequence,
      isTransactional,
      isControl,
      compression,
      records: parseRecords(data, recordCount, baseOffset, partition),
    };
    if (isControl) batch.controlType = controlType(batch);
    batches.push(batch);
  }
  return batches;
}

/**
 * A control batch's marker type, from its record's key (int16 version, int16 type).
 * @param {WireBatch} batch
 * @returns {'commit' | 'abort'}
 */
function controlType(batch) {
  const key = batch.records[0]?.key;
  if (!key || key.length < 4) throw new Error(`the control batch at offset ${batch.baseOffset} has no control key`);
  const type = key.readInt16BE(2);
  if (type === 0) return 'abort';
  if (type === 1) return 'commit';
  throw new Error(`the control batch at offset ${batch.baseOffset} has unknown control type ${type}`);
}

// ------------------------------------------------------------------------------- API

/**
 * Reads every record batch of topic/partition from offset 0 up to the high watermark
 * over the raw Kafka protocol (Fetch with isolation_level = 0, read_uncommitted),
 * control batches included.
 * @param {{ host: string, port: number, topic: string, partition: number, timeoutMs?: number }} options
 * @returns {Promise<{ highWatermark: number, lastStableOffset: number, batches: WireBatch[] }>}
 */
async function readPartitionBatches({ host, port, topic, partition, timeoutMs = 10000 }) {
  const deadline = Date.now() + timeoutMs;
  const connection = await connect(host, port, timeoutMs);
  try {
    const version = pickFetchVersion(await apiVersions(connection));
    /** @type {WireBatch[]} */
    const batches = [];
    let offset = 0;
    let partitionMaxBytes = 1024 * 1024;
    for (;;) {
      const body = await connection.request(
        API_FETCH,
        version,
        fetchRequest(version, { topic, partition, offset, partitionMaxBytes }),
      );
      const response = parseFetchResponse(version, body, topic, partition);
      if (response.errorCode !== 0) {
        if (!RETRIABLE.has(response.errorCode) || Date.now() > deadline) {
          throw new Error(
            `Fetch of ${topic}/${partition} at offset ${offset} failed with error code ${response.errorCode}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const { highWatermark, lastStableOffset } = response;
      if (offset >= highWatermark) return { highWatermark, lastStableOffset, batches };
      // A batch before `offset` may come back when the offset is inside it: it is already read.
      const fresh = parseBatches(response.records ?? Buffer.alloc(0), partition).filter(
        (batch) => batch.baseOffset + batch.lastOffsetDelta >= offset,
      );
      if (fresh.length > 0) {
        batches.push(...fresh);
        const last = fresh[fresh.length - 1];
        offset = last.baseOffset + last.lastOffsetDelta + 1;
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `read ${topic}/${partition} up to offset ${offset} of ${highWatermark} in ${timeoutMs} ms: ` +
            `the broker returned no complete batch (${response.records?.length ?? 0} bytes)`,
        );
      }
      // Only a truncated batch: it is bigger than the limit asked for.
      if ((response.records?.length ?? 0) >= partitionMaxBytes && partitionMaxBytes < 1 << 30) {
        partitionMaxBytes *= 2;
      }
    }
  } finally {
    connection.close();
  }
}

/**
 * Applies transaction markers the way Kafka's read_committed does: a transactional
 * (non-control) batch is visible only if a COMMIT control batch with the same
 * producerId follows it (before any ABORT marker for that producerId); batches followed by
 * ABORT are aborted; transactional batches with no marker yet are "open".
 * Non-transactional batches are always committed. Batches are taken in log order per
 * partition (batch.partition, else their records' partition); each result list is sorted
 * by partition, then offset. Control records appear only as markers.
 * @param {WireBatch[]} batches
 * @returns {Classification}
 */
function classifyTransactions(batches) {
  /** @type {Classification} */
  const result = { committed: [], aborted: [], open: [], markers: [] };
  /** @type {Map<string, WireRecord[]>} records of transactions not yet ended, by partition and producer */
  const pending = new Map();
  for (const batch of batches) {
    const partition = batch.partition ?? batch.records[0]?.partition ?? 0;
    const producer = `${partition}:${batch.producerId}`;
    if (batch.isControl) {
      const type = batch.controlType ?? controlType(batch);
      const offset = batch.records[0]?.offset ?? batch.baseOffset;
      result.markers.push({
        partition,
        offset,
        producerId: batch.producerId,
        producerEpoch: batch.producerEpoch,
        type,
      });
      const records = pending.get(producer) ?? [];
      pending.delete(producer);
      (type === 'commit' ? result.committed : result.aborted).push(...records);
    } else if (batch.isTransactional) {
      const records = pending.get(producer) ?? [];
      records.push(...batch.records);
      pending.set(producer, records);
    } else {
      result.committed.push(...batch.records);
    }
  }
  for (const records of pending.values()) result.open.push(...records);
  /** @param {{ partition: number, offset: number }} a @param {{ partition: number, offset: number }} b */
  const byPosition = (a, b) => a.partition - b.partition || a.offset - b.offset;
  for (const list of [result.committed, result.aborted, result.open, result.markers]) list.sort(byPosition);
  return result;
}

/**
 * Convenience: readPartitionBatches for every partition 0..partitions-1 of a topic and
 * classify them. `partitions` in the result has each partition's watermarks and batches.
 * @param {{ brokers: string | string[], topic: string, partitions: number, timeoutMs?: number }} options
 * @returns {Promise<Classification & { partitions: { partition: number, highWatermark: number, lastStableOffset: number, batches: WireBatch[] }[] }>}
 */
async function readTopicTransactions({ brokers, topic, partitions, timeoutMs }) {
  const first = (Array.isArray(brokers) ? brokers[0] : brokers.split(',')[0]).trim();
  const colon = first.lastIndexOf(':');
  const host = first.slice(0, colon);
  const port = Number(first.slice(colon + 1));
  const read = await Promise.all(
    Array.from({ length: partitions }, (_, partition) =>
      readPartitionBatches({ host, port, topic, partition, timeoutMs }).then((result) => ({ partition, ...result })),
    ),
  );
  return { ...classifyTransactions(read.flatMap((p) => p.batches)), partitions: read };
}

module.exports = { readPartitionBatches, classifyTransactions, readTopicTransactions };
