/**
 * Whether a state file path still names the file keypool has open. SQLite writes through its
 * open descriptor: after the file is deleted, or another file is moved over its path, every
 * commit still succeeds — into an inode that nothing will ever read again. So the path's device
 * and inode are compared with the open file's before any commit is acknowledged.
 */
import * as fs from "node:fs";

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The device and inode `path` names now (following symbolic links); undefined when nothing is there. */
export function identityOf(path: string): FileIdentity | undefined {
  try {
    const { dev, ino } = fs.statSync(path);
    return { dev, ino };
  } catch {
    return undefined;
  }
}

/** The state file's path no longer names the open file. The message holds no path: clients see it. */
export class StateFileLostError extends Error {
  override readonly name = "StateFileLostError";

  constructor(
    readonly path: string,
    readonly replaced: boolean,
  ) {
    super(
      `the state file was ${replaced ? "replaced by another file" : "deleted"} while keypool was running; no change is saved (or acknowledged) until it is back`,
    );
  }
}

/** Throws StateFileLostError unless `path` still names the file whose identity is `opened`. */
export function checkSameFile(path: string, opened: FileIdentity): void {
  const now = identityOf(path);
  if (now && now.dev === opened.dev && now.ino === opened.ino) return;
  throw new StateFileLostError(path, now !== undefined);
}
