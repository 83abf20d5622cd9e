#!/usr/bin/env python3
"""The lossy-UDP exercise, with the client's loop done right.

    socketeer udp serve --loss 30% --seed 7 --port 9345 &
    python3 examples/python/lossy_udp.py client localhost 9345 --count 10
    python3 examples/python/lossy_udp.py server --loss 0.3 --seed 7 --port 9346 &
    socketeer udp send localhost:9346 --count 10 --timeout 200ms

The server drops a share of datagrams on purpose and answers the rest with
"ACK: <payload>". The client numbers its messages, waits for each ACK with a
timeout, resends a bounded number of times, and says what got through.

Why each piece:
- Numbers: a late ACK for message 3 must not be taken for the ACK of message 4.
  The client only accepts "ACK: " + exactly what it sent.
- A retry limit: the classic client loops forever when the server is gone.
- The client cannot tell a lost message from a lost ACK: both look like a
  timeout. So the server may see a message twice (at-least-once delivery).
- A seed: random.Random(seed) drops the same datagrams every run, so a run
  can be repeated and compared.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time


def server(bind: str, port: int, loss: float, seed: int | None) -> None:
    chance = random.Random(seed)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind, port))
        host, port = s.getsockname()
        print(f"udp udp {host}:{port} (loss {loss:.0%}, seed {seed})", flush=True)
        try:
            while True:
                data, sender = s.recvfrom(65535)
                if chance.random() < loss:
                    print(f"dropped {data!r} from {sender[0]}:{sender[1]} on purpose", flush=True)
                    continue
                s.sendto(b"ACK: " + data, sender)
        except KeyboardInterrupt:
            print("shutting down", flush=True)


def client(host: str, port: int, count: int, timeout: float, retries: int) -> int:
    server_address = (socket.gethostbyname(host), port)
    first_try = after_retries = lost = sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for number in range(1, count + 1):
            message = f"{number} hello".encode()
            for attempt in range(1, retries + 2):
                s.sendto(message, server_address)
                sent += 1
                if wait_for_ack(s, message, timeout):
                    print(f"message {number}: acked after {attempt} {'try' if attempt == 1 else 'tries'}")
                    if attempt == 1:
                        first_try += 1
                    else:
                        after_retries += 1
                    break
            else:
                lost += 1
                print(f"message {number}: lost after {retries + 1} tries")
    print(f"{count} messages in {sent} datagrams: {first_try} acked on the first try, "
          f"{after_retries} after retries, {lost} lost")
    return 0 if lost == 0 else 1


def wait_for_ack(s: socket.socket, message: bytes, timeout: float) -> bool:
    """Waits up to timeout for the ACK of message; other datagrams (late ACKs
    of earlier messages) are skipped without restarting the clock."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        s.settimeout(remaining)
        try:
            reply, _ = s.recvfrom(65535)
        except socket.timeout:
            return False
        if reply == b"ACK: " + message:
            return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    srv = roles.add_parser("server")
    srv.add_argument("--bind", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=9346)
    srv.add_argument("--loss", type=float, default=0.3, help="share of datagrams to drop, 0 to 1")
    srv.add_argument("--seed", type=int, help="the same seed drops the same datagrams")
    cli = roles.add_parser("client")
    cli.add_argument("host")
    cli.add_argument("port", type=int)
    cli.add_argument("--count", type=int, default=10)
    cli.add_argument("--timeout", type=float, default=0.2, help="seconds to wait for each ACK")
    cli.add_argument("--retries", type=int, default=3, help="resends before a message counts as lost")
    args = parser.parse_args()
    if args.role == "server":
        server(args.bind, args.port, args.loss, args.seed)
        return 0
    return client(args.host, args.port, args.count, args.timeout, args.retries)


if __name__ == "__main__":
    sys.exit(main())
