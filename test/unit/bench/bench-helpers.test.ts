/**
 * The benchmark's own arithmetic and wire helpers: if these were wrong, every figure in
 * BENCHMARKS.md would be wrong with them.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LeaseRequestSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import { grpcFrame } from "../../../bench/lib/grpc-frame";
import { median, percentile, summarize } from "../../../bench/lib/stats";
import { leaseRequestBytes } from "../../../bench/lib/keypool-rpc";

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
