/**
 * The keypool dashboard: every key's live state from one WatchKeys stream, a summary, a sortable
 * and filterable virtualised table, and (with an admin token) Disable / Enable on a key. This file
 * wires the parts together: the stream into the rows, the rows into the views, the controls.
 */
import type { KeyStatus, WatchKeysResponse } from "../../gen/ts/keypool/v1/keypool_pb";
import { learnRole, showSignIn, signIn, signOut, updateWho } from "./access";
import { BUCKET_MS, RateHistory } from "./chart";
import { fetchWatcherCount } from "./clients";
import { $, banner } from "./dom";
import { compact, stateName } from "./format";
import { KeyPanel } from "./key-panel";
import { KeyRows } from "./rows";
import { drawReadyTable, drawStateTable, totalsOf } from "./summary";
import { KeyTable, viewOf, type Filter } from "./table";
import { WatchLoop, type WatchState } from "./watch-loop";

/** User Timing marks, for devtools and bench/dashboard.bench.ts. */
const FIRST_RENDER = "keypool:first-render";
const SNAPSHOT_RECEIVED = "keypool:snapshot-received";
/** At most four recomputes a second: with 100,000 keys one costs tens of milliseconds. */
const RECOMPUTE_EVERY_MS = 250;

const rows = new KeyRows();
/** The snapshot slices of the current stream received so far. */
let snapshotSlices: KeyStatus[][] = [];
const rates = new RateHistory();
/** Server time minus this browser's time, from each message's `time`: countdowns use the server's clock. */
let clockOffset = 0;
const now = () => Date.now() + clockOffset;

const chart = document.getElementById("chart") as unknown as SVGSVGElement;
const filter: Filter = { text: "", provider: "", family: "", state: "" };
const panel = new KeyPanel(rows, now);
const table = new KeyTable($("keys-head"), $("keys-viewport"), $("keys-spacer"), now, () => recompute(), (hash) => panel.open(hash));

// ─── the stream into the rows ────────────────────────────────────────────────────────────────

function onMessage(message: WatchKeysResponse): void {
  if (message.time) clockOffset = Number(message.time.seconds) * 1000 + message.time.nanos / 1e6 - Date.now();
  const event = message.event;
  switch (event.case) {
    case "snapshot":
      // Slices are collected until the last (`more` false), which replaces the table whole.
      snapshotSlices.push(event.value.keys);
      if (event.value.more) return;
      if (performance.getEntriesByName(SNAPSHOT_RECEIVED).length === 0) performance.mark(SNAPSHOT_RECEIVED);
      rows.replaceAll(snapshotSlices.flat());
      snapshotSlices = [];
      break;
    case "changes":
      for (const status of event.value.updated) {
        const delta = rows.update(status);
        rates.add(delta.leases, delta.tokens);
      }
      for (const hash of event.value.removedKeyHashes) rows.remove(hash);
      break;
    case "updated": {
      const delta = rows.update(event.value);
      rates.add(delta.leases, delta.tokens);
      break;
    }
    case "removedKeyHash":
      rows.remove(event.value);
      break;
    case "heartbeat":
      return;
  }
  scheduleRecompute();
}

// ─── the rows into the views ─────────────────────────────────────────────────────────────────

let shownVersion = -1;
let recomputeTimer: number | undefined;
let lastRecompute = 0;

function scheduleRecompute(): void {
  if (recomputeTimer !== undefined) return;
  const wait = Math.max(0, lastRecompute + RECOMPUTE_EVERY_MS - performance.now());
  recomputeTimer = window.setTimeout(() => {
    recomputeTimer = undefined;
    recompute();
  }, wait);
}

function recompute(): void {
  lastRecompute = performance.now();
  shownVersion = rows.version;
  const totals = totalsOf(rows.byHash.values(), now());
  drawStateTable($<HTMLTableElement>("by-state"), totals);
  drawReadyTable($<HTMLTableElement>("ready"), totals);
  $("lease-total").textContent = compact(totals.leases);
  fillOptions($<HTMLSelectElement>("filter-provider"), totals.providers, "All providers");
  fillOptions($<HTMLSelectElement>("filter-family"), totals.families, "All families");
  fillOptions($<HTMLSelectElement>("filter-state"), ["active", "disabled", "revoked", "over_quota"], "All states", stateName);
  const view = viewOf(rows.byHash.values(), filter, table.currentSort);
  table.setView(view);
  $("row-count").textContent = `${view.length.toLocaleString("en")} of ${rows.size.toLocaleString("en")} keys`;
  panel.refresh();
  document.body.dataset.keys = String(rows.size);
  if (rows.size > 0 && performance.getEntriesByName(FIRST_RENDER).length === 0) performance.mark(FIRST_RENDER);
}

function fillOptions(select: HTMLSelectElement, values: string[], all: string, label = (v: string) => v): void {
  const wanted = ["", ...values];
  if (wanted.join("\n") === [...select.options].map((o) => o.value).join("\n")) return;
  const selected = select.value;
  select.replaceChildren(
    ...wanted.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value ? label(value) : all;
      return option;
    }),
  );
  select.value = wanted.includes(selected) ? selected : "";
}

// ─── the connection ──────────────────────────────────────────────────────────────────────────

let retryTimer: number | undefined;

function onState(state: WatchState): void {
  const connection = $("connection");
  window.clearInterval(retryTimer);
  switch (state.kind) {
    case "connecting":
      snapshotSlices = [];
      connection.textContent = "connecting…";
      connection.className = "connection";
      break;
    case "live":
      connection.textContent = "● live";
      connection.className = "connection live";
      $("sign-in").hidden = true;
      $("main").hidden = false;
      if (state.reconnected) {
        banner("Reconnected: the page shows the server's state again.", "ok");
        window.setTimeout(() => $("banner").classList.contains("ok") && banner(""), 4000);
      } else banner("");
      void learnRole();
      void refreshWatchers();
      break;
    case "retrying": {
      connection.textContent = "reconnecting";
      connection.className = "connection down";
      const tell = () => {
        const left = Math.max(0, state.retryAt - Date.now());
        banner(`Connection to keypool lost (${state.reason}). Reconnecting in ${(left / 1000).toFixed(1)} s (attempt ${state.attempt})…`, "error");
      };
      tell();
      retryTimer = window.setInterval(tell, 200);
      break;
    }
    case "refused":
      connection.textContent = "signed out";
      connection.className = "connection down";
      showSignIn(state.code, state.message);
      break;
  }
}

async function refreshWatchers(): Promise<void> {
  if ($("main").hidden) return;
  const n = await fetchWatcherCount().catch(() => undefined);
  $("watchers").textContent = n === undefined ? "–" : String(n);
}

// ─── controls and clocks ─────────────────────────────────────────────────────────────────────

const loop = new WatchLoop({ onMessage, onState });

$<HTMLFormElement>("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("token");
  signIn(input.value.trim());
  input.value = "";
  loop.start();
});
$("sign-out").addEventListener("click", signOut);

$<HTMLInputElement>("filter-text").addEventListener("input", (e) => {
  filter.text = (e.target as HTMLInputElement).value;
  recompute();
});
for (const [id, field] of [["filter-provider", "provider"], ["filter-family", "family"], ["filter-state", "state"]] as const) {
  $<HTMLSelectElement>(id).addEventListener("change", (e) => {
    filter[field] = (e.target as HTMLSelectElement).value;
    recompute();
  });
}

// Countdowns move every second; the chart gets a new bucket every five, and ready counts are
// recounted then (they change with time as well as with events).
window.setInterval(() => {
  if (rows.version !== shownVersion) return;
  table.render();
  panel.refresh();
}, 1000);
window.setInterval(() => {
  rates.tick();
  rates.draw(chart);
  $("leases-rate").textContent = compact(rates.leasesPerSecond);
  $("tokens-rate").textContent = compact(rates.tokensPerMinute);
  if (rows.version === shownVersion) recompute();
  void refreshWatchers();
}, BUCKET_MS);

updateWho();
rates.draw(chart);
loop.start();
