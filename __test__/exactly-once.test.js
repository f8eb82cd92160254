// registerConsumer's exactlyOnce (consume-transform-produce in transactions of the consumer's
// own transactional producer), against the real broker (Tansu, KAFKA_BROKERS); the
// in-process mock cluster honours none of this, so it is not used here.
//
// What Tansu proves and what it does not (measured): it hides the records of open
// transactions from read_committed readers (last stable offset), writes commit and abort
// markers, commits a transaction's consumer offsets only when the transaction commits, and
// aborts a killed producer's open transaction (abort marker) when a new producer initialises
// the same transactional.id. But its Fetch responses carry no aborted-transaction list, so
// every client, this one included, delivers ABORTED records to read_committed readers.
// Outputs are therefore checked with the wire reader (support/kafka-wire.js), which applies
// the markers the way a Kafka broker and client do together: "committed" below is what a
// read_committed reader of a real Kafka would see.
//
// The wire reader reads only uncompressed (or gzip) batches, and the transactional producer
// does not take the consumer's `config` (only its security settings), so it uses its lz4
// default: every handler here sends ONE record per `tx.send`, which librdkafka writes as a
// one-record batch, left uncompressed because lz4 would not make it smaller.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Kafka, logLevel } = require('kafkajs');
const { KafkaProducer, registerConsumer } = require('../index');
const { brokers, eventually, uniqueName, isError, readTopic } = require('./helpers');
const { readTopicTransactions } = require('./support/kafka-wire');

jest.setTimeout(90000);

const ROOT = path.join(__dirname, '..');
const CHILD = path.join(__dirname, 'support', 'exactly-once-child.js');

/** @type {KafkaProducer} */
let producer;
/** @type {import('kafkajs').Admin} */
let admin;
/** @type {string} */
let workDir;
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];
/** @type {import('../index').ConsumerHandle[]} */
const handles = [];

beforeAll(async () => {
  // The input is written by a plain (idempotent, non-transactional) producer.
  producer = new KafkaProducer({ brokers: brokers(), clientId: 'exactly-once-input', logLevel: 'warn' });
  await producer.connect({ timeoutMs: 20000 });
  admin = new Kafka({ brokers: brokers(), clientId: 'exactly-once-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-napi-exactly-once-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  for (const handle of handles.splice(0)) await handle.close().catch(() => {});
});

afterAll(async () => {
  await admin?.disconnect();
  await producer?.disconnect();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes `values` to `input` (objects `{ id }` keyed by id, or raw strings sent as they are),
 * in order, raising `end`, the input's end offset per partition, from the acknowledgements
 * (Tansu's ListOffsets gave kafkajs wrong ends for these topics: 1 for 50 records).
 * @param {Record<number, number>} end
 * @param {string} input
 * @param {(object | string)[]} values
 */
async function append(end, input, values) {
  for (let start = 0; start < values.length; start += 500) {
    const messages = values.slice(start, start + 500).map((value) => ({
      key: typeof value === 'string' ? 'raw' : String(/** @type {any} */ (value).id),
      value,
    }));
    for (const { partition, offset } of await producer.send({ topic: input, messages })) {
      end[partition] = Math.max(end[partition] ?? 0, offset + 1);
    }
  }
  return end;
}

/**
 * Creates the topics and writes `values` to `input`; returns its end offsets.
 * @param {{ name: string, partitions: number }[]} topics
 * @param {string} input
 * @param {(object | string)[]} values
 */
async function prepare(topics, input, values) {
  await producer.ensureTopics(topics);
  return append({}, input, values);
}

/** The group's committed offset per partition of `topic` (-1 when none). */
async function committedOffsets(groupId, topic) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return Object.fromEntries(entry.partitions.map((p) => [p.partition, Number(p.offset)]));
}

/**
 * Whether the group's committed offsets of `topic` are `end`.
 * @param {string} groupId
 * @param {string} topic
 * @param {Record<number, number>} end
 */
async function offsetsAtEnd(groupId, topic, end) {
  const committed = await committedOffsets(groupId, topic);
  return Object.entries(end).every(([partition, high]) => committed[partition] === high);
}

/**
 * The output records as `{ id, run, attempt }`.
 * @param {import('./support/kafka-wire').WireRecord[]} records
 */
function parsed(records) {
  return records.map((record) => JSON.parse(record.value?.toString() ?? 'null'));
}

/**
 * An input and an output topic (with `deadLetters`, also the input's `.dlq`), the input
 * holding `{ id }` for ids 0..total-1; with the input's end offsets.
 * @param {string} name
 * @param {number} total
 * @param {{ inputPartitions?: number, outputPartitions?: number, deadLetters?: boolean }} [options]
 */
async function pipelineTopics(name, total, { inputPartitions = 1, outputPartitions = 1, deadLetters = false } = {}) {
  const input = uniqueName(`${name}-in`);
  const output = uniqueName(`${name}-out`);
  const topics = [
    { name: input, partitions: inputPartitions },
    { name: output, partitions: outputPartitions },
    ...(deadLetters ? [{ name: `${input}.dlq`, partitions: 1 }] : []),
  ];
  const values = Array.from({ length: total }, (_, id) => ({ id }));
  return { input, output, end: await prepare(topics, input, values) };
}

/**
 * The output topic as the wire reader classifies it, committed and aborted records parsed.
 * @param {string} topic
 */
async function outputs(topic, partitions = 1) {
  const result = await readTopicTransactions({ brokers: brokers(), topic, partitions });
  return { result, committed: parsed(result.committed), aborted: parsed(result.aborted) };
}

/**
 * Which of 0..total-1 are missing from `ids`, and which appear more than once.
 * @param {number[]} ids
 * @param {number} total
 */
function exactlyOnceReport(ids, total) {
  /** @type {Map<number, number>} */
  const counts = new Map();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  const missing = [];
  for (let id = 0; id < total; id += 1) if (!counts.has(id)) missing.push(id);
  const duplicated = [...counts].filter(([, count]) => count > 1).map(([id, count]) => ({ id, count }));
  const unexpected = [...counts.keys()].filter((id) => !(Number.isInteger(id) && id >= 0 && id < total));
  return { missing, duplicated, unexpected };
}

// ------------------------------------------------------------------------------- crash test

/**
 * Starts the pipeline in a child process (support/exactly-once-child.js).
 * @param {{ input: string, output: string, groupId: string, transactionalId: string, progress: string }} settings
 */
function startPipeline(settings) {
  const child = spawn(process.execPath, [CHILD], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, EXACTLY_ONCE_CHILD: JSON.stringify({ brokers: brokers(), ...settings }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let stdout = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  /** @type {Promise<{ code: number | null, signal: string | null, stdout: string }>} */
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout })));
  return { child, exited };
}

/** @param {string} file */
function linesIn(file) {
  if (!fs.existsSync(file)) return 0;
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '').length;
}

test('a pipeline SIGKILLed twice mid-transaction and restarted: every input has exactly one committed output, and the offsets reach the end', async () => {
  // Tansu proves here: open transactions stay invisible (LSO), a restart with the same
  // transactional.id writes an abort marker for the killed instance's open transaction, and
  // offsets are committed with the transactions only. The wire reader proves the rest.
  const started = Date.now();
  const TOTAL = 2000;
  const PARTITIONS = 2;
  const groupId = uniqueName('eos-group');
  const transactionalId = uniqueName('eos-tx');
  const { input, output, end } = await pipelineTopics('eos', TOTAL, {
    inputPartitions: PARTITIONS,
    outputPartitions: PARTITIONS,
  });

  // Each tx.send waits for the record's acknowledgement (a few ms each), so a run of up to
  // 256 messages keeps its transaction open for over a second: a kill after a random number
  // of handled messages, plus a random delay, lands inside a transaction nearly always.
  const kills = [];
  for (let run = 1; run <= 2; run += 1) {
    const progress = path.join(workDir, `${groupId}-run${run}`);
    const pipeline = startPipeline({ input, output, groupId, transactionalId, progress });
    const threshold = 150 + Math.floor(Math.random() * 350);
    await eventually(() => linesIn(progress) >= threshold || pipeline.child.exitCode !== null, {
      timeoutMs: 40000,
      what: `run ${run} to handle ${threshold} messages`,
    });
    await sleep(Math.floor(Math.random() * 100));
    pipeline.child.kill('SIGKILL');
    const exit = await pipeline.exited;
    expect({ run, code: exit.code, signal: exit.signal }).toEqual({ run, code: null, signal: 'SIGKILL' });
    kills.push({ run, threshold, handledBeforeKill: linesIn(progress) });
  }

  // The last run goes on until the group's committed offsets reach the end of the input.
  const last = path.join(workDir, `${groupId}-run3`);
  const final = startPipeline({ input, output, groupId, transactionalId, progress: last });
  await eventually(
    async () => {
      if (final.child.exitCode !== null) throw new Error(`the last run exited early (${final.child.exitCode})`);
      return offsetsAtEnd(groupId, input, end);
    },
    {
      timeoutMs: 60000,
      intervalMs: 250,
      what: 'the committed offsets to reach the end of the input',
    },
  );
  final.child.kill('SIGTERM');
  const finalExit = await final.exited;
  expect({ code: finalExit.code, signal: finalExit.signal }).toEqual({ code: 0, signal: null });
  const finalStats = JSON.parse(finalExit.stdout.trim().split('\n').pop() ?? 'null');

  const { result, committed, aborted } = await outputs(output, PARTITIONS);
  const report = exactlyOnceReport(
    committed.map((record) => record.id),
    TOTAL,
  );
  /** @param {{ run: string }[]} records */
  const byRun = (records) =>
    records.reduce((counts, record) => ({ ...counts, [record.run]: (counts[record.run] ?? 0) + 1 }), {});
  console.log(
    JSON.stringify({
      total: TOTAL,
      kills,
      handledByLastRun: linesIn(last),
      finalStats: { processed: finalStats?.processed, retried: finalStats?.retried },
      committed: committed.length,
      committedByRun: byRun(committed),
      aborted: aborted.length,
      abortedByRun: byRun(aborted),
      open: result.open.length,
      markers: {
        commit: result.markers.filter((marker) => marker.type === 'commit').length,
        abort: result.markers.filter((marker) => marker.type === 'abort').length,
      },
      missing: report.missing.slice(0, 20),
      duplicated: report.duplicated.slice(0, 20),
      seconds: (Date.now() - started) / 1000,
    }),
  );

  // No loss, no duplicate among what read_committed readers see.
  expect(report).toEqual({ missing: [], duplicated: [], unexpected: [] });
  expect(committed).toHaveLength(TOTAL);
  // Every transaction ended: the killed ones were aborted by the restarts.
  expect(result.open).toEqual([]);
  // The kills landed inside transactions: the records those had sent were aborted (abort
  // markers written by Tansu when the next instance initialised the transactional id), and
  // their inputs were handled again, and committed, by a later run (the checks above).
  expect(aborted.length).toBeGreaterThan(0);
  expect(result.markers.some((marker) => marker.type === 'abort')).toBe(true);
  const killedRuns = new Set([`${groupId}-run1`, `${groupId}-run2`]);
  expect(aborted.some((record) => killedRuns.has(record.run))).toBe(true);
  // A killed run never committed more than it had handled when it was killed, and what it
  // handled without committing was aborted (at least that: a send still unacknowledged at the
  // kill may have reached the log too).
  for (const kill of kills) {
    const run = `${groupId}-run${kill.run}`;
    const committedByIt = committed.filter((record) => record.run === run).length;
    const abortedByIt = aborted.filter((record) => record.run === run).length;
    expect(committedByIt).toBeLessThanOrEqual(kill.handledBeforeKill);
    expect(abortedByIt).toBeGreaterThanOrEqual(kill.handledBeforeKill - committedByIt);
  }
  expect(Object.keys(end)).toHaveLength(PARTITIONS);
  expect(await committedOffsets(groupId, input)).toEqual(end);
});

// ------------------------------------------------------------------------------- retries and the dead-letter topic

/**
 * Registers an in-process exactly-once consumer of `input` whose callback sends one output
 * `{ id, attempt }` to `output` per message, then calls `fail(message)`.
 * @param {string} input
 * @param {string} output
 * @param {(message: any) => void} fail
 */
async function transformer(input, output, fail) {
  const groupId = uniqueName('eos-group');
  const handle = await registerConsumer(
    input,
    async (/** @type {any} */ message, /** @type {any} */ tx) => {
      const { id } = message.value;
      await tx.send({ topic: output, messages: [{ key: String(id), value: { id, attempt: message.attempt } }] });
      fail(message);
    },
    {
      groupId,
      brokers: brokers(),
      fromBeginning: true,
      sessionTimeoutMs: 6000,
      logLevel: 'off',
      config: { 'fetch.wait.max.ms': 50 },
      retry: { retries: 2, initialBackoffMs: 20 },
      exactlyOnce: { transactionalId: uniqueName('eos-tx') },
    },
  );
  handles.push(handle);
  return { handle, groupId };
}

test('a handler failing once succeeds on retry: the failed attempt is aborted, the retry commits each output once', async () => {
  // Tansu: abort and commit markers and transactional offset commits; the wire reader: what
  // read_committed readers of Kafka would see.
  const TOTAL = 30;
  const FLAKY = 12;
  const { input, output, end } = await pipelineTopics('eos-retry', TOTAL);
  const { handle, groupId } = await transformer(input, output, (message) => {
    if (message.value.id === FLAKY && message.attempt === 1) throw new Error('flaky downstream');
  });
  await eventually(() => handle.stats().processed >= TOTAL, { timeoutMs: 30000, what: 'every message processed' });
  await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 10000, what: 'offsets at the end' });
  const stats = handle.stats();
  await handle.close();

  const { result, committed, aborted } = await outputs(output);
  console.log(
    JSON.stringify({ stats, committed: committed.length, aborted: aborted.length, open: result.open.length }),
  );

  expect(
    exactlyOnceReport(
      committed.map((record) => record.id),
      TOTAL,
    ),
  ).toEqual({ missing: [], duplicated: [], unexpected: [] });
  expect(committed.find((record) => record.id === FLAKY)).toEqual({ id: FLAKY, attempt: 2 });
  // The failed attempt's output was sent, then aborted with its transaction.
  expect(aborted).toContainEqual({ id: FLAKY, attempt: 1 });
  expect(aborted.every((record) => record.attempt === 1)).toBe(true);
  expect(result.open).toEqual([]);
  expect(stats).toMatchObject({ processed: TOTAL, retried: 1, deadLettered: 0, skipped: 0 });
});

test('a poison message is parked in the dead-letter topic with its offset, an invalid one too; the others have exactly one committed output', async () => {
  // Tansu: markers and transactional offset commits; the wire reader classifies the outputs.
  // The dead-letter records carry eight x-dlq-* headers, so lz4 does shrink them and the
  // transactional producer (lz4 by default, and it takes no `config` of its own here) writes
  // them compressed, which the wire reader refuses: they are read with kafkajs instead, which
  // on Tansu sees committed AND aborted records (only open ones are hidden). Hence the
  // invalid message is written only after the poison was parked, so that no transaction
  // that writes a dead-letter record can be aborted by a failing handler, and exactly one
  // copy of each is expected. That each one committed follows from the group's offsets
  // (committed in the same transactions) reaching the end without a second copy appearing.
  const POISON = 7;
  // Offsets 0-9: ids 0-9, the poison at offset 7.
  const { input, output, end } = await pipelineTopics('eos-dlq', 10, { deadLetters: true });
  const deadLetters = `${input}.dlq`;
  const { handle, groupId } = await transformer(input, output, (message) => {
    if (message.value.id === POISON) throw new Error(`poison ${POISON}`);
  });
  await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 30000, what: 'offsets past the poison' });
  const afterPoison = handle.stats();
  // Offset 10: not JSON; offset 11: id 10.
  await append(end, input, ['not json {', { id: 10 }]);
  await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 30000, what: 'offsets at the end' });
  const stats = handle.stats();
  await handle.close();

  const { result, committed, aborted } = await outputs(output);
  // A plain record after everything the consumer wrote: reading up to it reads all of that.
  await producer.send({ topic: deadLetters, messages: [{ value: 'end of test' }] });
  const read = await readTopic(deadLetters, (messages) => messages.some((m) => m.value?.toString() === 'end of test'));
  const parked = read
    .filter((message) => message.value?.toString() !== 'end of test')
    .map((message) => ({
      value: message.value?.toString(),
      headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([key, value]) => [key, String(value)])),
    }));
  console.log(
    JSON.stringify({ afterPoison, stats, committed: committed.length, aborted: aborted.length, parked: parked.length }),
  );

  // Ids 0-10 but the poison: each exactly once among the committed outputs.
  expect(
    exactlyOnceReport(
      committed.map((record) => record.id),
      11,
    ),
  ).toEqual({ missing: [POISON], duplicated: [], unexpected: [] });
  // Each of its three attempts sent an output, aborted with its transaction.
  expect(aborted.filter((record) => record.id === POISON).map((record) => record.attempt)).toEqual([1, 2, 3]);
  expect(result.open).toEqual([]);
  expect(afterPoison).toMatchObject({ processed: 9, retried: 2, deadLettered: 1, skipped: 0 });

  // The dead-letter topic holds one copy of the poison message, then one of the invalid one.
  expect(parked).toHaveLength(2);
  const [poison, invalid] = parked;
  expect(JSON.parse(poison.value ?? 'null')).toEqual({ id: POISON });
  expect(poison.headers).toMatchObject({
    'x-dlq-error-code': 'ERR_HANDLER_FAILED',
    'x-dlq-original-topic': input,
    'x-dlq-original-partition': '0',
    'x-dlq-original-offset': '7',
    'x-dlq-consumer-group': groupId,
    'x-dlq-attempts': '3',
  });
  expect(poison.headers['x-dlq-error-message']).toContain(`poison ${POISON}`);
  expect(invalid.value).toBe('not json {');
  expect(invalid.headers).toMatchObject({
    'x-dlq-error-code': 'ERR_INVALID_JSON',
    'x-dlq-original-topic': input,
    'x-dlq-original-partition': '0',
    'x-dlq-original-offset': '10',
    'x-dlq-consumer-group': groupId,
  });
  expect(stats).toMatchObject({ processed: 10, retried: 2, deadLettered: 2, skipped: 0 });
});

// ------------------------------------------------------------------------------- configuration

test('exactlyOnce refuses concurrency above 1 (ERR_INVALID_CONFIG) and a missing transactionalId (ERR_INVALID_ARG)', async () => {
  const options = {
    brokers: brokers(),
    groupId: uniqueName('eos-config'),
    sessionTimeoutMs: 6000,
    joinTimeoutMs: 15000,
    logLevel: /** @type {const} */ ('off'),
    config: { 'fetch.wait.max.ms': 50 },
  };
  const topic = uniqueName('eos-config');
  await producer.ensureTopics([{ name: topic, partitions: 1 }]);
  /** @param {any} extra */
  const attempt = async (extra) => {
    try {
      const handle = await registerConsumer(topic, async () => {}, { ...options, ...extra });
      handles.push(handle);
      return 'resolved';
    } catch (error) {
      return isError(error) ? { code: /** @type {any} */ (error).code, message: error.message } : error;
    }
  };
  const concurrent = await attempt({ concurrency: 2, exactlyOnce: { transactionalId: uniqueName('eos-tx') } });
  expect(concurrent).toMatchObject({ code: 'ERR_INVALID_CONFIG', message: expect.stringContaining('concurrency') });
  const anonymous = await attempt({ exactlyOnce: {} });
  expect(anonymous).toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('transactionalId') });
});

test('sends the callback does not await: each output is committed once, and a send that fails as it is handed over fails the run, which is retried (no unhandled rejection)', async () => {
  // Tansu and the wire reader, as above. `exactlyOnce.config` turns compression off on the
  // consumer's producer, so the outputs stay readable by the wire reader however librdkafka batches them.
  const TOTAL = 40;
  const FLAKY = 17;
  const { input, output, end } = await pipelineTopics('eos-unawaited', TOTAL);
  /** @type {unknown[]} */
  const unhandled = [];
  const onUnhandled = (/** @type {unknown} */ reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const groupId = uniqueName('eos-unawaited-group');
  try {
    const handle = await registerConsumer(
      input,
      (/** @type {any} */ message, /** @type {any} */ tx) => {
        const { id } = message.value;
        // Not awaited: the transaction's commit waits for every send.
        tx.send({ topic: output, messages: [{ key: String(id), value: { id, attempt: message.attempt } }] });
        // A topic name Kafka refuses: the send fails as it is handed over, on the first attempt only.
        if (id === FLAKY && message.attempt === 1) tx.send({ topic: 'not a topic!', messages: [{ value: 'x' }] });
      },
      {
        groupId,
        brokers: brokers(),
        fromBeginning: true,
        sessionTimeoutMs: 6000,
        logLevel: 'off',
        config: { 'fetch.wait.max.ms': 50 },
        retry: { retries: 2, initialBackoffMs: 20 },
        exactlyOnce: { transactionalId: uniqueName('eos-tx'), config: { 'compression.type': 'none' } },
      },
    );
    handles.push(handle);
    await eventually(() => handle.stats().processed >= TOTAL, { timeoutMs: 30000, what: 'every message processed' });
    await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 10000, what: 'offsets at the end' });
    const stats = handle.stats();
    await handle.close();
    await new Promise((resolve) => setImmediate(resolve));

    const { result, committed, aborted } = await outputs(output);
    expect(
      exactlyOnceReport(
        committed.map((record) => record.id),
        TOTAL,
      ),
    ).toEqual({ missing: [], duplicated: [], unexpected: [] });
    // The run with the failed send was aborted whole and committed on its second attempt.
    // (Its first outputs may never reach the broker: an abort purges what librdkafka still
    // holds, so they show up as aborted records at most.)
    expect(committed.find((record) => record.id === FLAKY)).toEqual({ id: FLAKY, attempt: 2 });
    expect(aborted.every((record) => record.attempt === 1)).toBe(true);
    expect(result.open).toEqual([]);
    expect(stats).toMatchObject({ processed: TOTAL, retried: 1, deadLettered: 0, skipped: 0 });
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a second instance joining mid-stream takes partitions over: every input still has exactly one committed output, and nothing stalls', async () => {
  // Tansu: group rebalances with transactional offset commits; the wire reader, as above.
  // Each instance has its own transactionalId (as instances running side by side must).
  const TOTAL = 400;
  const { input, output, end } = await pipelineTopics('eos-rebalance', TOTAL, { inputPartitions: 4 });
  const groupId = uniqueName('eos-rebalance-group');
  const start = (/** @type {string} */ name) =>
    registerConsumer(
      input,
      async (/** @type {any} */ message, /** @type {any} */ tx) => {
        const { id } = message.value;
        // Slow enough that the input outlasts the second instance's join.
        await new Promise((resolve) => setTimeout(resolve, 15));
        await tx.send({ topic: output, messages: [{ key: String(id), value: { id, by: name } }] });
      },
      {
        groupId,
        clientId: `${groupId}-${name}`,
        // A small prefetch: a revoke drains what was received, which would otherwise be all of it.
        maxInFlight: 20,
        brokers: brokers(),
        fromBeginning: true,
        sessionTimeoutMs: 6000,
        logLevel: 'off',
        config: { 'fetch.wait.max.ms': 50 },
        exactlyOnce: { transactionalId: `${groupId}-${name}`, config: { 'compression.type': 'none' } },
      },
    );
  const first = await start('a');
  handles.push(first);
  await eventually(() => first.stats().processed >= 40, { timeoutMs: 20000, what: 'the first instance under way' });
  const second = await start('b');
  handles.push(second);
  await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 60000, what: 'offsets at the end' });
  const assigned = { a: first.assignment().length, b: second.assignment().length };
  await second.close();
  await first.close();

  const { result, committed } = await outputs(output);
  expect(
    exactlyOnceReport(
      committed.map((record) => record.id),
      TOTAL,
    ),
  ).toEqual({ missing: [], duplicated: [], unexpected: [] });
  expect(result.open).toEqual([]);
  // Both took part: the partitions were split between them.
  expect(assigned.a).toBeGreaterThan(0);
  expect(assigned.b).toBeGreaterThan(0);
  expect(new Set(committed.map((record) => record.by))).toEqual(new Set(['a', 'b']));
});

test('a poison message last in its partition: the messages before it and its parking commit in order, so the offsets end past it', async () => {
  // Tansu: transactional offset commits; the wire reader, as above. Were the messages before
  // the poison committed after its parking, the group's offset would go back to the poison
  // and it would be parked again after a restart.
  const TOTAL = 6;
  const POISON = TOTAL - 1;
  const { input, output, end } = await pipelineTopics('eos-last', TOTAL, { deadLetters: true });
  const { handle, groupId } = await transformer(input, output, (message) => {
    if (message.value.id === POISON) throw new Error('poison');
  });
  await eventually(() => handle.stats().deadLettered === 1, { timeoutMs: 30000, what: 'the poison parked' });
  await eventually(() => offsetsAtEnd(groupId, input, end), { timeoutMs: 10000, what: 'offsets past the poison' });
  // And they stay there (nothing commits an older offset afterwards).
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await committedOffsets(groupId, input)).toEqual(end);
  const stats = handle.stats();
  await handle.close();
  const committed = (await outputs(output)).committed.map((record) => record.id);
  expect(committed.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
  expect(stats).toMatchObject({ processed: POISON, deadLettered: 1 });
});
