// The embedded default: with KAFKA_BROKERS unset the addon runs librdkafka's
// in-process mock cluster. jest hands tests a copy of process.env and the addon
// reads the real one, so each case runs in a child process with a clean env.
const { runNode } = require('./helpers');

describe('embedded cluster (KAFKA_BROKERS unset)', () => {
  test('producer and consumer meet on it, and every client says so loudly', () => {
    const script = `
      const { KafkaProducer, registerConsumer } = require('./index');
      const warnings = [];
      const logger = { warn: (message, context) => warnings.push({ message, context }) };
      (async () => {
        const received = [];
        let done;
        const allReceived = new Promise((resolve) => { done = resolve; });
        const consumer = await registerConsumer('embedded-movies', async (message) => {
          received.push({ key: message.key, value: message.value });
          if (received.length === 30) done();
        }, { fromBeginning: true, logger, logLevel: 'warn', clientId: 'embedded-reader' });
        const producer = new KafkaProducer({ logger, logLevel: 'warn', clientId: 'embedded-writer' });
        await Promise.all(Array.from({ length: 30 }, (_, n) =>
          producer.sendMessage('embedded-movies', { n }, { key: 'movie-' + (n % 3) })));
        await Promise.race([allReceived, new Promise((resolve) => setTimeout(resolve, 20000).unref())]);
        await consumer.close();
        await producer.disconnect();
        const perKey = {};
        for (const { key, value } of received) (perKey[key] ??= []).push(value.n);
        console.log(JSON.stringify({ brokers: producer.brokers, count: received.length, perKey, warnings }));
      })().catch((error) => { console.log(JSON.stringify({ error: error.code + ' ' + error.message })); });
    `;
    const result = runNode(script, {});
    expect(result.error).toBeUndefined();
    expect(result.brokers).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
    expect(result.count).toBe(30);
    for (const [key, values] of Object.entries(result.perKey)) {
      const expected = Array.from({ length: 30 }, (_, n) => n).filter((n) => `movie-${n % 3}` === key);
      expect(values).toEqual(expected);
    }
    const loud = result.warnings.filter((/** @type {{message: string}} */ line) => /EMBEDDED/.test(line.message));
    expect(loud.map((/** @type {{context: string}} */ line) => line.context).sort()).toEqual([
      'embedded-reader',
      'embedded-writer',
    ]);
    expect(loud[0].message).toMatch(/KAFKA_BROKERS is not set.*development only/i);
  });

  test('ensureTopics works on it although it has no admin API', () => {
    const script = `
      const { KafkaProducer } = require('./index');
      (async () => {
        const producer = new KafkaProducer({ logLevel: 'off' });
        const first = await producer.ensureTopics([{ name: 'embedded-a', partitions: 2 }, { name: 'embedded-b' }]);
        const again = await producer.ensureTopics([{ name: 'embedded-a', partitions: 2 }]);
        const sent = await producer.sendMessage('embedded-a', 'x', { partition: 1 });
        await producer.disconnect();
        console.log(JSON.stringify({ first, again, partition: sent.partition }));
      })().catch((error) => { console.log(JSON.stringify({ error: error.code + ' ' + error.message })); });
    `;
    expect(runNode(script, {})).toEqual({
      first: [
        { name: 'embedded-a', created: true },
        { name: 'embedded-b', created: true },
      ],
      again: [{ name: 'embedded-a', created: false }],
      partition: 1,
    });
  });
});
