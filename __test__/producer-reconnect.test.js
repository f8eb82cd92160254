// The producer when the broker is down at start, and when the network to it
// fails mid-run. Its own Tansu broker listens on one port and advertises a
// second one, where a TCP proxy of the test's stands: stopping the proxy cuts
// the producer off without the broker losing state (as a network outage would).
const { KafkaProducer } = require('../index');
const { broker, eventually, recordingLogger, tcpProxy } = require('./helpers');

jest.setTimeout(90000);

const brokerPort = 29194;
const proxyPort = 29193;
const proxy = tcpProxy(proxyPort, brokerPort);

beforeAll(() => broker('stop', brokerPort));
afterAll(async () => {
  await proxy.stop();
  broker('stop', brokerPort);
});

test('starts with the broker down, keeps retrying (past a bounded buffer sends fail fast), delivers once it is up, and rides out an outage', async () => {
  const { lines, logger } = recordingLogger();
  const producer = new KafkaProducer({
    brokers: `127.0.0.1:${proxyPort}`,
    clientId: 'reconnecting',
    retryIntervalMs: 200,
    logger,
  });
  const logged = (level, pattern) => lines.some((l) => l.level === level && pattern.test(l.message));
  try {
    // The default connect never fails the application.
    await expect(producer.connect()).resolves.toBeUndefined();
    expect(producer.isConnected).toBe(false);
    // With a deadline it fails fast, with a code, and keeps retrying.
    await expect(producer.connect({ timeoutMs: 500 })).rejects.toMatchObject({
      code: 'ERR_KAFKA_TIMED_OUT',
      retriable: true,
    });
    await eventually(() => logged('warn', /cannot reach 127\.0\.0\.1:29193/), { what: 'a retry warning' });
    expect(lines.every((l) => l.context === 'reconnecting')).toBe(true);

    // Past a bounded buffer, sends fail fast with a clear code (the others keep waiting).
    const bounded = new KafkaProducer({
      brokers: `127.0.0.1:${proxyPort}`,
      clientId: 'bounded',
      enqueueTimeoutMs: 200,
      logLevel: 'off',
      config: { 'queue.buffering.max.messages': 3 },
    });
    const buffered = Array.from({ length: 3 }, (_, i) => bounded.sendMessage('bounded-buffer', { i }));
    const started = Date.now();
    await expect(bounded.sendMessage('bounded-buffer', { i: 3 })).rejects.toMatchObject({
      code: 'ERR_KAFKA_QUEUE_FULL',
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(bounded.queuedMessages).toBe(3);

    // A send issued while the broker is down waits in the queue.
    let settled = false;
    // Tansu creates topics on first produce, as Kafka does with auto.create.topics.enable.
    const pending = producer.sendMovieViewEvent('user-1', 'movie-1').finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(settled).toBe(false);

    broker('start', brokerPort, { advertisedPort: proxyPort });
    await proxy.start();
    await expect(pending).resolves.toMatchObject({ topic: 'movie-views', offset: 0 });
    // The buffered sends of the bounded producer are delivered too.
    await expect(Promise.all(buffered)).resolves.toHaveLength(3);
    await bounded.disconnect(2000);
    await producer.connect({ timeoutMs: 10000 });
    expect(producer.isConnected).toBe(true);
    expect(logged('info', /connected to 127\.0\.0\.1:29193/)).toBe(true);

    // The network fails mid-run: the outage is reported and sends wait.
    await proxy.stop();
    await eventually(() => !producer.isConnected, { what: 'the outage to be noticed' });
    await eventually(() => logged('warn', /lost contact/), { what: 'an outage warning' });
    const duringOutage = producer.sendMovieViewEvent('user-2', 'movie-1');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(producer.queuedMessages).toBe(1);

    // It comes back: the waiting send is delivered, once, right after the first.
    await proxy.start();
    await expect(duringOutage).resolves.toMatchObject({ topic: 'movie-views', offset: 1 });
    await eventually(() => producer.isConnected, { what: 'reconnection' });
    expect(logged('info', /reconnected/)).toBe(true);
  } finally {
    await producer.disconnect(2000);
  }
});
