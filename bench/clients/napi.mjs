// @ts-check
// This addon (kafka-napi), loaded from the repository root as its tests do.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** @type {typeof import('../../index.js')} */
let addon;

/**
 * @param {'json' | 'raw'} schema  'json': the value is parsed in Rust; 'raw': a Buffer, parsed here
 * @returns {import('./types.mjs').BenchClient}
 */
function napiClient(schema) {
  const parse =
    schema === 'json'
      ? (/** @type {any} */ value) => value
      : (/** @type {Buffer} */ value) => JSON.parse(value.toString());
  return {
    id: schema === 'json' ? 'napi' : 'napi-raw',
    async load() {
      addon = require('../../index.js');
      const { version } = require('../../package.json');
      return schema === 'json' ? `kafka-napi ${version}` : `kafka-napi ${version} (raw + JSON.parse in JS)`;
    },
    producerSettings: { acks: 'all', idempotence: true, compression: 'lz4', 'linger.ms': 5, note: 'library defaults' },
    consumerSettings: {
      schema: schema === 'json' ? "'json' (parsed in Rust)" : "'raw' (JSON.parse in the handler)",
      concurrency: 'from --concurrency',
      deadLetterTopic: 'default (<topic>.dlq)',
    },
    // The raw variant only changes consuming; producing is measured once, by 'napi'.
    createProducer:
      schema === 'json'
        ? async ({ brokers, clientId, compression }) => {
            const producer = new addon.KafkaProducer({
              brokers,
              clientId,
              logLevel: 'warn',
              config: { 'compression.type': compression },
            });
            await producer.connect({ timeoutMs: 30_000 });
            return {
              sendOne: (topic, { key, value }) => producer.sendMessage(topic, value, { key }),
              sendBatch: (topic, messages) => producer.send({ topic, messages }),
              close: () => producer.disconnect(),
            };
          }
        : null,
    async consumeEach(params, onEvent) {
      return addon.registerConsumer(params.topic, (message) => onEvent(parse(message.value)), options(params));
    },
    async consumeBatch(params, onBatch) {
      return addon.registerConsumer(
        params.topic,
        (/** @type {import('../../index.js').ConsumedMessage[]} */ messages) =>
          onBatch(messages.map((message) => parse(message.value))),
        { ...options(params), batch: { maxMessages: params.batchSize, maxWaitMs: params.batchWaitMs } },
      );
    },
  };

  /** @param {import('./types.mjs').ConsumerParams} params */
  function options(params) {
    return {
      brokers: params.brokers,
      clientId: params.clientId,
      groupId: params.groupId,
      fromBeginning: true,
      sessionTimeoutMs: params.sessionTimeoutMs,
      joinTimeoutMs: params.joinTimeoutMs,
      concurrency: params.concurrency,
      schema,
      logLevel: /** @type {const} */ ('warn'),
      config: { 'fetch.wait.max.ms': params.fetchWaitMs, ...params.rdkafkaConfig },
    };
  }
}

export const napi = napiClient('json');
export const napiRaw = napiClient('raw');
