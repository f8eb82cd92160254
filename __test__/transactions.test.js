// Transactions (producer.transaction) against the real broker (KAFKA_BROKERS: Tansu in
// `npm test`). What becomes visible is checked three independent ways: registerConsumer at
// both isolation levels, kafkajs admin for group offsets, and the wire reader
// (support/kafka-wire.js), which reads the raw batches and applies the commit/abort markers
// itself. Broker facts these tests rely on, each measured on Tansu:
// - Tansu honours the last stable offset: an open transaction's records are hidden from
//   read_committed fetches until it ends, and read_uncommitted fetches get them at once.
// - Tansu writes commit/abort markers, but its Fetch responses never list aborted
//   transactions, so librdkafka (and kafkajs) deliver ABORTED records to read_committed
//   readers: "aborted records are invisible" is checked with the wire reader only.
// - Tansu commits a transaction's sendOffsets to the group only on commit, but only when the
//   transaction also produced records (an offsets-only one is not committed on Tansu).
// - Tansu answers a stale producer's Produce with PRODUCER_FENCED, but a stale EndTxn by
//   closing the connection, so librdkafka retries that commit until it times out.
// librdkafka's embedded mock cluster honours neither isolation nor transactional offsets,
// so none of this is checked against it.
const { KafkaProducer, KafkaTransaction, registerConsumer } = require('../index');
const { Kafka, logLevel } = require('kafkajs');
const { brokers, eventually, uniqueName, isError } = require('./helpers');
const { readTopicTransactions } = require('./support/kafka-wire');

jest.setTimeout(60000);

/** A plain producer: creates topics and writes non-transactional records. @type {KafkaProducer} */
let plain;
/** @type {Array<{ disconnect(timeoutMs?: number): Promise<void> }>} */
const producers = [];
/** @type {Array<{ close(): Promise<void> }>} */
const consumers = [];

beforeAll(async () => {
  plain = new KafkaProducer({ brokers: brokers(), clientId: 'transactions-test', logLevel: 'warn' });
  await plain.connect({ timeoutMs: 20000 });
});

afterEach(async () => {
  await Promise.all(consumers.splice(0).map((consumer) => consumer.close()));
});

afterAll(async () => {
  await Promise.all(producers.splice(0).map((producer) => producer.disconnect(5000).catch(() => {})));
  await plain.disconnect();
});

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function freshTopic(partitions = 1) {
  const name = uniqueName('tx');
  await plain.ensureTopics([{ name, partitions }]);
  return name;
}

/**
 * A transactional producer with its own transactionalId. Uncompressed, so the wire reader
 * can read its batches (the default codec is lz4).
 * @param {Record<string, unknown>} [options]
 */
function transactional(options = {}) {
  const producer = new KafkaProducer({
    brokers: brokers(),
    transactionalId: uniqueName('txid'),
    logLevel: 'warn',
    config: { 'compression.type': 'none' },
    ...options,
  });
  producers.push(producer);
  return producer;
}

/**
 * A consumer from the beginning of `topic` that collects what it receives.
 * @param {string | string[]} topic
 * @param {'read_committed' | 'read_uncommitted'} isolationLevel
 */
async function collect(topic, isolationLevel) {
  /** @type {import('../index').ConsumedMessage[]} */
  const messages = [];
  const consumer = await registerConsumer(topic, (message) => void messages.push(message), {
    brokers: brokers(),
    groupId: uniqueName('group'),
    fromBeginning: true,
    isolationLevel,
    // Tansu stalls a group's first join for half the session timeout, and parks empty
    // fetches for half the max wait: keep both short.
    sessionTimeoutMs: 6000,
    logLevel: 'warn',
    config: { 'fetch.wait.max.ms': 50 },
  });
  consumers.push(consumer);
  return messages;
}

/** @param {{ value?: any }[]} messages the ids of consumed JSON messages, in arrival order */
const consumedIds = (messages) => messages.map((message) => message.value.id);

/** @param {{ value: Buffer | null }[]} records the ids of wire records' JSON values */
const wireIds = (records) => records.map((record) => JSON.parse(String(record.value)).id);

/** The raw log of `topic`, classified as Kafka's read_committed would (wire reader). */
function wire(topic, partitions = 1) {
  return readTopicTransactions({ brokers: brokers(), topic, partitions });
}

/** Settles `promise` into its rejection reason, or fails when it resolves. */
async function rejection(/** @type {Promise<unknown>} */ promise) {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error) => error,
  );
}

/** Committed offsets of `groupId` on `topic`, by partition, as kafkajs admin reads them. */
async function groupOffsets(groupId, topic) {
  const admin = new Kafka({ brokers: brokers(), clientId: 'tx-verifier', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Object.fromEntries(result.partitions.map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

describe('visibility (Tansu: last stable offset honoured, markers written)', () => {
  test('an open transaction is hidden from read_committed readers until it commits; read_uncommitted readers see it at once', async () => {
    const topic = await freshTopic(2);
    const [committedReader, uncommittedReader] = await Promise.all([
      collect(topic, 'read_committed'),
      collect(topic, 'read_uncommitted'),
    ]);
    const producer = transactional();

    const tx = await producer.transaction();
    await tx.send({
      topic,
      messages: [
        { key: 'k', value: { id: 't1' }, partition: 0 },
        { key: 'k', value: { id: 't2' }, partition: 0 },
      ],
    });
    await tx.sendMessage(topic, { id: 't3' }, { key: 'k', partition: 0 });

    // On the broker: written and acknowledged, but behind the last stable offset.
    const whileOpen = await wire(topic, 2);
    expect(wireIds(whileOpen.open)).toEqual(['t1', 't2', 't3']);
    expect(whileOpen.committed).toEqual([]);
    expect(whileOpen.markers).toEqual([]);
    expect(whileOpen.partitions[0]).toMatchObject({ highWatermark: 3, lastStableOffset: 0 });

    // A committed record written after them, on the other partition: once the read_committed
    // reader has it, it has fetched past the moment the open records were written.
    await plain.sendMessage(topic, { id: 'sentinel' }, { partition: 1 });
    await eventually(() => consumedIds(uncommittedReader).length === 4, {
      timeoutMs: 20000,
      what: 'the read_uncommitted reader to receive the open records and the sentinel',
    });
    expect(consumedIds(uncommittedReader).sort()).toEqual(['sentinel', 't1', 't2', 't3']);
    await eventually(() => consumedIds(committedReader).includes('sentinel'), {
      timeoutMs: 20000,
      what: 'the read_committed reader to receive the sentinel',
    });
    await sleep(500); // ten more fetches at fetch.wait.max.ms 50
    expect(consumedIds(committedReader)).toEqual(['sentinel']);
    expect(tx.isActive).toBe(true);

    await tx.commit();
    await eventually(() => consumedIds(committedReader).length === 4, {
      timeoutMs: 20000,
      what: 'the read_committed reader to receive the committed records',
    });
    const fromPartition0 = committedReader.filter((message) => message.partition === 0);
    expect(consumedIds(fromPartition0)).toEqual(['t1', 't2', 't3']);
    expect(fromPartition0.map((message) => message.offset)).toEqual([0, 1, 2]);

    const after = await wire(topic, 2);
    expect(wireIds(after.committed)).toEqual(['t1', 't2', 't3', 'sentinel']);
    expect(after.open).toEqual([]);
    expect(after.markers).toEqual([expect.objectContaining({ partition: 0, offset: 3, type: 'commit' })]);
    expect(after.partitions[0]).toMatchObject({ highWatermark: 4, lastStableOffset: 4 });
    // Nothing was delivered twice (read_uncommitted got the records once, before the commit).
    await sleep(200);
    expect(consumedIds(uncommittedReader)).toHaveLength(4);
    expect(consumedIds(committedReader)).toHaveLength(4);
  });

  test('transaction(fn) commits what send, sendBatch and sendMessage wrote, across topics, and resolves with fn’s value', async () => {
    const [first, second] = await Promise.all([freshTopic(1), freshTopic(1)]);
    const producer = transactional();
    const value = { some: 'result' };
    const result = await producer.transaction(async (tx) => {
      expect(tx).toBeInstanceOf(KafkaTransaction);
      expect(tx.isActive).toBe(true);
      const sent = await tx.send({ topic: first, messages: [{ value: { id: 'send' } }] });
      expect(sent).toEqual([expect.objectContaining({ topic: first, partition: 0, offset: 0 })]);
      await tx.sendBatch({
        topicMessages: [
          { topic: first, messages: [{ value: { id: 'batch-1' } }] },
          { topic: second, messages: [{ value: { id: 'batch-2' } }] },
        ],
      });
      await tx.sendMessage(second, { id: 'message' });
      return value;
    });
    expect(result).toBe(value);

    // Committed by the time the promise resolves, in both topics, each with its marker.
    const [firstLog, secondLog] = await Promise.all([wire(first), wire(second)]);
    expect(wireIds(firstLog.committed)).toEqual(['send', 'batch-1']);
    expect(wireIds(secondLog.committed)).toEqual(['batch-2', 'message']);
    for (const log of [firstLog, secondLog]) {
      expect(log.open).toEqual([]);
      expect(log.aborted).toEqual([]);
      expect(log.markers).toEqual([expect.objectContaining({ offset: 2, type: 'commit' })]);
    }

    // Plain (non-promise) and absent values come through as they are.
    await expect(producer.transaction(() => 7)).resolves.toBe(7);
    await expect(producer.transaction(async () => {})).resolves.toBeUndefined();
  });

  test('a throwing fn aborts: the records are aborted on the broker (read_uncommitted still sees them) and the promise rejects with fn’s own error', async () => {
    const topic = await freshTopic(1);
    const uncommittedReader = await collect(topic, 'read_uncommitted');
    const producer = transactional();

    const failure = Object.assign(new Error('handler failed'), { code: 'MY_HANDLER_FAILED' });
    const caught = await rejection(
      producer.transaction(async (tx) => {
        await tx.send({ topic, messages: [{ value: { id: 'a1' } }, { value: { id: 'a2' } }] });
        await tx.sendMessage(topic, { id: 'a3' });
        throw failure;
      }),
    );
    expect(caught).toBe(failure);
    expect(caught.code).toBe('MY_HANDLER_FAILED');
    expect(caught.abortError).toBeUndefined(); // the abort itself succeeded

    // Aborted on the broker. (A read_committed consumer would still get a1..a3 on Tansu, whose
    // Fetch lists no aborted transactions: the wire reader applies the marker instead.)
    const log = await wire(topic);
    expect(wireIds(log.aborted)).toEqual(['a1', 'a2', 'a3']);
    expect(log.committed).toEqual([]);
    expect(log.open).toEqual([]);
    expect(log.markers).toEqual([expect.objectContaining({ offset: 3, type: 'abort' })]);
    await eventually(() => consumedIds(uncommittedReader).length === 3, {
      timeoutMs: 20000,
      what: 'the read_uncommitted reader to receive the aborted records',
    });
    expect(consumedIds(uncommittedReader)).toEqual(['a1', 'a2', 'a3']);

    // Synchronous throws and non-Error rejections are passed on unchanged too.
    const thrownSync = new Error('sync');
    expect(
      await rejection(
        producer.transaction(() => {
          throw thrownSync;
        }),
      ),
    ).toBe(thrownSync);
    const reason = { not: 'an Error' };
    expect(await rejection(producer.transaction(() => Promise.reject(reason)))).toBe(reason);

    // The producer goes on: the next transaction commits, the aborted records stay aborted.
    await producer.transaction((tx) => tx.sendMessage(topic, { id: 'after' }));
    const later = await wire(topic);
    expect(wireIds(later.committed)).toEqual(['after']);
    expect(wireIds(later.aborted)).toEqual(['a1', 'a2', 'a3']);
  });

  test('kafkajs style: transaction() resolves with the open transaction, committed or aborted by hand', async () => {
    const topic = await freshTopic(1);
    const producer = transactional();

    const committed = await producer.transaction();
    expect(committed).toBeInstanceOf(KafkaTransaction);
    expect(committed.isActive).toBe(true);
    await committed.send({ topic, messages: [{ value: { id: 'kept' } }] });
    const committing = committed.commit();
    expect(committed.isActive).toBe(false); // as soon as commit is called
    await expect(committing).resolves.toBeUndefined();

    const aborted = await producer.transaction();
    expect(aborted.isActive).toBe(true);
    await aborted.sendMessage(topic, { id: 'dropped' });
    await expect(aborted.abort()).resolves.toBeUndefined();
    expect(aborted.isActive).toBe(false);

    const log = await wire(topic);
    expect(wireIds(log.committed)).toEqual(['kept']);
    expect(wireIds(log.aborted)).toEqual(['dropped']);
    expect(log.markers.map((marker) => [marker.offset, marker.type])).toEqual([
      [1, 'commit'],
      [3, 'abort'],
    ]);
  });

  test('transactions of one producer run one after another, in call order: a waiting fn starts only once the previous transaction has ended', async () => {
    const topic = await freshTopic(1);
    const producer = transactional();
    /** @type {string[]} */
    const events = [];
    /** @type {() => void} */
    let release = () => {};
    const gate = new Promise((resolve) => {
      release = () => resolve(undefined);
    });
    /** @type {() => void} */
    let firstSent = () => {};
    const firstHasSent = new Promise((resolve) => {
      firstSent = () => resolve(undefined);
    });

    const first = producer.transaction(async (tx) => {
      events.push('first:start');
      await tx.sendMessage(topic, { id: 'first' });
      firstSent();
      await gate;
      await tx.sendMessage(topic, { id: 'first-late' });
      events.push('first:end');
      return 'first';
    });
    await firstHasSent;
    // Two transactions asked for while the first is open, each taking a while: run together,
    // their start and end events would interleave.
    const second = producer.transaction(async (tx) => {
      events.push('second:start');
      await tx.sendMessage(topic, { id: 'second' });
      await sleep(100);
      events.push('second:end');
      return 'second';
    });
    // The kafkajs style waits its turn as well.
    const third = producer.transaction().then(async (tx) => {
      events.push('third:start');
      await tx.sendMessage(topic, { id: 'third' });
      await sleep(100);
      events.push('third:end');
      await tx.commit();
      return 'third';
    });

    await sleep(500);
    expect(events).toEqual(['first:start']);
    release();
    await expect(Promise.all([first, second, third])).resolves.toEqual(['first', 'second', 'third']);
    // Waiting calls are served in call order, one at a time.
    expect(events).toEqual(['first:start', 'first:end', 'second:start', 'second:end', 'third:start', 'third:end']);
    const [next, last] = ['second', 'third'];

    // On the broker, each transaction's records come after the previous one's commit marker,
    // in the order the transactions ran: overlapping ones would share a marker.
    const log = await wire(topic);
    expect(log.committed.map((record) => [record.offset, wireIds([record])[0]])).toEqual([
      [0, 'first'],
      [1, 'first-late'],
      [3, next],
      [5, last],
    ]);
    expect(log.markers.map((marker) => [marker.offset, marker.type])).toEqual([
      [2, 'commit'],
      [4, 'commit'],
      [6, 'commit'],
    ]);
  });
});

describe('sendOffsets (Tansu: group offsets written on commit only)', () => {
  test('offsets are committed for the group when the transaction commits, and not when it aborts', async () => {
    const [source, output] = await Promise.all([freshTopic(2), freshTopic(1)]);
    const producer = transactional();
    const committedGroup = uniqueName('group');
    const abortedGroup = uniqueName('group');
    const none = { 0: '-1', 1: '-1' };

    // Each transaction also produces a record: on Tansu an offsets-only transaction does not
    // commit its offsets.
    const tx = await producer.transaction();
    await tx.sendMessage(output, { id: 'out-1' });
    await tx.sendOffsets({
      consumerGroupId: committedGroup,
      topics: [
        {
          topic: source,
          partitions: [
            { partition: 0, offset: 5 },
            { partition: 1, offset: '7' }, // kafkajs passes offsets as strings
          ],
        },
      ],
    });
    expect(await groupOffsets(committedGroup, source)).toEqual(none); // not before the commit
    await tx.commit();
    /** @type {Record<string, string>} */
    let offsetsAfterCommit = {};
    await eventually(
      async () => {
        offsetsAfterCommit = await groupOffsets(committedGroup, source);
        return offsetsAfterCommit[0] !== '-1';
      },
      { timeoutMs: 10000, what: 'the committed group offsets' },
    );
    expect(offsetsAfterCommit).toEqual({ 0: '5', 1: '7' });

    const failure = new Error('rolled back');
    const caught = await rejection(
      producer.transaction(async (tx) => {
        await tx.sendMessage(output, { id: 'out-2' });
        await tx.sendOffsets({
          consumerGroupId: abortedGroup,
          topics: [{ topic: source, partitions: [{ partition: 0, offset: 3 }] }],
        });
        await tx.sendOffsets({
          consumerGroupId: committedGroup,
          topics: [{ topic: source, partitions: [{ partition: 0, offset: 9 }] }],
        });
        throw failure;
      }),
    );
    expect(caught).toBe(failure);
    expect(await groupOffsets(abortedGroup, source)).toEqual(none);
    expect(await groupOffsets(committedGroup, source)).toEqual({ 0: '5', 1: '7' });

    const log = await wire(output);
    expect(wireIds(log.committed)).toEqual(['out-1']);
    expect(wireIds(log.aborted)).toEqual(['out-2']);
  });
});

describe('misuse', () => {
  test('plain sends on a transactional producer reject with ERR_KAFKA_TRANSACTION_STATE, also while a transaction is open, and write nothing', async () => {
    const topic = await freshTopic(1);
    const producer = transactional();
    /** @type {Array<[string, () => Promise<unknown>]>} */
    const plainSends = [
      ['send', () => producer.send({ topic, messages: [{ value: { id: 'plain' } }] })],
      ['sendBatch', () => producer.sendBatch({ topicMessages: [{ topic, messages: [{ value: { id: 'plain' } }] }] })],
      ['sendMessage', () => producer.sendMessage(topic, { id: 'plain' })],
      ['sendMovieEvent', () => producer.sendMovieEvent('LIKE', 'user-1', 'movie-1')],
      ['sendMovieViewEvent', () => producer.sendMovieViewEvent('user-1', 'movie-1')],
    ];
    const refusedAll = async () => {
      for (const [name, call] of plainSends) {
        const error = await rejection(call());
        expect([name, isError(error), error.code]).toEqual([name, true, 'ERR_KAFKA_TRANSACTION_STATE']);
      }
    };

    await refusedAll();
    const tx = await producer.transaction();
    await tx.sendMessage(topic, { id: 'inside' });
    await refusedAll();
    await tx.commit();

    const log = await wire(topic);
    expect(wireIds(log.committed)).toEqual(['inside']);
    expect(log.aborted).toEqual([]);
    expect(log.partitions[0].highWatermark).toBe(2); // the record and its marker, nothing else
  });

  test('a transaction used after it ended rejects with ERR_KAFKA_TRANSACTION_STATE, even while a newer one is open', async () => {
    const topic = await freshTopic(1);
    const producer = transactional();
    /** @type {KafkaTransaction | undefined} */
    let afterCommit;
    await producer.transaction(async (tx) => {
      afterCommit = tx;
      await tx.sendMessage(topic, { id: 'committed' });
    });
    /** @type {KafkaTransaction | undefined} */
    let afterAbort;
    await rejection(
      producer.transaction(async (tx) => {
        afterAbort = tx;
        throw new Error('abort it');
      }),
    );
    const ended = /** @type {KafkaTransaction[]} */ ([afterCommit, afterAbort]);
    const offsets = {
      consumerGroupId: uniqueName('group'),
      topics: [{ topic, partitions: [{ partition: 0, offset: 1 }] }],
    };
    /** @param {KafkaTransaction} tx @returns {Array<[string, () => Promise<unknown>]>} */
    const uses = (tx) => [
      ['send', () => tx.send({ topic, messages: [{ value: { id: 'stale' } }] })],
      ['sendBatch', () => tx.sendBatch({ topicMessages: [{ topic, messages: [{ value: { id: 'stale' } }] }] })],
      ['sendMessage', () => tx.sendMessage(topic, { id: 'stale' })],
      ['sendOffsets', () => tx.sendOffsets(offsets)],
      ['commit', () => tx.commit()],
      ['abort', () => tx.abort()],
    ];
    for (const tx of ended) {
      expect(tx.isActive).toBe(false);
      for (const [name, use] of uses(tx)) {
        const error = await rejection(use());
        expect([name, isError(error), error.code]).toEqual([name, true, 'ERR_KAFKA_TRANSACTION_STATE']);
      }
    }

    // A stale transaction's sends must not slip into the one now open.
    const open = await producer.transaction();
    for (const tx of ended) {
      for (const [name, use] of uses(tx)) {
        const error = await rejection(use());
        expect([name, error.code]).toEqual([name, 'ERR_KAFKA_TRANSACTION_STATE']);
      }
    }
    expect(open.isActive).toBe(true);
    await open.sendMessage(topic, { id: 'current' });
    await open.commit();
    const log = await wire(topic);
    expect(wireIds(log.committed)).toEqual(['committed', 'current']);
    expect(log.aborted).toEqual([]);
  });

  test('transaction() needs a producer with a transactionalId (ERR_INVALID_CONFIG) and a function or nothing (ERR_INVALID_ARG)', async () => {
    const fn = jest.fn();
    for (const call of [() => plain.transaction(fn), () => plain.transaction()]) {
      const error = await rejection(call());
      expect(isError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'ERR_INVALID_CONFIG', message: expect.stringContaining('transactionalId') });
    }
    expect(fn).not.toHaveBeenCalled();

    const producer = transactional();
    for (const argument of ['async () => {}', 42, {}, true]) {
      // Rejected, not thrown synchronously.
      const pending = producer.transaction(/** @type {any} */ (argument));
      const error = await rejection(pending);
      expect(isError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG' });
    }
    // No transaction was left open by the refused calls.
    await expect(producer.transaction(() => 'still usable')).resolves.toBe('still usable');
  });

  test('sendOffsets refuses bad offsets with ERR_INVALID_ARG, and the transaction goes on', async () => {
    const [source, output] = await Promise.all([freshTopic(1), freshTopic(1)]);
    const producer = transactional();
    const group = uniqueName('group');
    const partitions = (/** @type {any} */ entry) => ({
      consumerGroupId: group,
      topics: [{ topic: source, partitions: [entry] }],
    });
    /** @type {Array<[string, any]>} */
    const bad = [
      ['missing consumerGroupId', { topics: [{ topic: source, partitions: [{ partition: 0, offset: 1 }] }] }],
      ['empty consumerGroupId', { consumerGroupId: ' ', topics: [] }],
      ['missing topics', { consumerGroupId: group }],
      ['negative offset', partitions({ partition: 0, offset: -1 })],
      ['negative string offset', partitions({ partition: 0, offset: '-3' })],
      ['fractional offset', partitions({ partition: 0, offset: 1.5 })],
      ['negative partition', partitions({ partition: -1, offset: 1 })],
      ['missing offset', partitions({ partition: 0 })],
      ['unknown top-level key', { consumerGroupId: group, topics: [], groupId: group }],
      ['unknown topic key', { consumerGroupId: group, topics: [{ topic: source, partitions: [], partition: 0 }] }],
      ['unknown partition key', partitions({ partition: 0, offset: 1, metadata: 'x' })],
      ['not an object', 'offsets'],
    ];
    const tx = await producer.transaction();
    await tx.sendMessage(output, { id: 'out' });
    for (const [name, offsets] of bad) {
      const error = await rejection(tx.sendOffsets(offsets));
      expect([name, isError(error), error.code]).toEqual([name, true, 'ERR_INVALID_ARG']);
    }
    expect(tx.isActive).toBe(true);
    await tx.commit();
    const log = await wire(output);
    expect(wireIds(log.committed)).toEqual(['out']);
    expect(await groupOffsets(group, source)).toEqual({ 0: '-1' }); // none of them got through
  });

  test('the constructor refuses an empty transactionalId (ERR_INVALID_CONFIG) and ill-typed transaction options (ERR_INVALID_ARG)', () => {
    /** @type {Array<[any, string, RegExp]>} */
    const attempts = [
      [{ transactionalId: '' }, 'ERR_INVALID_CONFIG', /transactionalId/],
      [{ transactionalId: '   ' }, 'ERR_INVALID_CONFIG', /transactionalId/],
      [{ transactionalId: 42 }, 'ERR_INVALID_ARG', /transactionalId/],
      [{ transactionalId: 'id', transactionTimeoutMs: 999 }, 'ERR_INVALID_ARG', /transactionTimeoutMs/],
      [{ transactionalId: 'id', transactionTimeoutMs: 1.5 }, 'ERR_INVALID_ARG', /transactionTimeoutMs/],
    ];
    for (const [options, code, pattern] of attempts) {
      /** @type {any} */
      let thrown;
      try {
        new KafkaProducer({ brokers: brokers(), logLevel: 'off', ...options });
      } catch (error) {
        thrown = error;
      }
      expect(isError(thrown)).toBe(true);
      expect(thrown).toMatchObject({ code });
      expect(thrown.message).toMatch(pattern);
    }
  });
});

describe('fencing (Tansu: PRODUCER_FENCED on Produce, a dropped connection on EndTxn)', () => {
  // Short, so the zombie's doomed commit or abort gives up quickly.
  const transactionTimeoutMs = 2000;

  /**
   * A zombie producer holding an open transaction with one record sent, and a newer
   * instance with the same transactionalId that has initialised and committed since.
   * @param {string} topic
   * @param {(tx: KafkaTransaction) => Promise<unknown>} afterFencing what the zombie's fn does once fenced
   */
  async function fence(topic, afterFencing) {
    const transactionalId = uniqueName('txid');
    // The zombie's librdkafka logs the fencing at error level: keep the test output clean.
    const zombie = transactional({ transactionalId, transactionTimeoutMs, clientId: 'zombie', logLevel: 'off' });
    /** @type {() => void} */
    let release = () => {};
    const gate = new Promise((resolve) => {
      release = () => resolve(undefined);
    });
    /** @type {() => void} */
    let sent = () => {};
    const zombieHasSent = new Promise((resolve) => {
      sent = () => resolve(undefined);
    });
    const zombieRun = producerRun(
      zombie.transaction(async (tx) => {
        await tx.sendMessage(topic, { id: 'zombie' });
        sent();
        await gate;
        return afterFencing(tx);
      }),
    );
    await zombieHasSent;

    const successor = transactional({ transactionalId, transactionTimeoutMs, clientId: 'successor' });
    // Initialising the newer instance aborts what the zombie left open (its marker is written
    // with the zombie's epoch), then its own transaction commits.
    await expect(
      successor.transaction(async (tx) => {
        await tx.sendMessage(topic, { id: 'successor' });
        return 'successor committed';
      }),
    ).resolves.toBe('successor committed');
    release();
    return { zombie, successor, zombieRun };
  }

  /** Settles a transaction() promise into { value } or { error, ms }. */
  function producerRun(/** @type {Promise<unknown>} */ promise) {
    const started = Date.now();
    return promise.then(
      (value) => ({ value, error: undefined, ms: Date.now() - started }),
      (/** @type {any} */ error) => ({ value: undefined, error, ms: Date.now() - started }),
    );
  }

  test('a zombie’s send after fencing rejects with ERR_KAFKA_PRODUCER_FENCED; its records stay aborted and the newer instance commits', async () => {
    const topic = await freshTopic(1);
    /** @type {any} */
    let sendError;
    const { zombie, successor, zombieRun } = await fence(topic, async (tx) => {
      sendError = await rejection(tx.sendMessage(topic, { id: 'zombie-after-fencing' }));
      throw sendError;
    });

    const { error } = await zombieRun;
    // Tansu answers the stale Produce with PRODUCER_FENCED: that is what the send rejects with,
    // and transaction(fn) rejects with it (fn rethrew it).
    expect(isError(sendError)).toBe(true);
    expect(sendError).toMatchObject({
      code: 'ERR_KAFKA_PRODUCER_FENCED',
      librdkafkaName: 'PRODUCER_FENCED',
      retriable: false,
    });
    expect(error).toBe(sendError);
    // librdkafka treats that Produce error as abortable (not fatal); the abort's EndTxn then
    // gets no answer from Tansu (it closes the connection) and times out after
    // transactionTimeoutMs: the rejection carries that as abortError.
    expect(error.abortError).toMatchObject({ code: 'ERR_KAFKA_TIMED_OUT' });

    // The zombie cannot transact any more. (On Kafka it would be fatally fenced; on Tansu it is
    // refused with librdkafka's _CONFLICT, because its timed-out abort was never resumed.)
    const again = await producerRun(zombie.transaction((tx) => tx.sendMessage(topic, { id: 'zombie-again' })));
    expect(isError(again.error)).toBe(true);
    expect(again.error.code).toMatch(/^ERR_KAFKA_/);

    // The newer instance goes on committing.
    await successor.transaction((tx) => tx.sendMessage(topic, { id: 'successor-again' }));

    const log = await wire(topic);
    expect(wireIds(log.committed)).toEqual(['successor', 'successor-again']);
    expect(wireIds(log.aborted)).toEqual(['zombie']);
    expect(log.open).toEqual([]);
    // The zombie's open transaction was aborted with its own epoch, the successor's commits
    // carry the bumped one.
    const [abortMarker, ...commitMarkers] = log.markers;
    expect(abortMarker).toMatchObject({ offset: 1, type: 'abort' });
    for (const marker of commitMarkers) {
      expect(marker).toMatchObject({ type: 'commit', producerId: abortMarker.producerId });
      expect(marker.producerEpoch).toBeGreaterThan(abortMarker.producerEpoch);
    }
  });

  test('a zombie that only commits after fencing is refused (Tansu does not report PRODUCER_FENCED on EndTxn) and commits nothing', async () => {
    const topic = await freshTopic(1);
    const { zombie, zombieRun } = await fence(topic, async () => 'zombie committed?');

    const { value, error, ms } = await zombieRun;
    expect(value).toBeUndefined();
    // On a Kafka broker the stale EndTxn is answered PRODUCER_FENCED (ERR_KAFKA_PRODUCER_FENCED).
    // Tansu closes the connection instead, librdkafka retries the commit until
    // transactionTimeoutMs and the addon's fallback abort is then refused by librdkafka
    // (_STATE or _CONFLICT, depending on timing): only "rejected, with a librdkafka error"
    // holds here, not the fencing code.
    expect(isError(error)).toBe(true);
    expect(error.code).toMatch(/^ERR_KAFKA_/);
    expect(ms).toBeGreaterThanOrEqual(transactionTimeoutMs - 500);

    const again = await producerRun(zombie.transaction((tx) => tx.sendMessage(topic, { id: 'zombie-again' })));
    expect(isError(again.error)).toBe(true);

    const log = await wire(topic);
    expect(wireIds(log.committed)).toEqual(['successor']);
    expect(wireIds(log.aborted)).toEqual(['zombie']);
    expect(log.open).toEqual([]);
  });
});

test('many transaction() calls made at once run one by one in the order they were made', async () => {
  // Not a broker property: the order in which this library hands out the producer's turn.
  const topic = await freshTopic(1);
  const producer = transactional();
  /** @type {number[]} */
  const started = [];
  const calls = Array.from({ length: 12 }, (_, call) =>
    producer.transaction(async (tx) => {
      started.push(call);
      await tx.sendMessage(topic, { id: String(call) });
      return call;
    }),
  );
  await expect(Promise.all(calls)).resolves.toEqual(calls.map((_, call) => call));
  expect(started).toEqual(calls.map((_, call) => call));
});
