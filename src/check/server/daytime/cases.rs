//! The daytime and time cases as data: one table per service and
//! transport, each case with the explanation a student reads when it fails.

use super::Kind;
use crate::check::case::{Case, Group};

const fn case(
    id: &'static str,
    group: Group,
    title: &'static str,
    sends: &'static str,
    expects: &'static str,
    explanation: &'static str,
    anchor: &'static str,
) -> (Case, Kind) {
    (Case::required(id, group, title, sends, expects, explanation, anchor), Kind::Answer)
}

const fn with(entry: (Case, Kind), kind: Kind) -> (Case, Kind) {
    (entry.0, kind)
}

const SPEAKS_FIRST: &str = "A daytime server speaks first: as soon as accept() returns, it sends the time and \
     closes, without waiting for the client to send anything.";
const SAYS_NOW: &str = "The answer should be the date and time now, as text a person reads, for example \
     datetime.now().strftime('%A, %B %d, %Y %H:%M:%S').";
const CRLF: &str = "RFC 867, like every Internet text protocol, ends a line with \\r\\n (CRLF). Many clients \
     cope with a bare \\n or none, but a line without an ending cannot be told from a cut-off one.";
const CLOSES: &str = "Over TCP the server's close is the end of the answer: the client reads until recv() \
     returns b''. A server that keeps the connection open leaves the client waiting for more.";
const FOUR_BYTES: &str = "RFC 868 sends the time as a 32-bit binary number, exactly 4 bytes: \
     struct.pack('!I', seconds). Not text, not 8 bytes.";
const EPOCH: &str = "RFC 868 counts seconds from 1900-01-01, not from 1970 as time.time() does: add \
     2208988800 (70 years of seconds) before packing.";
const BYTE_ORDER: &str = "Numbers on the network are big-endian (network byte order): '!I' in struct.pack, \
     not 'I', which uses this machine's order (little-endian on a PC).";
const CLOCK: &str = "The number is the time now: a stale or miscomputed value is off by as many seconds as \
     shown. Compute it for each answer, from time.time().";

/// The daytime cases over TCP.
pub(super) const DAYTIME_TCP: [(Case, Kind); 6] = [
    with(
        case(
            "daytime.tcp.answer",
            Group::Correct,
            "the server speaks first",
            "a connection, and nothing else",
            "text, right after connecting",
            SPEAKS_FIRST,
            "daytime",
        ),
        Kind::Answer,
    ),
    with(
        case(
            "daytime.tcp.now",
            Group::Correct,
            "the answer says the date and time now",
            "a connection",
            "today's year and the time within 2 minutes (any time zone)",
            SAYS_NOW,
            "daytime",
        ),
        Kind::SaysNow,
    ),
    with(
        case(
            "daytime.tcp.one-line",
            Group::Correct,
            "the answer is one line",
            "a connection",
            "one line of text",
            "A daytime answer is a single line; extra lines (a greeting, a prompt) are not \
         part of the protocol and confuse clients that print what they get.",
            "daytime",
        ),
        Kind::OneLine,
    ),
    with(
        case(
            "daytime.tcp.crlf",
            Group::Correct,
            "the line ends with CRLF",
            "a connection",
            "the answer ends in b'\\r\\n' (a warning when it does not)",
            CRLF,
            "daytime",
        ),
        Kind::CrLf,
    ),
    with(
        case(
            "daytime.tcp.closes",
            Group::Correct,
            "the server closes after answering",
            "a connection",
            "the end of the stream after the line",
            CLOSES,
            "daytime",
        ),
        Kind::Closes,
    ),
    with(
        case(
            "daytime.tcp.clients.10",
            Group::Concurrent,
            "10 clients at once each get an answer",
            "10 connections at once",
            "an answer on each",
            "Each client should get its answer \
         straight away; a server that waits for one client to do something before accepting the next \
         makes them queue.",
            "one-client-at-a-time",
        ),
        Kind::Clients(10),
    ),
];

/// The daytime cases over UDP.
pub(super) const DAYTIME_UDP: [(Case, Kind); 4] = [
    with(
        case(
            "daytime.udp.answer",
            Group::Correct,
            "a datagram is answered",
            "the datagram b'time?\\n'",
            "a datagram of text back",
            "Over UDP the client sends any datagram and the server answers it with the \
         time, sent to the address recvfrom() returned.",
            "daytime",
        ),
        Kind::Answer,
    ),
    with(
        case(
            "daytime.udp.now",
            Group::Correct,
            "the answer says the date and time now",
            "a datagram",
            "today's year and the time within 2 minutes",
            SAYS_NOW,
            "daytime",
        ),
        Kind::SaysNow,
    ),
    with(
        case(
            "daytime.udp.crlf",
            Group::Correct,
            "the line ends with CRLF",
            "a datagram",
            "the answer ends in b'\\r\\n' (a warning when it does not)",
            CRLF,
            "daytime",
        ),
        Kind::CrLf,
    ),
    with(
        case(
            "daytime.udp.every-request",
            Group::Robust,
            "every datagram is answered",
            "3 datagrams, one at a time",
            "3 answers",
            "A UDP server answers in a loop for as long as it runs; one that answers once and exits \
         serves a single client.",
            "udp-datagrams",
        ),
        Kind::EveryRequest(3),
    ),
];

/// The time cases over TCP.
pub(super) const TIME_TCP: [(Case, Kind); 6] = [
    with(
        case(
            "time.tcp.four-bytes",
            Group::Correct,
            "the answer is exactly 4 bytes",
            "a connection, and nothing else",
            "4 bytes, then the end",
            FOUR_BYTES,
            "time-protocol",
        ),
        Kind::FourBytes,
    ),
    with(
        case(
            "time.tcp.epoch",
            Group::Correct,
            "the seconds count from 1900",
            "a connection",
            "a count near now since 1900-01-01 (not 1970)",
            EPOCH,
            "time-protocol",
        ),
        Kind::Epoch,
    ),
    with(
        case(
            "time.tcp.byte-order",
            Group::Correct,
            "the number is big-endian",
            "a connection",
            "the 4 bytes in network byte order",
            BYTE_ORDER,
            "time-protocol",
        ),
        Kind::ByteOrder,
    ),
    with(
        case(
            "time.tcp.clock",
            Group::Correct,
            "the time is within 5 s of this machine's clock",
            "a connection",
            "at most 5 s off",
            CLOCK,
            "time-protocol",
        ),
        Kind::Clock,
    ),
    with(
        case(
            "time.tcp.closes",
            Group::Correct,
            "the server closes after answering",
            "a connection",
            "the end of the stream after the 4 bytes",
            CLOSES,
            "time-protocol",
        ),
        Kind::Closes,
    ),
    with(
        case(
            "time.tcp.clients.10",
            Group::Concurrent,
            "10 clients at once each get an answer",
            "10 connections at once",
            "an answer on each",
            "Each client should get its answer straight \
         away; a server that waits for one client to do something before accepting the next makes them \
         queue.",
            "one-client-at-a-time",
        ),
        Kind::Clients(10),
    ),
];

/// The time cases over UDP.
pub(super) const TIME_UDP: [(Case, Kind); 5] = [
    with(
        case(
            "time.udp.four-bytes",
            Group::Correct,
            "the answer is exactly 4 bytes",
            "the datagram b'time?\\n'",
            "a datagram of 4 bytes",
            FOUR_BYTES,
            "time-protocol",
        ),
        Kind::FourBytes,
    ),
    with(
        case(
            "time.udp.epoch",
            Group::Correct,
            "the seconds count from 1900",
            "a datagram",
            "a count near now since 1900-01-01 (not 1970)",
            EPOCH,
            "time-protocol",
        ),
        Kind::Epoch,
    ),
    with(
        case(
            "time.udp.byte-order",
            Group::Correct,
            "the number is big-endian",
            "a datagram",
            "the 4 bytes in network byte order",
            BYTE_ORDER,
            "time-protocol",
        ),
        Kind::ByteOrder,
    ),
    with(
        case(
            "time.udp.clock",
            Group::Correct,
            "the time is within 5 s of this machine's clock",
            "a datagram",
            "at most 5 s off",
            CLOCK,
            "time-protocol",
        ),
        Kind::Clock,
    ),
    with(
        case(
            "time.udp.every-request",
            Group::Robust,
            "every datagram is answered",
            "3 datagrams, one at a time",
            "3 answers",
            "A UDP server answers in a loop for as long as it runs; one that answers once and exits \
         serves a single client.",
            "udp-datagrams",
        ),
        Kind::EveryRequest(3),
    ),
];
