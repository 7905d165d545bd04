/**
 * The fake upstream's check of an AWS SigV4 signature, as AWS makes it: the Authorization header
 * must be well formed for the service, the request time within 15 minutes, and the signature must
 * be the one the access key's secret gives for the request as it arrived (method, path, query and
 * the signed headers). The signature is recomputed with `@smithy/signature-v4` from the request
 * the fake received, so that a request changed after signing, or signed with another secret,
 * region or service, fails.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

export interface ArrivedRequest {
  method: string;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  path: string;
  query: URLSearchParams;
}

export type SigV4Result =
  | { ok: true; accessKeyId: string; region: string }
  /** The error type AWS answers with (x-amzn-errortype) and a message. */
  | { ok: false; errorType: string; message: string; accessKeyId?: string };

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
const MAX_SKEW_MS = 15 * 60_000;

export async function verifySigV4(
  request: ArrivedRequest,
  service: string,
  secretOf: (accessKeyId: string) => string | undefined,
  now: number,
): Promise<SigV4Result> {
  const authorization = one(request.headers.authorization);
  const match = authorization === undefined ? null : AUTHORIZATION.exec(authorization);
  if (!match) return { ok: false, errorType: "IncompleteSignatureException", message: "Authorization header is not a SigV4 signature" };
  const [, accessKeyId, day, region, signedService, signedHeaderList, signature] = match;
  const amzDate = one(request.headers["x-amz-date"]);
  const signedAt = amzDate === undefined ? NaN : parseAmzDate(amzDate);
  if (Number.isNaN(signedAt) || amzDate!.slice(0, 8) !== day) {
    return { ok: false, errorType: "IncompleteSignatureException", message: "X-Amz-Date is missing or does not match the credential scope", accessKeyId };
  }
  if (signedService !== service) return { ok: false, errorType: "InvalidSignatureException", message: `credential should be scoped to service '${service}'`, accessKeyId };
  if (Math.abs(now - signedAt) > MAX_SKEW_MS) return { ok: false, errorType: "InvalidSignatureException", message: "Signature expired", accessKeyId };
  const signedHeaders = signedHeaderList.split(";");
  if (!signedHeaders.includes("host") || !signedHeaders.includes("x-amz-date")) {
    return { ok: false, errorType: "IncompleteSignatureException", message: "host and x-amz-date must be signed", accessKeyId };
  }
  const secretAccessKey = secretOf(accessKeyId);
  if (secretAccessKey === undefined) {
    return { ok: false, errorType: "UnrecognizedClientException", message: "The security token included in the request is invalid.", accessKeyId };
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = one(request.headers[name]);
    if (value === undefined) return { ok: false, errorType: "IncompleteSignatureException", message: `signed header ${name} is missing`, accessKeyId };
    headers[name] = value;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of request.query) query[k] = v;
  const signer = new SignatureV4({ service, region, credentials: { accessKeyId, secretAccessKey }, sha256: Sha256 });
  const expected = await signer.sign(
    { method: request.method, protocol: "http:", hostname: headers.host, path: request.path, query, headers },
    { signingDate: new Date(signedAt) },
  );
  const expectedSignature = /Signature=([0-9a-f]{64})$/.exec(expected.headers.authorization ?? "")?.[1];
  if (expectedSignature !== signature) {
    return {
      ok: false,
      errorType: "InvalidSignatureException",
      message: "The request signature we calculated does not match the signature you provided.",
      accessKeyId,
    };
  }
  return { ok: true, accessKeyId, region };
}

/** 20260101T120000Z as milliseconds. */
function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
