//! The chat line protocol (pure): what a client's line asks for, the lines
//! the server sends, and the cleaning that makes relayed text harmless.
//!
//! Client to server, one request per line (UTF-8, `\n`-terminated, `\r\n`
//! accepted): a line not starting with `/` is a message to the room; `//text`
//! sends `/text`; `/nick NAME`, `/who`, `/msg NICK TEXT`, `/me ACTION`,
//! `/join ROOM`, `/quit [REASON]` and `/help` are commands; `bye` alone (any
//! case) is `/quit`.
//!
//! Server to client, one line each, told apart by how they start:
//!
//! | line | meaning |
//! |---|---|
//! | `<alice> hello` | a message to the room |
//! | `*alice* psst` | a private message to you |
//! | `-> *bob* psst` | your private message, as sent |
//! | `* alice waves`, `* bob joined lobby` | an action, or a notice from the server |
//! | `! nickname bob is taken` | an error, for you alone |
//!
//! Text from one client reaches others only through [`sanitize`](crate::text::sanitize), which
//! makes every control character visible (`ESC` becomes `^[`), so nothing
//! a client sends can move another client's cursor, retitle its window or
//! ring its bell.

use std::fmt::{self, Write as _};
use std::str;

use bytes::{BufMut, Bytes, BytesMut};

/// The longest nickname or room name, in characters.
pub const MAX_NAME: usize = 32;

/// Characters allowed in names besides letters and digits (of any script).
const NAME_PUNCTUATION: &str = "-_.[]{}|^`'";

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
        _ => return Err(RequestError::Unknown(word.to_owned())),
    };
    Ok(Some(request))
}

/// What the server answers to `/help`, one line each.
pub const HELP: [&str; 4] = [
    "commands: /nick NAME, /who, /msg NICK TEXT, /me ACTION, /join ROOM, /quit [REASON], /help",
    "any other line is a message to everyone in your room; start it with // to send a line that begins with /",
    "bye, alone on a line, leaves like /quit",
    "nicknames and rooms: 1 to 32 letters, digits or - _ . [ ] { } | ^ ` '",
];

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

/// A name (nickname or room) that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than [`MAX_NAME`] characters.
    #[error("{kind} {name:?} must be 1 to {MAX_NAME} characters long")]
    Length {
        /// "nickname" or "room name".
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// A character outside letters, digits and ``-_.[]{}|^`'``.
    #[error("{kind}s may not contain {bad:?}: use letters, digits and - _ . [ ] {{ }} | ^ ` '")]
    BadChar {
        /// "nickname" or "room name".
        kind: &'static str,
        /// The first offending character.
        bad: char,
    },
}

/// Checks a nickname (`kind` "nickname") or room name ("room name"): 1 to
/// [`MAX_NAME`] characters, each a letter, a digit or one of `-_.[]{}|^`'`.
///
/// # Errors
/// The first rule the name breaks.
pub fn check_name<'a>(kind: &'static str, name: &'a str) -> Result<&'a str, NameError> {
    if let Some(bad) = name.chars().find(|&c| !(c.is_alphanumeric() || NAME_PUNCTUATION.contains(c))) {
        return Err(NameError::BadChar { kind, bad });
    }
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(NameError::Length { kind, name: name.to_owned() });
    }
    Ok(name)
}

/// The key under which a name is unique: names differ only if they differ
/// in more than case.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

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

/// `* ...`: a notice from the server.
pub fn notice(text: impl fmt::Display) -> Bytes {
    prefixed("* ", text)
}

/// `! ...`: an error, for one client.
pub fn error(text: impl fmt::Display) -> Bytes {
    prefixed("! ", text)
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
    /// `* text`: a notice or an action.
    Notice(&'a str),
    /// `! text`.
    Error(&'a str),
    /// Anything else (a server that is not ours, say).
    Other(&'a str),
}

impl<'a> ServerLine<'a> {
    /// Classifies one line (without its line ending).
    pub fn parse(line: &'a str) -> ServerLine<'a> {
        let nick_then_text = |rest: &'a str, close: &str| {
            rest.split_once(close).filter(|(nick, _)| !nick.is_empty() && !nick.contains(' '))
        };
        if let Some(text) = line.strip_prefix("* ") {
            ServerLine::Notice(text)
        } else if let Some(text) = line.strip_prefix("! ") {
            ServerLine::Error(text)
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
            ServerLine::Notice(_) => "notice",
            ServerLine::Error(_) => "error",
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
            ServerLine::Notice(text) => write!(f, "* {text}"),
            ServerLine::Error(text) => write!(f, "! {text}"),
            ServerLine::Other(line) => f.write_str(line),
        }
    }
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
    fn names_follow_the_rules() {
        assert_eq!(check_name("nickname", "alice_2[x]"), Ok("alice_2[x]"));
        assert_eq!(check_name("nickname", "Zoë"), Ok("Zoë"));
        assert!(matches!(check_name("nickname", "a b"), Err(NameError::BadChar { bad: ' ', .. })));
        assert!(matches!(check_name("nickname", "<alice>"), Err(NameError::BadChar { bad: '<', .. })));
        assert!(matches!(check_name("nickname", "a\x1b"), Err(NameError::BadChar { bad: '\x1b', .. })));
        assert!(matches!(check_name("room name", &"x".repeat(33)), Err(NameError::Length { .. })));
        assert_eq!(check_name("room name", &"é".repeat(32)).map(str::len), Ok(64));
        assert_eq!(fold("AlIcE"), "alice");
        assert_eq!(fold("ZOË"), fold("zoë"));
    }

    #[test]
    fn server_lines_render_and_parse_back() {
        assert_eq!(&message("alice", "hi")[..], b"<alice> hi\n");
        assert_eq!(&action("alice", "waves")[..], b"* alice waves\n");
        assert_eq!(&private("alice", "psst")[..], b"*alice* psst\n");
        assert_eq!(&private_sent("bob", "psst")[..], b"-> *bob* psst\n");
        assert_eq!(&notice(format_args!("bob joined {}", "lobby"))[..], b"* bob joined lobby\n");
        assert_eq!(&error("nope")[..], b"! nope\n");
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
        assert_eq!(parsed(&notice("bob joined lobby")), r#"Notice("bob joined lobby")"#);
        assert_eq!(parsed(&error("nope")), r#"Error("nope")"#);
        assert_eq!(ServerLine::parse("+OK redis").kind(), "other");
        assert_eq!(others(0), "no one else");
        assert_eq!(others(1), "1 other");
        assert_eq!(others(7), "7 others");
    }
}
