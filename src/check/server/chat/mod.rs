//! The broadcast-chat cases, the course's closing challenge: a server that
//! relays every line a client sends to all the other clients.
//!
//! Student servers format relayed lines as they like, so every line the
//! grader sends carries a token (see [`crate::check::grade::chat`]) and the
//! judging looks for tokens, not for a line format. Before a case talks,
//! its clients wait until the server relays to all of them (see
//! `member::settle`): a server adds a client to its list some time after
//! accepting it.

mod drive;
mod member;

use super::{Ctx, Planned, Probe as ServerProbe};
use crate::check::case::{Case, Finding, Group};

/// How the server greets a new client, learned by the first client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// It sends something before the client says anything.
    pub greets: bool,
    /// What it sends asks for a name, so the client answers with one first.
    pub asks_name: bool,
}

/// What a chat case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Two clients, a line each way.
    Pair,
    /// Does the sender hear itself?
    SelfEcho,
    /// Many lines from one client, in order.
    Order {
        /// How many lines.
        lines: usize,
    },
    /// A line of non-ASCII text.
    Utf8,
    /// A line sent in pieces.
    Split,
    /// Two lines in one segment, then a third.
    Coalesced,
    /// Many clients talking at once.
    Crowd {
        /// How many clients.
        clients: u8,
        /// How many lines each says.
        lines: usize,
    },
    /// A client joins after the others have talked.
    LateJoin,
    /// A client leaves (or resets), the others go on.
    Leave {
        /// Leave with a reset instead of a close.
        reset: bool,
    },
    /// One client stops reading while another floods.
    SlowReader,
    /// Clients leave; the server must go quiet.
    IdleCpu,
}

/// The cases, in order.
pub const CASES: [(Case, Probe); 13] = [
    (
        Case::required(
            "chat.clients.2",
            Group::Correct,
            "a line from one client reaches the other, once",
            "client 1 says a line, then client 2 does",
            "each gets the other's line exactly once",
            "The challenge's server relays every line a client sends to all the other clients. Keep \
             the connected sockets in a shared list and, for each line received, sendall() it to every \
             socket in the list (except, usually, the sender's).",
            "chat-broadcast",
        ),
        Probe::Pair,
    ),
    (
        Case::required(
            "chat.self",
            Group::Correct,
            "whether a sender hears its own lines (a property)",
            "client 1 says 3 lines",
            "client 2 gets them; whether client 1 does too is reported, and judged only with --expect-self",
            "Some chats send each line back to its sender as well, others do not; either is fine unless \
             the assignment says which. To change it, look at the test in your broadcast loop \
             (`if sock is not sender`).",
            "chat-broadcast",
        ),
        Probe::SelfEcho,
    ),
    (
        Case::required(
            "chat.order",
            Group::Correct,
            "15 lines arrive once each, in the order sent",
            "client 1 says 15 lines as fast as it can",
            "clients 2 and 3 each get all 15, once each, in order",
            "TCP keeps the order within a connection, so a server that relays each line as it reads it \
             keeps it too. Lines go missing or come twice when the server cuts what recv() returned in \
             the wrong places, or relays the same data from two threads.",
            "chat-broadcast",
        ),
        Probe::Order { lines: 15 },
    ),
    (
        Case::required(
            "chat.utf8",
            Group::Correct,
            "UTF-8 text passes intact",
            "a line with é, ö, ✓, 日本語 and 🎉",
            "the same characters, byte for byte",
            "Text travels as bytes: encode('utf-8') before sending and decode('utf-8') once a whole line \
             has arrived. Decoding each recv() piece on its own breaks a character cut between two \
             pieces, and another encoding (latin-1) garbles it.",
            "bytes-not-text",
        ),
        Probe::Utf8,
    ),
    (
        Case::required(
            "chat.split",
            Group::Correct,
            "a line sent in pieces arrives whole",
            "one line in three send() calls, 100 ms apart, the second cut inside the two bytes of ö",
            "client 2 gets it as one line, ö intact",
            "recv() returns whatever has arrived, which can be part of a line, or part of a character. \
             A chat server collects bytes until the newline and relays complete lines: keep a buffer of \
             bytes per client and decode a line only once it is whole, or read with \
             conn.makefile('r', encoding='utf-8').readline().",
            "chat-framing",
        ),
        Probe::Split,
    ),
    (
        Case::required(
            "chat.coalesced",
            Group::Correct,
            "two lines in one segment arrive as two lines",
            "two lines in one send() (one TCP segment), then a third line",
            "three lines, each on a line of its own and marked as the sender's like the others",
            "One recv() can return two lines at once. Relaying that chunk as one message loses the \
             sender's name on the second line, and a server that strips the newline without adding one \
             back runs lines together. Split what you receive at each \\n and relay each line with its \
             own ending.",
            "chat-framing",
        ),
        Probe::Coalesced,
    ),
    (
        Case::required(
            "chat.clients.10",
            Group::Concurrent,
            "10 clients talking at once all hear each other",
            "10 clients each say 2 lines at the same time",
            "each client gets the other 18 lines, once each, in each sender's order",
            "Each client needs a thread of its own (or the server needs select()) so that everyone is \
             listened to at once, and the shared list of clients needs a lock (threading.Lock) while \
             it is changed or walked.",
            "chat-broadcast",
        ),
        Probe::Crowd { clients: 10, lines: 2 },
    ),
    (
        Case::required(
            "chat.clients.50",
            Group::Concurrent,
            "50 clients talking at once all hear each other",
            "50 clients each say a line at the same time",
            "each client gets the other 49 lines, once each",
            "With 50 clients a server must accept quickly (a thread per client, a listen() backlog of \
             more than a handful) and must not hold the lock of the client list for long.",
            "chat-broadcast",
        ),
        Probe::Crowd { clients: 50, lines: 1 },
    ),
    (
        Case::required(
            "chat.late-join",
            Group::Concurrent,
            "a client that joins later is part of the chat",
            "clients 1 and 2 talk, then client 3 joins and all three talk",
            "client 3 gets what is said after it joined, and the others get its lines",
            "Add each client to the shared list when it connects, whenever that is. A server that \
             accepts a fixed number of clients, or copies the list when a thread starts, leaves \
             latecomers out.",
            "chat-broadcast",
        ),
        Probe::LateJoin,
    ),
    (
        Case::required(
            "chat.leave",
            Group::Robust,
            "the others keep chatting after a client leaves",
            "client 1 closes its connection; then client 2 says 3 lines, one at a time",
            "client 3 gets all 3 lines, and no flood of empty lines",
            "When a client leaves, recv() returns b'' in its thread: remove it from the list (holding \
             the lock) and close its socket. Otherwise the next sendall() to it raises BrokenPipeError \
             in another client's thread, and that client's lines stop reaching anyone; and a thread \
             that does not stop at b'' relays empty messages forever.",
            "chat-disconnects",
        ),
        Probe::Leave { reset: false },
    ),
    (
        Case::required(
            "chat.reset",
            Group::Robust,
            "the others keep chatting after a client resets",
            "client 1 resets its connection (RST), as a crashed program does; then client 2 says 3 lines",
            "client 3 gets all 3 lines",
            "A client that crashes makes recv() raise ConnectionResetError instead of returning b''. \
             Catch OSError in each client's thread, remove that client from the list and close it, so \
             that the error does not end a thread the others depend on.",
            "chat-disconnects",
        ),
        Probe::Leave { reset: true },
    ),
    (
        Case::required(
            "chat.slow-reader",
            Group::Robust,
            "a client that never reads does not freeze the room",
            "client 1 stops reading; client 2 sends a few MB of lines; then client 4 says a line",
            "client 3 gets client 4's line",
            "sendall() waits while the receiver's buffers are full, and they fill when a client stops \
             reading. A server that sends to every client from the sender's thread (maybe holding the \
             list's lock) then waits for that one client, and everyone waits with it: one stalled client \
             froze the room. Give each client a queue and a thread that writes from it, and drop clients \
             that fall too far behind.",
            "chat-slow-clients",
        ),
        Probe::SlowReader,
    ),
    (
        Case::required(
            "chat.idle-cpu",
            Group::Robust,
            "the server sleeps once its clients have left",
            "two clients say a line each and leave (one closes, one resets); then silence",
            "the server uses (almost) no CPU for the next second (read from /proc; needs -- COMMAND)",
            "Once a client has closed, recv() returns b'' at once, every time. A client thread that does \
             not stop there spins forever, burning a CPU (and often relaying empty messages).",
            "eof",
        ),
        Probe::IdleCpu,
    ),
];

/// The cases, in order.
pub fn plan() -> Vec<Planned> {
    CASES.iter().map(|&(case, probe)| Planned::new(case, ServerProbe::Chat(probe))).collect()
}

/// Runs one chat probe.
pub async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    drive::run(probe, ctx).await.unwrap_or_else(Finding::fail)
}
