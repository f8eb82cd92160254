// Issue #6, scenario 3: a consumer process killed mid-stream and restarted in the same group.
// SIGKILL: nothing is lost, and what comes back twice is bounded by maxInFlight (messages
// being handled plus handled ones whose commit was not yet acknowledged). SIGTERM: the
// application closes the consumer, which drains and commits: nothing comes back.
// Real broker (Tansu, KAFKA_BROKERS); each consumer runs in its own Node process, which
// records every id it handles with a synchronous append, so the record survives the kill.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { KafkaProducer } = require('../index');
const { brokers, uniqueName } = require('./helpers');

jest.setTimeout(180000);

const ROOT = path.join(__dirname, '..');
const TOTAL = 20_000;
const MAX_IN_FLIGHT = 200;
/** Handled ids after which the first process is stopped: well inside the stream. */
const STOP_AFTER = 6_000;

/** @type {KafkaProducer} */
let producer;
/** @type {string} */
let workDir;
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];

beforeAll(async () => {
  producer = new KafkaProducer({ brokers: brokers(), clientId: 'crash-test-producer', logLevel: 'warn' });
  await producer.connect({ timeoutMs: 20000 });
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-napi-crash-'));
});

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

afterAll(async () => {
  await producer.disconnect();
  fs.rmSync(workDir, { recursive: true, force: true });
});

async function topicOfUniqueIds() {
  const topic = uniqueName('crash');
  await producer.ensureTopics([{ name: topic, partitions: 4 }]);
  for (let start = 0; start < TOTAL; start += 1000) {
    const messages = Array.from({ length: 1000 }, (_, i) => ({
      key: `movie-${(start + i) % 200}`,
      value: { id: start + i, movieId: `movie-${(start + i) % 200}` },
    }));
    await producer.send({ topic, messages });
  }
  return topic;
}

/**
 * Starts a consumer process that appends each handled id to `record`. It closes the
 * consumer and exits 0 on SIGTERM, and by itself once every id of the topic has been
 * handled, by it or by the process before it (whose ids are in `earlier`).
 */
function startConsumer(topic, groupId, record, earlier = []) {
  const script = `
    const fs = require('node:fs');
    const { registerConsumer } = require('./index');
    const record = fs.openSync(${JSON.stringify(record)}, 'a');
    const seen = new Set(${JSON.stringify(earlier)});
    let consumer;
    let closing = false;
    async function close() {
      if (closing) return;
      closing = true;
      await consumer.close();
      process.exit(0);
    }
    process.on('SIGTERM', () => { close(); });
    registerConsumer(${JSON.stringify(topic)}, async (message) => {
      // A little asynchronous work per message, as a real handler has.
      await new Promise((resolve) => setImmediate(resolve));
      fs.writeSync(record, message.value.id + '\\n');
      seen.add(message.value.id);
      if (seen.size >= ${TOTAL}) close();
    }, {
      brokers: ${JSON.stringify(brokers())}, groupId: ${JSON.stringify(groupId)},
      fromBeginning: true, sessionTimeoutMs: 6000, joinTimeoutMs: 60000,
      maxInFlight: ${MAX_IN_FLIGHT}, concurrency: 16, logLevel: 'warn',
      config: { 'fetch.wait.max.ms': 50 },
    }).then((handle) => { consumer = handle; if (closing) { closing = false; close(); } });
  `;
  const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited };
}

function idsIn(record) {
  if (!fs.existsSync(record)) return [];
  return fs
    .readFileSync(record, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

async function waitForIds(record, count, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (idsIn(record).length < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} ids handled within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs the first process until STOP_AFTER ids, stops it with `signal`, restarts, counts. */
async function stopAndRestart(signal) {
  const topic = await topicOfUniqueIds();
  const groupId = uniqueName(`crash-${signal}`);
  const before = path.join(workDir, `${groupId}-1.txt`);
  const after = path.join(workDir, `${groupId}-2.txt`);

  const first = startConsumer(topic, groupId, before);
  await waitForIds(before, STOP_AFTER);
  first.child.kill(signal);
  const firstExit = await first.exited;

  const handledBefore = idsIn(before);
  const second = startConsumer(topic, groupId, after, [...new Set(handledBefore)]);
  const secondExit = await Promise.race([
    second.exited,
    new Promise((resolve) => setTimeout(() => resolve({ code: 'timeout' }), 120000)),
  ]);

  const all = [...handledBefore, ...idsIn(after)];
  const unique = new Set(all);
  const counts = {
    signal,
    produced: TOTAL,
    handledBeforeStop: handledBefore.length,
    handledAfterRestart: all.length - handledBefore.length,
    unique: unique.size,
    lost: TOTAL - unique.size,
    duplicated: all.length - unique.size,
    maxInFlight: MAX_IN_FLIGHT,
  };
  console.log(JSON.stringify(counts));
  return { counts, firstExit, secondExit, unique };
}

test('SIGKILL mid-stream, then restart: nothing lost, duplicates within maxInFlight', async () => {
  const { counts, firstExit, secondExit, unique } = await stopAndRestart('SIGKILL');
  expect(firstExit).toEqual({ code: null, signal: 'SIGKILL' });
  expect(secondExit).toEqual({ code: 0, signal: null });
  expect(counts.lost).toBe(0);
  expect([...unique].every((id) => Number.isInteger(id) && id >= 0 && id < TOTAL)).toBe(true);
  expect(counts.duplicated).toBeLessThanOrEqual(MAX_IN_FLIGHT);
});

test('SIGTERM mid-stream (the app closes the consumer), then restart: nothing lost, nothing redelivered', async () => {
  const { counts, firstExit, secondExit } = await stopAndRestart('SIGTERM');
  // It drained and exited by itself, well before the whole topic was handled.
  expect(firstExit).toEqual({ code: 0, signal: null });
  expect(counts.handledBeforeStop).toBeLessThan(TOTAL);
  expect(secondExit).toEqual({ code: 0, signal: null });
  expect(counts.lost).toBe(0);
  expect(counts.duplicated).toBe(0);
});
