// @ts-check
// The Node.js clients the benchmark knows, by id. The pure-Rust ceiling ('rust') is not
// here: it is a separate program (bench/rust/ceiling.rs), run by bench/run.mjs directly.
import { confluentClient } from './confluent.mjs';
import { crabClient } from './crab.mjs';
import { floorClient } from './floor.mjs';
import { kafkajsClient } from './kafkajs.mjs';
import { napi, napiRaw } from './napi.mjs';
import { platformaticClient } from './platformatic.mjs';

/** @type {Record<string, import('./types.mjs').BenchClient>} */
export const NODE_CLIENTS = {
  napi,
  'napi-raw': napiRaw,
  'napi-floor': floorClient,
  kafkajs: kafkajsClient,
  confluent: confluentClient,
  platformatic: platformaticClient,
  crab: crabClient,
};
