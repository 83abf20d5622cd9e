//! The chat's state and routing (no sockets, no clock): who is connected
//! under which nickname, who is in which room, and which lines go to whom.
//!
//! Every line a client should see goes to its [`Recipient`] (the server's is
//! the client's [`Outbox`](super::outbox::Outbox)); every line broadcast to a
//! room also goes to the hub's [`Backplane`], the one place where a cluster
//! of servers would forward it to its other nodes. A broadcast renders its
//! line once and hands the same `Bytes` to every member, and visits only the
//! members of that room.
//!
//! Invariants: every client is in exactly one room, and is listed once in
//! that room's members at the index it records; nicknames are unique up to
//! case; a room other than the default one exists only while someone is in it
//! (its history goes with it).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::protocol::{self, NameError};

/// A client's number, unique for the life of the server.
pub type ClientId = u64;

/// Where a client's lines go.
pub trait Recipient {
    /// Hands `line` (one whole line, newline included) to the client. Must
    /// not block: the hub calls it for every member of a room in turn.
    fn deliver(&self, line: &Bytes);
}

/// Where a room's traffic meets other servers'. A standalone server has none
/// ([`Standalone`]); a cluster backplane would forward each line to the other
/// nodes, which deliver it to their own members of the room.
pub trait Backplane {
    /// A line was broadcast in `room` (its display name) and delivered to
    /// this server's members: messages, actions, and join, leave and rename
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
}

/// Settings of a hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Where clients start; it exists even when empty.
    pub default_room: String,
    /// Messages kept per room and replayed to whoever joins it.
    pub history: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { default_room: "lobby".to_owned(), history: 0 }
    }
}

/// Clients, nicknames and rooms. See the module docs for its invariants.
#[derive(Debug)]
pub struct Hub<R, B = Standalone> {
    config: HubConfig,
    backplane: B,
    clients: HashMap<ClientId, Client<R>>,
    /// Folded nickname to its owner.
    nicks: HashMap<String, ClientId>,
    /// Folded room name to the room.
    rooms: HashMap<String, Room<R>>,
}

#[derive(Debug)]
struct Client<R> {
    nick: String,
    /// The folded name of the client's room.
    room: String,
    /// Its index in that room's `members`.
    slot: usize,
    recipient: R,
}

#[derive(Debug)]
struct Room<R> {
    name: String,
    /// Kept next to the ids so that a broadcast reads one array.
    members: Vec<(ClientId, R)>,
    history: VecDeque<Bytes>,
}

impl<R> Room<R> {
    fn new(name: &str) -> Room<R> {
        Room { name: name.to_owned(), members: Vec::new(), history: VecDeque::new() }
    }
}

impl<R: Recipient> Room<R> {
    fn broadcast(&self, line: &Bytes, except: Option<ClientId>) {
        for (id, recipient) in &self.members {
            if Some(*id) != except {
                recipient.deliver(line);
            }
        }
    }
}

impl<R: Recipient + Clone, B: Backplane> Hub<R, B> {
    /// An empty hub (its default room exists, empty).
    pub fn new(config: HubConfig, backplane: B) -> Hub<R, B> {
        let mut rooms = HashMap::new();
        let lobby = Room::new(&config.default_room);
        rooms.insert(protocol::fold(&config.default_room), lobby);
        Hub { config, backplane, clients: HashMap::new(), nicks: HashMap::new(), rooms }
    }

    /// Adds client `id` under a guest nickname in the default room: it gets
    /// the room's history and a welcome, and the room a join notice.
    /// Returns the nickname.
    pub fn connect(&mut self, id: ClientId, recipient: R) -> &str {
        let nick = (0..)
            .map(|n| if n == 0 { format!("guest{id}") } else { format!("guest{id}-{n}") })
            .find(|nick| !self.nicks.contains_key(&protocol::fold(nick)))
            .unwrap_or_default();
        self.nicks.insert(protocol::fold(&nick), id);
        let room = protocol::fold(&self.config.default_room);
        self.clients.insert(id, Client { nick, room: room.clone(), slot: 0, recipient });
        self.enter(id, &room);
        let client = &self.clients[&id];
        let others = self.rooms[&room].members.len() - 1;
        client.recipient.deliver(&protocol::notice(format_args!(
            "welcome, {}: you are in {} with {}; /help lists the commands",
            client.nick,
            self.config.default_room,
            protocol::others(others)
        )));
        &client.nick
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
            self.publish(&room, &notice, None);
        }
        self.clients.remove(&id);
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
        self.publish(&room, &line, Some(id));
    }

    /// `/me`: `* nick action` to everyone else in the room, kept in history.
    pub fn act(&mut self, id: ClientId, action: &str) {
        let Some(client) = self.clients.get(&id) else { return };
        let (line, room) = (protocol::action(&client.nick, action), client.room.clone());
        self.remember(&room, &line);
        self.publish(&room, &line, Some(id));
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
        self.publish(&room, &protocol::notice(format_args!("{old} is now known as {new}")), None);
        Ok(())
    }

    /// `/msg`: `text` from client `id` to the client called `to`, in any
    /// room; the sender gets a copy as sent.
    ///
    /// # Errors
    /// When no one is called `to`.
    pub fn tell(&mut self, id: ClientId, to: &str, text: &str) -> Result<(), HubError> {
        let Some(sender) = self.clients.get(&id) else { return Ok(()) };
        let addressee = self
            .nicks
            .get(&protocol::fold(to))
            .and_then(|other| self.clients.get(other))
            .ok_or_else(|| HubError::NoSuchNick(to.to_owned()))?;
        addressee.recipient.deliver(&protocol::private(&sender.nick, text));
        sender.recipient.deliver(&protocol::private_sent(&addressee.nick, text));
        Ok(())
    }

    /// `/join`: moves client `id` to `room` (created if new, with an
    /// optional leading `#`). The old room hears it left, the new one that
    /// it joined; the client gets the new room's history and where it is.
    ///
    /// # Errors
    /// When the room name breaks the rules or is the client's room.
    pub fn join(&mut self, id: ClientId, room: &str) -> Result<(), HubError> {
        let name = protocol::check_name("room name", room.strip_prefix('#').unwrap_or(room))?;
        let Some(client) = self.clients.get(&id) else { return Ok(()) };
        let (old, new) = (client.room.clone(), protocol::fold(name));
        if old == new {
            return Err(HubError::AlreadyThere(self.rooms[&old].name.clone()));
        }
        let left = self.left_notice(id, &old, None);
        self.exit(id, &old);
        self.publish(&old, &left, None);
        self.rooms.entry(new.clone()).or_insert_with(|| Room::new(name));
        self.enter(id, &new);
        let room = &self.rooms[&new];
        let client = &self.clients[&id];
        client.recipient.deliver(&protocol::notice(format_args!(
            "you are in {} with {}",
            room.name,
            protocol::others(room.members.len() - 1)
        )));
        Ok(())
    }

    /// `/who`: the nicknames in client `id`'s room, sorted, on lines of at
    /// most about [`WHO_LINE`] bytes.
    pub fn who(&self, id: ClientId) {
        let Some(client) = self.clients.get(&id) else { return };
        let room = &self.rooms[&client.room];
        let mut nicks: Vec<&str> = room.members.iter().map(|(m, _)| self.clients[m].nick.as_str()).collect();
        nicks.sort_unstable_by_key(|n| n.to_lowercase());
        let header = format!("in {} ({}):", room.name, nicks.len());
        let mut line = header.clone();
        for nick in nicks {
            if line.len() + nick.len() > WHO_LINE && line.len() > header.len() {
                client.recipient.deliver(&protocol::notice(&line));
                line.clone_from(&header);
            }
            line.push(' ');
            line.push_str(nick);
        }
        client.recipient.deliver(&protocol::notice(&line));
    }

    /// Clients connected.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no one is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Puts client `id` into `room` (which exists): replays the history to
    /// it, then tells the others.
    fn enter(&mut self, id: ClientId, room: &str) {
        let Some(client) = self.clients.get_mut(&id) else { return };
        let Some(place) = self.rooms.get_mut(room) else { return };
        client.room = room.to_owned();
        client.slot = place.members.len();
        place.members.push((id, client.recipient.clone()));
        for line in &place.history {
            client.recipient.deliver(line);
        }
        let joined = protocol::notice(format_args!("{} joined {}", client.nick, place.name));
        self.publish(room, &joined, Some(id));
    }

    /// Takes client `id` out of `room`'s members, and drops the room if it
    /// is now empty (unless it is the default room).
    fn exit(&mut self, id: ClientId, room: &str) {
        let Some(slot) = self.clients.get(&id).map(|c| c.slot) else { return };
        let Some(place) = self.rooms.get_mut(room) else { return };
        place.members.swap_remove(slot);
        if let Some((moved, _)) = place.members.get(slot)
            && let Some(moved) = self.clients.get_mut(moved)
        {
            moved.slot = slot;
        }
        if place.members.is_empty() && room != protocol::fold(&self.config.default_room) {
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

    /// Delivers `line` to `room`'s members (but `except`), then to the backplane.
    fn publish(&self, room: &str, line: &Bytes, except: Option<ClientId>) {
        if let Some(place) = self.rooms.get(room) {
            place.broadcast(line, except);
            self.backplane.published(&place.name, line);
        }
    }
}

/// About how long a `/who` line gets before the list goes on on the next.
pub const WHO_LINE: usize = 400;

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// Records what each client received, as text.
    #[derive(Clone, Default)]
    struct Inbox(Rc<RefCell<Vec<String>>>);

    impl Recipient for Inbox {
        fn deliver(&self, line: &Bytes) {
            self.0.borrow_mut().push(String::from_utf8(line.to_vec()).unwrap());
        }
    }

    impl Inbox {
        /// Everything received since the last call.
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.borrow_mut())
        }
    }

    /// Records what was published, as "room: line".
    #[derive(Clone, Default)]
    struct Published(Rc<RefCell<Vec<String>>>);

    impl Backplane for Published {
        fn published(&self, room: &str, line: &Bytes) {
            self.0.borrow_mut().push(format!("{room}: {}", String::from_utf8_lossy(line)));
        }
    }

    struct Fixture {
        hub: Hub<Inbox, Published>,
        inboxes: Vec<Inbox>,
        published: Published,
    }

    /// A hub with `n` clients (ids 0..n) in the lobby, their inboxes emptied.
    fn hub_with(n: u64, history: usize) -> Fixture {
        let published = Published::default();
        let config = HubConfig { history, ..HubConfig::default() };
        let mut hub = Hub::new(config, published.clone());
        let inboxes: Vec<Inbox> = (0..n).map(|_| Inbox::default()).collect();
        for (id, inbox) in inboxes.iter().enumerate() {
            hub.connect(id as u64, inbox.clone());
        }
        inboxes.iter().for_each(|i| drop(i.take()));
        published.0.borrow_mut().clear();
        Fixture { hub, inboxes, published }
    }

    #[test]
    fn a_newcomer_is_welcomed_and_announced() {
        let mut f = hub_with(2, 0);
        let newcomer = Inbox::default();
        assert_eq!(f.hub.connect(7, newcomer.clone()), "guest7");
        assert_eq!(
            newcomer.take(),
            ["* welcome, guest7: you are in lobby with 2 others; /help lists the commands\n"]
        );
        assert_eq!(f.inboxes[0].take(), ["* guest7 joined lobby\n"]);
        assert_eq!(f.inboxes[1].take(), ["* guest7 joined lobby\n"]);
        assert_eq!(f.published.0.borrow().as_slice(), ["lobby: * guest7 joined lobby\n"]);
    }

    #[test]
    fn a_message_reaches_everyone_else_once_as_one_shared_buffer() {
        let f = {
            let mut f = hub_with(3, 0);
            f.hub.say(0, "hello");
            f
        };
        assert_eq!(f.inboxes[0].take(), Vec::<String>::new(), "not echoed to the sender");
        assert_eq!(f.inboxes[1].take(), ["<guest0> hello\n"]);
        assert_eq!(f.inboxes[2].take(), ["<guest0> hello\n"]);
        assert_eq!(f.published.0.borrow().as_slice(), ["lobby: <guest0> hello\n"]);
    }

    #[test]
    fn nicknames_are_unique_up_to_case_and_freed_on_disconnect() {
        let mut f = hub_with(3, 0);
        f.hub.rename(0, "Alice").unwrap();
        assert_eq!(f.inboxes[0].take(), ["* guest0 is now known as Alice\n"]);
        assert_eq!(f.inboxes[1].take(), ["* guest0 is now known as Alice\n"]);
        assert_eq!(f.hub.rename(1, "aLICE"), Err(HubError::NickTaken("aLICE".to_owned())));
        f.hub.rename(0, "alice").expect("a client may change the case of its own nickname");
        assert!(matches!(f.hub.rename(1, "bad nick"), Err(HubError::BadName(_))));
        f.hub.disconnect(0, Some("gone"), true);
        assert_eq!(f.inboxes[1].take().last().unwrap(), "* alice left lobby (gone)\n");
        f.hub.rename(1, "ALICE").expect("free again once its owner left");
        assert_eq!(f.hub.nick(1), Some("ALICE"));
        // A guest name someone took by hand is skipped.
        f.hub.rename(2, "guest9").unwrap();
        assert_eq!(f.hub.connect(9, Inbox::default()), "guest9-1");
    }

    #[test]
    fn rooms_keep_their_traffic_to_themselves() {
        let mut f = hub_with(4, 0);
        f.hub.join(0, "#rust").unwrap();
        assert_eq!(f.inboxes[0].take(), ["* you are in rust with no one else\n"]);
        assert_eq!(f.inboxes[1].take(), ["* guest0 left lobby\n"]);
        f.hub.join(1, "RUST").unwrap();
        assert_eq!(f.inboxes[0].take(), ["* guest1 joined rust\n"]);
        assert_eq!(f.inboxes[1].take(), ["* you are in rust with 1 other\n"]);
        f.hub.say(0, "in rust");
        f.hub.say(2, "in the lobby");
        assert_eq!(f.inboxes[1].take(), ["<guest0> in rust\n"]);
        assert_eq!(
            f.inboxes[3].take(),
            ["* guest0 left lobby\n", "* guest1 left lobby\n", "<guest2> in the lobby\n"]
        );
        assert_eq!(f.hub.join(1, "rust"), Err(HubError::AlreadyThere("rust".to_owned())));
        // The room goes when its last member leaves; the lobby stays.
        f.hub.disconnect(0, None, true);
        f.hub.disconnect(1, None, true);
        assert!(!f.hub.rooms.contains_key("rust"));
        f.hub.disconnect(2, None, true);
        f.hub.disconnect(3, None, true);
        assert!(f.hub.rooms.contains_key("lobby") && f.hub.is_empty());
    }

    #[test]
    fn private_messages_cross_rooms_and_unknown_nicks_are_errors() {
        let mut f = hub_with(2, 0);
        f.hub.join(1, "elsewhere").unwrap();
        f.inboxes.iter().for_each(|i| drop(i.take()));
        f.hub.tell(0, "GUEST1", "psst").unwrap();
        assert_eq!(f.inboxes[1].take(), ["*guest0* psst\n"]);
        assert_eq!(f.inboxes[0].take(), ["-> *guest1* psst\n"]);
        assert_eq!(f.hub.tell(0, "nobody", "x"), Err(HubError::NoSuchNick("nobody".to_owned())));
        assert!(f.published.0.borrow().iter().all(|p| !p.contains("psst")), "private lines stay local");
    }

    #[test]
    fn history_is_replayed_to_whoever_joins() {
        let mut f = hub_with(1, 2);
        for text in ["one", "two", "three"] {
            f.hub.say(0, text);
        }
        f.hub.act(0, "waves");
        let late = Inbox::default();
        f.hub.connect(5, late.clone());
        let got = late.take();
        assert_eq!(got[..2], ["<guest0> three\n", "* guest0 waves\n"]);
        assert!(got[2].starts_with("* welcome, guest5"));
    }

    #[test]
    fn who_lists_the_room_sorted_and_wraps_long_lists() {
        let mut f = hub_with(3, 0);
        f.hub.rename(2, "Adam").unwrap();
        f.inboxes[0].take();
        f.hub.who(0);
        assert_eq!(f.inboxes[0].take(), ["* in lobby (3): Adam guest0 guest1\n"]);
        let f = hub_with(200, 0);
        f.hub.who(0);
        let lines = f.inboxes[0].take();
        assert!(lines.len() > 1 && lines.iter().all(|l| l.len() < WHO_LINE + 50), "{lines:?}");
        let names = lines.iter().flat_map(|l| l.trim_end().split(' ').skip(4)).count();
        assert_eq!(names, 200);
    }

    #[test]
    fn disconnects_keep_the_member_lists_consistent() {
        let mut f = hub_with(6, 0);
        for id in [1, 4, 0] {
            f.hub.disconnect(id, None, false);
        }
        f.inboxes.iter().for_each(|i| drop(i.take()));
        f.hub.say(5, "still here?");
        let heard: Vec<_> = f.inboxes.iter().map(|i| i.take().len()).collect();
        assert_eq!(heard, [0, 0, 1, 1, 0, 0]);
        for (id, client) in &f.hub.clients {
            assert_eq!(f.hub.rooms[&client.room].members[client.slot].0, *id);
        }
    }
}
