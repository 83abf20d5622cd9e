#!/usr/bin/env python3
"""The UDP exercise: send several messages in a loop, each in its own datagram.

    socketeer serve &
    python3 examples/python/udp_loop.py client localhost 7007 one two three   # socketeer's UDP echo
    python3 examples/python/udp_loop.py server --port 9081 &                 # the notes' server, in a loop
    python3 examples/python/udp_loop.py client localhost 9081 one two three

UDP keeps message boundaries (one sendto is one recvfrom, never joined or
split) but promises nothing else: a datagram may be lost, duplicated or
reordered. So the client waits for each reply with a timeout instead of
forever. The server needs no listen() or accept(): there are no connections,
and recvfrom() tells it whom to answer.
"""

from __future__ import annotations

import argparse
import socket
import sys


def server(bind: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind, port))
        host, port = s.getsockname()
        print(f"udp udp {host}:{port}", flush=True)
        try:
            while True:
                data, sender = s.recvfrom(65535)
                print(f"{len(data)} bytes from {sender[0]}:{sender[1]}: {data!r}", flush=True)
                s.sendto(b"Acknowledged: " + data, sender)
        except KeyboardInterrupt:
            print("shutting down", flush=True)


def client(host: str, port: int, messages: list[str], timeout: float) -> int:
    server_address = (socket.gethostbyname(host), port)
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for number, text in enumerate(messages, 1):
            s.sendto(text.encode("utf-8"), server_address)
            try:
                reply, sender = s.recvfrom(65535)
            except socket.timeout:
                # Lost on the way there, lost on the way back, or nothing
                # listens: an unconnected UDP socket cannot tell which.
                print(f"message {number}: no reply within {timeout} s")
                continue
            answered += 1
            print(f"message {number}: {reply.decode('utf-8', errors='replace')!r} from {sender[0]}:{sender[1]}")
    print(f"{answered} of {len(messages)} messages answered")
    return 0 if answered == len(messages) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    srv = roles.add_parser("server")
    srv.add_argument("--bind", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=9081)
    cli = roles.add_parser("client")
    cli.add_argument("host")
    cli.add_argument("port", type=int)
    cli.add_argument("messages", nargs="*", default=["one", "two", "three"])
    cli.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    if args.role == "server":
        server(args.bind, args.port)
        return 0
    return client(args.host, args.port, args.messages, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
