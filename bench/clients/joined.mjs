// @ts-check
// Consume throughput is timed from the group join (see bench/lib/cases.mjs): each adapter
// resolves its consume call once its library reports assigned partitions.

/**
 * A promise resolved by calling `join()`, rejected if that does not happen in `timeoutMs`.
 * @param {number} timeoutMs
 */
export function joinSignal(timeoutMs) {
  /** @type {() => void} */
  let join = () => {};
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const joined = new Promise((resolve, reject) => {
    join = () => {
      clearTimeout(timer);
      resolve(undefined);
    };
    timer = setTimeout(() => reject(new Error(`no partitions assigned within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  return { joined, join };
}
