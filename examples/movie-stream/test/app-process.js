// @ts-check
// Runs the compiled app (`npm run build` compiles it to dist/) in its own Node process, as `node`
// runs it in production, and talks to it over HTTP. In a child process, not inside jest: the app
// uses @nestjs/terminus, which since version 12 is an ES module only, and jest 29's module
// system cannot `require` ES modules (Node itself can, from 20.19 and 22.12).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const MAIN = path.join(__dirname, '..', 'dist', 'src', 'main.js');

/** @returns {Promise<number>} a TCP port nothing listens on right now */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * @typedef {object} AppProcess
 * @property {string} baseUrl
 * @property {() => string} output the app's stdout and stderr so far
 * @property {(path: string) => Promise<{ status: number, headers: Headers, text: string, body: any }>} get
 * @property {(path: string, body: unknown) => Promise<{ status: number, body: any }>} post
 * @property {() => Promise<number | null>} stop SIGTERM (SIGKILL after 15 s); resolves with the exit status
 */

/**
 * Starts the app with `env` over the test's environment and waits until it answers HTTP (any
 * status: whether it is healthy is for the test to check).
 * @param {Record<string, string>} env
 * @returns {Promise<AppProcess>}
 */
async function startApp(env) {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${path.relative(process.cwd(), MAIN)} is missing: build the example first (npm run build)`);
  }
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => (output += chunk));
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const baseUrl = `http://127.0.0.1:${port}`;

  /** @param {string} urlPath @param {RequestInit} [init] */
  const request = async (urlPath, init) => {
    const response = await fetch(`${baseUrl}${urlPath}`, init);
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: response.status, headers: response.headers, text, body };
  };

  /** @type {AppProcess} */
  const app = {
    baseUrl,
    output: () => output,
    get: (urlPath) => request(urlPath),
    post: async (urlPath, body) => {
      const { status, body: answer } = await request(urlPath, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status, body: answer };
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };

  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the app exited while starting:\n${output}`);
    }
    try {
      await app.get('/health');
      return app;
    } catch {
      if (Date.now() > deadline) {
        await app.stop();
        throw new Error(`the app did not answer HTTP within 60 s:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Polls `check` until it returns true.
 * @param {() => Promise<boolean>} check
 * @param {string} what
 */
async function eventually(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

module.exports = { startApp, eventually };
