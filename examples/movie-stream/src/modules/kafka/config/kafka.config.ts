import { hostname } from 'node:os';
import { registerAs } from '@nestjs/config';
import { defineKafkaConfig, type KafkaConsumerConfig } from 'kafka-napi/nestjs';
import { NOTIFICATION_EVENT_SCHEMA } from '../consumer/base/kafka-consumer.interface';

/** Partitions of every topic the app creates at start-up: room for four members per consumer group. */
export const TOPIC_PARTITIONS = 4;

/**
 * The app's centralised Kafka configuration, from the environment:
 * - `KAFKA_BROKERS` (comma-separated); unset, the addon runs its embedded in-process cluster;
 * - `KAFKA_CLIENT_ID` (producer; default `movie-stream-producer`);
 * - `KAFKA_TOPIC_PREFIX` in front of every topic and consumer group, to isolate runs on one cluster;
 * - `KAFKA_FROM_BEGINNING` (default `true` outside production);
 * - `HOSTNAME` (default: the machine's host name) in the view counter's transactional id, which must
 *   differ between instances running at once (in Kubernetes, HOSTNAME is the pod's name);
 * - `KAFKA_SESSION_TIMEOUT_MS` and `KAFKA_FETCH_WAIT_MAX_MS` for the consumers (tests and the demo
 *   lower both: a short session timeout makes the first group join faster, a short fetch wait
 *   lowers latency).
 */
export function buildKafkaConfig(env: NodeJS.ProcessEnv = process.env) {
  const tuning = consumerTuning(env);
  const prefix = env.KAFKA_TOPIC_PREFIX?.trim() ?? '';
  const instance = env.HOSTNAME?.trim() || hostname();
  const config = defineKafkaConfig({
    env,
    topics: {
      MOVIE_EVENTS: 'movie-events',
      MOVIE_VIEWS: 'movie-views',
      USER_ACTIONS: 'user-actions',
      NOTIFICATION_EVENTS: 'notification-events',
      // Written by the view counter: each view's running count per movie.
      MOVIE_VIEW_COUNTS: 'movie-view-counts',
    },
    producer: env.KAFKA_CLIENT_ID?.trim() ? {} : { clientId: 'movie-stream-producer' },
    consumers: (topics) => ({
      // Views arrive on both topics: `movie-views` from the ready-made helper, `movie-events`
      // when a view carries metadata. Messages of different movies are handled in parallel,
      // each movie's in order (they are keyed by movieId).
      movie: { topics: [topics.MOVIE_EVENTS, topics.MOVIE_VIEWS], schema: 'MovieEvent', concurrency: 8, ...tuning },
      analytics: { topics: [topics.USER_ACTIONS], schema: 'AnalyticsEvent', ...tuning },
      // Step 3 of adding a consumer: its entry (clientId `notification-consumer`, groupId
      // `notification-group` by default) and its topic, NOTIFICATION_EVENTS, above.
      notification: { topics: [topics.NOTIFICATION_EVENTS], schema: NOTIFICATION_EVENT_SCHEMA, ...tuning },
      // Exactly-once: the views again, in a group of its own, each batch counted into
      // MOVIE_VIEW_COUNTS in one transaction with the batch's offsets (so `concurrency` stays 1,
      // the default; `batch` gives the throughput).
      viewCounter: {
        topics: [topics.MOVIE_VIEWS],
        clientId: 'view-counter-consumer',
        groupId: 'view-counter-group',
        schema: 'MovieViewEvent',
        batch: { maxMessages: 200, maxWaitMs: 50 },
        exactlyOnce: {
          // The same across restarts of one instance (the restart fences the old one and aborts
          // what it left open), different for instances running at once; prefixed like the
          // groups, so runs sharing a cluster do not fence each other.
          transactionalId: `${prefix}view-counter-${instance}`,
          // No compression: the tests check the output at the wire level, with a reader that
          // decodes only uncompressed (and gzip) record batches.
          config: { 'compression.type': 'none' },
        },
        ...tuning,
      },
    }),
  });
  return config;
}

export type MovieStreamKafkaConfig = ReturnType<typeof buildKafkaConfig>;

/** Read once at start-up, as the consumers' constructors use it. */
export const KAFKA_CONFIG: MovieStreamKafkaConfig = buildKafkaConfig();

/** The same configuration as a @nestjs/config namespace, for `ConfigService.get('kafka')`. */
export const kafkaConfig = registerAs('kafka', () => KAFKA_CONFIG);

function consumerTuning(env: NodeJS.ProcessEnv): Partial<KafkaConsumerConfig> {
  const sessionTimeoutMs = positiveIntegerFromEnv(env, 'KAFKA_SESSION_TIMEOUT_MS');
  const fetchWaitMaxMs = positiveIntegerFromEnv(env, 'KAFKA_FETCH_WAIT_MAX_MS');
  return {
    ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }),
    ...(fetchWaitMaxMs === undefined ? {} : { config: { 'fetch.wait.max.ms': fetchWaitMaxMs } }),
  };
}

function positiveIntegerFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]?.trim();
  if (!text) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw Object.assign(new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`), {
      code: 'ERR_INVALID_CONFIG',
    });
  }
  return value;
}
