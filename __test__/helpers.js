// Shared helpers for tests that talk to the real broker started by
// scripts/with-broker.sh (KAFKA_BROKERS), verified with an independent client (kafkajs).
const { execFileSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { types } = require('node:util');
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs');
const lz4 = require('lz4-napi');

// kafkajs reads only gzip by itself; the producer compresses with lz4 by default.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: (encoder) => lz4.compressFrame(encoder.buffer),
  decompress: (buffer) => lz4.decompressFrame(buffer),
});

const ROOT = path.join(__dirname, '..');

function brokers() {
  const value = process.env.KAFKA_BROKERS;
  if (!value) {
    throw new Error('KAFKA_BROKERS is not set: run the tests with `npm test` (it starts a broker)');
  }
  return value.split(',');
}

/** True for a genuine Error object (`instanceof` is unreliable across jest's realms). */
function isError(value) {
  return types.isNativeError(value);
}

/**
 * Runs `script` in a fresh Node process with `env`, returning its parsed JSON output.
 * With `timeoutMs`, a process still running after it is killed and the call throws.
 * @param {string} script
 * @param {Record<string, string>} [env]
 * @param {{ timeoutMs?: number }} [options]
 */
function runNode(script, env, { timeoutMs } = {}) {
  const output = execFileSync(process.execPath, ['-e', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return JSON.parse(output.trim().split('\n').pop() ?? 'null');
}

/**
 * Polls `check` (which may return a promise) until it is truthy, or throws
 * naming `what` after `timeoutMs`.
 * @param {() => unknown} check
 */
async function eventually(check, { timeoutMs = 60000, what = 'condition', intervalMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function uniqueName(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A logger that records every call, for assertions on log output. */
function recordingLogger() {
  const lines = [];
  const record = (level) => (message, context) => lines.push({ level, message, context });
  return {
    lines,
    logger: {
      error: record('error'),
      warn: record('warn'),
      info: record('info'),
      debug: record('debug'),
    },
  };
}

/**
 * Reads `topic` from the beginning with kafkajs until `expected` messages have
 * arrived, or, when `expected` is a function, until it returns true for them.
 * @param {string} topic
 * @param {number | ((messages: any[]) => boolean)} expected
 */
async function readTopic(topic, expected, { timeoutMs = 30000 } = {}) {
  const done = typeof expected === 'function' ? expected : (/** @type {any[]} */ read) => read.length >= expected;
  const kafka = new Kafka({ brokers: brokers(), clientId: 'test-verifier', logLevel: logLevel.NOTHING });
  // Tansu stalls a group's first join for about half the session timeout.
  const consumer = kafka.consumer({
    groupId: uniqueName('verifier'),
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 100,
  });
  const messages = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await /** @type {Promise<void>} */ (
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`read ${messages.length} messages from ${topic}, not what was expected`)),
          timeoutMs,
        );
        consumer
          .run({
            eachMessage: async ({ partition, message }) => {
              messages.push({ partition, ...message });
              if (done(messages)) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      })
    );
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

/**
 * Runs scripts/broker.sh with the given port, returning its KAFKA_BROKERS value.
 * @param {string} command
 * @param {number} port
 * @param {{ advertisedPort?: number }} [options]
 */
function broker(command, port, { advertisedPort = port } = {}) {
  const output = execFileSync('bash', [path.join(ROOT, 'scripts/broker.sh'), command], {
    env: { ...process.env, KAFKA_TEST_PORT: String(port), KAFKA_ADVERTISED_PORT: String(advertisedPort) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = output.trim().split('\n').pop() ?? '';
  return line.startsWith('KAFKA_BROKERS=') ? line.slice('KAFKA_BROKERS='.length) : undefined;
}

/**
 * A TCP proxy on 127.0.0.1 that a test can take down and bring back, to cut
 * clients off from a broker without losing the broker's state.
 * @param {number} listenPort
 * @param {number} targetPort
 */
function tcpProxy(listenPort, targetPort) {
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  /** @type {import('node:net').Server | undefined} */
  let server;
  return {
    start: () =>
      /** @type {Promise<void>} */ (
        new Promise((resolve, reject) => {
          server = net.createServer((client) => {
            const upstream = net.connect(targetPort, '127.0.0.1');
            for (const socket of [client, upstream]) {
              sockets.add(socket);
              socket.on('error', () => {});
              socket.on('close', () => {
                sockets.delete(socket);
                client.destroy();
                upstream.destroy();
              });
            }
            client.pipe(upstream).pipe(client);
          });
          server.once('error', reject);
          server.listen(listenPort, '127.0.0.1', () => resolve());
        })
      ),
    stop: () =>
      /** @type {Promise<void>} */ (
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          sockets.clear();
          if (server) server.close(() => resolve());
          else resolve();
        })
      ),
  };
}

module.exports = { brokers, eventually, uniqueName, recordingLogger, readTopic, broker, tcpProxy, isError, runNode };
