/**
 * The command line of the side-by-side benches: `--name=value` arguments, and the builds to run,
 * this one first, then each built source tree named by `--baseline=<dir>[,<dir>...]`.
 */
import * as path from "node:path";
import { ROOT } from "./keypool-server";

/** The value of `--name=value` on this process's command line, or `fallback`. */
export function benchArg(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
}

export interface BuildToCompare {
  label: string;
  /** The source tree. */
  root: string;
  /** Its server's entry point; absent for this build (bench/lib/keypool-server.ts's default). */
  main?: string;
}

export function buildsToCompare(): BuildToCompare[] {
  const baselines = benchArg("baseline", "").split(",").filter(Boolean);
  return [
    { label: "this build", root: ROOT },
    ...baselines.map((dir) => ({ label: dir, root: path.resolve(dir), main: path.join(dir, "dist", "src", "main.js") })),
  ];
}
