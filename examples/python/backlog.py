#!/usr/bin/env python3
"""What happens if no connection request is received? And its twin: what
happens to clients when a server listens but never accepts?

    python3 examples/python/backlog.py
    socketeer lab backlog            # the Rust twin, measured

1. accept() blocks: with no client, it waits forever, and the process sleeps
   (no CPU) until one comes. settimeout() bounds the wait (socket.timeout);
   setblocking(False) makes accept() return at once (BlockingIOError) when no
   connection is waiting.
2. The kernel, not the program, completes TCP handshakes. listen(backlog) sets
   how many completed connections may wait for accept(). Clients up to that
   number connect at once, even though the program never called accept(); past
   it, the kernel drops their connection requests and they wait, then time out.
"""

import argparse
import socket
import time


def no_client(timeout: float) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(timeout)
        started = time.monotonic()
        try:
            server.accept()
        except socket.timeout:
            print(f"accept() with no client: gave up after {time.monotonic() - started:.1f} s "
                  f"(the timeout; without one it waits forever)")
        server.setblocking(False)
        try:
            server.accept()
        except BlockingIOError as e:
            print(f"non-blocking accept() with no client: {type(e).__name__} at once ({e.strerror})")


def never_accepts(backlog: int, timeout: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(backlog)
        address = server.getsockname()
        clients = []
        try:
            for n in range(1, backlog + 10):
                client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                client.settimeout(timeout)
                clients.append(client)
                try:
                    client.connect(address)
                except socket.timeout:
                    print(f"listen({backlog}) and no accept(): {n - 1} clients connected; "
                          f"client {n} got no answer within {timeout} s (the queue was full)")
                    break
            else:
                print(f"listen({backlog}): all {len(clients)} clients connected (the kernel queued more)")
            server.settimeout(0)
            accepted = 0
            while True:
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    break
                accepted += 1
                conn.close()
            print(f"the connections were waiting in the queue: accept() now returns {accepted} of them at once")
        finally:
            for client in clients:
                client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    no_client(args.timeout)
    never_accepts(args.backlog, args.timeout)


if __name__ == "__main__":
    main()
