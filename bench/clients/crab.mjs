// @ts-check
// kafka-crab-js: a napi-rs addon over librdkafka (rust-rdkafka). Its native package
// declares Node 24 only; scripts/bench.sh installs it anyway and this records whether it runs.
// Uses the Web-stream consumers its README recommends (serial, and batches).
import { joinSignal } from './joined.mjs';
import { installedVersion } from './version.mjs';

/** @type {typeof import('kafka-crab-js')} */
let crab;

/** @type {import('./types.mjs').BenchClient} */
export const crabClient = {
  id: 'crab',
  async load() {
    crab = await import('kafka-crab-js');
    return `kafka-crab-js ${installedVersion('kafka-crab-js')}`;
  },
  producerSettings: { acks: 'all', idempotence: true, compression: 'lz4', 'linger.ms': 5, autoFlush: 'true (default)' },
  consumerSettings: { api: 'createWebStreamConsumer', batchTimeout: 'batch wait', 'fetch.wait.max.ms': 'fetch wait' },
  async createProducer({ brokers, clientId, compression }) {
    const client = new crab.KafkaClient({ brokers: brokers.join(','), clientId, logLevel: 'error' });
    const producer = client.createProducer({
      configuration: { 'enable.idempotence': true, acks: 'all', 'compression.type': compression, 'linger.ms': 5 },
    });
    /** @param {import('./types.mjs').OutgoingMessage} message */
    const toCrab = ({ key, value }) => ({ key: Buffer.from(key), payload: Buffer.from(value) });
    return {
      sendOne: (topic, message) => producer.send({ topic, messages: [toCrab(message)] }),
      sendBatch: (topic, messages) => producer.send({ topic, messages: messages.map(toCrab) }),
      close: async () => {
        await producer.flush();
      },
    };
  },
  async consumeEach(params, onEvent) {
    const { consumer, stream } = client(params).createWebStreamConsumer({
      groupId: params.groupId,
      configuration: configuration(params),
    });
    return pump(consumer, stream, params, async (/** @type {any} */ message) =>
      onEvent(JSON.parse(message.payload.toString())),
    );
  },
  async consumeBatch(params, onBatch) {
    const { consumer, stream } = client(params).createWebStreamConsumer({
      groupId: params.groupId,
      batchSize: params.batchSize,
      batchTimeout: params.batchWaitMs,
      configuration: configuration(params),
    });
    return pump(consumer, stream, params, async (/** @type {any[]} */ messages) =>
      onBatch(messages.map((message) => JSON.parse(message.payload.toString()))),
    );
  },
};

/** @param {import('./types.mjs').ConsumerParams} params */
function client(params) {
  return new crab.KafkaClient({ brokers: params.brokers.join(','), clientId: params.clientId, logLevel: 'error' });
}

/** @param {import('./types.mjs').ConsumerParams} params */
function configuration(params) {
  return {
    'auto.offset.reset': 'earliest',
    'session.timeout.ms': params.sessionTimeoutMs,
    'fetch.wait.max.ms': params.fetchWaitMs,
    ...params.rdkafkaConfig,
  };
}

/**
 * Reads the stream until closed, awaiting the handler for each item.
 * @param {import('kafka-crab-js').KafkaConsumer} consumer
 * @param {ReadableStream<any>} stream
 * @param {import('./types.mjs').ConsumerParams} params
 * @param {(item: any) => Promise<void>} handle
 * @returns {Promise<import('./types.mjs').BenchConsumer>}
 */
async function pump(consumer, stream, params, handle) {
  const { joined, join } = joinSignal(params.joinTimeoutMs);
  consumer.onEvents((_error, event) => {
    if (event?.name === 'PostRebalance' && event.payload.action === 'assign' && event.payload.tpl.length > 0) join();
  });
  await consumer.subscribe(params.topic);
  const reader = stream.getReader();
  const done = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      await handle(value);
    }
  })();
  done.catch(() => {}); // ends with the reader on close
  await joined;
  return {
    async close() {
      await reader.cancel().catch(() => {});
      await consumer.disconnect();
    },
  };
}
