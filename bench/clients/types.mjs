// @ts-check
// The shape every client adapter has, so the cases in bench/lib/cases.mjs run unchanged
// over each library. An adapter does what an application using that library would do:
// serialise and parse JSON where the library leaves it to the app, await its own promises.

/**
 * @typedef {{ key: string, value: string }} OutgoingMessage
 *
 * @typedef {object} ProducerParams
 * @property {string[]} brokers
 * @property {string} clientId
 * @property {string} compression  the codec asked for (each adapter records what it used)
 *
 * @typedef {object} BenchProducer
 * @property {(topic: string, message: OutgoingMessage) => Promise<unknown>} sendOne
 *   one message, one promise, settled by that message's acknowledgement
 * @property {(topic: string, messages: OutgoingMessage[]) => Promise<unknown>} sendBatch
 *   one call for many messages, settled when all are acknowledged
 * @property {() => Promise<void>} close  (the cases do not call it: a worker exits instead)
 *
 * @typedef {object} ConsumerParams
 * @property {string[]} brokers
 * @property {string} clientId
 * @property {string} topic
 * @property {string} groupId
 * @property {number} partitions
 * @property {number} sessionTimeoutMs
 * @property {number} fetchWaitMs
 * @property {number} concurrency   parallelism of the per-message handler where the library has it
 * @property {number} batchSize
 * @property {number} batchWaitMs
 * @property {number} joinTimeoutMs
 * @property {Record<string, string>} rdkafkaConfig  extra librdkafka consumer properties
 *   (`--rdkafka-consumer-config`), applied by the librdkafka-based clients only
 *
 * @typedef {(event: any) => Promise<void>} EventHandler   receives the parsed JSON value
 * @typedef {(events: any[]) => Promise<void>} BatchHandler
 * @typedef {{ close(): Promise<void> }} BenchConsumer
 *
 * @typedef {object} BenchClient
 * @property {string} id
 * @property {() => Promise<string>} load  imports the library; resolves with its label
 *   (name and version); rejects, with the reason, when it cannot run here
 * @property {Record<string, unknown>} producerSettings  recorded with the results
 * @property {Record<string, unknown>} consumerSettings
 * @property {((params: ProducerParams) => Promise<BenchProducer>) | null} createProducer
 * @property {(params: ConsumerParams, onEvent: EventHandler) => Promise<BenchConsumer>} consumeEach
 *   resolves once the group has assigned partitions to the consumer
 * @property {((params: ConsumerParams, onBatch: BatchHandler) => Promise<BenchConsumer>) | null} consumeBatch
 *   null when the library has no batch API
 */

export {};
