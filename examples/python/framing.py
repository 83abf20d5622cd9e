"""Message framing over a TCP stream: the piece every other example here imports.

TCP delivers a stream of bytes, not messages. One send() may arrive split over
several recv() calls, and several send()s may arrive in one. So a program that
talks in messages must mark where each one ends. Two common ways, both here:

- newline framing: every message is a line ending in b"\n" (socketeer's chat,
  SMTP, IRC, Redis's inline commands);
- length prefix: every message starts with its length as a 4-byte big-endian
  number (many binary protocols).

And two helpers every stream reader needs: recv_exactly(), which loops until it
has the bytes it asked for, and the rule that recv() returning b"" means the
other side closed the connection in an orderly way (it is not an error).
"""

from __future__ import annotations

import socket
import struct

# A line longer than this is refused instead of growing the buffer forever:
# a client that never sends b"\n" must not be able to eat the server's memory.
MAX_LINE = 64 * 1024

# The length prefix: 4 bytes, network byte order (big-endian), unsigned.
LENGTH = struct.Struct("!I")


class LineTooLong(Exception):
    """The peer sent more than MAX_LINE bytes without a newline."""


class LineReader:
    """Reads newline-terminated lines from a socket, however the bytes arrive.

    recv() returns whatever has arrived: half a line, or three lines at once.
    The reader keeps what it has not handed out yet in a buffer, so nothing is
    lost between calls.
    """

    def __init__(self, sock: socket.socket, max_line: int = MAX_LINE):
        self.sock = sock
        self.max_line = max_line
        self.buffer = b""

    def read_line(self) -> bytes | None:
        """The next line without its b"\\n" (and without a b"\\r" before it),
        or None once the peer has closed the connection."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > self.max_line:
                raise LineTooLong(f"no newline in {len(self.buffer)} bytes")
            chunk = self.sock.recv(4096)
            if not chunk:
                # An orderly close. Bytes after the last newline are an
                # unfinished line: hand it out rather than drop it silently.
                rest, self.buffer = self.buffer, b""
                return rest or None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.removesuffix(b"\r")

    def __iter__(self):
        while (line := self.read_line()) is not None:
            yield line


def send_line(sock: socket.socket, text: str) -> None:
    """Sends text as one UTF-8 line. sendall(), not send(): send() may write
    only part of the bytes and return how many it took."""
    sock.sendall(text.encode("utf-8") + b"\n")


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    """Exactly count bytes from the stream, in as many recv()s as it takes.

    Raises ConnectionError if the peer closes before they all arrive."""
    parts = []
    remaining = count
    while remaining:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            got = count - remaining
            raise ConnectionError(f"the peer closed the connection after {got} of {count} bytes")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Sends payload after its length, so the reader knows where it ends."""
    sock.sendall(LENGTH.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket, max_size: int = 16 * 1024 * 1024) -> bytes | None:
    """The next length-prefixed frame, or None if the peer closed between frames."""
    first = sock.recv(1)
    if not first:
        return None
    (size,) = LENGTH.unpack(first + recv_exactly(sock, LENGTH.size - 1))
    if size > max_size:
        # Never trust a length from the network before capping it.
        raise ValueError(f"frame of {size} bytes is over the {max_size}-byte limit")
    return recv_exactly(sock, size)


if __name__ == "__main__":
    # A self-check over local socket pairs: lines come out whole however the
    # sender split them, and a frame comes out whole whatever it holds.
    left, right = socket.socketpair()
    left.sendall(b"one\ntw")
    left.sendall(b"o\r\nthree\n")
    left.close()
    print("lines:", list(LineReader(right)))
    left, right = socket.socketpair()
    send_frame(left, b"\x00binary\nwith a newline\xff")
    left.close()
    print("frame:", recv_frame(right), "then", recv_frame(right))
