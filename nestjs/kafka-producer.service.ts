import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import {
  KafkaProducer,
  type MovieEventType,
  type ProducerBatch,
  type ProducerMetrics,
  type ProducerRecord,
  type RecordMetadata,
  type SendMessageOptions,
  type TopicConfig,
  type TopicResult,
} from 'kafka-napi';
import type { KafkaProducerConfig } from './kafka-config';
import { toKafkaLogger } from './logger';

/** Injection token of the producer module's options. */
export const KAFKA_PRODUCER_OPTIONS = Symbol('KAFKA_PRODUCER_OPTIONS');

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
@Injectable()
export class KafkaProducerService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('KafkaProducer');
  /** The underlying addon producer, for anything this service does not wrap. */
  readonly producer: KafkaProducer;

  constructor(@Inject(KAFKA_PRODUCER_OPTIONS) private readonly options: KafkaProducerModuleOptions) {
    const { topics: _topics, connectTimeoutMs: _connect, shutdownTimeoutMs: _shutdown, ...producerOptions } = options;
    this.producer = new KafkaProducer({ ...producerOptions, logger: toKafkaLogger(this.logger) });
  }

  async onModuleInit(): Promise<void> {
    const timeoutMs = this.options.connectTimeoutMs;
    try {
      await this.producer.connect(timeoutMs === undefined ? undefined : { timeoutMs });
    } catch (error) {
      this.logger.warn(`Kafka brokers not reachable yet (${errorSummary(error)}); retrying in the background`);
    }
    if (this.options.topics?.length) {
      try {
        const results = await this.producer.ensureTopics(this.options.topics, { timeoutMs: 10_000 });
        const created = results.filter((result) => result.created).map((result) => result.name);
        if (created.length > 0) this.logger.log(`Created topics: ${created.join(', ')}`);
      } catch (error) {
        this.logger.warn(`Could not create topics (${errorSummary(error)}); relying on the cluster's auto-creation`);
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.producer.disconnect(this.options.shutdownTimeoutMs);
  }

  /** Sends a `MovieEvent` to `movie-events`, keyed by `movieId`. */
  sendMovieEvent(
    eventType: MovieEventType,
    userId: string | number,
    movieId: string | number,
    metadata?: Record<string, unknown>,
  ): Promise<RecordMetadata> {
    return this.producer.sendMovieEvent(eventType, userId, movieId, metadata);
  }

  /** Sends a `MovieViewEvent` to `movie-views`, keyed by `movieId`. */
  sendMovieViewEvent(userId: string | number, movieId: string | number): Promise<RecordMetadata> {
    return this.producer.sendMovieViewEvent(userId, movieId);
  }

  /** Sends any payload to any topic: strings and Buffers as they are, anything else as JSON. */
  sendMessage(topic: string, payload: unknown, options?: SendMessageOptions): Promise<RecordMetadata> {
    return this.producer.sendMessage(topic, payload, options);
  }

  /** kafkajs-style: several messages to one topic. */
  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.producer.send(record);
  }

  /** kafkajs-style: messages to several topics. */
  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.producer.sendBatch(batch);
  }

  /** Creates the topics that do not exist yet. */
  ensureTopics(topics: TopicConfig[], options?: { timeoutMs?: number }): Promise<TopicResult[]> {
    return this.producer.ensureTopics(topics, options);
  }

  /** Waits until every queued message is acknowledged. */
  flush(timeoutMs?: number): Promise<void> {
    return this.producer.flush(timeoutMs);
  }

  /** Whether the brokers are reachable right now. */
  get isConnected(): boolean {
    return this.producer.isConnected;
  }

  /**
   * The producer's metrics: counters, delivery rate and latency, and each broker's state
   * and round-trip time from librdkafka's statistics (every `statisticsIntervalMs`).
   */
  metrics(): ProducerMetrics {
    return this.producer.metrics();
  }
}

export function errorSummary(error: unknown): string {
  // Duck-typed: errors thrown by the addon or from another realm fail `instanceof Error`.
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const { code, message } = error as { code?: unknown; message: unknown };
    return typeof code === 'string' ? `${code}: ${String(message)}` : String(message);
  }
  return String(error);
}
