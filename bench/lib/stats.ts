/** Small statistics for bench results. */

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for none. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Rounds for display; keeps three significant figures below 10 so sub-ms latencies stay readable. */
export function round(value: number, digits = 1): number {
  if (!Number.isFinite(value)) return value;
  const d = Math.abs(value) < 10 ? Math.max(digits, 3) : digits;
  const f = 10 ** d;
  return Math.round(value * f) / f;
}

/** Elapsed milliseconds since a performance.now() mark. */
export function msSince(start: number): number {
  return performance.now() - start;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
