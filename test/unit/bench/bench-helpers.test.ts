/**
 * The benchmark's own arithmetic, wire helpers and pools: if these were wrong, every figure in
 * BENCHMARKS.md would be wrong with them.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LeaseRequestSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import { grpcFrame } from "../../../bench/lib/grpc-frame";
import { median, percentile, summarize } from "../../../bench/lib/stats";
import { leaseRequestBytes } from "../../../bench/lib/keypool-rpc";
import { poolOf, writeKeysFile } from "../../../bench/lib/keys-file";
import { parseKeysFile } from "../../../src/config/key-sources";

describe("grpcFrame", () => {
  it("prefixes a message with flag 0 and its big-endian length, as h2load must send it", () => {
    const message = leaseRequestBytes("gpt-4o");
    const frame = grpcFrame(message);
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(message.length);
    expect(frame.length).toBe(5 + message.length);
    expect(fromBinary(LeaseRequestSchema, frame.subarray(5)).model).toBe("gpt-4o");
  });

  it("copies a message that is a view into a larger buffer", () => {
    const whole = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-3.5-turbo" }));
    const padded = new Uint8Array(whole.length + 10);
    padded.set(whole, 7);
    const frame = grpcFrame(padded.subarray(7, 7 + whole.length));
    expect(Buffer.from(frame.subarray(5)).equals(Buffer.from(whole))).toBe(true);
  });
});

describe("percentiles", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted

  it("uses the nearest rank", () => {
    expect(percentile(hundred, 0.5)).toBe(50);
    expect(percentile(hundred, 0.99)).toBe(99);
    expect(percentile(hundred, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
  });

  it("is NaN without samples rather than a made-up zero", () => {
    expect(percentile([], 0.5)).toBeNaN();
    expect(summarize([]).p99Ms).toBeNaN();
  });

  it("summarizes count, p50, p99 and max", () => {
    expect(summarize(hundred)).toEqual({ count: 100, p50Ms: 50, p99Ms: 99, maxMs: 100 });
    expect(median([3, 1, 2])).toBe(2);
  });
});

describe("the Lease benches' pools", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-keys-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The file as keypool reads it: providers in order, and how many distinct keys. */
  function load(file: string) {
    const specs = parseKeysFile(readFileSync(file, "utf8"), file);
    return { providers: specs.map((s) => s.provider), distinct: new Set(specs.map((s) => s.key)).size };
  }

  it("reads <keys>@<reached> as a pool of that size whose Leases reach only some keys", () => {
    expect(poolOf("100000")).toEqual({ keys: 100000, leasable: 100000, label: "100000", name: "100000 keys" });
    expect(poolOf("100000@10")).toEqual({ keys: 100000, leasable: 10, label: "100000-10", name: "100000 keys (Leases reach 10)" });
    for (const bad of ["", "ten", "0", "10@0", "10@11", "10@2.5", "-5"]) expect(() => poolOf(bad)).toThrow(/--keys/);
  });

  it("writes the reached keys as OpenAI keys (what the benches lease) and the rest for another provider, all distinct", () => {
    const file = path.join(dir, "keys.json");
    writeKeysFile(file, 1000, { leasable: 10 });
    const { providers, distinct } = load(file);
    expect(providers).toHaveLength(1000);
    expect(providers.filter((p) => p === "openai")).toHaveLength(10);
    expect(providers.slice(0, 10).every((p) => p === "openai")).toBe(true);
    expect(providers.slice(10).every((p) => p === "anthropic")).toBe(true);
    expect(distinct).toBe(1000);
  });

  it("writes every key as an OpenAI key by default, and the fan-out's marker as one key more", () => {
    const plain = path.join(dir, "plain.json");
    writeKeysFile(plain, 50);
    expect(load(plain).providers.every((p) => p === "openai")).toBe(true);
    const marked = path.join(dir, "marked.json");
    writeKeysFile(marked, 10, { withMarker: true });
    expect(load(marked).providers).toEqual([...Array(10).fill("openai"), "anthropic"]);
  });
});
