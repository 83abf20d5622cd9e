#!/usr/bin/env python3
"""A TCP echo server (RFC 862) with a thread per client.

    python3 examples/python/echo_server.py --port 9000 &
    socketeer echo send localhost:9000 hello
    socketeer echo ping localhost:9000 --count 3 --size 4KiB

The server's calls, in order: socket, setsockopt(SO_REUSEADDR), bind, listen,
then accept in a loop. accept() blocks until a client connects and returns a NEW
socket for that client, plus the client's address; the listening socket stays
open for the next one. Each client gets a thread, so a slow client never holds
up the others.
"""

import argparse
import socket
import threading


def serve_client(conn: socket.socket, peer: tuple) -> None:
    # `with conn` closes the client's socket however this function ends.
    with conn:
        total = 0
        while True:
            try:
                data = conn.recv(1024)  # at most 1024 bytes: whatever has arrived
            except ConnectionResetError:
                print(f"{peer[0]}:{peer[1]} reset the connection after {total} bytes", flush=True)
                return
            if not data:
                # recv() returned b"": the client closed its side in an orderly
                # way (it sent FIN). Not an error: the conversation is over.
                print(f"{peer[0]}:{peer[1]} closed after {total} bytes", flush=True)
                return
            total += len(data)
            # sendall loops until every byte is written; send() might not.
            conn.sendall(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1", help="127.0.0.1: this machine only; 0.0.0.0: every interface")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        # Without SO_REUSEADDR a restarted server fails with "Address already in
        # use" while connections of its previous run sit in TIME_WAIT.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.bind, args.port))
        # The backlog: connections the kernel completes and queues for us
        # before we call accept(). They wait there; they are not refused.
        server.listen(128)
        host, port = server.getsockname()
        print(f"echo tcp {host}:{port}", flush=True)
        try:
            while True:
                conn, peer = server.accept()  # blocks until a client connects
                print(f"connected by {peer[0]}:{peer[1]}", flush=True)
                threading.Thread(target=serve_client, args=(conn, peer), daemon=True).start()
        except KeyboardInterrupt:
            print("shutting down", flush=True)


if __name__ == "__main__":
    main()
