import type { ConsumerOptions, ProducerOptions } from 'kafka-napi';

/** The platform's topics under their `KAFKA_CONFIG.topics` names. */
export const PLATFORM_TOPICS = {
  MOVIE_EVENTS: 'movie-events',
  MOVIE_VIEWS: 'movie-views',
  USER_ACTIONS: 'user-actions',
  NOTIFICATION_EVENTS: 'notification-events',
} as const;

/** Producer settings; the logger is supplied by the Nest layer. */
export type KafkaProducerConfig = Omit<ProducerOptions, 'logger'>;

/** One consumer's entry in `KAFKA_CONFIG.consumers`: `registerConsumer` options plus its topics. */
export interface KafkaConsumerConfig extends Omit<ConsumerOptions, 'logger'> {
  /** The topics this consumer subscribes to. */
  topics: string[];
}

/** The app's centralised Kafka configuration, as `config/kafka.config.ts` exports it. */
export interface KafkaConfig<
  Topics extends Record<string, string> = Record<string, string>,
  Consumers extends Record<string, KafkaConsumerConfig> = Record<string, KafkaConsumerConfig>,
> {
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
 * - `KAFKA_TOPIC_PREFIX` in front of every topic name and consumer group (to isolate
 *   environments or runs on one cluster), and the producer's `topicPrefix`;
 * - `KAFKA_FROM_BEGINNING` (`true`/`false`) for consumers that do not say; by default
 *   `true` unless `NODE_ENV=production`, as the platform's note recommends.
 *
 * Consumers get `clientId` `<key>-consumer` and `groupId` `<key>-group` unless given.
 */
export function defineKafkaConfig<const Topics extends Record<string, string>, ConsumerNames extends string>(
  definition: KafkaConfigDefinition<Topics, ConsumerNames>,
): KafkaConfig<Topics, Record<ConsumerNames, KafkaConsumerConfig>> {
  const env = definition.env ?? process.env;
  const brokers = listFromEnv(env.KAFKA_BROKERS);
  const prefix = env.KAFKA_TOPIC_PREFIX?.trim() ?? '';
  const fromBeginning =
    booleanFromEnv(env.KAFKA_FROM_BEGINNING, 'KAFKA_FROM_BEGINNING') ?? env.NODE_ENV !== 'production';

  const topics = Object.fromEntries(
    Object.entries(definition.topics).map(([name, topic]) => [name, `${prefix}${topic}`]),
  ) as Topics;

  const entries = definition.consumers(topics);
  const consumers = Object.fromEntries(
    Object.entries<KafkaConsumerConfig>(entries).map(([key, entry]) => {
      if (!Array.isArray(entry.topics) || entry.topics.length === 0) {
        throw configError(`consumers.${key}.topics must name at least one topic`);
      }
      const consumer: KafkaConsumerConfig = {
        clientId: `${key}-consumer`,
        fromBeginning,
        ...(brokers ? { brokers } : {}),
        ...entry,
        // Two prefixes on one cluster must not share a group and rebalance each other.
        groupId: `${prefix}${entry.groupId ?? `${key}-group`}`,
      };
      return [key, consumer];
    }),
  ) as Record<ConsumerNames, KafkaConsumerConfig>;

  const producer: KafkaProducerConfig = {
    ...(brokers ? { brokers } : {}),
    // The typed helpers (`sendMovieEvent`, ...) then write to the prefixed topics too.
    ...(prefix ? { topicPrefix: prefix } : {}),
    ...(env.KAFKA_CLIENT_ID?.trim() ? { clientId: env.KAFKA_CLIENT_ID.trim() } : {}),
    ...definition.producer,
  };
  return { producer, consumers, topics };
}

function listFromEnv(value: string | undefined): string[] | undefined {
  const list = value
    ?.split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return list && list.length > 0 ? list : undefined;
}

function booleanFromEnv(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const normalised = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(normalised)) return true;
  if (['false', '0', 'no'].includes(normalised)) return false;
  throw configError(`${name} must be true or false, got ${JSON.stringify(value)}`);
}

function configError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_INVALID_CONFIG' });
}
