//! Telling users when cross-node chat is held up: while the writer cannot
//! hand lines to Redis, or the reader cannot read them (it is away,
//! restarting, or still loading its data),
//! local clients keep talking to each other and lines for the other nodes
//! wait; after [`DELAY_NOTICE`] of that, every local room is told, and told
//! again when it is over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::{Node, RedisBackplane};
use crate::chat::server::Shared;
use crate::shutdown::Shutdown;

/// How long cross-node chat may be held up before the rooms are told.
pub const DELAY_NOTICE: Duration = Duration::from_secs(2);
/// How often the writer's state is looked at.
const LOOK: Duration = Duration::from_millis(250);

/// What the rooms are told when cross-node chat is held up.
pub const DELAYED: &str =
    "the other chat servers cannot be reached for now: lines to and from them wait, and will come late";
/// What they are told when it is over.
pub const RESUMED: &str =
    "the other chat servers are reachable again: the lines that waited are on their way";

/// Watches the writer until shutdown.
pub(super) async fn run(node: Arc<Node>, shared: Arc<Shared<RedisBackplane>>, shutdown: Shutdown) {
    let mut down_since: Option<Instant> = None;
    let mut told = false;
    let mut ticks = tokio::time::interval(LOOK);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.triggered() => return,
        }
        let now = Instant::now();
        if node.up.load(Ordering::Acquire) && node.reading.load(Ordering::Acquire) {
            down_since = None;
            if std::mem::take(&mut told) {
                info!(node = %node.config.node, "cross-node chat resumed; rooms told");
                shared.hub.lock().notice_local(RESUMED);
            }
            continue;
        }
        let since = *down_since.get_or_insert(now);
        if !told && now.duration_since(since) >= DELAY_NOTICE {
            told = true;
            info!(node = %node.config.node, "cross-node chat held up; rooms told");
            shared.hub.lock().notice_local(DELAYED);
        }
    }
}
