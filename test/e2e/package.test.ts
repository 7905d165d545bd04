/**
 * The production path, as an operator takes it: `npm pack`, install the tarball into a fresh
 * prefix with runtime dependencies only (no TypeScript anywhere), start the installed `keypool`
 * bin, see SERVING on /healthz and through gRPC health, lease a key, stop it with SIGTERM within
 * 5 s. The same install is what deploy/keypool.service runs (checked by `systemd-analyze verify`)
 * and what deploy/Dockerfile builds (no docker here: its structure is checked, its build steps are
 * the ones run below, and its HEALTHCHECK command is run against the installed server).
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { REPO_ROOT, ensureBuilt, spawnKeypool, type ChildServer } from "../support/child-server";

const run = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const SECRET = "sk-package-test-openai-0001";
/** Only node itself and the system: nothing from the checkout's node_modules/.bin. */
const SYSTEM_PATH = `${path.dirname(process.execPath)}:/usr/bin:/bin`;

// Installing compiles better-sqlite3 (as every install does): minutes on a loaded machine.
jest.setTimeout(15 * 60_000);

let dir: string;
let prefix: string;
let tarball: string;

beforeAll(async () => {
  ensureBuilt(); // so that prepack finds dist/ fresh and no two compilers write it at once
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-package-"));
  prefix = path.join(dir, "prefix");
  // npm runs with this machine's configuration (registry, proxy, CA certificates in the
  // environment), as the operator's would.
  // (Not the npm_* variables that `npm test` sets for its own script.)
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("npm_")));
  const packed = await run("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: REPO_ROOT, env });
  tarball = path.join(dir, packed.stdout.trim().split("\n").pop()!);
  await run(
    "npm",
    ["install", "--global", "--prefix", prefix, "--omit=dev", "--prefer-offline", "--allow-scripts=better-sqlite3", "--no-audit", "--no-fund", tarball],
    { cwd: dir, env: { ...env, PATH: SYSTEM_PATH }, maxBuffer: 16 * 1024 * 1024 },
  );
}, 15 * 60_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it("the tarball holds the compiled server, the deploy files and the license; no sources or tests", () => {
  const files = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" }).trim().split("\n");
  for (const file of ["dist/src/main.js", "dist/src/cli/watch.js", "dist/gen/ts/keypool/v1/keypool_pb.js", "deploy/keypool.service", "deploy/Dockerfile", "LICENSE", "README.md", "package.json"]) {
    expect(files).toContain(`package/${file}`);
  }
  expect(files.filter((f) => /\.ts$|\.map$|^package\/(src|test|bench)\//.test(f))).toEqual([]);
});

it("installs with runtime dependencies only: no TypeScript, no dev dependency a runtime one does not need", () => {
  const installed = path.join(prefix, "lib/node_modules", pkg.name, "node_modules");
  // A dev dependency may still come in as a runtime dependency's own (grpc-js needs proto-loader).
  const needed = new Set<string>();
  for (const entry of fs.readdirSync(installed)) {
    const names = entry.startsWith("@") ? fs.readdirSync(path.join(installed, entry)).map((n) => `${entry}/${n}`) : [entry];
    for (const name of names) {
      const manifest = path.join(installed, name, "package.json");
      if (!fs.existsSync(manifest)) continue;
      const deps = (JSON.parse(fs.readFileSync(manifest, "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {};
      for (const dep of Object.keys(deps)) needed.add(dep);
    }
  }
  for (const tool of ["typescript", "ts-jest", "jest", "tsx", "@bufbuild/buf"]) expect(fs.existsSync(path.join(installed, tool))).toBe(false);
  for (const dev of Object.keys(pkg.devDependencies).filter((d) => !needed.has(d))) {
    expect({ dev, installed: fs.existsSync(path.join(installed, dev)) }).toEqual({ dev, installed: false });
  }
  for (const dep of Object.keys(pkg.dependencies)) expect(fs.existsSync(path.join(installed, dep))).toBe(true);
});

it("both bins answer --version from the installed package", async () => {
  const env = { PATH: SYSTEM_PATH };
  expect((await run(path.join(prefix, "bin/keypool"), ["--version"], { env })).stdout).toBe(`keypool ${pkg.version}\n`);
  expect((await run(path.join(prefix, "bin/keypool-watch"), ["--version"], { env })).stdout).toBe(`keypool-watch ${pkg.version}\n`);
});

describe("the installed keypool", () => {
  let server: ChildServer;
  const dockerfile = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, "deploy/Dockerfile"), "utf8"));

  beforeAll(async () => {
    const state = path.join(dir, "state", "keypool.db");
    server = await spawnKeypool({
      command: path.join(prefix, "bin/keypool"),
      cwd: dir,
      env: { PATH: SYSTEM_PATH, KEYPOOL_STATE: state, OPENAI_KEY: SECRET },
    });
  });
  afterAll(() => server?.stop("SIGKILL"));

  it("is SERVING on /healthz and through gRPC health, and leases a key", async () => {
    const healthz = await fetch(`${server.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.text()).toBe("SERVING\n");
    const transport = createGrpcTransport({ baseUrl: server.url });
    expect((await createClient(Health, transport).check({ service: "" })).status).toBe(ServingStatus.SERVING);
    const lease = await createClient(KeyPoolService, transport).lease({ model: "gpt-4o-mini" });
    expect(lease.key).toBe(SECRET);
  });

  it("passes the Dockerfile's HEALTHCHECK command", async () => {
    const [command, ...args] = dockerfile.healthcheck;
    await expect(run(command!, args, { env: { PATH: SYSTEM_PATH, KEYPOOL_PORT: String(server.port) } })).resolves.toBeDefined();
  });

  it("stops on SIGTERM within 5 s, exit code 0", async () => {
    const signalled = Date.now();
    expect(await server.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(server.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["shutting down", "stopped"]));
    // The health check now fails, as docker needs it to.
    const [command, ...args] = dockerfile.healthcheck;
    await expect(run(command!, args, { env: { PATH: SYSTEM_PATH, KEYPOOL_PORT: String(server.port) } })).rejects.toMatchObject({ code: 1 });
  });
});

it("deploy/keypool.service passes systemd-analyze verify, run against this install", async () => {
  const unit = fs.readFileSync(path.join(REPO_ROOT, "deploy/keypool.service"), "utf8");
  expect(unit).toContain("ExecStart=/opt/keypool/bin/keypool\n");
  const unitDir = path.join(dir, "unit");
  fs.mkdirSync(unitDir);
  // The one install-specific line: where the package was installed.
  fs.writeFileSync(path.join(unitDir, "keypool.service"), unit.replace("/opt/keypool/", `${prefix}/`));
  const verified = await run("systemd-analyze", ["verify", path.join(unitDir, "keypool.service")]);
  expect(verified.stderr).toBe("");
});

describe("deploy/Dockerfile", () => {
  const dockerfile = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, "deploy/Dockerfile"), "utf8"));
  const final = dockerfile.stages[dockerfile.stages.length - 1]!;
  const instruction = (stage: Stage, name: string) => stage.instructions.filter((i) => i.name === name).map((i) => i.args);

  it("is multi-stage, and the image it runs is the last stage, as a non-root user", () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    const users = instruction(final, "USER");
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^(root|0)(:|$)/);
    expect(instruction(final, "ENTRYPOINT")).toEqual(['["keypool"]']);
    expect(dockerfile.healthcheck[0]).toBe("node");
  });

  it("keeps KEYPOOL_STATE on a volume", () => {
    const env = instruction(final, "ENV").join(" ");
    const state = /KEYPOOL_STATE=(\S+)/.exec(env)?.[1];
    expect(state).toBeDefined();
    expect(instruction(final, "VOLUME")).toContain(path.dirname(state!));
  });

  it("copies only files that exist in the repository", () => {
    for (const stage of dockerfile.stages) {
      for (const copy of instruction(stage, "COPY").filter((args) => !args.startsWith("--from"))) {
        const sources = copy.split(/\s+/).slice(0, -1);
        for (const source of sources) expect(fs.existsSync(path.join(REPO_ROOT, source))).toBe(true);
      }
    }
  });
});

interface Stage {
  from: string;
  instructions: { name: string; args: string }[];
}

/** Instructions per stage (continuation lines joined, comments dropped) and the HEALTHCHECK command. */
function parseDockerfile(text: string): { stages: Stage[]; healthcheck: string[] } {
  const lines = text.replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const stages: Stage[] = [];
  let healthcheck: string[] = [];
  for (const line of lines) {
    const [name, ...rest] = line.split(/\s+/);
    const args = rest.join(" ");
    if (name === "FROM") stages.push({ from: args, instructions: [] });
    else stages[stages.length - 1]?.instructions.push({ name: name!, args });
    if (name === "HEALTHCHECK") healthcheck = JSON.parse(args.slice(args.indexOf("CMD ") + 4)) as string[];
  }
  return { stages, healthcheck };
}
