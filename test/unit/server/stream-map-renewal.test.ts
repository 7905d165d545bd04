/**
 * Stream-map renewal on a real node HTTP/2 server and client: after a full collection the
 * session gets a new map with the same open streams, and everything node does with that map (new
 * streams, streams ending, destroying the session) still works. The collections are fired by the
 * test (ManualCollections); that V8's own full collections, and only those, reach a subscriber is
 * checked in a process of its own, the one place a collection is forced.
 */
import { execFileSync } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { StreamMapRenewal } from "../../../src/server/stream-map-renewal";
import { ManualCollections, streamMapOf, until } from "../../support/stream-map";

/** Sends a request and gathers its answer; `ended` settles with the body, or the stream's error. */
function request(client: http2.ClientHttp2Session, path: string): { ended: Promise<string> } {
  const stream = client.request({ ":path": path });
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<string>((resolve, reject) => {
    stream.on("end", () => resolve(Buffer.concat(chunks).toString()));
    stream.on("error", reject);
  });
  ended.catch(() => {});
  return { ended };
}

describe("StreamMapRenewal", () => {
  let collections: ManualCollections;
  let server: http2.Http2Server;
  let client: http2.ClientHttp2Session;
  let session: http2.ServerHttp2Session;
  const held: http2.ServerHttp2Stream[] = [];

  beforeEach(async () => {
    held.length = 0;
    collections = new ManualCollections();
    const renewal = new StreamMapRenewal(collections);
    server = http2.createServer();
    server.on("session", (s) => {
      session = s;
      expect(renewal.track(s)).toBe(true);
    });
    server.on("stream", (stream, headers) => {
      stream.respond({ ":status": 200 });
      if (headers[":path"] === "/hold") held.push(stream);
      else stream.end("now");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });

  afterEach(async () => {
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("gives an open session a new map with the same open streams after a full collection", async () => {
    const calls = [request(client, "/hold"), request(client, "/hold"), request(client, "/hold")];
    await until(() => held.length === 3, "three held streams");
    const before = streamMapOf(session);
    const ids = [...before.keys()];
    expect(ids).toHaveLength(3);

    collections.collect();

    const after = streamMapOf(session);
    expect(after).not.toBe(before);
    expect([...after.keys()]).toEqual(ids);
    for (const id of ids) expect(after.get(id)).toBe(before.get(id));

    // node goes on using the new map: a new stream comes and goes, and a held one ends.
    await expect(request(client, "/now").ended).resolves.toBe("now");
    held[0]!.end("first");
    await expect(calls[0]!.ended).resolves.toBe("first");
    await until(() => after.size === 2, "the ended streams to leave the new map");
    expect(before.size).toBe(3);

    // Destroying the session destroys, there and then, the streams node finds in the new map.
    session.destroy();
    expect(held.map((stream) => stream.destroyed)).toEqual([true, true, true]);
  });

  it("renews after every full collection, not once", async () => {
    request(client, "/hold");
    await until(() => held.length === 1, "a held stream");
    const maps = [streamMapOf(session)];
    for (let i = 0; i < 3; i++) {
      collections.collect();
      maps.push(streamMapOf(session));
    }
    expect(new Set(maps).size).toBe(4);
    for (const map of maps.slice(1)) expect([...map.keys()]).toEqual([...maps[0]!.keys()]);
  });

  it("lets a closed session go, and stops listening once no session is open", async () => {
    request(client, "/hold");
    await until(() => held.length === 1, "a held stream");
    expect(collections.subscribers).toBe(1);
    const closed = session;
    const gone = new Promise((resolve) => closed.once("close", resolve));
    closed.destroy();
    await gone;
    expect(collections.subscribers).toBe(0);
    const map = streamMapOf(closed);
    collections.collect();
    expect(streamMapOf(closed)).toBe(map);
  });
});

describe("v8FullCollections", () => {
  it("tells a subscriber of V8's full collections, not of scavenges", () => {
    // A process of its own, started with --expose-gc: forcing a collection inside a test worker
    // would run the finalizers of every other suite's leftovers there.
    const script = `
      const { v8FullCollections } = require("./src/server/stream-map-renewal.ts");
      let calls = 0;
      const stop = v8FullCollections.subscribe(() => calls++);
      gc({ type: "minor" });
      setTimeout(() => {
        const afterScavenge = calls;
        gc();
        setTimeout(() => { stop(); gc(); setTimeout(() => console.log(JSON.stringify({ afterScavenge, afterFull: calls })), 50); }, 50);
      }, 50);`;
    const out = execFileSync(process.execPath, ["--expose-gc", "-r", "tsx/cjs", "-e", script], {
      cwd: path.resolve(__dirname, "../../.."),
      encoding: "utf8",
    });
    // The third collection, after unsubscribing, reaches nobody.
    expect(JSON.parse(out)).toEqual({ afterScavenge: 0, afterFull: 1 });
  });
});
