//! The server's notices about people and rooms (pure): rendered here, and
//! read back here, so that clients of other protocols (IRC, the web page)
//! can show a join as a join and a rename as a rename.
//!
//! A server line is the chat's one form of a message: the hub renders it
//! once, rooms keep it, the cluster relays it. A session that speaks
//! another protocol reads each line back ([`ServerLine`](super::ServerLine),
//! then [`Notice::parse`] for `*** ` lines) and renders it in its own form.
//! Every notice that means something to such a client is made by a
//! function of this module and parsed by [`Notice::parse`]; the tests
//! check that the two agree.

use bytes::Bytes;

use super::{check_name, notice, others};

/// `welcome, NICK: you are in ROOM with N others; /help lists the commands`.
pub fn welcome(nick: &str, room: &str, others_here: usize) -> Bytes {
    notice(format_args!(
        "welcome, {nick}: you are in {room} with {}; /help lists the commands",
        others(others_here)
    ))
}

/// `you are in ROOM with N others`: where a `/join` took the client.
pub fn here(room: &str, others_here: usize) -> Bytes {
    notice(format_args!("you are in {room} with {}", others(others_here)))
}

/// `NICK joined ROOM`.
pub fn joined(nick: &str, room: &str) -> Bytes {
    notice(format_args!("{nick} joined {room}"))
}

/// `NICK left ROOM`, or `NICK left ROOM (REASON)`.
pub fn left(nick: &str, room: &str, reason: Option<&str>) -> Bytes {
    match reason {
        Some(reason) => notice(format_args!("{nick} left {room} ({reason})")),
        None => notice(format_args!("{nick} left {room}")),
    }
}

/// `OLD is now known as NEW`.
pub fn renamed(old: &str, new: &str) -> Bytes {
    notice(format_args!("{old} is now known as {new}"))
}

/// About how long a `/who` or `/list` line gets before the list goes on
/// on the next line.
pub const LIST_LINE: usize = 400;

/// `/who`'s answer: `in ROOM (N): nick nick ...`, on as many lines as it
/// takes (each repeats the header, whose N counts the whole room).
pub fn who(room: &str, nicks: &[&str]) -> Vec<Bytes> {
    listed(&format!("in {room} ({}):", nicks.len()), nicks.iter().map(|n| (*n).to_owned()))
}

/// `/list`'s answer: `rooms (N): ROOM SIZE, ROOM SIZE`, on as many lines as
/// it takes.
pub fn rooms(rooms: &[(&str, usize)]) -> Vec<Bytes> {
    let items = rooms.iter().enumerate().map(|(i, (room, size))| match i + 1 < rooms.len() {
        true => format!("{room} {size},"),
        false => format!("{room} {size}"),
    });
    listed(&format!("rooms ({}):", rooms.len()), items)
}

fn listed(header: &str, items: impl Iterator<Item = String>) -> Vec<Bytes> {
    let mut lines = Vec::new();
    let mut line = header.to_owned();
    for item in items {
        if line.len() + item.len() > LIST_LINE && line.len() > header.len() {
            lines.push(notice(&line));
            line = header.to_owned();
        }
        line.push(' ');
        line.push_str(&item);
    }
    lines.push(notice(&line));
    lines
}

/// A notice from the server, read back (the text after `*** `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// [`welcome`]: the first line a client gets.
    Welcome {
        /// The client's nickname.
        nick: &'a str,
        /// Its room.
        room: &'a str,
        /// How many others are there.
        others: usize,
    },
    /// [`here`]: the client moved to `room`.
    Here {
        /// The room.
        room: &'a str,
        /// How many others are there.
        others: usize,
    },
    /// [`joined`].
    Joined {
        /// Who.
        nick: &'a str,
        /// Where.
        room: &'a str,
    },
    /// [`left`].
    Left {
        /// Who.
        nick: &'a str,
        /// Which room.
        room: &'a str,
        /// Why, when it was said.
        reason: Option<&'a str>,
    },
    /// [`renamed`].
    Renamed {
        /// The old nickname.
        old: &'a str,
        /// The new one.
        new: &'a str,
    },
    /// A line of [`who`]'s answer.
    Who {
        /// The room.
        room: &'a str,
        /// How many are in it (on every line of the answer).
        count: usize,
        /// The nicknames on this line.
        nicks: Vec<&'a str>,
    },
    /// A line of [`rooms`]' answer.
    Rooms {
        /// How many rooms there are (on every line of the answer).
        count: usize,
        /// The rooms on this line, and how many are in each.
        rooms: Vec<(&'a str, usize)>,
    },
    /// Any other notice.
    Other(&'a str),
}

fn name(kind: &'static str, word: &str) -> Option<()> {
    check_name(kind, word).ok().map(drop)
}

fn count_of_others(text: &str) -> Option<usize> {
    match text {
        "no one else" => Some(0),
        "1 other" => Some(1),
        n => n.strip_suffix(" others")?.parse().ok(),
    }
}

/// `(N):` after a header word: N.
fn counted(text: &str) -> Option<(usize, &str)> {
    let (count, rest) = text.strip_prefix('(')?.split_once("):")?;
    Some((count.parse().ok()?, rest))
}

impl<'a> Notice<'a> {
    /// Reads a notice's text (after `*** `).
    pub fn parse(text: &'a str) -> Notice<'a> {
        Notice::structured(text).unwrap_or(Notice::Other(text))
    }

    fn structured(text: &'a str) -> Option<Notice<'a>> {
        if let Some(rest) = text.strip_prefix("welcome, ") {
            let (nick, rest) = rest.split_once(": you are in ")?;
            let (room, rest) = rest.split_once(" with ")?;
            let others = count_of_others(rest.strip_suffix("; /help lists the commands")?)?;
            name("nickname", nick)?;
            name("room name", room)?;
            return Some(Notice::Welcome { nick, room, others });
        }
        if let Some(rest) = text.strip_prefix("you are in ") {
            let (room, rest) = rest.split_once(" with ")?;
            name("room name", room)?;
            return Some(Notice::Here { room, others: count_of_others(rest)? });
        }
        if let Some(rest) = text.strip_prefix("in ") {
            let (room, rest) = rest.split_once(' ')?;
            let (count, rest) = counted(rest)?;
            name("room name", room)?;
            let nicks: Vec<&str> = rest.split(' ').filter(|n| !n.is_empty()).collect();
            nicks.iter().try_for_each(|n| name("nickname", n))?;
            return Some(Notice::Who { room, count, nicks });
        }
        if let Some(rest) = text.strip_prefix("rooms ") {
            let (count, rest) = counted(rest)?;
            let rooms = rest
                .split(',')
                .filter(|r| !r.trim().is_empty())
                .map(|item| {
                    let (room, size) = item.trim().split_once(' ')?;
                    name("room name", room)?;
                    Some((room, size.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            return Some(Notice::Rooms { count, rooms });
        }
        let (nick, rest) = text.split_once(' ')?;
        name("nickname", nick)?;
        if let Some(new) = rest.strip_prefix("is now known as ") {
            name("nickname", new)?;
            return Some(Notice::Renamed { old: nick, new });
        }
        if let Some(room) = rest.strip_prefix("joined ") {
            name("room name", room)?;
            return Some(Notice::Joined { nick, room });
        }
        let rest = rest.strip_prefix("left ")?;
        let (room, reason) = match rest.split_once(' ') {
            Some((room, reason)) => (room, Some(reason.strip_prefix('(')?.strip_suffix(')')?)),
            None => (rest, None),
        };
        name("room name", room)?;
        Some(Notice::Left { nick, room, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &Bytes) -> Notice<'_> {
        let text = std::str::from_utf8(line).unwrap().trim_end();
        Notice::parse(text.strip_prefix("*** ").unwrap())
    }

    #[test]
    fn every_notice_reads_back_as_what_it_says() {
        assert_eq!(
            read(&welcome("guest1", "lobby", 2)),
            Notice::Welcome { nick: "guest1", room: "lobby", others: 2 }
        );
        assert_eq!(read(&here("rust", 0)), Notice::Here { room: "rust", others: 0 });
        assert_eq!(read(&here("rust", 1)), Notice::Here { room: "rust", others: 1 });
        assert_eq!(read(&joined("bob", "lobby")), Notice::Joined { nick: "bob", room: "lobby" });
        assert_eq!(
            read(&left("bob", "lobby", None)),
            Notice::Left { nick: "bob", room: "lobby", reason: None }
        );
        assert_eq!(
            read(&left("bob", "lobby", Some("gone (for now)"))),
            Notice::Left { nick: "bob", room: "lobby", reason: Some("gone (for now)") }
        );
        assert_eq!(read(&renamed("guest1", "Zoë")), Notice::Renamed { old: "guest1", new: "Zoë" });
        assert_eq!(
            read(&who("lobby", &["alice", "bob"])[0]),
            Notice::Who { room: "lobby", count: 2, nicks: vec!["alice", "bob"] }
        );
        assert_eq!(
            read(&rooms(&[("lobby", 3), ("rust", 1)])[0]),
            Notice::Rooms { count: 2, rooms: vec![("lobby", 3), ("rust", 1)] }
        );
        assert_eq!(read(&rooms(&[])[0]), Notice::Rooms { count: 0, rooms: vec![] });
    }

    #[test]
    fn long_lists_go_on_on_more_lines_each_with_the_whole_count() {
        let nicks: Vec<String> = (0..200).map(|n| format!("user{n:03}")).collect();
        let nicks: Vec<&str> = nicks.iter().map(String::as_str).collect();
        let lines = who("lobby", &nicks);
        assert!(lines.len() > 1);
        let mut seen = Vec::new();
        for line in &lines {
            assert!(line.len() <= LIST_LINE + 40);
            let Notice::Who { count, nicks, .. } = read(line) else { panic!("{line:?}") };
            assert_eq!(count, 200);
            seen.extend(nicks);
        }
        assert_eq!(seen, nicks);
    }

    #[test]
    fn other_notices_are_not_mistaken_for_people_or_rooms() {
        for text in [
            "the other chat servers cannot be reached for now: lines to and from them wait, and will come late",
            "bye",
            "server shutting down",
            "alice joined two rooms",
            "in the beginning (there was): light",
            "commands: /nick NAME, /who, /msg NICK TEXT",
        ] {
            assert_eq!(Notice::parse(text), Notice::Other(text), "{text}");
        }
    }
}
