/**
 * The base class every consumer extends: kafka-napi's, which registers the consumer when its
 * module starts (retrying every 5 s while Kafka is unreachable), logs with the consumer's name
 * as context, retries a failing message and then dead-letters it, and drains, commits and
 * leaves the group on shutdown. It replaces the deprecated kafka-consumer-index.service.
 */
export { BaseKafkaConsumerService } from 'kafka-napi/nestjs';
