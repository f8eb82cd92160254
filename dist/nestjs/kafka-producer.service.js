"use strict";
var __decorate = (this && this.__decorate) || function (decorators, target, key, desc) {
    var c = arguments.length, r = c < 3 ? target : desc === null ? desc = Object.getOwnPropertyDescriptor(target, key) : desc, d;
    if (typeof Reflect === "object" && typeof Reflect.decorate === "function") r = Reflect.decorate(decorators, target, key, desc);
    else for (var i = decorators.length - 1; i >= 0; i--) if (d = decorators[i]) r = (c < 3 ? d(r) : c > 3 ? d(target, key, r) : d(target, key)) || r;
    return c > 3 && r && Object.defineProperty(target, key, r), r;
};
var __metadata = (this && this.__metadata) || function (k, v) {
    if (typeof Reflect === "object" && typeof Reflect.metadata === "function") return Reflect.metadata(k, v);
};
var __param = (this && this.__param) || function (paramIndex, decorator) {
    return function (target, key) { decorator(target, key, paramIndex); }
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.KafkaProducerService = exports.KAFKA_PRODUCER_OPTIONS = void 0;
exports.errorSummary = errorSummary;
const common_1 = require("@nestjs/common");
const kafka_napi_1 = require("kafka-napi");
const logger_1 = require("./logger");
/** Injection token of the producer module's options. */
exports.KAFKA_PRODUCER_OPTIONS = Symbol('KAFKA_PRODUCER_OPTIONS');
/**
 * The app's single producer, as a Nest provider: connects when the module
 * starts, flushes and disconnects when the application shuts down.
 */
let KafkaProducerService = class KafkaProducerService {
    options;
    logger = new common_1.Logger('KafkaProducer');
    /** The underlying addon producer, for anything this service does not wrap. */
    producer;
    constructor(options) {
        this.options = options;
        const { topics: _topics, connectTimeoutMs: _connect, shutdownTimeoutMs: _shutdown, ...producerOptions } = options;
        this.producer = new kafka_napi_1.KafkaProducer({ ...producerOptions, logger: (0, logger_1.toKafkaLogger)(this.logger) });
    }
    async onModuleInit() {
        const timeoutMs = this.options.connectTimeoutMs;
        try {
            await this.producer.connect(timeoutMs === undefined ? undefined : { timeoutMs });
        }
        catch (error) {
            this.logger.warn(`Kafka brokers not reachable yet (${errorSummary(error)}); retrying in the background`);
        }
        if (this.options.topics?.length) {
            try {
                const results = await this.producer.ensureTopics(this.options.topics, { timeoutMs: 10_000 });
                const created = results.filter((result) => result.created).map((result) => result.name);
                if (created.length > 0)
                    this.logger.log(`Created topics: ${created.join(', ')}`);
            }
            catch (error) {
                this.logger.warn(`Could not create topics (${errorSummary(error)}); relying on the cluster's auto-creation`);
            }
        }
    }
    async onApplicationShutdown() {
        await this.producer.disconnect(this.options.shutdownTimeoutMs);
    }
    /** Sends a `MovieEvent` to `movie-events`, keyed by `movieId`. */
    sendMovieEvent(eventType, userId, movieId, metadata) {
        return this.producer.sendMovieEvent(eventType, userId, movieId, metadata);
    }
    /** Sends a `MovieViewEvent` to `movie-views`, keyed by `movieId`. */
    sendMovieViewEvent(userId, movieId) {
        return this.producer.sendMovieViewEvent(userId, movieId);
    }
    /** Sends any payload to any topic: strings and Buffers as they are, anything else as JSON. */
    sendMessage(topic, payload, options) {
        return this.producer.sendMessage(topic, payload, options);
    }
    /** kafkajs-style: several messages to one topic. */
    send(record) {
        return this.producer.send(record);
    }
    /** kafkajs-style: messages to several topics. */
    sendBatch(batch) {
        return this.producer.sendBatch(batch);
    }
    /** Creates the topics that do not exist yet. */
    ensureTopics(topics, options) {
        return this.producer.ensureTopics(topics, options);
    }
    /** Waits until every queued message is acknowledged. */
    flush(timeoutMs) {
        return this.producer.flush(timeoutMs);
    }
    /** Whether the brokers are reachable right now. */
    get isConnected() {
        return this.producer.isConnected;
    }
};
exports.KafkaProducerService = KafkaProducerService;
exports.KafkaProducerService = KafkaProducerService = __decorate([
    (0, common_1.Injectable)(),
    __param(0, (0, common_1.Inject)(exports.KAFKA_PRODUCER_OPTIONS)),
    __metadata("design:paramtypes", [Object])
], KafkaProducerService);
function errorSummary(error) {
    if (error instanceof Error) {
        const code = error.code;
        return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
    }
    return String(error);
}
