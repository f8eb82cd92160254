// @ts-check
// Small statistics and memory helpers shared by the workers and the report.

/**
 * The q-quantile (0..1) of already sorted numbers, nearest-rank.
 * @param {number[]} sorted
 * @param {number} q
 */
export function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(sorted.length * q)));
  return sorted[rank - 1];
}

/** @param {number[]} values */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Peak (since the process started) and current resident set size, in bytes. */
export function rss() {
  return { peakRssBytes: process.resourceUsage().maxRSS * 1024, rssBytes: process.memoryUsage.rss() };
}
