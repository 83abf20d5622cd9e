//! The chat's state and routing (no sockets, no clock): who is connected
//! under which nickname, who is in which room, and which lines go to whom.
//!
//! A line for a room is appended once to the room's [`Log`], and reaches
//! every member through its [`Mailbox`]; a line for one client goes to its
//! [`Outbox`]. Every line broadcast to a room also goes to the hub's
//! [`Backplane`], the one place where a cluster of servers would forward it
//! to its other nodes.
//!
//! Invariants: every client is in exactly one room, listed once in that
//! room's members at the index it records; nicknames are unique up to case;
//! a room other than the default one exists only while someone is in it
//! (its log and history go with it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::delivery::{Log, Mailbox, Outbox};
use super::protocol::{self, NameError};

/// A client's number, unique for the life of the server.
pub type ClientId = u64;

/// Where a room's traffic meets other servers'. A standalone server has none
/// ([`Standalone`]). A cluster backplane forwards each line it is given to
/// the other nodes; a node appends a line that came from elsewhere to its own
/// log of the room (origin `None`: every local member gets it), which is all
/// its local members need. Nicknames unique across nodes and `/who` across
/// nodes are the other two things a cluster adds; both go through the hub's
/// `rename`, `connect` and `who`.
pub trait Backplane {
    /// A line was broadcast in `room` (its display name) and appended to the
    /// room's log here: messages, actions, and join, leave and rename
    /// notices. Must not block.
    fn published(&self, room: &str, line: &Bytes);
}

/// No other servers: nothing to forward.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standalone;

impl Backplane for Standalone {
    fn published(&self, _room: &str, _line: &Bytes) {}
}

/// Why the hub refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The nickname or room name breaks the naming rules.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// Someone else has that nickname (up to case).
    #[error("the nickname {0} is taken; pick another")]
    NickTaken(String),
    /// No one has that nickname.
    #[error("no one is called {0}; /who lists who is in your room")]
    NoSuchNick(String),
    /// `/join` of the room the client is in.
    #[error("you are already in {0}")]
    AlreadyThere(String),
    /// The client is no longer connected (it raced its own disconnect).
    #[error("you are not connected")]
    NotConnected,
}

/// Settings of a hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Where clients start; it exists even when empty.
    pub default_room: String,
    /// Messages kept per room and replayed to whoever joins it.
    pub history: usize,
    /// Bytes of recent lines each room's log keeps: how far behind its room a
    /// client may fall before it is disconnected.
    pub log_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { default_room: "lobby".to_owned(), history: 0, log_bytes: 256 * 1024 }
    }
}

/// Where a client reads its new room from, after [`Hub::join`]: pass both to
/// [`Mailbox::move_to`].
#[derive(Debug)]
pub struct Seat {
    /// The room's log.
    pub log: Arc<Log>,
    /// The first line of it the client gets.
    pub cursor: u64,
}

/// Clients, nicknames and rooms. See the module docs for its invariants.
#[derive(Debug)]
pub struct Hub<B = Standalone> {
    config: HubConfig,
    backplane: B,
    clients: HashMap<ClientId, Client>,
    /// Folded nickname to its owner.
    nicks: HashMap<String, ClientId>,
    /// Folded room name to the room.
    rooms: HashMap<String, Room>,
    /// The number of the next room log.
    next_log: u64,
}

#[derive(Debug)]
struct Client {
    nick: String,
    /// The folded name of the client's room.
    room: String,
    /// Its index in that room's `members`.
    slot: usize,
    outbox: Arc<Outbox>,
}

#[derive(Debug)]
struct Room {
    name: String,
    log: Arc<Log>,
    members: Vec<ClientId>,
    history: VecDeque<Bytes>,
}

impl<B: Backplane> Hub<B> {
    /// An empty hub (its default room exists, empty).
    pub fn new(config: HubConfig, backplane: B) -> Hub<B> {
        let mut hub = Hub {
            config,
            backplane,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            rooms: HashMap::new(),
            next_log: 0,
        };
        let lobby = hub.config.default_room.clone();
        hub.room(&lobby);
        hub
    }

    /// Adds client `id`, whose private lines go to `outbox`, under a guest
    /// nickname in the default room: it gets the room's history and a
    /// welcome, and the room a join notice. Returns its mailbox.
    pub fn connect(&mut self, id: ClientId, outbox: Arc<Outbox>) -> Mailbox {
        let nick = (0..)
            .map(|n| if n == 0 { format!("guest{id}") } else { format!("guest{id}-{n}") })
            .find(|nick| !self.nicks.contains_key(&protocol::fold(nick)))
            .unwrap_or_default();
        self.nicks.insert(protocol::fold(&nick), id);
        let room = protocol::fold(&self.config.default_room);
        self.clients.insert(id, Client { nick, room: room.clone(), slot: 0, outbox: outbox.clone() });
        let seat = self.enter(id, &room);
        let others = self.rooms[&room].members.len() - 1;
        let welcome = protocol::notice(format_args!(
            "welcome, {}: you are in {} with {}; /help lists the commands",
            self.clients[&id].nick,
            self.config.default_room,
            protocol::others(others)
        ));
        self.tell_one(id, &welcome);
        Mailbox::new(id, outbox, seat.log, seat.cursor)
    }

    /// Removes client `id`, releasing its nickname. With `announce`, its
    /// room hears that it left (and why, when `reason` says).
    pub fn disconnect(&mut self, id: ClientId, reason: Option<&str>, announce: bool) {
        let Some(client) = self.clients.get(&id) else { return };
        let room = client.room.clone();
        self.nicks.remove(&protocol::fold(&client.nick));
        let left = announce.then(|| self.left_notice(id, &room, reason));
        self.exit(id, &room);
        if let Some(notice) = left {
            self.publish(&room, notice, Some(id));
        }
        self.clients.remove(&id);
        self.drop_if_empty(&room);
    }

    /// The nickname of client `id`.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| c.nick.as_str())
    }

    /// `text` from client `id` to everyone else in its room, kept in the
    /// room's history. `text` must already be sanitized.
    pub fn say(&mut self, id: ClientId, text: &str) {
        let Some(client) = self.clients.get(&id) else { return };
        let (line, room) = (protocol::message(&client.nick, text), client.room.clone());
        self.remember(&room, &line);
        self.publish(&room, line, Some(id));
    }

    /// `/me`: `* nick action` to everyone else in the room, kept in history.
    pub fn act(&mut self, id: ClientId, action: &str) {
        let Some(client) = self.clients.get(&id) else { return };
        let (line, room) = (protocol::action(&client.nick, action), client.room.clone());
        self.remember(&room, &line);
        self.publish(&room, line, Some(id));
    }

    /// `/nick`: renames client `id`, announced to its whole room (itself included).
    ///
    /// # Errors
    /// When the name breaks the rules or belongs to someone else.
    pub fn rename(&mut self, id: ClientId, new: &str) -> Result<(), HubError> {
        let new = protocol::check_name("nickname", new)?;
        let Some(client) = self.clients.get_mut(&id) else { return Ok(()) };
        let key = protocol::fold(new);
        match self.nicks.get(&key) {
            Some(&owner) if owner != id => return Err(HubError::NickTaken(new.to_owned())),
            _ => {}
        }
        self.nicks.remove(&protocol::fold(&client.nick));
        self.nicks.insert(key, id);
        let old = std::mem::replace(&mut client.nick, new.to_owned());
        let room = client.room.clone();
        self.publish(&room, protocol::notice(format_args!("{old} is now known as {new}")), None);
        Ok(())
    }

    /// `/msg`: `text` from client `id` to the client called `to`, in any
    /// room; the sender gets a copy as sent.
    ///
    /// # Errors
    /// When no one is called `to`.
    pub fn tell(&mut self, id: ClientId, to: &str, text: &str) -> Result<(), HubError> {
        let Some(sender) = self.clients.get(&id) else { return Ok(()) };
        let addressee =
            *self.nicks.get(&protocol::fold(to)).ok_or_else(|| HubError::NoSuchNick(to.to_owned()))?;
        let received = protocol::private(&sender.nick, text);
        let sent = protocol::private_sent(self.nick(addressee).unwrap_or(to), text);
        self.tell_one(addressee, &received);
        self.tell_one(id, &sent);
        Ok(())
    }

    /// `/join`: moves client `id` to `room` (created if new, with an
    /// optional leading `#`). The old room hears it left, the new one that
    /// it joined; the client gets the new room's history and where it is.
    ///
    /// # Errors
    /// When the room name breaks the rules or is the client's room.
    pub fn join(&mut self, id: ClientId, room: &str) -> Result<Seat, HubError> {
        let name = protocol::check_name("room name", room.strip_prefix('#').unwrap_or(room))?;
        let Some(client) = self.clients.get(&id) else { return Err(HubError::NotConnected) };
        let (old, new) = (client.room.clone(), protocol::fold(name));
        if old == new {
            return Err(HubError::AlreadyThere(self.rooms[&old].name.clone()));
        }
        let left = self.left_notice(id, &old, None);
        self.exit(id, &old);
        self.publish(&old, left, Some(id));
        self.drop_if_empty(&old);
        self.room(name);
        let seat = self.enter(id, &new);
        let room = &self.rooms[&new];
        let here = protocol::notice(format_args!(
            "you are in {} with {}",
            room.name,
            protocol::others(room.members.len() - 1)
        ));
        self.tell_one(id, &here);
        Ok(seat)
    }

    /// `/who`: the nicknames in client `id`'s room, sorted, on lines of at
    /// most about [`WHO_LINE`] bytes.
    pub fn who(&self, id: ClientId) {
        let Some(client) = self.clients.get(&id) else { return };
        let room = &self.rooms[&client.room];
        let mut nicks: Vec<&str> = room.members.iter().map(|m| self.clients[m].nick.as_str()).collect();
        nicks.sort_unstable_by_key(|n| n.to_lowercase());
        let header = format!("in {} ({}):", room.name, nicks.len());
        let mut line = header.clone();
        for nick in nicks {
            if line.len() + nick.len() > WHO_LINE && line.len() > header.len() {
                self.tell_one(id, &protocol::notice(&line));
                line.clone_from(&header);
            }
            line.push(' ');
            line.push_str(nick);
        }
        self.tell_one(id, &protocol::notice(&line));
    }

    /// Queues `line` for client `id` alone.
    fn tell_one(&self, id: ClientId, line: &Bytes) {
        if let Some(client) = self.clients.get(&id) {
            client.outbox.push(self.rooms[&client.room].log.mark(), line);
        }
    }

    /// Wakes every client's task (to see that the server is shutting down).
    pub fn wake_all(&self) {
        self.clients.values().for_each(|client| client.outbox.wake());
    }

    /// The room called `name`, created if new.
    fn room(&mut self, name: &str) -> &mut Room {
        let (next_log, log_bytes) = (&mut self.next_log, self.config.log_bytes);
        self.rooms.entry(protocol::fold(name)).or_insert_with(|| {
            *next_log += 1;
            Room {
                name: name.to_owned(),
                log: Arc::new(Log::new(*next_log, log_bytes)),
                members: Vec::new(),
                history: VecDeque::new(),
            }
        })
    }

    /// Puts client `id` into `room` (which exists): replays the history to
    /// it, then tells the others. Returns where it reads the room from.
    fn enter(&mut self, id: ClientId, room: &str) -> Seat {
        let place = self.rooms.get_mut(room).expect("entered rooms exist");
        let client = self.clients.get_mut(&id).expect("entering clients exist");
        client.room = room.to_owned();
        client.slot = place.members.len();
        place.members.push(id);
        let seat = Seat { log: place.log.clone(), cursor: place.log.mark().seq };
        for line in &place.history {
            client.outbox.push(place.log.mark(), line);
        }
        let joined = protocol::notice(format_args!("{} joined {}", client.nick, place.name));
        self.publish(room, joined, Some(id));
        seat
    }

    /// Takes client `id` out of `room`'s members.
    fn exit(&mut self, id: ClientId, room: &str) {
        let Some(slot) = self.clients.get(&id).map(|c| c.slot) else { return };
        let Some(place) = self.rooms.get_mut(room) else { return };
        place.members.swap_remove(slot);
        if let Some(moved) = place.members.get(slot).and_then(|moved| self.clients.get_mut(moved)) {
            moved.slot = slot;
        }
    }

    /// Drops `room` if no one is in it, unless it is the default room.
    fn drop_if_empty(&mut self, room: &str) {
        let empty = self.rooms.get(room).is_some_and(|r| r.members.is_empty());
        if empty && room != protocol::fold(&self.config.default_room) {
            self.rooms.remove(room);
        }
    }

    fn left_notice(&self, id: ClientId, room: &str, reason: Option<&str>) -> Bytes {
        let nick = self.nick(id).unwrap_or_default();
        let name = self.rooms.get(room).map_or(room, |r| r.name.as_str());
        match reason {
            Some(reason) => protocol::notice(format_args!("{nick} left {name} ({reason})")),
            None => protocol::notice(format_args!("{nick} left {name}")),
        }
    }

    fn remember(&mut self, room: &str, line: &Bytes) {
        let keep = self.config.history;
        if let Some(place) = self.rooms.get_mut(room).filter(|_| keep > 0) {
            if place.history.len() == keep {
                place.history.pop_front();
            }
            place.history.push_back(line.clone());
        }
    }

    /// Appends `line` to `room`'s log for everyone but `origin`, and hands
    /// it to the backplane.
    fn publish(&self, room: &str, line: Bytes, origin: Option<ClientId>) {
        if let Some(place) = self.rooms.get(room) {
            self.backplane.published(&place.name, &line);
            place.log.publish(origin, line);
        }
    }
}

/// About how long a `/who` line gets before the list goes on on the next.
pub const WHO_LINE: usize = 400;

#[cfg(test)]
mod tests;
