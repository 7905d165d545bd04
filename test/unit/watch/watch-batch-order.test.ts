/**
 * With `batch`, watches that have the same changes due list them in the same order, whatever
 * each one sent before (a batch split by the message budget included): that is what lets the
 * transport encode one `changes` body for all of them. The split itself still gives every key its
 * turn (watch-hub-slices.test.ts).
 */
import { ManualClock } from "../../../src/domain/clock";
import { estimateStatusBytes, WatchHub } from "../../../src/watch/watch-hub";
import type { WatchEvent } from "../../../src/watch/watch-subscription";
import { FakePool, status } from "./fake-pool";
import { Reader } from "./hub-reader";

type Changes = Extract<WatchEvent, { type: "changes" }>;
const hashes = (n: number) => Array.from({ length: n }, (_, i) => `oai-${String(i).padStart(4, "0")}`);

test("batched watches with the same changes due list the same statuses in the same order, after a split batch too", async () => {
  const clock = new ManualClock();
  const pool = new FakePool();
  // Room for about 12 statuses per message: 30 changed keys take three messages.
  const budget = estimateStatusBytes(status("oai-0000")) * 12;
  const hub = new WatchHub(pool, { clock, saturated: () => false, messageBytes: budget });
  for (const h of hashes(30)) pool.put(status(h));
  const early = new Reader(hub.subscribe({}, undefined, { batch: true }));
  await early.drain();
  // Only the early watch sees these windows: a split one, then one of the first five keys (where
  // it left off would be after them).
  for (const h of hashes(30)) pool.change(h, { leaseCount: 1 });
  const split = (await early.drain()) as Changes[];
  expect(split.length).toBeGreaterThan(1);
  clock.advance(100);
  for (const h of hashes(5)) pool.change(h, { leaseCount: 2 });
  expect(((await early.drain()) as Changes[]).flatMap((e) => e.updated.map((s) => s.keyHash))).toEqual(hashes(5));
  const late = new Reader(hub.subscribe({}, undefined, { batch: true }));
  await late.drain();
  clock.advance(100);
  await early.drain();

  // A window in which both have the same keys due, changed in an order unlike the slots'.
  const changed = ["oai-0007", "oai-0002", "oai-0005"];
  for (const h of changed) pool.change(h, { leaseCount: 3 });
  clock.advance(100);
  const [a] = (await early.drain()) as Changes[];
  const [b] = (await late.drain()) as Changes[];
  expect(a!.updated.map((s) => s.keyHash)).toEqual(["oai-0002", "oai-0005", "oai-0007"]);
  expect(b!.updated.map((s) => s.keyHash)).toEqual(a!.updated.map((s) => s.keyHash));
  // The very same status objects: the transport's encoding of one is shared.
  a!.updated.forEach((s, i) => expect(b!.updated[i]).toBe(s));
  hub.close();
});
