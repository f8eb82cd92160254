import type { ConsumerOptions, ProducerOptions } from 'kafka-napi';
/** The platform's topics under their `KAFKA_CONFIG.topics` names. */
export declare const PLATFORM_TOPICS: {
    readonly MOVIE_EVENTS: "movie-events";
    readonly MOVIE_VIEWS: "movie-views";
    readonly USER_ACTIONS: "user-actions";
    readonly NOTIFICATION_EVENTS: "notification-events";
};
/** Producer settings; the logger is supplied by the Nest layer. */
export type KafkaProducerConfig = Omit<ProducerOptions, 'logger'>;
/** One consumer's entry in `KAFKA_CONFIG.consumers`: `registerConsumer` options plus its topics. */
export interface KafkaConsumerConfig extends Omit<ConsumerOptions, 'logger'> {
    /** The topics this consumer subscribes to. */
    topics: string[];
}
/** The app's centralised Kafka configuration, as `config/kafka.config.ts` exports it. */
export interface KafkaConfig<Topics extends Record<string, string> = Record<string, string>, Consumers extends Record<string, KafkaConsumerConfig> = Record<string, KafkaConsumerConfig>> {
    producer: KafkaProducerConfig;
    consumers: Consumers;
    topics: Topics;
}
/** What `defineKafkaConfig` takes. */
export interface KafkaConfigDefinition<Topics extends Record<string, string>, ConsumerNames extends string> {
    /** Logical name → topic. Every name is prefixed with `KAFKA_TOPIC_PREFIX` when it is set. */
    topics: Topics;
    /** One entry per consumer, given the (prefixed) topics; `clientId` and `groupId` default from its key. */
    consumers: (topics: Topics) => Record<ConsumerNames, KafkaConsumerConfig>;
    /** Producer settings over the environment's. */
    producer?: KafkaProducerConfig;
    /** Defaults to `process.env`. */
    env?: Record<string, string | undefined>;
}
/**
 * Builds the platform's `KAFKA_CONFIG` from the environment:
 * - `KAFKA_BROKERS` (comma-separated) for the producer and every consumer that names none;
 *   unset, the addon runs its embedded in-process cluster (development only);
 * - `KAFKA_CLIENT_ID` for the producer;
 * - `KAFKA_TOPIC_PREFIX` in front of every topic name (to isolate environments or runs);
 * - `KAFKA_FROM_BEGINNING` (`true`/`false`) for consumers that do not say; by default
 *   `true` unless `NODE_ENV=production`, as the platform's note recommends.
 *
 * Consumers get `clientId` `<key>-consumer` and `groupId` `<key>-group` unless given.
 */
export declare function defineKafkaConfig<const Topics extends Record<string, string>, ConsumerNames extends string>(definition: KafkaConfigDefinition<Topics, ConsumerNames>): KafkaConfig<Topics, Record<ConsumerNames, KafkaConsumerConfig>>;
