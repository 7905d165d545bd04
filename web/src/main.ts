/**
 * The keypool dashboard: every key's live state from one WatchKeys stream, a summary, a sortable
 * and filterable virtualised table, and (with an admin token) Disable / Enable on a key.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { KeyState, type WatchKeysResponse } from "../../gen/ts/keypool/v1/keypool_pb";
import { BUCKET_MS, RateHistory } from "./chart";
import { adminClient, fetchWatcherCount } from "./clients";
import { ago, compact, duration, stateName } from "./format";
import { KeyRows, type KeyRow } from "./rows";
import { session } from "./session";
import { drawReadyTable, drawStateTable, totalsOf } from "./summary";
import { KeyTable, viewOf, type Filter } from "./table";
import { WatchLoop, type WatchState } from "./watch-loop";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const rows = new KeyRows();
const rates = new RateHistory();
/** Server time minus this browser's time, from each message's `time`: countdowns use the server's clock. */
let clockOffset = 0;
const now = () => Date.now() + clockOffset;
/** Whether the current token may call the admin RPCs (learned once per sign-in). */
let canAdmin = false;
let tokensRequired = false;
let openHash: string | undefined;

const chart = document.getElementById("chart") as unknown as SVGSVGElement;
const filter: Filter = { text: "", provider: "", family: "", state: "" };
const table = new KeyTable($("keys-head"), $("keys-viewport"), $("keys-spacer"), now, () => recompute(), openKey);

// ─── what the stream says ────────────────────────────────────────────────────────────────────

function onMessage(message: WatchKeysResponse): void {
  if (message.time) clockOffset = Number(message.time.seconds) * 1000 + message.time.nanos / 1e6 - Date.now();
  const event = message.event;
  switch (event.case) {
    case "snapshot":
      if (performance.getEntriesByName(SNAPSHOT_RECEIVED).length === 0) performance.mark(SNAPSHOT_RECEIVED);
      rows.replaceAll(event.value.keys);
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

let shownVersion = -1;
let recomputeTimer: number | undefined;
let lastRecompute = 0;
/** At most four recomputes a second: with 100,000 keys one costs tens of milliseconds. */
function scheduleRecompute(): void {
  if (recomputeTimer !== undefined) return;
  const wait = Math.max(0, lastRecompute + 250 - performance.now());
  recomputeTimer = window.setTimeout(() => {
    recomputeTimer = undefined;
    recompute();
  }, wait);
}

function recompute(): void {
  lastRecompute = performance.now();
  shownVersion = rows.version;
  const at = now();
  const values = rows.byHash.values();
  const totals = totalsOf(rows.byHash.values(), at);
  drawStateTable($<HTMLTableElement>("by-state"), totals);
  drawReadyTable($<HTMLTableElement>("ready"), totals);
  $("lease-total").textContent = compact(totals.leases);
  fillOptions($<HTMLSelectElement>("filter-provider"), totals.providers, "All providers");
  fillOptions($<HTMLSelectElement>("filter-family"), totals.families, "All families");
  fillOptions($<HTMLSelectElement>("filter-state"), ["active", "disabled", "revoked", "over_quota"], "All states", stateName);
  const view = viewOf(values, filter, table.currentSort);
  table.setView(view);
  $("row-count").textContent = `${view.length.toLocaleString("en")} of ${rows.size.toLocaleString("en")} keys`;
  if (openHash) showKey(openHash);
  document.body.dataset.keys = String(rows.size);
  // For devtools and the benchmark (bench/dashboard.bench.ts): when the keys were first on screen.
  if (rows.size > 0 && performance.getEntriesByName(FIRST_RENDER).length === 0) performance.mark(FIRST_RENDER);
}

const FIRST_RENDER = "keypool:first-render";
const SNAPSHOT_RECEIVED = "keypool:snapshot-received";

function fillOptions(select: HTMLSelectElement, values: string[], all: string, label = (v: string) => v): void {
  const wanted = ["", ...values];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join("\n") === have.join("\n")) return;
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

// ─── connection state ────────────────────────────────────────────────────────────────────────

let retryTimer: number | undefined;

function banner(text: string, kind: "info" | "error" | "ok" = "info"): void {
  const el = $("banner");
  el.textContent = text;
  el.className = `banner ${kind}`;
  el.hidden = text === "";
}

function onState(state: WatchState): void {
  const connection = $("connection");
  window.clearInterval(retryTimer);
  switch (state.kind) {
    case "connecting":
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
      showSignIn(state);
      break;
  }
}

function showSignIn(state: Extract<WatchState, { kind: "refused" }>): void {
  tokensRequired = true;
  $("main").hidden = true;
  $("sign-in").hidden = false;
  const reason = $("sign-in-reason");
  if (state.code === Code.PermissionDenied) {
    reason.textContent = `This token may not watch the keys: ${state.message}. Sign in with a watch or admin token.`;
    banner("Permission denied: the token's role does not allow the dashboard.", "error");
  } else if (session.token) {
    reason.textContent = "The token was not accepted. Sign in with a token of the watch or admin role.";
    banner("Not signed in: the token was not accepted.", "error");
  } else {
    reason.textContent = "This keypool needs a bearer token with the watch or admin role.";
    banner("");
  }
  $<HTMLInputElement>("token").focus();
  updateWho();
}

function updateWho(): void {
  const who = $("who");
  if (!tokensRequired && !session.token) who.textContent = "no tokens configured";
  else if (session.token) who.textContent = canAdmin ? "signed in (admin)" : "signed in (watch)";
  else who.textContent = "";
  $("sign-out").hidden = !session.token;
}

/**
 * Whether this token may call the admin RPCs: EnableKey on an empty hash changes nothing and
 * answers NOT_FOUND to a role that may call it, PERMISSION_DENIED to one that may not.
 */
async function learnRole(): Promise<void> {
  try {
    await adminClient.enableKey({ keyHash: "" });
    canAdmin = true;
  } catch (err) {
    canAdmin = ConnectError.from(err).code !== Code.PermissionDenied && ConnectError.from(err).code !== Code.Unauthenticated;
  }
  updateWho();
  if (openHash) showKey(openHash);
}

// ─── the key dialog and admin actions ────────────────────────────────────────────────────────

function openKey(hash: string): void {
  openHash = hash;
  $("key-message").textContent = "";
  showKey(hash);
  const dialog = $<HTMLDialogElement>("key-dialog");
  if (!dialog.open) dialog.showModal();
}

$<HTMLDialogElement>("key-dialog").addEventListener("close", () => (openHash = undefined));

function showKey(hash: string): void {
  const row = rows.byHash.get(hash);
  $("key-title").textContent = hash;
  const details = $("key-details");
  if (!row) {
    details.replaceChildren();
    $("key-message").textContent = "This key has left the pool.";
    $("key-actions").replaceChildren();
    return;
  }
  const at = now();
  const facts: [string, string][] = [
    ["provider", row.provider],
    ["families", row.familiesText],
    ["state", stateName(row.state) + (row.reason ? `: ${row.reason}` : "")],
    ["ready", row.readyAt > at ? `in ${duration(row.readyAt - at)}` : "now"],
    ["last 429", ago(row.rateLimitedAt, at)],
    ["in flight", String(row.inFlight)],
    ["leases", row.leaseCount.toLocaleString("en")],
    ["last used", ago(row.lastUsed, at)],
    ["last checked", ago(row.lastChecked, at)],
    ["organization", row.organizationId || "—"],
    ["trial", row.trial ? "yes" : "no"],
    ...row.usage.map((u): [string, string] => [`usage ${u.family}`, `${u.input.toLocaleString("en")} in, ${u.output.toLocaleString("en")} out, ${u.prompts} prompts`]),
  ];
  details.replaceChildren(
    ...facts.flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.fact = name;
      return [dt, dd];
    }),
  );
  $("key-actions").replaceChildren(...actionsFor(row));
}

function actionsFor(row: KeyRow): HTMLButtonElement[] {
  if (!canAdmin) return [];
  const button = (label: string, run: () => Promise<unknown>, question: string) => {
    const el = document.createElement("button");
    el.type = "button";
    el.textContent = label;
    el.className = "primary";
    el.addEventListener("click", () => void confirmThen(question, label, run));
    return el;
  };
  const out: HTMLButtonElement[] = [];
  if (row.state === "active") {
    out.push(
      button("Disable", () => adminClient.disableKey({ keyHash: row.hash, state: KeyState.DISABLED, reason: "disabled from the dashboard" }),
        `Disable key ${row.hash}? No proxy gets it until it is enabled again.`),
    );
  } else {
    out.push(button("Enable", () => adminClient.enableKey({ keyHash: row.hash }), `Enable key ${row.hash}? Proxies get it again at once.`));
  }
  return out;
}

async function confirmThen(question: string, label: string, run: () => Promise<unknown>): Promise<void> {
  const dialog = $<HTMLDialogElement>("confirm-dialog");
  $("confirm-text").textContent = question;
  $("confirm-ok").textContent = label;
  dialog.returnValue = "";
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  if (dialog.returnValue !== "ok") return;
  const message = $("key-message");
  try {
    await run();
    message.className = "message ok";
    message.textContent = `${label}: done.`;
  } catch (err) {
    const error = ConnectError.from(err);
    message.className = "message error";
    message.textContent =
      error.code === Code.PermissionDenied ? `Not allowed: ${error.rawMessage}` : `${label} failed: ${error.rawMessage}`;
  }
}

// ─── controls ────────────────────────────────────────────────────────────────────────────────

const loop = new WatchLoop({ onMessage, onState });

$<HTMLFormElement>("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  session.token = $<HTMLInputElement>("token").value.trim();
  $<HTMLInputElement>("token").value = "";
  canAdmin = false;
  banner("");
  loop.start();
});

$("sign-out").addEventListener("click", () => {
  session.token = undefined;
  canAdmin = false;
  location.reload();
});

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

// Countdowns move every second; the chart gets a new bucket every five.
window.setInterval(() => {
  if (rows.version !== shownVersion) return;
  table.render();
  if (openHash) showKey(openHash);
}, 1000);
window.setInterval(() => {
  rates.tick();
  rates.draw(chart);
  $("leases-rate").textContent = compact(rates.leasesPerSecond);
  $("tokens-rate").textContent = compact(rates.tokensPerMinute);
  // Ready counts change with time as well as with events.
  if (rows.version === shownVersion) recompute();
}, BUCKET_MS);
window.setInterval(() => void refreshWatchers(), BUCKET_MS);

async function refreshWatchers(): Promise<void> {
  if ($("main").hidden) return;
  const n = await fetchWatcherCount().catch(() => undefined);
  $("watchers").textContent = n === undefined ? "–" : String(n);
}

updateWho();
rates.draw(chart);
loop.start();
void refreshWatchers();
