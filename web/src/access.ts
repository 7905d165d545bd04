/**
 * Who the page is to the server: whether tokens are needed, and whether the current token may
 * administer keys. Shows the sign-in form when a call is refused, and the "who" line.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { adminClient } from "./clients";
import { $, banner } from "./dom";
import { session } from "./session";

let tokensRequired = false;
let admin = false;
const listeners: (() => void)[] = [];

export const access = {
  /** Whether the current token (or no token, when none are configured) may call the admin RPCs. */
  get canAdmin(): boolean {
    return admin;
  },
  onChange(listener: () => void): void {
    listeners.push(listener);
  },
};

function changed(): void {
  updateWho();
  for (const listener of listeners) listener();
}

/**
 * Learns whether this token may call the admin RPCs: EnableKey on an empty hash changes nothing
 * and answers NOT_FOUND to a role that may call it, PERMISSION_DENIED to one that may not.
 */
export async function learnRole(): Promise<void> {
  try {
    await adminClient.enableKey({ keyHash: "" });
    admin = true;
  } catch (err) {
    const code = ConnectError.from(err).code;
    admin = code !== Code.PermissionDenied && code !== Code.Unauthenticated;
  }
  changed();
}

/** The server refused the stream: ask for a token, saying why. */
export function showSignIn(code: Code.Unauthenticated | Code.PermissionDenied, message: string): void {
  tokensRequired = true;
  admin = false;
  $("main").hidden = true;
  $("sign-in").hidden = false;
  const reason = $("sign-in-reason");
  if (code === Code.PermissionDenied) {
    reason.textContent = `This token may not watch the keys: ${message}. Sign in with a watch or admin token.`;
    banner("Permission denied: the token's role does not allow the dashboard.", "error");
  } else if (session.token) {
    reason.textContent = "The token was not accepted. Sign in with a token of the watch or admin role.";
    banner("Not signed in: the token was not accepted.", "error");
  } else {
    reason.textContent = "This keypool needs a bearer token with the watch or admin role.";
    banner("");
  }
  $<HTMLInputElement>("token").focus();
  changed();
}

export function signIn(token: string): void {
  session.token = token;
  admin = false;
  banner("");
  changed();
}

export function signOut(): void {
  session.token = undefined;
  admin = false;
  location.reload();
}

export function updateWho(): void {
  const who = $("who");
  if (!tokensRequired && !session.token) who.textContent = "no tokens configured";
  else if (session.token) who.textContent = admin ? "signed in (admin)" : "signed in (watch)";
  else who.textContent = "";
  $("sign-out").hidden = !session.token;
}
