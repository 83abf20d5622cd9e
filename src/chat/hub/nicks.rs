//! Nicknames: claiming one (among the other servers too), renaming, and
//! the guest names new clients get.

use super::{Backplane, Claim, ClientId, Hub, HubError};
use crate::chat::protocol;

impl<B: Backplane> Hub<B> {
    /// `/nick`, first step: checks that client `id` may take `new`, and
    /// asks the other servers for it. `Ok(None)`: rename at once; a claim:
    /// rename once it succeeded.
    ///
    /// # Errors
    /// When the name breaks the rules or belongs to someone else.
    pub fn claim(&self, id: ClientId, new: &str) -> Result<Option<Claim>, HubError> {
        let new = protocol::check_name("nickname", new)?;
        let key = protocol::fold(new);
        if self.taken_by_another(id, &key) {
            return Err(HubError::NickTaken(new.to_owned()));
        }
        match self.nick(id) {
            // A change of case only: the client holds that name already.
            Some(old) if protocol::fold(old) == key => Ok(None),
            _ => Ok(self.backplane.claim(id, new)),
        }
    }

    /// `/nick`: renames client `id`, announced to its whole room (itself
    /// included; only to itself before the client is announced).
    ///
    /// # Errors
    /// When the name breaks the rules or belongs to someone else.
    pub fn rename(&mut self, id: ClientId, new: &str) -> Result<(), HubError> {
        let new = protocol::check_name("nickname", new)?;
        let key = protocol::fold(new);
        if self.taken_by_another(id, &key) {
            return Err(HubError::NickTaken(new.to_owned()));
        }
        self.rename_unchecked(id, new);
        Ok(())
    }

    /// Renames client `id` to `new`, which is free.
    pub(super) fn rename_unchecked(&mut self, id: ClientId, new: &str) {
        let Some(client) = self.clients.get_mut(&id) else { return };
        self.nicks.remove(&protocol::fold(&client.nick));
        self.nicks.insert(protocol::fold(new), id);
        let old = std::mem::replace(&mut client.nick, new.to_owned());
        let (room, announced) = (client.room.clone(), client.announced);
        let renamed = protocol::notices::renamed(&old, new);
        if !announced {
            self.tell_one(id, &renamed);
            return;
        }
        // A change of case keeps the name (and its lease among the other servers).
        if protocol::fold(&old) != protocol::fold(new) {
            self.backplane.present(id, &old, None);
        }
        self.backplane.present(id, new, Some(&self.rooms[&room].name));
        self.publish(&room, renamed, None, false);
    }

    /// Whether the folded nickname `key` is someone's other than client `id`'s.
    pub(super) fn taken_by_another(&self, id: ClientId, key: &str) -> bool {
        self.nicks.get(key).is_some_and(|&owner| owner != id) || self.remote.contains_key(key)
    }

    /// The first free guest nickname for client `id`.
    pub(super) fn guest_nick(&self, id: ClientId) -> String {
        let suffix = &self.config.guest_suffix;
        (0..)
            .map(|n| match n {
                0 => format!("guest{id}{suffix}"),
                n => format!("guest{id}{suffix}-{n}"),
            })
            .find(|nick| {
                let key = protocol::fold(nick);
                !self.nicks.contains_key(&key) && !self.remote.contains_key(&key)
            })
            .unwrap_or_default()
    }
}
