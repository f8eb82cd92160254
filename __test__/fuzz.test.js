// Fuzzed API input: every exported function and option, with wrong types, NaN, huge strings,
// circular objects, BigInt, symbols and throwing getters and proxies (fast-check). The fuzzing
// runs in a child process (fuzz/api-fuzz.js) so a native crash fails this test with its
// signal instead of taking jest down.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { KafkaProducer } = require('../index');

jest.setTimeout(180000);

test('10k+ fuzzed calls: each returns, or fails with a coded Error; none crashes or throws where a promise is due', () => {
  const child = spawnSync(process.execPath, [path.join(__dirname, 'fuzz', 'api-fuzz.js')], {
    // Unreachable: valid calls queue or try to join, and are purged or time out.
    env: {
      PATH: process.env.PATH,
      KAFKA_BROKERS: '127.0.0.1:1',
      FUZZ_RUNS: '1500',
      ...(process.env.FUZZ_SEED ? { FUZZ_SEED: process.env.FUZZ_SEED } : {}),
    },
    encoding: 'utf8',
    timeout: 150000,
    maxBuffer: 64 * 1024 * 1024,
  });
  expect({ status: child.status, signal: child.signal, error: child.error?.message }).toEqual({
    status: 0,
    signal: null,
    error: undefined,
  });
  const summary = JSON.parse(child.stdout.trim().split('\n').pop() ?? 'null');
  // The seed replays a failing run: FUZZ_SEED=<seed> npx jest __test__/fuzz.test.js
  expect({ seed: summary.seed, violations: summary.violations }).toEqual({ seed: summary.seed, violations: [] });
  expect(summary.settled).toBe(true);
  expect(summary.calls).toBeGreaterThanOrEqual(10000);
});

test('an argument whose getter or proxy trap throws is reported with a code, quoting what it threw', async () => {
  const producer = new KafkaProducer({ brokers: '127.0.0.1:1', logLevel: 'off' });
  const throwing = {};
  Object.defineProperty(throwing, 'topic', {
    enumerable: true,
    get() {
      throw new Error('getter says no');
    },
  });
  await expect(producer.send(/** @type {any} */ (throwing))).rejects.toMatchObject({
    code: 'ERR_INVALID_ARG',
    message: expect.stringContaining('record.topic could not be read (reading it threw: getter says no)'),
  });
  const trap = new Proxy(
    {},
    {
      ownKeys() {
        throw new RangeError('no keys for you');
      },
    },
  );
  expect(() => new KafkaProducer(trap)).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('no keys for you') }),
  );
  // The pending exception was cleared: the producer still works normally.
  await expect(producer.sendMessage('', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
  await producer.disconnect(0);
});
