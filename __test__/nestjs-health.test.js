// The NestJS layer's health indicator and metrics against a broker of this test's own (Tansu on
// a private port), so the shared broker is never touched. The broker "stops" the way clients see
// it, by a TCP proxy in front of it going down (as in producer-reconnect.test.js): a restarted
// in-memory Tansu has lost its topics and then answers metadata with a topic without a name,
// which librdkafka's consumer does not survive (rd_kafka_metadata_update_op); a real broker keeps
// its topics across a restart. @nestjs/terminus 12 is an ES module only, which jest 29 cannot
// load: the check through its HealthCheckService runs in a plain Node process.
require('reflect-metadata');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const {
  BaseKafkaConsumerService,
  KafkaHealthIndicator,
  KafkaProducerModule,
  KafkaProducerService,
} = require('kafka-napi/nestjs');
const { broker, tcpProxy, uniqueName } = require('./helpers');

jest.setTimeout(120000);

const BROKER_PORT = 29311;
const PROXY_PORT = 29310;
const BROKERS = `127.0.0.1:${PROXY_PORT}`;
const proxy = tcpProxy(PROXY_PORT, BROKER_PORT);
/** Our broker; Tansu stalls a group's first join for about half the session timeout; statistics every 500 ms. */
const CONSUMER = {
  brokers: [BROKERS],
  fromBeginning: true,
  sessionTimeoutMs: 6000,
  statisticsIntervalMs: 500,
  config: { 'fetch.wait.max.ms': 50 },
  logLevel: 'off',
};

beforeAll(async () => {
  broker('stop', BROKER_PORT);
  broker('start', BROKER_PORT, { advertisedPort: PROXY_PORT });
  await proxy.start();
});
afterAll(async () => {
  await proxy.stop();
  broker('stop', BROKER_PORT);
});

/**
 * Like helpers' runNode, but without blocking: the proxy runs in this process.
 * @param {string} script @param {Record<string, string>} env
 */
async function runNodeAsync(script, env) {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
    cwd: path.join(__dirname, '..'),
    env: { PATH: process.env.PATH, ...env },
    timeout: 60000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? 'null');
}

/** @param {() => boolean} condition @param {string} what */
async function eventually(condition, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A consumer service counting what it handles. @param {any} config @param {string} name */
function countingConsumer(config, name) {
  return class extends BaseKafkaConsumerService {
    constructor() {
      super(config, name);
      this.handled = 0;
    }
    async handleMessage() {
      this.handled += 1;
    }
  };
}

/** An application context with the producer module on our broker and `consumers`. @param {any[]} consumers */
async function appWith(topic, consumers) {
  class AppModule {}
  Module({
    imports: [
      KafkaProducerModule.forRoot({
        brokers: [BROKERS],
        topics: [{ name: topic, partitions: 2 }],
        connectTimeoutMs: 10000,
        statisticsIntervalMs: 500,
        logLevel: 'off',
      }),
    ],
    providers: consumers.map((Consumer) => ({ provide: Consumer, useFactory: () => new Consumer() })),
  })(AppModule);
  return NestFactory.createApplicationContext(AppModule, { logger: false });
}

test('the indicator follows the broker and the consumers: down when the broker stops or a consumer pauses or closes, up again after', async () => {
  const topic = uniqueName('health');
  const groupId = uniqueName('health-group');
  const Orders = countingConsumer({ ...CONSUMER, topics: [topic], groupId }, 'OrdersConsumer');
  const app = await appWith(topic, [Orders]);
  let outage = false;
  try {
    const indicator = app.get(KafkaHealthIndicator);
    const consumer = app.get(Orders);
    await consumer.ready();
    // The broker states come with librdkafka's first statistics.
    await eventually(() => indicator.isHealthy().kafka.producer.brokersUp === 1, 'the first statistics');

    let health = indicator.isHealthy();
    expect(health).toEqual({
      kafka: {
        status: 'up',
        producer: {
          status: 'up',
          clientId: app.get(KafkaProducerService).producer.clientId,
          connected: true,
          queued: 0,
          brokersUp: 1,
          brokers: expect.any(Object),
        },
        consumers: {
          OrdersConsumer: { status: 'up', state: 'running', groupId, connected: true, totalLag: expect.any(Number) },
        },
      },
    });
    expect(Object.values(health.kafka.producer.brokers ?? {})).toContain('UP');
    // The same parts, each under a key of its own.
    expect(indicator.checkProducer()).toEqual({ 'kafka-producer': health.kafka.producer });
    expect(indicator.checkConsumers('consumers')).toEqual({
      consumers: { status: 'up', consumers: health.kafka.consumers },
    });

    // Messages flow, and the service's metrics() show them.
    await app.get(KafkaProducerService).send({ topic, messages: [{ key: 'a', value: { n: 1 } }] });
    await eventually(() => consumer.handled === 1, 'the message to be handled');
    expect(app.get(KafkaProducerService).metrics()).toMatchObject({ sent: 1, delivered: 1, failed: 0 });
    await eventually(() => consumer.metrics()?.processed === 1, 'the consumer metrics to count it');
    expect(consumer.metrics()).toMatchObject({ groupId, received: 1, processed: 1, connected: true });

    // A paused consumer is down (unless paused consumers are allowed); the producer is not affected.
    consumer.pause();
    health = indicator.isHealthy();
    expect(health.kafka).toMatchObject({
      status: 'down',
      message: 'OrdersConsumer: paused',
      producer: { status: 'up' },
      consumers: { OrdersConsumer: { status: 'down', state: 'paused', message: 'paused' } },
    });
    expect(indicator.checkProducer()['kafka-producer'].status).toBe('up');
    expect(indicator.checkConsumers('kafka', { allowPaused: true }).kafka.status).toBe('up');
    consumer.resume();
    expect(indicator.isHealthy().kafka.status).toBe('up');

    // The broker goes away: the producer and the consumer (still running) reach no broker.
    await proxy.stop();
    outage = true;
    await eventually(
      () =>
        !indicator.isHealthy().kafka.producer.connected &&
        indicator.isHealthy().kafka.consumers.OrdersConsumer.connected === false,
      'the outage to be noticed',
    );
    health = indicator.isHealthy();
    expect(health.kafka).toMatchObject({
      status: 'down',
      message: 'producer: no broker reachable; OrdersConsumer: no broker reachable',
      producer: { status: 'down', connected: false, message: 'no broker reachable' },
      consumers: { OrdersConsumer: { status: 'down', state: 'running', connected: false } },
    });

    // It is back: up again, without restarting anything.
    await proxy.start();
    outage = false;
    await eventually(() => indicator.isHealthy().kafka.status === 'up', 'the indicator to be up again', 60000);
    expect(indicator.isHealthy().kafka).toMatchObject({
      producer: { status: 'up', connected: true },
      consumers: { OrdersConsumer: { status: 'up', state: 'running', connected: true } },
    });

    // Closing (as on shutdown): down while it drains, then no longer reported.
    const closing = consumer.onModuleDestroy();
    expect(indicator.checkConsumers()['kafka-consumers']).toMatchObject({
      status: 'down',
      message: 'OrdersConsumer: closed',
      consumers: { OrdersConsumer: { status: 'down', state: 'closed' } },
    });
    await closing;
    expect(indicator.checkConsumers()).toEqual({ 'kafka-consumers': { status: 'up', consumers: {} } });
  } finally {
    if (outage) await proxy.start();
    await app.close();
  }
});

test('a consumer that cannot start is down with its error; consumers are reported by name, in start order', async () => {
  const topic = uniqueName('health');
  const Unreachable = countingConsumer(
    { topics: ['nowhere'], brokers: ['127.0.0.1:1'], joinTimeoutMs: 300, logLevel: 'off' },
    'UnreachableConsumer',
  );
  const Orders = countingConsumer(
    { ...CONSUMER, topics: [topic], groupId: uniqueName('health-group') },
    'OrdersConsumer',
  );
  const app = await appWith(topic, [Orders, Unreachable]);
  try {
    const indicator = app.get(KafkaHealthIndicator);
    const unreachable = app.get(Unreachable);
    await app.get(Orders).ready();
    await eventually(() => unreachable.state === 'retrying', 'the failed start');
    const health = indicator.isHealthy('kafka').kafka;
    expect(Object.keys(health.consumers)).toEqual(['OrdersConsumer', 'UnreachableConsumer']);
    expect(health.status).toBe('down');
    expect(health.message).toMatch(/^UnreachableConsumer: retrying \(ERR_KAFKA_TIMED_OUT: /);
    expect(health.producer.status).toBe('up');
    expect(health.consumers.OrdersConsumer.status).toBe('up');
    expect(health.consumers.UnreachableConsumer).toEqual({
      status: 'down',
      message: `retrying (${unreachable.error})`,
      state: 'retrying',
      error: unreachable.error,
    });
    expect(unreachable.metrics()).toBeUndefined();
    // Only the consumers asked about.
    expect(Object.keys(indicator.checkConsumers('kafka', { consumers: [app.get(Orders)] }).kafka.consumers)).toEqual([
      'OrdersConsumer',
    ]);
    expect(indicator.checkConsumers('kafka', { consumers: [app.get(Orders)] }).kafka.status).toBe('up');
  } finally {
    await app.close();
  }
});

test('with @nestjs/terminus’ HealthCheckService: ok while all is up, 503 naming the part that is down', async () => {
  const script = `
    require('reflect-metadata');
    const { execFile } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { Module } = require('@nestjs/common');
    const { NestFactory } = require('@nestjs/core');
    const { HealthCheckService, TerminusModule } = require('@nestjs/terminus');
    const { BaseKafkaConsumerService, KafkaHealthIndicator, KafkaProducerModule } = require('kafka-napi/nestjs');

    class Orders extends BaseKafkaConsumerService {
      constructor() {
        super({ topics: [process.env.TOPIC], groupId: process.env.GROUP, sessionTimeoutMs: 6000, logLevel: 'off' }, 'OrdersConsumer');
      }
      async handleMessage() {}
    }
    class AppModule {}
    Module({
      imports: [
        TerminusModule.forRoot({ logger: false }),
        KafkaProducerModule.forRoot({
          brokers: [process.env.BROKERS],
          topics: [{ name: process.env.TOPIC, partitions: 1 }],
          connectTimeoutMs: 10000,
          logLevel: 'off',
        }),
      ],
      providers: [{ provide: Orders, useFactory: () => new Orders() }],
    })(AppModule);

    const failure = (error) => ({ name: error.constructor.name, status: error.getStatus?.(), response: error.getResponse?.() });

    (async () => {
      const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
      const health = app.get(HealthCheckService);
      const kafka = app.get(KafkaHealthIndicator);
      await app.get(Orders).ready();
      const checks = [() => kafka.checkProducer(), () => kafka.checkConsumers()];
      const result = { terminus: require('@nestjs/terminus/package.json').version };
      result.up = await health.check(checks);
      result.combined = await health.check([() => kafka.isHealthy('kafka')]);
      app.get(Orders).pause();
      result.down = await health.check(checks).then(() => 'resolved', failure);
      result.combinedDown = await health.check([() => kafka.isHealthy('kafka')]).then(() => 'resolved', failure);
      // What terminus makes of an indicator that throws instead.
      result.thrown = await health.check([() => { throw new Error('indicator threw'); }]).then(() => 'resolved', failure);
      await app.close();
      console.log(JSON.stringify(result));
    })().catch((error) => {
      console.error(error);
      process.exit(1);
    });
  `;
  const result = await runNodeAsync(script, {
    BROKERS,
    TOPIC: uniqueName('terminus'),
    GROUP: uniqueName('terminus-group'),
  });
  expect(result.terminus).toMatch(/^12\./);

  const consumerUp = { status: 'up', state: 'running', groupId: expect.any(String), connected: true, totalLag: 0 };
  const producerUp = expect.objectContaining({ status: 'up', connected: true });
  const upInfo = {
    'kafka-producer': producerUp,
    'kafka-consumers': { status: 'up', consumers: { OrdersConsumer: consumerUp } },
  };
  expect(result.up).toEqual({ status: 'ok', info: upInfo, error: {}, details: upInfo });
  expect(result.combined).toMatchObject({ status: 'ok', info: { kafka: { status: 'up' } }, error: {} });

  // A down result (not an exception) is what makes terminus answer 503 with the failing part under `error`.
  expect(result.down).toEqual({
    name: 'ServiceUnavailableException',
    status: 503,
    response: {
      status: 'error',
      info: { 'kafka-producer': producerUp },
      error: {
        'kafka-consumers': {
          status: 'down',
          message: 'OrdersConsumer: paused',
          consumers: { OrdersConsumer: { ...consumerUp, status: 'down', state: 'paused', message: 'paused' } },
        },
      },
      details: expect.any(Object),
    },
  });
  expect(result.combinedDown).toMatchObject({
    status: 503,
    response: { status: 'error', info: {}, error: { kafka: { status: 'down', message: 'OrdersConsumer: paused' } } },
  });
  // With terminus 12 an indicator that throws is a plain error (a 500), not a 503: hence down results.
  expect(result.thrown).toMatchObject({ name: 'Error' });
  expect(result.thrown.status).toBeUndefined();
});
