#!/usr/bin/env python3
"""The port-scanner exercise: which TCP ports of a host accept a connection?

    socketeer serve &
    python3 examples/python/port_scanner.py 127.0.0.1 1-10000
    socketeer scan 127.0.0.1 -p 1-10000 -o list          # the same answer, faster

A connect scan asks the kernel to open a connection to each port. The answer
comes back as one of three things:
- the connection opens: something listens there (open);
- ConnectionRefusedError: the host answered with a reset, nothing listens (closed);
- a timeout: nothing answered at all, a firewall may be dropping the probe (filtered).
Waiting for each port in turn would take hours on a filtered host, so many
threads probe at once, each with a short timeout.
"""

from __future__ import annotations

import argparse
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def parse_ports(spec: str) -> list[int]:
    ports = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"invalid port range {part!r}")
        ports.extend(range(first, last + 1))
    return ports


def probe(host: str, port: int, timeout: float) -> tuple[int, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        # connect_ex returns an error number instead of raising: 0 is success.
        code = s.connect_ex((host, port))
    if code == 0:
        return port, "open"
    if code == 111:  # ECONNREFUSED
        return port, "closed"
    return port, "filtered"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("ports", help="for example 22,80,1000-2000")
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=200)
    args = parser.parse_args()
    try:
        ports = parse_ports(args.ports)
        address = socket.gethostbyname(args.host)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(lambda p: probe(address, p, args.timeout), ports))
    open_ports = [port for port, state in results if state == "open"]
    for port in open_ports:
        print(f"{address}:{port}")
    counts = {state: sum(1 for _, s in results if s == state) for state in ("open", "closed", "filtered")}
    print(f"{len(ports)} ports: {counts['open']} open, {counts['closed']} closed, "
          f"{counts['filtered']} filtered", file=sys.stderr)
    # Like socketeer scan and grep: exit 0 when something was found.
    return 0 if open_ports else 1


if __name__ == "__main__":
    sys.exit(main())
