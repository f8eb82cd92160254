// @ts-check
// The view counter's counting, without a broker: each batch is one transaction, and a batch
// whose transaction aborted is handed over again, so its counts must not stay behind.
const { Logger } = require('@nestjs/common');
const { loadCompiled } = require('./compiled');

const { ViewCounterConsumerService } = loadCompiled(
  'modules/kafka/consumer/view-counter/kafka-consumer-view-counter.service.js',
);
const { KAFKA_CONFIG } = loadCompiled('modules/kafka/config/kafka.config.js');

beforeAll(() => Logger.overrideLogger(['error', 'warn']));

/**
 * A movie-views message as the addon delivers it, keyed by movieId.
 * @param {number} offset
 * @param {string} movieId
 * @param {number} [partition]
 */
function view(offset, movieId, partition = 0) {
  const value = { eventType: 'VIEW', userId: 'user-1', movieId, timestamp: 1_700_000_000_000 + offset };
  return {
    topic: 'movie-views',
    partition,
    offset,
    key: movieId,
    value,
    headers: {},
    timestamp: value.timestamp,
    attempt: 1,
  };
}

/**
 * A stand-in for the transaction's sender: records what is sent, or fails.
 * @param {{ fail?: boolean }} [options]
 */
function transaction({ fail = false } = {}) {
  /** @type {{ topic: string, key: string, value: any }[]} */
  const sent = [];
  return {
    sent,
    /** @param {{ topic: string, messages: { key: string, value: any }[] }} record */
    send: async ({ topic, messages }) => {
      if (fail) throw Object.assign(new Error('send failed'), { code: 'ERR_KAFKA_MSG_TIMED_OUT' });
      sent.push(...messages.map(({ key, value }) => ({ topic, key, value })));
      return [];
    },
  };
}

/** @param {{ sent: { value: { movieId: string, views: number } }[] }} tx */
const counts = (tx) => tx.sent.map(({ value }) => `${value.movieId}:${value.views}`);

test('writes each view’s running count, keyed by movieId, to movie-view-counts', async () => {
  const counter = new ViewCounterConsumerService();
  const first = transaction();
  await counter.handleMessage([view(0, 'movie-a'), view(1, 'movie-b'), view(2, 'movie-a')], first);
  const second = transaction();
  await counter.handleMessage([view(3, 'movie-a'), view(0, 'movie-c', 1)], second);

  expect(counts(first)).toEqual(['movie-a:1', 'movie-b:1', 'movie-a:2']);
  expect(counts(second)).toEqual(['movie-a:3', 'movie-c:1']);
  expect(first.sent[0]).toEqual({
    topic: KAFKA_CONFIG.topics.MOVIE_VIEW_COUNTS,
    key: 'movie-a',
    value: { movieId: 'movie-a', views: 1, at: 1_700_000_000_000 },
  });
  expect(counter.summary()).toEqual({ views: 5, movies: 3, byMovie: { 'movie-a': 3, 'movie-b': 1, 'movie-c': 1 } });
});

test('a batch handed over again (its transaction aborted) counts from the same base', async () => {
  const counter = new ViewCounterConsumerService();
  await counter.handleMessage([view(0, 'movie-a')], transaction());
  const batch = [view(1, 'movie-a'), view(2, 'movie-a')];
  const aborted = transaction();
  await counter.handleMessage(batch, aborted);
  // The commit failed after the handler returned: the same batch comes again.
  const retried = transaction();
  await counter.handleMessage(batch, retried);
  expect(counts(aborted)).toEqual(['movie-a:2', 'movie-a:3']);
  expect(counts(retried)).toEqual(['movie-a:2', 'movie-a:3']);

  // So does a part of it (the rest went to the dead-letter topic), then the next batch.
  const prefix = transaction();
  await counter.handleMessage([view(1, 'movie-a')], prefix);
  const next = transaction();
  await counter.handleMessage([view(3, 'movie-a')], next);
  expect(counts(prefix)).toEqual(['movie-a:2']);
  expect(counts(next)).toEqual(['movie-a:3']);
});

test('a batch whose send fails leaves no count behind', async () => {
  const counter = new ViewCounterConsumerService();
  await expect(
    counter.handleMessage([view(0, 'movie-a'), view(1, 'movie-b')], transaction({ fail: true })),
  ).rejects.toThrow('send failed');
  expect(counter.summary()).toEqual({ views: 0, movies: 0, byMovie: {} });
  // Given up on and parked: the consumer goes on with the next batch.
  const next = transaction();
  await counter.handleMessage([view(2, 'movie-a')], next);
  expect(counts(next)).toEqual(['movie-a:1']);
});

test('refuses to run without a transaction', async () => {
  const counter = new ViewCounterConsumerService();
  await expect(counter.handleMessage([view(0, 'movie-a')])).rejects.toThrow(/exactlyOnce/);
});
