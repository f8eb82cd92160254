// @ts-check
// @platformatic/kafka: pure JavaScript, declares Node >= 22 (needs Promise.withResolvers,
// polyfilled here on Node 20). Its idempotent producer fails on Tansu (InitProducerId), so
// it runs non-idempotent; it has no batch-consume API (a stream of single messages).
import { joinSignal } from './joined.mjs';
import { installedVersion } from './version.mjs';

/** @type {typeof import('@platformatic/kafka')} */
let platformatic;

/** @type {import('./types.mjs').BenchClient} */
export const platformaticClient = {
  id: 'platformatic',
  async load() {
    if (typeof (/** @type {any} */ (Promise).withResolvers) !== 'function') {
      // Node 20 lacks it; the library calls it on every request.
      Object.defineProperty(Promise, 'withResolvers', {
        configurable: true,
        writable: true,
        value() {
          /** @type {any} */
          let resolve;
          /** @type {any} */
          let reject;
          const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
          });
          return { promise, resolve, reject };
        },
      });
    }
    platformatic = await import('@platformatic/kafka');
    return `@platformatic/kafka ${installedVersion('@platformatic/kafka')}`;
  },
  producerSettings: {
    acks: 'all (-1)',
    idempotence: 'false (its InitProducerId fails on Tansu)',
    compression: 'lz4',
    linger: 'none (no such setting)',
  },
  consumerSettings: { mode: 'stream, for await', maxWaitTime: 'fetch wait', heartbeatInterval: 1000 },
  async createProducer({ brokers, clientId, compression }) {
    const producer = new platformatic.Producer({
      clientId,
      bootstrapBrokers: brokers,
      serializers: platformatic.stringSerializers,
      idempotent: false,
      acks: platformatic.ProduceAcks.ALL,
      compression: compression === 'lz4' ? 'lz4' : 'none',
      autocreateTopics: false,
    });
    return {
      sendOne: (topic, { key, value }) => producer.send({ messages: [{ topic, key, value }] }),
      sendBatch: (topic, messages) =>
        producer.send({ messages: messages.map(({ key, value }) => ({ topic, key, value })) }),
      close: () => producer.close(),
    };
  },
  async consumeEach(params, onEvent) {
    const consumer = new platformatic.Consumer({
      clientId: params.clientId,
      groupId: params.groupId,
      bootstrapBrokers: params.brokers,
      deserializers: platformatic.stringDeserializers,
      sessionTimeout: params.sessionTimeoutMs,
      heartbeatInterval: 1000,
      maxWaitTime: params.fetchWaitMs,
    });
    const { joined, join } = joinSignal(params.joinTimeoutMs);
    consumer.on('consumer:group:join', join);
    const stream = await consumer.consume({
      topics: [params.topic],
      mode: platformatic.MessagesStreamModes.EARLIEST,
      autocommit: true,
    });
    const done = (async () => {
      for await (const message of stream) {
        await onEvent(JSON.parse(/** @type {string} */ (message.value)));
      }
    })();
    done.catch(() => {}); // ends with the stream on close
    await joined;
    return {
      async close() {
        await stream.close();
        await consumer.close(true);
      },
    };
  },
  consumeBatch: null,
};
