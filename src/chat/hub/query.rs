//! Questions about who is where, answered as values (for `/who`, `/list`,
//! and the IRC queries NAMES, WHO, WHOIS, ISON and LIST), across the
//! cluster as far as this hub knows it.

use super::{Backplane, ClientId, Hub, notices};
use crate::chat::protocol;

/// Someone found by nickname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The nickname as its owner spells it.
    pub nick: String,
    /// The display name of its room.
    pub room: String,
    /// The other server it is on; `None` when it is on this one.
    pub node: Option<String>,
}

impl<B: Backplane> Hub<B> {
    /// The display name of client `id`'s room and the nicknames in it (on
    /// every server), sorted ignoring case.
    pub fn members(&self, id: ClientId) -> Option<(&str, Vec<&str>)> {
        let client = self.clients.get(&id)?;
        let room = self.rooms.get(&client.room)?;
        let mut nicks: Vec<&str> = room.members.iter().filter_map(|m| self.nick(*m)).collect();
        if room.remote > 0 {
            let elsewhere = self.remote.values().filter(|r| r.room == client.room);
            nicks.extend(elsewhere.map(|r| r.nick.as_str()));
        }
        nicks.sort_unstable_by_key(|n| n.to_lowercase());
        Some((room.name.as_str(), nicks))
    }

    /// The room where clients start.
    pub fn default_room(&self) -> &str {
        &self.config.default_room
    }

    /// The display name of client `id`'s room.
    pub fn room_of(&self, id: ClientId) -> Option<&str> {
        let client = self.clients.get(&id)?;
        self.rooms.get(&client.room).map(|room| room.name.as_str())
    }

    /// Every room someone is in (and the default room), with how many are
    /// in each, sorted by name ignoring case.
    pub fn rooms(&self) -> Vec<(&str, usize)> {
        let mut rooms: Vec<(&str, usize)> =
            self.rooms.values().map(|room| (room.name.as_str(), room.size())).collect();
        rooms.sort_unstable_by_key(|(name, _)| name.to_lowercase());
        rooms
    }

    /// `/list`: the rooms, to client `id`.
    pub fn list(&self, id: ClientId) {
        for line in notices::rooms(&self.rooms()) {
            self.tell_one(id, &line);
        }
    }

    /// Whoever is called `nick` (ignoring case and look-alikes), here or on
    /// another server.
    pub fn find(&self, nick: &str) -> Option<Found> {
        let key = protocol::fold(nick);
        if let Some(&id) = self.nicks.get(&key) {
            let room = self.room_of(id)?.to_owned();
            return Some(Found { nick: self.nick(id)?.to_owned(), room, node: None });
        }
        let member = self.remote.get(&key)?;
        let room = self.rooms.get(&member.room).map_or_else(|| member.room.clone(), |r| r.name.clone());
        Some(Found { nick: member.nick.clone(), room, node: Some(member.node.clone()) })
    }
}
