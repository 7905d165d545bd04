/**
 * docs/checker.md's Anthropic table, row by row.
 */
import { anthropicRequest, decideAnthropic } from "../../../src/checker/anthropic-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, anthropicError, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const ant = (extra = {}) => subject({ provider: "anthropic", keyHash: "ant-0123456789abcdef", ...extra });

describe("Anthropic answers (docs/checker.md)", () => {
  it("2xx: checked, the key works; a first check gives it every Claude family", () => {
    const ok = answer(200, { type: "message", content: [] });
    expect(decideAnthropic(ant(), ok, families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["claude", "claude-haiku", "claude-sonnet", "claude-opus"] },
      warnings: [],
    });
    expect(decideAnthropic(ant({ firstCheck: false }), ok, families)).toEqual({ kind: "checked", finding: { state: "active" }, warnings: [] });
  });

  it.each([
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing.",
    "Usage blocked until 2026-12-31 at midnight UTC.",
  ])("400 %s: OVER_QUOTA", (message) => {
    expect(decideAnthropic(ant(), anthropicError(400, "invalid_request_error", message), families)).toMatchObject({
      kind: "checked",
      finding: { state: "over_quota" },
    });
  });

  it("400 organization has been disabled: REVOKED", () => {
    const out = decideAnthropic(ant(), anthropicError(400, "invalid_request_error", "This organization has been disabled."), families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
  });

  it.each([401, 403])("%i: REVOKED", (status) => {
    const out = decideAnthropic(ant(), anthropicError(status, "authentication_error", "invalid x-api-key"), families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
  });

  it("429 rate_limit_error: unchanged, checked again after 10 s", () => {
    expect(decideAnthropic(ant(), anthropicError(429, "rate_limit_error", "slow down"), families)).toMatchObject({
      kind: "retry",
      afterMs: 10_000,
    });
  });

  it("other answers: unchanged, checked, a warning", () => {
    expect(decideAnthropic(ant(), anthropicError(400, "invalid_request_error", "max_tokens: too small"), families)).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "liveness", status: 400, errorType: "invalid_request_error" }],
    });
    expect(decideAnthropic(ant(), anthropicError(404, "not_found_error", "model"), families)).toMatchObject({
      kind: "checked",
      finding: {},
    });
  });

  it("network error, timeout, 5xx, 529: not checked, tried again after a minute", () => {
    for (const bad of [refused, timedOut, answer(500), answer(529, { type: "error", error: { type: "overloaded_error" } })]) {
      expect(decideAnthropic(ant(), bad, families)).toMatchObject({ kind: "retry", afterMs: 60_000 });
    }
  });

  it("the request: x-api-key, anthropic-version, a tiny max_tokens", () => {
    const req = anthropicRequest(ant(), "http://127.0.0.1:9");
    expect(req).toMatchObject({ method: "POST", url: "http://127.0.0.1:9/v1/messages" });
    expect(req.headers).toMatchObject({ "x-api-key": "sk-test-secret", "anthropic-version": "2023-06-01" });
    expect(JSON.parse(req.body!).max_tokens).toBe(1);
  });
});
