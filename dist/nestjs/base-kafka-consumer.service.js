"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.BaseKafkaConsumerService = void 0;
const common_1 = require("@nestjs/common");
const kafka_napi_1 = require("kafka-napi");
const kafka_producer_service_1 = require("./kafka-producer.service");
const logger_1 = require("./logger");
/** How long to wait before registering again after a failed attempt. */
const RESTART_DELAY_MS = 5_000;
/**
 * The base of every consumer: extend it, call `super(config, name)` and
 * implement `handleMessage`. It registers itself when its module starts (in the
 * background, retrying every 5 s if the brokers are down, so the app never
 * fails to boot because of Kafka) and drains, commits and leaves the group
 * when the app shuts down.
 *
 * A message's offset is committed only after `handleMessage` resolves. When it
 * throws, the message is retried (`retry` option) and finally parked in the
 * dead-letter topic (`deadLetterTopic`, default `<topic>.dlq`); the consumer
 * keeps going.
 */
class BaseKafkaConsumerService {
    consumerConfig;
    name;
    /** Nest logger with the consumer's name as context. */
    logger;
    handle;
    starting;
    currentState = 'idle';
    closing = false;
    lastError;
    readyWaiters = [];
    constructor(consumerConfig, name) {
        this.consumerConfig = consumerConfig;
        this.name = name;
        this.logger = new common_1.Logger(name);
    }
    /**
     * The message's value as `T`. Values are parsed (and validated, with a
     * `schema`) in Rust before they arrive; a raw Buffer or string (`schema: 'raw'`)
     * is parsed as JSON here.
     */
    parseMessage(payload) {
        const value = payload.value;
        if (Buffer.isBuffer(value) || typeof value === 'string') {
            try {
                return JSON.parse(value.toString());
            }
            catch (error) {
                throw Object.assign(new Error(`message is not JSON: ${(0, kafka_producer_service_1.errorSummary)(error)}`), { code: 'ERR_SERIALIZATION' });
            }
        }
        return value;
    }
    onModuleInit() {
        this.starting = this.start();
    }
    async onModuleDestroy() {
        const wasRunning = this.currentState !== 'idle' && this.currentState !== 'closed';
        this.closing = true;
        this.currentState = 'closed';
        await this.starting;
        for (const resolve of this.readyWaiters.splice(0))
            resolve();
        const handle = this.handle;
        this.handle = undefined;
        if (handle) {
            await handle.close();
            if (wasRunning)
                this.logger.log(`Kafka consumer closed: ${handle.name}`);
        }
    }
    /** Resolves once the consumer has joined its group (or has been closed). */
    ready() {
        if (this.currentState === 'running' || this.currentState === 'paused')
            return Promise.resolve();
        return new Promise((resolve) => this.readyWaiters.push(resolve));
    }
    /** `running` once joined; `retrying` while the brokers cannot be reached. */
    get state() {
        return this.currentState;
    }
    /** Why the last registration attempt failed, while `retrying`. */
    get error() {
        return this.lastError;
    }
    /** Counters and lag, once running. */
    stats() {
        return this.handle?.stats();
    }
    /** Stops taking new messages (in-flight ones finish). */
    pause() {
        this.handle?.pause();
        if (this.currentState === 'running')
            this.currentState = 'paused';
    }
    resume() {
        this.handle?.resume();
        if (this.currentState === 'paused')
            this.currentState = 'running';
    }
    async start() {
        const { topics, ...options } = this.consumerConfig;
        while (!this.closing) {
            this.currentState = this.currentState === 'retrying' ? 'retrying' : 'starting';
            try {
                const handle = await (0, kafka_napi_1.registerConsumer)(topics, (message) => this.dispatch(message), {
                    ...options,
                    logger: (0, logger_1.toKafkaLogger)(this.logger),
                });
                if (this.closing) {
                    await handle.close();
                    return;
                }
                this.handle = handle;
                this.currentState = 'running';
                this.lastError = undefined;
                this.logger.log(`Kafka consumer connected: ${handle.name} (group ${handle.groupId})`);
                for (const topic of topics)
                    this.logger.log(`Subscribed to topic: ${topic}`);
                for (const resolve of this.readyWaiters.splice(0))
                    resolve();
                return;
            }
            catch (error) {
                if (this.closing)
                    return;
                this.lastError = (0, kafka_producer_service_1.errorSummary)(error);
                this.currentState = 'retrying';
                this.logger.error(`Could not start consumer (${this.lastError}); retrying in ${RESTART_DELAY_MS / 1000} s`);
                await delay(RESTART_DELAY_MS);
            }
        }
    }
    async dispatch(message) {
        this.logger.debug(`Received message from topic: ${message.topic}, partition: ${message.partition}`);
        try {
            await this.handleMessage(message);
        }
        catch (error) {
            this.logger.error(`Failed to process ${message.topic}[${message.partition}]@${message.offset} (attempt ${message.attempt}): ${(0, kafka_producer_service_1.errorSummary)(error)}`);
            throw error;
        }
    }
}
exports.BaseKafkaConsumerService = BaseKafkaConsumerService;
function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
