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

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

use super::model::ImpairmentConfig;
use super::options::SettingError;
use crate::poll::{self, DeathWatch, DriverDied, DriverThread, Waker};

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

/// A request to a running proxy, with the channel its answer comes back on.
#[derive(Debug)]
pub enum Control {
    /// Apply `NAME=VALUE` settings (see [`crate::impair::options`]); answers the new settings.
    Set(Vec<(String, String)>, oneshot::Sender<Result<Settings, SettingError>>),
    /// Answer the settings in force.
    Show(oneshot::Sender<Settings>),
    /// Answer the counters.
    Stats(oneshot::Sender<ProxyStats>),
}

/// The settings of both directions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Client to server.
    pub up: ImpairmentConfig,
    /// Server to client.
    pub down: ImpairmentConfig,
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "up: {}; down: {}", self.up, self.down)
    }
}

/// The proxy on its listening socket, not yet running.
#[derive(Debug)]
pub struct Proxy {
    listen: UdpSocket,
    config: ProxyConfig,
}

/// Sends requests to a running proxy; cheap to clone.
#[derive(Clone, Debug)]
pub struct ControlSender {
    requests: mpsc::Sender<Control>,
    waker: Waker,
    death: DeathWatch,
}

impl ControlSender {
    /// Queues `request` and wakes the proxy.
    ///
    /// # Errors
    /// When the proxy has stopped, and why if its relay died.
    pub fn send(&self, request: Control) -> Result<(), Stopped> {
        self.requests.send(request).map_err(|_| self.stopped())?;
        self.waker.wake();
        Ok(())
    }

    /// Why the proxy does not answer: its relay died (and why), or it is
    /// shutting down.
    pub fn stopped(&self) -> Stopped {
        Stopped(self.death.death())
    }
}

/// The proxy has stopped: its relay died (why), or it was stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Stopped(pub Option<DriverDied>);

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(why) => write!(f, "the relay stopped: {why}; the proxy relays nothing"),
            None => f.write_str("the proxy is shutting down"),
        }
    }
}

/// A proxy running on its own thread.
#[derive(Debug)]
pub struct RunningProxy {
    control: ControlSender,
    driver: DriverThread<ProxyStats>,
}

impl RunningProxy {
    /// A handle for changing settings and reading counters.
    pub fn control(&self) -> ControlSender {
        self.control.clone()
    }

    /// Completes when the relay has stopped on its own (it died); then
    /// [`RunningProxy::stop`] says why. Cancel-safe.
    pub async fn died(&mut self) -> DriverDied {
        self.driver.finished().await;
        self.driver.death().unwrap_or_else(|| DriverDied::Failed("it stopped".to_owned()))
    }

    /// Stops the proxy and returns its final counters. Datagrams still
    /// delayed are dropped.
    ///
    /// # Errors
    /// Why the relay died, if it did.
    pub fn stop(self) -> Result<ProxyStats, DriverDied> {
        self.driver.stop()
    }
}

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
        let (requests, inbox) = mpsc::channel();
        let relay = relay::Relay::new(self.listen, self.config, inbox)?;
        let driver = poll::spawn("impair", move |waker| relay.run(waker))?;
        let control = ControlSender { requests, waker: driver.waker().clone(), death: driver.death_watch() };
        Ok(RunningProxy { control, driver })
    }
}
