/**
 * A throw-away TLS certificate for tests, made with the system's openssl: self-signed, for
 * "localhost" and 127.0.0.1, valid one day. Each call makes a new key pair, so a client that
 * trusts one certificate does not trust another.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificate {
  dir: string;
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
  /** Deletes the files. */
  remove(): void;
}

export function makeTestCertificate(commonName = "localhost"): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), "keypool-cert-"));
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
      "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", `/CN=${commonName}`,
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return {
    dir,
    certPath,
    keyPath,
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
