//! The daytime (RFC 867) and time (RFC 868) cases. Daytime answers with a
//! line of text saying the date and time; time with four bytes, the seconds
//! since 1900-01-01 as a big-endian number. Over TCP the server speaks
//! first and closes; over UDP it answers every datagram.

use chrono::{Datelike, Utc};
use futures::future::join_all;

mod cases;

use super::{Ctx, Planned, Probe as ServerProbe};
use crate::check::case::{Case, Finding};
use crate::check::grade::time::{self as judge, Ending};
use crate::check::show::{self, SHOWN};
use crate::check::wire::{self, End, Received};
use crate::net::{Transport, Transports};

/// Daytime or time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// RFC 867: a line of text.
    Daytime,
    /// RFC 868: four bytes.
    Time,
}

/// What a daytime or time case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An answer comes, unasked.
    Answer,
    /// Daytime: the text says now.
    SaysNow,
    /// Daytime: one line.
    OneLine,
    /// Daytime: the line ends in CRLF.
    CrLf,
    /// Time: exactly four bytes.
    FourBytes,
    /// Time: counted from 1900.
    Epoch,
    /// Time: big-endian.
    ByteOrder,
    /// Time: close to the clock.
    Clock,
    /// TCP: the server closes after answering.
    Closes,
    /// TCP: clients at once.
    Clients(usize),
    /// UDP: every request answered.
    EveryRequest(usize),
}

/// A probe: what to check, over which transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// TCP or UDP.
    pub transport: Transport,
    /// What to check.
    pub kind: Kind,
}

/// The cases of `service` over `transports`.
pub fn plan(service: Service, transports: Transports) -> Vec<Planned> {
    type Table = [(Case, Kind)];
    let (tcp, udp): (&Table, &Table) = match service {
        Service::Daytime => (&cases::DAYTIME_TCP, &cases::DAYTIME_UDP),
        Service::Time => (&cases::TIME_TCP, &cases::TIME_UDP),
    };
    let tcp = tcp.iter().filter(|_| transports.tcp).map(|&(case, kind)| (case, Transport::Tcp, kind));
    let udp = udp.iter().filter(|_| transports.udp).map(|&(case, kind)| (case, Transport::Udp, kind));
    tcp.chain(udp)
        .map(|(case, transport, kind)| Planned::new(case, ServerProbe::Daytime(Probe { transport, kind })))
        .collect()
}

/// What the client sends over UDP to ask.
const REQUEST: &[u8] = b"time?\n";

/// Asks once: over TCP connect and read until the end (or quiet); over UDP
/// send a datagram and take the one that comes back.
async fn ask(ctx: &Ctx<'_>, transport: Transport) -> Result<Received, String> {
    let quiet = ctx.options.reply_timeout;
    match transport {
        Transport::Tcp => {
            let mut stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
            Ok(wire::read(&mut stream, None, quiet).await)
        }
        Transport::Udp => {
            let socket = wire::udp_for(ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
            for _ in 0..2 {
                socket.send_to(REQUEST, ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
                if let Some((reply, _)) = wire::recv_from(&socket, quiet).await {
                    return Ok(Received { bytes: reply, end: End::Complete });
                }
            }
            Ok(Received { bytes: Vec::new(), end: End::Quiet })
        }
    }
}

/// Runs one daytime or time probe.
pub async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    let quiet = ctx.options.reply_timeout;
    match probe.kind {
        Kind::Clients(count) => return clients(ctx, count).await.unwrap_or_else(Finding::fail),
        Kind::EveryRequest(count) => return every_request(ctx, count).await.unwrap_or_else(Finding::fail),
        _ => {}
    }
    let answer = match ask(ctx, probe.transport).await {
        Ok(answer) => answer,
        Err(e) => return Finding::fail(e),
    };
    let got = show::bytes(&answer.bytes, SHOWN);
    if answer.bytes.is_empty() {
        let what = match (probe.transport, &answer.end) {
            (Transport::Udp, _) => {
                format!("no answer within {} (asked twice)", humantime::format_duration(quiet))
            }
            (_, End::Closed) => "the server closed the connection without sending anything".to_owned(),
            (_, end) => format!("the server sent nothing, {}", end.describe(quiet)),
        };
        return Finding::fail(what);
    }
    let finding = match probe.kind {
        Kind::Answer => answered(&answer.bytes),
        Kind::SaysNow => says_now(&answer.bytes),
        Kind::OneLine => match judge::line_count(&answer.bytes) {
            1 => Finding::pass(),
            n => Finding::fail(format!("the answer has {n} lines")),
        },
        Kind::CrLf => match judge::ending(&answer.bytes) {
            Ending::CrLf => Finding::pass(),
            Ending::Lf => Finding::warn("the line ends with \\n alone, not \\r\\n"),
            Ending::Missing => Finding::warn("the answer has no line ending"),
        },
        Kind::FourBytes => match answer.bytes.len() {
            4 => Finding::pass(),
            n if answer.bytes.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) => {
                Finding::fail(format!("the answer is {n} bytes of text, not a 4-byte binary number"))
            }
            n => Finding::fail(format!("the answer is {}", show::count(n))),
        },
        Kind::Epoch | Kind::ByteOrder | Kind::Clock => reading(probe.kind, &answer.bytes),
        Kind::Closes => match answer.end {
            End::Closed => Finding::pass(),
            End::Quiet => Finding::fail(format!(
                "the answer came, but the connection stayed open for {} more",
                humantime::format_duration(quiet)
            )),
            ref end => Finding::fail(format!("the answer came, {}", end.describe(quiet))),
        },
        Kind::Clients(_) | Kind::EveryRequest(_) => Finding::pass(),
    };
    finding.got(got)
}

fn answered(answer: &[u8]) -> Finding {
    match std::str::from_utf8(answer) {
        Ok(text) if text.chars().all(|c| !c.is_control() || c == '\r' || c == '\n' || c == '\t') => {
            Finding::pass()
        }
        _ => Finding::fail("the answer is not text: it holds control characters or bytes that are not UTF-8"),
    }
}

fn says_now(answer: &[u8]) -> Finding {
    let text = String::from_utf8_lossy(answer);
    let now = Utc::now();
    if judge::says_the_time(&text, now.timestamp(), now.year()) {
        Finding::pass()
    } else {
        Finding::fail(format!("the answer does not say {} with the time (to within 2 minutes)", now.year()))
    }
}

fn reading(kind: Kind, answer: &[u8]) -> Finding {
    let Ok(four) = <[u8; 4]>::try_from(answer) else {
        return Finding::skip("the answer is not 4 bytes (see the four-bytes case)");
    };
    let Some(reading) = judge::read_time(four, Utc::now().timestamp()) else {
        return match kind {
            Kind::Clock => Finding::fail(format!(
                "read as RFC 868 asks, the answer is {}, not within a day of now in any byte order or epoch",
                u32::from_be_bytes(four)
            )),
            _ => Finding::skip(
                "the value is not near now in any reading, so this cannot be told (see the clock case)",
            ),
        };
    };
    match kind {
        Kind::Epoch if !reading.from_1900 => {
            Finding::fail("the seconds are counted from 1970 (Unix time), not 1900")
        }
        Kind::ByteOrder if !reading.big_endian => {
            Finding::fail("the bytes are in little-endian order: read big-endian, they are far from now")
        }
        Kind::Clock if reading.off_by.abs() > 5 => {
            let (way, secs) =
                if reading.off_by > 0 { ("ahead", reading.off_by) } else { ("behind", -reading.off_by) };
            Finding::fail(format!("the time is {secs} s {way} of this machine's clock"))
        }
        Kind::Clock => Finding::pass().note(format!("{} s from this machine's clock", reading.off_by)),
        _ => Finding::pass(),
    }
}

async fn clients(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    let asks = join_all((0..count).map(|_| ask(ctx, Transport::Tcp))).await;
    let answered = asks.iter().filter(|a| a.as_ref().is_ok_and(|a| !a.bytes.is_empty())).count();
    let what = format!("{answered} of {count} clients got an answer");
    if answered == count {
        Ok(Finding::pass().note(what))
    } else {
        let first = asks.iter().find_map(|a| a.as_ref().err().cloned());
        Ok(Finding::fail(match first {
            Some(e) => format!("{what}; {e}"),
            None => what,
        }))
    }
}

async fn every_request(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    let mut answered = 0;
    for _ in 0..count {
        if !ask(ctx, Transport::Udp).await?.bytes.is_empty() {
            answered += 1;
        }
    }
    let what = format!("{answered} of {count} requests answered");
    Ok(if answered == count { Finding::pass().note(what) } else { Finding::fail(what) })
}
