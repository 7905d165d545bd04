/**
 * The fake upstream's OAuth token endpoint for Vertex keys, as Google's works for a service
 * account: the form's assertion must be an RS256 JWT signed by the account's private key (here,
 * the one key pair the fake makes, `privateKeyPem`), for the token URL as audience, with the
 * cloud-platform scope, not expired; its answer is an access token that the fake's Vertex
 * endpoints accept from then on, with the account's behaviour.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { decodeJwt, jwtVerify } from "jose";
import type { Behaviour } from "./behaviours";

/** Tokens remembered at most; the oldest is forgotten first. */
export const MAX_ISSUED_TOKENS = 10_000;
const SCOPE = "https://www.googleapis.com/auth/cloud-platform";

export type TokenResult =
  | { ok: true; accessToken: string; expiresIn: number }
  | { ok: false; status: number; error: string; description: string };

export class VertexTokens {
  private keys: { privateKeyPem: string; publicKey: KeyObject } | undefined;
  private readonly issued = new Map<string, Behaviour>();

  /** The service accounts' private key (PKCS#8 PEM), made on first use: an RSA key takes a moment. */
  get privateKeyPem(): string {
    return this.keyPair().privateKeyPem;
  }

  /** The client email an assertion claims to come from, unverified ("" when it is no JWT). */
  static issuerOf(assertion: string): string {
    try {
      const iss = decodeJwt(assertion).iss;
      return typeof iss === "string" ? iss : "";
    } catch {
      return "";
    }
  }

  async exchange(form: URLSearchParams, audience: string, behaviour: Behaviour): Promise<TokenResult> {
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return { ok: false, status: 400, error: "unsupported_grant_type", description: "Invalid grant_type" };
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(form.get("assertion") ?? "", this.keyPair().publicKey, { algorithms: ["RS256"], audience }));
    } catch {
      return { ok: false, status: 400, error: "invalid_grant", description: "Invalid JWT Signature." };
    }
    if (typeof payload.scope !== "string" || !payload.scope.split(" ").includes(SCOPE)) {
      return { ok: false, status: 400, error: "invalid_scope", description: "Invalid OAuth scope or ID token audience provided." };
    }
    if (typeof payload.exp !== "number" || typeof payload.iat !== "number" || payload.exp - payload.iat > 3600) {
      return { ok: false, status: 400, error: "invalid_grant", description: "Invalid JWT: Token must be a short-lived token (60 minutes)" };
    }
    const accessToken = `ya29.fake-${randomBytes(24).toString("base64url")}`;
    if (this.issued.size >= MAX_ISSUED_TOKENS) this.issued.delete(this.issued.keys().next().value!);
    this.issued.set(accessToken, behaviour);
    return { ok: true, accessToken, expiresIn: 3599 };
  }

  /** The behaviour of the account a token was issued to. */
  behaviourOf(accessToken: string): Behaviour | undefined {
    return this.issued.get(accessToken);
  }

  private keyPair(): { privateKeyPem: string; publicKey: KeyObject } {
    if (!this.keys) {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      this.keys = { privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim(), publicKey };
    }
    return this.keys;
  }
}
