/**
 * The keys table: filtered, sorted, and virtualised. Only the rows in view (plus a margin) exist
 * in the DOM, positioned over a spacer as tall as every row together, so that 100,000 keys
 * scroll like ten. Rows are reused as the view scrolls.
 */
import { ago, compact, duration, stateName } from "./format";
import type { KeyRow } from "./rows";

const ROW_HEIGHT = 30;
const MARGIN_ROWS = 8;

interface Column {
  id: string;
  title: string;
  cls: string;
  /** The cell's text; `now` is the server's time in ms. */
  text(row: KeyRow, now: number): string;
  compare(a: KeyRow, b: KeyRow): number;
  /** A class for the cell from the row (state colours). */
  cellClass?(row: KeyRow, now: number): string;
}

const byNumber = (f: (r: KeyRow) => number) => (a: KeyRow, b: KeyRow) => f(a) - f(b);
const byText = (f: (r: KeyRow) => string) => (a: KeyRow, b: KeyRow) => (f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0);

function readyIn(row: KeyRow, now: number): string {
  if (row.state !== "active") return "—";
  return row.readyAt > now ? duration(row.readyAt - now) : "ready";
}

function cooldown(row: KeyRow, now: number): string {
  if (!row.rateLimitedAt) return "—";
  if (row.readyAt > now) return `429, ${duration(row.readyAt - now)} left`;
  return `429 ${ago(row.rateLimitedAt, now)}`;
}

export const COLUMNS: Column[] = [
  { id: "hash", title: "Key", cls: "col-hash hash", text: (r) => r.hash, compare: byText((r) => r.hash) },
  { id: "provider", title: "Provider", cls: "col-provider", text: (r) => r.provider, compare: byText((r) => r.provider) },
  { id: "families", title: "Families", cls: "col-families", text: (r) => r.familiesText, compare: byText((r) => r.familiesText) },
  {
    id: "state",
    title: "State",
    cls: "col-state",
    text: (r) => (r.reason ? `${stateName(r.state)}: ${r.reason}` : stateName(r.state)),
    compare: byText((r) => r.state),
    cellClass: (r) => `state ${r.state}`,
  },
  {
    id: "ready",
    title: "Ready in",
    cls: "col-ready",
    text: readyIn,
    compare: byNumber((r) => (r.state === "active" ? r.readyAt : Number.MAX_SAFE_INTEGER)),
    cellClass: (r, now) => (r.state === "active" && r.readyAt > now ? "waiting" : ""),
  },
  { id: "cooldown", title: "Cooldown", cls: "col-cooldown", text: cooldown, compare: byNumber((r) => r.rateLimitedAt) },
  { id: "inflight", title: "In flight", cls: "col-inflight", text: (r) => String(r.inFlight), compare: byNumber((r) => r.inFlight) },
  { id: "leases", title: "Leases", cls: "col-leases", text: (r) => compact(r.leaseCount), compare: byNumber((r) => r.leaseCount) },
  { id: "lastused", title: "Last used", cls: "col-lastused", text: (r, now) => ago(r.lastUsed, now), compare: byNumber((r) => r.lastUsed) },
  { id: "lastchecked", title: "Last checked", cls: "col-lastchecked", text: (r, now) => ago(r.lastChecked, now), compare: byNumber((r) => r.lastChecked) },
  {
    id: "usage",
    title: "Usage in/out",
    cls: "col-usage",
    text: (r) => r.usage.map((u) => `${u.family} ${compact(u.input)}/${compact(u.output)}`).join(" · ") || "—",
    compare: byNumber((r) => r.tokens),
  },
];

export interface Filter {
  text: string;
  provider: string;
  family: string;
  state: string;
}

export interface Sort {
  column: string;
  descending: boolean;
}

/** The rows that pass the filter, in the sort's order (ties broken by hash: a stable view). */
export function viewOf(rows: Iterable<KeyRow>, filter: Filter, sort: Sort): KeyRow[] {
  const text = filter.text.trim().toLowerCase();
  const out: KeyRow[] = [];
  for (const row of rows) {
    if (filter.provider && row.provider !== filter.provider) continue;
    if (filter.state && row.state !== filter.state) continue;
    if (filter.family && !row.families.includes(filter.family)) continue;
    if (text && !row.search.includes(text)) continue;
    out.push(row);
  }
  const column = COLUMNS.find((c) => c.id === sort.column) ?? COLUMNS[0];
  const sign = sort.descending ? -1 : 1;
  out.sort((a, b) => sign * column.compare(a, b) || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
  return out;
}

export class KeyTable {
  private view: KeyRow[] = [];
  private readonly pool: HTMLElement[] = [];
  private sort: Sort = { column: "hash", descending: false };

  constructor(
    private readonly head: HTMLElement,
    private readonly viewport: HTMLElement,
    private readonly spacer: HTMLElement,
    private readonly now: () => number,
    private readonly onSort: (sort: Sort) => void,
    private readonly onOpen: (hash: string) => void,
  ) {
    for (const column of COLUMNS) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = column.title;
      button.className = column.cls.replace(" hash", "");
      button.dataset.column = column.id;
      button.addEventListener("click", () => {
        const descending = this.sort.column === column.id ? !this.sort.descending : false;
        this.sort = { column: column.id, descending };
        this.markSort();
        this.onSort(this.sort);
      });
      head.append(button);
    }
    this.markSort();
    viewport.addEventListener("scroll", () => this.render(), { passive: true });
    viewport.addEventListener("click", (event) => {
      const row = (event.target as HTMLElement).closest<HTMLElement>(".row");
      if (row?.dataset.hash) this.onOpen(row.dataset.hash);
    });
    viewport.addEventListener("keydown", (event) => {
      const row = (event.target as HTMLElement).closest<HTMLElement>(".row");
      if (event.key === "Enter" && row?.dataset.hash) this.onOpen(row.dataset.hash);
    });
    new ResizeObserver(() => this.render()).observe(viewport);
  }

  get currentSort(): Sort {
    return this.sort;
  }

  setView(view: KeyRow[]): void {
    this.view = view;
    this.spacer.style.height = `${view.length * ROW_HEIGHT}px`;
    this.render();
  }

  /** Draws the rows in view; cheap enough to call every second for the countdowns. */
  render(): void {
    const now = this.now();
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW_HEIGHT) - MARGIN_ROWS);
    const count = Math.min(this.view.length - first, Math.ceil(this.viewport.clientHeight / ROW_HEIGHT) + 2 * MARGIN_ROWS);
    while (this.pool.length < count) this.pool.push(this.newRow());
    for (let i = 0; i < this.pool.length; i++) {
      const el = this.pool[i];
      const row = i < count ? this.view[first + i] : undefined;
      if (!row) {
        el.hidden = true;
        continue;
      }
      el.hidden = false;
      el.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`;
      el.dataset.hash = row.hash;
      const cells = el.children;
      COLUMNS.forEach((column, c) => {
        const cell = cells[c] as HTMLElement;
        const text = column.text(row, now);
        if (cell.textContent !== text) cell.textContent = text;
        const cls = `${column.cls} ${column.cellClass?.(row, now) ?? ""}`;
        if (cell.className !== cls) cell.className = cls;
        if (c === 3 && cell.title !== text) cell.title = text;
      });
    }
  }

  private newRow(): HTMLElement {
    const el = document.createElement("div");
    el.className = "row";
    el.setAttribute("role", "row");
    el.tabIndex = -1;
    for (const column of COLUMNS) {
      const cell = document.createElement("span");
      cell.className = column.cls;
      cell.setAttribute("role", "cell");
      el.append(cell);
    }
    this.spacer.append(el);
    return el;
  }

  private markSort(): void {
    for (const button of this.head.querySelectorAll<HTMLButtonElement>("button")) {
      const sorted = button.dataset.column === this.sort.column;
      if (sorted) button.setAttribute("aria-sort", this.sort.descending ? "descending" : "ascending");
      else button.removeAttribute("aria-sort");
    }
  }
}
