import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { StateFileError } from "../../../src/storage/state-file-error";
import { StateLock } from "../../../src/storage/state-lock";

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-lock-"))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("StateLock", () => {
  it("refuses a second holder, naming the state file and the holder's PID", () => {
    const state = path.join(dir, "keypool.db");
    const first = StateLock.acquire(state);
    let refusal: unknown;
    try {
      StateLock.acquire(state);
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(StateFileError);
    expect((refusal as Error).message).toContain(state);
    expect((refusal as Error).message).toContain(`is in use by another keypool (process ${process.pid}`);
    first.release();
  });

  it("can be taken again once released, and creates a missing directory", () => {
    const state = path.join(dir, "a", "b", "keypool.db");
    StateLock.acquire(state).release();
    const again = StateLock.acquire(state);
    expect(fs.existsSync(`${state}.lock`)).toBe(true);
    again.release();
    again.release();
  });

  it("locks each state file on its own", () => {
    const one = StateLock.acquire(path.join(dir, "one.db"));
    const two = StateLock.acquire(path.join(dir, "two.db"));
    one.release();
    two.release();
  });
});
