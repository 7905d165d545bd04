/**
 * A young-generation collection on demand (V8's minor collection, what the collector runs on its
 * own when the young generation fills up).
 *
 * When a thousand streams open at once, each leaves several KiB of objects that live as long
 * as the stream (the transport's stream and call, the adapter's context, the watch). Left to
 * itself, V8 collects the young generation once it is full, and each such collection copies the
 * objects of every stream opened since the last one: tens of milliseconds in which no call is
 * answered. Collected every few streams instead (stream-admission.ts), each collection copies
 * only those few streams' objects, a few milliseconds each. node exposes the collector only
 * behind --expose-gc, which is set here for the new context it is read from (as jest's leak
 * detector does), so that the operator's command line stays as it is.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type V8Gc = (options: { type: "minor" | "major"; execution?: "sync" | "async" }) => void;

export function youngGenerationCollector(): () => void {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as V8Gc | undefined;
  if (typeof gc !== "function") throw new Error("this node does not expose V8's collector with --expose-gc");
  return () => gc({ type: "minor" });
}
