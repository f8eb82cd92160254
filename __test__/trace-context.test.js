// W3C trace context across Kafka, on the real broker: what the producer
// writes is on the wire for any client (read back with kafkajs), and the
// consumer hands it to the callback parsed.
const { KafkaProducer, registerConsumer } = require('../index');
const { brokers, uniqueName, readTopic } = require('./helpers');

jest.setTimeout(60000);

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const OTEL_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** @type {KafkaProducer} */
let producer;

beforeAll(async () => {
  producer = new KafkaProducer({
    brokers: brokers(),
    clientId: uniqueName('tracing'),
    logLevel: 'warn',
    generateTraceparent: true,
  });
  await producer.connect({ timeoutMs: 30000 });
});

afterAll(async () => {
  await producer.disconnect();
});

test('generated and propagated traceparents reach other clients and the callback', async () => {
  const topic = uniqueName('traced');
  await producer.ensureTopics([{ name: topic, partitions: 1 }]);
  await producer.send({
    topic,
    messages: [
      { key: 'm1', value: { n: 1 } },
      { key: 'm1', value: { n: 2 } },
      // As OpenTelemetry's propagation.inject writes them: kept as they are.
      { key: 'm1', value: { n: 3 }, headers: { traceparent: OTEL_PARENT, tracestate: 'congo=t61rcWkgMzE' } },
    ],
  });

  // On the wire, for a client that knows nothing of this library.
  const read = await readTopic(topic, 3);
  const wire = read.map((m) => m.headers.traceparent.toString());
  expect(wire[0]).toMatch(TRACEPARENT);
  expect(wire[1]).toMatch(TRACEPARENT);
  expect(wire[0].slice(3, 35)).not.toBe(wire[1].slice(3, 35));
  expect(wire[2]).toBe(OTEL_PARENT);
  expect(read[2].headers.tracestate.toString()).toBe('congo=t61rcWkgMzE');

  const received = [];
  const consumer = await registerConsumer(topic, (message) => void received.push(message), {
    brokers: brokers(),
    groupId: uniqueName('tracing-group'),
    fromBeginning: true,
    sessionTimeoutMs: 6000,
    logLevel: 'warn',
    config: { 'fetch.wait.max.ms': 50 },
  });
  try {
    const deadline = Date.now() + 30000;
    while (received.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(received.map((m) => m.value.n)).toEqual([1, 2, 3]);
    const [, , otel] = received;
    expect(otel.traceContext).toEqual({
      traceparent: OTEL_PARENT,
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      sampled: true,
      tracestate: 'congo=t61rcWkgMzE',
    });
    const generated = received[0].traceContext;
    expect(generated?.traceparent).toBe(wire[0]);
    expect(generated?.traceId).toBe(wire[0].slice(3, 35));
    expect(generated?.sampled).toBe(true);
  } finally {
    await consumer.close();
  }
});

test('a malformed traceparent is refused before anything is sent, and an absent one stays absent', async () => {
  const topic = uniqueName('badtrace');
  await producer.ensureTopics([{ name: topic, partitions: 1 }]);
  for (const traceparent of [
    'nope',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    OTEL_PARENT.toUpperCase(),
  ]) {
    await expect(
      producer.send({ topic, messages: [{ value: 'ok' }, { value: 'x', headers: { traceparent } }] }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('traceparent') });
  }
  const plain = new KafkaProducer({ brokers: brokers(), clientId: uniqueName('untraced'), logLevel: 'warn' });
  try {
    await plain.send({ topic, messages: [{ value: 'untraced' }] });
  } finally {
    await plain.disconnect();
  }
  // Only the untraced one arrived: the refused calls sent nothing.
  const read = await readTopic(topic, 1);
  expect(read.map((m) => m.value.toString())).toEqual(['untraced']);
  expect(read[0].headers.traceparent).toBeUndefined();
});
