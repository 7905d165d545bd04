/**
 * Where a native-port Lease's CPU goes, by key count: one server per key count (10 and 100,000
 * by default; each with its own fresh state file, KEYPOOL_REUSE_DELAY=0, `--trace-gc-nvp`), driven
 * by the same h2load shape as bench/native-lease-ab.ts in alternating rounds. Per Lease and round:
 * CPU of each thread kind (`main`, and V8's and libuv's helper threads, named by /proc), and per
 * collection kind (s: scavenge, mc: mark-compact) the pause, the bytes promoted and kept young,
 * and the scavenger's phases. `--warm=N` sends N Leases before the rounds: with N above the key
 * count every key has been leased once, which tells a key's first Lease from later ones.
 *
 *   npx tsx bench/lease-key-count.ts [--keys=10,100000] [--rounds=2] [--requests=15000] [--warm=3000] [--state=memory] [--node="<node flags>"]
 */
import * as os from "node:os";
import * as path from "node:path";
import { readFileSync, readdirSync } from "node:fs";
import { coreLayout } from "./lib/children";
import { h2load } from "./lib/h2load";
import { LEASE, leaseOnce, leaseRequestBytes } from "./lib/keypool-rpc";
import { startKeypool, type ServerHandle } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";

function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      const k = tid === String(pid) ? "main" : name.replace(/\d+/g, "#");
      out.set(k, (out.get(k) ?? 0) + ms);
    } catch {}
  }
  return out;
}
let phases: Record<string, number> = {};
function gcs(text: string) {
  phases = {};
  const o: Record<string, { n: number; pause: number; promoted: number; survived: number }> = {};
  for (const line of text.split("\n")) {
    const m = / gc=(\w+) /.exec(line);
    if (!m) continue;
    const f = (name: string) => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    const g = (o[m[1]] ??= { n: 0, pause: 0, promoted: 0, survived: 0 });
    g.n++; g.pause += f("pause"); g.promoted += f("promoted"); g.survived += f("new_space_survived");
    if (m[1] === "s") for (const mm of line.matchAll(/(scavenge[\w.]*|time_to_safepoint|heap\.[\w.]*)=([\d.]+)/g)) (phases as any)[mm[1]] = ((phases as any)[mm[1]] ?? 0) + Number(mm[2]);
  }
  return o;
}
async function main() {
  const arg = (name: string, fb: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fb;
  const keyCounts = arg("keys", "10,100000").split(",").map(Number);
  const rounds = Number(arg("rounds", "2"));
  const requests = Number(arg("requests", "15000"));
  const extra = arg("node", "").split(" ").filter(Boolean);
  const cores = coreLayout();
  const servers: { label: string; h: ServerHandle }[] = [];
  try {
    for (const keys of keyCounts) {
      const f = path.join(os.tmpdir(), `keypool-diag-keys-${keys}.json`);
      writeKeysFile(f, keys);
      const h = await startKeypool({ env: { KEYPOOL_KEYS_FILE: f, KEYPOOL_REUSE_DELAY: "0", ...(arg("state", "") ? { KEYPOOL_STATE: arg("state", "") } : {}) }, cpus: cores.server, nativePort: true, nodeArgs: ["--trace-gc-nvp", ...extra], deadlineMs: 180000 });
      await leaseOnce(h.port);
      servers.push({ label: `${keys} keys`, h });
    }
    const body = leaseRequestBytes();
    for (const s of servers) await h2load(s.h.grpcPort!, LEASE, body, { requests: Number(arg("warm", "3000")), connections: 4, streamsPerConnection: 16 }, cores.load);
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 ? [...servers].reverse() : servers) {
        const t0 = threads(s.h.pid);
        const g0 = gcs(s.h.proc.stdout());
        const res = await h2load(s.h.grpcPort!, LEASE, body, { requests, connections: 4, streamsPerConnection: 16 }, cores.load);
        const t1 = threads(s.h.pid);
        const p0 = phases; const g1 = gcs(s.h.proc.stdout()); const p1 = phases;
        const n = res.succeeded;
        const th = [...t1].map(([k, v]) => [k, ((v - (t0.get(k) ?? 0)) * 1000) / n] as const).filter(([, v]) => v > 0.05);
        const total = th.reduce((a, [, v]) => a + v, 0);
        const gs = Object.entries(g1).map(([k, v]) => {
          const b = g0[k] ?? { n: 0, pause: 0, promoted: 0, survived: 0 };
          return `${k}: n=${v.n - b.n} pause=${(((v.pause - b.pause) * 1000) / n).toFixed(1)}µs prom=${((v.promoted - b.promoted) / n).toFixed(0)}B surv=${((v.survived - b.survived) / n).toFixed(0)}B`;
        });
        console.log(`r${r + 1} ${s.label}: ${res.rps.toFixed(0)}/s total ${total.toFixed(1)}µs | ${th.map(([k, v]) => `${k}=${v.toFixed(1)}`).join(" ")}\n     ${gs.join(" ; ")}\n     ${Object.keys(p1).map((k) => `${k}=${((((p1[k] ?? 0) - (p0[k] ?? 0)) * 1000) / n).toFixed(2)}`).join(" ")}`);
      }
    }
  } finally {
    for (const s of servers) await s.h.stop();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
