// Packaging (issue #9): the tarballs `npm pack` makes, installed into a brand-new NestJS
// project in a temporary folder with no Rust toolchain on PATH, let that project produce to
// and consume from the real broker (KAFKA_BROKERS), and type-check against both entry points.
//
// The checkout is never modified: the files `npm pack` would take from it are copied to a
// staging folder, where the release steps run as RELEASING.md describes them: `napi artifacts`
// puts the built .node into npm/<platform>/, `napi pre-publish` (without publishing) adds the
// platform packages to optionalDependencies, then both packages are packed. Only the platform
// built here is staged; a release lists one optional dependency per `napi.targets` entry.
//
// The project installs kafka-napi from its tarball the way a user adds it from the registry; an
// npm `overrides` entry stands in for the registry for the platform package, so npm installs it
// as kafka-napi's optional dependency, as it will once published. PATH holds only node, npm and
// sh, plus tripwires named cc, gcc, make, node-gyp… that record any call and fail: cargo and
// rustc are absent, and nothing may be compiled during the install.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { brokers, uniqueName } = require('./helpers');

const ROOT = path.join(__dirname, '..');
const NAPI_CLI = path.join(ROOT, 'node_modules/@napi-rs/cli/dist/cli.js');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
const ROOT_PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const { version: VERSION, napi: NAPI } = ROOT_PACKAGE;
/** The platform this machine builds: the only one a test can install and load. */
const PLATFORM = 'linux-x64-gnu';
const TRIPLE = 'x86_64-unknown-linux-gnu';
const BINARY = `${NAPI.binaryName}.${PLATFORM}.node`;
const PLATFORM_PACKAGE = `${ROOT_PACKAGE.name}-${PLATFORM}`;
/** Lifecycle scripts npm runs when a package is installed. */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare'];
/**
 * Build tools that must not run while the project installs: each is replaced by a tripwire.
 * (For a package with a binding.gyp npm runs its own node-gyp, which calls python3, make and cc.)
 */
const TRIPWIRES = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'ld', 'make', 'cmake', 'node-gyp', 'python3'];
const supported = process.platform === 'linux' && process.arch === 'x64' && !isMusl();

/** The versions the root already installed (so a warm npm cache serves them), as a Nest app pins them. */
function installedVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
}

function isMusl() {
  const report = /** @type {any} */ (process.report?.getReport());
  return !report?.header?.glibcVersionRuntime;
}

/** The environment of every child: no npm_* variables of a parent npm, no loader overrides. */
function childEnv(extra = {}) {
  /** @type {Record<string, string>} */
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(npm_|NAPI_RS_|CARGO|RUSTUP|RUSTC)/i.test(key)) continue;
    if (key === 'INIT_CWD' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Runs a command, returning its stdout; on failure, throws with both outputs.
 * @param {string} file @param {string[]} args
 * @param {{ cwd: string, env?: Record<string, string>, timeout?: number }} options
 */
function run(file, args, { cwd, env = childEnv(), timeout = 120000 }) {
  try {
    return execFileSync(file, args, {
      cwd,
      env,
      timeout,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const failure = /** @type {any} */ (error);
    throw new Error(
      `${[file, ...args].join(' ')} (in ${cwd}) failed: ${failure.message}\n` +
        `--- stdout\n${String(failure.stdout ?? '').slice(-4000)}\n--- stderr\n${String(failure.stderr ?? '').slice(-4000)}`,
    );
  }
}

/** Where `name` is found on the current PATH, symlinks resolved. */
function realWhich(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return fs.realpathSync(candidate);
    } catch {}
  }
  throw new Error(`${name} is not on PATH`);
}

/**
 * `npm pack --json` in `dir`, into `destination`.
 * @returns {{ filename: string, size: number, unpackedSize: number, files: { path: string, size: number }[] }}
 */
function npmPack(dir, destination, dryRun = false) {
  const args = [
    'pack',
    '--json',
    '--loglevel=error',
    ...(dryRun ? ['--dry-run'] : ['--pack-destination', destination]),
  ];
  return JSON.parse(run('npm', args, { cwd: dir }))[0];
}

/** The packages of a lockfile, by name, with the flags npm records (hasInstallScript, optional…). */
function lockedPackages(appDir) {
  const lock = JSON.parse(fs.readFileSync(path.join(appDir, 'package-lock.json'), 'utf8'));
  return /** @type {Record<string, any>} */ (lock.packages);
}

/** The fresh project's sources: a Nest app and compile-time checks of both entry points' types. */
const APP_SOURCES = {
  'src/main.ts': `import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { KafkaProducer } from 'kafka-napi';
import {
  BaseKafkaConsumerService,
  defineKafkaConfig,
  type EachMessagePayload,
  KafkaProducerModule,
  KafkaProducerService,
} from 'kafka-napi/nestjs';

interface Order {
  id: number;
  item: string;
}

const topic = process.env.ORDERS_TOPIC ?? 'orders';
const count = Number(process.env.ORDERS_COUNT ?? 10);

// Brokers come from KAFKA_BROKERS.
const kafkaConfig = defineKafkaConfig({
  topics: { ORDERS: topic },
  consumers: (topics) => ({
    orders: {
      topics: [topics.ORDERS],
      groupId: \`\${topic}-group\`,
      fromBeginning: true,
      // Tansu, the test broker, stalls a group's first join for about half the session timeout.
      sessionTimeoutMs: 6000,
      config: { 'fetch.wait.max.ms': 50 },
      logLevel: 'warn',
    },
  }),
});

@Injectable()
export class OrdersConsumer extends BaseKafkaConsumerService {
  readonly received: Array<Order & { key: string | null | undefined; partition: number }> = [];

  constructor() {
    super(kafkaConfig.consumers.orders, 'OrdersConsumer');
  }

  protected async handleMessage(payload: EachMessagePayload<Order>): Promise<void> {
    const order = this.parseMessage<Order>(payload);
    this.received.push({ ...order, key: payload.key, partition: payload.partition });
  }
}

@Module({
  imports: [KafkaProducerModule.forRoot({ ...kafkaConfig.producer, logLevel: 'warn' })],
  providers: [OrdersConsumer],
})
export class AppModule {}

async function main(): Promise<void> {
  // The core entry point creates the topic: consumers do not create topics on every cluster.
  const admin = new KafkaProducer({ clientId: 'packaging-admin', logLevel: 'warn' });
  await admin.ensureTopics([{ name: topic, partitions: 2 }]);
  await admin.disconnect();

  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const consumer = app.get(OrdersConsumer);
  await consumer.ready();
  const kafka = app.get(KafkaProducerService);
  const sent = await Promise.all(
    Array.from({ length: count }, (_, id) =>
      kafka.sendMessage(topic, { id, item: \`item-\${id}\` }, { key: \`customer-\${id % 3}\` }),
    ),
  );
  const deadline = Date.now() + 30_000;
  while (consumer.received.length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const state = consumer.state;
  await app.close();
  const result = {
    sent: sent.map(({ partition, offset }) => ({ partition, offset })),
    received: consumer.received,
    state,
    nativeModules: Object.keys(require.cache).filter((file) => file.endsWith('.node')),
  };
  console.log(\`PACKAGING_RESULT \${JSON.stringify(result)}\`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
  // Never run: each @ts-expect-error fails the build if the line compiles, which it would if a
  // declaration file failed to resolve and its types became 'any'.
  'src/type-checks.ts': `import { type ConsumedMessage, KafkaProducer, type RecordMetadata, registerConsumer } from 'kafka-napi';
import { type EachMessagePayload, KafkaProducerModule, type KafkaProducerModuleOptions } from 'kafka-napi/nestjs';

export function typeChecks(payload: EachMessagePayload, sent: RecordMetadata, message: ConsumedMessage): number {
  // @ts-expect-error a partition is a number (kafka-napi's type, reached through kafka-napi/nestjs)
  const partition: string = payload.partition;
  // @ts-expect-error an offset is a number
  const offset: string = message.offset;
  // @ts-expect-error brokers are a string or a list of strings
  const producer = new KafkaProducer({ brokers: 9092 });
  // @ts-expect-error the producer module's options are typed
  const options: KafkaProducerModuleOptions = { shutdownTimeoutMs: 'later' };
  // @ts-expect-error registerConsumer needs a topic and a callback
  void registerConsumer();
  void KafkaProducerModule.forRoot(options);
  return sent.offset + partition.length + offset.length + (producer ? 1 : 0);
}
`,
  // As 'nest new' (Nest 11) writes it: node16-style resolution, through package.json "exports".
  'tsconfig.json': JSON.stringify(
    {
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'ES2022',
        outDir: './dist',
        rootDir: './src',
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        skipLibCheck: true,
        types: ['node'],
      },
      include: ['src/**/*.ts'],
    },
    null,
    2,
  ),
  // As older Nest projects have it: CommonJS with node10 resolution, through "typesVersions".
  'tsconfig.node10.json': JSON.stringify(
    {
      extends: './tsconfig.json',
      compilerOptions: { module: 'commonjs', moduleResolution: 'node10', noEmit: true },
    },
    null,
    2,
  ),
};

(supported ? describe : describe.skip)(
  'packaging: npm pack, installed into a fresh NestJS project without Rust',
  () => {
    // Set by beforeAll: the test's folder and, inside it, the staged package, the tarballs, the
    // new project, the PATH's only directory and the tripwires' log.
    let work = '';
    let stage = '';
    let tarballs = '';
    let app = '';
    let bin = '';
    let tripwireLog = '';
    /** @type {Record<string, string>} */
    let appEnv = {};
    /** @type {ReturnType<typeof npmPack>} */
    let mainPack;
    /** @type {ReturnType<typeof npmPack>} */
    let platformPack;
    /** @type {any} */
    let stagedPackage;
    let installOutput = '';
    let installMs = 0;

    beforeAll(() => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-napi-packaging-'));
      stage = path.join(work, 'stage');
      tarballs = path.join(work, 'tarballs');
      app = path.join(work, 'app');
      bin = path.join(work, 'bin');
      tripwireLog = path.join(work, 'tripwires.log');
      for (const required of [BINARY, 'dist/nestjs/index.js', 'dist/nestjs/index.d.ts']) {
        if (!fs.existsSync(path.join(ROOT, required))) {
          throw new Error(`${required} is missing: build first (npm run build)`);
        }
      }

      // 1. Stage exactly the files `npm pack` takes from the checkout, and the platform package.
      const listed = npmPack(ROOT, tarballs, true);
      for (const { path: file } of listed.files) {
        fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true });
        fs.copyFileSync(path.join(ROOT, file), path.join(stage, file));
      }
      fs.cpSync(path.join(ROOT, 'npm', PLATFORM), path.join(stage, 'npm', PLATFORM), { recursive: true });
      fs.mkdirSync(path.join(work, 'artifacts'));
      fs.copyFileSync(path.join(ROOT, BINARY), path.join(work, 'artifacts', BINARY));
      // The release steps, for the one target built here (a napi config file overrides package.json's).
      const napiConfig = path.join(work, 'napi.local.json');
      fs.writeFileSync(napiConfig, JSON.stringify({ binaryName: NAPI.binaryName, targets: [TRIPLE] }));
      const napi = (/** @type {string[]} */ ...args) =>
        run('node', [NAPI_CLI, ...args, '-c', napiConfig], { cwd: stage });
      napi('artifacts', '--output-dir', path.join(work, 'artifacts'));
      napi('pre-publish', '-t', 'npm', '--skip-optional-publish', '--no-gh-release');
      stagedPackage = JSON.parse(fs.readFileSync(path.join(stage, 'package.json'), 'utf8'));
      fs.mkdirSync(tarballs);
      mainPack = npmPack(stage, tarballs);
      platformPack = npmPack(path.join(stage, 'npm', PLATFORM), tarballs);

      // 2. A PATH with node, npm and sh only, plus tripwires for build tools.
      fs.mkdirSync(bin);
      fs.symlinkSync(process.execPath, path.join(bin, 'node'));
      fs.symlinkSync(realWhich('npm'), path.join(bin, 'npm'));
      fs.symlinkSync(realWhich('sh'), path.join(bin, 'sh'));
      for (const tool of TRIPWIRES) {
        const script = `#!/bin/sh\necho "${tool} $*" >> '${tripwireLog}'\necho "${tool} must not run while installing kafka-napi" >&2\nexit 1\n`;
        fs.writeFileSync(path.join(bin, tool), script, { mode: 0o755 });
      }
      appEnv = childEnv({
        PATH: bin,
        CC: path.join(bin, 'cc'),
        CXX: path.join(bin, 'c++'),
        NAPI_RS_ENFORCE_VERSION_CHECK: '1',
      });

      // 3. A brand-new Nest project: its dependencies as `nest new` pins them, then `npm install kafka-napi`.
      fs.mkdirSync(app);
      const appPackage = {
        name: 'fresh-nest-app',
        version: '0.0.1',
        private: true,
        dependencies: Object.fromEntries(
          ['@nestjs/common', '@nestjs/core', 'reflect-metadata', 'rxjs'].map((name) => [name, installedVersion(name)]),
        ),
        devDependencies: { '@types/node': installedVersion('@types/node') },
        // Stands in for the registry: kafka-napi's optional dependency resolves to the packed platform package.
        overrides: { [PLATFORM_PACKAGE]: `file:${path.join(tarballs, platformPack.filename)}` },
      };
      fs.writeFileSync(path.join(app, 'package.json'), `${JSON.stringify(appPackage, null, 2)}\n`);
      for (const [file, source] of Object.entries(APP_SOURCES)) {
        fs.mkdirSync(path.dirname(path.join(app, file)), { recursive: true });
        fs.writeFileSync(path.join(app, file), source);
      }
      const started = Date.now();
      installOutput = run(
        'npm',
        [
          'install',
          path.join(tarballs, mainPack.filename),
          '--ignore-scripts=false',
          '--foreground-scripts',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          '--loglevel=warn',
        ],
        { cwd: app, env: appEnv, timeout: 150000 },
      );
      installMs = Date.now() - started;
    }, 240000);

    afterAll(() => {
      if (!work) return;
      if (process.env.KAFKA_NAPI_KEEP_PACKAGING_DIR) console.log(`packaging test folder kept: ${work}`);
      else fs.rmSync(work, { recursive: true, force: true });
    });

    test('the tarballs hold the loader, types, NestJS layer and the platform binary, and nothing to build', () => {
      const mainFiles = mainPack.files.map((file) => file.path).sort();
      const nestSources = fs
        .readdirSync(path.join(ROOT, 'nestjs'))
        .filter((file) => file.endsWith('.ts'))
        .map((file) => file.replace(/\.ts$/, ''));
      const expected = [
        'CHANGELOG.md',
        'LICENSE',
        'README.md',
        'index.d.ts',
        'index.js',
        'package.json',
        ...nestSources.flatMap((name) => [`dist/nestjs/${name}.d.ts`, `dist/nestjs/${name}.js`]),
      ].sort();
      expect(mainFiles).toEqual(expected);
      expect(platformPack.files.map((file) => file.path).sort()).toEqual(['README.md', BINARY, 'package.json']);

      // What `napi pre-publish` wrote: the platform package as an optional dependency, same version.
      expect(mainPack.filename).toBe(`${ROOT_PACKAGE.name}-${VERSION}.tgz`);
      expect(stagedPackage.optionalDependencies).toEqual({ [PLATFORM_PACKAGE]: VERSION });
      expect(stagedPackage.engines).toEqual({ node: '>=20' });
      expect(stagedPackage.exports['./nestjs']).toEqual({
        types: './dist/nestjs/index.d.ts',
        default: './dist/nestjs/index.js',
      });
      const platformPackage = JSON.parse(fs.readFileSync(path.join(stage, 'npm', PLATFORM, 'package.json'), 'utf8'));
      expect(platformPackage).toMatchObject({
        name: PLATFORM_PACKAGE,
        version: VERSION,
        os: ['linux'],
        cpu: ['x64'],
        libc: ['glibc'],
        main: BINARY,
        engines: { node: '>=20' },
      });
      for (const manifest of [stagedPackage, platformPackage]) {
        expect(Object.keys(manifest.scripts ?? {}).filter((name) => INSTALL_SCRIPTS.includes(name))).toEqual([]);
        expect(manifest.gypfile).toBeUndefined();
      }

      console.log(
        [
          `npm pack: ${mainPack.filename} ${mainPack.size} B packed, ${mainPack.unpackedSize} B unpacked;`,
          `${platformPack.filename} ${platformPack.size} B packed, ${platformPack.unpackedSize} B unpacked`,
          `(${BINARY}: ${fs.statSync(path.join(ROOT, BINARY)).size} B); npm install took ${installMs} ms`,
        ].join(' '),
      );
    });

    test('the install ran without cargo or rustc, compiled nothing and put the binary in the platform package', () => {
      // No cargo or rustc anywhere on the PATH the install ran with.
      for (const dir of appEnv.PATH.split(path.delimiter)) {
        for (const tool of ['cargo', 'rustc', 'rustup']) expect(fs.existsSync(path.join(dir, tool))).toBe(false);
      }
      // No build tool was called (each tripwire would have logged and failed).
      expect(fs.existsSync(tripwireLog) ? fs.readFileSync(tripwireLog, 'utf8') : '').toBe('');
      expect(installOutput).not.toMatch(/node-gyp|gyp info|cargo|rustc/i);

      const locked = lockedPackages(app);
      const main = locked[`node_modules/${ROOT_PACKAGE.name}`];
      const platform = locked[`node_modules/${PLATFORM_PACKAGE}`];
      expect(main).toMatchObject({ version: VERSION, optionalDependencies: { [PLATFORM_PACKAGE]: VERSION } });
      // Installed as kafka-napi's optional dependency, not as one of the project's own.
      expect(platform).toMatchObject({ version: VERSION, optional: true });
      expect(main.hasInstallScript).toBeUndefined();
      expect(platform.hasInstallScript).toBeUndefined();

      const installed = path.join(app, 'node_modules', ROOT_PACKAGE.name);
      const installedPlatform = path.join(app, 'node_modules', PLATFORM_PACKAGE);
      expect(fs.readdirSync(installed).filter((file) => file.endsWith('.node'))).toEqual([]);
      expect(fs.existsSync(path.join(installed, 'binding.gyp'))).toBe(false);
      expect(fs.statSync(path.join(installedPlatform, BINARY)).size).toBe(fs.statSync(path.join(ROOT, BINARY)).size);
    });

    test('TypeScript resolves both entry points (node16 exports and node10 typesVersions)', () => {
      run('node', [TSC, '-p', 'tsconfig.json'], { cwd: app, env: appEnv });
      run('node', [TSC, '-p', 'tsconfig.node10.json'], { cwd: app, env: appEnv });
      expect(fs.existsSync(path.join(app, 'dist', 'main.js'))).toBe(true);
    }, 60000);

    test('the Nest app produces to and consumes from the real broker through the installed packages', () => {
      const topic = uniqueName('packaging-orders');
      const count = 10;
      const output = run('node', ['dist/main.js'], {
        cwd: app,
        // Production refuses the embedded cluster: the app can only have used the real broker.
        env: {
          ...appEnv,
          NODE_ENV: 'production',
          KAFKA_BROKERS: brokers().join(','),
          ORDERS_TOPIC: topic,
          ORDERS_COUNT: String(count),
        },
        timeout: 90000,
      });
      const line = output.split('\n').find((entry) => entry.startsWith('PACKAGING_RESULT '));
      if (!line) throw new Error(`no result from the app:\n${output}`);
      const result = JSON.parse(line.slice('PACKAGING_RESULT '.length));

      // The binding the app loaded is the installed platform package's.
      expect(result.nativeModules).toEqual([fs.realpathSync(path.join(app, 'node_modules', PLATFORM_PACKAGE, BINARY))]);
      expect(result.state).toBe('running');
      expect(result.sent).toHaveLength(count);
      const received = result.received.map((/** @type {any} */ order) => order.id).sort((a, b) => a - b);
      expect(received).toEqual(Array.from({ length: count }, (_, id) => id));
      // Per key, in the order sent.
      for (let key = 0; key < 3; key++) {
        const ids = result.received
          .filter((/** @type {any} */ order) => order.key === `customer-${key}`)
          .map((/** @type {any} */ order) => order.id);
        expect(ids).toEqual(Array.from({ length: count }, (_, id) => id).filter((id) => id % 3 === key));
      }
    }, 120000);
  },
);
