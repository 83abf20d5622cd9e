//! Judging a broadcast chat from what each client received.
//!
//! Every line the grader sends carries a token such as `~c03m007~` (client
//! 3, its message 7). Student servers decorate relayed lines as they like
//! (`<nick> text`, `[127.0.0.1:5555] text`, `text`), so the grader does not
//! parse lines: it finds the tokens in each client's byte stream, and judges
//! who got which, how often and in what order.

use std::collections::HashMap;
use std::fmt;

/// One message's identity: who sent it and its number among theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// The sending client's number.
    pub client: u8,
    /// The message's number, counting from 1 for each client.
    pub seq: u16,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "~c{:02}m{:03}~", self.client, self.seq)
    }
}

/// How many bytes a token takes: `~cNNmNNN~`.
const TOKEN_LEN: usize = 9;

/// The token at the start of `b`, if one is there.
fn token_at(b: &[u8]) -> Option<Token> {
    let b = b.get(..TOKEN_LEN)?;
    let digits = |s: &[u8]| -> Option<u16> {
        s.iter().all(u8::is_ascii_digit).then(|| s.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
    };
    if &b[..2] != b"~c" || b[4] != b'm' || b[8] != b'~' {
        return None;
    }
    Some(Token { client: u8::try_from(digits(&b[2..4])?).ok()?, seq: digits(&b[5..8])? })
}

/// Every token in `stream`, in order.
pub fn tokens(stream: &[u8]) -> Vec<Token> {
    tokens_since(stream, 0).0
}

/// The tokens of `stream` that start at `from` or later, and where to look
/// from when more bytes have arrived: a stream that grows is scanned once,
/// not again at every look.
pub fn tokens_since(stream: &[u8], from: usize) -> (Vec<Token>, usize) {
    let end = stream.len().saturating_sub(TOKEN_LEN - 1).max(from);
    ((from..end).filter_map(|i| token_at(&stream[i..])).collect(), end)
}

/// The tokens of each line of `stream` (split at `\n`), for judging framing:
/// a line that holds two tokens is two messages run together.
pub fn tokens_per_line(stream: &[u8]) -> Vec<Vec<Token>> {
    stream.split(|&b| b == b'\n').map(tokens).filter(|t| !t.is_empty()).collect()
}

/// What one client sent, in order, or received, in order of arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// The client's number.
    pub client: u8,
    /// The tokens.
    pub tokens: Vec<Token>,
}

/// A delivery that went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// `to` never got `token`.
    Missing {
        /// The receiver.
        to: u8,
        /// The message.
        token: Token,
    },
    /// `to` got `token` more than once.
    Repeated {
        /// The receiver.
        to: u8,
        /// The message.
        token: Token,
        /// How many times.
        times: usize,
    },
    /// `to` got `later` before `earlier`, though `earlier` was sent first.
    Reordered {
        /// The receiver.
        to: u8,
        /// Sent first, arrived second.
        earlier: Token,
        /// Sent second, arrived first.
        later: Token,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { to, token } => {
                write!(f, "client {to} never got message {} of client {}", token.seq, token.client)
            }
            Problem::Repeated { to, token, times } => {
                write!(f, "client {to} got message {} of client {} {times} times", token.seq, token.client)
            }
            Problem::Reordered { to, earlier, later } => write!(
                f,
                "client {to} got message {} of client {} before message {}",
                later.seq, later.client, earlier.seq
            ),
        }
    }
}

/// Whether senders hear their own lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfEcho {
    /// Every sender got its own lines back.
    Yes,
    /// No sender did.
    No,
    /// Some lines came back to their sender and others did not (or not yet).
    Partly {
        /// How many came back.
        heard: usize,
        /// How many were sent.
        sent: usize,
    },
    /// Nothing was sent.
    Unknown,
}

/// The judgement of a chat exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Everything that went wrong, receiver by receiver.
    pub problems: Vec<Problem>,
    /// Whether senders hear themselves.
    pub self_echo: SelfEcho,
    /// How many lines were delivered to others as they should be.
    pub delivered: usize,
    /// How many should have been.
    pub expected: usize,
}

impl Delivery {
    /// The first few problems in words, and how many more there were.
    pub fn summary(&self, max: usize) -> String {
        let mut parts: Vec<String> = self.problems.iter().take(max).map(ToString::to_string).collect();
        if self.problems.len() > max {
            parts.push(format!("and {} more", self.problems.len() - max));
        }
        parts.join("; ")
    }
}

/// Judges who got what: every client other than the sender must get each
/// of the sender's lines exactly once, in the order it was sent. Whether
/// senders hear themselves is measured, not judged: an echo to the sender
/// may still be on its way when the others have theirs. `received` lists
/// every client that was listening, senders among them.
pub fn judge(sent: &[Traffic], received: &[Traffic]) -> Delivery {
    let mut problems = Vec::new();
    let (mut delivered, mut expected) = (0, 0);
    let mut self_heard = Vec::new();
    for receiver in received {
        let mut counts: HashMap<Token, usize> = HashMap::new();
        for token in &receiver.tokens {
            *counts.entry(*token).or_default() += 1;
        }
        for sender in sent {
            if sender.client == receiver.client {
                let heard = sender.tokens.iter().filter(|t| counts.contains_key(t)).count();
                self_heard.push((sender.client, heard, sender.tokens.len()));
                continue;
            }
            expected += sender.tokens.len();
            for token in &sender.tokens {
                match counts.get(token).copied().unwrap_or(0) {
                    0 => problems.push(Problem::Missing { to: receiver.client, token: *token }),
                    1 => delivered += 1,
                    times => problems.push(Problem::Repeated { to: receiver.client, token: *token, times }),
                }
            }
            let arrived: Vec<Token> =
                receiver.tokens.iter().filter(|t| t.client == sender.client).copied().collect();
            if let Some(pair) = arrived.windows(2).find(|w| w[1].seq < w[0].seq) {
                let (later, earlier) = (pair[0], pair[1]);
                problems.push(Problem::Reordered { to: receiver.client, earlier, later });
            }
        }
    }
    let (heard, sent_own) = self_heard.iter().fold((0, 0), |(h, s), (_, heard, sent)| (h + heard, s + sent));
    let self_echo = match (heard, sent_own) {
        (_, 0) => SelfEcho::Unknown,
        (0, _) => SelfEcho::No,
        (h, s) if h == s => SelfEcho::Yes,
        (heard, sent) => SelfEcho::Partly { heard, sent },
    };
    Delivery { problems, self_echo, delivered, expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_scanned_in_pieces_gives_the_tokens_of_the_whole() {
        let stream = b"<a> ~c01m001~ hi\n<b> ~c02m007~ x~c03m012~";
        let whole = tokens(stream);
        assert_eq!(whole.len(), 3);
        let (mut found, mut from) = (Vec::new(), 0);
        for end in [5, 10, 12, 20, 30, stream.len()] {
            let (more, next) = tokens_since(&stream[..end], from);
            found.extend(more);
            from = next;
        }
        assert_eq!(found, whole);
    }

    fn t(client: u8, seq: u16) -> Token {
        Token { client, seq }
    }

    #[test]
    fn tokens_are_found_in_any_decoration() {
        assert_eq!(t(3, 7).to_string(), "~c03m007~");
        let stream = b"* welcome\n<guest1> ~c01m001~ hi\n[127.0.0.1:4000] ~c02m012~\n~c01m0";
        assert_eq!(tokens(stream), [t(1, 1), t(2, 12)]);
        assert_eq!(tokens(b"~c1xm001~ ~cabm001~"), []);
        assert_eq!(
            tokens_per_line(b"a: ~c01m001~\n~c01m002~a: ~c01m003~\n"),
            [vec![t(1, 1)], vec![t(1, 2), t(1, 3)]]
        );
    }

    #[test]
    fn a_good_broadcast_has_no_problems() {
        let sent = [Traffic { client: 1, tokens: vec![t(1, 1), t(1, 2)] }];
        let received =
            [Traffic { client: 1, tokens: vec![] }, Traffic { client: 2, tokens: vec![t(1, 1), t(1, 2)] }];
        let delivery = judge(&sent, &received);
        assert_eq!(delivery.problems, []);
        assert_eq!(delivery.self_echo, SelfEcho::No);
        assert_eq!((delivery.delivered, delivery.expected), (2, 2));
    }

    #[test]
    fn missing_repeated_and_reordered_lines_are_named() {
        let sent = [Traffic { client: 1, tokens: vec![t(1, 1), t(1, 2), t(1, 3)] }];
        let received = [
            Traffic { client: 1, tokens: vec![t(1, 1), t(1, 2), t(1, 3)] },
            Traffic { client: 2, tokens: vec![t(1, 1), t(1, 1), t(1, 3)] },
            Traffic { client: 3, tokens: vec![t(1, 2), t(1, 1), t(1, 3)] },
        ];
        let delivery = judge(&sent, &received);
        assert_eq!(delivery.self_echo, SelfEcho::Yes);
        assert_eq!(
            delivery.problems,
            [
                Problem::Repeated { to: 2, token: t(1, 1), times: 2 },
                Problem::Missing { to: 2, token: t(1, 2) },
                Problem::Reordered { to: 3, earlier: t(1, 1), later: t(1, 2) },
            ]
        );
        assert_eq!(delivery.summary(1), "client 2 got message 1 of client 1 2 times; and 2 more");
        assert_eq!(delivery.problems[2].to_string(), "client 3 got message 2 of client 1 before message 1");
    }

    #[test]
    fn hearing_oneself_is_measured_not_judged() {
        let sent = [Traffic { client: 1, tokens: vec![t(1, 1), t(1, 2)] }];
        let received = [Traffic { client: 1, tokens: vec![t(1, 2)] }];
        let delivery = judge(&sent, &received);
        assert_eq!(delivery.self_echo, SelfEcho::Partly { heard: 1, sent: 2 });
        assert_eq!(delivery.problems, []);
    }
}
