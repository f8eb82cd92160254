// Smoke test of one built binary, for the release workflow's runners (and by hand):
//
//   node scripts/smoke-binding.js
//
// Loads the addon through index.js, the loader that picks the .node for this platform, then
// produces one message and consumes it back on the embedded in-process cluster, so no broker
// is needed. Prints which binary was loaded; exits non-zero on any failure.
const path = require('node:path');

delete process.env.KAFKA_BROKERS; // the embedded cluster: the same on every runner
if (process.env.NODE_ENV === 'production') delete process.env.NODE_ENV; // which refuses it

const binding = require(path.join(__dirname, '..', 'index.js'));
const { version } = require(path.join(__dirname, '..', 'package.json'));

async function main() {
  const topic = 'smoke';
  const producer = new binding.KafkaProducer({ clientId: 'smoke', logLevel: 'error' });
  await producer.ensureTopics([{ name: topic, partitions: 1 }]);
  /** @type {(value: unknown) => void} */
  let onMessage = () => {};
  const received = new Promise((resolve) => {
    onMessage = resolve;
  });
  const consumer = await binding.registerConsumer(topic, (message) => onMessage(message.value), {
    groupId: 'smoke',
    fromBeginning: true,
    logLevel: 'error',
  });
  const [sent] = await producer.send({ topic, messages: [{ key: 'k', value: { smoke: true } }] });
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('no message after 30 s')), 30000).unref(),
  );
  const value = await Promise.race([received, timeout]);
  if (JSON.stringify(value) !== '{"smoke":true}') throw new Error(`consumed ${JSON.stringify(value)}`);
  await consumer.close();
  await producer.disconnect();
  const loaded = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
  console.log(
    `kafka-napi ${version} on ${process.platform}-${process.arch}, Node ${process.version}: ` +
      `loaded ${loaded.join(', ')}; produced and consumed offset ${sent.offset}`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
