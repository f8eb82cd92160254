// @ts-check
// The movie consumer's counting, without a broker: Kafka delivers at least once, so a message
// redelivered after a rebalance or restart must not be counted twice.
const { Logger } = require('@nestjs/common');
const { loadCompiled } = require('./compiled');

const { MovieConsumerService } = loadCompiled('modules/kafka/consumer/movie/kafka-consumer-movie.service.js');

beforeAll(() => Logger.overrideLogger(['error', 'warn']));

/**
 * A message as the addon delivers it, keyed by movieId like every movie event.
 * @param {number} offset
 * @param {string} movieId
 * @param {{ eventType?: string, topic?: string, partition?: number }} [where]
 */
function message(offset, movieId, { eventType = 'VIEW', topic = 'movie-events', partition = 0 } = {}) {
  const value = { eventType, userId: 'user-1', movieId, timestamp: 1_700_000_000_000 };
  return { topic, partition, offset, key: movieId, value, headers: {}, timestamp: value.timestamp, attempt: 1 };
}

/** @param {any} consumer @param {ReturnType<typeof message>[]} messages */
async function deliver(consumer, messages) {
  for (const delivered of messages) await consumer.handleMessage(delivered);
}

test('counts each event type of a movie', async () => {
  const consumer = new MovieConsumerService();
  await deliver(consumer, [
    message(0, 'movie-a'),
    message(1, 'movie-a', { eventType: 'LIKE' }),
    message(2, 'movie-a', { eventType: 'COMMENT' }),
    message(3, 'movie-a', { eventType: 'SHARE' }),
    message(4, 'movie-a', { eventType: 'LIKE' }),
    message(0, 'movie-a', { topic: 'movie-views' }),
  ]);
  expect(consumer.movieStats('movie-a')).toEqual({ movieId: 'movie-a', views: 2, likes: 2, comments: 1, shares: 1 });
  expect(consumer.movieStats('movie-b')).toEqual({ movieId: 'movie-b', views: 0, likes: 0, comments: 0, shares: 0 });
});

test('ignores redelivered messages: offsets at or below the highest processed one', async () => {
  const consumer = new MovieConsumerService();
  await deliver(consumer, [message(7, 'movie-a'), message(8, 'movie-a', { eventType: 'LIKE' })]);
  // The group rebalanced before committing 7 and 8: both come again, then a new message.
  await deliver(consumer, [message(7, 'movie-a'), message(8, 'movie-a', { eventType: 'LIKE' }), message(9, 'movie-a')]);
  expect(consumer.movieStats('movie-a')).toMatchObject({ views: 2, likes: 1 });
  expect(consumer.summary()).toMatchObject({ movies: 1, events: 3 });
});

test('tracks offsets per topic, partition and key, so parallel keys may finish out of order', async () => {
  const consumer = new MovieConsumerService();
  // With concurrency, movie-b's offset 5 can finish before movie-a's offset 4 of the same partition.
  await deliver(consumer, [
    message(5, 'movie-b'),
    message(4, 'movie-a'),
    message(4, 'movie-a', { partition: 1 }),
    message(4, 'movie-a', { topic: 'movie-views' }),
    message(4, 'movie-a'),
  ]);
  expect(consumer.movieStats('movie-a').views).toBe(3);
  expect(consumer.movieStats('movie-b').views).toBe(1);
});

test('orders the top movies by views, then likes, then id', async () => {
  const consumer = new MovieConsumerService();
  let offset = 0;
  /** @param {string} movieId @param {number} views @param {number} likes */
  const play = (movieId, views, likes) =>
    deliver(consumer, [
      ...Array.from({ length: views }, () => message(offset++, movieId)),
      ...Array.from({ length: likes }, () => message(offset++, movieId, { eventType: 'LIKE' })),
    ]);
  await play('movie-c', 2, 0);
  await play('movie-a', 3, 1);
  await play('movie-d', 2, 1);
  await play('movie-b', 2, 1);
  expect(consumer.topMovies(3).map((/** @type {{ movieId: string }} */ stats) => stats.movieId)).toEqual([
    'movie-a',
    'movie-b',
    'movie-d',
  ]);
});
