#!/usr/bin/env python3
"""The course's closing challenge: a multithreaded TCP server that broadcasts
every client's messages to all the other clients.

    python3 examples/python/broadcast_server.py --port 9055 &
    socketeer chat join localhost:9055 --nick alice      # or: nc localhost 9055

The design, and why:
- One thread per client reads its lines (newline framing: see framing.py).
- The set of connected clients is shared by every thread, so it is only
  touched under a Lock: the critical sections are adding, removing and taking
  a snapshot of the set. Sending happens OUTSIDE the lock.
- Each client has its own bounded outbox and a writer thread. Sending to one
  client that has stopped reading blocks once its socket buffer is full; with
  sendall() under the lock, that one client would freeze the whole room. Here
  only its own outbox fills up, and when it is full the client is dropped.
"""

from __future__ import annotations

import argparse
import queue
import socket
import threading

from framing import LineReader, LineTooLong

# Lines waiting for one client before it counts as too slow and is dropped.
OUTBOX_LINES = 256


class Client:
    def __init__(self, conn: socket.socket, name: str):
        self.conn = conn
        self.name = name
        self.outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=OUTBOX_LINES)

    def deliver(self, line: bytes) -> None:
        try:
            self.outbox.put_nowait(line)
        except queue.Full:
            # Too slow: cut it off. Its reader sees the shutdown and cleans up.
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def write_until_told_to_stop(self) -> None:
        while (line := self.outbox.get()) is not None:
            try:
                self.conn.sendall(line)
            except OSError:
                return


class Room:
    def __init__(self):
        self.lock = threading.Lock()
        self.clients: set[Client] = set()

    def join(self, client: Client) -> int:
        with self.lock:
            self.clients.add(client)
            return len(self.clients) - 1

    def leave(self, client: Client) -> None:
        with self.lock:
            self.clients.discard(client)

    def broadcast(self, line: str, sender: Client | None = None) -> None:
        # Copy the set under the lock, deliver outside it: a client joining or
        # leaving meanwhile cannot break the loop, and no one waits on a send.
        with self.lock:
            others = [c for c in self.clients if c is not sender]
        data = (line + "\n").encode("utf-8")
        for client in others:
            client.deliver(data)


def serve_client(room: Room, conn: socket.socket, peer: tuple) -> None:
    client = Client(conn, f"{peer[0]}:{peer[1]}")
    writer = threading.Thread(target=client.write_until_told_to_stop, daemon=True)
    writer.start()
    others = room.join(client)
    client.deliver(f"*** welcome, {client.name}; {others} others here; 'bye' leaves\n".encode())
    room.broadcast(f"*** {client.name} joined", sender=client)
    print(f"{client.name} joined", flush=True)
    reason = "left"
    try:
        for raw in LineReader(conn, max_line=4096):
            text = raw.decode("utf-8", errors="replace")
            if text.strip().lower() == "bye":
                break
            room.broadcast(f"<{client.name}> {text}", sender=client)
    except LineTooLong:
        reason = "sent a line that is too long"
    except OSError:
        reason = "lost its connection"
    room.leave(client)
    room.broadcast(f"*** {client.name} {reason}")
    print(f"{client.name} {reason}", flush=True)
    try:
        client.outbox.put(None, timeout=1)  # the writer sends what is queued, then stops
    except queue.Full:
        pass  # a client too slow to empty its outbox gets no more
    writer.join(timeout=2)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9055)
    args = parser.parse_args()
    room = Room()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.bind, args.port))
        listener.listen(128)
        host, port = listener.getsockname()
        print(f"chat tcp {host}:{port}", flush=True)
        try:
            while True:
                conn, peer = listener.accept()
                threading.Thread(target=serve_client, args=(room, conn, peer), daemon=True).start()
        except KeyboardInterrupt:
            print("shutting down", flush=True)


if __name__ == "__main__":
    main()
