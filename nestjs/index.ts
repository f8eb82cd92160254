/**
 * The NestJS layer of kafka-napi: a global producer module, a base class for
 * consumers, a terminus-style health indicator and the centralised config helper.
 * `@nestjs/common` and `@nestjs/core` are peer dependencies; the core package works
 * without them. `@nestjs/terminus` is optional: the health indicator only returns
 * results in its shape.
 */
export {
  BaseKafkaConsumerService,
  type EachMessagePayload,
  type KafkaConsumerState,
} from './base-kafka-consumer.service';
export {
  defineKafkaConfig,
  type KafkaConfig,
  type KafkaConfigDefinition,
  type KafkaConsumerConfig,
  type KafkaProducerConfig,
  PLATFORM_TOPICS,
} from './kafka-config';
export {
  type KafkaConsumerHealth,
  type KafkaConsumerHealthOptions,
  type KafkaConsumersHealth,
  type KafkaHealth,
  KafkaHealthIndicator,
  type KafkaHealthStatus,
  type KafkaProducerHealth,
} from './kafka-health.indicator';
export { KafkaProducerModule, type KafkaProducerModuleAsyncOptions } from './kafka-producer.module';
export {
  KAFKA_PRODUCER_OPTIONS,
  type KafkaProducerModuleOptions,
  KafkaProducerService,
} from './kafka-producer.service';
export { type NestLoggerLike, toKafkaLogger } from './logger';
