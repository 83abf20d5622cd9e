//! The hub's side of a cluster: what the other servers report, applied to
//! its rooms and to its view of their members. The engine that talks to
//! them (the Redis one in [`cluster`](super::super::cluster)) calls these
//! with the hub's lock held. None of them hands anything to the backplane:
//! what another server reports is already known to the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{Backplane, ClientId, Hub, Remote};
use crate::chat::protocol;

/// A member of another server as it reports it: its nickname and the display
/// name of its room.
pub type Member = (String, String);

impl<B: Backplane> Hub<B> {
    /// A line another server broadcast in the room whose folded name is
    /// `room`: every local member gets it, and the room's history keeps it
    /// when `kept` (as said `at`). Ignored for a room no one is known to be in.
    pub fn remote_line(&mut self, room: &str, line: Bytes, kept: bool, at: DateTime<Utc>) {
        if kept {
            self.remember(room, &line, at);
        }
        if let Some(place) = self.rooms.get(room) {
            place.log.publish(None, line);
        }
    }

    /// A member of node `node` goes by `nick` in `room` (a display name)
    /// from now on; or, with `None`, no longer goes by `nick`. Returns the
    /// folded name of the room if this made it exist here.
    pub fn remote_present(&mut self, node: &str, nick: &str, room: Option<&str>) -> Option<String> {
        let key = protocol::fold(nick);
        let Some(room) = room else {
            if self.remote.get(&key).is_some_and(|member| member.node == node) {
                self.forget(&key);
            }
            return None;
        };
        let room_key = protocol::fold(room);
        if let Some(member) = self.remote.get_mut(&key).filter(|m| m.node == node && m.room == room_key) {
            nick.clone_into(&mut member.nick);
            return None;
        }
        let created = !self.rooms.contains_key(&room_key);
        self.room(room).remote += 1;
        // Into the new room before out of the old one, which may go if it empties.
        let member = Remote { node: node.to_owned(), nick: nick.to_owned(), room: room_key.clone() };
        if let Some(old) = self.remote.insert(key, member) {
            self.vacate(&old.room);
        }
        created.then_some(room_key)
    }

    /// Node `node`'s members are exactly `members`: what it holds after it
    /// (re)connected. If it had been judged gone, its members are announced
    /// as back. Returns the folded names of the rooms this made exist here.
    pub fn remote_node(&mut self, node: &str, members: &[Member]) -> Vec<String> {
        if self.gone.remove(node) {
            for (nick, room) in members {
                if let Some(place) = self.rooms.get(&protocol::fold(room)) {
                    let back = protocol::notice(format_args!(
                        "{nick} is back in {} (server reachable again)",
                        place.name
                    ));
                    place.log.publish(None, back);
                }
            }
        }
        let now: BTreeSet<String> = members.iter().map(|(nick, _)| protocol::fold(nick)).collect();
        let created: Vec<String> =
            members.iter().filter_map(|(nick, room)| self.remote_present(node, nick, Some(room))).collect();
        let gone: Vec<String> = self
            .remote
            .iter()
            .filter(|(key, member)| member.node == node && !now.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        gone.iter().for_each(|key| self.forget(key));
        created
    }

    /// Whether node `node` was judged gone and has not said hello since:
    /// what it sends meanwhile is not taken (its nicknames may be someone
    /// else's by now).
    pub fn is_gone(&self, node: &str) -> bool {
        self.gone.contains(node)
    }

    /// Node `node` started again (a new run under the same name): the
    /// members of its last run leave, and the local members of their rooms
    /// are told. Returns how many left.
    pub fn remote_restarted(&mut self, node: &str) -> usize {
        self.remote_left(node, "server restarted")
    }

    /// Node `node` is gone (its leases ran out): its members leave, and the
    /// local members of their rooms are told; what it sends is ignored until
    /// it says hello again. Returns how many left.
    pub fn remote_gone(&mut self, node: &str) -> usize {
        self.gone.insert(node.to_owned());
        self.remote_left(node, "server gone")
    }

    /// Node `node`'s members leave, for `why`. Returns how many.
    fn remote_left(&mut self, node: &str, why: &str) -> usize {
        let gone: Vec<String> = self
            .remote
            .iter()
            .filter(|(_, member)| member.node == node)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            let Some(member) = self.remote.get(key) else { continue };
            if let Some(place) = self.rooms.get(&member.room) {
                let notice = protocol::notices::left(&member.nick, &place.name, Some(why));
                place.log.publish(None, notice);
            }
            self.forget(key);
        }
        gone.len()
    }

    /// A private line from another server for the local client called
    /// `nick` (folded); dropped if it has left.
    pub fn remote_tell(&self, nick: &str, line: &Bytes) {
        if let Some(&id) = self.nicks.get(nick) {
            self.tell_one(id, line);
        }
    }

    /// Lines of `room` (folded) from before this server followed it, oldest
    /// first, with when they were said, for its history: they go before
    /// what the history holds.
    pub fn seed_history(&mut self, room: &str, lines: Vec<(DateTime<Utc>, Bytes)>) {
        let keep = self.config.history;
        if let Some(place) = self.rooms.get_mut(room) {
            for line in lines.into_iter().rev() {
                if place.history.len() >= keep {
                    break;
                }
                place.history.push_front(line);
            }
        }
    }

    /// Client `id` lost `nick` (folded) to a client of another server: both
    /// took it while the servers were out of touch, and the other's claim
    /// stands. The client becomes a guest again, and is told why.
    pub fn lose_nick(&mut self, id: ClientId, nick: &str) {
        let Some(client) = self.clients.get(&id).filter(|c| protocol::fold(&c.nick) == nick) else { return };
        let old = client.nick.clone();
        let guest = self.guest_nick(id);
        self.rename_unchecked(id, &guest);
        self.tell_one(
            id,
            &protocol::error(format_args!(
                "someone on another server holds the nickname {old} (the servers were out of touch); \
                 you are {guest} now"
            )),
        );
    }

    /// A notice about the cluster for every local member, in every room that
    /// has one here (the other servers are not told: they have their own).
    pub fn notice_local(&self, text: &str) {
        let line = protocol::notice(text);
        for place in self.rooms.values().filter(|room| !room.members.is_empty()) {
            place.log.publish(None, line.clone());
        }
    }

    /// The folded names of the rooms here: the ones to follow.
    pub fn room_keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rooms.values().map(|room| &room.key)
    }

    /// The nodes whose members this hub knows of.
    pub fn remote_nodes(&self) -> BTreeSet<String> {
        self.remote.values().map(|member| member.node.clone()).collect()
    }

    /// Every local client's number, nickname and room (display name): what
    /// this server tells the others it holds.
    pub fn local_members(&self) -> Vec<(ClientId, String, String)> {
        let room = |c: &super::Client| self.rooms.get(&c.room).map_or_else(String::new, |r| r.name.clone());
        self.clients.iter().map(|(&id, c)| (id, c.nick.clone(), room(c))).collect()
    }

    /// Removes the remote member `key` (folded), and its room if that empties.
    fn forget(&mut self, key: &str) {
        if let Some(member) = self.remote.remove(key) {
            self.vacate(&member.room);
        }
    }

    /// One remote member less in `room`.
    fn vacate(&mut self, room: &str) {
        if let Some(place) = self.rooms.get_mut(room) {
            place.remote = place.remote.saturating_sub(1);
        }
        self.drop_if_empty(room);
    }
}
