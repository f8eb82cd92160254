#!/usr/bin/env node
// Wait until a Kafka-protocol broker answers an ApiVersions request.
//
//   node scripts/kafka-ready.mjs host:port[,host:port...] [timeoutMs]
//
// Every listed address must answer (a comma-separated list is accepted so that
// a KAFKA_BROKERS value can be passed as is). timeoutMs defaults to 30000;
// 0 means "try exactly once". Exit 0 when ready, 1 on timeout, 2 on bad usage.
// No dependencies: plain node:net, Kafka wire protocol by hand.
//
// Request (ApiVersions v0, request header v1):
//   int32 size | int16 api_key=18 | int16 api_version=0 | int32 correlation_id
//   | nullable string client_id (int16 length + bytes)
// Response (response header v0 + ApiVersions v0 body):
//   int32 size | int32 correlation_id | int16 error_code
//   | int32 n | n x (int16 api_key, int16 min_version, int16 max_version)

import net from 'node:net';

const API_VERSIONS = 18;
const ATTEMPT_TIMEOUT_MS = 500;
const RETRY_DELAY_MS = 100;
const CLIENT_ID = 'kafka-ready';

function usage(msg) {
  if (msg) process.stderr.write(`kafka-ready: ${msg}\n`);
  process.stderr.write('usage: node scripts/kafka-ready.mjs host:port[,host:port...] [timeoutMs]\n');
  process.exit(2);
}

function parseAddress(s) {
  // "host:port", "[v6addr]:port"
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) usage(`bad address "${s}" (expected host:port)`);
  const port = Number(m[2]);
  if (!(port > 0 && port < 65536)) usage(`bad port in "${s}"`);
  return { host: m[1], port, label: s };
}

function encodeRequest(correlationId) {
  const clientId = Buffer.from(CLIENT_ID, 'utf8');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length);
  let o = 0;
  o = body.writeInt16BE(API_VERSIONS, o);
  o = body.writeInt16BE(0, o); // api_version
  o = body.writeInt32BE(correlationId, o);
  o = body.writeInt16BE(clientId.length, o);
  clientId.copy(body, o);
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length, 0);
  return Buffer.concat([size, body]);
}

// Returns null when ok, or an error string.
function checkResponse(frame, correlationId) {
  if (frame.length < 6) return `short response (${frame.length} bytes)`;
  const cid = frame.readInt32BE(0);
  if (cid !== correlationId) return `correlation id ${cid} != ${correlationId}`;
  const errorCode = frame.readInt16BE(4);
  if (errorCode !== 0) return `ApiVersions error_code ${errorCode}`;
  if (frame.length < 10) return 'response has no api_keys array';
  const n = frame.readInt32BE(6);
  if (n < 1 || frame.length < 10 + 6 * n) return `bad api_keys array (n=${n}, ${frame.length} bytes)`;
  return null;
}

let nextCorrelationId = 1 + Math.floor(Math.random() * 1_000_000);

function probeOnce({ host, port }) {
  const correlationId = nextCorrelationId++;
  return new Promise((resolve) => {
    let done = false;
    let buf = Buffer.alloc(0);
    const socket = net.createConnection({ host, port });
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => finish(`no answer within ${ATTEMPT_TIMEOUT_MS} ms`), ATTEMPT_TIMEOUT_MS);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(encodeRequest(correlationId)));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const size = buf.readInt32BE(0);
      if (size < 0 || size > 1 << 20) return finish(`implausible response size ${size}`);
      if (buf.length < 4 + size) return;
      finish(checkResponse(buf.subarray(4, 4 + size), correlationId));
    });
    socket.on('error', (e) => finish(e.code ?? e.message));
    socket.on('close', () => finish('connection closed before a full response'));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [addrArg, timeoutArg] = process.argv.slice(2);
  if (!addrArg || process.argv.length > 4) usage();
  const addresses = addrArg
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseAddress);
  if (addresses.length === 0) usage('no address');
  const timeoutMs = timeoutArg === undefined ? 30_000 : Number(timeoutArg);
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) usage(`bad timeout "${timeoutArg}"`);

  const start = Date.now();
  const deadline = start + timeoutMs;
  const pending = new Map(addresses.map((a) => [a.label, a]));
  const lastError = new Map();
  for (;;) {
    for (const [label, addr] of pending) {
      const err = await probeOnce(addr);
      if (err === null) pending.delete(label);
      else lastError.set(label, err);
    }
    if (pending.size === 0) {
      process.stderr.write(`kafka-ready: ${addrArg} answered ApiVersions after ${Date.now() - start} ms\n`);
      process.exit(0);
    }
    if (Date.now() + RETRY_DELAY_MS > deadline) break;
    await sleep(RETRY_DELAY_MS);
  }
  for (const label of pending.keys()) {
    process.stderr.write(`kafka-ready: ${label} not ready after ${Date.now() - start} ms: ${lastError.get(label)}\n`);
  }
  process.exit(1);
}

main();
