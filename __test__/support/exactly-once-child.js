// A consume-transform-produce process for exactly-once.test.js, which SIGKILLs it mid-stream.
// Settings come as JSON in EXACTLY_ONCE_CHILD: brokers, input, output, groupId,
// transactionalId, progress (a file). For each input `{ id }` the callback sends one output
// `{ id, run, attempt }` within the run's transaction, then appends the id to `progress`
// with a synchronous write, so the parent sees how far this process got even after a kill.
// On SIGTERM it closes the consumer and prints its stats as the last stdout line.
const fs = require('node:fs');
const path = require('node:path');
const { registerConsumer } = require(path.join(__dirname, '..', '..', 'index'));

const settings = JSON.parse(process.env.EXACTLY_ONCE_CHILD ?? '{}');
const progress = fs.openSync(settings.progress, 'a');
const run = path.basename(settings.progress);

/** @type {import('../../index').ConsumerHandle | undefined} */
let consumer;
let closing = false;

async function close() {
  if (closing || !consumer) {
    closing = true;
    return;
  }
  closing = true;
  const stats = consumer.stats();
  await consumer.close();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
}

process.on('SIGTERM', () => {
  close();
});

registerConsumer(
  settings.input,
  async (/** @type {any} */ message, /** @type {any} */ tx) => {
    const { id } = message.value;
    // One record per send (and per batch on the wire): librdkafka leaves a one-record batch
    // uncompressed, which the wire reader needs (the transactional producer compresses with lz4).
    await tx.send({
      topic: settings.output,
      messages: [{ key: String(id), value: { id, run, attempt: message.attempt } }],
    });
    fs.writeSync(progress, `${id}\n`);
  },
  {
    brokers: settings.brokers,
    groupId: settings.groupId,
    fromBeginning: true,
    sessionTimeoutMs: 6000,
    joinTimeoutMs: 60000,
    logLevel: 'warn',
    config: { 'fetch.wait.max.ms': 50 },
    exactlyOnce: { transactionalId: settings.transactionalId },
  },
).then(
  (handle) => {
    consumer = handle;
    if (closing) {
      closing = false;
      close();
    }
  },
  (error) => {
    process.stderr.write(`registerConsumer failed: ${error.code} ${error.message}\n`);
    process.exit(2);
  },
);
