// Metrics against the real broker: counters and timings move as messages
// flow, lag rises while a consumer is paused and falls when it resumes, the
// Prometheus exposition parses with an independent parser, and connectivity
// turns false when the broker stops (on a private broker of this file's).
const parsePrometheusTextFormat = require('parse-prometheus-text-format');
const { KafkaProducer, registerConsumer, prometheusMetrics, PROMETHEUS_CONTENT_TYPE } = require('../index');
const { brokers, eventually, uniqueName, broker, tcpProxy } = require('./helpers');

jest.setTimeout(120000);

const STATISTICS_INTERVAL_MS = 300;
/** @type {KafkaProducer} */
let producer;
/** @type {Array<{ close(): Promise<void> }>} */
const opened = [];

beforeAll(async () => {
  producer = new KafkaProducer({
    brokers: brokers(),
    clientId: uniqueName('metrics-producer'),
    logLevel: 'warn',
    statisticsIntervalMs: STATISTICS_INTERVAL_MS,
  });
  await producer.connect({ timeoutMs: 30000 });
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((consumer) => consumer.close()));
});

afterAll(async () => {
  await producer.disconnect();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function newTopic(partitions) {
  const topic = uniqueName('metrics');
  await producer.ensureTopics([{ name: topic, partitions }]);
  return topic;
}

async function register(topic, callback, options = {}) {
  const consumer = await registerConsumer(topic, callback, {
    brokers: brokers(),
    groupId: uniqueName('metrics-group'),
    fromBeginning: true,
    sessionTimeoutMs: 6000,
    logLevel: 'warn',
    statisticsIntervalMs: STATISTICS_INTERVAL_MS,
    config: { 'fetch.wait.max.ms': 50 },
    ...options,
  });
  opened.push(consumer);
  return consumer;
}

function messages(count, from = 0) {
  return Array.from({ length: count }, (_, i) => ({ key: `movie-${(from + i) % 7}`, value: { id: from + i } }));
}

/** The samples of one metric family, from the independent parser's output. */
function samples(text, name) {
  const family = parsePrometheusTextFormat(text).find((entry) => entry.name === name);
  return family ? family.metrics : [];
}

test('producer metrics count, time and queue the messages as they flow', async () => {
  const topic = await newTopic(3);
  const before = producer.metrics();
  await producer.send({ topic, messages: messages(500) });
  const after = producer.metrics();
  expect(after.sent - before.sent).toBe(500);
  expect(after.delivered - before.delivered).toBe(500);
  expect(after.failed).toBe(before.failed);
  expect(after.queued).toBe(0);
  expect(after.deliveryLatency.count - before.deliveryLatency.count).toBe(500);
  expect(after.deliveryLatency.p50Ms).toBeGreaterThan(0);
  expect(after.deliveryLatency.p99Ms).toBeGreaterThanOrEqual(after.deliveryLatency.p50Ms);
  expect(after.deliveryLatency.meanMs).toBeGreaterThan(0);

  // While sends are outstanding, they are queued.
  const pending = producer.send({ topic, messages: messages(2000) });
  expect(producer.metrics().queued).toBeGreaterThan(0);
  await pending;

  // The rate covers the last statistics interval: keep messages flowing until a report sees them.
  let flowing = true;
  const flow = (async () => {
    while (flowing) await producer.send({ topic, messages: messages(50) });
  })();
  try {
    await eventually(() => producer.metrics().deliveredPerSecond > 0 && producer.metrics().brokersUp >= 1, {
      what: 'a statistics report with a delivery rate and a broker up',
    });
  } finally {
    flowing = false;
    await flow;
  }
  const reported = producer.metrics();
  expect(reported.connected).toBe(true);
  expect(reported.statisticsAt).toBeGreaterThan(Date.now() - 60000);
  expect(reported.brokers.some((b) => b.state === 'UP' && b.nodeId >= 0)).toBe(true);
});

test('a message accepted and then not delivered counts as failed, with its latency left out', async () => {
  // Tansu creates no topic on produce: the message waits for one until its timeout.
  const impatient = new KafkaProducer({
    brokers: brokers(),
    clientId: uniqueName('impatient'),
    logLevel: 'off',
    config: { 'message.timeout.ms': 1500, 'allow.auto.create.topics': false },
  });
  try {
    await expect(impatient.send({ topic: uniqueName('missing'), messages: [{ value: 'x' }] })).rejects.toThrow();
    expect(impatient.metrics()).toMatchObject({ sent: 1, delivered: 0, failed: 1, queued: 0 });
    expect(impatient.metrics().deliveryLatency.count).toBe(0);
  } finally {
    await impatient.disconnect();
  }
});

test('consumer metrics: processed, processing time, and lag that rises while paused and falls when resumed', async () => {
  const topic = await newTopic(2);
  await producer.send({ topic, messages: messages(200) });
  let handled = 0;
  const consumer = await register(topic, async () => {
    await sleep(2);
    handled += 1;
  });
  await eventually(() => handled === 200, { what: 'the first 200' });
  await eventually(() => consumer.metrics().totalLag === 0, { what: 'no lag once handled' });
  let metrics = consumer.metrics();
  expect(metrics).toMatchObject({ received: 200, processed: 200, paused: false, connected: true });
  expect(metrics.processingTime.count).toBe(200);
  expect(metrics.processingTime.meanMs).toBeGreaterThanOrEqual(1);
  expect(metrics.lag.map((p) => p.partition).sort()).toEqual([0, 1]);
  await eventually(() => consumer.metrics().groupState === 'up' && consumer.metrics().rebalances >= 1, {
    what: 'the group state in a statistics report',
  });

  consumer.pause();
  await sleep(200);
  // One message per request: Tansu answers a ListOffsets (how a paused consumer's
  // high watermark is read) with the last batch's base offset + 1, which is the
  // high watermark only for single-message batches. Kafka answers with the high watermark.
  for (const message of messages(300, 200)) await producer.send({ topic, messages: [message] });
  await eventually(() => consumer.metrics().totalLag === 300, { what: 'a lag of 300 while paused' });
  metrics = consumer.metrics();
  expect(metrics.paused).toBe(true);
  expect(metrics.processed).toBe(200);
  expect(metrics.lag.reduce((sum, p) => sum + p.lag, 0)).toBe(300);
  const text = prometheusMetrics();
  const lagSeries = samples(text, 'kafka_consumer_lag').filter((m) => m.labels.consumer === consumer.name);
  expect(lagSeries.reduce((sum, m) => sum + Number(m.value), 0)).toBe(300);

  consumer.resume();
  // Falls while the backlog drains; the rate covers the last statistics interval.
  let sawRate = false;
  await eventually(
    () => {
      sawRate ||= consumer.metrics().processedPerSecond > 0;
      return handled === 500;
    },
    { what: 'the rest after resume' },
  );
  await eventually(() => consumer.metrics().totalLag === 0, { what: 'the lag to fall to 0' });
  expect(consumer.metrics().processed).toBe(500);
  if (!sawRate) {
    await producer.send({ topic, messages: messages(200, 500) });
    await eventually(() => consumer.metrics().processedPerSecond > 0, { what: 'a processing rate' });
  }
});

test('the Prometheus exposition covers every live client, parses, and drops closed ones', async () => {
  expect(PROMETHEUS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8');
  const topic = await newTopic(1);
  const own = new KafkaProducer({ brokers: brokers(), clientId: uniqueName('exposed'), logLevel: 'warn' });
  await own.send({ topic, messages: messages(42) });
  let handled = 0;
  const consumer = await register(topic, () => {
    handled += 1;
  });
  await eventually(() => handled === 42, { what: 'the 42 messages' });

  const text = prometheusMetrics();
  const byClient = (name) => samples(text, name).find((m) => m.labels?.client_id === own.clientId);
  const byConsumer = (name) => samples(text, name).find((m) => m.labels?.consumer === consumer.name);
  expect(byClient('kafka_producer_messages_sent_total')?.value).toBe('42');
  expect(byClient('kafka_producer_messages_delivered_total')?.value).toBe('42');
  // The parser drops histograms' labels: read those lines directly.
  const histogramLine = (name, label) =>
    text.split('\n').find((line) => line.startsWith(`${name}{${label}`) && !line.includes(',le="'));
  expect(histogramLine('kafka_producer_delivery_latency_seconds_count', `client_id="${own.clientId}"`)).toMatch(/ 42$/);
  expect(text).toContain(
    `kafka_producer_delivery_latency_seconds_bucket{client_id="${own.clientId}",handle="${own.metrics().handle}",le="+Inf"} 42`,
  );
  expect(byConsumer('kafka_consumer_messages_processed_total')?.value).toBe('42');
  expect(byConsumer('kafka_consumer_messages_processed_total')?.labels.group).toBe(consumer.groupId);
  expect(histogramLine('kafka_consumer_processing_seconds_count', `consumer="${consumer.name}"`)).toMatch(/ 42$/);
  expect(byConsumer('kafka_consumer_in_flight_messages')).toBeDefined();
  const families = parsePrometheusTextFormat(text);
  for (const family of families) expect(family.help).not.toBe('');
  expect(new Set(families.map((f) => f.name)).size).toBe(families.length);

  await own.disconnect();
  await consumer.close();
  const after = prometheusMetrics();
  expect(after).not.toContain(own.clientId);
  expect(after).not.toContain(`consumer="${consumer.name}"`);
});

test('bad metrics options are rejected with a code', () => {
  expect(() => new KafkaProducer({ statisticsIntervalMs: -1 })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG' }),
  );
  // @ts-expect-error: the wrong type on purpose
  expect(() => new KafkaProducer({ statisticsIntervalMs: 'often' })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG' }),
  );
});

describe('connectivity', () => {
  // Clients reach a private broker through a TCP proxy that the test takes down
  // and brings back: an outage without the broker losing its state. (Restarting
  // Tansu instead starts an empty cluster, whose fetch answers crash librdkafka
  // 2.12 in its metadata cache: a broker that forgets its topics is not one to test against.)
  const brokerPort = 29197;
  const proxyPort = 29196;
  const own = `127.0.0.1:${proxyPort}`;
  const proxy = tcpProxy(proxyPort, brokerPort);
  beforeAll(async () => {
    broker('start', brokerPort, { advertisedPort: proxyPort });
    await proxy.start();
  });
  afterAll(async () => {
    await proxy.stop();
    broker('stop', brokerPort);
  });

  test('connected turns false for producer and consumer when the broker goes away, and true once it is back', async () => {
    const topic = uniqueName('metrics-outage');
    const local = new KafkaProducer({
      brokers: own,
      clientId: uniqueName('outage-producer'),
      logLevel: 'off',
      retryIntervalMs: 200,
      statisticsIntervalMs: STATISTICS_INTERVAL_MS,
    });
    try {
      await local.connect({ timeoutMs: 30000 });
      await local.ensureTopics([{ name: topic, partitions: 1 }]);
      // Statistics off: connectivity must not depend on them.
      const consumer = await register(topic, () => {}, { brokers: own, logLevel: 'off', statisticsIntervalMs: 0 });
      expect(local.metrics().connected).toBe(true);
      expect(consumer.metrics().connected).toBe(true);

      await proxy.stop();
      await eventually(() => !local.metrics().connected && !consumer.metrics().connected, {
        what: 'both to report the outage',
      });
      const connectedSeries = samples(prometheusMetrics(), 'kafka_client_connected').filter(
        (m) => m.labels?.client_id === local.clientId || m.labels?.consumer === consumer.name,
      );
      expect(connectedSeries.map((m) => Number(m.value))).toEqual([0, 0]);

      await proxy.start();
      await eventually(() => local.metrics().connected && consumer.metrics().connected, {
        timeoutMs: 60000,
        what: 'both to report the broker back',
      });
    } finally {
      await local.disconnect();
    }
  });
});

describe('broker stopped', () => {
  // The broker process itself stops (and is not brought back while these clients
  // live: a restarted Tansu is an empty cluster, see above).
  const port = 29198;
  const own = `127.0.0.1:${port}`;
  beforeAll(() => broker('start', port));
  afterAll(() => broker('stop', port));

  test('when the broker stops, producer and consumer report it in metrics() and the exposition', async () => {
    const topic = uniqueName('metrics-stop');
    const local = new KafkaProducer({ brokers: own, clientId: uniqueName('stop-producer'), logLevel: 'off' });
    try {
      await local.connect({ timeoutMs: 30000 });
      await local.ensureTopics([{ name: topic, partitions: 1 }]);
      const consumer = await register(topic, () => {}, { brokers: own, logLevel: 'off' });
      await local.send({ topic, messages: [{ value: 'before' }] });
      expect(local.metrics().connected && consumer.metrics().connected).toBe(true);

      broker('stop', port);
      await eventually(() => !local.metrics().connected && !consumer.metrics().connected, {
        what: 'both to report the broker gone',
      });
      const series = samples(prometheusMetrics(), 'kafka_client_connected').filter(
        (m) => m.labels?.client_id === local.clientId || m.labels?.consumer === consumer.name,
      );
      expect(series.map((m) => Number(m.value))).toEqual([0, 0]);
      // Still down a moment later: nothing reports a connection that is not there.
      await sleep(1500);
      expect(local.metrics().connected || consumer.metrics().connected).toBe(false);
    } finally {
      await local.disconnect(1000);
    }
  });
});
