/**
 * Makes HTTP/2 sessions of sniffed connections (listener.ts) one per turn of the event loop.
 *
 * A sniffed connection's first bytes hold, besides the preface, every request its client sent
 * at once, and its session takes them all in in the turn it is made: node sets up each stream's
 * objects there, before any keypool code can queue the stream (stream-admission.ts). Connections
 * that arrive together are sniffed in one turn, so ten dashboards' connections of a hundred
 * streams each would be a thousand stream set-ups in one turn, during which no other call is
 * answered. One session per turn makes that ten turns of a hundred. The waiting connections use
 * the streams' queue mechanism, one start per turn; only connections the connection guard
 * admitted wait, so its caps bound the queue.
 */
import type * as net from "node:net";
import { StreamAdmission } from "./stream-admission";

export function oneSessionPerTurn(makeSession: (socket: net.Socket) => void): (socket: net.Socket) => void {
  const waiting = new StreamAdmission({ perTurn: 1, maxWaiting: Number.POSITIVE_INFINITY });
  return (socket) => {
    // A reset while it waits emits 'error'; the session listens for it once made.
    socket.on("error", ignore);
    waiting.admit(
      () => {
        socket.off("error", ignore);
        makeSession(socket);
      },
      // A connection that closed while it waited has nothing to serve.
      () => socket.destroyed,
    );
  };
}

function ignore(): void {}
