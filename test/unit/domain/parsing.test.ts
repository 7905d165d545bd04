import { parseGoDuration } from "../../../src/domain/duration";
import { openai } from "../../../src/domain/providers/openai";
import { anthropic } from "../../../src/domain/providers/anthropic";
import { planReport } from "../../../src/domain/rate-limit-report";
import { parseRetryAfter, parseRetryAfterMs, parseRfc3339Wait } from "../../../src/domain/retry-after";
import { T0 } from "./helpers";

const limits = { maxResetMs: 10_000, defaultCooldownMs: 10_000, maxCooldownMs: 60_000 };

describe("Go durations (OpenAI x-ratelimit-reset-*)", () => {
  it.each([
    ["20ms", 20],
    ["1s", 1000],
    ["6m0s", 360_000], // every unit counts, a trailing "0s" included
    ["1h2m3.5s", 3_723_500],
    ["0.5s", 500],
    ["1m", 60_000],
    ["2h", 7_200_000],
    ["21.0032s", 21_003.2],
    ["0", 0],
    ["1m30s", 90_000],
    ["500us", 0.5],
    [" 2s ", 2000],
  ])("%s is %d ms", (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 6);
  });

  it.each(["", "soon", "1x", "-1s", "1.2.3s", "s", "1 s", "10", "1s garbage", "NaN", "1e3s"])(
    "%j is not a duration (ignored)",
    (text) => {
      expect(parseGoDuration(text)).toBeUndefined();
    },
  );
});

describe("retry-after, retry-after-ms and RFC 3339", () => {
  it("reads retry-after in seconds", () => {
    expect(parseRetryAfter("3", T0)).toBe(3000);
    expect(parseRetryAfter("1.5", T0)).toBe(1500);
  });

  it("reads retry-after as an HTTP date, relative to now", () => {
    const at = new Date(T0 + 7000).toUTCString(); // IMF-fixdate
    expect(parseRetryAfter(at, T0)).toBe(7000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", T0)).toBe(5000);
    expect(parseRetryAfter("Thursday, 01-Jan-26 00:00:05 GMT", T0)).toBe(5000);
    expect(parseRetryAfter("Thu Jan  1 00:00:05 2026", T0)).toBe(5000);
  });

  it("a date in the past is a wait of 0", () => {
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", T0)).toBe(0);
  });

  it("ignores garbage", () => {
    for (const bad of ["", "soon", "-3", "1 2", "Tomorrow", "2026-01-01T00:00:00Z"]) {
      expect(parseRetryAfter(bad, T0)).toBeUndefined();
    }
    expect(parseRetryAfterMs("x")).toBeUndefined();
    expect(parseRetryAfterMs("250")).toBe(250);
  });

  it("reads RFC 3339 instants as the wait until then", () => {
    expect(parseRfc3339Wait("2026-01-01T00:00:04Z", T0)).toBe(4000);
    expect(parseRfc3339Wait("2026-01-01T01:00:04+01:00", T0)).toBe(4000);
    expect(parseRfc3339Wait("2026-01-01T00:00:00.250Z", T0)).toBe(250);
    expect(parseRfc3339Wait("2025-12-31T00:00:00Z", T0)).toBe(0);
    expect(parseRfc3339Wait("2026-01-01", T0)).toBeUndefined();
    expect(parseRfc3339Wait("tomorrow", T0)).toBeUndefined();
  });
});

describe("planning a report (docs/reports-and-lockout.md)", () => {
  const plan = (status: number, headers: Record<string, string>, scheme = openai.rateLimitHeaders) =>
    planReport(status, headers, scheme, T0, limits);

  it("2xx with every remaining count above 0: ready now", () => {
    expect(plan(200, { "x-ratelimit-remaining-requests": "3", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s" })).toEqual({ kind: "hold", waitMs: 0 });
  });

  it("2xx with an exhausted dimension: the largest reset among exhausted dimensions", () => {
    expect(
      plan(200, {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "8s",
      }),
    ).toEqual({ kind: "hold", waitMs: 2000 });
  });

  it("2xx without remaining counts: the largest reset that came", () => {
    expect(plan(200, { "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "3s" })).toEqual({ kind: "hold", waitMs: 3000 });
  });

  it("caps a hold at maxResetMs", () => {
    expect(plan(200, { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" })).toEqual({ kind: "hold", waitMs: 10_000 });
  });

  it("no usable header: nothing", () => {
    expect(plan(200, {})).toEqual({ kind: "none" });
    expect(plan(200, { "x-ratelimit-reset-tokens": "whenever", "x-ratelimit-remaining-tokens": "lots" })).toEqual({ kind: "none" });
  });

  it("header names are case-insensitive", () => {
    expect(plan(200, { "X-RateLimit-Remaining-Requests": "0", "X-RATELIMIT-RESET-REQUESTS": "4s" })).toEqual({ kind: "hold", waitMs: 4000 });
  });

  it("429: retry-after-ms, then retry-after, then resets, then the default, capped", () => {
    expect(plan(429, { "retry-after-ms": "1500", "retry-after": "9" })).toEqual({ kind: "cooldown", waitMs: 1500 });
    expect(plan(429, { "retry-after": "9", "x-ratelimit-reset-requests": "2s" })).toEqual({ kind: "cooldown", waitMs: 9000 });
    expect(plan(429, { "x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "20s" })).toEqual({ kind: "cooldown", waitMs: 20_000 });
    expect(plan(429, {})).toEqual({ kind: "cooldown", waitMs: 10_000 });
    expect(plan(429, { "retry-after": "3600" })).toEqual({ kind: "cooldown", waitMs: 60_000 });
    expect(plan(429, { "retry-after": "garbage" })).toEqual({ kind: "cooldown", waitMs: 10_000 });
  });

  it("401 revokes", () => {
    expect(plan(401, { "x-ratelimit-remaining-requests": "5" })).toEqual({ kind: "revoke" });
  });

  it("Anthropic: RFC 3339 reset instants in anthropic-ratelimit-* headers", () => {
    const scheme = anthropic.rateLimitHeaders;
    expect(
      plan(
        200,
        {
          "anthropic-ratelimit-requests-remaining": "10",
          "anthropic-ratelimit-input-tokens-remaining": "0",
          "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:04Z",
          "anthropic-ratelimit-output-tokens-remaining": "5",
          "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:09Z",
        },
        scheme,
      ),
    ).toEqual({ kind: "hold", waitMs: 4000 });
    expect(plan(200, { "anthropic-ratelimit-tokens-remaining": "7" }, scheme)).toEqual({ kind: "hold", waitMs: 0 });
    // OpenAI's headers mean nothing for an Anthropic key.
    expect(plan(200, { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "5s" }, scheme)).toEqual({ kind: "none" });
  });
});
