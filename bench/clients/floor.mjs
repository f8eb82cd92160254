// @ts-check
// `napi-floor`: the least an N-API consumer over librdkafka does with this addon's guarantees
// (bench/floor/floor.rs): values validated as JSON in Rust, message objects with their
// metadata, offsets stored only after the callbacks of what they cover settled, and, like the
// addon, at most 5000 messages handed over and not settled. In batches: batches in order, one
// per turn of the event loop as the addon's driver runs them. Per message: each message's
// callback awaited before the next one's starts (all partitions in one order, which the
// addon's lanes relax), and the event loop let go after 3 ms of callbacks, as the addon's
// driver does. Not a product: no retries, dead-letter topic, headers, early commits or
// revocation handling. It splits the addon's distance to the pure-Rust ceiling into what any
// N-API hand-over costs on this machine and what the addon's own pipeline adds. Built by
// scripts/bench.sh (`--features bench-floor`).
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
  async consumeEach(params, onEvent) {
    return consume(params, async (messages) => {
      let sliceStart = performance.now();
      for (let i = 0; i < messages.length; i++) {
        await onEvent(messages[i].value);
        // The clock at every fourth message, as the addon's driver reads it.
        if ((i & 3) === 3 && performance.now() - sliceStart > EACH_SLICE_MS) {
          await nextTurn();
          sliceStart = performance.now();
        }
      }
    });
  },
  async consumeBatch(params, onBatch) {
    return consume(params, (messages) => onBatch(messages.map((message) => message.value)));
  },
};

/** As the addon's driver: per message, callbacks run for at most this long in one turn. */
const EACH_SLICE_MS = 3;

function nextTurn() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Consumes `params.topic`, handing each taken batch's messages to `handle` in order and storing
 * their offsets once the promise it returns settles.
 * @param {import('./types.mjs').ConsumerParams} params
 * @param {(messages: ReturnType<typeof decode>) => Promise<unknown>} handle
 */
async function consume(params, handle) {
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
      await handle(messages);
      /** @type {Map<number, number>} */
      const next = new Map();
      for (const message of messages) next.set(message.partition, message.offset + 1);
      consumer.store([...next].flat(), messages.length);
      await nextTurn();
    }
    running = false;
  }
  await joined;
  return {
    async close() {
      consumer.stop();
    },
  };
}
