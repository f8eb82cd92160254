import { type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { KafkaProducer, type MovieEventType, type ProducerBatch, type ProducerRecord, type RecordMetadata, type SendMessageOptions, type TopicConfig, type TopicResult } from 'kafka-napi';
import type { KafkaProducerConfig } from './kafka-config';
/** Injection token of the producer module's options. */
export declare const KAFKA_PRODUCER_OPTIONS: unique symbol;
/** Options of `KafkaProducerModule.forRoot` (or the factory of `forRootAsync`). */
export interface KafkaProducerModuleOptions extends KafkaProducerConfig {
    /**
     * Topics to create at start-up when they do not exist yet. Failures are
     * logged, never thrown: the app starts even when the brokers are down.
     */
    topics?: TopicConfig[];
    /**
     * Wait this long at start-up for the brokers. Default: do not wait; the
     * producer connects in the background and retries every `retryIntervalMs`.
     */
    connectTimeoutMs?: number;
    /** How long shutdown waits for queued messages to be acknowledged. Default 30000. */
    shutdownTimeoutMs?: number;
}
/**
 * The app's single producer, as a Nest provider: connects when the module
 * starts, flushes and disconnects when the application shuts down.
 */
export declare class KafkaProducerService implements OnModuleInit, OnApplicationShutdown {
    private readonly options;
    private readonly logger;
    /** The underlying addon producer, for anything this service does not wrap. */
    readonly producer: KafkaProducer;
    constructor(options: KafkaProducerModuleOptions);
    onModuleInit(): Promise<void>;
    onApplicationShutdown(): Promise<void>;
    /** Sends a `MovieEvent` to `movie-events`, keyed by `movieId`. */
    sendMovieEvent(eventType: MovieEventType, userId: string | number, movieId: string | number, metadata?: Record<string, unknown>): Promise<RecordMetadata>;
    /** Sends a `MovieViewEvent` to `movie-views`, keyed by `movieId`. */
    sendMovieViewEvent(userId: string | number, movieId: string | number): Promise<RecordMetadata>;
    /** Sends any payload to any topic: strings and Buffers as they are, anything else as JSON. */
    sendMessage(topic: string, payload: unknown, options?: SendMessageOptions): Promise<RecordMetadata>;
    /** kafkajs-style: several messages to one topic. */
    send(record: ProducerRecord): Promise<RecordMetadata[]>;
    /** kafkajs-style: messages to several topics. */
    sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;
    /** Creates the topics that do not exist yet. */
    ensureTopics(topics: TopicConfig[], options?: {
        timeoutMs?: number;
    }): Promise<TopicResult[]>;
    /** Waits until every queued message is acknowledged. */
    flush(timeoutMs?: number): Promise<void>;
    /** Whether the brokers are reachable right now. */
    get isConnected(): boolean;
}
export declare function errorSummary(error: unknown): string;
