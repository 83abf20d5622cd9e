//! IRC messages on the wire (pure): reading a client's line (RFC 1459 §2.3,
//! with IRCv3 message tags skipped) and writing the server's.
//!
//! A line is `[@tags ][:prefix ]COMMAND [params...] [:trailing]`. The
//! server writes every line it makes itself with its own name as prefix,
//! so a line a session hands on already rendered always starts with `:`
//! (or is an `ERROR`), which no chat line does.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

/// The most parameters a message may have (RFC 2812 §2.3).
const MAX_PARAMS: usize = 15;

/// One message from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The command, as sent (compare with [`Message::is`]).
    pub command: &'a str,
    /// Its parameters, the trailing one last.
    pub params: Vec<&'a str>,
}

/// A line that is not an IRC message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an IRC message: {0}")]
pub struct NotAMessage(&'static str);

impl<'a> Message<'a> {
    /// Reads one line (without its line ending).
    ///
    /// # Errors
    /// A line with no command.
    pub fn parse(line: &'a str) -> Result<Message<'a>, NotAMessage> {
        let mut rest = line.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
        if rest.starts_with('@') {
            rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start_matches(' ');
        }
        if rest.starts_with(':') {
            rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() || !command.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(NotAMessage("no command"));
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            if params.len() == MAX_PARAMS - 1 {
                params.push(rest);
                break;
            }
            let (param, more) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param);
            rest = more;
        }
        Ok(Message { command, params })
    }

    /// Whether the command is `name` (commands ignore case).
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }
}

/// Renders a line from `prefix`: `:prefix COMMAND middle... :trailing`. The
/// trailing parameter is always written with its colon, as servers do.
/// Parameters must hold no line ending (chat text is sanitized before it
/// gets here, which shows any as `^J`).
pub fn line(prefix: &str, command: &str, middle: &[&str], trailing: Option<&str>) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    write_line(&mut out, prefix, command, middle, trailing);
    out.freeze()
}

/// [`line()`], appended to `out`.
pub fn write_line(out: &mut BytesMut, prefix: &str, command: &str, middle: &[&str], trailing: Option<&str>) {
    out.put_u8(b':');
    out.put_slice(prefix.as_bytes());
    out.put_u8(b' ');
    out.put_slice(command.as_bytes());
    for param in middle {
        out.put_u8(b' ');
        out.put_slice(param.as_bytes());
    }
    if let Some(trailing) = trailing {
        out.put_slice(b" :");
        out.put_slice(trailing.as_bytes());
    }
    out.put_slice(b"\r\n");
}

/// A numeric reply: `:server NNN target middle... :text`.
pub fn numeric(server: &str, code: u16, target: &str, middle: &[&str], text: &str) -> Bytes {
    let mut command = String::with_capacity(3);
    // Cannot fail: writing to a String.
    let _ = write!(command, "{code:03}");
    let mut params = Vec::with_capacity(middle.len() + 1);
    params.push(target);
    params.extend_from_slice(middle);
    line(server, &command, &params, Some(text))
}

/// The text of a CTCP message (`\x01ACTION waves\x01`): its command and
/// argument; `None` for ordinary text.
pub fn ctcp(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('\x01')?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    Some(inner.split_once(' ').unwrap_or((inner, "")))
}

/// `text` cut into pieces of at most `max` bytes, on character boundaries:
/// one long chat line becomes several IRC messages, each of which fits in
/// the 512 bytes that some clients still expect.
pub fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max.max(4));
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, more) = rest.split_at(end);
        rest = more;
        Some(piece)
    })
}

// Numeric replies used by the server (RFC 1459/2812 names).
/// Welcome to the network.
pub const RPL_WELCOME: u16 = 1;
/// Your host.
pub const RPL_YOURHOST: u16 = 2;
/// Server created.
pub const RPL_CREATED: u16 = 3;
/// Server name and modes.
pub const RPL_MYINFO: u16 = 4;
/// What the server supports (ISUPPORT).
pub const RPL_ISUPPORT: u16 = 5;
/// User modes.
pub const RPL_UMODEIS: u16 = 221;
/// USERHOST answer.
pub const RPL_USERHOST: u16 = 302;
/// ISON answer.
pub const RPL_ISON: u16 = 303;
/// WHOIS: the user.
pub const RPL_WHOISUSER: u16 = 311;
/// WHOIS: its server.
pub const RPL_WHOISSERVER: u16 = 312;
/// End of WHO.
pub const RPL_ENDOFWHO: u16 = 315;
/// End of WHOIS.
pub const RPL_ENDOFWHOIS: u16 = 318;
/// WHOIS: its channels.
pub const RPL_WHOISCHANNELS: u16 = 319;
/// LIST starts.
pub const RPL_LISTSTART: u16 = 321;
/// LIST: one channel.
pub const RPL_LIST: u16 = 322;
/// End of LIST.
pub const RPL_LISTEND: u16 = 323;
/// Channel modes.
pub const RPL_CHANNELMODEIS: u16 = 324;
/// No topic.
pub const RPL_NOTOPIC: u16 = 331;
/// Server version.
pub const RPL_VERSION: u16 = 351;
/// WHO: one user.
pub const RPL_WHOREPLY: u16 = 352;
/// NAMES: some names.
pub const RPL_NAMREPLY: u16 = 353;
/// End of NAMES.
pub const RPL_ENDOFNAMES: u16 = 366;
/// End of a ban list.
pub const RPL_ENDOFBANLIST: u16 = 368;
/// End of WHOWAS.
pub const RPL_ENDOFWHOWAS: u16 = 369;
/// Server time.
pub const RPL_TIME: u16 = 391;
/// No such nick.
pub const ERR_NOSUCHNICK: u16 = 401;
/// No such channel.
pub const ERR_NOSUCHCHANNEL: u16 = 403;
/// Cannot send to channel.
pub const ERR_CANNOTSENDTOCHAN: u16 = 404;
/// Too many channels.
pub const ERR_TOOMANYCHANNELS: u16 = 405;
/// There was no such nick.
pub const ERR_WASNOSUCHNICK: u16 = 406;
/// Too many targets.
pub const ERR_TOOMANYTARGETS: u16 = 407;
/// No recipient.
pub const ERR_NORECIPIENT: u16 = 411;
/// No text to send.
pub const ERR_NOTEXTTOSEND: u16 = 412;
/// Unknown command.
pub const ERR_UNKNOWNCOMMAND: u16 = 421;
/// No MOTD.
pub const ERR_NOMOTD: u16 = 422;
/// No nickname given.
pub const ERR_NONICKNAMEGIVEN: u16 = 431;
/// Erroneous nickname.
pub const ERR_ERRONEUSNICKNAME: u16 = 432;
/// Nickname in use.
pub const ERR_NICKNAMEINUSE: u16 = 433;
/// Nick temporarily unavailable.
pub const ERR_UNAVAILRESOURCE: u16 = 437;
/// Not on that channel.
pub const ERR_NOTONCHANNEL: u16 = 442;
/// Not registered.
pub const ERR_NOTREGISTERED: u16 = 451;
/// Not enough parameters.
pub const ERR_NEEDMOREPARAMS: u16 = 461;
/// Already registered.
pub const ERR_ALREADYREGISTRED: u16 = 462;
/// Not a channel operator.
pub const ERR_CHANOPRIVSNEEDED: u16 = 482;
/// Bad channel name (a common extension).
pub const ERR_BADCHANNAME: u16 = 479;
/// Unknown mode.
pub const ERR_UMODEUNKNOWNFLAG: u16 = 501;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_with_tags_prefix_and_trailing() {
        let m = Message::parse("@time=x;a=b :alice!a@h PRIVMSG #lobby :hello there :)\r").unwrap();
        assert_eq!(m, Message { command: "PRIVMSG", params: vec!["#lobby", "hello there :)"] });
        assert!(m.is("privmsg"));
        assert_eq!(Message::parse("NICK alice").unwrap().params, vec!["alice"]);
        assert_eq!(Message::parse("CAP LS 302").unwrap().params, vec!["LS", "302"]);
        assert_eq!(Message::parse("USER u 0 * :Real Name").unwrap().params, vec!["u", "0", "*", "Real Name"]);
        assert_eq!(Message::parse("PING").unwrap().params, Vec::<&str>::new());
        assert_eq!(Message::parse("TOPIC #a :").unwrap().params, vec!["#a", ""]);
        assert_eq!(Message::parse("JOIN  #a   key ").unwrap().params, vec!["#a", "key"]);
        for bad in ["", "   ", ":prefix-only", "@tags-only", "PRIV/MSG x"] {
            assert!(Message::parse(bad).is_err(), "{bad:?}");
        }
        let many = format!("CMD {}", (0..20).map(|n| n.to_string()).collect::<Vec<_>>().join(" "));
        let m = Message::parse(&many).unwrap();
        assert_eq!(m.params.len(), MAX_PARAMS);
        assert_eq!(m.params[14], "14 15 16 17 18 19");
    }

    #[test]
    fn lines_render_with_prefix_and_trailing() {
        assert_eq!(
            &line("bob!bob@chat", "PRIVMSG", &["#lobby"], Some("hi"))[..],
            b":bob!bob@chat PRIVMSG #lobby :hi\r\n"
        );
        assert_eq!(
            &numeric("socketeer", RPL_WELCOME, "alice", &[], "Welcome")[..],
            b":socketeer 001 alice :Welcome\r\n"
        );
        assert_eq!(&numeric("s", 353, "a", &["=", "#x"], "a b")[..], b":s 353 a = #x :a b\r\n");
    }

    #[test]
    fn ctcp_and_pieces() {
        assert_eq!(ctcp("\x01ACTION waves\x01"), Some(("ACTION", "waves")));
        assert_eq!(ctcp("\x01VERSION\x01"), Some(("VERSION", "")));
        assert_eq!(ctcp("plain"), None);
        let text = "é".repeat(300);
        let parts: Vec<&str> = pieces(&text, 401).collect();
        assert!(parts.iter().all(|p| p.len() <= 401));
        assert_eq!(parts.concat(), text);
        assert_eq!(pieces("", 10).count(), 0);
    }
}
