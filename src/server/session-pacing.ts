/**
 * Makes HTTP/2 sessions of sniffed connections (listener.ts) one per turn of the event loop.
 *
 * A sniffed connection's first bytes hold, besides the preface, every request its client sent
 * at once, and its session takes them all in in the turn it is made: node sets up each stream's
 * objects there, before any keypool code can queue the stream (stream-admission.ts). Connections
 * that arrive together are sniffed in one turn, so ten dashboards' connections of a hundred
 * streams each would be a thousand stream set-ups in one turn, during which no other call is
 * answered. One session per turn makes that ten turns of a hundred. Only connections the
 * connection guard admitted wait here, so its caps bound the queue.
 */
import type * as net from "node:net";

export function oneSessionPerTurn(makeSession: (socket: net.Socket) => void): (socket: net.Socket) => void {
  let waiting: (net.Socket | undefined)[] = [];
  let head = 0;
  const next = () => {
    const socket = waiting[head];
    waiting[head++] = undefined;
    if (head === waiting.length) {
      waiting = [];
      head = 0;
    } else {
      if (head > 1024 && head * 2 > waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      setImmediate(next);
    }
    if (!socket) return;
    socket.off("error", ignore);
    // A connection that closed while it waited has nothing to serve.
    if (!socket.destroyed) makeSession(socket);
  };
  return (socket) => {
    // A reset while it waits emits 'error'; the session listens for it once made.
    socket.on("error", ignore);
    if (waiting.push(socket) - head === 1) setImmediate(next);
  };
}

function ignore(): void {}
