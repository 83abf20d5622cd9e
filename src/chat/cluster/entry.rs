//! What a node keeps in Redis and how it reads it back (pure: commands are
//! built as values, replies are decoded from values; nothing is sent here).
//!
//! | key | type | what |
//! |---|---|---|
//! | `socketeer:chat:room:<room>` | stream | the lines broadcast in a room (its folded name) |
//! | `socketeer:chat:presence` | stream | who goes by which nickname in which room, and nodes saying hello |
//! | `socketeer:chat:inbox:<node>` | stream | private lines for a node's clients |
//! | `socketeer:chat:members:<node>` | hash | a node's clients: folded nickname to `room nick` |
//! | `socketeer:chat:nick:<nick>` | string | the lease on a nickname (folded): `node/boot/client`, with an expiry |
//! | `socketeer:chat:alive:<node>` | string | the node's own lease: its boot, with an expiry |
//! | `socketeer:chat:nodes` | set | the nodes that have been seen (dead ones are removed by whoever notices) |
//!
//! Every stream entry carries its writer (`o` node, `b` boot: when that run
//! of it started, in nanoseconds since the epoch, `s` the entry's number in
//! what that run wrote) and a type `t`: `m` a line the room's history keeps
//! (a message or action), `n` any other line (a notice), `p` a presence
//! change (`u` nickname, `r` room, absent when the nickname is given up),
//! `h` hello (re-read my members), `w` a private line (`to` folded nickname).
//! Lines are in `l`, as clients see them.

use std::fmt;
use std::str;

use bytes::Bytes;
use redis::{Cmd, Value};

/// The prefix of every key.
const PREFIX: &str = "socketeer:chat";

/// Takes or renews leases: for each key, if it is free or holds the given
/// value, sets it to that value with the expiry (ARGV\[1\], milliseconds).
/// Returns 1 for each lease held, 0 for each held by someone else.
pub const CLAIM: &str = r"
local held = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[i + 1] then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
";

/// Deletes the key if it holds the value: gives up a lease that is still ours.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The names of the keys.
pub fn room_key(room: &str) -> String {
    format!("{PREFIX}:room:{room}")
}

/// The stream of presence changes.
pub fn presence_key() -> String {
    format!("{PREFIX}:presence")
}

/// A node's stream of private lines.
pub fn inbox_key(node: &str) -> String {
    format!("{PREFIX}:inbox:{node}")
}

/// A node's hash of members.
pub fn members_key(node: &str) -> String {
    format!("{PREFIX}:members:{node}")
}

/// The lease on a (folded) nickname.
pub fn nick_key(nick: &str) -> String {
    format!("{PREFIX}:nick:{nick}")
}

/// A node's own lease.
pub fn alive_key(node: &str) -> String {
    format!("{PREFIX}:alive:{node}")
}

/// The set of nodes.
pub fn nodes_key() -> String {
    format!("{PREFIX}:nodes")
}

/// Which room of a room stream's key, if it is one.
pub fn room_of(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?.strip_prefix(":room:")
}

/// What a lease on a nickname holds: which client of which run of which node.
pub fn lease_value(node: &str, boot: u64, client: u64) -> String {
    format!("{node}/{boot}/{client}")
}

/// A member as a node's hash stores it.
pub fn member_value(room: &str, nick: &str) -> String {
    format!("{room} {nick}")
}

/// Reads a member back: (nickname, room). Names hold no spaces.
pub fn parse_member(value: &[u8]) -> Option<(String, String)> {
    let (room, nick) = str::from_utf8(value).ok()?.split_once(' ')?;
    Some((nick.to_owned(), room.to_owned()))
}

/// The id of a stream entry: Redis's milliseconds and sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    /// Milliseconds (Redis's clock when the entry was added).
    pub ms: u64,
    /// Its number among the entries of that millisecond.
    pub seq: u64,
}

impl EntryId {
    /// Before every entry.
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// Parses `1700000000000-3`.
    pub fn parse(text: &[u8]) -> Option<EntryId> {
        let (ms, seq) = str::from_utf8(text).ok()?.split_once('-')?;
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// When Redis added the entry (its clock, to the millisecond).
    pub fn time(self) -> chrono::DateTime<chrono::Utc> {
        let ms = i64::try_from(self.ms).unwrap_or(i64::MAX);
        chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// The last possible id of the millisecond before this one's: reading
    /// after it gets every entry of this id's millisecond, whichever stream
    /// it is in (each stream numbers its own entries).
    pub fn just_before(self) -> EntryId {
        match self.ms {
            0 => EntryId::ZERO,
            ms => EntryId { ms: ms - 1, seq: u64::MAX },
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Who wrote an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    /// The node.
    pub node: String,
    /// Which run of it (its start, in nanoseconds since the epoch).
    pub boot: u64,
    /// The entry's number in what that run wrote, from 1.
    pub seq: u64,
}

/// What an entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A line broadcast in a room; `kept` when its history keeps it.
    Line {
        /// As clients see it.
        line: Bytes,
        /// A message or action (not a notice).
        kept: bool,
    },
    /// A member goes by `nick` in `room` from now on, or (no room) no longer goes by it.
    Present {
        /// The nickname.
        nick: String,
        /// The room's display name.
        room: Option<String>,
    },
    /// The writer (re)connected: its members are what its hash holds.
    Hello,
    /// A private line for one client of the node whose inbox it is in.
    Tell {
        /// The client's folded nickname.
        to: String,
        /// As the client sees it.
        line: Bytes,
    },
}

/// One entry of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it is in its stream.
    pub id: EntryId,
    /// Who wrote it and what it says; `None` when it is not one of ours
    /// (skipped, but its id still moves the reader on).
    pub record: Option<(Writer, Body)>,
}

/// Appends `XADD key MAXLEN ~ len * <fields>` for `body` from `writer` to a command.
pub fn xadd(key: &str, max_len: usize, writer: &Writer, body: &Body) -> Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    cmd.arg("o").arg(&writer.node).arg("b").arg(writer.boot).arg("s").arg(writer.seq);
    match body {
        Body::Line { line, kept } => {
            cmd.arg("t").arg(if *kept { "m" } else { "n" }).arg("l").arg(&line[..]);
        }
        Body::Present { nick, room } => {
            cmd.arg("t").arg("p").arg("u").arg(nick);
            if let Some(room) = room {
                cmd.arg("r").arg(room);
            }
        }
        Body::Hello => {
            cmd.arg("t").arg("h");
        }
        Body::Tell { to, line } => {
            cmd.arg("t").arg("w").arg("to").arg(to).arg("l").arg(&line[..]);
        }
    }
    cmd
}

/// A reply that is not what the command returns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply from Redis: {0}")]
pub struct BadReply(pub String);

fn bad(what: &str, value: &Value) -> BadReply {
    let mut shown = format!("{value:?}");
    shown.truncate(120);
    BadReply(format!("{what} in {shown}"))
}

/// Decodes XREAD's reply: each stream's key and its new entries, in the
/// order asked. A nil reply (nothing came within the block time) is empty.
///
/// # Errors
/// When the reply does not have XREAD's shape.
pub fn read_reply(value: Value) -> Result<Vec<(String, Vec<Entry>)>, BadReply> {
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams.into_iter().map(pair).collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams,
        other => return Err(bad("not a list of streams", &other)),
    };
    streams
        .into_iter()
        .map(|(key, entries)| {
            let key = text(&key).ok_or_else(|| bad("a stream's key", &key))?;
            Ok((key, range_reply(entries)?))
        })
        .collect()
}

/// Decodes the entries of XRANGE, XREVRANGE or one stream of XREAD, in the
/// order given.
///
/// # Errors
/// When the reply does not have that shape.
pub fn range_reply(value: Value) -> Result<Vec<Entry>, BadReply> {
    let Value::Array(entries) = value else { return Err(bad("not a list of entries", &value)) };
    entries
        .into_iter()
        .map(|entry| {
            let (id, fields) = pair(entry)?;
            let id = match &id {
                Value::BulkString(raw) => EntryId::parse(raw),
                Value::SimpleString(raw) => EntryId::parse(raw.as_bytes()),
                _ => None,
            }
            .ok_or_else(|| bad("an entry id", &id))?;
            Ok(Entry { id, record: record(fields) })
        })
        .collect()
}

/// A two-element array as a pair.
fn pair(value: Value) -> Result<(Value, Value), BadReply> {
    match value {
        Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            match (items.next(), items.next()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(BadReply("a pair that is not".to_owned())),
            }
        }
        other => Err(bad("not a pair", &other)),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(raw) => String::from_utf8(raw.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// An entry's fields as one of ours, if they are.
fn record(fields: Value) -> Option<(Writer, Body)> {
    let Value::Array(fields) = fields else { return None };
    let get = |name: &str| -> Option<Vec<u8>> {
        let at = fields
            .chunks_exact(2)
            .position(|kv| matches!(&kv[0], Value::BulkString(k) if k == name.as_bytes()))?;
        match &fields[at * 2 + 1] {
            Value::BulkString(value) => Some(value.clone()),
            _ => None,
        }
    };
    let number = |raw: Vec<u8>| str::from_utf8(&raw).ok()?.parse::<u64>().ok();
    let string = |raw: Vec<u8>| String::from_utf8(raw).ok();
    let writer = Writer { node: string(get("o")?)?, boot: number(get("b")?)?, seq: number(get("s")?)? };
    let body = match &get("t")?[..] {
        b"m" => Body::Line { line: get("l")?.into(), kept: true },
        b"n" => Body::Line { line: get("l")?.into(), kept: false },
        b"p" => Body::Present { nick: string(get("u")?)?, room: get("r").and_then(string) },
        b"h" => Body::Hello,
        b"w" => Body::Tell { to: string(get("to")?)?, line: get("l")?.into() },
        _ => return None,
    };
    Some((writer, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(fields.iter().map(|f| bulk(f)).collect())])
    }

    #[test]
    fn entry_ids_parse_print_and_step_back_a_millisecond() {
        let id = EntryId::parse(b"1700000000123-4").unwrap();
        assert_eq!(id, EntryId { ms: 1_700_000_000_123, seq: 4 });
        assert_eq!(id.to_string(), "1700000000123-4");
        assert_eq!(id.just_before().to_string(), "1700000000122-18446744073709551615");
        assert!(id.just_before() < EntryId { ms: id.ms, seq: 0 });
        assert_eq!(EntryId::ZERO.just_before(), EntryId::ZERO);
        for bad in [&b"12"[..], b"a-1", b"1-", b"-1", b"1-2-3"] {
            assert_eq!(EntryId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn xadd_writes_every_field_of_each_kind() {
        let writer = Writer { node: "n1".to_owned(), boot: 7, seq: 42 };
        let args = |body: Body| -> Vec<String> {
            let cmd = xadd("k", 1000, &writer, &body);
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(raw) => String::from_utf8_lossy(raw).into_owned(),
                    _ => "<not simple>".to_owned(),
                })
                .collect()
        };
        let head = "XADD k MAXLEN ~ 1000 * o n1 b 7 s 42";
        let line = Body::Line { line: Bytes::from_static(b"<alice> hi\n"), kept: true };
        assert_eq!(args(line).join(" "), format!("{head} t m l <alice> hi\n"));
        let gone = Body::Present { nick: "alice".to_owned(), room: None };
        assert_eq!(args(gone).join(" "), format!("{head} t p u alice"));
        let here = Body::Present { nick: "alice".to_owned(), room: Some("Rust".to_owned()) };
        assert_eq!(args(here).join(" "), format!("{head} t p u alice r Rust"));
        assert_eq!(args(Body::Hello).join(" "), format!("{head} t h"));
        let tell = Body::Tell { to: "bob".to_owned(), line: Bytes::from_static(b"*alice* psst\n") };
        assert_eq!(args(tell).join(" "), format!("{head} t w to bob l *alice* psst\n"));
    }

    #[test]
    fn xread_replies_decode_in_order_and_foreign_entries_are_skipped() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("socketeer:chat:room:lobby"),
                Value::Array(vec![
                    entry("5-0", &["o", "n2", "b", "9", "s", "1", "t", "m", "l", "<bob> hi\n"]),
                    entry("5-1", &["o", "n2", "b", "9", "s", "2", "t", "n", "l", "* bob left lobby\n"]),
                    entry("6-0", &["someone", "else's"]),
                    entry("7-0", &["o", "n2", "b", "x", "s", "3", "t", "m", "l", "bad boot\n"]),
                ]),
            ]),
            Value::Array(vec![
                bulk("socketeer:chat:presence"),
                Value::Array(vec![
                    entry("5-0", &["o", "n2", "b", "9", "s", "3", "t", "p", "u", "bob", "r", "Rust"]),
                    entry("5-1", &["o", "n2", "b", "9", "s", "4", "t", "p", "u", "bob"]),
                    entry("8-0", &["o", "n3", "b", "1", "s", "1", "t", "h"]),
                    entry("9-0", &["o", "n3", "b", "1", "s", "2", "t", "w", "to", "al", "l", "*x* y\n"]),
                ]),
            ]),
        ]);
        let streams = read_reply(reply).unwrap();
        assert_eq!(streams.len(), 2);
        let (key, room) = &streams[0];
        assert_eq!(room_of(key), Some("lobby"));
        let writer = |node: &str, boot, seq| Writer { node: node.to_owned(), boot, seq };
        assert_eq!(
            room[0].record,
            Some((writer("n2", 9, 1), Body::Line { line: Bytes::from_static(b"<bob> hi\n"), kept: true }))
        );
        assert!(matches!(&room[1].record, Some((_, Body::Line { kept: false, .. }))));
        assert_eq!((room[2].id, &room[2].record), (EntryId { ms: 6, seq: 0 }, &None));
        assert_eq!(room[3].record, None);
        let presence: Vec<_> = streams[1].1.iter().map(|e| e.record.clone().unwrap().1).collect();
        assert_eq!(
            presence,
            [
                Body::Present { nick: "bob".to_owned(), room: Some("Rust".to_owned()) },
                Body::Present { nick: "bob".to_owned(), room: None },
                Body::Hello,
                Body::Tell { to: "al".to_owned(), line: Bytes::from_static(b"*x* y\n") },
            ]
        );
        assert_eq!(read_reply(Value::Nil).unwrap(), Vec::new());
        assert!(read_reply(Value::Int(3)).is_err());
        assert!(range_reply(Value::Array(vec![entry("nope", &[])])).is_err());
    }

    #[test]
    fn keys_and_members_round_trip() {
        assert_eq!(room_key("rust"), "socketeer:chat:room:rust");
        assert_eq!(room_of(&room_key("rust")), Some("rust"));
        assert_eq!(room_of(&presence_key()), None);
        assert_eq!(
            parse_member(member_value("Rust", "Alice").as_bytes()),
            Some(("Alice".into(), "Rust".into()))
        );
        assert_eq!(parse_member(b"nospace"), None);
        assert_eq!(lease_value("n1", 5, 12), "n1/5/12");
    }
}
