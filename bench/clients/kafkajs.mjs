// @ts-check
// kafkajs 2.2.x: pure JavaScript. Its idempotent producer fails on Tansu (InitProducerId),
// so it runs non-idempotent here; lz4 comes from lz4-napi, as kafkajs has only gzip built in.
import { createRequire } from 'node:module';
import { joinSignal } from './joined.mjs';
import { installedVersion } from './version.mjs';

const require = createRequire(import.meta.url);

/** @type {typeof import('kafkajs')} */
let kafkajs;

/** @type {import('./types.mjs').BenchClient} */
export const kafkajsClient = {
  id: 'kafkajs',
  async load() {
    kafkajs = require('kafkajs');
    const lz4 = require('lz4-napi');
    kafkajs.CompressionCodecs[kafkajs.CompressionTypes.LZ4] = () => ({
      compress: (/** @type {{ buffer: Buffer }} */ encoder) => lz4.compressFrame(encoder.buffer),
      decompress: (/** @type {Buffer} */ buffer) => lz4.decompressFrame(buffer),
    });
    return `kafkajs ${installedVersion('kafkajs')}`;
  },
  producerSettings: {
    acks: 'all (-1)',
    idempotence: 'false (its InitProducerId fails on Tansu)',
    compression: 'lz4 (lz4-napi codec)',
    linger: 'none (no such setting)',
  },
  consumerSettings: {
    partitionsConsumedConcurrently: 'min(--concurrency, partitions)',
    maxWaitTimeInMs: 'fetch wait',
    heartbeatInterval: 1000,
  },
  async createProducer({ brokers, clientId, compression }) {
    const kafka = new kafkajs.Kafka({ brokers, clientId, logLevel: kafkajs.logLevel.ERROR });
    const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false });
    await producer.connect();
    const codec = compression === 'lz4' ? kafkajs.CompressionTypes.LZ4 : kafkajs.CompressionTypes.None;
    return {
      sendOne: (topic, message) => producer.send({ topic, acks: -1, compression: codec, messages: [message] }),
      sendBatch: (topic, messages) => producer.send({ topic, acks: -1, compression: codec, messages }),
      close: () => producer.disconnect(),
    };
  },
  async consumeEach(params, onEvent) {
    const consumer = await start(params, {
      partitionsConsumedConcurrently: Math.min(params.concurrency, params.partitions),
      eachMessage: async ({ message }) => onEvent(JSON.parse(String(message.value))),
    });
    return { close: () => consumer.disconnect() };
  },
  async consumeBatch(params, onBatch) {
    const consumer = await start(params, {
      partitionsConsumedConcurrently: Math.min(params.concurrency, params.partitions),
      eachBatch: async ({ batch }) => onBatch(batch.messages.map((message) => JSON.parse(String(message.value)))),
    });
    return { close: () => consumer.disconnect() };
  },
};

/**
 * @param {import('./types.mjs').ConsumerParams} params
 * @param {import('kafkajs').ConsumerRunConfig} run
 */
async function start(params, run) {
  const kafka = new kafkajs.Kafka({
    brokers: params.brokers,
    clientId: params.clientId,
    logLevel: kafkajs.logLevel.ERROR,
  });
  const consumer = kafka.consumer({
    groupId: params.groupId,
    sessionTimeout: params.sessionTimeoutMs,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: params.fetchWaitMs,
    allowAutoTopicCreation: false,
  });
  const { joined, join } = joinSignal(params.joinTimeoutMs);
  consumer.on(consumer.events.GROUP_JOIN, join);
  await consumer.connect();
  await consumer.subscribe({ topic: params.topic, fromBeginning: true });
  await consumer.run(run);
  await joined;
  return consumer;
}
