/** How times and numbers read on the page. */

/** "3.2 s", "4 min 10 s", "2 h 5 min": a duration in ms, short. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

/** "12 s ago", "never". */
export function ago(at: number, now: number): string {
  if (!at) return "never";
  return `${duration(Math.max(0, now - at))} ago`;
}

/** 1234567 → "1.2M". */
export function compact(n: number): string {
  if (n < 1000) return String(Math.round(n * 10) / 10);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

export function stateName(state: string): string {
  return state.replace("_", " ");
}
