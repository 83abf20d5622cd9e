//! The lossy-UDP client: our server loses one message and one ACK on
//! purpose, then goes silent, and records every datagram.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Client, Ending, no_error};
use crate::check::case::{Case, Finding, Group, Level};
use crate::check::program::Launch;
use crate::check::show::{self, SHOWN};
use crate::check::{CheckError, Options};
use crate::udp::ACK_PREFIX;

/// Which message (counting from 0) loses its first datagram.
pub const LOST_MESSAGE: usize = 1;
/// Which message loses the ACK of its first datagram.
pub const LOST_ACK: usize = 3;
/// How many messages are acknowledged before the server goes silent.
pub const BEFORE_SILENCE: usize = 6;
/// How long the silence lasts.
const SILENCE: Duration = Duration::from_secs(4);
/// How long a client may wait before its first datagram, or between two, before
/// it is said to wait forever.
const HANG: Duration = Duration::from_secs(5);
/// The longest session.
const SESSION: Duration = Duration::from_secs(45);

/// What a datagram was, relative to the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A message the server had not seen.
    New,
    /// The same bytes again, before any ACK for them.
    Resend,
    /// The same bytes again, after they were acknowledged.
    AfterAck,
}

/// One datagram the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// When, from the start of the session.
    pub at: Duration,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Which message it belongs to (from 0).
    pub message: usize,
    /// New, resent or repeated.
    pub role: Role,
    /// Whether the server answered it.
    pub answered: bool,
}

/// The server's side of the session, sans-IO: datagrams in, whether to
/// answer out. Message 1 loses its first datagram, message 3 the ACK of
/// its first datagram, and after 6 acknowledged messages the server
/// answers nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// Every datagram, in order.
    pub seen: Vec<Seen>,
    /// When the silence began.
    pub silent_since: Option<Duration>,
}

impl Script {
    /// Records a datagram that arrived `at`; whether to acknowledge it.
    pub fn on_datagram(&mut self, at: Duration, payload: &[u8]) -> bool {
        let (role, message) = match self.seen.last() {
            Some(last) if last.payload == payload && last.answered => (Role::AfterAck, last.message),
            Some(last) if last.payload == payload => (Role::Resend, last.message),
            Some(last) => (Role::New, last.message + 1),
            None => (Role::New, 0),
        };
        let first_of_a_lossy_one = role == Role::New && (message == LOST_MESSAGE || message == LOST_ACK);
        let answered = self.silent_since.is_none() && !first_of_a_lossy_one;
        self.seen.push(Seen { at, payload: payload.to_vec(), message, role, answered });
        if answered && self.acknowledged() >= BEFORE_SILENCE {
            self.silent_since = Some(at);
        }
        answered
    }

    /// How many different messages were acknowledged.
    pub fn acknowledged(&self) -> usize {
        let mut acked: Vec<usize> = self.seen.iter().filter(|s| s.answered).map(|s| s.message).collect();
        acked.dedup();
        acked.len()
    }

    /// The datagrams after the first one of message `message`.
    fn after_first_of(&self, message: usize) -> Option<(&Seen, Option<&Seen>)> {
        let at = self.seen.iter().position(|s| s.message == message && s.role == Role::New)?;
        Some((&self.seen[at], self.seen.get(at + 1)))
    }

    /// Judges whether the client sent `message` again after its first
    /// datagram went unanswered (`what` names the loss; `{payload}` in it
    /// becomes the datagram the client sent, which names the message in
    /// the client's own numbering).
    pub fn judge_resend(&self, message: usize, what: &str, exited: bool) -> Finding {
        let Some((first, next)) = self.after_first_of(message) else {
            return Finding::skip(format!("the client sent fewer than {} different messages", message + 1));
        };
        let what = what.replace("{payload}", &show::bytes(&first.payload, SHOWN));
        match next {
            Some(next) if next.role == Role::Resend => {
                Finding::pass().note(format!("sent again after {} ms", (next.at - first.at).as_millis()))
            }
            Some(next) => Finding::fail(format!(
                "{what}, and the client went on to {} without sending it again",
                show::bytes(&next.payload, SHOWN)
            )),
            None if exited => {
                Finding::fail(format!("{what}, and the client exited without sending it again"))
            }
            None => Finding::fail(format!(
                "{what}, and the client sent nothing more: it waits forever for an ACK that will not come"
            )),
        }
        .sent(show::bytes(&first.payload, SHOWN))
    }

    /// Judges whether different messages carry increasing numbers.
    pub fn judge_numbers(&self) -> Finding {
        let firsts: Vec<&Seen> = self.seen.iter().filter(|s| s.role == Role::New).collect();
        if firsts.len() < 2 {
            return match self.seen.first() {
                Some(only) if self.seen.len() > 1 => Finding::fail(format!(
                    "every datagram was {}: the server cannot tell a new message from a resent one",
                    show::bytes(&only.payload, SHOWN)
                )),
                _ => Finding::skip("the client sent only one message"),
            };
        }
        let numbers: Vec<Option<u64>> = firsts.iter().map(|s| first_number(&s.payload)).collect();
        let shown: Vec<String> = firsts.iter().take(4).map(|s| show::bytes(&s.payload, 40)).collect();
        let increasing = numbers.windows(2).all(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if b > a));
        if increasing {
            Finding::pass().note(format!("messages {}", shown.join(", ")))
        } else {
            Finding::fail("the messages do not carry increasing numbers").got(shown.join(", "))
        }
    }

    /// Judges what the client did once the server stopped answering.
    pub fn judge_silence(&self, exited_at: Option<Duration>) -> Finding {
        let Some(since) = self.silent_since else {
            return Finding::skip(format!("the client did not get {BEFORE_SILENCE} messages acknowledged"));
        };
        let tries = self.seen.iter().filter(|s| s.at > since).count();
        match (tries, exited_at) {
            (1.., _) => Finding::pass().note(format!("{tries} more datagrams while no ACK came")),
            (0, Some(at)) if at >= since => Finding::pass().note("it gave up and exited"),
            _ => Finding::fail(format!(
                "no ACK came for {}, and the client neither sent again nor exited",
                humantime::format_duration(SILENCE)
            )),
        }
    }

    /// Judges how quickly resends follow (advisory): at least 50 ms apart.
    pub fn judge_pace(&self) -> Finding {
        let gaps: Vec<Duration> =
            self.seen.windows(2).filter(|w| w[1].role == Role::Resend).map(|w| w[1].at - w[0].at).collect();
        match gaps.iter().min() {
            None => Finding::skip("the client resent nothing"),
            Some(gap) if *gap < Duration::from_millis(50) => Finding::fail(format!(
                "a resend came {} ms after the datagram before it: too soon for an ACK to make the round trip",
                gap.as_millis()
            )),
            Some(gap) => {
                Finding::pass().note(format!("the quickest resend came after {} ms", gap.as_millis()))
            }
        }
    }
}

/// The first run of digits in `payload`, as a number.
fn first_number(payload: &[u8]) -> Option<u64> {
    let start = payload.iter().position(u8::is_ascii_digit)?;
    let digits = payload[start..].iter().take_while(|b| b.is_ascii_digit()).take(18);
    Some(digits.fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

const fn case(
    id: &'static str,
    title: &'static str,
    sends: &'static str,
    expects: &'static str,
    explanation: &'static str,
) -> Case {
    Case::required(id, Group::Correct, title, sends, expects, explanation, "client-udp-ack")
}

/// The cases.
pub const CASES: [Case; 7] = [
    case(
        "client.udp-ack.sends",
        "the client sends datagrams to the server it is given",
        "(our server listens on {host}:{port})",
        "a datagram within 5 s",
        "The client must send to the host and port it is given on its command line \
         (sys.argv), with sendto(data, (host, port)).",
    ),
    case(
        "client.udp-ack.resends-lost",
        "a message that is lost is sent again",
        "nothing back for the first datagram of the client's second message",
        "the same message again, after a timeout",
        "UDP does not resend anything by itself. Wait for the ACK with a timeout \
         (sock.settimeout(1), then recvfrom raises socket.timeout) and send the same message \
         again when none came; without a timeout recvfrom waits forever.",
    ),
    case(
        "client.udp-ack.resends-unacked",
        "a message whose ACK is lost is sent again",
        "the client's fourth message arrives, but its ACK is lost on the way back",
        "the same message again, after a timeout",
        "The client cannot tell a lost message from a lost ACK: both look like silence. In both \
         cases it sends the message again (the server may then see it twice, which is why \
         messages carry numbers).",
    ),
    case(
        "client.udp-ack.numbered",
        "messages carry increasing numbers",
        "(every datagram is recorded)",
        "each new message with a higher number than the one before, a resend with the same",
        "Number the messages ('Message 0', 'Message 1', ...) and keep the number when resending: \
         then the server can tell a resent message from a new one, and the client can tell \
         which message an ACK is for.",
    ),
    case(
        "client.udp-ack.no-hang",
        "when no ACK ever comes, the client does not wait forever",
        "silence, after 6 acknowledged messages",
        "more resends, or the client gives up and exits",
        "A client that waits in recvfrom() without a timeout hangs as soon as one ACK is \
         lost. With a timeout it resends, and it can give up after a number of tries.",
    ),
    Case {
        level: Level::Advisory,
        ..case(
            "client.udp-ack.resend-pace",
            "resends leave time for the ACK",
            "(every datagram is recorded)",
            "at least 50 ms between a datagram and its resend (a warning otherwise)",
            "A resend that follows the first copy within milliseconds floods the network before \
             the ACK could have come back; a timeout of a second (as the course uses) or a few \
             round trips is usual.",
        )
    },
    no_error("client.udp-ack.no-error"),
];

/// Runs the session; the findings in [`CASES`] order, except the last.
pub(super) async fn session(
    launch: &Launch,
    server: SocketAddr,
    options: &Options,
) -> Result<(Vec<Finding>, Ending), CheckError> {
    let socket = tokio::net::UdpSocket::bind(server).await?;
    let mut client = Client::start(launch, server, false)?;
    let mut script = Script::default();
    let mut buf = vec![0u8; crate::net::UDP_RECV_BUFFER];
    let mut exited_at = None;
    let mut last = Instant::now();
    loop {
        let now = client.started.elapsed();
        let silence_over = script.silent_since.is_some_and(|since| now >= since + SILENCE);
        let waited = if script.seen.is_empty() { options.startup_timeout } else { HANG };
        if silence_over || now >= SESSION || last.elapsed() >= waited {
            break;
        }
        if exited_at.is_none() && client.ended() {
            exited_at = Some(now);
        }
        if exited_at.is_some_and(|at| now >= at + Duration::from_millis(500)) {
            break;
        }
        let Some((n, from)) = tokio::time::timeout(Duration::from_millis(100), socket.recv_from(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
        else {
            continue;
        };
        last = Instant::now();
        if script.on_datagram(client.started.elapsed(), &buf[..n]) {
            let reply = [ACK_PREFIX, &buf[..n]].concat();
            let _ = socket.send_to(&reply, from).await;
        }
    }
    let exited = exited_at.is_some() || client.ended();
    let ending = client.finish().await;
    let findings = vec![
        if script.seen.is_empty() {
            Finding::fail(format!("no datagram reached {server}"))
        } else {
            Finding::pass().note(format!(
                "{} for {} acknowledged",
                crate::text::plural(script.seen.len() as u64, "datagram"),
                crate::text::plural(script.acknowledged() as u64, "message")
            ))
        },
        script.judge_resend(
            LOST_MESSAGE,
            "the client's second message, {payload}, was lost on its way to the server",
            exited,
        ),
        script.judge_resend(
            LOST_ACK,
            "the ACK of the client's fourth message, {payload}, was lost on its way back",
            exited,
        ),
        script.judge_numbers(),
        script.judge_silence(exited_at),
        script.judge_pace(),
    ];
    Ok((findings, ending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A client that numbers its messages and resends after 1 s.
    fn careful() -> Script {
        let mut script = Script::default();
        let mut t = 0;
        for message in 0..7 {
            let payload = format!("Message {message}");
            while !script.on_datagram(ms(t), payload.as_bytes()) {
                t += 1000;
                if script.silent_since.is_some() {
                    break;
                }
            }
            t += 10;
        }
        script
    }

    #[test]
    fn a_careful_client_passes() {
        let script = careful();
        assert!(script.judge_resend(LOST_MESSAGE, "lost", false).passed());
        assert!(script.judge_resend(LOST_ACK, "lost", false).passed());
        assert!(script.judge_numbers().passed());
        assert!(script.judge_silence(None).passed(), "{:?}", script.judge_silence(None));
        assert!(script.judge_pace().passed());
        assert_eq!(script.acknowledged(), BEFORE_SILENCE);
    }

    #[test]
    fn a_client_without_timeout_is_said_to_hang() {
        let mut script = Script::default();
        assert!(script.on_datagram(ms(0), b"Message 0"));
        assert!(!script.on_datagram(ms(10), b"Message 1"));
        let finding = script.judge_resend(LOST_MESSAGE, "message 2 was lost", false);
        assert!(finding.problem.unwrap().what.contains("waits forever"));
        assert!(
            !script.judge_resend(LOST_ACK, "x", false).passed()
                && script.judge_resend(LOST_ACK, "x", false).skipped.is_some()
        );
    }

    #[test]
    fn a_client_that_moves_on_is_named() {
        let mut script = Script::default();
        script.on_datagram(ms(0), b"Message 0");
        script.on_datagram(ms(10), b"Message 1");
        script.on_datagram(ms(1010), b"Message 2");
        let what = script.judge_resend(LOST_MESSAGE, "lost", false).problem.unwrap().what;
        assert!(what.contains("went on to b'Message 2'"), "{what}");
    }

    #[test]
    fn the_lost_message_is_named_by_what_the_client_sent() {
        // A client that counts from 0: its second message says 1.
        let mut script = Script::default();
        script.on_datagram(ms(0), b"Message 0");
        script.on_datagram(ms(10), b"Message 1");
        script.on_datagram(ms(1010), b"Message 2");
        let what = script.judge_resend(LOST_MESSAGE, "{payload} was lost", false).problem.unwrap().what;
        assert!(what.starts_with("b'Message 1' was lost"), "{what}");
    }

    #[test]
    fn unnumbered_messages_cannot_be_told_apart() {
        let mut script = Script::default();
        for t in 0..5 {
            script.on_datagram(ms(t * 100), b"hello");
        }
        assert!(script.seen.iter().skip(1).all(|s| s.role != Role::New));
        assert!(script.judge_numbers().problem.unwrap().what.contains("every datagram was b'hello'"));
        assert_eq!(first_number(b"Message 12 of 3"), Some(12));
        assert_eq!(first_number(b"none"), None);
    }
}
