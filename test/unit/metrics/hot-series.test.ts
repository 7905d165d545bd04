/**
 * The hot-path series print exactly what prom-client's own Counter and Histogram print for the
 * same observations, so that Prometheus cannot tell them apart.
 */
import { Counter, Histogram, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "../../../src/metrics/hot-series";

const BUCKETS = [0.001, 0.01, 0.1, 1];

it("a hot histogram's exposition equals prom-client's for the same observations", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotHistogram("wait_seconds", "help text", BUCKETS, ours);
  const reference = new Histogram({ name: "wait_seconds", help: "help text", labelNames: ["family"], buckets: BUCKETS, registers: [theirs] });
  const observations: [string, number][] = [["gpt4", 0], ["gpt4", 0.001], ["gpt4", 0.0011], ["turbo", 0.5], ["gpt4", 7], ["turbo", 1]];
  for (const [family, value] of observations) {
    if (!hot.observe(family, "", "", value)) hot.create(family, "", "", { family }, value);
    reference.observe({ family }, value);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
});

it("a hot counter's exposition equals prom-client's, labels built once per series", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotCounter("leases_total", "help text", ours);
  const reference = new Counter({ name: "leases_total", help: "help text", labelNames: ["provider", "outcome"], registers: [theirs] });
  let built = 0;
  const adds: [string, string, number][] = [["openai", "granted", 1], ["openai", "granted", 2], ["anthropic", "exhausted", 1], ["openai", "exhausted", 4]];
  for (const [provider, outcome, n] of adds) {
    if (!hot.add(provider, outcome, "", n)) {
      built++;
      hot.create(provider, outcome, "", { provider, outcome }, n);
    }
    reference.inc({ provider, outcome }, n);
  }
  expect(built).toBe(3);
  expect(await ours.metrics()).toBe(await theirs.metrics());
});
