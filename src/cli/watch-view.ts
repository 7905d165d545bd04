/**
 * The terminal dashboard's model and rendering, with no I/O: the keys as the stream last told,
 * and a pure function from them to the lines on screen (so it is tested without a terminal).
 */
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  KeyState,
  type KeyStatus,
  type WatchKeysResponse,
} from "../../gen/ts/keypool/v1/keypool_pb";

/** The keys the dashboard knows, by hash, as the stream last told. */
export class WatchView {
  readonly keys = new Map<string, KeyStatus>();
  /** Whether a whole snapshot arrived on the current connection (until then the table is stale). */
  synced = false;
  lastMessageAt = 0;
  /** The snapshot slices of the current connection until the last one arrives. */
  private incoming: KeyStatus[] | null = null;

  /**
   * Applies one stream message. A snapshot (its slices collected until the one with `more`
   * false) replaces everything: it starts every (re)connection; the last known table stays on
   * screen meanwhile. `changes` (batched) and `updated` / `removed_key_hash` apply in place.
   */
  apply(message: WatchKeysResponse, receivedAt: number): void {
    this.lastMessageAt = receivedAt;
    const event = message.event;
    switch (event.case) {
      case "snapshot":
        (this.incoming ??= []).push(...event.value.keys);
        if (!event.value.more) {
          this.keys.clear();
          for (const key of this.incoming) this.keys.set(key.keyHash, key);
          this.incoming = null;
          this.synced = true;
        }
        break;
      case "updated":
        this.keys.set(event.value.keyHash, event.value);
        break;
      case "removedKeyHash":
        this.keys.delete(event.value);
        break;
      case "changes":
        for (const key of event.value.updated) this.keys.set(key.keyHash, key);
        for (const keyHash of event.value.removedKeyHashes) this.keys.delete(keyHash);
        break;
      default:
        break;
    }
  }

  /** The connection is gone: the table is the last known state until the next whole snapshot. */
  disconnected(): void {
    this.synced = false;
    this.incoming = null;
  }

  /** The keys in key_hash order, as ListKeys returns them. */
  sorted(): KeyStatus[] {
    return [...this.keys.values()].sort((a, b) => (a.keyHash < b.keyHash ? -1 : a.keyHash > b.keyHash ? 1 : 0));
  }
}

/** What the status line says about the connection. */
export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "retrying"; inMs: number; reason: string }
  | { kind: "failed"; reason: string };

export interface RenderOptions {
  url: string;
  filter: string;
  connection: ConnectionState;
  now: number;
  width: number;
  height: number;
  color: boolean;
}

const STYLE = {
  reset: "\x1b[0m",
  bold: "\x1b[1m",
  dim: "\x1b[2m",
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  inverse: "\x1b[7m",
};
type Style = keyof typeof STYLE;

const STATE_NAMES: Record<KeyState, string> = {
  [KeyState.UNSPECIFIED]: "unknown",
  [KeyState.ACTIVE]: "active",
  [KeyState.DISABLED]: "disabled",
  [KeyState.REVOKED]: "revoked",
  [KeyState.OVER_QUOTA]: "over quota",
};

/** "now" when ready, else how long until it is: 850ms, 4.2s, 1m05s, 2h03m. */
export function formatWait(ms: number): string {
  if (ms <= 0) return "now";
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  if (ms < 60_000) return `${(Math.ceil(ms / 100) / 10).toFixed(1)}s`;
  const totalSeconds = Math.ceil(ms / 1000);
  if (totalSeconds < 3600) {
    return `${Math.floor(totalSeconds / 60)}m${String(totalSeconds % 60).padStart(2, "0")}s`;
  }
  const totalMinutes = Math.floor(totalSeconds / 60);
  return `${Math.floor(totalMinutes / 60)}h${String(totalMinutes % 60).padStart(2, "0")}m`;
}

/** 999, 1.2k, 34.5M, 1.2G: token counts that fit a column. */
export function formatCount(n: bigint | number): string {
  const value = Number(n);
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [size, unit] of units) {
    if (value >= size) {
      const scaled = value / size;
      return `${scaled >= 100 ? Math.round(scaled) : scaled.toFixed(1)}${unit}`;
    }
  }
  return String(value);
}

/** Tokens by family, "gpt4o 12.3k/4.1k" (input/output), families in name order. */
export function formatUsage(key: KeyStatus): string {
  return Object.keys(key.usage)
    .sort()
    .map((family) => {
      const u = key.usage[family]!;
      return `${family} ${formatCount(u.inputTokens)}/${formatCount(u.outputTokens)}`;
    })
    .join("  ");
}

const ms = (t: Timestamp | undefined) => (t ? timestampMs(t) : 0);

interface Row {
  cells: string[];
  style: Style | null;
}

function rowOf(key: KeyStatus, now: number): Row {
  const readyIn = ms(key.readyAt) - now;
  const cooling = ms(key.cooldownUntil) > now;
  let state = STATE_NAMES[key.state] ?? "unknown";
  let style: Style | null = null;
  if (key.state === KeyState.ACTIVE) {
    if (cooling) {
      state = "cooling";
      style = "yellow";
    } else if (readyIn > 0) {
      state = "held";
    } else {
      style = "green";
    }
  } else if (key.state === KeyState.DISABLED) {
    style = "dim";
  } else {
    style = "red";
  }
  const notes = key.state === KeyState.ACTIVE ? "" : key.stateReason;
  return {
    cells: [
      key.keyHash + (key.trial ? "*" : ""),
      state,
      key.state === KeyState.ACTIVE ? formatWait(readyIn) : "-",
      String(key.inFlight),
      formatCount(key.leaseCount),
      key.lastChecked ? `${formatWait(now - ms(key.lastChecked))} ago` : "never",
      key.modelFamilies.join(","),
      [formatUsage(key), notes].filter(Boolean).join("  "),
    ],
    style,
  };
}

const HEADERS = ["KEY", "STATE", "READY IN", "IN FLIGHT", "LEASES", "CHECKED", "FAMILIES", "TOKENS IN/OUT BY FAMILY / REASON"];
const RIGHT_ALIGNED = new Set([2, 3, 4, 5]);

function describeConnection(c: ConnectionState): { text: string; style: Style; detail?: string } {
  switch (c.kind) {
    case "connecting":
      return { text: "connecting", style: "yellow" };
    case "connected":
      return { text: "live", style: "green" };
    case "retrying":
      return { text: `disconnected; retrying in ${formatWait(c.inMs)}`, style: "red", detail: c.reason };
    case "failed":
      return { text: "stopped", style: "red", detail: c.reason };
  }
}

/** Cuts a line to the terminal's width, counting only visible characters. */
function fit(text: string, width: number): string {
  if (width <= 0) return "";
  return text.length > width ? text.slice(0, width - 1) + "…" : text;
}

/**
 * The whole screen, one string per line, at most `height` lines, none wider than `width`
 * visible characters. Keys that do not fit are counted on the last line.
 */
export function renderScreen(view: WatchView, options: RenderOptions): string[] {
  const paint = (text: string, style: Style | null) =>
    options.color && style ? `${STYLE[style]}${text}${STYLE.reset}` : text;
  const keys = view.sorted();
  const now = options.now;

  const counts = { active: 0, cooling: 0, inactive: 0, inFlight: 0 };
  for (const key of keys) {
    counts.inFlight += key.inFlight;
    if (key.state !== KeyState.ACTIVE) counts.inactive++;
    else if (ms(key.cooldownUntil) > now) counts.cooling++;
    else counts.active++;
  }

  const connection = describeConnection(options.connection);
  const lines: string[] = [];
  const title = fit(`keypool-watch  ${options.url}${options.filter ? `  [${options.filter}]` : ""}  `, options.width);
  const status = fit(connection.text, Math.max(0, options.width - title.length));
  lines.push(paint(title, "bold") + paint(status, connection.style));
  const summary =
    `${keys.length} ${keys.length === 1 ? "key" : "keys"}: ${counts.active} active, ${counts.cooling} cooling down, ` +
    `${counts.inactive} not active; ${counts.inFlight} in flight` +
    (view.synced || options.connection.kind === "connecting" ? "" : "  (last known state)");
  lines.push(fit(summary, options.width));
  lines.push(connection.detail ? paint(fit(`last error: ${connection.detail}`, options.width), connection.style) : "");

  const rows = keys.map((key) => rowOf(key, now));
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const layout = (cells: string[]) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1 ? cell : RIGHT_ALIGNED.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!),
      )
      .join("  ")
      .trimEnd();
  lines.push(paint(fit(layout(HEADERS), options.width), "inverse"));

  const room = Math.max(0, options.height - lines.length);
  const shown = rows.length > room ? Math.max(0, room - 1) : rows.length;
  for (const row of rows.slice(0, shown)) lines.push(paint(fit(layout(row.cells), options.width), row.style));
  if (shown < rows.length) lines.push(fit(`… and ${rows.length - shown} more keys (enlarge the terminal)`, options.width));
  if (keys.length === 0 && room > 0) lines.push(view.synced ? "(no keys match)" : "(waiting for the first snapshot)");
  return lines.slice(0, Math.max(1, options.height));
}
