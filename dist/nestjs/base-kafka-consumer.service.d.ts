import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { type ConsumedMessage, type ConsumerStats } from 'kafka-napi';
import type { KafkaConsumerConfig } from './kafka-config';
/**
 * What `handleMessage` receives: the message with its value already parsed and
 * validated in Rust (see the consumer's `schema`). Named after kafkajs' type so
 * handlers keep their signature when migrating.
 */
export type EachMessagePayload<Value = any> = ConsumedMessage & {
    value?: Value;
};
/** Where a consumer is in its life. */
export type KafkaConsumerState = 'idle' | 'starting' | 'running' | 'paused' | 'retrying' | 'closed';
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
export declare abstract class BaseKafkaConsumerService implements OnModuleInit, OnModuleDestroy {
    protected readonly consumerConfig: KafkaConsumerConfig;
    protected readonly name: string;
    /** Nest logger with the consumer's name as context. */
    protected readonly logger: Logger;
    private handle;
    private starting;
    private currentState;
    private closing;
    private lastError;
    private readyWaiters;
    protected constructor(consumerConfig: KafkaConsumerConfig, name: string);
    /** Handles one message; throw (or reject) to have it retried, then dead-lettered. */
    protected abstract handleMessage(payload: EachMessagePayload): Promise<void>;
    /**
     * The message's value as `T`. Values are parsed (and validated, with a
     * `schema`) in Rust before they arrive; a raw Buffer or string (`schema: 'raw'`)
     * is parsed as JSON here.
     */
    protected parseMessage<T>(payload: EachMessagePayload): T;
    onModuleInit(): void;
    onModuleDestroy(): Promise<void>;
    /** Resolves once the consumer has joined its group (or has been closed). */
    ready(): Promise<void>;
    /** `running` once joined; `retrying` while the brokers cannot be reached. */
    get state(): KafkaConsumerState;
    /** Why the last registration attempt failed, while `retrying`. */
    get error(): string | undefined;
    /** Counters and lag, once running. */
    stats(): ConsumerStats | undefined;
    /** Stops taking new messages (in-flight ones finish). */
    pause(): void;
    resume(): void;
    private start;
    private dispatch;
}
