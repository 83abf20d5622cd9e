//! The chat's state and routing (no sockets, no clock): who is connected
//! under which nickname, who is in which room, and which lines go to whom.
//!
//! A line for a room is appended once to the room's [`Log`], and reaches
//! every member through its [`Mailbox`]; a line for one client goes to its
//! [`Outbox`]. Everything other servers need to know (lines broadcast to a
//! room, who goes by which nickname in which room, private lines for their
//! clients) goes to the hub's [`Backplane`]; what comes back from them is
//! applied through the methods in `remote.rs`, which keep a view of the
//! other servers' members so that `/who`, `/msg` and nickname checks cover
//! the whole cluster.
//!
//! Invariants: every client is in exactly one room, listed once in that
//! room's members at the index it records; nicknames are unique up to case
//! among local clients and the remote members this hub knows of; a room
//! other than the default one exists only while someone (here or on another
//! server) is in it (its log and history go with it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::delivery::{Log, Mailbox, Outbox};
use super::protocol::{self, NameError, notices};

mod backplane;
mod nicks;
mod query;
mod remote;

pub use backplane::{Backplane, Claim, Standalone};
pub use query::Found;
pub use remote::Member;

/// A client's number, unique for the life of the server.
pub type ClientId = u64;

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
    /// The other servers of the cluster could not be asked in time.
    #[error("nicknames cannot change while the other chat servers are out of reach; try again shortly")]
    Unreachable,
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
    /// Appended to guest nicknames (`guest7` + `.node1`), so that servers of
    /// a cluster never hand out the same one.
    pub guest_suffix: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            default_room: "lobby".to_owned(),
            history: 0,
            log_bytes: 256 * 1024,
            guest_suffix: String::new(),
        }
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
    /// Members on other servers, by folded nickname.
    remote: HashMap<String, Remote>,
    /// Other servers judged gone (their lease ran out): what they send is
    /// ignored until they say hello again.
    gone: std::collections::HashSet<String>,
}

/// A member on another server.
#[derive(Debug)]
struct Remote {
    node: String,
    nick: String,
    /// The folded name of its room.
    room: String,
}

#[derive(Debug)]
struct Client {
    nick: String,
    /// The folded name of the client's room.
    room: String,
    /// Its index in that room's `members`.
    slot: usize,
    outbox: Arc<Outbox>,
    /// Whether its room (and the other servers) have heard of it: not until
    /// its first line or a short grace, so that connections that come and
    /// go at once are never announced.
    announced: bool,
}

#[derive(Debug)]
struct Room {
    name: String,
    /// The folded name, as the backplane knows the room.
    key: Arc<str>,
    log: Arc<Log>,
    members: Vec<ClientId>,
    /// Members on other servers.
    remote: usize,
    /// Recent messages and actions, with when they were said.
    history: VecDeque<(DateTime<Utc>, Bytes)>,
}

impl Room {
    /// Everyone in the room, here and elsewhere.
    fn size(&self) -> usize {
        self.members.len() + self.remote
    }
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
            remote: HashMap::new(),
            gone: std::collections::HashSet::new(),
        };
        let lobby = hub.config.default_room.clone();
        hub.room(&lobby);
        hub
    }

    /// Adds client `id`, whose private lines go to `outbox`, under a guest
    /// nickname in the default room: it gets the room's history and a
    /// welcome. The room hears of it only with [`Hub::announce`]. Returns
    /// its mailbox.
    pub fn connect(&mut self, id: ClientId, outbox: Arc<Outbox>) -> Mailbox {
        let nick = self.guest_nick(id);
        self.nicks.insert(protocol::fold(&nick), id);
        let room = protocol::fold(&self.config.default_room);
        let client = Client { nick, room: room.clone(), slot: 0, outbox: outbox.clone(), announced: false };
        self.clients.insert(id, client);
        let seat = self.enter(id, &room);
        let others = self.rooms[&room].size() - 1;
        let welcome = notices::welcome(&self.clients[&id].nick, &self.config.default_room, others);
        self.tell_one(id, &welcome);
        Mailbox::new(id, outbox, seat.log, seat.cursor)
    }

    /// Client `id`'s room, and the other servers, hear that it is here
    /// (once: later calls do nothing).
    pub fn announce(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id).filter(|c| !c.announced) else { return };
        client.announced = true;
        let (nick, room) = (client.nick.clone(), client.room.clone());
        let place = &self.rooms[&room];
        let joined = notices::joined(&nick, &place.name);
        // Others learn where the client is before they hear it joined.
        self.backplane.present(id, &nick, Some(&place.name));
        self.publish(&room, joined, Some(id), false);
    }

    /// Whether client `id` has been announced.
    pub fn announced(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| c.announced)
    }

    /// Removes client `id`, releasing its nickname. With `announce`, its
    /// room hears that it left (and why, when `reason` says); without (this
    /// server is shutting down, and its clients with it), only the room's
    /// members on other servers hear it. A client never announced leaves
    /// without a word.
    pub fn disconnect(&mut self, id: ClientId, reason: Option<&str>, announce: bool) {
        let Some(client) = self.clients.get(&id) else { return };
        let (room, announced) = (client.room.clone(), client.announced);
        self.nicks.remove(&protocol::fold(&client.nick));
        if announced {
            self.backplane.present(id, &client.nick, None);
        }
        let heard_elsewhere = self.rooms.get(&room).is_some_and(|r| r.remote > 0);
        let left = (announced && (announce || heard_elsewhere)).then(|| self.left_notice(id, &room, reason));
        self.exit(id, &room);
        match (left, self.rooms.get(&room)) {
            (Some(notice), _) if announce => self.publish(&room, notice, Some(id), false),
            (Some(notice), Some(place)) => self.backplane.published(&place.key, &notice, false),
            _ => {}
        }
        self.clients.remove(&id);
        self.drop_if_empty(&room);
    }

    /// The nickname of client `id`.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| c.nick.as_str())
    }

    /// `text` from client `id` to everyone else in its room, said `at`
    /// and kept in the room's history. `text` must already be sanitized.
    pub fn say(&mut self, id: ClientId, text: &str, at: DateTime<Utc>) {
        let Some(client) = self.clients.get(&id) else { return };
        let (line, room) = (protocol::message(&client.nick, text), client.room.clone());
        self.remember(&room, &line, at);
        self.publish(&room, line, Some(id), true);
    }

    /// `/me`: `* nick action` to everyone else in the room, done `at` and
    /// kept in history.
    pub fn act(&mut self, id: ClientId, action: &str, at: DateTime<Utc>) {
        let Some(client) = self.clients.get(&id) else { return };
        let (line, room) = (protocol::action(&client.nick, action), client.room.clone());
        self.remember(&room, &line, at);
        self.publish(&room, line, Some(id), true);
    }

    /// `/msg`: `text` from client `id` to the client called `to`, in any
    /// room; the sender gets a copy as sent.
    ///
    /// # Errors
    /// When no one is called `to`.
    pub fn tell(&mut self, id: ClientId, to: &str, text: &str) -> Result<(), HubError> {
        let Some(sender) = self.clients.get(&id) else { return Ok(()) };
        let key = protocol::fold(to);
        let received = protocol::private(&sender.nick, text);
        let sent = if self.nicks.get(&key) == Some(&id) {
            // A note to oneself: one copy, not one received and one sent.
            self.tell_one(id, &received);
            return Ok(());
        } else if let Some(&addressee) = self.nicks.get(&key) {
            self.tell_one(addressee, &received);
            protocol::private_sent(self.nick(addressee).unwrap_or(to), text)
        } else if let Some(member) = self.remote.get(&key) {
            self.backplane.tell(&member.node, &key, &received);
            protocol::private_sent(&member.nick, text)
        } else {
            return Err(HubError::NoSuchNick(to.to_owned()));
        };
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
        let announced = client.announced;
        self.exit(id, &old);
        if announced {
            self.publish(&old, left, Some(id), false);
        }
        self.drop_if_empty(&old);
        self.room(name);
        let seat = self.enter(id, &new);
        let room = &self.rooms[&new];
        let here = notices::here(&room.name, room.size() - 1);
        self.tell_one(id, &here);
        Ok(seat)
    }

    /// `/who`: the nicknames in client `id`'s room (on every server), sorted,
    /// on lines of at most about [`notices::LIST_LINE`] bytes.
    pub fn who(&self, id: ClientId) {
        let Some((room, nicks)) = self.members(id) else { return };
        for line in notices::who(room, &nicks) {
            self.tell_one(id, &line);
        }
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
        let key = protocol::fold(name);
        self.rooms.entry(key.clone()).or_insert_with(|| {
            *next_log += 1;
            Room {
                name: name.to_owned(),
                key: key.into(),
                log: Arc::new(Log::new(*next_log, log_bytes)),
                members: Vec::new(),
                remote: 0,
                history: VecDeque::new(),
            }
        })
    }

    /// Puts client `id` into `room` (which exists): replays the history to
    /// it, then tells the others (if it was announced). Returns where it
    /// reads the room from.
    fn enter(&mut self, id: ClientId, room: &str) -> Seat {
        let place = self.rooms.get_mut(room).expect("entered rooms exist");
        let client = self.clients.get_mut(&id).expect("entering clients exist");
        client.room = room.to_owned();
        client.slot = place.members.len();
        place.members.push(id);
        let seat = Seat { log: place.log.clone(), cursor: place.log.mark().seq };
        for (at, line) in &place.history {
            client.outbox.push(place.log.mark(), &protocol::replayed(*at, line));
        }
        if client.announced {
            let joined = notices::joined(&client.nick, &place.name);
            // Others learn where the client is before they hear it joined.
            self.backplane.present(id, &client.nick, Some(&place.name));
            self.publish(room, joined, Some(id), false);
        }
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

    /// Drops `room` if no one is in it (here or elsewhere), unless it is the default room.
    fn drop_if_empty(&mut self, room: &str) {
        let empty = self.rooms.get(room).is_some_and(|r| r.size() == 0);
        if empty && room != protocol::fold(&self.config.default_room) {
            self.rooms.remove(room);
        }
    }

    fn left_notice(&self, id: ClientId, room: &str, reason: Option<&str>) -> Bytes {
        let nick = self.nick(id).unwrap_or_default();
        let name = self.rooms.get(room).map_or(room, |r| r.name.as_str());
        notices::left(nick, name, reason)
    }

    fn remember(&mut self, room: &str, line: &Bytes, at: DateTime<Utc>) {
        let keep = self.config.history;
        if let Some(place) = self.rooms.get_mut(room).filter(|_| keep > 0) {
            if place.history.len() == keep {
                place.history.pop_front();
            }
            place.history.push_back((at, line.clone()));
        }
    }

    /// Appends `line` to `room`'s log for everyone but `origin`, and hands
    /// it to the backplane (`kept`: the history keeps it).
    fn publish(&self, room: &str, line: Bytes, origin: Option<ClientId>, kept: bool) {
        if let Some(place) = self.rooms.get(room) {
            self.backplane.published(&place.key, &line, kept);
            place.log.publish(origin, line);
        }
    }
}

#[cfg(test)]
mod tests;
