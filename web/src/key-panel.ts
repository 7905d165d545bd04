/**
 * The panel of one key: everything about it, kept current while open, and for an admin the
 * Disable or Enable action, each behind a confirmation.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { access } from "./access";
import { adminClient } from "./clients";
import { $ } from "./dom";
import { ago, duration, stateName } from "./format";
import type { KeyRow, KeyRows } from "./rows";

export class KeyPanel {
  private openHash: string | undefined;

  constructor(
    private readonly rows: KeyRows,
    private readonly now: () => number,
  ) {
    $<HTMLDialogElement>("key-dialog").addEventListener("close", () => (this.openHash = undefined));
    access.onChange(() => this.refresh());
  }

  open(hash: string): void {
    this.openHash = hash;
    $("key-message").textContent = "";
    this.refresh();
    const dialog = $<HTMLDialogElement>("key-dialog");
    if (!dialog.open) dialog.showModal();
  }

  /** Redraws the open panel from the latest row, if one is open. */
  refresh(): void {
    const hash = this.openHash;
    if (!hash) return;
    const row = this.rows.byHash.get(hash);
    $("key-title").textContent = hash;
    const details = $("key-details");
    if (!row) {
      details.replaceChildren();
      $("key-message").textContent = "This key has left the pool.";
      $("key-actions").replaceChildren();
      return;
    }
    const at = this.now();
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
      ...row.usage.map((u): [string, string] => [
        `usage ${u.family}`,
        `${u.input.toLocaleString("en")} in, ${u.output.toLocaleString("en")} out, ${u.prompts} prompts`,
      ]),
    ];
    details.replaceChildren(
      ...facts.flatMap(([name, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = name;
        const dd = document.createElement("dd");
        dd.textContent = value;
        return [dt, dd];
      }),
    );
    $("key-actions").replaceChildren(...this.actionsFor(row));
  }

  private actionsFor(row: KeyRow): HTMLButtonElement[] {
    if (!access.canAdmin) return [];
    const button = (label: string, question: string, run: () => Promise<unknown>) => {
      const el = document.createElement("button");
      el.type = "button";
      el.textContent = label;
      el.className = "primary";
      el.addEventListener("click", () => void confirmThen(question, label, run));
      return el;
    };
    if (row.state === "active") {
      return [
        button("Disable", `Disable key ${row.hash}? No proxy gets it until it is enabled again.`, () =>
          adminClient.disableKey({ keyHash: row.hash, state: KeyState.DISABLED, reason: "disabled from the dashboard" }),
        ),
      ];
    }
    return [button("Enable", `Enable key ${row.hash}? Proxies get it again at once.`, () => adminClient.enableKey({ keyHash: row.hash }))];
  }
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
    message.textContent = error.code === Code.PermissionDenied ? `Not allowed: ${error.rawMessage}` : `${label} failed: ${error.rawMessage}`;
  }
}
