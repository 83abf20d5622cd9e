#!/usr/bin/env python3
"""A daytime client (RFC 867) and, with --time, a time client (RFC 868).

    socketeer serve &
    python3 examples/python/daytime_client.py localhost 1313
    python3 examples/python/daytime_client.py localhost 3737 --time

The server sends its answer and closes the connection, so the client reads
until recv() returns b"" (the server's orderly close): one recv(1024) happens to
work on loopback, but nothing promises that the whole answer arrives at once.
"""

import argparse
import socket
import struct
import sys
from datetime import datetime, timezone

SECONDS_1900_TO_1970 = 2_208_988_800


def read_until_closed(sock: socket.socket, limit: int = 4096) -> bytes:
    data = b""
    while chunk := sock.recv(1024):
        data += chunk
        if len(data) > limit:
            raise ValueError(f"more than {limit} bytes: this is not a daytime server")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="localhost")
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--time", action="store_true", help="speak RFC 868: 4 bytes, seconds since 1900")
    args = parser.parse_args()
    port = args.port or (3737 if args.time else 1313)

    try:
        with socket.create_connection((args.host, port), timeout=3) as sock:
            answer = read_until_closed(sock)
    except ConnectionRefusedError:
        print(f"nothing listens on {args.host}:{port} (connection refused)", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{args.host}:{port}: {e}", file=sys.stderr)
        return 1

    if args.time:
        if len(answer) != 4:
            print(f"expected 4 bytes, got {len(answer)}: {answer!r}", file=sys.stderr)
            return 1
        (since_1900,) = struct.unpack("!I", answer)
        when = datetime.fromtimestamp(since_1900 - SECONDS_1900_TO_1970, timezone.utc)
        print(f"{answer.hex(' ')} = {since_1900} seconds since 1900 = {when:%Y-%m-%d %H:%M:%S} UTC")
    else:
        # Bytes on the wire, text on the screen: decode says which encoding
        # the bytes are in.
        print(answer.decode("ascii", errors="replace").rstrip("\r\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
