#!/usr/bin/env python3
"""Why servers set SO_REUSEADDR: restart a server while a connection of its
previous run sits in TIME_WAIT.

    python3 examples/python/reuseaddr.py
    socketeer lab reuseaddr            # the Rust twin, measured

When a TCP connection closes, the side that closed first keeps a TIME_WAIT
entry for about a minute (twice the longest a segment may live in the network),
so that a late segment of the old connection cannot be mistaken for a new one.
A server that closes its clients' connections (the daytime server does, at once)
leaves those entries on its own port. On Linux a new listener cannot bind that
port while they exist, unless it sets SO_REUSEADDR first: "Address already in
use". On Linux the option must be set by the old server (its TIME_WAIT
entries remember it) and by the new one: the same program, restarted. It does
NOT let two servers listen on one port at once.
"""

import socket

TIME_WAIT = "06"  # the state's number in /proc/net/tcp


def time_wait_entries(port: int) -> int:
    with open("/proc/net/tcp") as table:
        next(table)  # the header
        rows = (line.split() for line in table)
        return sum(1 for r in rows if int(r[1].split(":")[1], 16) == port and r[3] == TIME_WAIT)


def serve_one_client(reuse: bool, port: int = 0) -> int:
    """A daytime-like server: accept one client, answer, close first. Returns its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        if reuse:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.sendall(b"the answer\r\n")
            conn.close()  # the server closes first: TIME_WAIT is on its side
            client.recv(64)
    return port


def restart(port: int, reuse: bool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        if reuse:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        label = "with SO_REUSEADDR" if reuse else "without SO_REUSEADDR"
        try:
            server.bind(("127.0.0.1", port))
            server.listen()
            print(f"restart {label}: bound port {port} again")
        except OSError as e:
            print(f"restart {label}: {type(e).__name__} [Errno {e.errno}] {e.strerror}")


def main() -> None:
    for reuse in (False, True):
        label = "with SO_REUSEADDR" if reuse else "without SO_REUSEADDR"
        port = serve_one_client(reuse)
        print(f"a server {label} on port {port} answered one client and stopped; "
              f"TIME_WAIT entries on that port: {time_wait_entries(port)}")
        restart(port, reuse)


if __name__ == "__main__":
    main()
