/** The summary cards: keys by provider and state, and keys ready now by provider and family. */
import { stateName } from "./format";
import type { KeyRow } from "./rows";

const STATES = ["active", "disabled", "revoked", "over_quota"];

export interface Totals {
  byState: Map<string, Map<string, number>>;
  ready: Map<string, number>;
  leases: number;
  providers: string[];
  families: string[];
}

export function totalsOf(rows: Iterable<KeyRow>, now: number): Totals {
  const byState = new Map<string, Map<string, number>>();
  const ready = new Map<string, number>();
  let leases = 0;
  for (const row of rows) {
    let states = byState.get(row.provider);
    if (!states) byState.set(row.provider, (states = new Map()));
    states.set(row.state, (states.get(row.state) ?? 0) + 1);
    const isReady = row.state === "active" && row.readyAt <= now ? 1 : 0;
    for (const family of row.families) {
      const name = `${row.provider} ${family}`;
      ready.set(name, (ready.get(name) ?? 0) + isReady);
    }
    leases += row.leaseCount;
  }
  const families = [...new Set([...ready.keys()].map((name) => name.split(" ")[1]))].sort();
  return { byState, ready, leases, providers: [...byState.keys()].sort(), families };
}

function cell(tag: "td" | "th", text: string, cls?: string): HTMLElement {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

export function drawStateTable(table: HTMLTableElement, totals: Totals): void {
  const head = document.createElement("tr");
  head.append(cell("th", "provider"), ...STATES.map((s) => cell("th", stateName(s))), cell("th", "total"));
  const rows = totals.providers.map((provider) => {
    const states = totals.byState.get(provider)!;
    const tr = document.createElement("tr");
    let total = 0;
    tr.append(cell("td", provider));
    for (const state of STATES) {
      const n = states.get(state) ?? 0;
      total += n;
      tr.append(cell("td", String(n)));
    }
    tr.append(cell("td", String(total)));
    tr.dataset.provider = provider;
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

export function drawReadyTable(table: HTMLTableElement, totals: Totals): void {
  const head = document.createElement("tr");
  head.append(cell("th", "family"), cell("th", "ready"));
  const rows = [...totals.ready.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, n]) => {
      const tr = document.createElement("tr");
      // No ready key for a family is what an operator must see first.
      tr.append(cell("td", name), cell("td", String(n), n === 0 ? "zero" : undefined));
      tr.dataset.family = name;
      return tr;
    });
  table.replaceChildren(head, ...rows);
}
