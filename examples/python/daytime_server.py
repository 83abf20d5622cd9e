#!/usr/bin/env python3
"""A daytime server (RFC 867) and, with --time, a time server (RFC 868), over TCP.

    python3 examples/python/daytime_server.py --port 9013 &
    socketeer daytime get localhost:9013
    python3 examples/python/daytime_server.py --time --port 9037 &
    socketeer daytime get localhost:9037 --time

The simplest request/response server there is: the request IS connecting. The
server writes its answer as soon as it accepts, then closes; closing is how the
client learns that the answer is complete.
"""

import argparse
import socket
import struct
import time
from datetime import datetime

# RFC 868 counts seconds from 1900-01-01; Unix time counts from 1970-01-01.
SECONDS_1900_TO_1970 = 2_208_988_800


def daytime_answer() -> bytes:
    # RFC 867 leaves the format free but asks for one line of ASCII; CRLF ends
    # lines in most Internet protocols.
    now = datetime.now().astimezone()
    return now.strftime("%A, %B %d, %Y %H:%M:%S %z").encode("ascii") + b"\r\n"


def time_answer() -> bytes:
    # Four bytes, big-endian ("!" in struct means network byte order). Not
    # text: a number written as text would need a length or a delimiter.
    seconds = int(time.time()) + SECONDS_1900_TO_1970
    return struct.pack("!I", seconds % 2**32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9013)
    parser.add_argument("--time", action="store_true", help="answer with RFC 868's 4 binary bytes")
    args = parser.parse_args()
    answer = time_answer if args.time else daytime_answer
    name = "time" if args.time else "daytime"

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.bind, args.port))
        server.listen(16)
        host, port = server.getsockname()
        print(f"{name} tcp {host}:{port}", flush=True)
        try:
            while True:
                conn, peer = server.accept()
                with conn:
                    conn.sendall(answer())
                print(f"answered {peer[0]}:{peer[1]}", flush=True)
        except KeyboardInterrupt:
            print("shutting down", flush=True)


if __name__ == "__main__":
    main()
