//! The chat server: its settings, the state its connections share, and the
//! [`Service`] that `chat serve` and `socketeer serve` run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::flood::RateLimit;
use super::hub::{ClientId, Hub, HubConfig, Standalone};
use super::session;
use crate::net::{Bound, Endpoint};
use crate::server::{Admission, Refusal, Service, TcpLimits, admit_loop};
use crate::shutdown::Shutdown;

/// Every limit of a chat server.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatConfig {
    /// The longest line a client may send, in bytes; longer ones are
    /// refused with a notice and skipped up to the next newline.
    pub max_line: usize,
    /// Lines per client per second; `None` for no flood control.
    pub rate_limit: Option<RateLimit>,
    /// Clients connected at once.
    pub max_clients: usize,
    /// Clients from one address at once; `None` for no cap.
    pub max_per_address: Option<usize>,
    /// A client that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// How far behind its room a client may fall (in bytes of lines it has
    /// not been sent), and how much may wait in its private queue, before it
    /// counts as too slow and is disconnected. Each room keeps this much of
    /// its recent lines.
    pub queue: usize,
    /// Messages each room keeps and replays to whoever joins it.
    pub history: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_line: 4096,
            rate_limit: Some(RateLimit { per_sec: 10.0, burst: 20 }),
            max_clients: 1024,
            max_per_address: Some(16),
            idle_timeout: Duration::from_secs(300),
            queue: 256 * 1024,
            history: 0,
        }
    }
}

/// What a client is told when it is turned away at the door.
fn refusal(refusal: Refusal) -> String {
    match refusal {
        Refusal::Full { max } => format!("! the server is full ({max} clients); try again later\n"),
        Refusal::PerAddress { max } => {
            format!("! too many connections from your address (at most {max}); close one and try again\n")
        }
    }
}

/// A chat server on bound sockets.
#[derive(Debug)]
pub struct ChatServer {
    bound: Bound,
    config: ChatConfig,
}

impl ChatServer {
    /// A chat server on `bound`'s TCP listeners.
    pub fn new(bound: Bound, config: ChatConfig) -> ChatServer {
        ChatServer { bound, config }
    }
}

impl Service for ChatServer {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.bound.endpoints(self.name())
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, ()> {
        let ChatServer { bound, config } = *self;
        let admission = Admission {
            // The chat's own idle timeout is enforced per client by its session.
            limits: TcpLimits { max_connections: config.max_clients, idle_timeout: config.idle_timeout },
            max_per_address: config.max_per_address,
            refusal: Some(refusal),
        };
        let shared = Arc::new(Shared::new(config));
        // Sessions look at the shutdown signal only when woken: wake them all once.
        let wake_all = {
            let (shared, shutdown) = (shared.clone(), shutdown.clone());
            async move {
                shutdown.triggered().await;
                shared.hub.lock().wake_all();
            }
        };
        let serve = admit_loop("chat", bound.tcp, admission, shutdown, move |stream, peer, shutdown| {
            session::serve(stream, peer, shared.clone(), shutdown)
        });
        async move {
            futures::join!(serve, wake_all);
        }
        .boxed()
    }
}

/// What every connection of one server shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub hub: Mutex<Hub<Standalone>>,
    pub config: ChatConfig,
    next_id: AtomicU64,
}

impl Shared {
    fn new(config: ChatConfig) -> Shared {
        let hub_config =
            HubConfig { history: config.history, log_bytes: config.queue, ..HubConfig::default() };
        let hub = Hub::new(hub_config, Standalone);
        Shared { hub: Mutex::new(hub), config, next_id: AtomicU64::new(1) }
    }

    /// A number no other client of this server has had.
    pub fn next_id(&self) -> ClientId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
