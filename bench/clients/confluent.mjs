// @ts-check
// @confluentinc/kafka-javascript through its kafkajs-style API (librdkafka underneath).
import { createRequire } from 'node:module';
import { joinSignal } from './joined.mjs';
import { installedVersion } from './version.mjs';

/** librdkafka's RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, as passed to a rebalance callback. */
const ASSIGN_PARTITIONS = -175;

const require = createRequire(import.meta.url);

/** @type {any} the KafkaJS namespace of the library */
let KafkaJS;

/** @type {import('./types.mjs').BenchClient} */
export const confluentClient = {
  id: 'confluent',
  async load() {
    ({ KafkaJS } = require('@confluentinc/kafka-javascript'));
    return `@confluentinc/kafka-javascript ${installedVersion('@confluentinc/kafka-javascript')}`;
  },
  producerSettings: { acks: 'all (-1)', idempotence: true, compression: 'lz4', 'linger.ms': 5 },
  consumerSettings: {
    partitionsConsumedConcurrently: 'min(--concurrency, partitions)',
    maxWaitTimeInMs: 'fetch wait',
    'js.consumer.max.batch.size': 'batch size (default 32)',
  },
  async createProducer({ brokers, clientId, compression }) {
    const kafka = new KafkaJS.Kafka({ kafkaJS: { brokers, clientId, logLevel: KafkaJS.logLevel.ERROR } });
    const producer = kafka.producer({
      kafkaJS: {
        acks: -1,
        idempotent: true,
        compression: compression === 'lz4' ? KafkaJS.CompressionTypes.LZ4 : KafkaJS.CompressionTypes.NONE,
      },
      'linger.ms': 5,
    });
    await producer.connect();
    return {
      sendOne: (topic, message) => producer.send({ topic, messages: [message] }),
      sendBatch: (topic, messages) => producer.send({ topic, messages }),
      close: () => producer.disconnect(),
    };
  },
  async consumeEach(params, onEvent) {
    const consumer = await start(params, {
      partitionsConsumedConcurrently: Math.min(params.concurrency, params.partitions),
      eachMessage: async (/** @type {any} */ { message }) => onEvent(JSON.parse(String(message.value))),
    });
    return { close: () => consumer.disconnect() };
  },
  async consumeBatch(params, onBatch) {
    const consumer = await start(params, {
      partitionsConsumedConcurrently: Math.min(params.concurrency, params.partitions),
      eachBatch: async (/** @type {any} */ { batch }) =>
        onBatch(batch.messages.map((/** @type {any} */ message) => JSON.parse(String(message.value)))),
    });
    return { close: () => consumer.disconnect() };
  },
};

/**
 * @param {import('./types.mjs').ConsumerParams} params
 * @param {object} run
 */
async function start(params, run) {
  const kafka = new KafkaJS.Kafka({
    kafkaJS: { brokers: params.brokers, clientId: params.clientId, logLevel: KafkaJS.logLevel.ERROR },
  });
  const { joined, join } = joinSignal(params.joinTimeoutMs);
  const consumer = kafka.consumer({
    kafkaJS: {
      groupId: params.groupId,
      fromBeginning: true,
      sessionTimeout: params.sessionTimeoutMs,
      maxWaitTimeInMs: params.fetchWaitMs,
    },
    'js.consumer.max.batch.size': params.batchSize,
    ...params.rdkafkaConfig,
    // Called before the library's own assignment handling, which then goes on as usual.
    rebalance_cb: (/** @type {{ code: number }} */ error, /** @type {unknown[]} */ assignment) => {
      if (error.code === ASSIGN_PARTITIONS && assignment.length > 0) join();
    },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [params.topic] });
  await consumer.run(run);
  await joined;
  return consumer;
}
