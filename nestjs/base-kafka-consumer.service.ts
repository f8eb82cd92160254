import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  type ConsumedMessage,
  type ConsumerHandle,
  type ConsumerMetrics,
  type ConsumerStats,
  type KafkaTransaction,
  registerConsumer,
} from 'kafka-napi';
import type { KafkaConsumerConfig } from './kafka-config';
import { errorSummary } from './kafka-producer.service';
import { toKafkaLogger } from './logger';

/**
 * What `handleMessage` receives: the message with its value already parsed and
 * validated in Rust (see the consumer's `schema`). Named after kafkajs' type so
 * handlers keep their signature when migrating.
 */
export type EachMessagePayload<Value = any> = ConsumedMessage & { value?: Value };

/** Where a consumer is in its life. */
export type KafkaConsumerState = 'idle' | 'starting' | 'running' | 'paused' | 'retrying' | 'closed';

/** How long to wait before registering again after a failed attempt. */
const RESTART_DELAY_MS = 5_000;

/**
 * Every consumer service of the process between its module's init and destroy, in
 * start order: what `KafkaHealthIndicator` reports on.
 */
const liveConsumers = new Set<BaseKafkaConsumerService>();

/** The consumer services started and not yet destroyed, in start order. */
export function liveKafkaConsumers(): BaseKafkaConsumerService[] {
  return [...liveConsumers];
}

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
export abstract class BaseKafkaConsumerService implements OnModuleInit, OnModuleDestroy {
  /** Nest logger with the consumer's name as context. */
  protected readonly logger: Logger;
  private handle: ConsumerHandle | undefined;
  private starting: Promise<void> | undefined;
  private currentState: KafkaConsumerState = 'idle';
  private closing = false;
  private lastError: string | undefined;
  private readyWaiters: Array<() => void> = [];
  private cancelRestartDelay: (() => void) | undefined;

  protected constructor(
    protected readonly consumerConfig: KafkaConsumerConfig,
    /** The consumer's name: its logger context and its key in health reports. */
    readonly name: string,
  ) {
    this.logger = new Logger(name);
  }

  /**
   * Handles one message; throw (or reject) to have it retried, then dead-lettered.
   * With `exactlyOnce` in the consumer's config, `tx` sends within the transaction
   * that also commits the message's offset.
   */
  protected abstract handleMessage(payload: EachMessagePayload, tx?: KafkaTransaction): Promise<void>;

  /**
   * The message's value as `T`. Values are parsed (and validated, with a
   * `schema`) in Rust before they arrive; a raw Buffer or string (`schema: 'raw'`)
   * is parsed as JSON here.
   */
  protected parseMessage<T>(payload: EachMessagePayload): T {
    const value = payload.value;
    if (Buffer.isBuffer(value) || typeof value === 'string') {
      try {
        return JSON.parse(value.toString()) as T;
      } catch (error) {
        throw Object.assign(new Error(`message is not JSON: ${errorSummary(error)}`), { code: 'ERR_SERIALIZATION' });
      }
    }
    return value as T;
  }

  onModuleInit(): void {
    liveConsumers.add(this);
    this.starting = this.start();
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    this.currentState = 'closed';
    this.cancelRestartDelay?.();
    try {
      await this.starting;
      for (const resolve of this.readyWaiters.splice(0)) resolve();
      const handle = this.handle;
      this.handle = undefined;
      await handle?.close();
    } finally {
      // Reported (as `closed`, so down) while it drains; gone once it has left the group.
      liveConsumers.delete(this);
    }
  }

  /** Resolves once the consumer has joined its group (or has been closed). */
  ready(): Promise<void> {
    if (this.currentState === 'running' || this.currentState === 'paused') return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** `running` once joined; `retrying` while the brokers cannot be reached. */
  get state(): KafkaConsumerState {
    return this.currentState;
  }

  /** Why the last registration attempt failed, while `retrying`. */
  get error(): string | undefined {
    return this.lastError;
  }

  /** Counters and lag, once running. */
  stats(): ConsumerStats | undefined {
    return this.handle?.stats();
  }

  /**
   * The consumer's metrics (counters, rates, processing time, lag, rebalances, broker
   * connectivity from librdkafka's statistics), once running; else `undefined`.
   */
  metrics(): ConsumerMetrics | undefined {
    return this.handle?.metrics();
  }

  /** Stops taking new messages (in-flight ones finish). */
  pause(): void {
    this.handle?.pause();
    if (this.currentState === 'running') this.currentState = 'paused';
  }

  resume(): void {
    this.handle?.resume();
    if (this.currentState === 'paused') this.currentState = 'running';
  }

  private async start(): Promise<void> {
    const { topics, ...options } = this.consumerConfig;
    while (!this.closing) {
      this.currentState = this.currentState === 'retrying' ? 'retrying' : 'starting';
      try {
        const handle = await registerConsumer(topics, (message, tx) => this.dispatch(message, tx), {
          ...options,
          logger: toKafkaLogger(this.logger),
        });
        if (this.closing) {
          await handle.close();
          return;
        }
        this.handle = handle;
        this.currentState = 'running';
        this.lastError = undefined;
        for (const resolve of this.readyWaiters.splice(0)) resolve();
        return;
      } catch (error) {
        if (this.closing) return;
        this.lastError = errorSummary(error);
        this.currentState = 'retrying';
        this.logger.error(`Could not start consumer (${this.lastError}); retrying in ${RESTART_DELAY_MS / 1000} s`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RESTART_DELAY_MS);
          this.cancelRestartDelay = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private async dispatch(message: ConsumedMessage, tx: KafkaTransaction | undefined): Promise<void> {
    try {
      await this.handleMessage(message, tx);
    } catch (error) {
      this.logger.error(`Failed to process ${describeDelivery(message)}: ${errorSummary(error)}`);
      throw error;
    }
  }
}

/** Where a delivery came from: one message, or (with the `batch` option) an array of them. */
function describeDelivery(delivery: ConsumedMessage | ConsumedMessage[]): string {
  if (Array.isArray(delivery)) {
    const [first] = delivery;
    if (first === undefined) return 'an empty batch';
    return `a batch of ${delivery.length} from ${first.topic}[${first.partition}]@${first.offset} (attempt ${first.attempt})`;
  }
  return `${delivery.topic}[${delivery.partition}]@${delivery.offset} (attempt ${delivery.attempt})`;
}
