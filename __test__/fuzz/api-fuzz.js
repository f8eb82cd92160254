// Property-based fuzzing of every exported function and option with hostile values (wrong
// types, NaN, huge strings, circular objects, BigInt, symbols, throwing getters and proxies).
// Run in a process of its own by fuzz.test.js, so that a native crash is reported rather than
// taking jest down. Each call must return, or throw or reject with an `Error` carrying a string
// `code` (`ERR_*`); anything else is recorded. The last stdout line is a JSON summary.
'use strict';
const fc = require('fast-check');
const { KafkaProducer, registerConsumer, topics } = require('../../index');

const RUNS = Number(process.env.FUZZ_RUNS || 2500);
const SEED = Number(process.env.FUZZ_SEED || Date.now() % 2 ** 31);

/** Calls whose outcome broke the contract: [what, description]. */
const violations = [];
/** Promises still to settle; checked once the clients are closed. */
const pending = [];
/** registerConsumer calls with valid arguments stay pending while they try to join. */
const joining = [];
let calls = 0;

function describe(value) {
  try {
    if (value instanceof Error)
      return `${value.constructor.name}(${JSON.stringify(value.message)}) code=${String(/** @type {any} */ (value).code)}`;
    return `${typeof value}: ${String(value).slice(0, 200)}`;
  } catch {
    return typeof value;
  }
}

function checkFailure(what, error) {
  const ok =
    error instanceof Error &&
    typeof (/** @type {any} */ (error).code) === 'string' &&
    /** @type {any} */ (error).code.startsWith('ERR_');
  if (!ok && violations.length < 50) violations.push([what, describe(error)]);
}

/**
 * Runs `call`: a rejection (or, for the constructor and `topics`, a throw) must be a coded
 * Error; functions returning promises must not throw synchronously.
 */
function exercise(what, call, { returnsPromise = true, into = pending } = {}) {
  calls++;
  let result;
  try {
    result = call();
  } catch (error) {
    if (returnsPromise && violations.length < 50) violations.push([what, `threw synchronously: ${describe(error)}`]);
    else checkFailure(what, error);
    return;
  }
  if (returnsPromise && !(result instanceof Promise)) {
    if (violations.length < 50) violations.push([what, `returned ${describe(result)} instead of a promise`]);
    return;
  }
  if (returnsPromise)
    into.push(
      result.then(
        () => undefined,
        (error) => checkFailure(what, error),
      ),
    );
}

function circular() {
  const value = { a: 1 };
  value.self = value;
  value.list = [value];
  return value;
}

function throwingGetters() {
  const value = {};
  for (const key of [
    'topic',
    'messages',
    'value',
    'key',
    'headers',
    'brokers',
    'groupId',
    'batch',
    'retry',
    'config',
  ]) {
    Object.defineProperty(value, key, {
      enumerable: true,
      get() {
        throw new Error(`getter ${key} throws`);
      },
    });
  }
  return value;
}

function hostileProxy() {
  const trap = () => {
    throw new Error('proxy trap throws');
  };
  return new Proxy({}, { get: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap });
}

const huge = 'x'.repeat(2 * 1024 * 1024);
const strange = fc.constantFrom(
  undefined,
  null,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -0,
  2 ** 53 + 2,
  -1,
  1.5,
  10n ** 30n,
  '',
  ' ',
  huge,
  '\u0000',
  '\ud800',
  'movie-events',
  Symbol('s'),
  () => 1,
  [],
  [[]],
  {},
  Object.create(null),
  new Date(Number.NaN),
  new Map([[1, 2]]),
  Buffer.alloc(0),
  Buffer.from([0xff, 0xfe]),
  new Uint8Array(3),
);
/** Stands for a throwing proxy until `materialize` (fast-check itself reads generated values). */
const PROXY = Object.freeze({ stand_in: 'hostile proxy' });
const hostileObject = fc
  .constantFrom('circular', 'getters', 'proxy')
  .map((kind) => (kind === 'circular' ? circular() : kind === 'getters' ? throwingGetters() : PROXY));

/** The generated value with every stand-in replaced by a throwing proxy. */
function materialize(value, depth = 0) {
  if (value === PROXY) return hostileProxy();
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => materialize(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const descriptors = Object.getOwnPropertyDescriptors(value);
  if (Object.values(descriptors).some((descriptor) => descriptor.get)) return value;
  const copy = {};
  for (const [key, item] of Object.entries(value)) copy[key] = item === value ? copy : materialize(item, depth + 1);
  return copy;
}
const anyValue = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.anything({
      withBigInt: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withNullPrototype: true,
      withBoxedValues: true,
      withSparseArray: true,
      maxDepth: 3,
    }),
  },
  { weight: 2, arbitrary: strange },
  { weight: 1, arbitrary: hostileObject },
);
/** Objects shaped like the API's, with any values in the known keys (and some unknown keys). */
function shaped(keys) {
  return fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 6 })), anyValue, { maxKeys: 5 });
}
const messageLike = shaped(['value', 'key', 'headers', 'partition', 'timestamp']);
const recordLike = fc.record(
  { topic: anyValue, messages: fc.oneof(fc.array(messageLike, { maxLength: 4 }), anyValue) },
  { requiredKeys: [] },
);
const producerOptions = shaped([
  'brokers',
  'clientId',
  'logLevel',
  'logger',
  'config',
  'enqueueTimeoutMs',
  'retryIntervalMs',
  'topicPrefix',
]);
const consumerOptions = shaped([
  'groupId',
  'clientId',
  'brokers',
  'fromBeginning',
  'schema',
  'concurrency',
  'batch',
  'retry',
  'deadLetterTopic',
  'maxInFlight',
  'sessionTimeoutMs',
  'drainTimeoutMs',
  'joinTimeoutMs',
  'logLevel',
  'logger',
  'config',
]);

/** Plain option objects get a 1 ms join timeout, so valid ones settle quickly. */
function withShortJoin(options) {
  try {
    if (
      options !== null &&
      typeof options === 'object' &&
      !Array.isArray(options) &&
      Object.getPrototypeOf(options) === Object.prototype
    ) {
      return { ...options, joinTimeoutMs: 1 };
    }
  } catch {
    // A hostile object: passed as it is.
  }
  return options;
}

async function main() {
  // Unreachable: accepted sends wait in the queue and are purged by disconnect(0).
  const brokers = '127.0.0.1:1';
  const producer = new KafkaProducer({ brokers, logLevel: 'off' });
  const created = [];
  const params = { numRuns: RUNS, seed: SEED };

  fc.assert(
    fc.property(fc.oneof(producerOptions, anyValue), (options) => {
      exercise(
        'new KafkaProducer',
        () => {
          // Valid options create a client (KAFKA_BROKERS is unreachable); closed at the end.
          created.push(new KafkaProducer(materialize(options)));
        },
        { returnsPromise: false },
      );
    }),
    params,
  );
  fc.assert(
    fc.property(fc.oneof(recordLike, anyValue), (record) => {
      exercise('send', () => producer.send(materialize(record)));
    }),
    params,
  );
  fc.assert(
    fc.property(
      fc.oneof(fc.record({ topicMessages: fc.oneof(fc.array(recordLike, { maxLength: 3 }), anyValue) }), anyValue),
      (batch) => {
        exercise('sendBatch', () => producer.sendBatch(materialize(batch)));
      },
    ),
    params,
  );
  fc.assert(
    fc.property(anyValue, anyValue, fc.oneof(messageLike, anyValue), (topic, payload, options) => {
      exercise('sendMessage', () =>
        producer.sendMessage(materialize(topic), materialize(payload), materialize(options)),
      );
    }),
    params,
  );
  fc.assert(
    fc.property(anyValue, anyValue, anyValue, anyValue, (eventType, userId, movieId, metadata) => {
      exercise('sendMovieEvent', () =>
        producer.sendMovieEvent(
          materialize(eventType),
          materialize(userId),
          materialize(movieId),
          materialize(metadata),
        ),
      );
      exercise('sendMovieViewEvent', () => producer.sendMovieViewEvent(materialize(userId), materialize(movieId)));
    }),
    params,
  );
  fc.assert(
    fc.property(
      fc.oneof(fc.array(shaped(['name', 'partitions', 'replicationFactor', 'config']), { maxLength: 3 }), anyValue),
      anyValue,
      (specs, options) => {
        exercise('ensureTopics', () => producer.ensureTopics(materialize(specs), materialize(options)));
      },
    ),
    { ...params, numRuns: Math.ceil(RUNS / 5) },
  );
  fc.assert(
    fc.property(anyValue, (value) => {
      exercise('flush', () => producer.flush(materialize(value)));
      exercise('connect', () => producer.connect(materialize(value)));
      exercise('topics', () => /** @type {any} */ (topics)(materialize(value)), { returnsPromise: false });
    }),
    { ...params, numRuns: Math.ceil(RUNS / 5) },
  );
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 10 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), anyValue),
      fc.oneof(
        fc.constant(() => undefined),
        anyValue,
      ),
      fc.oneof(consumerOptions, anyValue),
      (topic, callback, options) => {
        // Valid arguments start joining an unreachable cluster: the promise stays pending
        // (it is not awaited); the process exits when the checks are done.
        exercise(
          'registerConsumer',
          () => registerConsumer(materialize(topic), materialize(callback), withShortJoin(materialize(options))),
          { into: joining },
        );
      },
    ),
    { ...params, numRuns: Math.ceil(RUNS / 2) },
  );

  // Let the quick rejections arrive, then purge the queues so every send settles.
  await new Promise((resolve) => setTimeout(resolve, 200));
  exercise('disconnect', () => producer.disconnect(0));
  for (const client of created) exercise('disconnect (fuzzed client)', () => client.disconnect(0));
  const within = (promises, ms) =>
    Promise.race([
      Promise.all(promises).then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), ms)),
    ]);
  const settled = await within(pending, 60_000);
  // Joins with the default timeout are still trying: valid arguments, nothing to check.
  await within(joining, 2_000);
  process.stdout.write(`${JSON.stringify({ seed: SEED, calls, settled, violations })}\n`);
  process.exit(0);
}

main().catch((error) => {
  process.stdout.write(
    `${JSON.stringify({ seed: SEED, calls, settled: false, violations: [['harness', describe(error)]] })}\n`,
  );
  process.exit(0);
});
