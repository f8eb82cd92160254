// @ts-check
// The benchmark runner (`npm run bench` → scripts/bench.sh → here). Against one broker
// (KAFKA_BROKERS or --brokers, started once for the whole run), it runs every
// (repetition, case, client) in a child process of its own, on fresh topics, then writes
// bench/results/results.json, RESULTS.md and chart.svg. `--help` lists the options.
//
// Exit status: 0 when the run completed (whatever the figures, whichever targets were
// missed, whichever peer failed: those are recorded); 1 on a harness error (no broker,
// topics cannot be created, the ceiling program is missing, bad arguments); 2 on usage errors.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { NODE_CLIENTS } from './clients/index.mjs';
import { connectAdmin } from './lib/admin.mjs';
import { writeReport } from './lib/report.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const HOST_TARGET = 'x86_64-unknown-linux-gnu';

/** Every client, in the order of the tables; 'rust' is the ceiling program. */
const ALL_CLIENTS = ['rust', 'napi', 'napi-raw', 'napi-floor', 'kafkajs', 'confluent', 'platformatic', 'crab'];
const ALL_KINDS = ['produce-each', 'produce-batch', 'consume-each', 'consume-batch', 'latency', 'groups'];
/** The raw-schema variant of this addon only differs when consuming. */
const KINDS_OF = /** @type {Record<string, string[]>} */ ({
  'napi-raw': ['consume-each', 'consume-batch'],
  'napi-floor': ['consume-each', 'consume-batch'],
});

/**
 * name → [parseArgs type, default, --quick default, help]
 * @type {Record<string, [ 'string' | 'boolean', string | boolean | undefined, string | boolean | undefined, string ]>}
 */
const OPTIONS = {
  brokers: ['string', undefined, undefined, 'host:port[,...] of the broker (default: KAFKA_BROKERS)'],
  clients: ['string', ALL_CLIENTS.join(','), undefined, `clients to run, comma-separated (${ALL_CLIENTS.join(', ')})`],
  cases: ['string', ALL_KINDS.join(','), undefined, `cases to run, comma-separated (${ALL_KINDS.join(', ')})`],
  repetitions: ['string', '3', '1', 'runs of each case per client (median and min–max are reported)'],
  sizes: ['string', '1024,100', undefined, 'payload sizes of the produce cases, bytes'],
  messages: ['string', '100000', '5000', 'produce: messages per run at most'],
  'max-seconds': ['string', '3', '2', 'produce: stop issuing after this long (slow clients)'],
  window: ['string', '10000', undefined, 'produce one-per-message: unacknowledged messages at most'],
  'batch-size': ['string', '500', undefined, 'messages per batch (produce batch calls, consume batches)'],
  'batch-window': ['string', '20', undefined, 'produce batch: unacknowledged batch calls at most'],
  compression: ['string', 'lz4', undefined, 'producer codec (lz4 | none)'],
  'consume-messages': ['string', '100000', '10000', 'consume: preloaded messages read by each run'],
  'consume-size': ['string', '1024', undefined, 'consume: payload size, bytes'],
  'batch-wait-ms': ['string', '10', undefined, 'consume batch: how long a batch may wait to fill'],
  concurrency: ['string', '8', undefined, 'consume per-message: handlers in parallel where the client has it'],
  'fetch-wait-ms': ['string', '100', undefined, 'consume: fetch.wait.max.ms (or equivalent)'],
  rate: ['string', '500', undefined, 'latency: messages per second offered'],
  'latency-seconds': ['string', '4', '2', 'latency: how long to offer them'],
  'latency-fetch-wait-ms': ['string', '10', undefined, 'latency: fetch.wait.max.ms (Tansu parks empty fetches)'],
  groups: ['string', '10', undefined, 'groups: consumer groups in one process'],
  'group-messages': ['string', '2000', '1000', 'groups: messages each group reads'],
  partitions: ['string', '4', undefined, 'partitions of every topic'],
  'session-timeout-ms': ['string', '6000', undefined, 'consumers (Tansu stalls the first join for half of it)'],
  'rdkafka-consumer-config': [
    'string',
    '',
    undefined,
    'k=v,... librdkafka consumer properties for the librdkafka-based clients (rust, napi, confluent, crab)',
  ],
  'eld-resolution-ms': ['string', '1', undefined, 'event-loop delay sampling period'],
  'timeout-seconds': ['string', '60', undefined, 'consume/latency: give up on a run after this long'],
  ceiling: [
    'string',
    undefined,
    undefined,
    'the pure-Rust program (default: target/<host>/release/examples/bench_ceiling)',
  ],
  out: ['string', path.join(BENCH_DIR, 'results'), undefined, 'where results.json, RESULTS.md and chart.svg go'],
  quick: ['boolean', false, undefined, 'a smoke run: 1 repetition, small sizes'],
  'report-only': ['boolean', false, undefined, 'only rewrite RESULTS.md and chart.svg from <out>/results.json'],
  help: ['boolean', false, undefined, 'this help'],
};

class UsageError extends Error {}
class HarnessError extends Error {}

function usage() {
  const lines = Object.entries(OPTIONS).map(([name, [type, def, quick, help]]) => {
    const flag = type === 'boolean' ? `--${name}` : `--${name} <v>`;
    const defaults = [def !== undefined && def !== false ? `default ${def}` : '', quick ? `--quick ${quick}` : '']
      .filter(Boolean)
      .join(', ');
    return `  ${flag.padEnd(28)} ${help}${defaults ? ` (${defaults})` : ''}`;
  });
  return `usage: node bench/run.mjs [options]   (npm run bench -- [options])\n\n${lines.join('\n')}\n`;
}

/** @param {string[]} argv */
function parseOptions(argv) {
  /** @type {import('node:util').ParseArgsConfig['options']} */
  const config = {};
  for (const [name, [type]] of Object.entries(OPTIONS)) config[name] = { type };
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: config, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(/** @type {Error} */ (error).message);
  }
  const quick = values.quick === true;
  /** @param {string} name */
  const raw = (name) => {
    const [, def, quickDef] = OPTIONS[name];
    return values[name] ?? (quick && quickDef !== undefined ? quickDef : def);
  };
  /** @param {string} name @param {number} min */
  const number = (name, min) => {
    const value = Number(raw(name));
    if (!Number.isFinite(value) || value < min) throw new UsageError(`--${name} must be a number ≥ ${min}`);
    return value;
  };
  /** @param {string} name @param {string[]} allowed */
  const list = (name, allowed) => {
    const items = String(raw(name))
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = items.filter((item) => !allowed.includes(item));
    if (unknown.length) throw new UsageError(`--${name}: unknown ${unknown.join(', ')} (known: ${allowed.join(', ')})`);
    return allowed.filter((item) => items.includes(item));
  };
  const brokers = String(values.brokers ?? process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  /** @type {Record<string, string>} */
  const rdkafkaConsumerConfig = {};
  for (const pair of String(raw('rdkafka-consumer-config')).split(',').filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`--rdkafka-consumer-config: expected key=value, got ${pair}`);
    rdkafkaConsumerConfig[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  const compression = String(raw('compression'));
  if (!['lz4', 'none'].includes(compression)) throw new UsageError('--compression must be lz4 or none');
  return {
    help: values.help === true,
    reportOnly: values['report-only'] === true,
    quick,
    brokers,
    clients: list('clients', ALL_CLIENTS),
    kinds: list('cases', ALL_KINDS),
    repetitions: number('repetitions', 1),
    sizes: String(raw('sizes'))
      .split(',')
      .map((s) => {
        const size = Number(s);
        if (!Number.isInteger(size) || size < 1) throw new UsageError('--sizes must be positive integers');
        return size;
      }),
    messages: number('messages', 1),
    maxSeconds: number('max-seconds', 0.1),
    window: number('window', 1),
    batchSize: number('batch-size', 1),
    batchWindow: number('batch-window', 1),
    compression,
    consumeMessages: number('consume-messages', 1),
    consumeSize: number('consume-size', 1),
    batchWaitMs: number('batch-wait-ms', 0),
    concurrency: number('concurrency', 1),
    fetchWaitMs: number('fetch-wait-ms', 0),
    rate: number('rate', 1),
    latencySeconds: number('latency-seconds', 0.1),
    latencyFetchWaitMs: number('latency-fetch-wait-ms', 0),
    groups: number('groups', 1),
    groupMessages: number('group-messages', 1),
    partitions: number('partitions', 1),
    sessionTimeoutMs: number('session-timeout-ms', 1000),
    rdkafkaConsumerConfig,
    eldResolutionMs: number('eld-resolution-ms', 1),
    timeoutSeconds: number('timeout-seconds', 1),
    ceiling: String(raw('ceiling') ?? path.join(ROOT, 'target', HOST_TARGET, 'release', 'examples', 'bench_ceiling')),
    out: path.resolve(String(raw('out'))),
  };
}

/** @typedef {ReturnType<typeof parseOptions>} Options */

/**
 * @typedef {object} CaseDef
 * @property {string} id
 * @property {string} kind
 * @property {string} title
 * @property {number} size
 */

/** @param {Options} options @returns {CaseDef[]} */
function planCases(options) {
  const kb = (/** @type {number} */ size) => (size >= 1024 && size % 1024 === 0 ? `${size / 1024} KB` : `${size} B`);
  /** @type {CaseDef[]} */
  const cases = [];
  for (const kind of options.kinds) {
    if (kind === 'produce-each' || kind === 'produce-batch') {
      for (const size of options.sizes) {
        const how = kind === 'produce-each' ? 'one promise per message' : `batches of ${options.batchSize}`;
        cases.push({ id: `${kind}-${size}`, kind, size, title: `Produce ${kb(size)}, ${how}` });
      }
    } else if (kind === 'consume-each') {
      cases.push({
        id: kind,
        kind,
        size: options.consumeSize,
        title: `Consume ${kb(options.consumeSize)}, per-message callback`,
      });
    } else if (kind === 'consume-batch') {
      cases.push({
        id: kind,
        kind,
        size: options.consumeSize,
        title: `Consume ${kb(options.consumeSize)}, batch callback`,
      });
    } else if (kind === 'latency') {
      cases.push({ id: kind, kind, size: 1024, title: `End-to-end latency, 1 KB at ${options.rate} msg/s` });
    } else {
      cases.push({
        id: kind,
        kind,
        size: options.consumeSize,
        title: `${options.groups} consumer groups in one process`,
      });
    }
  }
  return cases;
}

/**
 * Runs a child process, keeping stdout and the tail of stderr; SIGKILL after `timeoutMs`.
 * @param {string} command
 * @param {string[]} args
 * @param {number} timeoutMs
 */
function runChild(command, args, timeoutMs) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout, stderr, wallSeconds: (performance.now() - started) / 1000 });
    });
  });
}

/**
 * CPU time (user + system) the broker has used so far, when `scripts/bench.sh` started it
 * (`BENCH_BROKER_PID`): a run is charged the difference across it, set-up included.
 * @returns {number | undefined}
 */
function brokerCpuSeconds() {
  const pid = process.env.BENCH_BROKER_PID;
  if (!pid) return undefined;
  try {
    // Fields after the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** `getconf CLK_TCK`: 100 on every Linux this runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * The result line of a worker (`RESULT {...}`) or of the ceiling (its only JSON line).
 * @param {{ code: number | null, signal: string | null, timedOut: boolean, stdout: string, stderr: string }} child
 * @param {string} what
 * @returns {{ ok: boolean, result?: any, error?: string }}
 */
function readResult(child, what) {
  const lines = child.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const json = last.startsWith('RESULT ') ? last.slice('RESULT '.length) : last;
  /** @type {any} */
  let parsed;
  try {
    parsed = JSON.parse(json);
  } catch {
    parsed = undefined;
  }
  const stderrTail = child.stderr.trim().split('\n').slice(-3).join(' | ');
  if (child.timedOut) return { ok: false, error: `${what} killed after the run's time limit; stderr: ${stderrTail}` };
  if (parsed?.error) return { ok: false, error: String(parsed.error) };
  if (child.code !== 0 || !parsed) {
    const how = child.signal ? `signal ${child.signal}` : `exit status ${child.code}`;
    return { ok: false, error: `${what} failed (${how}): ${stderrTail || 'no output'}` };
  }
  return { ok: true, result: parsed };
}

/** Ceiling flags from a case spec (the ceiling takes the same parameters as the workers). */
function ceilingArgs(/** @type {Record<string, any>} */ spec) {
  /** @type {Record<string, unknown>} */
  const flags = {
    brokers: spec.brokers.join(','),
    topic: spec.topic,
    group: spec.groupId,
    messages: spec.messages,
    size: spec.size,
    compression: spec.compression,
    window: spec.window,
    'batch-size': spec.batchSize,
    'batch-window': spec.batchWindow,
    'batch-wait-ms': spec.batchWaitMs,
    'max-seconds': spec.maxSeconds,
    'session-timeout-ms': spec.sessionTimeoutMs,
    'fetch-wait-ms': spec.fetchWaitMs,
    rate: spec.rate,
    seconds: spec.seconds,
    groups: spec.groups,
    'timeout-seconds': spec.timeoutSeconds,
    'consumer-config': Object.entries(spec.rdkafkaConsumerConfig ?? {})
      .map(([key, value]) => `${key}=${value}`)
      .join(','),
  };
  return [spec.kind, ...Object.entries(flags).flatMap(([name, value]) => [`--${name}`, String(value)])];
}

/** The versions of the crates the ceiling is built from, from Cargo.lock. */
function ceilingLabel() {
  try {
    const lock = readFileSync(path.join(ROOT, 'Cargo.lock'), 'utf8');
    const version = (/** @type {string} */ name) =>
      lock.match(new RegExp(`name = "${name}"\\nversion = "([^"]+)"`))?.[1] ?? '?';
    const librdkafka = version('rdkafka-sys').split('+')[1] ?? '?';
    return `pure Rust rdkafka ${version('rdkafka')} (librdkafka ${librdkafka}, no N-API)`;
  } catch {
    return 'pure Rust rdkafka (no N-API)';
  }
}

/** @param {string[]} args */
async function git(args) {
  const child = /** @type {any} */ (await runChild('git', args, 10_000));
  return child.code === 0 ? child.stdout.trim() : '';
}

/**
 * Which clients can run here, with their labels and settings, or why not.
 * @param {Options} options
 */
async function probeClients(options) {
  /** @type {Record<string, any>} */
  const clients = {};
  for (const id of options.clients) {
    if (id === 'rust') {
      const child = /** @type {any} */ (await runChild(options.ceiling, ['payload', '--size', '100'], 30_000));
      const outcome = readResult(child, 'the ceiling program');
      clients[id] = outcome.ok
        ? {
            id,
            available: true,
            label: ceilingLabel(),
            producerSettings: { acks: 'all', idempotence: true, compression: options.compression, 'linger.ms': 5 },
            consumerSettings: { handler: 'sequential, awaited; serde_json parse', 'fetch.wait.max.ms': 'fetch wait' },
          }
        : {
            id,
            available: false,
            label: 'pure Rust rdkafka',
            reason: `${options.ceiling} does not run (build it: scripts/bench.sh does): ${outcome.error}`,
          };
      continue;
    }
    const child = /** @type {any} */ (
      await runChild(
        process.execPath,
        [path.join(BENCH_DIR, 'worker.mjs'), JSON.stringify({ client: id, kind: 'probe' })],
        60_000,
      )
    );
    const outcome = readResult(child, id);
    clients[id] = outcome.ok
      ? { id, available: true, ...outcome.result }
      : { id, available: false, label: id, reason: outcome.error };
  }
  return clients;
}

/** @param {Options} options */
async function runBenchmark(options) {
  if (options.brokers.length === 0) throw new UsageError('no broker: set KAFKA_BROKERS or pass --brokers');
  const startedAt = new Date();
  const runId = startedAt.toISOString().replace(/\D/g, '').slice(2, 14);
  const cases = planCases(options);

  let admin;
  try {
    admin = await connectAdmin(options.brokers);
  } catch (error) {
    throw new HarnessError(
      `cannot reach the broker at ${options.brokers.join(',')}: ${/** @type {Error} */ (error).message}`,
    );
  }

  process.stderr.write('bench: checking which clients run here...\n');
  const clients = await probeClients(options);
  for (const client of Object.values(clients)) {
    process.stderr.write(client.available ? `  ✔ ${client.label}\n` : `  ✘ ${client.id}: ${client.reason}\n`);
  }
  if (!clients.rust?.available && options.kinds.some((k) => k.startsWith('consume') || k === 'groups')) {
    throw new HarnessError(
      `the consume cases need the ceiling program to preload topics: ${clients.rust?.reason ?? 'rust not selected'}`,
    );
  }

  // Topics the consume cases read, filled once for the whole run (each run uses a fresh group).
  /** @type {Record<string, string>} */
  const preloaded = {};
  /** @param {string} name @param {number} count @param {number} size */
  const preload = async (name, count, size) => {
    const topic = `bench-${runId}-${name}`;
    await admin.createTopics([topic], options.partitions);
    const spec = {
      kind: 'preload',
      brokers: options.brokers,
      topic,
      groupId: '-',
      messages: count,
      size,
      compression: options.compression,
      batchSize: 1000,
      batchWindow: 8,
      window: 1,
      batchWaitMs: 0,
      maxSeconds: 1e9,
      sessionTimeoutMs: options.sessionTimeoutMs,
      fetchWaitMs: 0,
      rate: 1,
      seconds: 1,
      groups: 1,
      timeoutSeconds: 1,
    };
    const child = /** @type {any} */ (await runChild(options.ceiling, ceilingArgs(spec), 300_000));
    const outcome = readResult(child, 'preload');
    if (!outcome.ok || outcome.result.count !== count) {
      throw new HarnessError(
        `preloading ${topic} failed: ${outcome.error ?? `${outcome.result.count} of ${count} written`}`,
      );
    }
    process.stderr.write(
      `bench: preloaded ${count} messages of ${size} B into ${topic} (${outcome.result.msgPerSec.toFixed(0)} msg/s)\n`,
    );
    return topic;
  };
  if (cases.some((c) => c.kind === 'consume-each' || c.kind === 'consume-batch')) {
    preloaded.consume = await preload('consume', options.consumeMessages, options.consumeSize);
  }
  if (cases.some((c) => c.kind === 'groups')) {
    preloaded.groups = await preload('groups', options.groupMessages, options.consumeSize);
  }

  /** @type {{ client: string, caseDef: CaseDef, repetition: number }[]} */
  const plan = [];
  const runnable = options.clients.filter((id) => clients[id]?.available);
  for (let repetition = 1; repetition <= options.repetitions; repetition++) {
    for (const caseDef of cases) {
      // Rotate the client order per repetition so none always runs first (or last) in a case.
      const order = runnable.map((_, i) => runnable[(i + repetition - 1) % runnable.length]);
      for (const client of order) {
        if (supports(clients[client], client, caseDef.kind)) plan.push({ client, caseDef, repetition });
      }
    }
  }

  const bar = createProgress(plan.length);
  /** @type {any[]} */
  const runs = [];
  for (const [index, { client, caseDef, repetition }] of plan.entries()) {
    bar.update(index, { label: `${caseDef.id} · ${client} · rep ${repetition}/${options.repetitions}` });
    const run = await runOne(options, admin, runId, preloaded, client, caseDef, repetition);
    runs.push(run);
    bar.log(formatRun(run, clients[client].label, caseDef));
  }
  bar.update(plan.length, { label: 'done' });
  bar.stop();
  await admin.close();

  const finishedAt = new Date();
  return {
    meta: {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
      cpuCount: os.availableParallelism(),
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      broker: `Tansu (in memory) at ${options.brokers.join(',')}`,
      commit: `${await git(['rev-parse', '--short', 'HEAD'])}${(await git(['status', '--porcelain', '--', 'src', 'Cargo.toml'])) ? ' + uncommitted changes in src/' : ''}`,
      quick: options.quick,
      options: { ...options, help: undefined, reportOnly: undefined, out: path.relative(ROOT, options.out) },
    },
    clients: options.clients.map((id) => clients[id]),
    cases,
    runs,
  };
}

/** @param {any} client @param {string} id @param {string} kind */
function supports(client, id, kind) {
  if (KINDS_OF[id] && !KINDS_OF[id].includes(kind)) return false;
  if (id === 'rust') return true;
  if (kind === 'consume-batch' && !client.consumesBatches) return false;
  if ((kind.startsWith('produce') || kind === 'latency') && !client.produces) return false;
  return true;
}

/**
 * @param {Options} options
 * @param {Awaited<ReturnType<typeof connectAdmin>>} admin
 * @param {string} runId
 * @param {Record<string, string>} preloaded
 * @param {string} client
 * @param {CaseDef} caseDef
 * @param {number} repetition
 */
async function runOne(options, admin, runId, preloaded, client, caseDef, repetition) {
  const name = `${caseDef.id}-${client}-r${repetition}`;
  const fresh = caseDef.kind.startsWith('produce') || caseDef.kind === 'latency';
  const topic = fresh ? `bench-${runId}-${name}` : preloaded[caseDef.kind === 'groups' ? 'groups' : 'consume'];
  if (fresh) {
    try {
      await admin.createTopics([topic], options.partitions);
    } catch (error) {
      throw new HarnessError(`cannot create topic ${topic}: ${/** @type {Error} */ (error).message}`);
    }
  }
  const isConsume = caseDef.kind.startsWith('consume');
  const spec = {
    client,
    kind: caseDef.kind,
    brokers: options.brokers,
    topic,
    groupId: `bench-${runId}-${name}`,
    messages:
      caseDef.kind === 'groups' ? options.groupMessages : isConsume ? options.consumeMessages : options.messages,
    size: caseDef.size,
    compression: options.compression,
    window: options.window,
    batchSize: options.batchSize,
    batchWindow: options.batchWindow,
    batchWaitMs: options.batchWaitMs,
    maxSeconds: options.maxSeconds,
    partitions: options.partitions,
    sessionTimeoutMs: options.sessionTimeoutMs,
    rdkafkaConsumerConfig: options.rdkafkaConsumerConfig,
    fetchWaitMs: caseDef.kind === 'latency' ? options.latencyFetchWaitMs : options.fetchWaitMs,
    concurrency: options.concurrency,
    rate: options.rate,
    seconds: options.latencySeconds,
    groups: options.groups,
    timeoutSeconds: options.timeoutSeconds,
    eldResolutionMs: options.eldResolutionMs,
  };
  const limitMs = (options.maxSeconds + options.latencySeconds + options.timeoutSeconds + 60) * 1000;
  const brokerCpuBefore = brokerCpuSeconds();
  const child = /** @type {any} */ (
    client === 'rust'
      ? await runChild(options.ceiling, ceilingArgs(spec), limitMs)
      : await runChild(process.execPath, [path.join(BENCH_DIR, 'worker.mjs'), JSON.stringify(spec)], limitMs)
  );
  const outcome = readResult(child, client);
  const brokerCpuAfter = brokerCpuSeconds();
  if (outcome.ok && brokerCpuBefore !== undefined && brokerCpuAfter !== undefined) {
    outcome.result.brokerCpuSeconds = brokerCpuAfter - brokerCpuBefore;
  }
  if (fresh) {
    // Tansu keeps everything in memory: drop what this run wrote (failures here do not matter).
    await admin.deleteTopics([topic]).catch(() => {});
  }
  return { client, case: caseDef.id, kind: caseDef.kind, repetition, wallSeconds: child.wallSeconds, ...outcome };
}

/** @param {any} run @param {string} label @param {CaseDef} caseDef */
function formatRun(run, label, caseDef) {
  const head = `${caseDef.id.padEnd(20)} ${label.slice(0, 44).padEnd(44)} r${run.repetition}`;
  if (!run.ok) return `${head}  ✘ ${run.error}\n`;
  const r = run.result;
  const mb = (/** @type {number} */ bytes) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
  if (run.kind === 'latency') {
    return `${head}  p50 ${r.latencyMs.p50.toFixed(1)} ms  p99 ${r.latencyMs.p99.toFixed(1)} ms  p999 ${r.latencyMs.p999.toFixed(1)} ms\n`;
  }
  if (run.kind === 'groups') return `${head}  peak RSS ${mb(r.peakRssBytes)}, RSS ${mb(r.rssBytes)}\n`;
  const eld = r.eventLoopDelayMs ? `  event-loop p99 ${r.eventLoopDelayMs.p99.toFixed(1)} ms` : '';
  return `${head}  ${Math.round(r.msgPerSec).toLocaleString('en-US').padStart(9)} msg/s  peak RSS ${mb(r.peakRssBytes)}${eld}\n`;
}

/** A progress bar on a terminal, plain lines elsewhere (CI logs). @param {number} total */
function createProgress(total) {
  if (!process.stderr.isTTY) {
    return {
      /** @param {number} _value @param {{ label: string }} _payload */
      update(_value, _payload) {},
      /** @param {string} line */
      log(line) {
        process.stderr.write(line);
      },
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: ' {bar} {value}/{total} runs | {duration_formatted} elapsed, ~{eta_formatted} left | {label}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(total, 0, { label: 'starting' });
  return {
    /** @param {number} value @param {{ label: string }} payload */
    update(value, payload) {
      bar.update(value, payload);
    },
    /** @param {string} line */
    log(line) {
      multi.log(line);
    },
    stop() {
      multi.stop();
    },
  };
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(usage());
    return 0;
  }
  const resultsFile = path.join(options.out, 'results.json');
  /** @type {any} */
  let results;
  if (options.reportOnly) {
    results = JSON.parse(readFileSync(resultsFile, 'utf8'));
  } else {
    results = await runBenchmark(options);
    await mkdir(options.out, { recursive: true });
    await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  }
  const { markdown, summary } = await writeReport(results, options.out);
  results.summary = summary.rows;
  results.targets = summary.targets;
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${markdown}\n`);
  process.stderr.write(
    `bench: results in ${path.relative(process.cwd(), options.out) || '.'}/ (results.json, RESULTS.md, chart.svg)\n`,
  );
  return 0;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`bench: ${error.message}\n\n${usage()}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(
        `bench: harness error: ${error instanceof HarnessError ? error.message : (error?.stack ?? error)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
