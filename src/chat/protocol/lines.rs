//! The lines a server sends (pure): rendering them, and reading them back
//! as a client does.

use std::fmt::{self, Write as _};

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};

/// `<nick> text`: a message to the room.
pub fn message(nick: &str, text: &str) -> Bytes {
    concat(&["<", nick, "> ", text])
}

/// `* nick action`: what `/me` sends.
pub fn action(nick: &str, text: &str) -> Bytes {
    concat(&["* ", nick, " ", text])
}

/// `*from* text`: a private message, as its addressee sees it.
pub fn private(from: &str, text: &str) -> Bytes {
    concat(&["*", from, "* ", text])
}

/// `-> *to* text`: a private message, as its sender sees it.
pub fn private_sent(to: &str, text: &str) -> Bytes {
    concat(&["-> *", to, "* ", text])
}

/// `*** ...`: a notice from the server. No client can make a line that
/// starts this way: messages start with `<`, and an action's `* ` is
/// followed by a nickname, which cannot hold a `*`.
pub fn notice(text: impl fmt::Display) -> Bytes {
    prefixed("*** ", text)
}

/// `! ...`: an error, for one client.
pub fn error(text: impl fmt::Display) -> Bytes {
    prefixed("! ", text)
}

/// `PING token`: the server asking whether a silent client is still there.
/// `chat join` answers `/pong token` by itself; a client that does not
/// answer (a person at `nc`) is not dropped for it while its connection
/// takes what it is sent.
pub fn ping(token: impl fmt::Display) -> Bytes {
    prefixed("PING ", token)
}

/// A line of a room's history as replayed to a newcomer: `[time] line`,
/// the time in UTC to the second (RFC 3339), so that old lines are not
/// mistaken for new ones.
pub fn replayed(at: DateTime<Utc>, line: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(line.len() + 24);
    // Cannot fail: BytesMut grows as needed.
    let _ = write!(out, "[{}] ", at.to_rfc3339_opts(SecondsFormat::Secs, true));
    out.put_slice(line);
    out.freeze()
}

/// Splits a replayed line into its time and the line as first sent; a
/// line that is not a replay has no time.
pub fn split_replayed(line: &str) -> (Option<&str>, &str) {
    let stamped = line.strip_prefix('[').and_then(|rest| rest.split_once("] "));
    match stamped {
        Some((at, rest)) if DateTime::parse_from_rfc3339(at).is_ok() => (Some(at), rest),
        _ => (None, line),
    }
}

/// One line from `parts`, in one allocation of exactly its size.
fn concat(parts: &[&str]) -> Bytes {
    let mut line = BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 1);
    for part in parts {
        line.put_slice(part.as_bytes());
    }
    line.put_u8(b'\n');
    line.freeze()
}

fn prefixed(prefix: &str, text: impl fmt::Display) -> Bytes {
    let mut line = BytesMut::with_capacity(64);
    line.put_slice(prefix.as_bytes());
    // Cannot fail: BytesMut grows as needed.
    let _ = write!(line, "{text}");
    line.put_u8(b'\n');
    line.freeze()
}

/// "no one else", "1 other", "5 others": how many others share a room.
pub fn others(n: usize) -> String {
    match n {
        0 => "no one else".to_owned(),
        1 => "1 other".to_owned(),
        n => format!("{n} others"),
    }
}

/// A line from the server, as a client reads it (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerLine<'a> {
    /// `<from> text`.
    Message {
        /// Who said it.
        from: &'a str,
        /// What they said.
        text: &'a str,
    },
    /// `*from* text`.
    Private {
        /// Who sent it.
        from: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `-> *to* text`.
    PrivateSent {
        /// Who it went to.
        to: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `* from text`: an action (`/me`).
    Action {
        /// Who did it.
        from: &'a str,
        /// What they did.
        text: &'a str,
    },
    /// `*** text`: a notice from the server itself.
    Notice(&'a str),
    /// `! text`.
    Error(&'a str),
    /// `PING token`: answer `/pong token`.
    Ping(&'a str),
    /// Anything else (a server that is not ours, say).
    Other(&'a str),
}

impl<'a> ServerLine<'a> {
    /// Classifies one line (without its line ending).
    pub fn parse(line: &'a str) -> ServerLine<'a> {
        let nick_then_text = |rest: &'a str, close: &str| {
            rest.split_once(close).filter(|(nick, _)| !nick.is_empty() && !nick.contains(' '))
        };
        if let Some(text) = line.strip_prefix("*** ") {
            ServerLine::Notice(text)
        } else if let Some((from, text)) = line.strip_prefix("* ").and_then(|r| nick_then_text(r, " ")) {
            ServerLine::Action { from, text }
        } else if let Some(text) = line.strip_prefix("! ") {
            ServerLine::Error(text)
        } else if let Some(token) = line.strip_prefix("PING ") {
            ServerLine::Ping(token)
        } else if let Some((from, text)) = line.strip_prefix('<').and_then(|r| nick_then_text(r, "> ")) {
            ServerLine::Message { from, text }
        } else if let Some((to, text)) = line.strip_prefix("-> *").and_then(|r| nick_then_text(r, "* ")) {
            ServerLine::PrivateSent { to, text }
        } else if let Some((from, text)) = line.strip_prefix('*').and_then(|r| nick_then_text(r, "* ")) {
            ServerLine::Private { from, text }
        } else {
            ServerLine::Other(line)
        }
    }

    /// What kind of line this is, as in `chat join --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerLine::Message { .. } => "message",
            ServerLine::Private { .. } => "private",
            ServerLine::PrivateSent { .. } => "private_sent",
            ServerLine::Action { .. } => "action",
            ServerLine::Notice(_) => "notice",
            ServerLine::Error(_) => "error",
            ServerLine::Ping(_) => "ping",
            ServerLine::Other(_) => "other",
        }
    }
}

impl fmt::Display for ServerLine<'_> {
    /// The line as the server sent it, without its line ending.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerLine::Message { from, text } => write!(f, "<{from}> {text}"),
            ServerLine::Private { from, text } => write!(f, "*{from}* {text}"),
            ServerLine::PrivateSent { to, text } => write!(f, "-> *{to}* {text}"),
            ServerLine::Action { from, text } => write!(f, "* {from} {text}"),
            ServerLine::Notice(text) => write!(f, "*** {text}"),
            ServerLine::Error(text) => write!(f, "! {text}"),
            ServerLine::Ping(token) => write!(f, "PING {token}"),
            ServerLine::Other(line) => f.write_str(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str;

    use super::*;

    #[test]
    fn server_lines_render_and_parse_back() {
        assert_eq!(&message("alice", "hi")[..], b"<alice> hi\n");
        assert_eq!(&action("alice", "waves")[..], b"* alice waves\n");
        assert_eq!(&private("alice", "psst")[..], b"*alice* psst\n");
        assert_eq!(&private_sent("bob", "psst")[..], b"-> *bob* psst\n");
        assert_eq!(&notice(format_args!("bob joined {}", "lobby"))[..], b"*** bob joined lobby\n");
        assert_eq!(&error("nope")[..], b"! nope\n");
        assert_eq!(&ping(42)[..], b"PING 42\n");
        let parsed = |b: &Bytes| {
            let text = str::from_utf8(b).unwrap().trim_end();
            assert_eq!(ServerLine::parse(text).to_string(), text, "displays as sent");
            format!("{:?}", ServerLine::parse(text))
        };
        assert_eq!(
            parsed(&message("alice", "hi > there")),
            r#"Message { from: "alice", text: "hi > there" }"#
        );
        assert_eq!(parsed(&private("alice", "psst")), r#"Private { from: "alice", text: "psst" }"#);
        assert_eq!(parsed(&private_sent("bob", "x")), r#"PrivateSent { to: "bob", text: "x" }"#);
        assert_eq!(parsed(&action("alice", "waves")), r#"Action { from: "alice", text: "waves" }"#);
        assert_eq!(parsed(&notice("bob joined lobby")), r#"Notice("bob joined lobby")"#);
        assert_eq!(parsed(&error("nope")), r#"Error("nope")"#);
        assert_eq!(parsed(&ping("7f")), r#"Ping("7f")"#);
        assert_eq!(ServerLine::parse("+OK redis").kind(), "other");
        assert_eq!(others(0), "no one else");
        assert_eq!(others(1), "1 other");
        assert_eq!(others(7), "7 others");
    }

    #[test]
    fn an_action_cannot_pass_for_a_notice() {
        // A user called "server" acting "shutting down", or faking a rename.
        for (nick, text) in [("server", "shutting down"), ("bob", "is now known as alice")] {
            let line = action(nick, text);
            let line = str::from_utf8(&line).unwrap().trim_end();
            assert!(matches!(ServerLine::parse(line), ServerLine::Action { .. }), "{line}");
            assert_ne!(line, str::from_utf8(&notice(format_args!("{nick} {text}"))).unwrap().trim_end());
        }
    }

    #[test]
    fn replayed_lines_carry_their_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T18:46:00Z").unwrap().with_timezone(&Utc);
        let line = replayed(at, b"<alice> hi\n");
        assert_eq!(&line[..], b"[2026-11-22T18:46:00Z] <alice> hi\n");
        let text = str::from_utf8(&line).unwrap().trim_end();
        assert_eq!(split_replayed(text), (Some("2026-11-22T18:46:00Z"), "<alice> hi"));
        assert_eq!(split_replayed("<alice> [not a time] hi"), (None, "<alice> [not a time] hi"));
        assert_eq!(split_replayed("[soon] <alice> hi"), (None, "[soon] <alice> hi"));
    }
}
