// Soak (issue #6, scenario 7): a long stream through one producer and one consumer in this
// process, with RSS sampled, to show that memory does not grow with the number of events
// and that nothing is lost or doubled. A script, not a CI test: `npm run soak`
// (scripts/soak.sh starts the broker), `npm run soak -- --events 200000 --quiet`.

import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { KafkaProducer, registerConsumer } = require('../index.js');
const cliProgress = require('cli-progress');

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '4' },
    window: { type: 'string', default: '2000' },
    out: { type: 'string', default: join(here, 'results') },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`usage: node bench/soak.mjs [--events N] [--partitions P] [--window W] [--out DIR] [--quiet]
  Produces N keyed MovieViewEvent-like JSON events (W unacknowledged at most) while one consumer
  (concurrency 8) reads them, samples RSS every 500 ms, checks every id arrived exactly once,
  and writes DIR/soak.json. Needs KAFKA_BROKERS (npm run soak starts a broker).`);
  process.exit(0);
}
const total = Number(args.events);
const window = Number(args.window);
const brokers = process.env.KAFKA_BROKERS;
if (!brokers) throw new Error('KAFKA_BROKERS is not set: run `npm run soak`, which starts a broker');
if (!Number.isInteger(total) || total < 1000) throw new Error('--events must be an integer ≥ 1000');

const mb = (bytes) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const samples = [];
const started = Date.now();
let handled = 0;
const sample = (phase) =>
  samples.push({ atMs: Date.now() - started, phase, handled, rssMb: mb(process.memoryUsage().rss) });

const topic = `soak-${Date.now()}`;
const producer = new KafkaProducer({ brokers, clientId: 'soak-producer', logLevel: 'warn' });
await producer.connect({ timeoutMs: 20000 });
await producer.ensureTopics([{ name: topic, partitions: Number(args.partitions) }]);

// One byte per id: how often it was handled.
const seen = new Uint8Array(total);
let duplicated = 0;
const consumer = await registerConsumer(
  topic,
  (message) => {
    const id = message.value.id;
    if (seen[id] > 0) duplicated += 1;
    seen[id] += 1;
    handled += 1;
  },
  {
    brokers,
    groupId: `${topic}-group`,
    fromBeginning: true,
    concurrency: 8,
    sessionTimeoutMs: 6000,
    logLevel: 'warn',
    config: { 'fetch.wait.max.ms': 50 },
  },
);

let phase = 'streaming';
sample(phase);
const sampler = setInterval(() => sample(phase), 500);
const bars = args.quiet
  ? null
  : new cliProgress.MultiBar(
      { format: ' {name} |{bar}| {value}/{total} {rate} ev/s  RSS {rss} MB', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
const producedBar = bars?.create(total, 0, { name: 'produced', rate: 0, rss: 0 });
const handledBar = bars?.create(total, 0, { name: 'handled ', rate: 0, rss: 0 });

let acknowledged = 0;
let failed = 0;
const refresh = setInterval(() => {
  const seconds = (Date.now() - started) / 1000;
  const rss = mb(process.memoryUsage().rss);
  producedBar?.update(acknowledged, { rate: Math.round(acknowledged / seconds), rss });
  handledBar?.update(handled, { rate: Math.round(handled / seconds), rss });
}, 250);

const produceStarted = Date.now();
let next = 0;
await new Promise((resolve) => {
  let outstanding = 0;
  const pump = () => {
    while (outstanding < window && next < total) {
      const id = next++;
      outstanding += 1;
      producer
        .sendMessage(
          topic,
          { id, userId: `user-${id % 5000}`, movieId: `movie-${id % 1000}`, timestamp: Date.now() },
          {
            key: `movie-${id % 1000}`,
          },
        )
        .then(
          () => {
            acknowledged += 1;
          },
          () => {
            failed += 1;
          },
        )
        .finally(() => {
          outstanding -= 1;
          if (next < total) pump();
          else if (outstanding === 0) resolve(undefined);
        });
    }
  };
  pump();
});
const produceSeconds = (Date.now() - produceStarted) / 1000;

phase = 'draining';
const drainDeadline = Date.now() + 300_000;
while (handled < acknowledged && Date.now() < drainDeadline) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const streamSeconds = (Date.now() - produceStarted) / 1000;
// Let anything that would come twice arrive, then settle memory before the last sample.
await new Promise((resolve) => setTimeout(resolve, 2000));
phase = 'idle';
sample(phase);
clearInterval(refresh);
clearInterval(sampler);
bars?.stop();

await consumer.close();
await producer.disconnect();

let lost = 0;
for (let id = 0; id < total; id++) if (seen[id] === 0) lost += 1;
const streaming = samples.filter((s) => s.phase !== 'idle');
// RSS by how much of the stream was handled: growth is measured from a fifth of the way (the
// consumer's prefetch full, buffers and JIT warm) to the end, so it shows what grows per event.
const rssAtHandled = {};
for (let tenth = 1; tenth <= 10; tenth++) {
  const at = streaming.find((s) => s.handled >= (total * tenth) / 10) ?? streaming[streaming.length - 1];
  rssAtHandled[`${tenth * 10}%`] = at.rssMb;
}
const warmAt = streaming.find((s) => s.handled >= total / 5) ?? samples[0];
const peak = Math.max(...samples.map((s) => s.rssMb));
const last = samples[samples.length - 1];
const lastStreaming = streaming[streaming.length - 1];
const result = {
  date: new Date().toISOString(),
  node: process.version,
  events: total,
  partitions: Number(args.partitions),
  window,
  produced: acknowledged,
  failedSends: failed,
  handled,
  lost,
  duplicated,
  produceSeconds,
  streamSeconds,
  produceRate: Math.round(acknowledged / produceSeconds),
  endToEndRate: Math.round(handled / streamSeconds),
  rssMb: {
    start: samples[0].rssMb,
    warm: warmAt.rssMb,
    peak,
    endOfStream: lastStreaming.rssMb,
    idle: last.rssMb,
    growthAfterFirstFifth: Math.round((lastStreaming.rssMb - warmAt.rssMb) * 10) / 10,
    atHandled: rssAtHandled,
  },
  samples,
};
mkdirSync(args.out, { recursive: true });
writeFileSync(join(args.out, 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
const { samples: _omitted, ...summary } = result;
console.log(JSON.stringify(summary, null, 2));
process.exit(lost === 0 && duplicated === 0 && failed === 0 ? 0 : 1);
