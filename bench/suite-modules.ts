/**
 * Runs the benchmarks that also run on their own (pool selection: bench/pool-selection.bench.ts;
 * durability: bench/durability.bench.ts) inside this suite, through the functions they export,
 * and turns their results into table rows.
 */
import { existsSync } from "node:fs";

export interface SuiteRow {
  name: string;
  value: string;
  target?: string;
  met?: boolean;
}

export interface SuiteModuleResult {
  available: boolean;
  note: string;
  rows: SuiteRow[];
  raw?: unknown;
}

export async function runSuiteModule(file: string, quick: boolean, log: (s: string) => void): Promise<SuiteModuleResult> {
  if (!existsSync(file)) return { available: false, note: `${file} not present yet`, rows: [] };
  const mod = (await import(file)) as Record<string, unknown>;
  const fn = (mod.run ?? mod.runBenchmark ?? mod.main ?? (mod.default as Record<string, unknown> | undefined)?.run) as
    | ((options: { quick: boolean; log: (s: string) => void }) => Promise<unknown>)
    | undefined;
  if (typeof fn !== "function") return { available: false, note: `${file} exports no run()`, rows: [] };
  const raw = await fn({ quick, log });
  return { available: true, note: "", rows: toRows(raw), raw };
}

function toRows(raw: unknown): SuiteRow[] {
  if (Array.isArray(raw)) {
    return raw.map((r: Record<string, unknown>) => ({
      name: String(r.name ?? r.label ?? JSON.stringify(r)),
      value: String(r.value ?? r.result ?? ""),
      target: r.target === undefined ? undefined : String(r.target),
      met: typeof r.met === "boolean" ? r.met : undefined,
    }));
  }
  return [{ name: "result", value: JSON.stringify(raw).slice(0, 300) }];
}
