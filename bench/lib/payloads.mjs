// @ts-check
// The benchmark's messages: movie events as the platform sends them, padded to a size.
// Same recipe as bench/rust/ceiling.rs (`bench_ceiling payload` prints one to compare),
// so every client, the pure-Rust ceiling included, sends the same bytes.

const BASE_TIMESTAMP_MS = 1_764_115_200_000;
const EVENT_TYPES = ['VIEW', 'LIKE', 'COMMENT', 'SHARE'];
export const MOVIE_KEYS = 100;
/** Distinct payloads cycled through by the produce cases (1000 is a multiple of MOVIE_KEYS). */
export const PAYLOAD_POOL = 1000;
/** Below this size the payload keeps only the fields a movie event needs. */
const RICH_METADATA_MIN_SIZE = 256;

/** @param {number} i */
export function movieKey(i) {
  return `movie-${i % MOVIE_KEYS}`;
}

/**
 * `{eventType,userId,movieId,timestamp[,extra],metadata:{source,device,country,pad}}` padded to
 * `size` bytes (exactly, unless the fields alone are longer); small events have a bare `pad`
 * field instead of the metadata. `extra` is a JSON fragment starting with ','.
 * @param {number} i
 * @param {number} size
 * @param {string} [extra]
 */
export function movieEvent(i, size, extra = '') {
  const head =
    `"eventType":"${EVENT_TYPES[i % EVENT_TYPES.length]}","userId":"user-${(i * 7919) % 10_000}",` +
    `"movieId":"movie-${i % MOVIE_KEYS}","timestamp":${BASE_TIMESTAMP_MS + i}`;
  /** @param {number} pad */
  const build = (pad) =>
    size >= RICH_METADATA_MIN_SIZE
      ? `{${head}${extra},"metadata":{"source":"web","device":"smart-tv","country":"VN","pad":"${'x'.repeat(pad)}"}}`
      : `{${head}${extra},"pad":"${'x'.repeat(pad)}"}`;
  return build(Math.max(0, size - build(0).length));
}

/**
 * The pool the produce cases send from: message n is `pool[n % PAYLOAD_POOL]`.
 * @param {number} size
 * @returns {{ key: string, value: string }[]}
 */
export function payloadPool(size) {
  return Array.from({ length: PAYLOAD_POOL }, (_, i) => ({ key: movieKey(i), value: movieEvent(i, size) }));
}
