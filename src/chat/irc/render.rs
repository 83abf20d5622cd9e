//! Chat lines as an IRC client sees them (pure).
//!
//! What an IRC client is sent starts as chat lines, as for every client
//! (the room's log and its outbox hold them). [`View`] renders them, in
//! order, into IRC: `<bob> hi` becomes `:bob!bob@chat PRIVMSG #lobby :hi`,
//! `*** bob joined lobby` a `JOIN`, `/who`'s answer a `NAMES` or `WHO`
//! reply, and so on. A line the session rendered itself (a numeric reply)
//! starts with `:` and goes out as it is.
//!
//! The view keeps what the client has been told: its nickname, the channel
//! it is in, which answers it is waiting for. Room lines before the client
//! has been told it joined a channel are not its to see, except a room's
//! history, which waits for the `JOIN` and its names.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::wire::{self, write_line};
use crate::chat::protocol::notices::Notice;
use crate::chat::protocol::{ServerLine, split_replayed};

/// The server's name in prefixes and numerics.
pub const SERVER: &str = "socketeer";
/// The longest piece of text in one rendered message: a longer chat line
/// is sent as several.
const PIECE: usize = 400;
/// Replayed lines kept while they wait for the client's `JOIN`.
const MAX_HELD: usize = 10_000;

/// What a `/who` or `/list` answer that comes is the answer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Awaited {
    /// The names after a `JOIN` (then the held history).
    Join,
    /// `NAMES`.
    Names,
    /// `WHO` of the channel.
    Who,
    /// `LIST`.
    List,
}

/// What the client has been told; see the module docs.
#[derive(Debug)]
pub struct View {
    /// The client's nickname, as it knows it.
    pub nick: String,
    /// The room the chat has the client in.
    room: String,
    /// The channel the client knows it is in (a room name, without `#`).
    channel: Option<String>,
    /// Whether registration is complete (the client was welcomed).
    pub registered: bool,
    /// Whether the client asked for IRCv3 `server-time`.
    pub server_time: bool,
    /// Answers on their way, oldest first.
    awaited: VecDeque<Awaited>,
    /// Names or rooms listed so far of the answer being received.
    listed: usize,
    /// History waiting for the client's `JOIN`.
    held: Vec<(String, String)>,
}

impl Default for View {
    fn default() -> Self {
        View {
            nick: "*".to_owned(),
            room: String::new(),
            channel: None,
            registered: false,
            server_time: false,
            awaited: VecDeque::new(),
            listed: 0,
            held: Vec::new(),
        }
    }
}

/// `nick!nick@chat`: the prefix of a line from a chat user.
fn mask(nick: &str) -> String {
    format!("{nick}!{nick}@chat")
}

/// `#room`.
pub fn channel(room: &str) -> String {
    format!("#{room}")
}

impl View {
    /// The room the chat has the client in (its channel once joined).
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The channel the client knows it is in, without `#`.
    pub fn channel(&self) -> Option<&str> {
        self.channel.as_deref()
    }

    /// An answer of this kind is on its way (after those already awaited).
    pub fn expect(&mut self, awaited: Awaited) {
        self.awaited.push_back(awaited);
    }

    /// Renders the chat lines in `raw` (each ending in `\n`) into `out`.
    pub fn render(&mut self, raw: &[u8], out: &mut BytesMut) {
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            // Chat lines are UTF-8: the server checked them when they came in.
            // Lines rendered here already end in \r\n; chat lines in \n alone.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line);
            self.render_line(&line, out);
        }
    }

    fn render_line(&mut self, line: &str, out: &mut BytesMut) {
        if line.starts_with(':') || line.starts_with("ERROR ") {
            out.put_slice(line.as_bytes());
            out.put_slice(b"\r\n");
            return;
        }
        let (at, line) = split_replayed(line);
        if let Some(at) = at {
            self.replayed(at, line, out);
            return;
        }
        match ServerLine::parse(line) {
            ServerLine::Message { from, text } => self.said(from, text, None, out),
            ServerLine::Action { from, text } => self.acted(from, text, None, out),
            ServerLine::Private { from, text } => {
                for piece in wire::pieces(text, PIECE) {
                    write_line(out, &mask(from), "PRIVMSG", &[&self.nick], Some(piece));
                }
            }
            // IRC clients show what they sent themselves.
            ServerLine::PrivateSent { .. } => {}
            ServerLine::Notice(text) => self.notice(text, out),
            ServerLine::Error(text) | ServerLine::Other(text) => self.server_notice(text, out),
            ServerLine::Ping(token) => {
                out.put_slice(b"PING :");
                out.put_slice(token.as_bytes());
                out.put_slice(b"\r\n");
            }
        }
    }

    fn in_channel(&self) -> bool {
        self.channel.is_some() && !self.awaited.contains(&Awaited::Join)
    }

    fn said(&mut self, from: &str, text: &str, at: Option<&str>, out: &mut BytesMut) {
        let Some(channel) = self.channel.as_deref().filter(|_| self.registered) else { return };
        let target = self::channel(channel);
        for piece in wire::pieces(text, PIECE) {
            tag_time(out, at, self.server_time);
            write_line(out, &mask(from), "PRIVMSG", &[&target], Some(piece));
        }
    }

    fn acted(&mut self, from: &str, text: &str, at: Option<&str>, out: &mut BytesMut) {
        let Some(channel) = self.channel.as_deref().filter(|_| self.registered) else { return };
        let target = self::channel(channel);
        for piece in wire::pieces(text, PIECE) {
            tag_time(out, at, self.server_time);
            write_line(out, &mask(from), "PRIVMSG", &[&target], Some(&format!("\x01ACTION {piece}\x01")));
        }
    }

    /// A line of a room's history: held until the client has joined and
    /// seen the names; then with its time (a tag, or in the text).
    fn replayed(&mut self, at: &str, line: &str, out: &mut BytesMut) {
        if !self.registered || !self.in_channel() {
            if self.held.len() < MAX_HELD {
                self.held.push((at.to_owned(), line.to_owned()));
            }
            return;
        }
        let stamped;
        let (text_at, tag_at) = match self.server_time {
            true => (None, Some(at)),
            false => (Some(at), None),
        };
        match ServerLine::parse(line) {
            ServerLine::Message { from, text } => {
                stamped = stamp(text_at, text);
                self.said(from, &stamped, tag_at, out);
            }
            ServerLine::Action { from, text } => {
                stamped = stamp(text_at, text);
                self.acted(from, &stamped, tag_at, out);
            }
            _ => {}
        }
    }

    fn notice(&mut self, text: &str, out: &mut BytesMut) {
        match Notice::parse(text) {
            Notice::Welcome { nick, room, .. } => {
                if !self.registered {
                    nick.clone_into(&mut self.nick);
                }
                room.clone_into(&mut self.room);
            }
            Notice::Here { room, .. } => self.entered(room, out),
            Notice::Joined { nick, room } => {
                if self.registered && self.channel.as_deref() == Some(room) {
                    write_line(out, &mask(nick), "JOIN", &[&channel(room)], None);
                }
            }
            Notice::Left { nick, room, reason } => {
                if !self.registered || self.channel.as_deref() != Some(room) {
                    return;
                }
                match reason {
                    Some(reason) => write_line(out, &mask(nick), "QUIT", &[], Some(reason)),
                    None => write_line(out, &mask(nick), "PART", &[&channel(room)], None),
                }
            }
            Notice::Renamed { old, new } => {
                let mine = old == self.nick;
                if self.registered && (mine || self.channel.is_some()) {
                    write_line(out, &mask(old), "NICK", &[], Some(new));
                }
                if mine {
                    new.clone_into(&mut self.nick);
                }
            }
            Notice::Who { room, count, nicks } => self.names(room, count, &nicks, out),
            Notice::Rooms { count, rooms } => self.rooms(count, &rooms, out),
            Notice::Other(text) => self.server_notice(text, out),
        }
    }

    /// The client is in `room` now: it parts its old channel and joins the
    /// new one; the names that follow complete the join.
    fn entered(&mut self, room: &str, out: &mut BytesMut) {
        room.clone_into(&mut self.room);
        if !self.registered {
            return;
        }
        let me = mask(&self.nick);
        if let Some(old) = self.channel.take() {
            write_line(out, &me, "PART", &[&channel(&old)], Some("moved to another room"));
        }
        write_line(out, &me, "JOIN", &[&channel(room)], None);
        self.channel = Some(room.to_owned());
    }

    fn names(&mut self, room: &str, count: usize, nicks: &[&str], out: &mut BytesMut) {
        let target = channel(room);
        let awaited = self.awaited.front().cloned();
        match awaited {
            Some(Awaited::Who) => {
                for nick in nicks {
                    let params = [self.nick.as_str(), &target, nick, "chat", SERVER, nick, "H"];
                    write_line(out, SERVER, "352", &params, Some(&format!("0 {nick}")));
                }
            }
            Some(Awaited::Join | Awaited::Names) => {
                let names = nicks.join(" ");
                write_line(out, SERVER, "353", &[&self.nick, "=", &target], Some(&names));
            }
            _ => {
                let text = format!("in {room} ({count}): {}", nicks.join(" "));
                return self.server_notice(&text, out);
            }
        }
        self.listed += nicks.len();
        if self.listed < count {
            return;
        }
        self.listed = 0;
        self.awaited.pop_front();
        match awaited {
            Some(Awaited::Who) => {
                write_line(out, SERVER, "315", &[&self.nick, &target], Some("End of WHO list"))
            }
            _ => write_line(out, SERVER, "366", &[&self.nick, &target], Some("End of NAMES list")),
        }
        if awaited == Some(Awaited::Join) {
            for (at, line) in std::mem::take(&mut self.held) {
                self.replayed(&at, &line, out);
            }
        }
    }

    fn rooms(&mut self, count: usize, rooms: &[(&str, usize)], out: &mut BytesMut) {
        if self.awaited.front() != Some(&Awaited::List) {
            let listed: Vec<String> = rooms.iter().map(|(room, size)| format!("{room} {size}")).collect();
            return self.server_notice(&format!("rooms ({count}): {}", listed.join(", ")), out);
        }
        if self.listed == 0 {
            write_line(out, SERVER, "321", &[&self.nick, "Channel"], Some("Users  Name"));
        }
        for (room, size) in rooms {
            write_line(out, SERVER, "322", &[&self.nick, &channel(room), &size.to_string()], Some(""));
        }
        self.listed += rooms.len();
        if self.listed >= count {
            self.listed = 0;
            self.awaited.pop_front();
            write_line(out, SERVER, "323", &[&self.nick], Some("End of LIST"));
        }
    }

    /// A notice from the server itself.
    fn server_notice(&self, text: &str, out: &mut BytesMut) {
        let target = if self.registered { self.nick.as_str() } else { "*" };
        for piece in wire::pieces(text, PIECE) {
            write_line(out, SERVER, "NOTICE", &[target], Some(piece));
        }
    }
}

/// `@time=...` before a line, when the client asked for it and the time is known.
fn tag_time(out: &mut BytesMut, at: Option<&str>, server_time: bool) {
    if let (Some(at), true) = (at, server_time) {
        out.put_slice(b"@time=");
        out.put_slice(at.as_bytes());
        out.put_u8(b' ');
    }
}

/// `[time] text` when the time cannot go in a tag.
fn stamp(at: Option<&str>, text: &str) -> String {
    match at {
        Some(at) => format!("[{at}] {text}"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{self, notices};

    fn rendered(view: &mut View, lines: &[bytes::Bytes]) -> Vec<String> {
        let mut out = BytesMut::new();
        view.render(&lines.concat(), &mut out);
        String::from_utf8(out.to_vec()).unwrap().lines().map(str::to_owned).collect()
    }

    fn welcomed() -> View {
        let mut view = View::default();
        assert!(rendered(&mut view, &[notices::welcome("guest1", "lobby", 1)]).is_empty());
        assert_eq!(view.nick, "guest1");
        rendered(&mut view, &[notices::renamed("guest1", "alice")]);
        assert_eq!(view.nick, "alice", "a rename before the welcome is the client's own");
        view.registered = true;
        view.expect(Awaited::Join);
        let joined = rendered(
            &mut view,
            &[notices::here("lobby", 1), notices::who("lobby", &["alice", "bob"])[0].clone()],
        );
        assert_eq!(
            joined,
            [
                ":alice!alice@chat JOIN #lobby",
                ":socketeer 353 alice = #lobby :alice bob",
                ":socketeer 366 alice #lobby :End of NAMES list"
            ]
        );
        view
    }

    #[test]
    fn room_lines_become_channel_messages() {
        let mut view = welcomed();
        let lines = [
            protocol::message("bob", "hi :) there"),
            protocol::action("bob", "waves"),
            protocol::private("bob", "psst"),
            protocol::private_sent("bob", "not echoed"),
            notices::joined("carol", "lobby"),
            notices::left("carol", "lobby", Some("connection lost")),
            notices::left("dave", "lobby", None),
            notices::renamed("bob", "robert"),
            protocol::error("slow down"),
            protocol::ping(7),
        ];
        assert_eq!(
            rendered(&mut view, &lines),
            [
                ":bob!bob@chat PRIVMSG #lobby :hi :) there",
                ":bob!bob@chat PRIVMSG #lobby :\x01ACTION waves\x01",
                ":bob!bob@chat PRIVMSG alice :psst",
                ":carol!carol@chat JOIN #lobby",
                ":carol!carol@chat QUIT :connection lost",
                ":dave!dave@chat PART #lobby",
                ":bob!bob@chat NICK :robert",
                ":socketeer NOTICE alice :slow down",
                "PING :7",
            ]
        );
    }

    #[test]
    fn before_registration_room_lines_are_not_shown_and_history_waits_for_the_join() {
        let mut view = View::default();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T18:46:00Z").unwrap().to_utc();
        let early = [
            protocol::replayed(at, &protocol::message("bob", "old news")),
            notices::welcome("guest1", "lobby", 1),
            protocol::message("bob", "said before alice registered"),
        ];
        assert!(rendered(&mut view, &early).is_empty());
        view.registered = true;
        view.expect(Awaited::Join);
        let joined = rendered(
            &mut view,
            &[notices::here("lobby", 1), notices::who("lobby", &["bob", "guest1"])[0].clone()],
        );
        assert_eq!(joined.last().unwrap(), ":bob!bob@chat PRIVMSG #lobby :[2026-11-22T18:46:00Z] old news");
        view.server_time = true;
        let replay = protocol::replayed(at, &protocol::message("bob", "again"));
        assert_eq!(
            rendered(&mut view, &[replay]),
            ["@time=2026-11-22T18:46:00Z :bob!bob@chat PRIVMSG #lobby :again"]
        );
    }

    #[test]
    fn moving_rooms_parts_the_old_channel_and_answers_are_matched_to_questions() {
        let mut view = welcomed();
        view.expect(Awaited::Join);
        let moved =
            rendered(&mut view, &[notices::here("rust", 0), notices::who("rust", &["alice"])[0].clone()]);
        assert_eq!(
            moved[..2],
            [":alice!alice@chat PART #lobby :moved to another room", ":alice!alice@chat JOIN #rust"]
        );
        view.expect(Awaited::Who);
        view.expect(Awaited::List);
        let answers = [
            notices::who("rust", &["alice"])[0].clone(),
            notices::rooms(&[("lobby", 1), ("rust", 1)])[0].clone(),
        ];
        assert_eq!(
            rendered(&mut view, &answers),
            [
                ":socketeer 352 alice #rust alice chat socketeer alice H :0 alice",
                ":socketeer 315 alice #rust :End of WHO list",
                ":socketeer 321 alice Channel :Users  Name",
                ":socketeer 322 alice #lobby 1 :",
                ":socketeer 322 alice #rust 1 :",
                ":socketeer 323 alice :End of LIST",
            ]
        );
        // Lines the session rendered itself go out as they are; long text is cut.
        let native = wire::numeric(SERVER, wire::RPL_NOTOPIC, "alice", &["#rust"], "No topic is set");
        assert_eq!(rendered(&mut view, &[native]), [":socketeer 331 alice #rust :No topic is set"]);
        let long = rendered(&mut view, &[protocol::message("bob", &"x".repeat(1000))]);
        assert_eq!(long.len(), 3);
    }
}
