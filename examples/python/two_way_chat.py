#!/usr/bin/env python3
"""A two-way chat that works: newline framing, and no lock-step.

    python3 examples/python/two_way_chat.py server --port 9055      # one terminal
    python3 examples/python/two_way_chat.py client localhost 9055   # another
    python3 examples/python/two_way_chat.py client localhost 5555   # or socketeer's chat

Two fixes to the classic version, where each side does recv(1024), then
input(), then send(), in turn:

1. Framing. TCP does not keep messages apart, so every message is one line
   ending in "\\n", and a LineReader puts the lines back together whatever
   pieces the stream delivered. Without it, two quick messages arrive as one
   ("hellohow are you"), and a real line-based server relays nothing at all,
   because it waits for the newline that never comes.
2. No lock-step. Waiting in recv() until the other side speaks, then in
   input() until you do, hangs as soon as someone says two things in a row or
   the server speaks first (socketeer's chat greets you). Here one thread
   prints whatever arrives while the main thread sends what you type.

Either side ends its part by typing "bye" or closing its input (Ctrl-D);
the program ends when the other side closes the connection.
"""

import argparse
import socket
import sys
import threading

from framing import LineReader, send_line

# After our input ends, how long to wait for the other side to close.
LINGER_SECONDS = 5


def converse(sock: socket.socket, them: str) -> None:
    peer_closed = threading.Event()

    def receive() -> None:
        try:
            for line in LineReader(sock):
                print(f"{them}: {line.decode('utf-8', errors='replace')}", flush=True)
        except OSError as e:
            print(f"connection error: {e}", flush=True)
        # The loop ends when recv() returns b"": the other side closed.
        print(f"{them} closed the connection", flush=True)
        peer_closed.set()

    def send() -> None:
        try:
            for line in sys.stdin:
                text = line.rstrip("\r\n")
                send_line(sock, text)
                if text.strip().lower() == "bye":
                    break
            # Half-close: "I have nothing more to say" (the other side's recv()
            # returns b""), while we can still read what it says.
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side is gone; the receiver says so
        # Our input has ended: give the other side a moment to close, then go.
        peer_closed.wait(LINGER_SECONDS)
        peer_closed.set()

    # Daemon threads: the program ends when the other side closes, even while
    # the sender still waits for a line you never type.
    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=send, daemon=True).start()
    peer_closed.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server", help="wait for one client, then chat with it")
    server.add_argument("--bind", default="127.0.0.1")
    server.add_argument("--port", type=int, default=9055)
    client = roles.add_parser("client", help="connect to a server and chat")
    client.add_argument("host")
    client.add_argument("port", type=int)
    args = parser.parse_args()

    if args.role == "server":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((args.bind, args.port))
            listener.listen(1)
            host, port = listener.getsockname()
            print(f"chat tcp {host}:{port}", flush=True)
            conn, peer = listener.accept()
        print(f"client connected from {peer[0]}:{peer[1]}", flush=True)
        with conn:
            converse(conn, "client")
    else:
        with socket.create_connection((args.host, args.port), timeout=5) as sock:
            sock.settimeout(None)  # the timeout was for connecting; chat waits for people
            print(f"connected to {args.host}:{args.port}; type lines, 'bye' or Ctrl-D to leave", flush=True)
            converse(sock, "server")


if __name__ == "__main__":
    main()
