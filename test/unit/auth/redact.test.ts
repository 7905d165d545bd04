import pino from "pino";
import { Writable } from "node:stream";
import { loggerRedaction } from "../../../src/auth/redact";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ ...loggerRedaction, level: "trace" }, stream), lines };
}

describe("logger redaction", () => {
  it("hides secret-bearing fields at every depth and level", () => {
    const { logger, lines } = capture();
    const secret = "sk-live-SECRET-123";
    logger.trace({ key: secret }, "trace");
    logger.debug({ req: { authorization: `Bearer ${secret}` } }, "debug");
    logger.info({ spec: { key: secret, token: secret } }, "info");
    logger.warn({ call: { headers: { "x-anything": secret } } }, "warn");
    logger.error({ request: { keys: [{ key: secret }] } }, "error");
    logger.info({ headers: { authorization: secret } }, "headers");
    expect(lines).toHaveLength(6);
    for (const line of lines) expect(line).not.toContain(secret);
    expect(lines.join("")).toContain("[redacted]");
  });

  it("keeps ordinary fields", () => {
    const { logger, lines } = capture();
    logger.info({ keyHash: "oai-0123456789abcdef", model: "gpt-4o" }, "leased");
    expect(lines[0]).toContain("oai-0123456789abcdef");
    expect(lines[0]).toContain("gpt-4o");
  });
});
