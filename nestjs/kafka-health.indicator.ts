import { Injectable } from '@nestjs/common';
import type { BrokerMetrics } from 'kafka-napi';
import {
  type BaseKafkaConsumerService,
  type KafkaConsumerState,
  liveKafkaConsumers,
} from './base-kafka-consumer.service';
import { KafkaProducerService } from './kafka-producer.service';

/** `up` or `down`, as @nestjs/terminus reads a health indicator's result. */
export type KafkaHealthStatus = 'up' | 'down';

/** The producer's part of a health result. */
export type KafkaProducerHealth = {
  status: KafkaHealthStatus;
  /** Why it is down. */
  message?: string;
  clientId: string;
  /** Whether a broker is reachable: false as soon as librdkafka reports every broker down. */
  connected: boolean;
  /** Messages handed over and not yet acknowledged. */
  queued: number;
  /** Brokers in state `UP`, once librdkafka's statistics have arrived. */
  brokersUp?: number;
  /** Each broker's librdkafka state (`UP`, `DOWN`, `CONNECT`, ...) by name, once statistics have arrived. */
  brokers?: Record<string, string>;
};

/** One consumer's part of a health result. */
export type KafkaConsumerHealth = {
  status: KafkaHealthStatus;
  /** Why it is down. */
  message?: string;
  state: KafkaConsumerState;
  /** Why its last start failed, while `retrying`. */
  error?: string;
  /** Its consumer group, once running. */
  groupId?: string;
  /** Whether a broker is reachable, once running. */
  connected?: boolean;
  /** The sum of its partitions' lag, once running. */
  totalLag?: number;
};

/** Every consumer's health, under their names. */
export type KafkaConsumersHealth = {
  status: KafkaHealthStatus;
  /** The consumers that are down, and why. */
  message?: string;
  consumers: Record<string, KafkaConsumerHealth>;
};

/** The producer and every consumer. */
export type KafkaHealth = {
  status: KafkaHealthStatus;
  /** What is down, and why. */
  message?: string;
  producer: KafkaProducerHealth;
  consumers: Record<string, KafkaConsumerHealth>;
};

export interface KafkaConsumerHealthOptions {
  /**
   * The consumers to report on. Default: every `BaseKafkaConsumerService` of the process
   * between its module's init and destroy.
   */
  consumers?: readonly BaseKafkaConsumerService[];
  /** Count a paused consumer as up. Default false: only `running` is up. */
  allowPaused?: boolean;
}

/**
 * A health indicator in the shape @nestjs/terminus expects, `{ [key]: { status: 'up' | 'down', ... } }`,
 * without depending on it: pass its checks to terminus' `HealthCheckService.check`.
 *
 * ```ts
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.kafka.isHealthy('kafka')]);
 * }
 * ```
 *
 * A check never throws: a failing part is returned as `status: 'down'`, which is how terminus 11
 * and 12 (`HealthIndicatorService`) expect it (12 answers 500, not 503, to an indicator that
 * throws). The producer is up while a broker is reachable; a consumer is up while it is
 * `running` (joined its group, not paused) and reaches a broker.
 */
@Injectable()
export class KafkaHealthIndicator {
  constructor(private readonly producerService: KafkaProducerService) {}

  /** The producer and every consumer under one key: up when all of them are. */
  isHealthy<const Key extends string = 'kafka'>(
    key: Key = 'kafka' as Key,
    options: KafkaConsumerHealthOptions = {},
  ): Record<Key, KafkaHealth> {
    const producer = this.producerHealth();
    const consumers = this.consumersHealth(options);
    const down = [
      ...(producer.status === 'down' ? [`producer: ${producer.message}`] : []),
      ...downConsumers(consumers),
    ];
    return result(key, { ...status(down), producer, consumers });
  }

  /** The producer alone: up while a broker is reachable. */
  checkProducer<const Key extends string = 'kafka-producer'>(
    key: Key = 'kafka-producer' as Key,
  ): Record<Key, KafkaProducerHealth> {
    return result(key, this.producerHealth());
  }

  /** The consumers alone: up when every one of them is (also when there is none). */
  checkConsumers<const Key extends string = 'kafka-consumers'>(
    key: Key = 'kafka-consumers' as Key,
    options: KafkaConsumerHealthOptions = {},
  ): Record<Key, KafkaConsumersHealth> {
    const consumers = this.consumersHealth(options);
    return result(key, { ...status(downConsumers(consumers)), consumers });
  }

  private producerHealth(): KafkaProducerHealth {
    const { producer } = this.producerService;
    const connected = producer.isConnected;
    const metrics = producer.metrics();
    return {
      status: connected ? 'up' : 'down',
      ...(connected ? {} : { message: 'no broker reachable' }),
      clientId: producer.clientId,
      connected,
      queued: producer.queuedMessages,
      ...(metrics.statisticsAt === undefined ? {} : brokerStates(metrics.brokersUp, metrics.brokers)),
    };
  }

  private consumersHealth(options: KafkaConsumerHealthOptions): Record<string, KafkaConsumerHealth> {
    const report: Record<string, KafkaConsumerHealth> = {};
    for (const consumer of options.consumers ?? liveKafkaConsumers()) {
      let name = consumer.name;
      for (let n = 2; name in report; n++) name = `${consumer.name}#${n}`;
      report[name] = consumerHealth(consumer, options.allowPaused ?? false);
    }
    return report;
  }
}

function consumerHealth(consumer: BaseKafkaConsumerService, allowPaused: boolean): KafkaConsumerHealth {
  const state = consumer.state;
  const metrics = consumer.metrics();
  const connected = metrics?.connected;
  const active = state === 'running' || (allowPaused && state === 'paused');
  const reason = !active
    ? `${state}${consumer.error === undefined ? '' : ` (${consumer.error})`}`
    : connected === false
      ? 'no broker reachable'
      : undefined;
  return {
    status: reason === undefined ? 'up' : 'down',
    ...(reason === undefined ? {} : { message: reason }),
    state,
    ...(consumer.error === undefined ? {} : { error: consumer.error }),
    ...(metrics === undefined
      ? {}
      : { groupId: metrics.groupId, connected: metrics.connected, totalLag: metrics.totalLag }),
  };
}

function downConsumers(consumers: Record<string, KafkaConsumerHealth>): string[] {
  return Object.entries(consumers)
    .filter(([, health]) => health.status === 'down')
    .map(([name, health]) => `${name}: ${health.message}`);
}

function status(down: string[]): { status: KafkaHealthStatus; message?: string } {
  return down.length === 0 ? { status: 'up' } : { status: 'down', message: down.join('; ') };
}

function brokerStates(brokersUp: number, brokers: BrokerMetrics[]): Pick<KafkaProducerHealth, 'brokersUp' | 'brokers'> {
  return { brokersUp, brokers: Object.fromEntries(brokers.map((broker) => [broker.name, broker.state])) };
}

function result<Key extends string, Details>(key: Key, details: Details): Record<Key, Details> {
  return { [key]: details } as Record<Key, Details>;
}
