// @ts-check
// `napi-floor`: the least an N-API consumer over librdkafka does for the batch case with this
// addon's guarantees (bench/floor/floor.rs): values validated as JSON in Rust, message objects
// with their metadata, batches in order, one per turn of the event loop as the addon's driver
// runs them, offsets stored only after a batch's callback settled, and, like the addon, at most
// 5000 messages handed over and not settled. Not a product: no retries, dead-letter topic,
// headers, early commits or revocation handling. It splits the addon's distance to the
// pure-Rust ceiling into what any N-API hand-over costs on this machine and what the addon's
// own pipeline adds. Built by scripts/bench.sh (`--features bench-floor`).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { joinSignal } from './joined.mjs';

const require = createRequire(import.meta.url);
const BUILD = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'floor', 'build', 'index.js');

/** @type {any} */
let floor;

/**
 * A batch's texts (values, metadata, values, metadata, ...) as the message objects the addon
 * hands to a batch callback.
 * @param {string} topic
 * @param {string[]} texts
 */
function decode(topic, texts) {
  const messages = [];
  for (let t = 0; t < texts.length; t += 2) {
    const values = JSON.parse(texts[t]);
    const metadata = JSON.parse(texts[t + 1]);
    for (let i = 0, n = 0; i < values.length; i++, n += 4) {
      messages.push({
        topic,
        partition: metadata[n],
        offset: metadata[n + 1],
        key: metadata[n + 3],
        value: values[i],
        headers: {},
        timestamp: metadata[n + 2],
        attempt: 1,
      });
    }
  }
  return messages;
}

/** @type {import('./types.mjs').BenchClient} */
export const floorClient = {
  id: 'napi-floor',
  async load() {
    if (!existsSync(BUILD)) throw new Error(`${BUILD} is not built (scripts/bench.sh builds it)`);
    floor = require(BUILD);
    return 'N-API floor (bench/floor)';
  },
  producerSettings: {},
  consumerSettings: {
    handler: 'batches in order, one per event-loop turn; offsets stored after each settles',
    validation: 'serde_json, off the JavaScript thread',
  },
  createProducer: null,
  async consumeEach() {
    throw new Error('napi-floor has only the batch case');
  },
  async consumeBatch(params, onBatch) {
    const { joined, join } = joinSignal(params.joinTimeoutMs);
    /** @type {string[][]} */
    const queued = [];
    let running = false;
    const consumer = floor.floorConsume(
      {
        brokers: params.brokers.join(','),
        topic: params.topic,
        groupId: params.groupId,
        batchSize: params.batchSize,
        batchWaitMs: params.batchWaitMs,
        sessionTimeoutMs: params.sessionTimeoutMs,
        fetchWaitMs: params.fetchWaitMs,
        maxInFlight: 5000,
        config: params.rdkafkaConfig,
      },
      (/** @type {string[] | null} */ texts) => {
        if (texts == null) {
          join();
          return;
        }
        queued.push(texts);
        if (!running) {
          running = true;
          setImmediate(run);
        }
      },
    );
    // Each batch starts in a turn of its own (the check phase), as the addon's driver starts
    // them: started from the wake-up instead, the wake-ups of a steady stream of batches are
    // all served in one pass of the poll phase, and timers wait for the whole backlog.
    async function run() {
      while (queued.length > 0) {
        const messages = decode(params.topic, /** @type {string[]} */ (queued.shift()));
        await onBatch(messages.map((message) => message.value));
        /** @type {Map<number, number>} */
        const next = new Map();
        for (const message of messages) next.set(message.partition, message.offset + 1);
        consumer.store([...next].flat(), messages.length);
        await new Promise((resolve) => setImmediate(resolve));
      }
      running = false;
    }
    await joined;
    return {
      async close() {
        consumer.stop();
      },
    };
  },
};
