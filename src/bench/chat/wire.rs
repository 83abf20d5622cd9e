//! What the load generator says to a chat server and to Redis, and how it
//! recognises deliveries in what comes back.
//!
//! Both carry the same payload: `S<sender> <seq> <nanos> ` padded with `x` to
//! the message size. The payload never holds a line break, so both servers'
//! output can be read line by line: a chat delivery is `<nick> PAYLOAD`, and
//! in Redis's `message` reply (`*3`, `$7`, `message`, `$5`, `bench`, `$N`,
//! `PAYLOAD`) the payload is the only line that starts with `S`; over IRC a
//! delivery is `:nick!user@host PRIVMSG #lobby :PAYLOAD`.

use std::fmt::Write as _;

use serde::Serialize;

/// The Redis channel the load uses.
const CHANNEL: &str = "bench";
/// The IRC channel the load uses: socketeer's default room.
const IRC_CHANNEL: &str = "#lobby";

/// The longest payload header: `S` and three numbers of at most 20 digits.
pub const MAX_HEADER: usize = 1 + 3 * 21;

/// The protocol a load speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// socketeer's chat line protocol (or any server that relays lines as `<nick> text`).
    Chat,
    /// Redis pub/sub: subscribers `SUBSCRIBE`, senders `PUBLISH`.
    Redis,
    /// IRC (socketeer's chat or any IRC server): every connection registers
    /// and joins `#lobby`, senders `PRIVMSG #lobby`.
    Irc,
}

/// What one connection of the load does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends messages (and, on a chat server, receives the other senders').
    Sender(usize),
    /// Receives.
    Reader,
    /// Connects, then never reads a byte.
    Stalled,
}

impl Wire {
    /// What connection number `index` sends as soon as it is connected.
    pub fn hello(self, role: Role, index: usize) -> Vec<u8> {
        match (self, role) {
            (Wire::Chat, _) | (Wire::Redis, Role::Sender(_)) => Vec::new(),
            (Wire::Redis, Role::Reader | Role::Stalled) => b"SUBSCRIBE bench\r\n".to_vec(),
            (Wire::Irc, _) => {
                format!("NICK bench{index}\r\nUSER bench 0 * :bench\r\nJOIN {IRC_CHANNEL}\r\n").into_bytes()
            }
        }
    }

    /// What a connection sends once it has joined: to a chat server, a
    /// `/pong` (a line that asks for nothing), so that it counts as a client
    /// that has spoken, not as a silent connection (which the server limits
    /// per address, and closes after a while).
    pub fn after_joining(self) -> &'static [u8] {
        match self {
            Wire::Chat => b"/pong\n",
            Wire::Redis | Wire::Irc => b"",
        }
    }

    /// Whether a connection that sent its hello is ready for the load
    /// without waiting for an answer (a Redis publisher).
    pub fn ready_at_once(self, role: Role) -> bool {
        self == Wire::Redis && matches!(role, Role::Sender(_))
    }

    /// Whether `line` says the connection has joined: the chat's welcome,
    /// the count of channels at the end of Redis's `subscribe` reply, or the
    /// end of the channel's names (`366`) that completes an IRC `JOIN`.
    pub fn joined(self, line: &[u8]) -> bool {
        match self {
            Wire::Chat => line.starts_with(b"*** welcome"),
            Wire::Redis => line.starts_with(b":"),
            Wire::Irc => irc_command(line) == Some(b"366"),
        }
    }

    /// Whether `line` is an error from the server.
    pub fn is_error(self, line: &[u8]) -> bool {
        match self {
            Wire::Chat => line.starts_with(b"! "),
            Wire::Redis => line.starts_with(b"-"),
            // A numeric 400 to 599, or the server's `ERROR` before it closes.
            Wire::Irc => {
                line.starts_with(b"ERROR ")
                    || irc_command(line).is_some_and(|c| c.len() == 3 && matches!(c[0], b'4' | b'5'))
            }
        }
    }

    /// Whether `line` is the server holding the load back by one of its
    /// per-client limits: socketeer's chat server's flood notice (`! slow
    /// down`) or its refusals of connections from one address (too many,
    /// or too many new ones at once).
    pub fn is_limit(self, line: &[u8]) -> bool {
        self == Wire::Chat
            && (line.starts_with(b"! slow down")
                || line.starts_with(b"! too many connections from your address")
                || line.starts_with(b"! too many new connections from your address"))
    }

    /// The line that says a connection has joined, as a person reads it.
    pub fn joined_line(self) -> &'static str {
        match self {
            Wire::Chat => "a welcome line ('*** welcome, ...') as socketeer's chat server sends",
            Wire::Redis => "the reply to SUBSCRIBE",
            Wire::Irc => "the end of #lobby's names (numeric 366) after JOIN",
        }
    }

    /// Appends one message carrying `payload` to `out`.
    pub fn message(self, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Wire::Chat => {
                out.extend_from_slice(payload);
                out.push(b'\n');
            }
            Wire::Redis => {
                let head = format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{CHANNEL}\r\n${}\r\n",
                    CHANNEL.len(),
                    payload.len()
                );
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            Wire::Irc => {
                out.extend_from_slice(format!("PRIVMSG {IRC_CHANNEL} :").as_bytes());
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The payload in `line` (without its line ending), if it is a delivery.
    pub fn delivery(self, line: &[u8]) -> Option<&[u8]> {
        match self {
            Wire::Chat if line.first() == Some(&b'<') => {
                let start = line.windows(2).position(|w| w == b"> ")? + 2;
                Some(&line[start..])
            }
            Wire::Redis if line.first() == Some(&b'S') => Some(line),
            Wire::Irc if irc_command(line) == Some(b"PRIVMSG") => {
                // `:source PRIVMSG target :text`: the text follows the first ` :` after the prefix.
                let start = line.get(1..)?.windows(2).position(|w| w == b" :")? + 3;
                line.get(start..)
            }
            Wire::Chat | Wire::Redis | Wire::Irc => None,
        }
    }
}

/// The command (or numeric) of an IRC line from a server: the word after
/// its `:prefix`.
fn irc_command(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b":")?;
    rest.split(|&b| b == b' ').nth(1)
}

/// One message's identity and send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Which sender.
    pub sender: usize,
    /// Its number in that sender's sequence, from 0.
    pub seq: u64,
    /// When it was (meant to be) sent, in nanoseconds since the run's base.
    pub nanos: u64,
}

impl Stamp {
    /// Writes the payload of `size` bytes (at least [`MAX_HEADER`]) into `out`.
    pub fn payload(self, size: usize, out: &mut String) {
        out.clear();
        // Cannot fail: writing to a String.
        let _ = write!(out, "S{} {} {} ", self.sender, self.seq, self.nanos);
        while out.len() < size {
            out.push('x');
        }
    }

    /// Reads a payload written by [`Stamp::payload`].
    pub fn parse(payload: &[u8]) -> Option<Stamp> {
        let mut fields = payload.strip_prefix(b"S")?.splitn(4, |&b| b == b' ');
        let mut number = || -> Option<u64> {
            let field = fields.next()?;
            if field.is_empty() || field.len() > 20 {
                return None;
            }
            field.iter().try_fold(0u64, |n, &d| {
                d.is_ascii_digit().then_some(())?;
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
        };
        let sender = usize::try_from(number()?).ok()?;
        Some(Stamp { sender, seq: number()?, nanos: number()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_the_asked_size() {
        let stamp = Stamp { sender: 3, seq: 12_345, nanos: 987_654_321 };
        let mut payload = String::new();
        stamp.payload(64, &mut payload);
        assert_eq!(payload.len(), 64);
        assert!(payload.starts_with("S3 12345 987654321 xxx"));
        assert_eq!(Stamp::parse(payload.as_bytes()), Some(stamp));
        assert_eq!(Stamp::parse(b"S1 2"), None);
        assert_eq!(Stamp::parse(b"S1 x 3 "), None);
        assert_eq!(Stamp::parse(b"hello"), None);
    }

    #[test]
    fn deliveries_are_found_in_both_protocols() {
        assert_eq!(Wire::Chat.delivery(b"<guest7> S0 1 2 xx"), Some(&b"S0 1 2 xx"[..]));
        assert_eq!(Wire::Chat.delivery(b"* guest7 joined lobby"), None);
        assert_eq!(Wire::Redis.delivery(b"S0 1 2 xx"), Some(&b"S0 1 2 xx"[..]));
        for line in [&b"*3"[..], b"$7", b"message", b"$5", b"bench", b"$64", b":1", b"subscribe"] {
            assert_eq!(Wire::Redis.delivery(line), None);
        }
        let mut out = Vec::new();
        Wire::Redis.message(b"S0 1 2 x", &mut out);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$8\r\nS0 1 2 x\r\n");
        assert!(Wire::Redis.joined(b":1") && Wire::Chat.joined(b"*** welcome, guest1: ..."));
        assert!(!Wire::Chat.joined(b"* welcome to my server"), "an action is no welcome");
        assert!(Wire::Chat.is_error(b"! slow down") && Wire::Redis.is_error(b"-ERR wrong"));
        assert!(Wire::Chat.is_limit(b"! slow down: at most 10 lines/s"));
        let line = b":bench3!bench@127.0.0.1 PRIVMSG #lobby :S0 1 2 x :y";
        assert_eq!(Wire::Irc.delivery(line), Some(&b"S0 1 2 x :y"[..]));
        assert_eq!(Wire::Irc.delivery(b":bench3!b@h JOIN #lobby"), None);
        assert_eq!(Wire::Irc.delivery(b"PING :x"), None);
        let mut out = Vec::new();
        Wire::Irc.message(b"S0 1 2 x", &mut out);
        assert_eq!(out, b"PRIVMSG #lobby :S0 1 2 x\r\n");
        assert!(Wire::Irc.joined(b":irc.local 366 bench1 #lobby :End of NAMES list"));
        assert!(!Wire::Irc.joined(b":irc.local 353 bench1 = #lobby :bench1"));
        assert!(Wire::Irc.is_error(b":irc.local 433 * bench1 :Nickname already in use"));
        assert!(!Wire::Irc.is_error(b":irc.local 001 bench1 :Welcome"));
        assert_eq!(
            Wire::Irc.hello(Role::Reader, 7),
            b"NICK bench7\r\nUSER bench 0 * :bench\r\nJOIN #lobby\r\n"
        );
        assert!(Wire::Chat.is_limit(b"! too many connections from your address (at most 16)"));
        assert!(!Wire::Chat.is_limit(b"! no such nick") && !Wire::Redis.is_limit(b"! slow down"));
    }
}
