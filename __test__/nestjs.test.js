// The NestJS layer (`kafka-napi/nestjs`) inside real Nest application contexts,
// against the real broker. Plain JS, so decorators are applied as functions.
require('reflect-metadata');
const { Injectable, Logger, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { ConfigModule, ConfigService } = require('@nestjs/config');
const {
  BaseKafkaConsumerService,
  KafkaProducerModule,
  KafkaProducerService,
  defineKafkaConfig,
  PLATFORM_TOPICS,
} = require('kafka-napi/nestjs');
const { brokers, uniqueName, readTopic } = require('./helpers');

/** Tansu stalls a group's first join for about half the session timeout. */
const FAST_GROUP = { sessionTimeoutMs: 6000, config: { 'fetch.wait.max.ms': 50 } };

/** Captures what Nest's `Logger` prints, with its context. */
function captureNestLogs() {
  /** @type {{level: string, message: string, context: string}[]} */
  const lines = [];
  const record =
    (/** @type {string} */ level) =>
    (/** @type {any} */ message, /** @type {any[]} */ ...rest) =>
      lines.push({ level, message: String(message), context: String(rest[rest.length - 1]) });
  const logger = {
    log: record('log'),
    error: record('error'),
    warn: record('warn'),
    debug: record('debug'),
    verbose: record('verbose'),
  };
  return { lines, logger };
}

/** @param {() => boolean} condition */
async function waitFor(condition, timeoutMs = 20000) {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * A consumer written the way the platform's consumers are, recording what it handles.
 * @param {any} config @param {string} name @param {(event: any) => boolean} [fail]
 */
function recordingConsumer(config, name, fail = () => false) {
  class RecordingConsumer extends BaseKafkaConsumerService {
    constructor() {
      super(config, name);
      /** @type {any[]} */
      this.handled = [];
    }
    /** @param {any} payload */
    async handleMessage(payload) {
      const event = this.parseMessage(payload);
      if (fail(event)) throw new Error(`cannot handle ${JSON.stringify(event)}`);
      this.handled.push({ event, partition: payload.partition, key: payload.key });
    }
  }
  return RecordingConsumer;
}

/** @param {any} metadata @param {any[]} providers */
function moduleOf(metadata, providers = []) {
  class TestModule {}
  Module({ ...metadata, providers: [...(metadata.providers ?? []), ...providers] })(TestModule);
  return TestModule;
}

describe('kafka-napi/nestjs', () => {
  test('the bare global module reads the environment; forRoot and forRootAsync (ConfigService) override it', async () => {
    const bare = await NestFactory.createApplicationContext(moduleOf({ imports: [KafkaProducerModule] }), {
      logger: false,
    });
    expect(bare.get(KafkaProducerService).producer.brokers).toEqual(brokers());
    await bare.close();

    const explicit = await NestFactory.createApplicationContext(
      moduleOf({ imports: [KafkaProducerModule.forRoot({ brokers: brokers(), clientId: 'from-for-root' })] }),
      { logger: false },
    );
    expect(explicit.get(KafkaProducerService).producer.clientId).toBe('from-for-root');
    await explicit.close();

    const fromConfig = await NestFactory.createApplicationContext(
      moduleOf({
        imports: [
          KafkaProducerModule.forRootAsync({
            imports: [
              ConfigModule.forRoot({
                ignoreEnvFile: true,
                load: [() => ({ KAFKA_BROKERS: brokers().join(','), KAFKA_CLIENT_ID: 'from-config-service' })],
              }),
            ],
            inject: [ConfigService],
            useFactory: (/** @type {any} */ config) => ({
              brokers: config.get('KAFKA_BROKERS'),
              clientId: config.get('KAFKA_CLIENT_ID'),
            }),
          }),
        ],
      }),
      { logger: false },
    );
    const service = fromConfig.get(KafkaProducerService);
    expect(service.producer.clientId).toBe('from-config-service');
    await fromConfig.close();
    // Shutdown disconnected the producer: later sends fail with a coded error.
    await expect(service.sendMessage('any-topic', { late: true })).rejects.toMatchObject({
      code: 'ERR_KAFKA_DISCONNECTED',
    });
  });

  test('the platform calls land on their topics, keyed by movieId; topics are created at start-up', async () => {
    const topic = uniqueName('custom');
    const app = await NestFactory.createApplicationContext(
      moduleOf({
        imports: [
          KafkaProducerModule.forRoot({
            brokers: brokers(),
            topics: [{ name: topic, partitions: 3 }],
            logLevel: 'warn',
          }),
        ],
      }),
      { logger: false },
    );
    const kafka = app.get(KafkaProducerService);
    const created = await kafka.ensureTopics([{ name: topic, partitions: 3 }]);
    expect(created).toEqual([{ name: topic, created: false }]);

    const view = await kafka.sendMovieViewEvent('user-1', 'movie-7');
    const like = await kafka.sendMovieEvent('LIKE', 'user-1', 'movie-7', { source: 'web' });
    const custom = await kafka.sendMessage(topic, { customField: 'value' }, { key: 'k' });
    const batch = await kafka.send({ topic, messages: [{ key: 'k', value: 'second' }] });
    expect(view.topic).toBe(PLATFORM_TOPICS.MOVIE_VIEWS);
    expect(like.topic).toBe(PLATFORM_TOPICS.MOVIE_EVENTS);
    expect(custom.partition).toBe(batch[0].partition);
    expect(batch[0].offset).toBe(custom.offset + 1);
    await app.close();

    const read = await readTopic(topic, 2);
    expect(read.map((/** @type {any} */ message) => message.value.toString())).toEqual([
      '{"customField":"value"}',
      'second',
    ]);
  });

  test('a consumer extending the base class starts with the app, logs under its name, parks failures and closes on shutdown', async () => {
    const topic = uniqueName('movie-events');
    const config = defineKafkaConfig({
      topics: { MOVIE_EVENTS: topic },
      consumers: (topics) => ({
        movie: {
          topics: [topics.MOVIE_EVENTS],
          groupId: uniqueName('movie-group'),
          schema: 'MovieEvent',
          retry: { retries: 1, initialBackoffMs: 10 },
          ...FAST_GROUP,
        },
      }),
      env: { KAFKA_BROKERS: brokers().join(',') },
    });
    const MovieConsumer = recordingConsumer(
      config.consumers.movie,
      'MovieConsumer',
      (/** @type {any} */ event) => event.eventType === 'SHARE',
    );
    const { lines, logger } = captureNestLogs();
    Logger.overrideLogger(logger);
    try {
      // The topic is created by the producer module while the consumer is already
      // waiting for it (Tansu does not create topics when consumers ask for them).
      const producerModule = KafkaProducerModule.forRoot({
        brokers: brokers(),
        topics: [{ name: topic, partitions: 2 }],
      });
      const AppModule = moduleOf({ imports: [producerModule] }, [
        { provide: MovieConsumer, useFactory: () => new MovieConsumer() },
      ]);
      const app = await NestFactory.createApplicationContext(AppModule, { logger });
      const consumer = app.get(MovieConsumer);
      expect(['starting', 'running']).toContain(consumer.state);
      await consumer.ready();
      expect(consumer.state).toBe('running');

      let producer = app.get(KafkaProducerService).producer;
      const send = (/** @type {any} */ value) => producer.send({ topic, messages: [{ key: 'movie-1', value }] });
      await send({ eventType: 'VIEW', userId: 'u1', movieId: 'movie-1', timestamp: 1 });
      await send({ eventType: 'BOGUS', userId: 'u1', movieId: 'movie-1', timestamp: 2 });
      await send({ eventType: 'SHARE', userId: 'u1', movieId: 'movie-1', timestamp: 3 });
      await send({ eventType: 'LIKE', userId: 'u2', movieId: 'movie-1', timestamp: 4 });
      await waitFor(() => consumer.handled.length === 2 && consumer.stats()?.deadLettered === 2);
      expect(consumer.handled.map((/** @type {any} */ entry) => entry.event.eventType)).toEqual(['VIEW', 'LIKE']);
      expect(consumer.handled[0]).toMatchObject({ key: 'movie-1', event: { userId: 'u1', timestamp: 1 } });

      await app.close();
      expect(consumer.state).toBe('closed');
      const mine = lines.filter((line) => line.context === 'MovieConsumer');
      expect(mine.some((line) => line.message.startsWith('Subscribed to topic: ' + topic))).toBe(true);
      expect(mine.some((line) => line.level === 'error' && line.message.includes('cannot handle'))).toBe(true);
      // The addon's own client name is not printed as a second message.
      expect(lines.every((line) => line.context !== 'movie-consumer')).toBe(true);

      const parked = await readTopic(`${topic}.dlq`, 2);
      expect(parked.map((/** @type {any} */ message) => JSON.parse(message.value.toString()).eventType).sort()).toEqual(
        ['BOGUS', 'SHARE'],
      );

      // Shutdown committed everything: a restarted app gets nothing again.
      const again = await NestFactory.createApplicationContext(AppModule, { logger: false });
      const restarted = again.get(MovieConsumer);
      producer = again.get(KafkaProducerService).producer;
      await restarted.ready();
      await send({ eventType: 'COMMENT', userId: 'u3', movieId: 'movie-1', timestamp: 5 });
      await waitFor(() => restarted.handled.length >= 1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(restarted.handled.map((/** @type {any} */ entry) => entry.event.eventType)).toEqual(['COMMENT']);
      await again.close();
    } finally {
      Logger.overrideLogger(new (require('@nestjs/common').ConsoleLogger)());
    }
  });

  test('a consumer whose brokers are unreachable does not stop the app from starting, and keeps retrying', async () => {
    const Unreachable = recordingConsumer(
      { topics: ['nowhere'], brokers: ['127.0.0.1:1'], joinTimeoutMs: 300, logLevel: 'off' },
      'Unreachable',
    );
    const { lines, logger } = captureNestLogs();
    const app = await NestFactory.createApplicationContext(
      moduleOf({}, [{ provide: Unreachable, useFactory: () => new Unreachable() }]),
      { logger },
    );
    const consumer = app.get(Unreachable);
    await waitFor(() => consumer.state === 'retrying');
    expect(consumer.error).toMatch(/^ERR_KAFKA_TIMED_OUT/);
    expect(lines.some((line) => line.level === 'error' && line.context === 'Unreachable')).toBe(true);
    await app.close();
    expect(consumer.state).toBe('closed');
  });
});

describe('defineKafkaConfig', () => {
  const definition = {
    topics: PLATFORM_TOPICS,
    consumers: (/** @type {typeof PLATFORM_TOPICS} */ topics) => ({
      movie: { topics: [topics.MOVIE_EVENTS, topics.MOVIE_VIEWS] },
      notification: { topics: [topics.NOTIFICATION_EVENTS], groupId: 'custom-group' },
    }),
  };

  test('builds producer, consumers and topics from the environment', () => {
    const config = defineKafkaConfig({
      ...definition,
      env: {
        KAFKA_BROKERS: 'a:9092, b:9093',
        KAFKA_CLIENT_ID: 'movie-stream-producer',
        KAFKA_TOPIC_PREFIX: 'staging.',
      },
    });
    expect(config.producer).toEqual({
      brokers: ['a:9092', 'b:9093'],
      clientId: 'movie-stream-producer',
      topicPrefix: 'staging.',
    });
    expect(config.topics.MOVIE_EVENTS).toBe('staging.movie-events');
    expect(config.consumers.movie).toEqual({
      clientId: 'movie-consumer',
      groupId: 'staging.movie-group',
      fromBeginning: true,
      brokers: ['a:9092', 'b:9093'],
      topics: ['staging.movie-events', 'staging.movie-views'],
    });
    expect(config.consumers.notification.groupId).toBe('staging.custom-group');
  });

  test('no brokers leaves them to the addon (embedded cluster); production starts from new messages', () => {
    const config = defineKafkaConfig({ ...definition, env: { NODE_ENV: 'production' } });
    expect(config.producer).toEqual({});
    expect(config.consumers.movie.brokers).toBeUndefined();
    expect(config.consumers.movie.fromBeginning).toBe(false);
    expect(
      defineKafkaConfig({ ...definition, env: { KAFKA_FROM_BEGINNING: 'no' } }).consumers.movie.fromBeginning,
    ).toBe(false);
  });

  test('bad values are coded errors', () => {
    expect(() => defineKafkaConfig({ ...definition, env: { KAFKA_FROM_BEGINNING: 'maybe' } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_CONFIG', message: expect.stringContaining('KAFKA_FROM_BEGINNING') }),
    );
    expect(() => defineKafkaConfig({ topics: {}, consumers: () => ({ empty: { topics: [] } }), env: {} })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_CONFIG' }),
    );
  });
});
