//! Several chat servers joined into one chat through Redis (`chat serve
//! --redis URL`): the Redis engine behind the hub's [`Backplane`].
//!
//! Each node keeps its own clients and its own hub; Redis carries what the
//! others need (the keys are listed in [`entry`]):
//!
//! - Every line broadcast in a room is appended to the room's stream
//!   (trimmed to about [`ClusterConfig::stream_len`] entries). Each node
//!   reads every stream of the rooms it knows of from the last entry it saw,
//!   so after a Redis restart or a network blip it catches up on what it
//!   missed, and a node that starts later replays the history from it.
//! - Every entry is tagged with its node, that node's run (`boot`) and a
//!   sequence number: a node skips its own entries (its clients had them
//!   already) and any entry it has seen (a batch resent after a lost reply).
//! - Presence (who is in which room under which nickname) goes through one
//!   stream that every node follows, and each node's members are also in a
//!   hash that a newcomer reads. That is what `/who`, `/msg` and the
//!   nickname checks of the hub use.
//! - A nickname is a lease in Redis that the owning node renews (a third of
//!   [`ClusterConfig::lease`]); it is given up when its client leaves, and
//!   runs out when its node dies. A node renews its own lease too; when it
//!   runs out the others announce its members as gone.
//!
//! Two tasks do the talking: the writer (one connection: everything the hub
//! hands to the backplane, in order, plus leases and heartbeats) and the
//! reader (a second connection, blocked in XREAD). Neither ever holds the
//! hub's lock across a round trip. If Redis is away, local clients keep
//! talking to each other; lines for the others wait in a bounded backlog,
//! and both tasks reconnect with backoff and say so in the log.
//!
//! Another engine (NATS, say) would be another [`Backplane`] with its own
//! tasks calling the hub's `remote_*` methods; the chat logic would not change.

pub mod entry;
mod link;
mod reader;
mod retain;
mod watch;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tracing::warn;

use super::hub::{Backplane, Claim, ClientId, HubError};
use super::protocol;
use super::server::Shared;
use crate::shutdown::Shutdown;

/// How long a `/nick` waits for Redis to grant the nickname.
const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// Bytes of lines and changes waiting for Redis before new lines are dropped.
const BACKLOG_BYTES: usize = 32 << 20;
/// What an item of the backlog costs beyond its lines.
const ITEM_OVERHEAD: usize = 96;

/// How a chat server joins a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where Redis is: `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// This node's name, unique among the live nodes of the cluster.
    pub node: String,
    /// How long a nickname (and the node itself) stays held without
    /// renewal: after a node dies, how long until its nicknames are free and
    /// the others announce its members as gone.
    pub lease: Duration,
    /// About how many entries each stream keeps (XADD MAXLEN ~).
    pub stream_len: usize,
}

impl ClusterConfig {
    /// The defaults, for node `node` of the cluster at `url`.
    pub fn new(url: &str, node: &str) -> ClusterConfig {
        ClusterConfig {
            url: url.to_owned(),
            node: node.to_owned(),
            lease: Duration::from_secs(10),
            stream_len: 10_000,
        }
    }

    /// Checks the URL and the node's name.
    ///
    /// # Errors
    /// When Redis's client does not take the URL, or the name breaks the
    /// rules of nicknames (which guest names are made from).
    pub fn check(&self) -> Result<redis::Client, ClusterError> {
        let client = redis::Client::open(self.url.as_str())
            // The client's own text names its error enum ("InvalidClientConfig"); say it plainly.
            .map_err(|e| ClusterError::BadUrl {
                url: self.url.clone(),
                reason: e.detail().unwrap_or("not a Redis URL").to_owned(),
            })?;
        protocol::check_name("node name", &self.node)
            .map_err(|e| ClusterError::BadNode { node: self.node.clone(), reason: e.to_string() })?;
        Ok(client)
    }

    /// Where Redis is, without any password: for status lines and logs.
    pub fn shown_url(&self) -> String {
        match redis::Client::open(self.url.as_str()) {
            Ok(client) => {
                let info = client.get_connection_info();
                format!("redis://{}/{}", info.addr(), info.redis_settings().db())
            }
            Err(_) => "redis://?".to_owned(),
        }
    }
}

/// A cluster setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL does not parse.
    #[error("--redis {url}: {reason} (expected redis://HOST:PORT[/DB])")]
    BadUrl {
        /// As given.
        url: String,
        /// Why not.
        reason: String,
    },
    /// The node's name is not a valid name.
    #[error("--node-id {node}: {reason}")]
    BadNode {
        /// As given.
        node: String,
        /// Why not.
        reason: String,
    },
}

/// What the hub hands to Redis, in order.
#[derive(Debug)]
enum Outbound {
    /// A line for a room's stream.
    Line { room: Arc<str>, line: Bytes, kept: bool, seq: u64 },
    /// A member's nickname and room, or (no room) the end of its nickname.
    Present { client: ClientId, nick: String, room: Option<String>, seq: u64 },
    /// A private line for a client of another node.
    Tell { node: String, to: String, line: Bytes, seq: u64 },
    /// A `/nick` waiting to hear whether the nickname is free.
    Claim { client: ClientId, nick: String, reply: oneshot::Sender<bool> },
}

impl Outbound {
    fn cost(&self) -> usize {
        ITEM_OVERHEAD
            + match self {
                Outbound::Line { line, .. } | Outbound::Tell { line, .. } => line.len(),
                Outbound::Present { .. } | Outbound::Claim { .. } => 0,
            }
    }
}

/// The queue between the hub and the writer.
#[derive(Debug, Default)]
struct Backlog {
    items: VecDeque<Outbound>,
    bytes: usize,
    /// The number of the last entry queued.
    seq: u64,
    /// Lines dropped because the backlog was full, since the last report.
    dropped: u64,
    /// A presence change was dropped: the others must re-read our members.
    stale: bool,
}

/// This node's side of the cluster, shared by the backplane and its tasks.
#[derive(Debug)]
struct Node {
    config: ClusterConfig,
    client: redis::Client,
    /// This run of the node.
    boot: u64,
    backlog: Mutex<Backlog>,
    /// Wakes the writer when the backlog grows.
    ready: Notify,
    /// Nicknames this node holds (folded) and their clients: the leases it renews.
    held: Mutex<HashMap<String, ClientId>>,
    /// Whether the writer is connected (a `/nick` fails at once when not).
    up: AtomicBool,
    /// Whether the reader's last read worked.
    reading: AtomicBool,
}

impl Node {
    fn lease_value(&self, client: ClientId) -> String {
        entry::lease_value(&self.config.node, self.boot, client)
    }

    fn push(&self, make: impl FnOnce(u64) -> Outbound) {
        let mut backlog = self.backlog.lock();
        backlog.seq += 1;
        let item = make(backlog.seq);
        let cost = item.cost();
        if backlog.bytes + cost > BACKLOG_BYTES && !matches!(item, Outbound::Claim { .. }) {
            match item {
                Outbound::Present { .. } => backlog.stale = true,
                _ => backlog.dropped += 1,
            }
            return;
        }
        backlog.bytes += cost;
        backlog.items.push_back(item);
        drop(backlog);
        self.ready.notify_one();
    }
}

/// The hub's backplane in a Redis cluster: it queues what the hub hands it
/// for the writer task, and never blocks.
#[derive(Debug, Clone)]
pub struct RedisBackplane {
    node: Arc<Node>,
}

impl RedisBackplane {
    /// A backplane for `config` (checked); its tasks start when the hub starts it.
    ///
    /// # Errors
    /// When the configuration cannot work (see [`ClusterConfig::check`]).
    pub fn new(config: ClusterConfig) -> Result<RedisBackplane, ClusterError> {
        let client = config.check()?;
        let boot = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        let node = Node {
            config,
            client,
            boot,
            backlog: Mutex::new(Backlog::default()),
            ready: Notify::new(),
            held: Mutex::new(HashMap::new()),
            up: AtomicBool::new(false),
            reading: AtomicBool::new(false),
        };
        Ok(RedisBackplane { node: Arc::new(node) })
    }

    /// Starts the writer and the reader for the server whose state is
    /// `shared`; they stop when `shutdown` triggers (the writer after saying
    /// goodbye to Redis).
    pub(super) fn start(&self, shared: Arc<Shared<RedisBackplane>>, shutdown: &Shutdown) {
        shutdown.spawn(writer::run(self.node.clone(), shared.clone(), shutdown.clone()));
        shutdown.spawn(reader::run(self.node.clone(), shared.clone(), shutdown.clone()));
        shutdown.spawn(watch::run(self.node.clone(), shared, shutdown.clone()));
    }
}

impl Backplane for RedisBackplane {
    fn published(&self, room: &Arc<str>, line: &Bytes, kept: bool) {
        self.node.push(|seq| Outbound::Line { room: room.clone(), line: line.clone(), kept, seq });
    }

    fn present(&self, client: ClientId, nick: &str, room: Option<&str>) {
        let key = protocol::fold(nick);
        {
            let mut held = self.node.held.lock();
            match room {
                Some(_) => {
                    held.insert(key, client);
                }
                None if held.get(&key) == Some(&client) => {
                    held.remove(&key);
                }
                None => {}
            }
        }
        let (nick, room) = (nick.to_owned(), room.map(str::to_owned));
        self.node.push(|seq| Outbound::Present { client, nick, room, seq });
    }

    fn tell(&self, node: &str, nick: &str, line: &Bytes) {
        let (node, to) = (node.to_owned(), nick.to_owned());
        self.node.push(|seq| Outbound::Tell { node, to, line: line.clone(), seq });
    }

    fn claim(&self, client: ClientId, nick: &str) -> Option<Claim> {
        if !self.node.up.load(Ordering::Acquire) {
            return Some(std::future::ready(Err(HubError::Unreachable)).boxed());
        }
        let (reply, granted) = oneshot::channel();
        let wanted = nick.to_owned();
        self.node.push(|_| Outbound::Claim { client, nick: wanted, reply });
        let nick = nick.to_owned();
        Some(
            async move {
                match tokio::time::timeout(CLAIM_WAIT, granted).await {
                    Ok(Ok(true)) => Ok(()),
                    Ok(Ok(false)) => Err(HubError::NickTaken(nick)),
                    Ok(Err(_)) | Err(_) => Err(HubError::Unreachable),
                }
            }
            .boxed(),
        )
    }
}

/// Logs, and tells the local rooms, the lines dropped since the last report.
fn report_dropped(node: &Node, shared: &Shared<RedisBackplane>) {
    let dropped = std::mem::take(&mut node.backlog.lock().dropped);
    if dropped > 0 {
        warn!(
            dropped,
            "lines not sent to the other chat servers: more than {} MiB waited for Redis",
            BACKLOG_BYTES >> 20
        );
        shared.hub.lock().notice_local(&format!(
            "{dropped} lines could not wait any longer for the other chat servers and were lost on the way to them"
        ));
    }
}
