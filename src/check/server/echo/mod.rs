//! The echo cases (RFC 862): every byte sent comes back, over TCP on the
//! same connection, over UDP as the same datagram to its sender.

mod tcp;
mod udp;

use super::{Ctx, Planned, Probe as ServerProbe};
use crate::check::case::{Case, Finding, Group};
use crate::net::{Transport, Transports};

/// What an echo case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// One TCP connection sends `message` in one write.
    TcpOnce {
        /// The bytes.
        message: &'static [u8],
    },
    /// One TCP connection sends `size` bytes of text while reading the echo.
    TcpLarge {
        /// How many bytes.
        size: usize,
    },
    /// One TCP connection sends `message` one byte per write.
    TcpTrickle {
        /// The bytes.
        message: &'static [u8],
        /// The pause between bytes, in milliseconds.
        gap_ms: u64,
    },
    /// `count` connections at once, each sending one message.
    TcpClients {
        /// How many.
        count: usize,
    },
    /// A client resets mid-message; two more must be served.
    TcpReset,
    /// A client sends, half-closes, and reads to the end.
    TcpHalfClose,
    /// `count` connections one after another.
    TcpSequential {
        /// How many.
        count: usize,
    },
    /// Clients leave; the server must go quiet.
    TcpIdleCpu,
    /// `count` connections one after another; then no zombie children.
    TcpReaps {
        /// How many.
        count: usize,
    },
    /// One datagram: `message`, repeated to `size` bytes when that is longer.
    UdpOnce {
        /// The bytes.
        message: &'static [u8],
        /// The datagram's length, when more than the message's.
        size: usize,
    },
    /// Datagrams of several sizes in a burst.
    UdpBoundaries,
    /// `count` datagrams back to back.
    UdpBurst {
        /// How many.
        count: usize,
    },
    /// Two clients in turns.
    UdpInterleaved,
}

impl Probe {
    /// TCP or UDP.
    pub fn transport(&self) -> Transport {
        match self {
            Probe::UdpOnce { .. } | Probe::UdpBoundaries | Probe::UdpBurst { .. } | Probe::UdpInterleaved => {
                Transport::Udp
            }
            _ => Transport::Tcp,
        }
    }
}

/// The 1 MiB case's size.
const MIB: usize = 1024 * 1024;

/// The TCP cases.
pub const TCP: [(Case, Probe); 10] = [
    (
        Case::required(
            "echo.tcp.roundtrip",
            Group::Correct,
            "one message comes back unchanged",
            "b'hello, echo\\n' on a new connection",
            "the same 12 bytes back on that connection",
            "An echo server sends back every byte it receives, on the same connection: accept() the \
             client, recv() what it sends and sendall() it back.",
            "echo",
        ),
        Probe::TcpOnce { message: b"hello, echo\n" },
    ),
    (
        Case::required(
            "echo.tcp.1mib",
            Group::Correct,
            "a 1 MiB message comes back whole",
            "1 MiB of text in one sendall(), read back while it is being sent",
            "all 1,048,576 bytes back, in order",
            "TCP is a stream of bytes, not of messages: one recv(1024) returns at most 1024 bytes, \
             however much the client sent at once, and often fewer than asked for. Call recv() in a \
             loop and send back each piece, until recv() returns b'' (the client has closed): only b'' \
             means the end, a short read does not.",
            "tcp-is-a-stream",
        ),
        Probe::TcpLarge { size: MIB },
    ),
    (
        Case::required(
            "echo.tcp.trickle",
            Group::Correct,
            "a message sent one byte at a time comes back whole",
            "b'trickled one byte at a time\\n', one byte per send(), 20 ms apart",
            "all 28 bytes back",
            "A message can arrive in pieces: the first recv() may return just b't'. A server that \
             answers after one recv() and closes echoes only the first piece. Keep receiving until \
             the client closes.",
            "tcp-is-a-stream",
        ),
        Probe::TcpTrickle { message: b"trickled one byte at a time\n", gap_ms: 20 },
    ),
    (
        Case::required(
            "echo.tcp.coalesced",
            Group::Correct,
            "two messages sent together both come back",
            "b'first message\\nsecond message\\n' in one send() (one TCP segment)",
            "all 29 bytes back",
            "TCP does not keep the boundaries between sends: two messages can arrive in one recv(). \
             Echo every byte you receive, not only the first line or the first message.",
            "tcp-is-a-stream",
        ),
        Probe::TcpOnce { message: b"first message\nsecond message\n" },
    ),
    (
        Case::required(
            "echo.tcp.binary",
            Group::Correct,
            "NUL and non-UTF-8 bytes come back unchanged",
            "b'\\x00\\xff\\xfe raw \\x00 bytes \\x80\\r\\n'",
            "the same 19 bytes back",
            "Sockets carry bytes, not text. data.decode() raises UnicodeDecodeError on bytes that are \
             not UTF-8; an echo server must send back the bytes it received without decoding them \
             (decode only to print, with errors='replace').",
            "bytes-not-text",
        ),
        Probe::TcpOnce { message: b"\x00\xff\xfe raw \x00 bytes \x80\r\n" },
    ),
    (
        Case::required(
            "echo.tcp.clients.10",
            Group::Concurrent,
            "10 clients connected at once are all served",
            "10 connections opened together, then one message on each, the last one first",
            "every client gets its echo while the others stay connected",
            "A server that serves one connection at a time (accept(), serve that client until it \
             leaves, then accept() again) leaves every other client waiting with its data unread. \
             Serve each client in its own thread, threading.Thread(target=handle, args=(conn,)), so \
             that the loop is back in accept() at once.",
            "one-client-at-a-time",
        ),
        Probe::TcpClients { count: 10 },
    ),
    (
        Case::required(
            "echo.tcp.clients.50",
            Group::Concurrent,
            "50 clients connected at once are all served",
            "50 connections opened together, then one message on each, the last one first",
            "every client gets its echo while the others stay connected",
            "With 50 clients waiting, a server that serves one at a time also overflows its listen \
             queue (listen(5) holds about 5 connections nobody has accepted yet), so some clients \
             cannot even connect. A thread per client keeps accept() running.",
            "one-client-at-a-time",
        ),
        Probe::TcpClients { count: 50 },
    ),
    (
        Case::required(
            "echo.tcp.reset",
            Group::Robust,
            "a client that resets mid-message does not take the server down",
            "half a message, then a reset (RST) instead of a normal close; then two new clients",
            "both new clients get their echo",
            "A client can vanish at any moment (a crash, Ctrl-C, a lost network). The server then \
             gets ConnectionResetError from recv() or BrokenPipeError from send(). Catch OSError \
             around each client's work, close that connection, and keep serving the others.",
            "resets",
        ),
        Probe::TcpReset,
    ),
    (
        Case::required(
            "echo.tcp.half-close",
            Group::Robust,
            "a client that half-closes gets its echo, then the end",
            "a message, then shutdown(SHUT_WR): 'I have finished sending'",
            "the whole message back, then the server closes its side too",
            "recv() returning b'' means the client has finished sending, not that it stopped \
             listening. Send back what you still owe, then close the connection: your close is how \
             the client knows the echo is complete.",
            "eof",
        ),
        Probe::TcpHalfClose,
    ),
    (
        Case::required(
            "echo.tcp.sequential.1000",
            Group::Robust,
            "1,000 connections one after another",
            "1,000 connections in turn, each sending one message and closing",
            "every one echoed; with -- COMMAND, the server's open files back near where they started",
            "Every accept() returns a new socket, which holds a file descriptor until it is closed. \
             A server that never closes them (keeping them in a list, say) leaks one per client and \
             stops accepting at its limit (often 1024). Close each connection when its client leaves; \
             `with conn:` does it for you.",
            "closing-sockets",
        ),
        Probe::TcpSequential { count: 1000 },
    ),
];

/// The TCP cases that need the PID, apart so that the table reads in order.
pub const TCP_PID: [(Case, Probe); 2] = [TCP_IDLE, TCP_REAPS];

const TCP_IDLE: (Case, Probe) = (
    Case::required(
        "echo.tcp.idle-cpu",
        Group::Robust,
        "the server sleeps once its clients have left",
        "three clients each send a message and close (the last after a half-close); then silence",
        "the server uses (almost) no CPU for the next second (read from /proc; needs -- COMMAND)",
        "Once a client has closed, recv() returns b'' at once, every time it is called. A loop \
         without `if not data: break` spins on it forever, burning a CPU for every client that ever \
         left.",
        "eof",
    ),
    Probe::TcpIdleCpu,
);

const TCP_REAPS: (Case, Probe) = (
    Case::required(
        "echo.tcp.reaps",
        Group::Robust,
        "child processes that end are reaped",
        "50 connections in turn, each sending one message and closing",
        "no zombie processes left in the server's process group (read from /proc; needs -- COMMAND)",
        "A server that fork()s a child per client must wait for each child that ends: until the \
         parent calls os.waitpid() (or sets signal.signal(signal.SIGCHLD, signal.SIG_IGN)), the \
         kernel keeps the child as a zombie, one per client, until the process table is full.",
        "zombies",
    ),
    Probe::TcpReaps { count: 50 },
);

/// The UDP cases.
pub const UDP: [(Case, Probe); 6] = [
    (
        Case::required(
            "echo.udp.roundtrip",
            Group::Correct,
            "one datagram comes back unchanged",
            "the datagram b'hello, udp echo'",
            "the same datagram back, to the port it came from",
            "A UDP echo server answers each datagram with sendto(data, addr), where addr is the \
             address recvfrom() returned with it.",
            "udp-datagrams",
        ),
        Probe::UdpOnce { message: b"hello, udp echo", size: 0 },
    ),
    (
        Case::required(
            "echo.udp.1-byte",
            Group::Correct,
            "a 1-byte datagram comes back",
            "the datagram b'x'",
            "the datagram b'x' back",
            "Send back exactly the bytes received: nothing added (a newline), nothing removed \
             (strip()), nothing skipped because it looks too short.",
            "udp-datagrams",
        ),
        Probe::UdpOnce { message: b"x", size: 0 },
    ),
    (
        Case::required(
            "echo.udp.max",
            Group::Correct,
            "a 65,507-byte datagram comes back whole",
            "one datagram of 65,507 bytes, the most an IPv4 datagram can carry",
            "the same 65,507 bytes back in one datagram",
            "recvfrom(1024) returns at most 1024 bytes of a datagram and throws the rest away: UDP \
             does not keep it for the next call as TCP would. Receive with a buffer as large as the \
             largest datagram you accept: recvfrom(65535).",
            "udp-datagrams",
        ),
        Probe::UdpOnce { message: b"the largest datagram ", size: crate::net::MAX_UDP_PAYLOAD },
    ),
    (
        Case::required(
            "echo.udp.boundaries",
            Group::Correct,
            "three datagrams come back as three",
            "datagrams of 10, 300 and 1,200 bytes in a burst",
            "three datagrams back, of the same sizes and bytes",
            "UDP keeps message boundaries: one sendto() is one recvfrom(). Answer each datagram with \
             one datagram holding all of its bytes.",
            "udp-datagrams",
        ),
        Probe::UdpBoundaries,
    ),
    (
        Case::required(
            "echo.udp.burst",
            Group::Correct,
            "a burst of 50 datagrams is answered",
            "50 datagrams of 100 bytes, back to back",
            "all 50 back (45 or more is a warning: UDP may drop some)",
            "A UDP server answers datagrams in a loop for as long as it runs. One that answers the \
             first datagram and then exits or closes its socket serves one client, once.",
            "udp-datagrams",
        ),
        Probe::UdpBurst { count: 50 },
    ),
    (
        Case::required(
            "echo.udp.interleaved",
            Group::Concurrent,
            "two clients taking turns each get their own replies",
            "clients A and B send 5 datagrams each, in turns",
            "A gets back exactly A's 5, and B exactly B's 5",
            "UDP has no connections: each datagram says who sent it (recvfrom() returns the data \
             and the address). Reply to the address that came with that datagram, not to the first \
             client you saw or a fixed port.",
            "udp-reply-address",
        ),
        Probe::UdpInterleaved,
    ),
];

/// The cases for `transports`, TCP first.
pub fn plan(transports: Transports) -> Vec<Planned> {
    let tcp = TCP.iter().chain(&TCP_PID).filter(|_| transports.tcp);
    let udp = UDP.iter().filter(|_| transports.udp);
    tcp.chain(udp).map(|&(case, probe)| Planned::new(case, ServerProbe::Echo(probe))).collect()
}

/// Runs one echo probe.
pub async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    match probe.transport() {
        Transport::Tcp => tcp::run(probe, ctx).await,
        Transport::Udp => udp::run(probe, ctx).await,
    }
}
