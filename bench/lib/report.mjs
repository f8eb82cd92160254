// @ts-check
// Turns the runs of results.json into medians, spreads, ratios and the targets' verdicts,
// then writes RESULTS.md and chart.svg (Vega-Lite, rendered to SVG in Node).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { median } from './stats.mjs';

/** Short names for tables and the chart, in display order. */
const SHORT_NAMES = /** @type {Record<string, string>} */ ({
  rust: 'pure Rust',
  napi: 'kafka-napi',
  'napi-raw': 'kafka-napi (raw)',
  'napi-floor': 'N-API floor',
  kafkajs: 'kafkajs',
  confluent: 'confluent',
  platformatic: 'platformatic',
  crab: 'kafka-crab-js',
});

const THROUGHPUT_KINDS = ['produce-each', 'produce-batch', 'consume-each', 'consume-batch'];
const MB = 2 ** 20;

/**
 * @typedef {{ median: number, min: number, max: number }} Spread
 * @typedef {object} SummaryRow
 * @property {string} client
 * @property {string} case
 * @property {string} kind
 * @property {number} runs        successful runs
 * @property {number} failures
 * @property {string[]} errors
 * @property {Spread} [msgPerSec]
 * @property {number | null} [vsRust]
 * @property {number | null} [vsKafkajs]
 * @property {Spread} [peakRssMB]
 * @property {Spread} [rssMB]
 * @property {Spread} [eventLoopDelayP99Ms]
 * @property {Spread} [clientCpuUs]  µs of the client process's CPU per message
 * @property {Spread} [brokerCpuUs]  µs of the broker's CPU per message (the whole run)
 * @property {Spread} [jsThreadCpuUs]  µs of the JavaScript thread's CPU per message
 * @property {Spread} [jsThreadBusy]  the JavaScript thread's CPU time over the measured interval
 * @property {Spread} [firstMessageMs]  consume: from the join to the first message
 * @property {Spread} [steadyMsgPerSec]  consume: messages after the first over the time after it
 * @property {{ p50: Spread, p99: Spread, p999: Spread }} [latencyMs]
 */

/** @param {number[]} values @returns {Spread | undefined} */
function spread(values) {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return undefined;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** @param {any} results */
export function summarize(results) {
  /** @type {SummaryRow[]} */
  const rows = [];
  for (const client of results.clients) {
    if (!client.available) continue;
    for (const caseDef of results.cases) {
      const all = results.runs.filter((/** @type {any} */ r) => r.client === client.id && r.case === caseDef.id);
      if (all.length === 0) continue;
      const ok = all.filter((/** @type {any} */ r) => r.ok).map((/** @type {any} */ r) => r.result);
      /** @type {SummaryRow} */
      const row = {
        client: client.id,
        case: caseDef.id,
        kind: caseDef.kind,
        runs: ok.length,
        failures: all.length - ok.length,
        errors: [...new Set(all.filter((/** @type {any} */ r) => !r.ok).map((/** @type {any} */ r) => r.error))],
      };
      /** @param {(r: any) => number | undefined} pick */
      const over = (pick) => spread(ok.map((r) => pick(r) ?? Number.NaN));
      if (THROUGHPUT_KINDS.includes(caseDef.kind)) {
        row.msgPerSec = over((r) => r.msgPerSec);
        row.clientCpuUs = over((r) => (r.cpuSeconds > 0 && r.count > 0 ? (r.cpuSeconds * 1e6) / r.count : undefined));
        row.brokerCpuUs = over((r) =>
          r.brokerCpuSeconds >= 0 && r.count > 0 ? (r.brokerCpuSeconds * 1e6) / r.count : undefined,
        );
        row.jsThreadCpuUs = over((r) =>
          r.jsThreadCpuSeconds > 0 && r.count > 0 ? (r.jsThreadCpuSeconds * 1e6) / r.count : undefined,
        );
        // Consume CPU is counted from the first message, throughput from the join: the busy
        // share is over the CPU's own interval, approximated by count / rate.
        row.jsThreadBusy = over((r) =>
          r.jsThreadCpuSeconds > 0 && r.msgPerSec > 0 ? r.jsThreadCpuSeconds / (r.count / r.msgPerSec) : undefined,
        );
      }
      if (caseDef.kind.startsWith('consume')) {
        row.firstMessageMs = over((r) => (r.firstMessageSeconds >= 0 ? r.firstMessageSeconds * 1000 : undefined));
        row.steadyMsgPerSec = over((r) => {
          const after = r.seconds - r.firstMessageSeconds;
          return r.firstMessageSeconds >= 0 && after > 0 ? (r.count - 1) / after : undefined;
        });
      }
      row.peakRssMB = over((r) => r.peakRssBytes / MB);
      if (caseDef.kind === 'groups') row.rssMB = over((r) => r.rssBytes / MB);
      if (caseDef.kind.startsWith('consume') || caseDef.kind === 'latency') {
        row.eventLoopDelayP99Ms = over((r) => r.eventLoopDelayMs?.p99);
      }
      if (caseDef.kind === 'latency') {
        const p50 = over((r) => r.latencyMs?.p50);
        const p99 = over((r) => r.latencyMs?.p99);
        const p999 = over((r) => r.latencyMs?.p999);
        if (p50 && p99 && p999) row.latencyMs = { p50, p99, p999 };
      }
      rows.push(row);
    }
  }
  // Ratios of medians, against the same case of the ceiling and of kafkajs.
  /** @param {string} client @param {string} caseId */
  const find = (client, caseId) => rows.find((r) => r.client === client && r.case === caseId);
  for (const row of rows) {
    if (!row.msgPerSec) continue;
    const rust = find('rust', row.case)?.msgPerSec?.median;
    const kafkajs = find('kafkajs', row.case)?.msgPerSec?.median;
    row.vsRust = rust ? row.msgPerSec.median / rust : null;
    row.vsKafkajs = kafkajs ? row.msgPerSec.median / kafkajs : null;
  }
  return { rows, targets: targets(results, rows, find) };
}

/**
 * The targets for this addon, each met / not met / not measured.
 * @param {any} results
 * @param {SummaryRow[]} rows
 * @param {(client: string, caseId: string) => SummaryRow | undefined} find
 */
function targets(results, rows, find) {
  /** @type {{ target: string, measured: string, status: 'met' | 'not met' | 'not measured' }[]} */
  const list = [];
  /** @param {string} target @param {number | null | undefined} value @param {(v: number) => boolean} pass @param {(v: number) => string} show */
  const add = (target, value, pass, show) => {
    if (value === null || value === undefined || !Number.isFinite(value)) {
      list.push({ target, measured: '–', status: 'not measured' });
    } else {
      list.push({ target, measured: show(value), status: pass(value) ? 'met' : 'not met' });
    }
  };
  // Two decimals, or three where two would round onto the threshold and hide
  // which side of it the value is (0.898× showed as a failing 0.90×).
  const ratioAgainst = (/** @type {number} */ threshold) => (/** @type {number} */ v) =>
    `${v.toFixed(Math.abs(v - threshold) < 0.005 ? 3 : 2)}×`;
  const titleOf = (/** @type {string} */ caseId) =>
    results.cases.find((/** @type {any} */ c) => c.id === caseId)?.title ?? caseId;
  for (const caseDef of results.cases.filter((/** @type {any} */ c) => c.kind.startsWith('produce'))) {
    const row = find('napi', caseDef.id);
    add(`${caseDef.title}: ≥ 90 % of pure Rust`, row?.vsRust, (v) => v >= 0.9, ratioAgainst(0.9));
    add(`${caseDef.title}: ≥ 3× kafkajs`, row?.vsKafkajs, (v) => v >= 3, ratioAgainst(3));
  }
  if (results.cases.some((/** @type {any} */ c) => c.id === 'consume-each')) {
    add(
      `${titleOf('consume-each')}: ≥ 75 % of pure Rust`,
      find('napi', 'consume-each')?.vsRust,
      (v) => v >= 0.75,
      ratioAgainst(0.75),
    );
  }
  if (results.cases.some((/** @type {any} */ c) => c.id === 'consume-batch')) {
    add(
      `${titleOf('consume-batch')}: ≥ 90 % of pure Rust`,
      find('napi', 'consume-batch')?.vsRust,
      (v) => v >= 0.9,
      ratioAgainst(0.9),
    );
  }
  for (const caseId of ['consume-each', 'consume-batch']) {
    if (!results.cases.some((/** @type {any} */ c) => c.id === caseId)) continue;
    add(
      `Event-loop delay p99 ≤ 10 ms while consuming (${titleOf(caseId)})`,
      find('napi', caseId)?.eventLoopDelayP99Ms?.median,
      (v) => v <= 10,
      (v) => `${v.toFixed(1)} ms`,
    );
  }
  if (results.cases.some((/** @type {any} */ c) => c.id === 'groups')) {
    const groups = results.meta.options.groups;
    add(
      `${groups} consumer groups in one process ≤ 150 MB RSS (peak)`,
      find('napi', 'groups')?.peakRssMB?.median,
      (v) => v <= 150,
      (v) => `${v.toFixed(0)} MB`,
    );
  }
  void rows;
  return list;
}

/** 12345 → "12.3k" */
function rate(/** @type {number} */ value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}

/** @param {Spread | undefined} s @param {(v: number) => string} show */
function cell(s, show) {
  if (!s) return '–';
  return s.min === s.max ? show(s.median) : `${show(s.median)} (${show(s.min)}–${show(s.max)})`;
}

/** @param {string[]} header @param {string[][]} body */
function table(header, body) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...body.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * @param {any} results
 * @param {{ rows: SummaryRow[], targets: ReturnType<typeof targets> }} summary
 */
export function markdown(results, summary) {
  const { meta } = results;
  const clients = results.clients.filter((/** @type {any} */ c) => c.available);
  /** @param {string} client @param {string} caseId */
  const find = (client, caseId) => summary.rows.find((r) => r.client === client && r.case === caseId);
  const name = (/** @type {any} */ c) => `${SHORT_NAMES[c.id] ?? c.id}`;
  const failedRuns = results.runs.filter((/** @type {any} */ r) => !r.ok).length;
  const o = meta.options;
  const ms = (/** @type {number} */ v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const mb = (/** @type {number} */ v) => v.toFixed(0);
  const throughputCases = results.cases.filter((/** @type {any} */ c) => THROUGHPUT_KINDS.includes(c.kind));
  const out = [];

  out.push('# kafka-napi benchmark results', '');
  out.push(
    `${meta.quick ? '**Quick (smoke) run: figures are indicative only.** ' : ''}` +
      `Run of ${meta.startedAt.replace('T', ' ').slice(0, 19)} UTC, ${Math.round(meta.durationSeconds)} s, ` +
      `${results.runs.length} runs (${failedRuns} failed), ${o.repetitions} repetition(s) per case; ` +
      `median and min–max over the repetitions. Each run is a process of its own.`,
    '',
    `Machine: ${meta.cpus}, ${meta.memoryGiB} GiB, ${meta.platform}, Node ${meta.node}. ` +
      `Broker: ${meta.broker}, one for the whole run, fresh topics of ${o.partitions} partitions. ` +
      `Addon commit: ${meta.commit || '?'}.`,
    '',
    `Sizes: produce ≤ ${o.messages} messages or ${o.maxSeconds} s per run (window ${o.window} messages, or ` +
      `${o.batchWindow} batch calls of ${o.batchSize}), ${o.compression}; consume ${o.consumeMessages} preloaded ` +
      `messages of ${o.consumeSize} B (fetch wait ${o.fetchWaitMs} ms, per-message concurrency ${o.concurrency}, ` +
      `batches ≤ ${o.batchSize} / ${o.batchWaitMs} ms); latency ${o.rate} msg/s for ${o.latencySeconds} s ` +
      `(fetch wait ${o.latencyFetchWaitMs} ms); ${o.groups} groups × ${o.groupMessages} messages.` +
      (Object.keys(o.rdkafkaConsumerConfig ?? {}).length
        ? ` Extra librdkafka consumer properties (rust, napi, confluent, crab): ${settings(o.rdkafkaConsumerConfig)}.`
        : ''),
    '',
  );

  out.push('## Targets (kafka-napi)', '');
  out.push(
    table(
      ['target', 'measured', 'result'],
      summary.targets.map((t) => [
        t.target,
        t.measured,
        t.status === 'met' ? '✅ met' : t.status === 'not met' ? '❌ not met' : '– not measured',
      ]),
    ),
    '',
  );

  if (throughputCases.length) {
    out.push('## Throughput (msg/s)', '');
    out.push('Median (min–max) over the repetitions.', '');
    /** One row per client, one column per throughput case. @param {(row: any) => string} show */
    const byCase = (show) =>
      table(
        ['client', ...throughputCases.map((/** @type {any} */ c) => c.title)],
        clients.map((/** @type {any} */ c) => [
          name(c),
          ...throughputCases.map((/** @type {any} */ k) => show(find(c.id, k.id))),
        ]),
      );
    out.push(
      byCase((row) => {
        if (!row) return 'n/a';
        return row.runs ? cell(row.msgPerSec, rate) : 'failed';
      }),
      '',
    );
    out.push('### Ratios of the medians: × pure Rust / × kafkajs', '');
    const ratio = (/** @type {number | null | undefined} */ v) => (v ? `${v.toFixed(2)}×` : '–');
    out.push(
      byCase((row) => (row?.runs ? `${ratio(row.vsRust)} / ${ratio(row.vsKafkajs)}` : 'n/a')),
      '',
    );
  }

  if (
    throughputCases.some((/** @type {any} */ k) =>
      clients.some((/** @type {any} */ c) => find(c.id, k.id)?.clientCpuUs),
    )
  ) {
    out.push('## CPU per message (µs): client process + broker [JavaScript thread, its busy share]', '');
    out.push(
      "Client: the whole process's CPU time (every thread: JavaScript, librdkafka, the addon's own) over the " +
        'measured interval (consume: first message to last), divided by the messages. Broker: its CPU time over ' +
        'the whole run, set-up included. In brackets, for Node clients: the JavaScript thread alone (10 ms ' +
        'resolution), and its CPU time over the measured time: near 100 %, that one thread is what limits the ' +
        'case. Client, broker and the OS share ' +
        `${meta.cpuCount ?? 'the'} cores, so a case that keeps them busy runs at most at ` +
        `${meta.cpuCount ?? 'cores'} × 10⁶ / (client + broker) msg/s.`,
      '',
    );
    const us = (/** @type {number} */ v) => v.toFixed(1);
    out.push(
      table(
        ['client', ...throughputCases.map((/** @type {any} */ k) => k.title)],
        clients.map((/** @type {any} */ c) => [
          name(c),
          ...throughputCases.map((/** @type {any} */ k) => {
            const row = find(c.id, k.id);
            if (!row?.clientCpuUs) return 'n/a';
            const js =
              row.jsThreadCpuUs && row.jsThreadBusy
                ? ` [${us(row.jsThreadCpuUs.median)}, ${(row.jsThreadBusy.median * 100).toFixed(0)} %]`
                : '';
            return `${us(row.clientCpuUs.median)} + ${row.brokerCpuUs ? us(row.brokerCpuUs.median) : '?'}${js}`;
          }),
        ]),
      ),
      '',
    );
  }

  const consumeCases = results.cases.filter((/** @type {any} */ c) => c.kind.startsWith('consume'));
  if (
    consumeCases.some((/** @type {any} */ k) =>
      clients.some((/** @type {any} */ c) => find(c.id, k.id)?.firstMessageMs),
    )
  ) {
    out.push('## Consume: start-up and steady rate', '');
    out.push(
      'Consume throughput is timed from the join, so it includes a start-up that librdkafka-based clients share ' +
        '(committed-offset lookup, offset reset, first fetch): the time from the join to the first message, then ' +
        'the rate from the first message to the last. Median (min–max).',
      '',
    );
    out.push(
      table(
        [
          'client',
          ...consumeCases.flatMap((/** @type {any} */ k) => [
            `${k.title}: to first (ms)`,
            `${k.title}: steady (msg/s)`,
          ]),
        ],
        clients.map((/** @type {any} */ c) => [
          name(c),
          ...consumeCases.flatMap((/** @type {any} */ k) => {
            const row = find(c.id, k.id);
            return [cell(row?.firstMessageMs, ms), cell(row?.steadyMsgPerSec, rate)];
          }),
        ]),
      ),
      '',
    );
  }

  const latencyCase = results.cases.find((/** @type {any} */ c) => c.kind === 'latency');
  if (latencyCase) {
    out.push(`## ${latencyCase.title} (ms)`, '');
    out.push(
      'From the scheduled send time to the handler, producer and consumer in one process, one promise per message.',
      '',
    );
    out.push(
      table(
        ['client', 'p50', 'p99', 'p999', 'event-loop delay p99'],
        clients
          .filter((/** @type {any} */ c) => find(c.id, latencyCase.id))
          .map((/** @type {any} */ c) => {
            const row = /** @type {SummaryRow} */ (find(c.id, latencyCase.id));
            if (!row.latencyMs) return [name(c), 'failed', '', '', ''];
            return [
              name(c),
              cell(row.latencyMs.p50, ms),
              cell(row.latencyMs.p99, ms),
              cell(row.latencyMs.p999, ms),
              c.id === 'rust' ? '–' : cell(row.eventLoopDelayP99Ms, ms),
            ];
          }),
      ),
      '',
    );
  }

  const groupsCase = results.cases.find((/** @type {any} */ c) => c.kind === 'groups');
  if (consumeCases.length || groupsCase) {
    out.push('## Event loop and memory', '');
    out.push(
      'Event-loop delay: `monitorEventLoopDelay` (period ' +
        `${o.eldResolutionMs} ms, the period subtracted) over the consuming period (from the join, the samples ` +
        'before the first message discounted, to the last message). ' +
        "Peak RSS: the run's process, start to end.",
      '',
    );
    const header = ['client'];
    for (const c of consumeCases) header.push(`event-loop p99 (ms), ${c.title}`);
    for (const c of consumeCases) header.push(`peak RSS (MB), ${c.title}`);
    if (groupsCase) header.push(`peak RSS (MB), ${groupsCase.title}`, 'RSS at the end (MB)');
    out.push(
      table(
        header,
        clients.map((/** @type {any} */ c) => {
          const cells = [name(c)];
          for (const k of consumeCases) {
            const row = find(c.id, k.id);
            cells.push(c.id === 'rust' ? '–' : row?.runs ? cell(row.eventLoopDelayP99Ms, ms) : 'n/a');
          }
          for (const k of consumeCases) {
            const row = find(c.id, k.id);
            cells.push(row?.runs ? cell(row.peakRssMB, mb) : 'n/a');
          }
          if (groupsCase) {
            const row = find(c.id, groupsCase.id);
            cells.push(row?.runs ? cell(row.peakRssMB, mb) : 'n/a', row?.runs ? cell(row.rssMB, mb) : 'n/a');
          }
          return cells;
        }),
      ),
      '',
    );
  }

  out.push('## Clients and their settings', '');
  out.push(
    table(
      ['client', 'library', 'producer', 'consumer'],
      results.clients.map((/** @type {any} */ c) => [
        SHORT_NAMES[c.id] ?? c.id,
        c.available ? c.label : `**did not run**: ${c.reason}`,
        c.available ? settings(c.producerSettings) : '',
        c.available ? settings(c.consumerSettings) : '',
      ]),
    ),
    '',
  );

  const failures = summary.rows.filter((r) => r.failures > 0);
  if (failures.length) {
    out.push('## Failed runs', '');
    for (const row of failures) {
      out.push(
        `- ${SHORT_NAMES[row.client] ?? row.client}, ${row.case}: ${row.failures} failed — ${row.errors.join('; ')}`,
      );
    }
    out.push('');
  }

  out.push('## Notes', '');
  out.push(
    "- Broker: Tansu in memory on the same 2 cores as the clients; absolute figures are this machine's, the ratios are what compares.",
    '- kafkajs and @platformatic/kafka produce non-idempotently (their idempotent producers fail on Tansu); the others are idempotent, acks=all.',
    '- Consumption completes by counting handled messages (Tansu reports wrong high watermarks for compressed batches).',
    '- Produce throughput is timed from the first send (after one unmeasured message) to the last acknowledgement; consume throughput from the group join (partitions assigned) to the last message handled; connecting and the join itself are not timed.',
    '- How each case works and what is fair about it: [bench/README.md](../README.md).',
    '',
    '![throughput, latency and memory](chart.svg)',
    '',
  );
  return out.join('\n');
}

/** @param {Record<string, unknown> | undefined} s */
function settings(s) {
  if (!s) return '';
  return Object.entries(s)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
}

/**
 * Throughput per case (bars: median; rules: min–max), latency percentiles and peak RSS.
 * @param {any} results
 * @param {{ rows: SummaryRow[] }} summary
 */
export function chartSpec(results, summary) {
  const clientOrder = results.clients
    .filter((/** @type {any} */ c) => c.available)
    .map((/** @type {any} */ c) => SHORT_NAMES[c.id] ?? c.id);
  const titleOf = (/** @type {string} */ id) => results.cases.find((/** @type {any} */ c) => c.id === id)?.title ?? id;
  // Facet headers are narrow: "produce 1 KB, per msg", "consume 1 KB, batch", "10 groups".
  const shortTitle = (/** @type {string} */ id) => {
    const c = results.cases.find((/** @type {any} */ k) => k.id === id);
    if (!c) return id;
    const size = c.size >= 1024 && c.size % 1024 === 0 ? `${c.size / 1024} KB` : `${c.size} B`;
    const [verb, mode] = c.kind.split('-');
    if (verb === 'produce' || verb === 'consume') return `${verb} ${size}, ${mode === 'each' ? 'per msg' : 'batch'}`;
    if (c.kind === 'groups') return `${results.meta.options.groups} groups`;
    return c.title;
  };
  const caseOrder = results.cases
    .filter((/** @type {any} */ c) => THROUGHPUT_KINDS.includes(c.kind))
    .map((/** @type {any} */ c) => c.title);
  const throughput = summary.rows
    .filter((r) => r.msgPerSec)
    .map((r) => ({ client: SHORT_NAMES[r.client] ?? r.client, case: shortTitle(r.case), ...r.msgPerSec }));
  const latency = summary.rows
    .filter((r) => r.latencyMs)
    .flatMap((r) =>
      /** @type {const} */ (['p50', 'p99', 'p999']).map((q) => ({
        client: SHORT_NAMES[r.client] ?? r.client,
        quantile: q,
        // @ts-ignore latencyMs is set (filtered above)
        ...r.latencyMs[q],
      })),
    );
  const memory = summary.rows
    .filter((r) => r.peakRssMB && (r.kind === 'consume-each' || r.kind === 'groups'))
    .map((r) => ({ client: SHORT_NAMES[r.client] ?? r.client, case: shortTitle(r.case), ...r.peakRssMB }));
  const memoryOrder = [...new Set(memory.map((m) => m.case))].sort((a, b) =>
    a.startsWith('consume') ? -1 : b.startsWith('consume') ? 1 : 0,
  );
  const color = {
    field: 'client',
    type: 'nominal',
    sort: clientOrder,
    legend: { orient: 'top', title: null, columns: 7 },
  };
  const xClient = { field: 'client', type: 'nominal', sort: clientOrder, axis: null };
  /** @param {string} yTitle @param {object} [yScale] @param {object} [yAxis] */
  const barsWithSpread = (yTitle, yScale = {}, yAxis = {}) => [
    {
      mark: 'bar',
      encoding: {
        x: xClient,
        y: { field: 'median', type: 'quantitative', title: yTitle, scale: yScale, axis: yAxis, stack: null },
        color,
        tooltip: [{ field: 'client' }, { field: 'median', format: ',.0f' }],
      },
    },
    {
      mark: { type: 'rule', color: '#333' },
      encoding: { x: xClient, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } },
    },
  ];
  /** @type {any[]} */
  const panels = [];
  if (throughput.length) {
    panels.push({
      title: 'Throughput, msg/s (bar: median, line: min–max)',
      data: { values: throughput },
      facet: {
        column: {
          field: 'case',
          type: 'nominal',
          sort: caseOrder,
          title: null,
          header: { labelLimit: 0 },
        },
      },
      spec: { width: 130, height: 200, layer: barsWithSpread('msg/s') },
      resolve: { scale: { y: 'independent' } },
    });
  }
  if (latency.length) {
    panels.push({
      title: `${titleOf('latency')}, ms (log scale)`,
      data: { values: latency },
      facet: { column: { field: 'quantile', type: 'nominal', sort: ['p50', 'p99', 'p999'], title: null } },
      spec: {
        width: 120,
        height: 160,
        layer: barsWithSpread('ms', { type: 'log', domainMin: 1 }, { values: [1, 10, 100, 1000, 10000] }),
      },
    });
  }
  if (memory.length) {
    panels.push({
      title: 'Peak RSS, MB',
      data: { values: memory },
      facet: {
        column: { field: 'case', type: 'nominal', sort: memoryOrder, title: null, header: { labelLimit: 0 } },
      },
      spec: { width: 120, height: 160, layer: barsWithSpread('MB') },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `kafka-napi benchmark, ${results.meta.startedAt.slice(0, 10)}`, subtitle: results.meta.cpus },
    background: 'white',
    padding: 12,
    vconcat: panels,
    resolve: { scale: { color: 'shared' } },
    config: { font: 'sans-serif', view: { stroke: null } },
  };
}

/**
 * @param {any} results
 * @param {string} outDir
 */
export async function writeReport(results, outDir) {
  const summary = summarize(results);
  const text = markdown(results, summary);
  await writeFile(path.join(outDir, 'RESULTS.md'), text);
  const { spec } = vegaLite.compile(/** @type {any} */ (chartSpec(results, summary)));
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  await writeFile(path.join(outDir, 'chart.svg'), await view.toSVG());
  view.finalize();
  return { markdown: text, summary };
}
