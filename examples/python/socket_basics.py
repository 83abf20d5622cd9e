#!/usr/bin/env python3
"""Socket basics: what a socket is, how names become addresses, and one
exchange over TCP and one over UDP with an echo server.

    socketeer serve &                                   # or: socketeer echo serve
    python3 examples/python/socket_basics.py localhost 7007

A socket is an object the operating system keeps for one end of a conversation.
Its family says which kind of address it uses (AF_INET: IPv4, AF_INET6: IPv6);
its type says how bytes travel (SOCK_STREAM: TCP, a reliable byte stream;
SOCK_DGRAM: UDP, separate datagrams that may be lost).
"""

import argparse
import socket


def show_sockets() -> None:
    """Creating a socket only asks the kernel for one: no traffic yet."""
    for family, kind in [
        (socket.AF_INET, socket.SOCK_STREAM),
        (socket.AF_INET, socket.SOCK_DGRAM),
        (socket.AF_INET6, socket.SOCK_STREAM),
    ]:
        # `with` closes the socket at the end of the block, even after an
        # exception: the descriptor goes back to the kernel.
        with socket.socket(family, kind) as s:
            print(f"socket: {s.family.name} {s.type.name}, file descriptor {s.fileno()}")


def show_names(host: str, port: int) -> None:
    """Names are for people; sockets need addresses. The resolver (the
    /etc/hosts file, then DNS) turns one into the other."""
    print(f"this machine is called {socket.gethostname()!r}")
    print(f"gethostbyname({host!r}) = {socket.gethostbyname(host)}  (IPv4 only)")
    # getaddrinfo is the modern call: every address, IPv4 and IPv6, for a
    # name and port, in the order a client should try them.
    seen = set()
    for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if address not in seen:
            seen.add(address)
            print(f"getaddrinfo({host!r}, {port}) gives {family.name} {address}")


def tcp_exchange(host: str, port: int, message: bytes) -> None:
    """The TCP client's calls, in order: socket, connect, sendall, recv, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)  # never wait forever on a network
        s.connect((host, port))
        me, server = s.getsockname(), s.getpeername()
        # The kernel picked our port (an "ephemeral" port) during connect().
        print(f"tcp: connected from {me[0]}:{me[1]} to {server[0]}:{server[1]}")
        s.sendall(message)
        # recv(n) returns AT MOST n bytes: whatever has arrived. An echo comes
        # back as long as what we sent, so read until we have that much.
        reply = b""
        while len(reply) < len(message):
            chunk = s.recv(4096)
            if not chunk:  # b"": the server closed the connection
                break
            reply += chunk
        print(f"tcp: sent {message!r} and got {reply!r} back")


def udp_exchange(host: str, port: int, message: bytes) -> None:
    """The UDP client's calls: socket, sendto, recvfrom, close. No connection:
    every datagram carries its destination, and recvfrom says who sent one."""
    address = (socket.gethostbyname(host), port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)  # a lost datagram never comes: wait a bounded time
        s.sendto(message, address)
        try:
            reply, sender = s.recvfrom(65535)
        except socket.timeout:
            print("udp: no reply within 1 s (lost, or no server on that port)")
            return
        print(f"udp: got {reply!r} back from {sender}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="localhost")
    parser.add_argument("port", nargs="?", type=int, default=7007, help="an echo server's port (TCP and UDP)")
    args = parser.parse_args()
    show_sockets()
    show_names(args.host, args.port)
    tcp_exchange(args.host, args.port, b"hello, echo")
    udp_exchange(args.host, args.port, b"hello, echo")


if __name__ == "__main__":
    main()
