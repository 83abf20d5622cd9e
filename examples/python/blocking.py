#!/usr/bin/env python3
"""Blocking, timeouts, non-blocking sockets and readiness, against an echo server.

    socketeer serve &
    python3 examples/python/blocking.py localhost 7007
    socketeer lab blocking           # the Rust twin, measured

Sockets block by default: recv() waits until at least one byte has arrived (or
the peer closed), accept() until a client connects, sendall() until every byte
is handed to the kernel. Three ways not to wait forever:
- settimeout(seconds): block at most that long, then raise socket.timeout;
- setblocking(False) (the same as settimeout(0)): never wait; a call that would
  have to wait raises BlockingIOError (EAGAIN) instead;
- selectors/select: ask the kernel which sockets are ready, then call recv()
  only on those. One thread can serve many sockets that way (what asyncio and
  socketeer's tokio servers do underneath).
"""

import argparse
import selectors
import socket
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="localhost")
    parser.add_argument("port", nargs="?", type=int, default=7007, help="an echo server's TCP port")
    args = parser.parse_args()

    with socket.create_connection((args.host, args.port), timeout=3) as s:
        print(f"a new socket's timeout: {socket.socket().gettimeout()} (None: block forever)")

        s.settimeout(0.5)
        started = time.monotonic()
        try:
            s.recv(1024)  # nothing was sent, so nothing comes back
        except socket.timeout:
            print(f"recv() with nothing to read and a 0.5 s timeout: socket.timeout after "
                  f"{time.monotonic() - started:.1f} s")

        s.setblocking(False)
        try:
            s.recv(1024)
        except BlockingIOError as e:
            print(f"recv() on a non-blocking socket with nothing to read: {type(e).__name__} at once "
                  f"(errno {e.errno}, {e.strerror})")

        with selectors.DefaultSelector() as selector:
            selector.register(s, selectors.EVENT_READ)
            print(f"before sending, ready to read: {bool(selector.select(timeout=0))}")
            s.sendall(b"ping")
            events = selector.select(timeout=3)  # sleeps until the echo arrives
            print(f"after sending, ready to read: {bool(events)}; recv() gives {s.recv(1024)!r} without waiting")


if __name__ == "__main__":
    main()
