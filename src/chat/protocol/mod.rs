//! The chat line protocol (pure): what a client's line asks for, the lines
//! the server sends, and the cleaning that makes relayed text harmless.
//!
//! Client to server, one request per line (UTF-8, `\n`-terminated, `\r\n`
//! accepted): a line not starting with `/` is a message to the room; `//text`
//! sends `/text`; `/nick NAME`, `/who`, `/msg NICK TEXT`, `/me ACTION`,
//! `/join ROOM`, `/quit [REASON]`, `/help` and `/pong TOKEN` are commands;
//! `bye` alone (any case) is `/quit`.
//!
//! Server to client, one line each, told apart by how they start
//! ([`ServerLine`] reads them back):
//!
//! | line | meaning |
//! |---|---|
//! | `<alice> hello` | a message to the room |
//! | `*alice* psst` | a private message to you |
//! | `-> *bob* psst` | your private message, as sent |
//! | `* alice waves` | an action (`/me waves`) |
//! | `*** bob joined lobby` | a notice from the server: no client can write one |
//! | `! nickname bob is taken` | an error, for you alone |
//! | `PING 5` | are you there? (`chat join` answers `/pong 5`; `nc` users need not) |
//! | `[2026-11-22T18:46:00Z] <alice> hi` | a line of the room's history, with its time |
//!
//! A connection's first line also tells which protocol it speaks
//! ([`identify`]): an IRC client's registration (`CAP`, `PASS`, `NICK`,
//! `USER`) is never taken for chat.
//!
//! Text from one client reaches others only through [`sanitize`](crate::text::sanitize), which
//! makes every control character visible (`ESC` becomes `^[`), so nothing
//! a client sends can move another client's cursor, retitle its window or
//! ring its bell.

use std::str;

mod lines;
mod names;
pub mod notices;

pub use lines::{
    ServerLine, action, error, message, notice, others, ping, private, private_sent, replayed, split_replayed,
};
pub use names::{MAX_NAME, NameError, check_name, fold};

/// What one line from a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// A message to everyone else in the room.
    Say(&'a str),
    /// `/me ACTION`: an action, shown as `* nick ACTION`.
    Act(&'a str),
    /// `/nick NAME`: a new nickname.
    Nick(&'a str),
    /// `/who`: who is in the room.
    Who,
    /// `/msg NICK TEXT`: a private message.
    Tell {
        /// The addressee's nickname.
        to: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `/join ROOM`: move to another room (created when new).
    Join(&'a str),
    /// `/quit [REASON]` or `bye`: leave.
    Quit(Option<&'a str>),
    /// `/help`: the list of commands.
    Help,
    /// `/pong [TOKEN]`: the answer to a `PING`.
    Pong,
    /// `/list`: the rooms, and how many are in each.
    List,
}

/// A line that asks for something that does not exist or is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A `/word` that is no command.
    #[error("unknown command /{0}; /help lists the commands")]
    Unknown(String),
    /// A command with missing or extra arguments.
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// Parses one line (already decoded, without its line ending). A blank line
/// asks for nothing: `Ok(None)`.
///
/// # Errors
/// An unknown command, or a command used wrongly.
pub fn parse(line: &str) -> Result<Option<Request<'_>>, RequestError> {
    let line = line.trim_end();
    if line.trim_start().is_empty() {
        return Ok(None);
    }
    if line.trim_start().eq_ignore_ascii_case("bye") {
        return Ok(Some(Request::Quit(None)));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Some(Request::Say(line)));
    };
    if command.starts_with('/') {
        return Ok(Some(Request::Say(command)));
    }
    let (word, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    let rest = rest.trim();
    let one_word = |usage| match rest {
        "" => Err(RequestError::Usage(usage)),
        r if r.contains(char::is_whitespace) => Err(RequestError::Usage(usage)),
        r => Ok(r),
    };
    let request = match word.to_ascii_lowercase().as_str() {
        "nick" => Request::Nick(one_word("/nick NAME")?),
        "join" => Request::Join(one_word("/join ROOM")?),
        "who" if rest.is_empty() => Request::Who,
        "who" => return Err(RequestError::Usage("/who")),
        "help" => Request::Help,
        "me" if !rest.is_empty() => Request::Act(rest),
        "me" => return Err(RequestError::Usage("/me ACTION")),
        "msg" => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Request::Tell { to, text: text.trim_start() },
            _ => return Err(RequestError::Usage("/msg NICK TEXT")),
        },
        "quit" => Request::Quit((!rest.is_empty()).then_some(rest)),
        "pong" => Request::Pong,
        "list" if rest.is_empty() => Request::List,
        "list" => return Err(RequestError::Usage("/list")),
        _ => return Err(RequestError::Unknown(word.to_owned())),
    };
    Ok(Some(request))
}

/// What the server answers to `/help`, one line each.
pub const HELP: [&str; 4] = [
    "commands: /nick NAME, /who, /msg NICK TEXT, /me ACTION, /join ROOM, /list, /quit [REASON], /help",
    "any other line is a message to everyone in your room; start it with // to send a line that begins with /",
    "bye, alone on a line, leaves like /quit",
    "nicknames and rooms: 1 to 32 letters, digits or - _ . [ ] { } | ^ ` '",
];

/// The protocol a connection speaks, as its first line tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// This chat's line protocol (`nc`, `chat join`).
    Lines,
    /// IRC: the line is one of an IRC client's registration commands.
    Irc,
}

/// Which protocol a connection speaks, from its first line: IRC clients
/// open with `CAP LS`, `PASS secret`, `NICK name` or `USER name 0 * :Real
/// Name` (commands in capitals, with their parameters), which must never
/// reach a room as chat (a password among them).
pub fn identify(first: &str) -> Dialect {
    let mut words = first.trim_end().split(' ');
    let params = || first.split(' ').skip(1).filter(|w| !w.is_empty()).count();
    let irc = match words.next().unwrap_or_default() {
        "CAP" => matches!(words.next(), Some("LS" | "REQ" | "END" | "LIST")),
        "PASS" | "NICK" => params() >= 1,
        "USER" => params() >= 4,
        _ => false,
    };
    if irc { Dialect::Irc } else { Dialect::Lines }
}

/// A raw line that is not text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 at byte {at}; line not relayed")]
pub struct InvalidUtf8 {
    /// Where the first invalid byte is.
    pub at: usize,
}

/// A line's text: `raw` without a trailing `\r`, checked to be UTF-8.
///
/// # Errors
/// When the bytes are not UTF-8.
pub fn decode(raw: &[u8]) -> Result<&str, InvalidUtf8> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    str::from_utf8(raw).map_err(|e| InvalidUtf8 { at: e.valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_messages_and_commands_parse() {
        assert_eq!(parse("hello there"), Ok(Some(Request::Say("hello there"))));
        assert_eq!(parse("  indented  "), Ok(Some(Request::Say("  indented"))));
        assert_eq!(parse("//etc/passwd"), Ok(Some(Request::Say("/etc/passwd"))));
        assert_eq!(parse("/nick alice"), Ok(Some(Request::Nick("alice"))));
        assert_eq!(parse("/NICK alice "), Ok(Some(Request::Nick("alice"))));
        assert_eq!(parse("/who"), Ok(Some(Request::Who)));
        assert_eq!(parse("/msg bob  hi there"), Ok(Some(Request::Tell { to: "bob", text: "hi there" })));
        assert_eq!(parse("/me waves"), Ok(Some(Request::Act("waves"))));
        assert_eq!(parse("/join #rust"), Ok(Some(Request::Join("#rust"))));
        assert_eq!(parse("/quit"), Ok(Some(Request::Quit(None))));
        assert_eq!(parse("/quit gone fishing"), Ok(Some(Request::Quit(Some("gone fishing")))));
        assert_eq!(parse("/help"), Ok(Some(Request::Help)));
        assert_eq!(parse("/list"), Ok(Some(Request::List)));
        assert_eq!(parse("BYE"), Ok(Some(Request::Quit(None))));
        assert_eq!(parse("bye now"), Ok(Some(Request::Say("bye now"))));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn malformed_commands_say_how_to_use_them() {
        assert_eq!(parse("/nick"), Err(RequestError::Usage("/nick NAME")));
        assert_eq!(parse("/nick two words"), Err(RequestError::Usage("/nick NAME")));
        assert_eq!(parse("/msg bob"), Err(RequestError::Usage("/msg NICK TEXT")));
        assert_eq!(parse("/msg bob   "), Err(RequestError::Usage("/msg NICK TEXT")));
        assert_eq!(parse("/me"), Err(RequestError::Usage("/me ACTION")));
        assert_eq!(parse("/who is there"), Err(RequestError::Usage("/who")));
        assert_eq!(parse("/frob x"), Err(RequestError::Unknown("frob".to_owned())));
        assert_eq!(
            parse("/frob").unwrap_err().to_string(),
            "unknown command /frob; /help lists the commands"
        );
    }

    #[test]
    fn decode_strips_one_carriage_return_and_rejects_invalid_utf8() {
        assert_eq!(decode(b"hi\r"), Ok("hi"));
        assert_eq!(decode(b"hi\r\r"), Ok("hi\r"));
        assert_eq!(decode("héllo".as_bytes()), Ok("héllo"));
        assert_eq!(decode(b"ok \xff\xfe"), Err(InvalidUtf8 { at: 3 }));
        assert_eq!(decode(b"\xc3"), Err(InvalidUtf8 { at: 0 }));
    }

    #[test]
    fn irc_registration_is_told_from_chat() {
        for irc in ["CAP LS 302", "PASS s3cret-password", "NICK alice", "USER ii 0 * :Real Name", "CAP END\r"]
        {
            assert_eq!(identify(irc), Dialect::Irc, "{irc}");
        }
        for chat in ["hello", "/nick alice", "nick alice", "NICK", "USER error", "CAP", "PASS", "cap ls"] {
            assert_eq!(identify(chat), Dialect::Lines, "{chat}");
        }
        assert_eq!(parse("/pong 42"), Ok(Some(Request::Pong)));
        assert_eq!(parse("/PONG"), Ok(Some(Request::Pong)));
    }
}
