//! The reader: the task that follows the streams, blocked in XREAD on a
//! connection of its own. It reads the presence stream, this node's inbox,
//! and the stream of every room the hub knows of, each from the last entry
//! it saw (kept across reconnects), and hands what others wrote to the hub.
//!
//! Where it starts: at its first connection it reads the others' members
//! from their hashes, and starts every room at its stream's end (the lines
//! before it fill the room's history). A room that appears later (someone
//! joined it) starts just before the presence entry that made it appear:
//! whoever writes to a room has announced itself there first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult, Value};
use tracing::info;

use super::entry::{self, Body, Entry, EntryId, Writer};
use super::link::Link;
use super::{Node, RedisBackplane};
use crate::chat::hub::Member;
use crate::chat::server::Shared;
use crate::shutdown::Shutdown;

/// How long one XREAD waits for something new.
const BLOCK: Duration = Duration::from_secs(1);
/// How long to wait after the connection failed before making another.
const AFTER_FAILURE: Duration = Duration::from_millis(200);
/// Most entries one XREAD takes from each stream.
const COUNT: usize = 1024;

/// The reader's state across connections.
struct Reader {
    node: Arc<Node>,
    shared: Arc<Shared<RedisBackplane>>,
    /// Whether the first connection's reading of the cluster is done.
    started: bool,
    presence: (String, EntryId),
    inbox: (String, EntryId),
    /// The rooms followed: each one's stream key and last id seen.
    rooms: HashMap<Arc<str>, (String, EntryId)>,
    /// Per stream, per writing node: its run and the last number seen.
    seen: HashMap<String, HashMap<String, (u64, u64)>>,
    /// The run of each other node, as its presence entries say.
    boots: HashMap<String, u64>,
}

/// Runs the reader until shutdown.
pub(super) async fn run(node: Arc<Node>, shared: Arc<Shared<RedisBackplane>>, shutdown: Shutdown) {
    let mut link = Link::new("reader", false, BLOCK + Duration::from_secs(2));
    let inbox = entry::inbox_key(&node.config.node);
    let mut reader = Reader {
        node: node.clone(),
        shared,
        started: false,
        presence: (entry::presence_key(), EntryId::ZERO),
        inbox: (inbox, EntryId::ZERO),
        rooms: HashMap::new(),
        seen: HashMap::new(),
        boots: HashMap::new(),
    };
    loop {
        let Some(mut connection) = link.connect(&node, &shutdown).await else { return };
        let failed = tokio::select! {
            Err(e) = reader.follow(&mut connection) => e,
            () = shutdown.triggered() => return,
        };
        node.reading.store(false, Ordering::Release);
        link.lost(&node, &failed);
        // A Redis that accepts connections but cannot answer yet (loading its data) is not hammered.
        tokio::select! {
            () = tokio::time::sleep(AFTER_FAILURE) => {}
            () = shutdown.triggered() => return,
        }
    }
}

impl Reader {
    /// Reads until the connection fails.
    async fn follow(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        if !self.started {
            self.start(connection).await?;
            self.started = true;
        }
        loop {
            self.step(connection).await?;
            self.node.reading.store(true, Ordering::Release);
        }
    }

    /// The first look at the cluster: the others' members, and where each
    /// stream ends.
    async fn start(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        self.presence.1 = last_id(connection, &self.presence.0).await?;
        self.inbox.1 = last_id(connection, &self.inbox.0).await?;
        let nodes: Vec<String> =
            redis::cmd("SMEMBERS").arg(entry::nodes_key()).query_async(connection).await?;
        let mut others = 0;
        for other in nodes.iter().filter(|n| **n != self.node.config.node) {
            let members = members(connection, other).await?;
            others += members.len();
            self.shared.hub.lock().remote_node(other, &members);
        }
        let rooms: Vec<Arc<str>> = self.shared.hub.lock().room_keys().cloned().collect();
        let history = self.shared.config.history;
        for room in rooms {
            let key = entry::room_key(&room);
            let newest: Value = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(history * 4 + 1)
                .query_async(connection)
                .await?;
            let newest = entry::range_reply(newest).map_err(bad_reply)?;
            let end = newest.first().map_or(EntryId::ZERO, |entry| entry.id);
            let mut lines: Vec<(DateTime<Utc>, Bytes)> = newest
                .into_iter()
                .filter_map(|entry| match entry.record {
                    Some((_, Body::Line { line, kept: true })) => Some((entry.id.time(), line)),
                    _ => None,
                })
                .take(history)
                .collect();
            lines.reverse();
            self.shared.hub.lock().seed_history(&room, lines);
            self.rooms.insert(room, (key, end));
        }
        let (node, url) = (&self.node.config.node, self.node.config.shown_url());
        info!(node, "joined the chat cluster at {url}: {others} clients on other nodes");
        Ok(())
    }

    /// One XREAD, and what it brought handed to the hub.
    async fn step(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        {
            // Rooms no one is in any more are no longer followed.
            let hub = self.shared.hub.lock();
            let here: HashSet<&Arc<str>> = hub.room_keys().collect();
            self.rooms.retain(|room, _| here.contains(room));
        }
        let followed: HashSet<&str> = self.rooms.values().map(|(key, _)| key.as_str()).collect();
        self.seen.retain(|key, _| followed.contains(key.as_str()) || *key == self.inbox.0);
        let mut xread = redis::cmd("XREAD");
        xread.arg("COUNT").arg(COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64).arg("STREAMS");
        let streams = [&self.presence, &self.inbox].into_iter().chain(self.rooms.values());
        let (keys, ids): (Vec<&String>, Vec<String>) = streams.map(|(key, id)| (key, id.to_string())).unzip();
        xread.arg(keys).arg(ids);
        let reply: Value = xread.query_async(connection).await?;
        let mut deliveries = Vec::new();
        for (key, entries) in entry::read_reply(reply).map_err(bad_reply)? {
            if key == self.presence.0 {
                for entry in entries {
                    self.presence.1 = entry.id;
                    self.on_presence(connection, entry).await?;
                }
            } else if key == self.inbox.0 {
                self.inbox.1 = entries.last().map_or(self.inbox.1, |entry| entry.id);
                let seen = self.seen.entry(key).or_default();
                deliveries.extend(entries.into_iter().filter_map(|entry| match entry.record {
                    Some((writer, Body::Tell { to, line })) if fresh(seen, &writer) => {
                        Some(((entry.id.ms, writer.seq), Delivery::Tell { writer: writer.node, to, line }))
                    }
                    _ => None,
                }));
            } else if let Some((room, (_, cursor))) =
                entry::room_of(&key).and_then(|room| self.rooms.iter_mut().find(|(r, _)| ***r == *room))
            {
                *cursor = entries.last().map_or(*cursor, |entry| entry.id);
                let seen = self.seen.entry(key).or_default();
                let (me, boot) = (&self.node.config.node, self.node.boot);
                deliveries.extend(entries.into_iter().filter_map(|entry| match entry.record {
                    // Its own lines reached this node's clients when they were said.
                    Some((writer, Body::Line { .. })) if writer.node == *me && writer.boot == boot => None,
                    Some((writer, Body::Line { line, kept })) if fresh(seen, &writer) => {
                        let (room, at, order) = (room.clone(), entry.id.time(), (entry.id.ms, writer.seq));
                        Some((order, Delivery::Line { writer: writer.node, room, line, kept, at }))
                    }
                    _ => None,
                }));
            }
        }
        // One writer's entries in the order it wrote them, whichever streams they are in
        // (a private line after a message stays after it).
        deliveries.sort_by_key(|(order, _)| *order);
        let mut hub = self.shared.hub.lock();
        for (_, delivery) in deliveries {
            match delivery {
                // A node judged gone is not heard until it says hello: its clients' names may be others' now.
                Delivery::Line { writer, .. } | Delivery::Tell { writer, .. } if hub.is_gone(&writer) => {}
                Delivery::Line { room, line, kept, at, .. } => hub.remote_line(&room, line, kept, at),
                Delivery::Tell { to, line, .. } => hub.remote_tell(&to, &line),
            }
        }
        Ok(())
    }

    /// A presence entry: a member moved or left, or a node said hello.
    async fn on_presence(&mut self, connection: &mut MultiplexedConnection, entry: Entry) -> RedisResult<()> {
        if let Some((writer, body)) = entry.record
            && writer.node != self.node.config.node
        {
            let before = self.boots.insert(writer.node.clone(), writer.boot);
            if before.is_some_and(|boot| boot < writer.boot) {
                // The same name, a new run: the old run's clients are gone, and told so.
                let left = self.shared.hub.lock().remote_restarted(&writer.node);
                info!(node = %writer.node, left, "a chat node restarted; the clients of its last run are gone");
            }
            match body {
                Body::Present { nick, room } => {
                    self.shared.hub.lock().remote_present(&writer.node, &nick, room.as_deref());
                }
                Body::Hello => {
                    let members = members(connection, &writer.node).await?;
                    self.shared.hub.lock().remote_node(&writer.node, &members);
                }
                Body::Line { .. } | Body::Tell { .. } => {}
            }
        }
        // Rooms that appeared since (here, or through this entry) are read from here on.
        let hub = self.shared.hub.lock();
        for room in hub.room_keys() {
            self.rooms.entry(room.clone()).or_insert_with(|| (entry::room_key(room), entry.id.just_before()));
        }
        Ok(())
    }
}

/// A line from another node for clients here.
enum Delivery {
    /// For the members of a room.
    Line { writer: String, room: Arc<str>, line: Bytes, kept: bool, at: DateTime<Utc> },
    /// For one client.
    Tell { writer: String, to: String, line: Bytes },
}

/// Whether `writer`'s entry is new: not one already seen (a batch sent
/// twice), nor from an earlier run of its node. Remembers it.
fn fresh(seen: &mut HashMap<String, (u64, u64)>, writer: &Writer) -> bool {
    match seen.get_mut(&writer.node) {
        Some((boot, last)) if *boot == writer.boot => {
            let new = writer.seq > *last;
            *last = (*last).max(writer.seq);
            new
        }
        Some((boot, _)) if *boot > writer.boot => false,
        _ => {
            seen.insert(writer.node.clone(), (writer.boot, writer.seq));
            true
        }
    }
}

/// The id of a stream's newest entry (zero for an empty or missing stream).
async fn last_id(connection: &mut MultiplexedConnection, key: &str) -> RedisResult<EntryId> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    let newest = entry::range_reply(newest).map_err(bad_reply)?;
    Ok(newest.first().map_or(EntryId::ZERO, |entry| entry.id))
}

/// A node's members, from its hash.
async fn members(connection: &mut MultiplexedConnection, node: &str) -> RedisResult<Vec<Member>> {
    let hash: Vec<(Vec<u8>, Vec<u8>)> =
        redis::cmd("HGETALL").arg(entry::members_key(node)).query_async(connection).await?;
    Ok(hash.iter().filter_map(|(_, value)| entry::parse_member(value)).collect())
}

fn bad_reply(e: entry::BadReply) -> RedisError {
    RedisError::from((redis::ErrorKind::UnexpectedReturnType, "unexpected reply", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_seen_or_from_an_earlier_run_are_not_fresh() {
        let mut seen = HashMap::new();
        let writer = |boot, seq| Writer { node: "n1".to_owned(), boot, seq };
        assert!(fresh(&mut seen, &writer(5, 1)));
        assert!(fresh(&mut seen, &writer(5, 2)));
        assert!(!fresh(&mut seen, &writer(5, 2)), "a batch sent twice");
        assert!(!fresh(&mut seen, &writer(5, 1)));
        assert!(fresh(&mut seen, &writer(5, 7)), "numbers may skip: the others went to other streams");
        assert!(!fresh(&mut seen, &writer(4, 9)), "an earlier run of the node");
        assert!(fresh(&mut seen, &writer(6, 1)), "a later run starts again");
        assert!(!fresh(&mut seen, &writer(5, 8)));
    }
}
