/**
 * The Python that end-to-end tests run clients with: the first of KEYPOOL_PYTHON, `python3` on
 * PATH and /usr/bin/python3 that can import grpcio and protobuf. Without one the tests fail at
 * once, with one line saying what to install: a Python client test never skips.
 */
import { execFileSync } from "node:child_process";

export const PYTHON_MISSING =
  "no Python with grpcio and protobuf: install them (Debian: apt-get install python3-grpcio python3-protobuf; pip: pip install grpcio protobuf), or point KEYPOOL_PYTHON at a python3 that has them";

function canImportGrpc(python: string): boolean {
  try {
    // Without PYTHONPATH, so that nothing in gen/python can stand in for the real packages.
    execFileSync(python, ["-c", "import grpc, google.protobuf; grpc.insecure_channel"], {
      stdio: "ignore",
      env: { PATH: process.env.PATH ?? "" },
      timeout: 15_000,
    });
    return true;
  } catch {
    return false;
  }
}

let found: string | undefined;

/** The interpreter to use; throws PYTHON_MISSING when there is none. */
export function findPython(env: NodeJS.ProcessEnv = process.env): string {
  if (found) return found;
  const candidates = env.KEYPOOL_PYTHON ? [env.KEYPOOL_PYTHON] : ["python3", "/usr/bin/python3"];
  found = candidates.find(canImportGrpc);
  if (!found) throw new Error(env.KEYPOOL_PYTHON ? `KEYPOOL_PYTHON=${env.KEYPOOL_PYTHON}: ${PYTHON_MISSING}` : PYTHON_MISSING);
  return found;
}
