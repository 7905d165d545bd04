import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { HTTP2_PREFACE, sniffProtocol, startListener, type Listener } from "../../../src/server/listener";

const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
  res.setHeader("content-type", "text/plain");
  res.end(`HTTP/${req.httpVersion} ${req.method} ${req.url}`);
};

/** Writes `bytes` one at a time, waiting for each write to be flushed and a turn of the loop. */
async function writeByteByByte(socket: net.Socket, bytes: Buffer): Promise<void> {
  socket.setNoDelay(true);
  for (const byte of bytes) {
    await new Promise<void>((resolve, reject) => socket.write(Buffer.from([byte]), (err) => (err ? reject(err) : resolve())));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Reads from the socket until `done(bytesSoFar)` says enough. */
function readUntil(socket: net.Socket, done: (bytes: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      if (done(seen)) {
        socket.off("data", onData);
        resolve(seen);
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.once("close", () => resolve(seen));
  });
}

describe("sniffProtocol", () => {
  it("waits while the bytes are a prefix of the HTTP/2 preface", () => {
    for (let n = 1; n < HTTP2_PREFACE.length; n++) {
      expect(sniffProtocol(HTTP2_PREFACE.subarray(0, n))).toBe("undecided");
    }
    expect(sniffProtocol(HTTP2_PREFACE)).toBe("h2");
    expect(sniffProtocol(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])]))).toBe("h2");
  });

  it("decides HTTP/1.1 at the first byte that leaves the preface", () => {
    expect(sniffProtocol(Buffer.from("G"))).toBe("http1");
    expect(sniffProtocol(Buffer.from("POST / HTTP/1.1\r\n"))).toBe("http1");
    // "PRI" is also the start of an (odd) HTTP/1.1 method: only the full preface means HTTP/2.
    expect(sniffProtocol(Buffer.from("PRI / HTTP/1.1"))).toBe("http1");
  });
});

describe("one cleartext port for HTTP/2 and HTTP/1.1", () => {
  let listener: Listener;
  beforeAll(async () => {
    listener = await startListener({ host: "127.0.0.1", port: 0, handler });
  });
  afterAll(() => listener.close(1000));

  it("serves HTTP/2 with prior knowledge", async () => {
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ":path": "/h2" });
      let text = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (text += d));
      req.on("end", () => resolve(text));
      req.on("error", reject);
    });
    session.close();
    expect(body).toBe("HTTP/2.0 GET /h2");
  });

  it("serves HTTP/1.1", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: listener.port, path: "/h1", agent: false }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve(text));
        })
        .on("error", reject);
    });
    expect(body).toBe("HTTP/1.1 GET /h1");
  });

  it("recognizes an HTTP/2 preface that arrives one byte at a time", async () => {
    const socket = await connect(listener.port);
    await writeByteByByte(socket, HTTP2_PREFACE);
    // An empty SETTINGS frame completes the client's connection preface.
    socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
    const reply = await readUntil(socket, (b) => b.length >= 9);
    socket.destroy();
    // The server's first frame is its SETTINGS frame (type 4 on stream 0).
    expect(reply[3]).toBe(4);
    expect(reply.readUInt32BE(5) & 0x7fffffff).toBe(0);
  });

  it("recognizes HTTP/1.1 that arrives one byte at a time, starting like the preface", async () => {
    const socket = await connect(listener.port);
    // "P" is also the preface's first byte: the decision must wait for the second.
    await writeByteByByte(socket, Buffer.from("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    const reply = (await readUntil(socket, () => false)).toString("latin1");
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(reply).toContain("HTTP/1.1 POST /slow");
  });

  it("keeps working for a plain GET split in pieces", async () => {
    const socket = await connect(listener.port);
    await writeByteByByte(socket, Buffer.from("GET /pieces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const reply = (await readUntil(socket, () => false)).toString("latin1");
    expect(reply).toContain("HTTP/1.1 GET /pieces");
  });
});

describe("closing the listener", () => {
  it("releases the port and destroys connections left after the grace period", async () => {
    const listener = await startListener({ host: "127.0.0.1", port: 0, handler: () => undefined });
    const idle = await connect(listener.port);
    const closed = new Promise<void>((resolve) => idle.once("close", () => resolve()));
    await listener.close(100);
    await closed;
    await expect(connect(listener.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
