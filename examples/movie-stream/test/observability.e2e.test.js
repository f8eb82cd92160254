// @ts-check
// The app's GET /metrics and GET /health against a broker of this test's own (Tansu on a private
// port), so the shared broker of the other tests is never touched. The broker "stops" the way the
// app sees it, by a TCP proxy in front of it going down (see __test__/nestjs-health.test.js for
// why not by restarting the in-memory Tansu, which loses its topics).
const { broker, tcpProxy, uniqueName } = require('../../../__test__/helpers');
const { eventually, startApp } = require('./app-process');

jest.setTimeout(120000);

const BROKER_PORT = 29321;
const PROXY_PORT = 29320;
const proxy = tcpProxy(PROXY_PORT, BROKER_PORT);
const TOPIC_PREFIX = `${uniqueName('observability')}-`;
const CONSUMERS = {
  MovieConsumer: 'movie',
  AnalyticsConsumer: 'analytics',
  NotificationConsumer: 'notification',
  ViewCounterConsumer: 'view-counter',
};

/** @type {import('./app-process').AppProcess | undefined} */
let app;

beforeAll(async () => {
  broker('stop', BROKER_PORT);
  broker('start', BROKER_PORT, { advertisedPort: PROXY_PORT });
  await proxy.start();
  app = await startApp({
    KAFKA_BROKERS: `127.0.0.1:${PROXY_PORT}`,
    KAFKA_TOPIC_PREFIX: TOPIC_PREFIX,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_FETCH_WAIT_MAX_MS: '50',
    // librdkafka's statistics (broker states, lag, rates) every half second instead of every 5 s;
    // the addon reads this variable itself.
    KAFKA_STATISTICS_INTERVAL_MS: '500',
  });
  await eventually(async () => (await running().get('/health')).status === 200, 'GET /health to answer 200', 60000);
});

afterAll(async () => {
  try {
    await app?.stop();
  } finally {
    await proxy.stop();
    broker('stop', BROKER_PORT);
  }
});

function running() {
  if (!app) throw new Error('the app did not start');
  return app;
}

/**
 * The samples of a Prometheus text exposition, checking each line's syntax on the way.
 * @param {string} text
 * @returns {{ name: string, labels: Record<string, string>, value: number }[]}
 */
function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    /** @type {Record<string, string>} */
    const labels = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) {
      labels[key] = value;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/**
 * Sum of the samples of `name` whose labels include `where`.
 * @param {ReturnType<typeof parsePrometheus>} samples @param {string} name @param {Record<string, string>} [where]
 */
function total(samples, name, where = {}) {
  return samples
    .filter((sample) => sample.name === name)
    .filter((sample) => Object.entries(where).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

test('GET /metrics serves the producer’s and every consumer’s metrics as Prometheus text', async () => {
  const movie = uniqueName('movie');
  const sent = await Promise.all([
    running().post(`/movies/${movie}/view`, { userId: 'user-1' }),
    running().post(`/movies/${movie}/like`, { userId: 'user-1' }),
    running().post(`/movies/${movie}/comment`, { userId: 'user-2', text: 'Great' }),
    running().post('/analytics/events', { eventType: 'SEARCH', sessionId: uniqueName('session') }),
  ]);
  expect(sent.map(({ status }) => status)).toEqual([202, 202, 202, 202]);
  // A comment is two messages (movie-events and notification-events): five in all.
  await eventually(
    async () =>
      JSON.stringify((await running().get(`/movies/${movie}/stats`)).body) ===
      JSON.stringify({ movieId: movie, views: 1, likes: 1, comments: 1, shares: 0 }),
    'the movie consumer to count the events',
  );

  /** @type {ReturnType<typeof parsePrometheus>} */
  let samples = [];
  let scrape = await running().get('/metrics');
  await eventually(async () => {
    scrape = await running().get('/metrics');
    samples = parsePrometheus(scrape.text);
    const processed = (/** @type {string} */ consumer) =>
      total(samples, 'kafka_consumer_messages_processed_total', { consumer });
    return (
      processed('movie-consumer') >= 3 &&
      processed('notification-consumer') >= 1 &&
      processed('analytics-consumer') >= 1
    );
  }, 'the processed messages to show in GET /metrics');

  expect(scrape.status).toBe(200);
  // PROMETHEUS_CONTENT_TYPE (Express puts the charset first: the parameters' order does not matter).
  const parameters = (/** @type {string | null} */ type) =>
    (type ?? '')
      .split(';')
      .map((part) => part.trim())
      .sort();
  expect(parameters(scrape.headers.get('content-type'))).toEqual(
    parameters('text/plain; version=0.0.4; charset=utf-8'),
  );
  expect(scrape.text).toMatch(/^# TYPE kafka_producer_messages_sent_total counter$/m);
  expect(scrape.text).toMatch(/^# TYPE kafka_consumer_lag gauge$/m);

  const producer = { client_id: 'movie-stream-producer' };
  expect(total(samples, 'kafka_producer_messages_sent_total', producer)).toBeGreaterThanOrEqual(5);
  expect(total(samples, 'kafka_producer_messages_delivered_total', producer)).toBeGreaterThanOrEqual(5);
  expect(total(samples, 'kafka_producer_delivery_failures_total', producer)).toBe(0);

  const lag = samples.filter((sample) => sample.name === 'kafka_consumer_lag');
  expect(lag.map((sample) => sample.labels.topic)).toEqual(
    expect.arrayContaining([
      `${TOPIC_PREFIX}movie-events`,
      `${TOPIC_PREFIX}movie-views`,
      `${TOPIC_PREFIX}user-actions`,
    ]),
  );
  for (const sample of lag) expect(sample.value).toBeGreaterThanOrEqual(0);
  expect(total(samples, 'kafka_consumer_messages_processed_total', { consumer: 'analytics-consumer' })).toBe(1);
});

test('GET /metrics histograms are cumulative, their +Inf bucket equal to their count', async () => {
  const samples = parsePrometheus((await running().get('/metrics')).text);
  const producer = { client_id: 'movie-stream-producer' };
  const latency = samples.filter(
    (sample) =>
      sample.name === 'kafka_producer_delivery_latency_seconds_bucket' &&
      sample.labels.client_id === producer.client_id,
  );
  expect(latency.length).toBeGreaterThan(1);
  expect(latency.at(-1)?.labels.le).toBe('+Inf');
  const count = total(samples, 'kafka_producer_delivery_latency_seconds_count', producer);
  expect(count).toBeGreaterThan(0);
  // Each bucket counts the observations at or below its bound: never more than the count.
  expect(latency.map((sample) => sample.value)).toEqual(
    [...latency.map((sample) => sample.value)].sort((a, b) => a - b),
  );
  expect(latency.at(-1)?.value).toBe(count);
});

test('GET /health answers 503 naming the producer and every consumer when the broker goes away, 200 once it is back', async () => {
  expect((await running().get('/health')).status).toBe(200);

  await proxy.stop();
  /** @type {{ status: number, body: any }} */
  let health = { status: 0, body: undefined };
  // The producer and each consumer notice on their own: wait until all of them have.
  await eventually(async () => {
    health = await running().get('/health');
    const consumers = Object.values(health.body.details?.['kafka-consumers']?.consumers ?? {});
    return health.status === 503 && consumers.every((/** @type {any} */ consumer) => consumer.connected === false);
  }, 'GET /health to answer 503 with every client cut off');
  expect(health.body).toMatchObject({
    status: 'error',
    info: {},
    error: {
      'kafka-producer': { status: 'down', connected: false, message: 'no broker reachable' },
      'kafka-consumers': { status: 'down' },
    },
  });
  // Each consumer still runs (librdkafka reconnects by itself) but reaches no broker.
  const consumers = health.body.error['kafka-consumers'].consumers;
  expect(Object.keys(consumers).sort()).toEqual(Object.keys(CONSUMERS).sort());
  for (const name of Object.keys(CONSUMERS)) {
    expect(consumers[name]).toMatchObject({
      status: 'down',
      state: 'running',
      connected: false,
      message: 'no broker reachable',
    });
  }

  await proxy.start();
  await eventually(
    async () => (await running().get('/health')).status === 200,
    'GET /health to answer 200 again',
    60000,
  );
  const { body } = await running().get('/health');
  expect(body.status).toBe('ok');
  expect(body.info['kafka-producer']).toMatchObject({ status: 'up', connected: true });
  for (const [name, key] of Object.entries(CONSUMERS)) {
    expect(body.info['kafka-consumers'].consumers[name]).toMatchObject({
      status: 'up',
      state: 'running',
      connected: true,
      groupId: `${TOPIC_PREFIX}${key}-group`,
    });
  }
});
