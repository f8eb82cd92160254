// What transactions cost, measured on the broker in KAFKA_BROKERS (npm run
// bench:transactions starts a local Tansu): produce throughput without and
// with transactions of several sizes, and consume-transform-produce
// at-least-once (a plain producer) against exactly-once (the consumer's
// transactions). Writes bench/results/transactions.json and prints a table.
//
//   node bench/transactions.mjs [--messages 20000] [--repetitions 3]
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { KafkaProducer, registerConsumer } = require('../index.js');

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    repetitions: { type: 'string', default: '3' },
  },
});
const MESSAGES = Number(args.messages);
const MESSAGES_IN_BATCHES = MESSAGES;
const REPETITIONS = Number(args.repetitions);
const brokers = process.env.KAFKA_BROKERS;
if (!brokers) throw new Error('KAFKA_BROKERS is not set: run `npm run bench:transactions`');
const PAYLOAD = JSON.stringify({ eventType: 'PLAY', userId: 'u', movieId: 'm', pad: 'x'.repeat(940) });
const quiet = { logLevel: /** @type {const} */ ('warn') };
let run = 0;
const unique = (name) => `${name}-${process.pid}-${++run}`;

async function topics(producer, names) {
  await producer.ensureTopics(names.map((name) => ({ name, partitions: 4 })));
}

/** Messages per second for sending MESSAGES in transactions of `perTransaction` (0: none). */
async function produce(perTransaction) {
  const topic = unique('txbench-produce');
  const options = perTransaction > 0 ? { transactionalId: unique('txbench') } : {};
  const producer = new KafkaProducer({ brokers, ...quiet, ...options });
  await topics(producer, [topic]);
  const message = (i) => ({ key: `movie-${i % 100}`, value: PAYLOAD });
  const started = performance.now();
  if (perTransaction === 0) {
    const sends = [];
    for (let i = 0; i < MESSAGES; i++) sends.push(producer.send({ topic, messages: [message(i)] }));
    await Promise.all(sends);
  } else {
    for (let first = 0; first < MESSAGES; first += perTransaction) {
      await producer.transaction(async (tx) => {
        const sends = [];
        for (let i = first; i < Math.min(first + perTransaction, MESSAGES); i++) {
          sends.push(tx.send({ topic, messages: [message(i)] }));
        }
        await Promise.all(sends);
      });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await producer.disconnect();
  return MESSAGES / seconds;
}

/**
 * Messages per second for reading MESSAGES and writing one output each, in
 * batches of 500 (each batch's sends awaited together) or, with `perMessage`,
 * one message at a time (each send awaited before the next message, unless
 * `unawaited`: exactly-once only, where the transaction's commit waits for them).
 */
async function transform(exactlyOnce, perMessage, unawaited = false) {
  // One awaited send per message is bound by the acknowledgement's round trip: fewer suffice.
  const MESSAGES = perMessage && !unawaited ? Math.min(2000, MESSAGES_IN_BATCHES) : MESSAGES_IN_BATCHES;
  const input = unique('txbench-in');
  const output = `${input}-out`;
  const seed = new KafkaProducer({ brokers, ...quiet });
  await topics(seed, [input, output]);
  const sends = [];
  for (let i = 0; i < MESSAGES; i++) {
    sends.push(seed.send({ topic: input, messages: [{ key: `movie-${i % 100}`, value: PAYLOAD }] }));
  }
  await Promise.all(sends);
  const plain = exactlyOnce ? null : new KafkaProducer({ brokers, ...quiet });
  let handled = 0;
  let done;
  const finished = new Promise((resolve) => {
    done = resolve;
  });
  // From the first message on: the group join (seconds on Tansu) is not the cost measured.
  let started = 0;
  const send = (tx, message) => {
    started ||= performance.now();
    const out = { topic: output, messages: [{ key: message.key, value: message.value }] };
    return exactlyOnce || plain === null ? tx.send(out) : plain.send(out);
  };
  const handle = perMessage
    ? async (message, tx) => {
        const sent = send(tx, message);
        if (!unawaited) await sent;
        if (++handled === MESSAGES) done();
      }
    : async (messages, tx) => {
        await Promise.all(messages.map((message) => send(tx, message)));
        handled += messages.length;
        if (handled === MESSAGES) done();
      };
  const consumer = await registerConsumer(input, handle, {
    ...(perMessage ? {} : { batch: { maxMessages: 500, maxWaitMs: 20 } }),
    brokers,
    ...quiet,
    groupId: unique('txbench-group'),
    fromBeginning: true,
    schema: 'raw',
    sessionTimeoutMs: 6000,
    config: { 'fetch.wait.max.ms': 50 },
    ...(exactlyOnce ? { exactlyOnce: { transactionalId: unique('txbench-eos') } } : {}),
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await consumer.close();
  await plain?.disconnect();
  await seed.disconnect();
  return MESSAGES / seconds;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
/** @type {[string, () => Promise<number>][]} */
const cases = [
  ['produce, no transaction', () => produce(0)],
  ['produce, 1000 per transaction', () => produce(1000)],
  ['produce, 100 per transaction', () => produce(100)],
  ['produce, 10 per transaction', () => produce(10)],
  ['consume-transform-produce, at-least-once, batches of 500', () => transform(false, false)],
  ['consume-transform-produce, exactly-once, batches of 500', () => transform(true, false)],
  ['consume-transform-produce, at-least-once, per message', () => transform(false, true)],
  ['consume-transform-produce, exactly-once, per message', () => transform(true, true)],
  ['consume-transform-produce, exactly-once, per message, sends not awaited', () => transform(true, true, true)],
];
const results = [];
for (const [name, measure] of cases) {
  const samples = [];
  for (let r = 0; r < REPETITIONS; r++) samples.push(await measure());
  results.push({ name, median: median(samples), samples });
  console.error(`${name}: ${Math.round(median(samples))} msg/s (${samples.map(Math.round).join(', ')})`);
}
const baseline = (prefix) => results.find((result) => result.name.startsWith(prefix)).median;
const lines = ['| case | msg/s (median) | × without transactions |', '| --- | --- | --- |'];
for (const result of results) {
  const mode = result.name.includes('per message') ? 'per message' : 'batches of 500';
  const base = result.name.startsWith('produce')
    ? baseline('produce, no')
    : baseline(`consume-transform-produce, at-least-once, ${mode}`);
  lines.push(`| ${result.name} | ${Math.round(result.median)} | ${(result.median / base).toFixed(2)} |`);
}
console.log(lines.join('\n'));
writeFileSync(
  new URL('./results/transactions.json', import.meta.url),
  `${JSON.stringify({ date: new Date().toISOString(), messages: MESSAGES, payloadBytes: PAYLOAD.length, results }, null, 2)}\n`,
);
