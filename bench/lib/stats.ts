/** Small statistics helpers shared by every benchmark: percentiles of latency samples, medians of runs. */

/** The q-quantile (0..1) of `values` by nearest rank; NaN when there are none. */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 0.5);
}

/** Latency summary in milliseconds from samples in milliseconds. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function summarize(samplesMs: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samplesMs).sort();
  const at = (q: number) =>
    sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  return { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.length ? sorted[sorted.length - 1] : NaN };
}

/** Rounds for display: 3 significant digits, at most 2 decimals. */
export function fmt(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return "-";
  if (Math.abs(value) >= 10 ** digits) return Math.round(value).toString();
  const s = Number(value.toPrecision(digits));
  return (Math.round(s * 100) / 100).toString();
}
