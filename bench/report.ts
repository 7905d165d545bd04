/**
 * The one summary table of `npm run bench`, as Markdown so that it pastes into BENCHMARKS.md:
 * each row a measurement, its figure, its target and whether the target was met.
 */
import type { CellResult, Shapes } from "./end-to-end";
import { fmt } from "./lib/stats";
import type { StartupResult } from "./startup-memory";
import type { SuiteModuleResult } from "./suite-modules";
import type { FanoutResult } from "./watch-fanout";

/** Where a run of the suite was measured. */
export interface MachineInfo {
  date: string;
  nproc: number;
  cpu: string;
  node: string;
  h2load: string;
  loadAverage: number[];
  memoryGiB: number;
}

/** Everything one run of `npm run bench` measured. */
export interface SuiteResults {
  machine: MachineInfo & { loadAverageAtEnd?: number[] };
  quick: boolean;
  cores: string;
  shapes?: Shapes;
  e2e?: CellResult[];
  /** Without each pass's raw latencies, which the JSON file need not hold. */
  fanout?: Omit<FanoutResult, "latencies">[];
  startup?: StartupResult;
  pool?: SuiteModuleResult;
  durability?: SuiteModuleResult;
  replicas?: SuiteModuleResult;
  checker?: SuiteModuleResult;
  errors: { section: string; error: string }[];
  elapsedS?: number;
}

type Row = [string, string, string, string];

const verdict = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? "met" : "MISSED");

function cell(cells: CellResult[] | undefined, server: string, method: string, tool: string): CellResult | undefined {
  return cells?.find((c) => c.server === server && c.method === method && c.tool === tool);
}

const rate = (c: CellResult | undefined) =>
  c
    ? `${fmt(c.rps)}/s, p50 ${fmt(c.p50Ms)} ms, p99 ${fmt(c.p99Ms)} ms${c.cpuMicrosPerCall !== undefined ? `, server CPU ${fmt(c.cpuMicrosPerCall)} µs/call` : ""}${c.failed ? `, ${c.failed} FAILED` : ""}`
    : "-";

export function summaryRows(results: SuiteResults): Row[] {
  const rows: Row[] = [];
  const e2e = results.e2e;
  if (e2e) {
    for (const tool of ["h2load", "connect-node"]) {
      for (const server of ["keypool, 10 keys", "keypool, 100,000 keys", "keypool native port, 10 keys", "keypool native port, 100,000 keys"]) {
        const lease = cell(e2e, server, "lease", tool);
        const check = cell(e2e, server, "check", tool);
        if (!lease && !check) continue;
        rows.push([`Lease, ${server} (${tool})`, rate(lease), "", ""]);
        rows.push([`Health/Check, same server (${tool})`, rate(check), "", ""]);
        if (lease && check) {
          const ratio = lease.rps / check.rps;
          rows.push([`Lease / Check, ${server} (${tool})`, fmt(ratio, 2), ">= 0.8", verdict(ratio >= 0.8)]);
        }
      }
      const noop = cell(e2e, "grpc-js no-op", "lease", tool);
      const kp = cell(e2e, "keypool, 10 keys", "lease", tool);
      if (noop) rows.push([`Lease, grpc-js no-op server (${tool})`, rate(noop), "reference", ""]);
      if (noop && kp) rows.push([`keypool Lease / grpc-js no-op Lease (${tool})`, fmt(kp.rps / noop.rps, 2), "reference", ""]);
      for (const server of ["keypool native port, 10 keys", "keypool native port, 100,000 keys"]) {
        const native = cell(e2e, server, "lease", tool);
        if (noop && native) {
          const ratio = native.rps / noop.rps;
          rows.push([`${server}: Lease / grpc-js no-op Lease (${tool})`, fmt(ratio, 2), ">= 0.8", verdict(ratio >= 0.8)]);
        }
      }
      const bare = cell(e2e, "connect-node no-op", "lease", tool);
      if (bare) rows.push([`Lease, connect-node no-op server (${tool})`, rate(bare), "reference", ""]);
      if (bare && kp) rows.push([`keypool Lease / connect-node no-op Lease (${tool})`, fmt(kp.rps / bare.rps, 2), "reference", ""]);
    }
  }
  for (const f of results.fanout ?? []) {
    const load = f.leaseRateTarget > 0 ? `${fmt(f.lease.rps)} Lease/s (asked ${fmt(f.leaseRateTarget)})` : "no Lease load";
    rows.push([
      `WatchKeys fan-out, ${f.port ?? "main"} port, ${f.subscribers} subscribers, ${load}, coalesce ${f.coalesceMs} ms`,
      `change to arrival p50 ${fmt(f.p50Ms)} ms, p99 ${fmt(f.p99Ms)} ms (${f.probes} changes, ${f.samples} arrivals, ${f.missed} missed)`,
      "p99 < 250 ms",
      verdict(f.p99Ms < 250 && f.missed === 0),
    ]);
    rows.push([`  same, until the last subscriber has it`, `p50 ${fmt(f.lastSubscriberP50Ms)} ms, p99 ${fmt(f.lastSubscriberP99Ms)} ms`, "", ""]);
    if (f.onset) {
      rows.push([`  the first ${fmt(f.leadMs / 1000)} s of Lease load (its onset, not counted above)`, `p50 ${fmt(f.onset.p50Ms)} ms, p99 ${fmt(f.onset.p99Ms)} ms (${f.onset.probes} changes)`, "", ""]);
    }
    rows.push([
      `  same, messages delivered and server CPU`,
      `${fmt(f.messagesPerSec)} messages/s, server ${fmt(f.serverCpuShare * 100)}% of a core${f.leaseRateTarget > 0 ? "" : `, ${fmt(f.serverCpuMicrosPerMessage)} µs per message`}${f.superseded ? `, ${f.superseded} superseded` : ""}`,
      "",
      "",
    ]);
  }
  const s = results.startup;
  if (s) {
    const n = s.keys.toLocaleString("en");
    for (const v of s.variants) {
      rows.push([`Start to SERVING, ${n} keys from a keys file, ${v.name}`, `${fmt(v.startMs)} ms (1 key: ${fmt(s.baselineStartMs)} ms)`, "< 2000 ms", verdict(v.startMs < 2000)]);
      rows.push([`RSS with ${n} keys loaded, ${v.name}`, `${fmt(v.rssMiB)} MiB (1 key: ${fmt(s.baselineRssMiB)} MiB)`, "< 200 MB", verdict(v.rssMiB * 1.048576 < 200)]);
      if (v.keysLoaded !== s.keys) rows.push([`keys loaded, ${v.name}`, String(v.keysLoaded), String(s.keys), "MISSED"]);
    }
  }
  for (const [name, m] of [["pool selection", results.pool], ["durability", results.durability], ["key checker", results.checker], ["replicas on Redis", results.replicas]] as const) {
    if (!m) continue;
    if (!m.available) rows.push([name, m.note, "", ""]);
    for (const r of m.rows) rows.push([`${name}: ${r.name}`, r.value, r.target ?? "", r.met === undefined ? "" : verdict(r.met)]);
  }
  for (const e of results.errors) rows.push([`${e.section} FAILED`, e.error.split("\n")[0].slice(0, 200), "", "ERROR"]);
  return rows;
}

export function renderTable(results: SuiteResults): string {
  const rows = summaryRows(results);
  const head: Row = ["measurement", "result (median)", "target", ""];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: Row) => "| " + r.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  const m = results.machine;
  return [
    `keypool benchmarks ${m.date}: ${m.nproc} cores (${m.cpu}), node ${m.node}, ${results.cores}; load average ${m.loadAverage.join(" ")} at start${results.quick ? "; QUICK run" : ""}`,
    "",
    line(head),
    "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|",
    ...rows.map(line),
  ].join("\n");
}
