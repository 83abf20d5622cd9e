//! The chat server: its settings, the state its connections share, and the
//! [`Service`] that `chat serve` and `socketeer serve` run, alone or as a
//! node of a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::admission::{Gate, Limits};
use super::cluster::{ClusterConfig, ClusterError, RedisBackplane};
use super::flood::RateLimit;
use super::hub::{Backplane, ClientId, Hub, HubConfig, Standalone};
use super::session;
use super::web::{self, WebConfig};
use crate::net::{Bound, Endpoint};
use crate::server::{Service, ServiceError, admit_loop};
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
    /// Clients from one address (IPv6: one /64) at once, of which half may
    /// not have sent a line yet, and new connections from it limited to
    /// [`CONNECT_RATE`](super::admission::CONNECT_RATE); `None` for none of
    /// these limits.
    pub max_per_address: Option<usize>,
    /// A new connection that sends no whole line this long is closed.
    pub register_timeout: Duration,
    /// A line must arrive whole within this once its first byte came.
    pub line_timeout: Duration,
    /// A client that sends nothing this long is sent `PING`. It is not
    /// closed for staying silent: only if its connection dies.
    pub ping_interval: Duration,
    /// How far behind its room a client may fall (in bytes of lines it has
    /// not been sent), and how much may wait in its private queue, before it
    /// counts as too slow and is disconnected. A room keeps at most this
    /// much of its recent lines, once for all its members, and only while
    /// some member still has them to read.
    pub queue: usize,
    /// A client whose output waits this long without it catching up is too
    /// slow and is disconnected, however little waits.
    pub slow_timeout: Duration,
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
            register_timeout: Duration::from_secs(60),
            line_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(120),
            queue: 32 << 20,
            slow_timeout: Duration::from_secs(30),
            history: 0,
        }
    }
}

/// A chat server on bound sockets.
#[derive(Debug)]
pub struct ChatServer {
    bound: Bound,
    config: ChatConfig,
    cluster: Option<(ClusterConfig, RedisBackplane)>,
    /// The web page's listeners, when it is served.
    web: Option<(Bound, WebConfig)>,
}

impl ChatServer {
    /// A chat server on `bound`'s TCP listeners.
    pub fn new(bound: Bound, config: ChatConfig) -> ChatServer {
        ChatServer { bound, config, cluster: None, web: None }
    }

    /// A chat server on `bound`'s TCP listeners that joins the cluster
    /// `cluster` describes (it starts whether Redis is up or not).
    ///
    /// # Errors
    /// When the cluster's settings cannot work.
    pub fn clustered(
        bound: Bound,
        config: ChatConfig,
        cluster: ClusterConfig,
    ) -> Result<ChatServer, ClusterError> {
        let backplane = RedisBackplane::new(cluster.clone())?;
        Ok(ChatServer { bound, config, cluster: Some((cluster, backplane)), web: None })
    }

    /// Also serves the web page and its WebSocket ([`web`]) on `bound`'s
    /// TCP listeners, into the same rooms and under the same limits.
    pub fn with_web(self, bound: Bound, config: WebConfig) -> ChatServer {
        ChatServer { web: Some((bound, config)), ..self }
    }
}

impl Service for ChatServer {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        let mut endpoints = self.bound.endpoints(self.name());
        if let Some((bound, _)) = &self.web {
            endpoints.extend(bound.endpoints(web::SERVICE));
        }
        endpoints
    }

    fn detail(&self) -> Option<String> {
        let (cluster, _) = self.cluster.as_ref()?;
        Some(format!("node {} of the cluster at {}", cluster.node, cluster.shown_url()))
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
        let ChatServer { bound, config, cluster, web } = *self;
        let hub = HubConfig { history: config.history, log_bytes: config.queue, ..HubConfig::default() };
        match cluster {
            None => serve(bound, web, Shared::new(config, hub, Standalone), shutdown),
            Some((cluster, backplane)) => {
                let hub = HubConfig { guest_suffix: format!(".{}", cluster.node), ..hub };
                let shared = Shared::new(config, hub, backplane.clone());
                backplane.start(shared.clone(), &shutdown);
                serve(bound, web, shared, shutdown)
            }
        }
    }
}

/// Accepts clients (and browsers, on `web`'s listeners) into `shared` until `shutdown`.
fn serve<B: Backplane + Send + 'static>(
    bound: Bound,
    web: Option<(Bound, WebConfig)>,
    shared: Arc<Shared<B>>,
    shutdown: Shutdown,
) -> BoxFuture<'static, Result<(), ServiceError>> {
    let config = &shared.config;
    // One gate for both ports: a browser counts under the same caps as any client.
    let gate = Arc::new(Gate::new(Limits {
        max_clients: config.max_clients,
        max_per_address: config.max_per_address,
    }));
    // Sessions look at the shutdown signal only when woken: wake them all once.
    let wake_all = {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        async move {
            shutdown.triggered().await;
            shared.hub.lock().wake_all();
        }
    };
    let pages = web.map(|(bound, config)| {
        let (shared, config) = (shared.clone(), Arc::new(config));
        admit_loop(
            web::SERVICE,
            bound.tcp,
            gate.clone(),
            shutdown.clone(),
            move |stream, peer, ticket, shutdown| {
                web::front(stream, peer, ticket, shared.clone(), shutdown, config.clone())
            },
        )
    });
    let serve = admit_loop("chat", bound.tcp, gate, shutdown, move |stream, peer, ticket, shutdown| {
        session::serve(stream, peer, ticket, shared.clone(), shutdown, session::Dialect::Lines)
    });
    let pages = async move {
        if let Some(pages) = pages {
            pages.await;
        }
    };
    async move {
        futures::join!(serve, pages, wake_all);
        Ok(())
    }
    .boxed()
}

/// What every connection of one server shares.
#[derive(Debug)]
pub(super) struct Shared<B> {
    pub hub: Mutex<Hub<B>>,
    pub config: ChatConfig,
    next_id: AtomicU64,
}

impl<B: Backplane> Shared<B> {
    fn new(config: ChatConfig, hub: HubConfig, backplane: B) -> Arc<Shared<B>> {
        let hub = Hub::new(hub, backplane);
        Arc::new(Shared { hub: Mutex::new(hub), config, next_id: AtomicU64::new(1) })
    }

    /// A number no other client of this server has had.
    pub fn next_id(&self) -> ClientId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
