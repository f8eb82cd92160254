// @ts-check
// The movie-stream app end to end against the real broker (KAFKA_BROKERS): HTTP → producer →
// Kafka → consumers → HTTP. The compiled app runs in its own process (see app-process.js) on a
// free port, on topics and consumer groups of its own (a unique KAFKA_TOPIC_PREFIX), so no other
// run's data is counted.
const { brokers, uniqueName } = require('../../../__test__/helpers');
const { readTopicTransactions } = require('../../../__test__/support/kafka-wire');
const { eventually, startApp } = require('./app-process');
const { loadCompiled } = require('./compiled');

const { TOPIC_PARTITIONS } = loadCompiled('modules/kafka/config/kafka.config.js');

jest.setTimeout(60000);

const TOPIC_PREFIX = `${uniqueName('e2e')}-`;

/** @type {import('./app-process').AppProcess | undefined} */
let app;

beforeAll(async () => {
  app = await startApp({
    KAFKA_BROKERS: brokers().join(','),
    KAFKA_TOPIC_PREFIX: TOPIC_PREFIX,
    // Tansu stalls a group's first join for half the session timeout, and parks empty fetches
    // for half the max wait: keep both short.
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_FETCH_WAIT_MAX_MS: '50',
  });
  await eventually(async () => (await get('/health')).status === 200, 'GET /health to answer 200');
});

afterAll(async () => {
  await app?.stop();
});

/**
 * @param {string} path
 * @returns {Promise<{ status: number, body: any }>}
 */
function get(path) {
  if (!app) throw new Error('the app did not start');
  return app.get(path);
}

/**
 * @param {string} path
 * @param {unknown} body
 * @returns {Promise<{ status: number, body: any }>}
 */
function post(path, body) {
  if (!app) throw new Error('the app did not start');
  return app.post(path, body);
}

/**
 * Waits until `path` answers `expected`, then checks it still does a little later: counts only
 * grow, so a count that overshoots (an event counted twice) fails here.
 * @param {string} path
 * @param {unknown} expected
 */
async function expectSettled(path, expected) {
  let last;
  try {
    await eventually(async () => {
      last = (await get(path)).body;
      return JSON.stringify(last) === JSON.stringify(expected);
    }, `GET ${path}`);
  } finally {
    expect(last).toEqual(expected);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect((await get(path)).body).toEqual(expected);
}

test('GET /health reports the producer connected and every consumer running, in terminus’ format', async () => {
  const { status, body } = await get('/health');
  expect(status).toBe(200);
  const consumer = (/** @type {string} */ group) => ({
    status: 'up',
    state: 'running',
    groupId: `${TOPIC_PREFIX}${group}`,
    connected: true,
    totalLag: expect.any(Number),
  });
  const info = {
    'kafka-producer': expect.objectContaining({
      status: 'up',
      clientId: 'movie-stream-producer',
      connected: true,
      queued: expect.any(Number),
    }),
    'kafka-consumers': {
      status: 'up',
      consumers: {
        MovieConsumer: consumer('movie-group'),
        AnalyticsConsumer: consumer('analytics-group'),
        NotificationConsumer: consumer('notification-group'),
        ViewCounterConsumer: consumer('view-counter-group'),
      },
    },
  };
  expect(body).toEqual({ status: 'ok', info, error: {}, details: info });
});

test('counts a movie’s views, likes, comments and shares exactly', async () => {
  const movie = uniqueName('movie');
  const accepted = await Promise.all([
    post(`/movies/${movie}/view`, { userId: 'user-1' }),
    post(`/movies/${movie}/view`, { userId: 'user-2' }),
    post(`/movies/${movie}/view`, { userId: 'user-3', source: 'web', duration: 120 }),
    post(`/movies/${movie}/like`, { userId: 'user-1' }),
    post(`/movies/${movie}/like`, { userId: 'user-2' }),
    post(`/movies/${movie}/comment`, { userId: 'user-3', text: 'Loved it' }),
    post(`/movies/${movie}/share`, { userId: 'user-1', channel: 'link' }),
  ]);
  expect(accepted.map(({ status }) => status)).toEqual(Array(7).fill(202));
  // A bare view uses the ready-made helper (movie-views); a view with details the generic call.
  expect(accepted[0].body).toMatchObject({ topic: `${TOPIC_PREFIX}movie-views` });
  expect(accepted[2].body).toMatchObject({ topic: `${TOPIC_PREFIX}movie-events` });
  // Keyed by movieId: one movie's events share a partition, so they stay in order.
  const partitions = new Set(accepted.map(({ body }) => `${body.topic.endsWith('views')}:${body.partition}`));
  expect(partitions.size).toBeLessThanOrEqual(2);

  await expectSettled(`/movies/${movie}/stats`, { movieId: movie, views: 3, likes: 2, comments: 1, shares: 1 });
});

test('GET /movies/top lists movies by views, most viewed first', async () => {
  const [first, second, third] = [uniqueName('top'), uniqueName('top'), uniqueName('top')];
  const views = { [first]: 9, [second]: 7, [third]: 8 };
  await Promise.all(
    Object.entries(views).flatMap(([movie, count]) =>
      Array.from({ length: count }, (_, user) => post(`/movies/${movie}/view`, { userId: `user-${user}` })),
    ),
  );
  for (const [movie, count] of Object.entries(views)) {
    await expectSettled(`/movies/${movie}/stats`, { movieId: movie, views: count, likes: 0, comments: 0, shares: 0 });
  }

  const { status, body: top } = await get('/movies/top?limit=1000');
  expect(status).toBe(200);
  const ours = top.map((/** @type {{ movieId: string }} */ stats) => stats.movieId).filter((id) => id in views);
  expect(ours).toEqual([first, third, second]);
  const counts = top.map((/** @type {{ views: number }} */ stats) => stats.views);
  expect(counts).toEqual([...counts].sort((a, b) => b - a));
  expect((await get('/movies/top?limit=2')).body).toEqual(top.slice(0, 2));
});

test('POST /analytics/events reaches the analytics summary', async () => {
  const sessions = [uniqueName('session'), uniqueName('session')];
  const responses = await Promise.all([
    post('/analytics/events', {
      eventType: 'PAGE_VIEW',
      sessionId: sessions[0],
      userId: 'user-1',
      data: { page: '/' },
    }),
    post('/analytics/events', {
      eventType: 'SEARCH',
      sessionId: sessions[0],
      userId: 'user-1',
      data: { query: 'noir' },
    }),
    post('/analytics/events', { eventType: 'SEARCH', sessionId: sessions[1], data: { query: 'space' } }),
  ]);
  expect(responses.map(({ status }) => status)).toEqual([202, 202, 202]);
  expect(responses[0].body).toMatchObject({ topic: `${TOPIC_PREFIX}user-actions` });

  await expectSettled('/analytics/summary', {
    events: 3,
    byEventType: { PAGE_VIEW: 1, USER_ACTION: 0, MOVIE_VIEW: 0, SEARCH: 2 },
    distinctSessions: 2,
    distinctUsers: 1,
  });
});

test('a comment notifies the notification consumer', async () => {
  const movie = uniqueName('commented');
  expect((await post(`/movies/${movie}/comment`, { userId: 'user-9', text: 'What an ending' })).status).toBe(202);

  /** @type {any} */
  let summary;
  await eventually(async () => {
    summary = (await get('/notifications/summary')).body;
    return summary.latest.some((/** @type {{ movieId: string }} */ item) => item.movieId === movie);
  }, `a notification about ${movie}`);
  expect(summary.latest.find((/** @type {{ movieId: string }} */ item) => item.movieId === movie)).toEqual({
    type: 'NEW_COMMENT',
    movieId: movie,
    userId: 'user-9',
    message: 'user-9 commented: What an ending',
    timestamp: expect.any(Number),
  });
  expect(summary.notifications).toBe(summary.byType.NEW_COMMENT);
});

test('the view counter writes each view’s running count to movie-view-counts once, in committed transactions', async () => {
  /** @type {Record<string, number>} views per movie */
  const views = { [uniqueName('counted')]: 6, [uniqueName('counted')]: 3, [uniqueName('counted')]: 1 };
  const total = Object.values(views).reduce((sum, count) => sum + count, 0);
  // Bare views (no details) go to movie-views, which the view counter reads.
  const accepted = await Promise.all(
    Object.entries(views).flatMap(([movie, count]) =>
      Array.from({ length: count }, (_, user) => post(`/movies/${movie}/view`, { userId: `user-${user}` })),
    ),
  );
  expect(accepted.map(({ status }) => status)).toEqual(Array(total).fill(202));
  expect(accepted[0].body).toMatchObject({ topic: `${TOPIC_PREFIX}movie-views` });

  // At the wire level, with Kafka's read_committed rules applied (Tansu hands aborted records to
  // read_committed consumers, so a consumer could not tell them apart).
  const topic = `${TOPIC_PREFIX}movie-view-counts`;
  const read = () => readTopicTransactions({ brokers: brokers(), topic, partitions: TOPIC_PARTITIONS });
  /** @param {import('../../../__test__/support/kafka-wire').WireRecord[]} records */
  const ours = (records) =>
    records
      .filter((record) => (record.key?.toString() ?? '') in views)
      .map((record) => ({
        partition: record.partition,
        offset: record.offset,
        value: JSON.parse(String(record.value)),
      }));
  /** @type {Awaited<ReturnType<typeof read>> | undefined} */
  let wire;
  await eventually(async () => {
    wire = await read();
    return ours(wire.committed).length >= total && ours(wire.open).length === 0;
  }, `${total} committed count records on ${topic}`);
  // Nothing more comes: a view counted twice would show here.
  await new Promise((resolve) => setTimeout(resolve, 500));
  wire = await read();

  const committed = ours(wire.committed);
  expect(committed).toHaveLength(total);
  expect(ours(wire.open)).toEqual([]);
  for (const [movie, count] of Object.entries(views)) {
    // Keyed by movieId: one partition per movie, its records in order (classified records are sorted by offset).
    const records = committed.filter(({ value }) => value.movieId === movie);
    expect(new Set(records.map(({ partition }) => partition)).size).toBe(1);
    expect(records.map(({ value }) => value)).toEqual(
      Array.from({ length: count }, (_, index) => ({ movieId: movie, views: index + 1, at: expect.any(Number) })),
    );
  }
  // Written in transactions (aborted attempts, had there been any, would be classified aborted).
  const batches = wire.partitions
    .flatMap(({ batches }) => batches)
    .filter((batch) => !batch.isControl && batch.records.some((record) => (record.key?.toString() ?? '') in views));
  expect(batches.length).toBeGreaterThan(0);
  expect(batches.every((batch) => batch.isTransactional)).toBe(true);

  const { body } = await get('/analytics/view-counts');
  expect(body).toEqual({
    views: expect.any(Number),
    movies: expect.any(Number),
    byMovie: expect.objectContaining(views),
  });
});

test('invalid requests get 400 and produce nothing', async () => {
  const movie = uniqueName('invalid');
  const invalid = [
    post(`/movies/${movie}/like`, {}),
    post(`/movies/${movie}/view`, { userId: 'user-1', duration: -5 }),
    post(`/movies/${movie}/comment`, { userId: 'user-1', text: '' }),
    post(`/movies/${movie}/share`, ['user-1']),
    post('/movies/bad%20id/like', { userId: 'user-1' }),
    post('/analytics/events', { eventType: 'DISLIKE', sessionId: 'session-1' }),
    post('/analytics/events', { eventType: 'SEARCH' }),
    get('/movies/top?limit=0'),
  ];
  const responses = await Promise.all(invalid);
  expect(responses.map(({ status }) => status)).toEqual(Array(invalid.length).fill(400));
  expect(responses[0].body.message).toMatch(/userId/);
  expect(responses[5].body.message).toMatch(/eventType must be one of PAGE_VIEW/);

  // A valid event after them is counted alone.
  expect((await post(`/movies/${movie}/like`, { userId: 'user-1' })).status).toBe(202);
  await expectSettled(`/movies/${movie}/stats`, { movieId: movie, views: 0, likes: 1, comments: 0, shares: 0 });
});
