import { readFileSync } from "node:fs";

/** Reads a file named by a setting; tests pass their own. */
export type ReadFile = (path: string) => string;

export const readTextFile: ReadFile = (path) => readFileSync(path, "utf8");

/**
 * The text of a file a setting names, or the error `fail` makes from the system's error code
 * (such as ENOENT), so that the start stops with a message naming the setting and the file.
 */
export function readConfigFile(path: string, readFile: ReadFile, fail: (code: string | undefined) => Error): string {
  try {
    return readFile(path);
  } catch (error) {
    throw fail((error as NodeJS.ErrnoException).code);
  }
}
