// @ts-check
// The measured cases, written once over the client adapter interface
// (bench/clients/types.mjs). Each runs in its own worker process (bench/worker.mjs) and
// returns plain numbers; bench/rust/ceiling.rs implements the same cases in Rust.
// Clients are not closed: the worker exits once the figures are taken (every message is
// acknowledged or handled by then), which keeps slow or hanging shutdowns out of the run.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { movieEvent, movieKey, PAYLOAD_POOL, payloadPool } from './payloads.mjs';
import { quantile, rss } from './stats.mjs';

/**
 * What the parent hands a worker (every field is set by bench/run.mjs).
 * @typedef {object} CaseSpec
 * @property {string} client
 * @property {'produce-each' | 'produce-batch' | 'consume-each' | 'consume-batch' | 'latency' | 'groups'} kind
 * @property {string[]} brokers
 * @property {string} topic
 * @property {string} groupId
 * @property {number} messages       produce: at most this many; consume: exactly this many (per group)
 * @property {number} size           payload bytes
 * @property {string} compression
 * @property {number} window         produce-each: unacknowledged messages at most
 * @property {number} batchSize
 * @property {number} batchWindow    produce-batch: unacknowledged batches at most
 * @property {number} batchWaitMs
 * @property {number} maxSeconds     produce: stop issuing after this long
 * @property {number} partitions
 * @property {number} sessionTimeoutMs
 * @property {Record<string, string>} rdkafkaConsumerConfig  extra properties for librdkafka-based clients
 * @property {number} fetchWaitMs
 * @property {number} concurrency
 * @property {number} rate           latency: messages per second offered
 * @property {number} seconds        latency: how long to offer them
 * @property {number} groups
 * @property {number} timeoutSeconds how long a consume may wait for its messages
 * @property {number} eldResolutionMs
 */

/** @typedef {import('../clients/types.mjs').BenchClient} BenchClient */

/**
 * Every producer and consumer of the run, referenced until the process exits, as an app keeps
 * its clients: a client whose handle is garbage-collected may stop (kafka-napi's consumer does).
 * @type {unknown[]}
 */
const liveClients = [];

/**
 * @param {BenchClient} client
 * @param {CaseSpec} spec
 * @returns {Promise<Record<string, unknown>>}
 */
export async function runCase(client, spec) {
  switch (spec.kind) {
    case 'produce-each':
      return produce(client, spec, 'each');
    case 'produce-batch':
      return produce(client, spec, 'batch');
    case 'consume-each':
      return consume(client, spec, 'each');
    case 'consume-batch':
      return consume(client, spec, 'batch');
    case 'latency':
      return latency(client, spec);
    case 'groups':
      return groups(client, spec);
    default:
      throw new Error(`unknown case ${spec.kind}`);
  }
}

/** @param {CaseSpec} spec @param {string} role */
function consumerParams(spec, role) {
  return {
    brokers: spec.brokers,
    clientId: `bench-${spec.client}-${role}`,
    topic: spec.topic,
    groupId: spec.groupId,
    partitions: spec.partitions,
    sessionTimeoutMs: spec.sessionTimeoutMs,
    fetchWaitMs: spec.fetchWaitMs,
    concurrency: spec.concurrency,
    batchSize: spec.batchSize,
    batchWaitMs: spec.batchWaitMs,
    joinTimeoutMs: spec.timeoutSeconds * 1000,
    rdkafkaConfig: spec.rdkafkaConsumerConfig ?? {},
  };
}

/**
 * Sends from the payload pool with a bounded number of unacknowledged messages ('each': one
 * promise per message) or batch calls ('batch'), for `messages` or `maxSeconds`, whichever
 * ends first; throughput counts acknowledged messages over the time until the last one.
 * @param {BenchClient} client
 * @param {CaseSpec} spec
 * @param {'each' | 'batch'} mode
 */
async function produce(client, spec, mode) {
  if (!client.createProducer) throw new Error(`${client.id} has no producer`);
  const producer = await client.createProducer({
    brokers: spec.brokers,
    clientId: `bench-${spec.client}-producer`,
    compression: spec.compression,
  });
  liveClients.push(producer);
  const pool = payloadPool(spec.size);
  // Connection and metadata are set up by a first, unmeasured message.
  await producer.sendOne(spec.topic, pool[0]);

  const unit = mode === 'each' ? 1 : spec.batchSize;
  const window = mode === 'each' ? spec.window : spec.batchWindow;
  let sent = 0;
  let acked = 0;
  let failed = 0;
  let inFlight = 0;
  /** @type {string | undefined} */
  let firstError;
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const jsCpuAtStart = jsThreadCpuSeconds();
  const deadline = started + spec.maxSeconds * 1000;
  await new Promise((resolve) => {
    const issue = () => {
      while (inFlight < window && sent < spec.messages && performance.now() < deadline) {
        const count = Math.min(unit, spec.messages - sent);
        const first = sent;
        sent += count;
        inFlight++;
        const sending =
          mode === 'each'
            ? producer.sendOne(spec.topic, pool[first % PAYLOAD_POOL])
            : producer.sendBatch(
                spec.topic,
                Array.from({ length: count }, (_, i) => pool[(first + i) % PAYLOAD_POOL]),
              );
        sending.then(
          () => settle(count, 0),
          (/** @type {unknown} */ error) => {
            firstError ??= String(error);
            settle(0, count);
          },
        );
      }
      if (inFlight === 0) resolve(undefined);
    };
    /** @param {number} ok @param {number} bad */
    const settle = (ok, bad) => {
      inFlight--;
      acked += ok;
      failed += bad;
      issue();
    };
    issue();
  });
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuAtStart);
  const jsThreadCpu = jsThreadCpuSecondsSince(jsCpuAtStart);
  const memory = rss();
  return {
    count: acked,
    failed,
    firstError,
    seconds,
    msgPerSec: acked / seconds,
    cpuSeconds,
    jsThreadCpuSeconds: jsThreadCpu,
    ...memory,
  };
}

/**
 * CPU time (user + system, every thread of the process) since `start`: for produce, the
 * measured interval; for consume, from the first message to the last.
 * @param {NodeJS.CpuUsage} start
 */
function cpuSecondsSince(start) {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/**
 * CPU time the JavaScript thread (the main thread: its thread id is the process id) has used,
 * from /proc at 10 ms resolution; undefined where there is no /proc.
 * @returns {number | undefined}
 */
function jsThreadCpuSeconds() {
  try {
    // After the command name: utime and stime are fields 14 and 15 (proc(5)), in 1/100 s.
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** @param {number | undefined} start */
function jsThreadCpuSecondsSince(start) {
  const now = jsThreadCpuSeconds();
  return start === undefined || now === undefined ? undefined : now - start;
}

/**
 * Consumes `messages` preloaded messages with a per-message or a batch handler that
 * checks each parsed event, timing from the group join to the last message; the event-loop
 * delay is sampled over the same interval.
 * @param {BenchClient} client
 * @param {CaseSpec} spec
 * @param {'each' | 'batch'} mode
 */
async function consume(client, spec, mode) {
  // The monitor runs from the consumer's start, so that a loop blocked from the first
  // message on is still sampled (the first period after enable() is never recorded);
  // the samples taken before the first message are discounted (see delayPercentiles).
  const delay = monitorEventLoopDelay({ resolution: spec.eldResolutionMs });
  let idleSamples = 0;
  const progress = completion(spec.messages);
  let invalid = 0;
  /** @param {any} event */
  const check = (event) => {
    if (typeof event?.movieId !== 'string') invalid++;
  };
  /** @type {NodeJS.CpuUsage | undefined} */
  let cpuAtFirst;
  /** @type {number | undefined} */
  let jsCpuAtFirst;
  const onFirst = () => {
    idleSamples = delay.count;
    cpuAtFirst = process.cpuUsage();
    jsCpuAtFirst = jsThreadCpuSeconds();
  };
  const params = consumerParams(spec, 'consumer');
  liveClients.push(
    mode === 'each'
      ? await client.consumeEach(params, async (event) => {
          progress.first(onFirst);
          check(event);
          progress.add(1);
        })
      : await startBatch(client, params, async (events) => {
          progress.first(onFirst);
          for (const event of events) check(event);
          progress.add(events.length);
        }),
  );
  // Timed from the join: work a client does before handing over its first message counts.
  progress.start();
  delay.enable();
  await progress.wait(spec.timeoutSeconds);
  const cpuSeconds = cpuAtFirst && cpuSecondsSince(cpuAtFirst);
  const jsThreadCpu = jsThreadCpuSecondsSince(jsCpuAtFirst);
  await stopSampling(delay, spec.eldResolutionMs);
  const seconds = progress.seconds();
  const memory = rss();
  return {
    count: progress.count(),
    invalid,
    seconds,
    msgPerSec: progress.count() / seconds,
    firstMessageSeconds: progress.firstSeconds(),
    cpuSeconds,
    jsThreadCpuSeconds: jsThreadCpu,
    eventLoopDelayMs: delayPercentiles(delay, spec.eldResolutionMs, idleSamples),
    ...memory,
  };
}

/**
 * @param {BenchClient} client
 * @param {import('../clients/types.mjs').ConsumerParams} params
 * @param {import('../clients/types.mjs').BatchHandler} onBatch
 */
function startBatch(client, params, onBatch) {
  if (!client.consumeBatch) throw new Error(`${client.id} has no batch consumer API`);
  return client.consumeBatch(params, onBatch);
}

/**
 * End-to-end latency at a fixed offered rate: producer and consumer in this process, each
 * message carrying its *scheduled* send time (so a sender that falls behind shows up as
 * latency instead of hiding it), one promise per message.
 * @param {BenchClient} client
 * @param {CaseSpec} spec
 */
async function latency(client, spec) {
  if (!client.createProducer) throw new Error(`${client.id} has no producer`);
  const total = Math.round(spec.rate * spec.seconds);
  const latencies = new Float64Array(total);
  const progress = completion(total);
  let warmedUp = false;
  const delay = monitorEventLoopDelay({ resolution: spec.eldResolutionMs });
  const consumer = await client.consumeEach(consumerParams(spec, 'consumer'), async (event) => {
    if (event.warmup) {
      warmedUp = true;
      return;
    }
    const index = progress.count();
    if (index < total) latencies[index] = performance.now() - event.sentAt;
    progress.add(1);
  });
  const producer = await client.createProducer({
    brokers: spec.brokers,
    clientId: `bench-${spec.client}-producer`,
    compression: spec.compression,
  });
  liveClients.push(consumer, producer);
  let failed = 0;
  /** @type {string | undefined} */
  let firstError;
  /** @param {unknown} error */
  const onError = (error) => {
    failed++;
    firstError ??= String(error);
  };

  // The consumer has joined once it sees a warm-up message; only then is anything measured.
  const warmupDeadline = performance.now() + spec.timeoutSeconds * 1000;
  while (!warmedUp) {
    if (performance.now() > warmupDeadline) throw new Error('the consumer received nothing during warm-up');
    producer
      .sendOne(spec.topic, { key: movieKey(0), value: movieEvent(0, spec.size, ',"warmup":true') })
      .catch(onError);
    await sleep(100);
  }

  delay.enable();
  const interval = 1000 / spec.rate;
  const start = performance.now();
  for (let i = 0; i < total; ) {
    // Send every message whose time has come, then yield for a millisecond.
    const now = performance.now();
    for (; i < total && start + i * interval <= now; i++) {
      const scheduled = start + i * interval;
      producer
        .sendOne(spec.topic, { key: movieKey(i), value: movieEvent(i, spec.size, `,"sentAt":${scheduled}`) })
        .catch(onError);
    }
    await sleep(1);
  }
  await progress.wait(spec.timeoutSeconds);
  await stopSampling(delay, spec.eldResolutionMs);
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const memory = rss();
  return {
    count: progress.count(),
    failed,
    firstError,
    latencyMs: {
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      p999: quantile(sorted, 0.999),
      max: sorted[sorted.length - 1],
    },
    eventLoopDelayMs: delayPercentiles(delay, spec.eldResolutionMs, 0),
    ...memory,
  };
}

/**
 * `groups` consumers in this one process, each in its own group, each reading all
 * `messages` of the topic: the memory an app with that many consumers needs.
 * @param {BenchClient} client
 * @param {CaseSpec} spec
 */
async function groups(client, spec) {
  const progress = completion(spec.messages * spec.groups);
  const consumers = await Promise.all(
    Array.from({ length: spec.groups }, (_, g) =>
      client.consumeEach(
        { ...consumerParams(spec, `consumer-${g}`), groupId: `${spec.groupId}-${g}` },
        async (event) => {
          if (typeof event?.movieId !== 'string') throw new Error('event without movieId');
          progress.add(1);
        },
      ),
    ),
  );
  liveClients.push(...consumers);
  await progress.wait(spec.timeoutSeconds);
  const memory = rss();
  return { count: progress.count(), groups: spec.groups, seconds: progress.seconds(), ...memory };
}

/**
 * Counts handled messages and resolves once `total` were handled (or rejects after a timeout).
 * @param {number} total
 */
function completion(total) {
  let count = 0;
  /** @type {number | undefined} */
  let startedAt;
  /** @type {boolean} */
  let seenFirst = false;
  /** @type {number | undefined} */
  let firstAt;
  /** @type {number | undefined} */
  let lastAt;
  /** @type {() => void} */
  let done = () => {};
  const finished = new Promise((resolve) => {
    done = () => resolve(undefined);
  });
  return {
    /** Starts the clock (else the first message does). */
    start() {
      startedAt ??= performance.now();
    },
    /** @param {() => void} onFirst called once, at the first message */
    first(onFirst) {
      if (!seenFirst) {
        seenFirst = true;
        firstAt = performance.now();
        onFirst();
      }
    },
    /** @param {number} n */
    add(n) {
      startedAt ??= performance.now();
      count += n;
      if (count >= total && lastAt === undefined) {
        lastAt = performance.now();
        done();
      }
    },
    count: () => count,
    seconds: () => ((lastAt ?? performance.now()) - (startedAt ?? performance.now())) / 1000,
    /** From the start of the clock to the first message, when both happened. */
    firstSeconds: () => (firstAt === undefined || startedAt === undefined ? undefined : (firstAt - startedAt) / 1000),
    /** @param {number} timeoutSeconds */
    async wait(timeoutSeconds) {
      // A ref'd timer: the process stays up while waiting, as an app's server keeps it up,
      // whether or not the client itself keeps the event loop alive.
      const timer = sleep(timeoutSeconds * 1000, 'timeout');
      if ((await Promise.race([finished, timer])) === 'timeout') {
        throw new Error(`timed out after ${timeoutSeconds} s with ${count} of ${total} messages`);
      }
    },
  };
}

/**
 * A loop blocked until the end is only sampled when its timer fires next: let it fire.
 * @param {import('node:perf_hooks').IntervalHistogram} histogram
 * @param {number} resolutionMs
 */
async function stopSampling(histogram, resolutionMs) {
  await sleep(resolutionMs * 5);
  histogram.disable();
}

/**
 * Percentiles of the event-loop delay over the samples after the first `idleSamples`.
 * Those came while waiting for the first message (the loop idle, delays of about one
 * period), so the largest values are the busy period's: its q-quantile is the
 * combined histogram's quantile at the same number of samples from the top.
 * A sample is a whole timer period: the delay is what exceeds the period.
 * @param {import('node:perf_hooks').IntervalHistogram} histogram
 * @param {number} resolutionMs
 * @param {number} idleSamples
 */
function delayPercentiles(histogram, resolutionMs, idleSamples) {
  const total = histogram.count;
  const busy = total - idleSamples;
  if (busy <= 0) return null;
  /** @param {number} q percent, of the busy samples */
  const busyPercentile = (q) => {
    const percentOfTotal = 100 - ((100 - q) * busy) / total;
    return Math.max(0, histogram.percentile(percentOfTotal) / 1e6 - resolutionMs);
  };
  return {
    p50: busyPercentile(50),
    p99: busyPercentile(99),
    max: Math.max(0, histogram.max / 1e6 - resolutionMs),
    samples: busy,
  };
}
