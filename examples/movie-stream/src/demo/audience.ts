/**
 * The demo driver (`npm run demo`): starts the movie-stream app as a child process, plays a
 * simulated audience against its HTTP API, waits until the consumers have counted every event,
 * and checks the counts against what was sent, movie by movie. Exit status 0 means every count
 * matched and the app shut down cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { Presets, SingleBar } from 'cli-progress';
import type { AnalyticsEventType } from 'kafka-napi';
import type { AnalyticsSummary } from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.service';
import type { MovieStats, MovieTotals } from '../modules/kafka/consumer/movie/movie-stats.store';
import type { NotificationSummary } from '../modules/kafka/consumer/notification/kafka-consumer-notification.service';
import type { ViewCountSummary } from '../modules/kafka/consumer/view-counter/view-count.store';

const USAGE = `Usage: npm run demo -- [options]

  --brokers host:port[,...]  Kafka to use (default: KAFKA_BROKERS, else the embedded in-process cluster)
  --events N                 audience actions to send (default 10000)
  --movies N                 movies in the catalogue (default 100)
  --users N                  users in the audience (default 1000)
  --concurrency N            requests in flight (default 64)
  --seed N                   random seed, to replay a run (default: random)
  -h, --help                 this help`;

/** How long the app may take to become healthy (consumers retry joining every 5 s). */
const HEALTHY_WITHIN_MS = 60_000;
/** Counting fails when the consumers' counts stop moving for this long. */
const COUNTING_STALL_MS = 20_000;
/** How long the app may take to drain, commit and exit after SIGTERM. */
const EXIT_WITHIN_MS = 20_000;

type Action = 'view' | 'viewWithDetails' | 'like' | 'comment' | 'share' | 'analytics';

/** How often each action happens, out of 100. */
const ACTION_WEIGHTS: ReadonlyArray<readonly [Action, number]> = [
  ['view', 30],
  ['viewWithDetails', 25],
  ['like', 20],
  ['comment', 7],
  ['share', 8],
  ['analytics', 10],
];
const ANALYTICS_TYPES: readonly AnalyticsEventType[] = ['PAGE_VIEW', 'USER_ACTION', 'MOVIE_VIEW', 'SEARCH'];

interface Options {
  brokers?: string;
  events: number;
  movies: number;
  users: number;
  concurrency: number;
  seed: number;
}

/** What the audience did, as the consumers should count it. */
interface Expected {
  movies: Map<string, MovieStats>;
  analytics: Record<AnalyticsEventType, number>;
  notifications: number;
  /** Bare views per movie: those go to movie-views, which the exactly-once view counter reads. */
  bareViews: Map<string, number>;
}

interface Counted {
  movies: MovieTotals;
  analytics: AnalyticsSummary;
  notifications: NotificationSummary;
  viewCounts: ViewCountSummary;
}

interface HttpResponse {
  status: number;
  body: unknown;
}

class DemoFailure extends Error {}

async function main(): Promise<number> {
  const options = parseOptions();
  const app = await startApp(options);
  // Ctrl-C reaches the app too (same process group); still wait for it to finish shutting down.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void app.stop().then(() => process.exit(130)));
  }
  let succeeded = false;
  try {
    await waitUntilHealthy(app);
    const expected = await playAudience(app.http, options);
    const counted = await waitForCounts(app.http, expected);
    succeeded = await verify(app.http, options, expected, counted);
  } catch (error) {
    // A DemoFailure explains itself; anything else is a bug in the driver: show where.
    console.error(`\n✘ ${error instanceof DemoFailure ? error.message : error instanceof Error ? error.stack : error}`);
    app.printLogTail();
  } finally {
    const exitedCleanly = await app.stop();
    succeeded &&= exitedCleanly;
  }
  if (succeeded) await rm(app.logPath, { force: true });
  else console.error(`The app's log: ${app.logPath}`);
  return succeeded ? 0 : 1;
}

function parseOptions(): Options {
  const { values } = parseArgsOrExit({
    options: {
      brokers: { type: 'string' },
      events: { type: 'string', default: '10000' },
      movies: { type: 'string', default: '100' },
      users: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '64' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const brokers = values.brokers?.trim();
  if (values.brokers !== undefined && !brokers) usageError('--brokers needs host:port[,...]');
  return {
    brokers: brokers || undefined,
    events: positiveInteger(values.events, '--events'),
    movies: positiveInteger(values.movies, '--movies'),
    users: positiveInteger(values.users, '--users'),
    concurrency: positiveInteger(values.concurrency, '--concurrency'),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : positiveInteger(values.seed, '--seed'),
  };
}

function parseArgsOrExit<const Config extends ParseArgsConfig>(config: Config) {
  try {
    return parseArgs(config);
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
}

function positiveInteger(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) usageError(`${name} must be a positive integer, got ${text}`);
  return value;
}

function usageError(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

// ------------------------------------------------------------------------------------ the app

interface RunningApp {
  http: Http;
  /** The app's output; kept only when the run fails. */
  logPath: string;
  child: ChildProcess;
  printLogTail(): void;
  /** SIGTERM, then waits; true when the app exited with status 0. */
  stop(): Promise<boolean>;
}

async function startApp(options: Options): Promise<RunningApp> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    // Quick first group join and low latency; both may be overridden from the environment.
    KAFKA_SESSION_TIMEOUT_MS: process.env.KAFKA_SESSION_TIMEOUT_MS ?? '6000',
    KAFKA_FETCH_WAIT_MAX_MS: process.env.KAFKA_FETCH_WAIT_MAX_MS ?? '50',
  };
  if (options.brokers) env.KAFKA_BROKERS = options.brokers;
  if (env.KAFKA_BROKERS) {
    // Fresh topics and groups on a real cluster, so earlier runs' data never skews the check.
    env.KAFKA_TOPIC_PREFIX ??= `demo-${Date.now()}-`;
    console.log(`Kafka: ${env.KAFKA_BROKERS}, topics prefixed ${env.KAFKA_TOPIC_PREFIX}`);
  } else {
    console.log('Kafka: the embedded in-process cluster (no --brokers and no KAFKA_BROKERS)');
  }

  const logPath = join(tmpdir(), `movie-stream-demo-${process.pid}-${Date.now()}.log`);
  const log = createWriteStream(logPath);
  const recentLines: string[] = [];
  const child = spawn(process.execPath, [join(__dirname, '..', 'main.js')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      recentLines.push(...chunk.toString().split('\n').filter(Boolean));
      recentLines.splice(0, Math.max(0, recentLines.length - 30));
    });
  }
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  console.log(`App: http://127.0.0.1:${port} (pid ${child.pid}), log: ${logPath}`);

  const http = new Http(port, options.concurrency);
  let stopping: Promise<boolean> | undefined;
  return {
    http,
    logPath,
    child,
    printLogTail: () => {
      console.error(`Last lines of the app's log (${logPath}):`);
      for (const line of recentLines) console.error(`  ${stripAnsi(line)}`);
    },
    stop: () => {
      stopping ??= (async () => {
        http.close();
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS);
        const [code, signal] = await exited;
        clearTimeout(timer);
        log.end();
        if (code === 0) return true;
        console.error(`✘ the app did not exit cleanly (${signal ? `killed by ${signal}` : `exit status ${code}`})`);
        return false;
      })();
      return stopping;
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitUntilHealthy(app: RunningApp): Promise<void> {
  const started = Date.now();
  let last = 'no answer yet';
  while (Date.now() - started < HEALTHY_WITHIN_MS) {
    if (app.child.exitCode !== null || app.child.signalCode !== null) {
      throw new DemoFailure('the app exited while starting');
    }
    try {
      const response = await app.http.send('GET', '/health');
      if (response.status === 200) {
        console.log(`App healthy in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return;
      }
      last = JSON.stringify(response.body);
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(200);
  }
  throw new DemoFailure(`the app was not healthy within ${HEALTHY_WITHIN_MS / 1000} s (last: ${last})`);
}

// ------------------------------------------------------------------------------- the audience

async function playAudience(http: Http, options: Options): Promise<Expected> {
  const random = mulberry32(options.seed);
  const pickMovie = zipf(options.movies, 1.1, random);
  const movieIds = Array.from({ length: options.movies }, (_, index) => movieId(index, options.movies));
  const expected: Expected = {
    movies: new Map(movieIds.map((id) => [id, { movieId: id, views: 0, likes: 0, comments: 0, shares: 0 }])),
    analytics: { PAGE_VIEW: 0, USER_ACTION: 0, MOVIE_VIEW: 0, SEARCH: 0 },
    notifications: 0,
    bareViews: new Map(),
  };
  // Decided up front, so a run is reproducible from its seed whatever the timing.
  const requests = Array.from({ length: options.events }, () => {
    const user = Math.floor(random() * options.users);
    return audienceRequest(pickAction(random), movieIds[pickMovie()], `user-${user}`, random, expected);
  });

  console.log(
    `Audience: ${options.events} events, ${options.movies} movies, ${options.users} users, seed ${options.seed}`,
  );
  const bar = progressBar('Audience ', 'events | {rate} events/s');
  bar.start(requests.length, 0, { rate: 0 });
  const started = Date.now();
  let next = 0;
  let sent = 0;
  const failures: string[] = [];
  const worker = async () => {
    while (next < requests.length) {
      const { path, body } = requests[next++];
      const response = await http
        .send('POST', path, body)
        .catch((error: Error) => ({ status: 0, body: error.message }));
      if (response.status !== 202) failures.push(`POST ${path} → ${response.status} ${JSON.stringify(response.body)}`);
      sent += 1;
      bar.update(sent, { rate: Math.round(sent / Math.max((Date.now() - started) / 1000, 0.001)) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, requests.length) }, worker));
  bar.stop();
  const seconds = (Date.now() - started) / 1000;
  console.log(`Sent ${sent} events in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)} events/s)`);
  if (failures.length > 0) {
    throw new DemoFailure(`${failures.length} requests failed, e.g.:\n  ${failures.slice(0, 5).join('\n  ')}`);
  }
  return expected;
}

function audienceRequest(action: Action, movie: string, user: string, random: () => number, expected: Expected) {
  const stats = expected.movies.get(movie) as MovieStats;
  switch (action) {
    case 'view':
      stats.views += 1;
      expected.bareViews.set(movie, (expected.bareViews.get(movie) ?? 0) + 1);
      return { path: `/movies/${movie}/view`, body: { userId: user } };
    case 'viewWithDetails':
      stats.views += 1;
      return {
        path: `/movies/${movie}/view`,
        body: { userId: user, source: random() < 0.6 ? 'web' : 'mobile', duration: Math.floor(random() * 7200) },
      };
    case 'like':
      stats.likes += 1;
      return { path: `/movies/${movie}/like`, body: { userId: user } };
    case 'comment':
      stats.comments += 1;
      expected.notifications += 1;
      return { path: `/movies/${movie}/comment`, body: { userId: user, text: `What a scene in ${movie}!` } };
    case 'share':
      stats.shares += 1;
      return { path: `/movies/${movie}/share`, body: { userId: user, channel: random() < 0.5 ? 'link' : 'social' } };
    case 'analytics': {
      const eventType = ANALYTICS_TYPES[Math.floor(random() * ANALYTICS_TYPES.length)];
      expected.analytics[eventType] += 1;
      // Some visitors are anonymous: a session without a user.
      const userId = random() < 0.7 ? user : undefined;
      const data = eventType === 'SEARCH' ? { query: movie } : { movieId: movie };
      return { path: '/analytics/events', body: { eventType, sessionId: `session-${user}`, userId, data } };
    }
  }
}

function pickAction(random: () => number): Action {
  let roll = random() * 100;
  for (const [action, weight] of ACTION_WEIGHTS) {
    roll -= weight;
    if (roll < 0) return action;
  }
  return 'view';
}

/** `movie-007` of 100: zero-padded so ids sort like ranks. */
function movieId(index: number, movies: number): string {
  return `movie-${String(index + 1).padStart(String(movies).length, '0')}`;
}

/** Picks an index in [0, n) with probability ∝ 1/(rank^s): a few movies are very popular, most are not. */
function zipf(n: number, s: number, random: () => number): () => number {
  const cumulative: number[] = [];
  let total = 0;
  for (let rank = 1; rank <= n; rank++) {
    total += 1 / rank ** s;
    cumulative.push(total);
  }
  return () => {
    const target = random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (cumulative[middle] < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

/** A small seeded PRNG (mulberry32), so a run can be replayed with --seed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------------------- the counting

async function waitForCounts(http: Http, expected: Expected): Promise<Counted> {
  const expectedMovieEvents = sum([...expected.movies.values()].map(movieEvents));
  const expectedAnalytics = sum(Object.values(expected.analytics));
  const expectedViewCounts = sum([...expected.bareViews.values()]);
  const target = expectedMovieEvents + expectedAnalytics + expected.notifications + expectedViewCounts;
  const bar = progressBar('Consumers', 'counted');
  bar.start(target, 0);
  const started = Date.now();
  let lastProgressAt = Date.now();
  let lastTotal = -1;
  let counted: Counted;
  let total = 0;
  for (;;) {
    counted = await fetchCounts(http);
    total =
      counted.movies.events + counted.analytics.events + counted.notifications.notifications + counted.viewCounts.views;
    bar.update(Math.min(total, target));
    const done =
      counted.movies.events >= expectedMovieEvents &&
      counted.analytics.events >= expectedAnalytics &&
      counted.notifications.notifications >= expected.notifications &&
      counted.viewCounts.views >= expectedViewCounts;
    if (done || total > target) break;
    if (total !== lastTotal) {
      lastTotal = total;
      lastProgressAt = Date.now();
    } else if (Date.now() - lastProgressAt > COUNTING_STALL_MS) {
      break; // verify() reports what is missing
    }
    await sleep(100);
  }
  bar.stop();
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (total === target) console.log(`Consumers caught up ${seconds} s after the last event was sent`);
  else
    console.log(
      `Consumers stopped at ${total} of ${target} counts (messages, notifications, view counts) after ${seconds} s`,
    );
  return counted;
}

async function fetchCounts(http: Http): Promise<Counted> {
  const [movies, analytics, notifications, viewCounts] = await Promise.all([
    http.getJson<MovieTotals>('/movies/summary'),
    http.getJson<AnalyticsSummary>('/analytics/summary'),
    http.getJson<NotificationSummary>('/notifications/summary'),
    http.getJson<ViewCountSummary>('/analytics/view-counts'),
  ]);
  return { movies, analytics, notifications, viewCounts };
}

async function verify(http: Http, options: Options, expected: Expected, counted: Counted): Promise<boolean> {
  const movieIds = [...expected.movies.keys()];
  const countedMovies = await mapConcurrently(movieIds, options.concurrency, (id) =>
    http.getJson<MovieStats>(`/movies/${id}/stats`),
  );
  const differences: string[] = [];
  let matching = 0;
  countedMovies.forEach((actual, index) => {
    const wanted = expected.movies.get(movieIds[index]) as MovieStats;
    const fields = (['views', 'likes', 'comments', 'shares'] as const).filter(
      (field) => actual[field] !== wanted[field],
    );
    if (fields.length === 0) matching += 1;
    else {
      differences.push(
        `${wanted.movieId}: ${fields.map((field) => `${field} sent ${wanted[field]}, counted ${actual[field]}`).join('; ')}`,
      );
    }
  });
  for (const eventType of ANALYTICS_TYPES) {
    const sent = expected.analytics[eventType];
    const seen = counted.analytics.byEventType[eventType];
    if (sent !== seen) differences.push(`analytics ${eventType}: sent ${sent}, counted ${seen}`);
  }
  if (counted.notifications.notifications !== expected.notifications) {
    differences.push(
      `notifications: ${expected.notifications} comments sent, ${counted.notifications.notifications} notifications counted`,
    );
  }

  const viewCountsSent = sum([...expected.bareViews.values()]);
  const viewCountsMatching = [...expected.bareViews].filter(
    ([movie, views]) => counted.viewCounts.byMovie[movie] === views,
  ).length;
  const viewCountsExact = counted.viewCounts.views === viewCountsSent && viewCountsMatching === expected.bareViews.size;
  if (!viewCountsExact) {
    differences.push(
      `view counter: ${viewCountsSent} views sent to movie-views, ${counted.viewCounts.views} counted; ` +
        `${viewCountsMatching}/${expected.bareViews.size} movies match`,
    );
  }

  printTopMovies(await http.getJson<MovieStats[]>('/movies/top?limit=10'));

  const produced = options.events;
  const countedEvents = sum(countedMovies.map(movieEvents)) + counted.analytics.events;
  const line = `${produced} events produced, ${countedEvents} counted, ${matching}/${movieIds.length} movies match exactly`;
  const extra = `(${counted.analytics.events} analytics events, ${counted.notifications.notifications} notifications for ${expected.notifications} comments)`;
  const counter = `View counter (exactly-once, movie-views → movie-view-counts): ${counted.viewCounts.views} count records for ${viewCountsSent} bare views, ${viewCountsMatching}/${expected.bareViews.size} movies match`;
  if (differences.length === 0 && countedEvents === produced) {
    console.log(`\n✔ ${line} ${extra}`);
    console.log(`✔ ${counter}`);
    return true;
  }
  console.log(`\n✘ ${line} ${extra}`);
  for (const difference of differences.slice(0, 20)) console.log(`  ${difference}`);
  if (differences.length > 20) console.log(`  ... and ${differences.length - 20} more`);
  return false;
}

function printTopMovies(top: MovieStats[]): void {
  const header = ['#', 'movie', 'views', 'likes', 'comments', 'shares'];
  const rows = top.map((stats, index) => [
    String(index + 1),
    stats.movieId,
    String(stats.views),
    String(stats.likes),
    String(stats.comments),
    String(stats.shares),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const format = (row: string[]) =>
    row.map((cell, column) => (column === 1 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ');
  if (top.length === 0) {
    console.log('\nNo movie counted');
    return;
  }
  console.log(`\nTop ${top.length} movies`);
  console.log(format(header));
  console.log(widths.map((width) => '─'.repeat(width)).join('  '));
  for (const row of rows) console.log(format(row));
}

function movieEvents(stats: MovieStats): number {
  return stats.views + stats.likes + stats.comments + stats.shares;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

// ------------------------------------------------------------------------------------ helpers

/** JSON over HTTP to the app, on kept-alive connections. */
class Http {
  private readonly agent: Agent;

  constructor(
    private readonly port: number,
    connections: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: connections });
  }

  send(method: 'GET' | 'POST', path: string, body?: unknown): Promise<HttpResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const outgoing = request(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: response.statusCode ?? 0, body: parsed });
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(payload);
    });
  }

  async getJson<T>(path: string): Promise<T> {
    const response = await this.send('GET', path);
    if (response.status !== 200)
      throw new DemoFailure(`GET ${path} → ${response.status} ${JSON.stringify(response.body)}`);
    return response.body as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

async function mapConcurrently<T, R>(items: T[], concurrency: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await map(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

function progressBar(title: string, unit: string): SingleBar {
  return new SingleBar(
    { format: `${title} {bar} {percentage}% | {value}/{total} ${unit}`, hideCursor: true },
    Presets.shades_classic,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

main().then(
  (status) => process.exit(status),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
