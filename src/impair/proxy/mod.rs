//! The UDP impairment proxy: the one driver that owns the sockets and feeds
//! two [`Link`](crate::impair::Link)s, one per direction.
//!
//! Each client gets its own upstream socket, so the server sees one address
//! per client and its replies find their way back; the clients and where
//! their datagrams go are the sans-IO [`crate::impair::clients`] table's.
//!
//! The driver (the private `relay` module) is a plain loop on a thread of its own
//! ([`crate::poll::DriverThread`]): wait on its sockets, kept in one
//! [`crate::poll::Poller`], until the next release (precise to
//! microseconds), receive, hand datagrams to the links, send what is due,
//! repeat. If it dies, the control socket and the command say so at once.

mod relay;
mod stats;

pub use relay::FAULT_ENV;
pub use stats::ProxyStats;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::model::ImpairmentConfig;
use super::running::{ControlSender, Running};

/// What the proxy relays to, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyConfig {
    /// The server behind the proxy.
    pub upstream: SocketAddr,
    /// Impairments from clients to the server.
    pub up: ImpairmentConfig,
    /// Impairments from the server to clients.
    pub down: ImpairmentConfig,
    /// Seed of both directions' decisions.
    pub seed: u64,
    /// Larger datagrams are counted and dropped, never truncated.
    pub max_datagram: usize,
    /// Clients relayed at once; datagrams from more are dropped and counted.
    pub max_clients: usize,
    /// A client silent this long loses its upstream socket.
    pub client_idle: Duration,
    /// Run the relaying thread in the real-time scheduling class (needs
    /// root or CAP_SYS_NICE), for precise delays on a busy machine.
    pub realtime: bool,
}

/// The proxy on its listening socket, not yet running.
#[derive(Debug)]
pub struct Proxy {
    listen: UdpSocket,
    config: ProxyConfig,
}

/// The proxy running on its own thread.
pub type RunningProxy = Running<ProxyStats>;

/// Sends requests to a running proxy; cheap to clone.
pub type ProxySender = ControlSender<ProxyStats>;

impl Proxy {
    /// A proxy that receives clients' datagrams on `listen`.
    ///
    /// # Errors
    /// When the socket cannot be made non-blocking.
    pub fn new(listen: UdpSocket, config: ProxyConfig) -> io::Result<Self> {
        listen.set_nonblocking(true)?;
        Ok(Proxy { listen, config })
    }

    /// The address clients send to.
    ///
    /// # Errors
    /// When the socket cannot tell.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listen.local_addr()
    }

    /// Starts relaying on a thread of its own.
    ///
    /// # Errors
    /// When a descriptor or the thread cannot be created.
    pub fn spawn(self) -> io::Result<RunningProxy> {
        let relay = relay::Relay::new(self.listen, self.config)?;
        Running::spawn("impair", move |waker, inbox| relay.run(waker, inbox))
    }
}
