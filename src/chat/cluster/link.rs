//! A task's connection to Redis, made again whenever it fails: backoff,
//! timeouts, and one log line per change (not per try).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, RedisResult, Value};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Node;
use crate::shutdown::Shutdown;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first pause after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One task's link to Redis.
#[derive(Debug)]
pub(super) struct Link {
    /// What the task is called in the log.
    role: &'static str,
    /// Whether losing and regaining Redis is worth a warning (the writer's
    /// link) or only a debug line (the reader's, which fails at the same time).
    loud: bool,
    /// How long a reply may take before the connection counts as lost.
    response_timeout: Duration,
    connected_once: bool,
    /// Since when Redis has been out of reach.
    down_since: Option<Instant>,
}

impl Link {
    pub(super) fn new(role: &'static str, loud: bool, response_timeout: Duration) -> Link {
        Link { role, loud, response_timeout, connected_once: false, down_since: None }
    }

    /// Connects, trying again with backoff until it works; `None` once the
    /// server is shutting down.
    pub(super) async fn connect(
        &mut self,
        node: &Node,
        shutdown: &Shutdown,
    ) -> Option<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.response_timeout));
        let mut backoff = FIRST_BACKOFF;
        let url = node.config.shown_url();
        loop {
            let attempt = tokio::select! {
                attempt = node.client.get_multiplexed_async_connection_with_config(&config) => attempt,
                () = shutdown.triggered() => return None,
            };
            match attempt {
                Ok(connection) => {
                    self.connected(&url, &node.config.node);
                    return Some(connection);
                }
                Err(e) if self.down_since.is_none() => {
                    self.down_since = Some(Instant::now());
                    if self.loud {
                        warn!(
                            node = %node.config.node,
                            "cannot reach Redis at {url} ({e}); local clients keep chatting; \
                             retrying every {} at most",
                            humantime::format_duration(MAX_BACKOFF)
                        );
                    } else {
                        debug!(role = self.role, "cannot reach Redis at {url}: {e}");
                    }
                }
                Err(e) => debug!(role = self.role, "still cannot reach Redis at {url}: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.triggered() => return None,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn connected(&mut self, url: &str, node: &str) {
        let first = !self.connected_once;
        self.connected_once = true;
        let away = self.down_since.take().map(|since| since.elapsed());
        match (self.loud, away) {
            (true, Some(away)) if first => {
                info!(node, "reached Redis at {url} after {:.1} s", away.as_secs_f64());
            }
            (true, Some(away)) => {
                info!(node, "reconnected to Redis at {url} after {:.1} s; catching up", away.as_secs_f64())
            }
            _ => debug!(role = self.role, "connected to Redis at {url}"),
        }
    }

    /// The connection failed: the next [`Link::connect`] makes a new one.
    pub(super) fn lost(&mut self, node: &Node, error: &redis::RedisError) {
        if self.down_since.is_some() {
            return;
        }
        self.down_since = Some(Instant::now());
        let url = node.config.shown_url();
        if self.loud {
            warn!(
                node = %node.config.node,
                "lost Redis at {url} ({error}); local clients keep chatting; reconnecting"
            );
        } else {
            debug!(role = self.role, "lost Redis at {url}: {error}");
        }
    }
}

/// Error codes with which Redis says "not now": the same commands will work later.
const TRANSIENT: [&str; 9] =
    ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "OOM", "NOREPLICAS", "MISCONF"];

/// The first answer in `answers` that says Redis cannot take the command
/// now, as an error; `Ok` when there is none.
pub(super) fn transient(answers: &[Value]) -> RedisResult<()> {
    let busy = answers.iter().find_map(|answer| match answer {
        Value::ServerError(e) if TRANSIENT.contains(&e.code()) => Some(e),
        _ => None,
    });
    match busy {
        None => Ok(()),
        Some(e) => Err(RedisError::from((
            redis::ErrorKind::Io,
            "Redis cannot take commands now",
            format!("{} {}", e.code(), e.details().unwrap_or_default()),
        ))),
    }
}
