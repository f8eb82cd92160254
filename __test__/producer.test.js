// KafkaProducer against the real broker (KAFKA_BROKERS), read back with kafkajs.
const { KafkaProducer, topics } = require('../index');
const { Kafka, logLevel } = require('kafkajs');
const { brokers, uniqueName, recordingLogger, readTopic, isError, runNode } = require('./helpers');

jest.setTimeout(60000);

/** @type {KafkaProducer} */
let producer;
const quiet = { logLevel: /** @type {const} */ ('warn') };

beforeAll(async () => {
  producer = new KafkaProducer({ brokers: brokers(), clientId: 'producer-test', ...quiet });
  await producer.connect({ timeoutMs: 20000 });
  await producer.ensureTopics([
    { name: topics().movieEvents, partitions: 4 },
    { name: topics().movieViews, partitions: 4 },
  ]);
});

afterAll(async () => {
  await producer.disconnect();
});

async function freshTopic(partitions = 4) {
  const name = uniqueName('test');
  const [result] = await producer.ensureTopics([{ name, partitions }]);
  expect(result).toEqual({ name, created: true });
  return name;
}

test('connects and reports its identity', () => {
  expect(producer.isConnected).toBe(true);
  expect(producer.clientId).toBe('producer-test');
  expect(producer.brokers).toEqual(brokers());
});

test('ensureTopics is idempotent', async () => {
  const name = await freshTopic(2);
  await expect(producer.ensureTopics([{ name, partitions: 2 }])).resolves.toEqual([{ name, created: false }]);
});

test('events with one key land on one partition, in order', async () => {
  const topic = await freshTopic(4);
  const sends = [];
  for (let i = 0; i < 200; i += 1) {
    // Each message has its own promise; they are all in flight together.
    sends.push(producer.send({ topic, messages: [{ key: `movie-${i % 5}`, value: { movie: i % 5, seq: i } }] }));
  }
  const reports = (await Promise.all(sends)).flat();
  expect(reports).toHaveLength(200);

  const partitionOf = new Map();
  for (const [i, report] of reports.entries()) {
    const key = `movie-${i % 5}`;
    if (!partitionOf.has(key)) partitionOf.set(key, report.partition);
    expect(report.partition).toBe(partitionOf.get(key));
    expect(report.topic).toBe(topic);
  }

  const read = await readTopic(topic, 200);
  const seenPerKey = new Map();
  for (const message of read) {
    const key = message.key.toString();
    const value = JSON.parse(message.value.toString());
    expect(message.partition).toBe(partitionOf.get(key));
    const previous = seenPerKey.get(key) ?? -1;
    expect(value.seq).toBeGreaterThan(previous);
    seenPerKey.set(key, value.seq);
  }
  expect(new Set(read.map((m) => JSON.parse(m.value.toString()).seq)).size).toBe(200);
});

test('headers, JSON, strings, Buffers, explicit partitions and tombstones round-trip', async () => {
  const topic = await freshTopic(3);
  const reports = await producer.send({
    topic,
    messages: [
      {
        key: 'a',
        value: { title: 'Inception', tags: ['sci-fi'], rating: 8.8 },
        headers: { source: 'web', bin: Buffer.from([0, 1, 2]) },
      },
      { key: Buffer.from('b'), value: 'plain text', partition: 2, timestamp: 1700000000000 },
      { key: 'c', value: Buffer.from([0xde, 0xad, 0xbe, 0xef]), headers: { multi: ['x', 'y'] } },
      { key: 'd', value: null },
    ],
  });
  expect(reports).toHaveLength(4);
  expect(reports[1].partition).toBe(2);

  const read = await readTopic(topic, 4);
  const byKey = Object.fromEntries(read.map((m) => [m.key.toString(), m]));
  expect(JSON.parse(byKey.a.value.toString())).toEqual({ title: 'Inception', tags: ['sci-fi'], rating: 8.8 });
  expect(byKey.a.headers.source.toString()).toBe('web');
  expect(Buffer.compare(byKey.a.headers.bin, Buffer.from([0, 1, 2]))).toBe(0);
  expect(byKey.b.value.toString()).toBe('plain text');
  expect(byKey.b.partition).toBe(2);
  expect(byKey.b.timestamp).toBe('1700000000000');
  expect(byKey.c.value.equals(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).toBe(true);
  expect(byKey.c.headers.multi.map(String)).toEqual(['x', 'y']);
  expect(byKey.d.value).toBeNull();
});

test('sendMovieEvent, sendMovieViewEvent and sendMessage write the platform events keyed by movieId', async () => {
  const movieId = uniqueName('movie');
  const before = Date.now();
  const like = await producer.sendMovieEvent('LIKE', 'user-1', movieId, { source: 'web', duration: 120 });
  const view = await producer.sendMovieViewEvent('user-1', movieId);
  const numeric = await producer.sendMovieEvent('SHARE', 42, 7);
  expect(like.topic).toBe('movie-events');
  // A report is a plain object of exactly these fields (built in bulk for a wake-up's deliveries).
  expect(Object.keys(like).sort()).toEqual(['offset', 'partition', 'timestamp', 'topic']);
  expect([typeof like.partition, typeof like.offset]).toEqual(['number', 'number']);
  expect(like.timestamp).toBeGreaterThanOrEqual(before);
  expect(view.topic).toBe('movie-views');
  expect(numeric.topic).toBe('movie-events');

  const custom = await freshTopic(1);
  const sent = await producer.sendMessage(
    custom,
    { customField: 'value' },
    { key: movieId, headers: { 'x-trace': '1' } },
  );
  expect(sent.topic).toBe(custom);

  const [customRead] = await readTopic(custom, 1);
  expect(JSON.parse(customRead.value.toString())).toEqual({ customField: 'value' });
  expect(customRead.key.toString()).toBe(movieId);
  expect(customRead.headers['x-trace'].toString()).toBe('1');

  const ours = (/** @type {any[]} */ read) => read.some((m) => m.key.toString() === movieId);
  const views = await readTopic('movie-views', ours);
  const viewEvent = views.map((m) => JSON.parse(m.value.toString())).find((e) => e.movieId === movieId);
  expect(viewEvent).toMatchObject({ eventType: 'VIEW', userId: 'user-1', movieId });
  expect(viewEvent.timestamp).toBeGreaterThanOrEqual(before);
  expect(views.find((m) => JSON.parse(m.value.toString()).movieId === movieId).key.toString()).toBe(movieId);
});

test('sendBatch writes to several topics', async () => {
  const first = await freshTopic(1);
  const second = await freshTopic(1);
  const reports = await producer.sendBatch({
    topicMessages: [
      {
        topic: first,
        messages: [
          { key: 'k', value: '1' },
          { key: 'k', value: '2' },
        ],
      },
      { topic: second, messages: [{ key: 'k', value: '3' }] },
    ],
  });
  expect(reports.map((r) => [r.topic, r.offset])).toEqual([
    [first, 0],
    [first, 1],
    [second, 0],
  ]);
});

test('the idempotent, acks=all configuration is in effect', () => {
  const config = producer.effectiveConfig();
  expect(config['enable.idempotence']).toBe('true');
  expect(config['request.required.acks']).toBe('-1');
  expect(config['compression.codec']).toBe('lz4');
  expect(config.partitioner).toBe('murmur2_random');
});

test('an oversized message is rejected with its librdkafka code and nothing else is affected', async () => {
  const topic = await freshTopic(1);
  const error = await producer.sendMessage(topic, 'x'.repeat(2_000_000)).catch((e) => e);
  expect(error).toMatchObject({
    code: 'ERR_KAFKA_MSG_SIZE_TOO_LARGE',
    librdkafkaCode: 10,
    librdkafkaName: 'MSG_SIZE_TOO_LARGE',
    retriable: false,
  });
  expect(isError(error)).toBe(true);
  await expect(producer.sendMessage(topic, 'fine')).resolves.toMatchObject({ offset: 0 });
});

describe('bad arguments are rejected with ERR_INVALID_ARG', () => {
  const circular = {};
  circular.self = circular;
  /** Deliberately ill-typed calls, as plain JavaScript callers can make them. @type {Array<[string, (p: any) => Promise<unknown>]>} */
  const cases = [
    ['unknown event type', (p) => p.sendMovieEvent('DISLIKE', 'u', 'm')],
    ['lower-case event type', (p) => p.sendMovieEvent('view', 'u', 'm')],
    ['empty userId', (p) => p.sendMovieEvent('VIEW', '', 'm')],
    ['object movieId', (p) => p.sendMovieEvent('VIEW', 'u', {})],
    ['fractional movieId', (p) => p.sendMovieEvent('VIEW', 'u', 1.5)],
    ['array metadata', (p) => p.sendMovieEvent('VIEW', 'u', 'm', [1])],
    ['circular metadata', (p) => p.sendMovieEvent('VIEW', 'u', 'm', circular)],
    ['BigInt in metadata', (p) => p.sendMovieEvent('VIEW', 'u', 'm', { n: 10n })],
    ['missing view userId', (p) => p.sendMovieViewEvent(undefined, 'm')],
    ['send without record', (p) => p.send(undefined)],
    ['send with a string', (p) => p.send('movie-events')],
    ['send without topic', (p) => p.send({ messages: [{ value: 'x' }] })],
    ['invalid topic name', (p) => p.send({ topic: 'bad topic!', messages: [{ value: 'x' }] })],
    ['empty messages', (p) => p.send({ topic: 'movie-events', messages: [] })],
    ['message without value', (p) => p.send({ topic: 'movie-events', messages: [{ key: 'k' }] })],
    ['numeric key', (p) => p.send({ topic: 'movie-events', messages: [{ key: 5, value: 'x' }] })],
    ['negative partition', (p) => p.send({ topic: 'movie-events', messages: [{ value: 'x', partition: -1 }] })],
    ['NaN partition', (p) => p.send({ topic: 'movie-events', messages: [{ value: 'x', partition: NaN }] })],
    ['bad timestamp', (p) => p.send({ topic: 'movie-events', messages: [{ value: 'x', timestamp: 'yesterday' }] })],
    ['header object value', (p) => p.send({ topic: 'movie-events', messages: [{ value: 'x', headers: { h: {} } }] })],
    ['unknown message field', (p) => p.send({ topic: 'movie-events', messages: [{ value: 'x', partiton: 1 }] })],
    [
      'unknown message field inherited from the prototype',
      (p) =>
        p.send({ topic: 'movie-events', messages: [Object.assign(Object.create({ partiton: 1 }), { value: 'x' })] }),
    ],
    [
      'unknown sendMessage option inherited from the prototype',
      (p) => p.sendMessage('movie-events', 'x', Object.assign(Object.create({ partiton: 1 }), { key: 'k' })),
    ],
    ['circular value', (p) => p.send({ topic: 'movie-events', messages: [{ value: circular }] })],
    ['function payload', (p) => p.sendMessage('movie-events', () => 1)],
    ['undefined payload', (p) => p.sendMessage('movie-events', undefined)],
    ['numeric topic', (p) => p.sendMessage(7, 'x')],
    ['ensureTopics with zero partitions', (p) => p.ensureTopics([{ name: 'x', partitions: 0 }])],
    ['ensureTopics with a string', (p) => p.ensureTopics('movie-events')],
    ['flush with a negative timeout', (p) => p.flush(-1)],
    ['connect with a string timeout', (p) => p.connect({ timeoutMs: '5' })],
  ];
  test.each(cases)('%s', async (_name, call) => {
    const error = await call(producer).then(
      () => undefined,
      (e) => e,
    );
    expect(isError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG' });
    expect(error.message.length).toBeGreaterThan(5);
  });

  test('errors name the exact argument path', async () => {
    const producerAny = /** @type {any} */ (producer);
    /** @type {Array<[() => Promise<unknown>, string]>} */
    const paths = [
      [
        () => producerAny.send({ topic: 't', messages: [{ value: 'x' }, { key: 5, value: 'x' }] }),
        'record.messages[1].key ',
      ],
      [
        () => producerAny.send({ topic: 't', messages: [{ value: 'x', headers: { h: {} } }] }),
        "record.messages[0].headers['h'] ",
      ],
      [() => producerAny.send({ topic: 't', messages: [{ key: 'a' }] }), 'record.messages[0].value is required'],
      [() => producerAny.sendMessage('t', 'x', { timestamp: 'y' }), 'options.timestamp '],
      [
        () =>
          producerAny.sendBatch({
            topicMessages: [
              { topic: 't', messages: [{ value: 'x' }] },
              { topic: 'u', messages: [{ value: 'x' }, { value: 'x' }, { value: 'x', partition: 1.5 }] },
            ],
          }),
        'batch.topicMessages[1].messages[2].partition ',
      ],
    ];
    for (const [call, path] of paths) {
      await expect(call()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining(path) });
    }
  });

  test('a batch names the message with an unknown field wherever it is, and hostile messages are clean errors', async () => {
    const producerAny = /** @type {any} */ (producer);
    const messages = Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, value: 'x' }));
    messages[321] = /** @type {any} */ ({ key: 'k', value: 'x', partiton: 2 });
    await expect(producerAny.send({ topic: 't', messages })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringMatching(/record\.messages\[321\] has an unknown option `partiton`/),
    });
    // Known keys are counted too: an unknown one next to all of them is still found.
    const everyField = { value: 'x', key: 'k', headers: {}, partition: 0, timestamp: 1 };
    await expect(
      producerAny.send({ topic: 't', messages: [everyField, { ...everyField, extra: true }] }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('`extra`') });
    const keysThrow = new Proxy(
      { value: 'x' },
      {
        ownKeys() {
          throw new Error('no keys today');
        },
      },
    );
    await expect(producerAny.send({ topic: 't', messages: [{ value: 'x' }, keysThrow] })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringContaining('record.messages[1]'),
    });
    const lengthThrows = new Proxy([{ value: 'x' }], {
      get(target, property, receiver) {
        if (property === 'length') throw new Error('no length today');
        return Reflect.get(target, property, receiver);
      },
    });
    await expect(producerAny.send({ topic: 't', messages: lengthThrows })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
    });
    // Enumerable keys on the prototype count as they do for one message.
    const inherited = Object.assign(Object.create({ value: 'x' }), { key: 'k' });
    const topic = await freshTopic(1);
    await expect(producer.send({ topic, messages: [inherited, { value: 'y' }] })).resolves.toHaveLength(2);
  });

  test('failed validation sends nothing', async () => {
    const topic = await freshTopic(1);
    await expect(
      producer.send({ topic, messages: [{ value: 'ok' }, { value: 'bad', partition: -5 }] }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('messages[1]') });
    await expect(producer.sendMessage(topic, 'first')).resolves.toMatchObject({ offset: 0 });
  });
});

describe('sendMessage among other sends', () => {
  test('they reach the partition in call order, around sends of other kinds', async () => {
    const topic = await freshTopic(1);
    const sends = [];
    for (let i = 0; i < 50; i += 1) sends.push(producer.sendMessage(topic, `m${i}`));
    sends.push(producer.send({ topic, messages: [{ value: 'send' }] }).then(([report]) => report));
    for (let i = 50; i < 60; i += 1) sends.push(producer.sendMessage(topic, `m${i}`));
    sends.push(producer.sendMovieEvent('VIEW', 'u', 'm').then(() => null));
    sends.push(producer.sendMessage(topic, 'last'));
    const reports = (await Promise.all(sends)).filter((report) => report !== null);
    expect(reports.map((report) => report.offset)).toEqual(Array.from({ length: 62 }, (_, i) => i));
    const read = await readTopic(topic, 62);
    const expected = [
      ...Array.from({ length: 50 }, (_, i) => `m${i}`),
      'send',
      ...Array.from({ length: 10 }, (_, i) => `m${50 + i}`),
      'last',
    ];
    expect(read.map((message) => message.value.toString())).toEqual(expected);
  });

  test('a bad call among them rejects alone, whatever its arguments do', async () => {
    const topic = await freshTopic(1);
    const producerAny = /** @type {any} */ (producer);
    let reentered;
    const throwing = {
      get key() {
        throw new Error('no key today');
      },
    };
    const reentering = {
      get key() {
        reentered = producer.sendMessage(topic, 'from a getter');
        return 'k';
      },
    };
    const outcomes = await Promise.allSettled([
      producer.sendMessage(topic, 'first'),
      producerAny.sendMessage(topic, undefined),
      producerAny.sendMessage(topic, 'x', throwing),
      producerAny.sendMessage(topic, 'x', { partiton: 0 }),
      producerAny.sendMessage(7, 'x'),
      producer.sendMessage(topic, 'reentering', reentering),
      producer.sendMessage(topic, 'last'),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    for (const outcome of outcomes.filter((outcome) => outcome.status === 'rejected')) {
      const { reason } = /** @type {PromiseRejectedResult} */ (outcome);
      expect(isError(reason)).toBe(true);
      expect(reason.code).toBe('ERR_INVALID_ARG');
    }
    expect(/** @type {PromiseRejectedResult} */ (outcomes[2]).reason.message).toContain('no key today');
    await expect(reentered).resolves.toMatchObject({ topic });
    const read = await readTopic(topic, 4);
    expect(read.map((message) => message.value.toString()).sort()).toEqual(
      ['first', 'from a getter', 'last', 'reentering'].sort(),
    );
  });

  test('queuedMessages counts a message once it is sent, and disconnect delivers it', async () => {
    const own = new KafkaProducer({ brokers: brokers(), clientId: 'front-test', ...quiet });
    const topic = await freshTopic(1);
    const sends = Array.from({ length: 20 }, (_, i) => own.sendMessage(topic, `m${i}`));
    expect(own.queuedMessages).toBe(20);
    const disconnected = own.disconnect();
    await expect(Promise.all(sends)).resolves.toHaveLength(20);
    await disconnected;
    await expect(own.sendMessage(topic, 'late')).rejects.toMatchObject({ code: 'ERR_KAFKA_DISCONNECTED' });
    expect((await readTopic(topic, 20)).map((message) => message.value.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
  });
});

describe('configuration', () => {
  test('invalid options fail at construction, naming the key', () => {
    /** @type {Array<[any, string, RegExp]>} */
    const attempts = [
      [{ brokers: 'localhost' }, 'ERR_INVALID_CONFIG', /brokers/],
      [{ brokers: ['h:1'], config: { 'no.such.property': 1 } }, 'ERR_INVALID_CONFIG', /no\.such\.property/],
      [{ brokers: ['h:1'], config: { 'linger.ms': 'soon' } }, 'ERR_INVALID_CONFIG', /linger\.ms/],
      [{ brokers: ['h:1'], logLevel: 'loud' }, 'ERR_INVALID_ARG', /logLevel/],
      [{ brokers: ['h:1'], clientID: 'typo' }, 'ERR_INVALID_ARG', /clientID/],
      [{ brokers: ['h:1'], retryIntervalMs: -5 }, 'ERR_INVALID_ARG', /retryIntervalMs/],
      [{ brokers: 42 }, 'ERR_INVALID_ARG', /brokers/],
      [{ brokers: ['h:1'], topicPrefix: 'no spaces/' }, 'ERR_INVALID_CONFIG', /topicPrefix/],
      [{ brokers: ['h:1'], topicPrefix: 7 }, 'ERR_INVALID_ARG', /topicPrefix/],
      ['movie-stream', 'ERR_INVALID_ARG', /options/],
    ];
    for (const [options, code, pattern] of attempts) {
      /** @type {any} */
      /** @type {any} */
      let thrown;
      try {
        new KafkaProducer(/** @type {any} */ (options));
      } catch (error) {
        thrown = error;
      }
      expect(isError(thrown)).toBe(true);
      expect(thrown).toMatchObject({ code });
      expect(thrown.message).toMatch(pattern);
    }
  });

  test('topicPrefix (or KAFKA_TOPIC_PREFIX) puts the typed helpers on prefixed topics', async () => {
    const prefix = `${uniqueName('env')}.`;
    const producer = new KafkaProducer({ brokers: brokers(), topicPrefix: prefix, logLevel: 'warn' });
    const event = await producer.sendMovieEvent('LIKE', 'u1', 'm1');
    const view = await producer.sendMovieViewEvent('u1', 'm1');
    await producer.disconnect();
    expect([event.topic, view.topic]).toEqual([`${prefix}movie-events`, `${prefix}movie-views`]);
    const read = await readTopic(`${prefix}movie-events`, 1);
    expect(JSON.parse(read[0].value.toString())).toMatchObject({ eventType: 'LIKE', movieId: 'm1' });

    const fromEnv = runNode(
      `const { KafkaProducer, topics } = require('./index');
       const producer = new KafkaProducer({ brokers: 'h:1', logLevel: 'off' });
       producer.sendMovieViewEvent('u', 'm').catch(() => {});
       console.log(JSON.stringify(topics()));
       producer.disconnect(10);`,
      { KAFKA_TOPIC_PREFIX: 'staging.' },
    );
    expect(fromEnv).toEqual({
      movieEvents: 'staging.movie-events',
      movieViews: 'staging.movie-views',
      userActions: 'staging.user-actions',
      notificationEvents: 'staging.notification-events',
    });
  });

  test('KAFKA_BROKERS and KAFKA_CLIENT_ID come from the environment; options override them', () => {
    // jest gives each test file a copy of process.env, so the addon (which reads the
    // real environment) is exercised in a child process.
    const script = `
      const { KafkaProducer } = require('./index');
      const fromEnv = new KafkaProducer({ logLevel: 'off' });
      const explicit = new KafkaProducer({ brokers: 'other:9092,more:9093', clientId: 'explicit', logLevel: 'off' });
      console.log(JSON.stringify({
        fromEnv: { clientId: fromEnv.clientId, brokers: fromEnv.brokers },
        explicit: { clientId: explicit.clientId, brokers: explicit.brokers },
      }));
      Promise.all([fromEnv.disconnect(), explicit.disconnect()]);
    `;
    const result = runNode(script, { KAFKA_BROKERS: 'a:9092, b:9093', KAFKA_CLIENT_ID: 'movie-stream-producer' });
    expect(result).toEqual({
      fromEnv: { clientId: 'movie-stream-producer', brokers: ['a:9092', 'b:9093'] },
      explicit: { clientId: 'explicit', brokers: ['other:9092', 'more:9093'] },
    });

    // Without brokers the addon falls back to its embedded cluster (see embedded.test.js),
    // except in production, where a missing setting must fail loudly.
    const missing = runNode(
      `const { KafkaProducer } = require('./index');
       try { new KafkaProducer(); console.log('null'); }
       catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
      { NODE_ENV: 'production' },
    );
    expect(missing).toMatchObject({ code: 'ERR_INVALID_CONFIG', message: expect.stringContaining('KAFKA_BROKERS') });
  });

  test('secrets never appear in error messages or logs', async () => {
    const secret = 'hunter2-super-secret';
    const { lines, logger } = recordingLogger();
    /** @type {any} */
    let thrown;
    try {
      new KafkaProducer({
        brokers: ['h:1'],
        logger,
        logLevel: 'debug',
        config: { 'sasl.password': secret, 'ssl.key.password': secret, 'enable.ssl.certificate.verification': secret },
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'ERR_INVALID_CONFIG' });
    expect(thrown.message).not.toContain(secret);

    const valid = new KafkaProducer({
      brokers: brokers(),
      logger,
      logLevel: 'debug',
      config: { 'security.protocol': 'plaintext', 'sasl.username': 'alice', 'sasl.password': secret },
    });
    expect(valid.effectiveConfig()['sasl.password']).toBe('[redacted]');
    await valid.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.message).not.toContain(secret);
  });
});

test('logs go to the given logger with the client name as context', async () => {
  const { lines, logger } = recordingLogger();
  const logged = new KafkaProducer({ brokers: brokers(), clientId: 'logging-producer', logger, logLevel: 'info' });
  await logged.connect({ timeoutMs: 10000 });
  await logged.disconnect();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const messages = lines.map((l) => `${l.level}:${l.context}:${l.message}`);
  expect(messages).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^info:logging-producer:Kafka producer connected/),
      expect.stringMatching(/^info:logging-producer:Kafka producer disconnected/),
    ]),
  );
});

test('a logger that throws does not break the producer', async () => {
  const throwing = {
    info: () => {
      throw new Error('logger exploded');
    },
    warn: () => {
      throw new Error('x');
    },
  };
  const p = new KafkaProducer({ brokers: brokers(), logger: throwing });
  await p.connect({ timeoutMs: 10000 });
  await expect(p.sendMovieViewEvent('u', 'm')).resolves.toMatchObject({ topic: 'movie-views' });
  await p.disconnect();
});

test('disconnect flushes, is idempotent, and later sends reject', async () => {
  const p = new KafkaProducer({ brokers: brokers(), ...quiet });
  const topic = await freshTopic(1);
  const pending = p.sendMessage(topic, 'in flight');
  await Promise.all([p.disconnect(), p.disconnect()]);
  await expect(pending).resolves.toMatchObject({ topic, offset: 0 });
  await p.disconnect();
  await expect(p.sendMessage(topic, 'late')).rejects.toMatchObject({ code: 'ERR_KAFKA_DISCONNECTED' });
  await expect(p.flush()).rejects.toMatchObject({ code: 'ERR_KAFKA_DISCONNECTED' });
  expect(() => p.effectiveConfig()).toThrow(expect.objectContaining({ code: 'ERR_KAFKA_DISCONNECTED' }));
});

test('flush waits until queued messages are acknowledged', async () => {
  const topic = await freshTopic(1);
  const sends = Array.from({ length: 100 }, (_, i) => producer.sendMessage(topic, `m${i}`));
  // Enqueued synchronously and lingering: they cannot all be acknowledged yet.
  expect(producer.queuedMessages).toBeGreaterThan(0);
  await producer.flush(10000);
  expect(producer.queuedMessages).toBe(0);
  await expect(Promise.all(sends)).resolves.toHaveLength(100);
});

test('messages reach the partition in call order, even without awaiting each send', async () => {
  const topic = await freshTopic(1);
  const sends = [];
  for (let i = 0; i < 500; i += 1) {
    sends.push(producer.sendMessage(topic, `${i}`, { key: `movie-${i % 3}` }));
    if (i % 100 === 0) sends.push(producer.sendMovieEvent('VIEW', 'u', `ordered-${i}`));
  }
  const reports = await Promise.all(sends);
  const offsets = reports.filter((r) => r.topic === topic).map((r) => r.offset);
  expect(offsets).toEqual(Array.from({ length: 500 }, (_, i) => i));
  const read = await readTopic(topic, 500);
  const inOffsetOrder = read.sort((a, b) => Number(a.offset) - Number(b.offset)).map((m) => Number(m.value.toString()));
  expect(inOffsetOrder).toEqual(Array.from({ length: 500 }, (_, i) => i));
});

test('a producer that sends again as each send settles does not starve timers and I/O', async () => {
  // A window of sends kept open, as a pipeline does: each settlement issues the next send.
  // Settling must give the event loop a turn, so a timer set mid-stream fires long before the
  // stream ends (settled inline, wake-ups chained for seconds and the timer came last).
  const topic = await freshTopic(2);
  const total = 40_000;
  let issued = 0;
  let settled = 0;
  let settledWhenTimerFired = -1;
  await new Promise((resolve, reject) => {
    const sendNext = () => {
      issued += 1;
      producer.sendMessage(topic, { id: issued }, { key: `movie-${issued % 50}` }).then(() => {
        settled += 1;
        if (settled === 2000) {
          setTimeout(() => {
            settledWhenTimerFired = settled;
          }, 0);
        }
        if (issued < total) sendNext();
        else if (settled === total) resolve(undefined);
      }, reject);
    };
    for (let i = 0; i < 1000; i += 1) sendNext();
  });
  expect(settled).toBe(total);
  expect(settledWhenTimerFired).toBeGreaterThanOrEqual(2000);
  expect(settledWhenTimerFired).toBeLessThan(total / 2);
});

test('unsettled sends keep Node alive until acknowledged; then it exits by itself', () => {
  // No timer, no disconnect: only the pending deliveries keep the process running, and once
  // they are settled nothing does (the producer's wake-up is referenced only while needed).
  const topic = uniqueName('keepalive');
  const script = `const { KafkaProducer } = require('./index');
    const p = new KafkaProducer({ brokers: ${JSON.stringify(brokers())}, logLevel: 'error' });
    p.ensureTopics([{ name: '${topic}', partitions: 1 }]).then(() => {
      const sends = Array.from({ length: 50 }, (_, i) => p.sendMessage('${topic}', 'm' + i));
      sends.push(p.send({ topic: '${topic}', messages: [{ value: 'a' }, { value: 'b' }] }));
      Promise.all(sends).then((reports) => console.log(JSON.stringify({
        single: reports[49].offset, batch: reports[50].map((r) => r.offset),
      })));
    });`;
  const started = Date.now();
  const reported = runNode(script, {}, { timeoutMs: 45_000 });
  expect(reported).toEqual({ single: 49, batch: [50, 51] });
  expect(Date.now() - started).toBeLessThan(45_000);
});
