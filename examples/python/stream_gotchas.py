#!/usr/bin/env python3
"""The stream gotchas, shown against real servers: messages join and split,
recv() returning b"" is an orderly close, and sockets carry bytes, not text.

    socketeer serve &
    python3 examples/python/stream_gotchas.py localhost --echo-port 7007 --daytime-port 1313

Every line this prints is a fact about TCP, whatever the timing: the sizes of
the pieces may differ from run to run, the bytes never do.
"""

import argparse
import codecs
import socket
import struct
import time


def joined(host: str, port: int) -> None:
    """Three sends, then one recv."""
    with socket.create_connection((host, port), timeout=3) as s:
        sent = [b"msg1\n", b"msg2\n", b"msg3\n"]
        for message in sent:
            s.sendall(message)
        # Give all three echoes time to arrive, as happens whenever a program
        # is busy elsewhere before it reads.
        time.sleep(0.2)
        first = s.recv(512)
        rest = b""
        while len(first) + len(rest) < 15:
            rest += s.recv(512)
        print(f"3 sends of 5 bytes; the first recv(512) returned {first!r}")
        print(f"the message boundaries are gone, the bytes are all there in order: {first + rest == b''.join(sent)}")


def split(host: str, port: int) -> None:
    """One send of 4 KiB, then recv(1024) until it is all back."""
    with socket.create_connection((host, port), timeout=3) as s:
        message = bytes(range(256)) * 16
        s.sendall(message)
        pieces = []
        while sum(pieces) < len(message):
            pieces.append(len(s.recv(1024)))
        print(f"1 send of {len(message)} bytes came back in {len(pieces)} recv(1024) calls: {pieces}")
        print("so one recv() is never 'one message': delimit messages yourself (see framing.py)")


def orderly_close(host: str, port: int) -> None:
    """The daytime server sends one line, then closes its side."""
    with socket.create_connection((host, port), timeout=3) as s:
        line = b""
        while chunk := s.recv(1024):
            line += chunk
        print(f"daytime sent {line!r}, then recv() returned b'': the server closed, as it should")
        again = [s.recv(1024) for _ in range(3)]
        print(f"recv() after the close keeps returning {again[0]!r} at once ({len(again)} more calls):")
        print("a loop that ignores b'' never blocks again and spins on the CPU")


def reset() -> None:
    """An abort is different from a close: the peer's recv() raises."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN:
        # what a crashed program or an impatient firewall does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        try:
            data = server_side.recv(1024)
            print(f"after a reset recv() returned {data!r}")
        except ConnectionResetError as e:
            print(f"after a reset recv() raised {type(e).__name__}: that is the error case, b'' is not")
        server_side.close()


def text_and_bytes() -> None:
    text = "café au lait"
    utf8, latin1 = text.encode("utf-8"), text.encode("latin-1")
    print(f"{text!r} is {len(text)} characters, {len(utf8)} bytes in UTF-8 {utf8!r} and {len(latin1)} in Latin-1 {latin1!r}")
    try:
        latin1.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"Latin-1 bytes read as UTF-8: {e.reason} at byte {e.start}")
    # A character split across two recv()s: decoding each piece on its own
    # fails, an incremental decoder waits for the rest of the character.
    first, second = utf8[:4], utf8[4:]
    try:
        first.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"decoding {first!r} alone fails: {e.reason}")
    decoder = codecs.getincrementaldecoder("utf-8")()
    print(f"an incremental decoder gives {decoder.decode(first)!r} then {decoder.decode(second)!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="localhost")
    parser.add_argument("--echo-port", type=int, default=7007)
    parser.add_argument("--daytime-port", type=int, default=1313)
    args = parser.parse_args()
    joined(args.host, args.echo_port)
    split(args.host, args.echo_port)
    orderly_close(args.host, args.daytime_port)
    reset()
    text_and_bytes()


if __name__ == "__main__":
    main()
