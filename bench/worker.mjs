// @ts-check
// One measured run in a process of its own (so memory, threads and the event loop are the
// run's alone): `node bench/worker.mjs '<CaseSpec JSON>'`, or `{"client": id, "kind": "probe"}`
// to check that a client loads. The last stdout line is `RESULT <json>`; a client's failure is
// reported there as `{ "error": ... }` with exit status 1.
import { NODE_CLIENTS } from './clients/index.mjs';
import { runCase } from './lib/cases.mjs';

const RESULT_PREFIX = 'RESULT ';

/** @param {Record<string, unknown>} result @param {number} status */
function finish(result, status) {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`, () => process.exit(status));
}

/** @param {unknown} error */
function describe(error) {
  if (error instanceof Error) {
    const code = /** @type {{ code?: unknown }} */ (error).code;
    return code ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}

// A rejection a client leaves unhandled is its failure, not the harness's.
process.on('unhandledRejection', (error) => finish({ error: `unhandled rejection: ${describe(error)}` }, 1));

try {
  const spec = JSON.parse(process.argv[2] ?? '');
  const client = NODE_CLIENTS[spec.client];
  if (!client) throw new Error(`unknown client ${spec.client}`);
  const label = await client.load();
  if (spec.kind === 'probe') {
    finish(
      {
        label,
        producerSettings: client.producerSettings,
        consumerSettings: client.consumerSettings,
        produces: client.createProducer !== null,
        consumesBatches: client.consumeBatch !== null,
      },
      0,
    );
  } else {
    finish(await runCase(client, spec), 0);
  }
} catch (error) {
  finish({ error: describe(error) }, 1);
}
