//! The UDP impairment proxy: the one driver that owns the sockets and feeds
//! two [`Link`]s, one per direction.
//!
//! Each client gets its own upstream socket connected to the server, so the
//! server sees one address per client and its replies find their way back.
//!
//! The driver is a plain loop on a thread of its own: wait on every socket
//! until the next release ([`crate::poll::wait`], precise to microseconds),
//! receive, hand datagrams to the links, send what is due, repeat.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::link::{Link, LinkCounters};
use super::model::ImpairmentConfig;
use super::options::{self, SettingError};
use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::poll::{self, Waker};

/// Batches taken from a socket in one go before the loop looks at its other
/// sockets again: amortises the poll under load without starving them.
const ROUNDS: usize = 4;

/// Seeds the down direction differently from the up one, so the two
/// directions do not make the same choices in lockstep.
const DOWN_SEED_OFFSET: u64 = 0x9E37_79B9_7F4A_7C15;

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

/// Counters of a running proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client to server.
    pub up: LinkCounters,
    /// Server to client.
    pub down: LinkCounters,
    /// Clients relayed now.
    pub clients: usize,
    /// Clients seen since the start.
    pub clients_total: u64,
    /// Datagrams dropped because too many clients were being relayed.
    pub clients_refused: u64,
    /// Datagrams dropped because they were larger than the maximum.
    pub oversize: u64,
    /// Sends and receives that failed (an upstream that is down, say).
    pub socket_errors: u64,
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, c) in [("up", &self.up), ("down", &self.down)] {
            writeln!(
                f,
                "{name}: {} received, {} forwarded; dropped {} by loss, {} by a full queue, {} by overflow; \
                 {} duplicated, {} reordered, {} corrupted, {} queued",
                c.received,
                c.forwarded,
                c.dropped_loss,
                c.dropped_queue,
                c.dropped_overflow,
                c.duplicated,
                c.reordered,
                c.corrupted,
                c.queued
            )?;
        }
        write!(
            f,
            "clients: {} now, {} in all, {} refused; {} oversize datagrams dropped, {} socket errors",
            self.clients, self.clients_total, self.clients_refused, self.oversize, self.socket_errors
        )
    }
}

/// A request to a running proxy, with the channel its answer comes back on.
#[derive(Debug)]
pub enum Control {
    /// Apply `NAME=VALUE` settings (see [`options`]); answers the new settings.
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

/// A client is addressed by where its datagrams come from.
type Client = SocketAddr;

struct Session {
    socket: BatchSocket,
    last_seen: Instant,
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
}

impl ControlSender {
    /// Queues `request` and wakes the proxy.
    ///
    /// # Errors
    /// When the proxy has stopped.
    pub fn send(&self, request: Control) -> Result<(), Stopped> {
        self.requests.send(request).map_err(|_| Stopped)?;
        self.waker.wake();
        Ok(())
    }
}

/// The proxy has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the proxy has stopped")]
pub struct Stopped;

/// A proxy running on its own thread.
#[derive(Debug)]
pub struct RunningProxy {
    control: ControlSender,
    thread: thread::JoinHandle<io::Result<ProxyStats>>,
}

impl RunningProxy {
    /// A handle for changing settings and reading counters.
    pub fn control(&self) -> ControlSender {
        self.control.clone()
    }

    /// Stops the proxy and returns its final counters. Datagrams still
    /// delayed are dropped.
    ///
    /// # Errors
    /// When the loop failed (its poll or wake-up descriptor broke).
    pub fn stop(self) -> io::Result<ProxyStats> {
        self.control.waker.stop();
        self.thread.join().map_err(|_| io::Error::other("the proxy thread panicked"))?
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
    /// When the wake-up descriptor or the thread cannot be created.
    pub fn spawn(self) -> io::Result<RunningProxy> {
        let waker = Waker::new()?;
        let (requests, inbox) = mpsc::channel();
        let config = self.config;
        let driver = Driver {
            listen: BatchSocket::new(self.listen)?,
            waker: waker.clone(),
            inbox,
            config,
            up: Link::new(config.up, config.seed),
            down: Link::new(config.down, config.seed.wrapping_add(DOWN_SEED_OFFSET)),
            sessions: HashMap::new(),
            stats: ProxyStats::default(),
            bufs: RecvBuffers::default(),
            arrived: Vec::new(),
            out: SendBuffer::default(),
        };
        let thread = thread::Builder::new().name("impair".to_owned()).spawn(move || driver.run())?;
        Ok(RunningProxy { control: ControlSender { requests, waker }, thread })
    }
}

/// The loop and everything it owns.
struct Driver {
    listen: BatchSocket,
    waker: Waker,
    inbox: mpsc::Receiver<Control>,
    config: ProxyConfig,
    up: Link<Client>,
    down: Link<Client>,
    sessions: HashMap<Client, Session>,
    stats: ProxyStats,
    bufs: RecvBuffers,
    /// Datagrams of the batch just received, before they enter a link.
    arrived: Vec<(SocketAddr, Vec<u8>)>,
    out: SendBuffer,
}

/// Which descriptors a poll found ready.
struct Ready {
    wake: bool,
    listen: bool,
    upstream: Vec<Client>,
}

impl Driver {
    fn run(mut self) -> io::Result<ProxyStats> {
        poll::tighten_timer_slack();
        if self.config.realtime
            && let Err(e) = poll::make_realtime()
        {
            warn!(error = %e, "cannot run in real time (needs root or CAP_SYS_NICE); delays will be less precise under load");
        }
        let sweep_every = self.config.client_idle.min(Duration::from_secs(1));
        let mut next_sweep = Instant::now() + sweep_every;
        while !self.waker.is_stopped() {
            let ready = self.wait(self.next_deadline().min(next_sweep))?;
            if ready.wake {
                self.answer_requests();
            }
            if ready.listen {
                self.receive_from_clients();
            }
            for client in ready.upstream {
                self.receive_from_upstream(client);
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.forget_idle_clients(now);
                next_sweep = now + sweep_every;
            }
            self.release(now);
        }
        Ok(ProxyStats { clients: self.sessions.len(), ..self.snapshot() })
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        [self.up.poll_timeout(), self.down.poll_timeout()].into_iter().flatten().min().unwrap_or(far)
    }

    /// Waits until a socket is readable or `deadline` passes.
    fn wait(&self, deadline: Instant) -> io::Result<Ready> {
        let clients: Vec<Client> = self.sessions.keys().copied().collect();
        let mut fds = vec![self.waker.as_fd(), self.listen.socket().as_fd()];
        fds.extend(clients.iter().filter_map(|c| self.sessions.get(c)).map(|s| s.socket.socket().as_fd()));
        let ready = poll::wait(&fds, Some(deadline))?;
        Ok(Ready {
            wake: ready[0],
            listen: ready[1],
            upstream: clients.into_iter().zip(&ready[2..]).filter(|(_, r)| **r).map(|(c, _)| c).collect(),
        })
    }

    fn snapshot(&self) -> ProxyStats {
        ProxyStats {
            up: self.up.counters(),
            down: self.down.counters(),
            clients: self.sessions.len(),
            ..self.stats
        }
    }

    fn settings(&self) -> Settings {
        Settings { up: *self.up.config(), down: *self.down.config() }
    }

    fn answer_requests(&mut self) {
        self.waker.clear();
        // A requester that gave up waiting is no concern of the proxy's.
        while let Ok(request) = self.inbox.try_recv() {
            match request {
                Control::Set(pairs, reply) => {
                    let (mut up, mut down) = (*self.up.config(), *self.down.config());
                    let result = options::apply(&mut up, &mut down, &pairs).map(|()| {
                        self.up.set_config(up);
                        self.down.set_config(down);
                        info!(%up, %down, "settings changed");
                        self.settings()
                    });
                    let _ = reply.send(result);
                }
                Control::Show(reply) => {
                    let _ = reply.send(self.settings());
                }
                Control::Stats(reply) => {
                    let _ = reply.send(self.snapshot());
                }
            }
        }
    }

    fn receive_from_clients(&mut self) {
        let mut arrived = std::mem::take(&mut self.arrived);
        let drained = self.listen.drain(&mut self.bufs, ROUNDS, |r| arrived.push((r.from, r.data.to_vec())));
        self.count_receive_error(drained, None);
        let now = Instant::now();
        for (client, datagram) in arrived.drain(..) {
            if !self.oversize(&datagram) && self.touch_session(client, now) {
                self.up.send(now, client, datagram);
            }
        }
        self.arrived = arrived;
    }

    /// Counts and drops a datagram over the maximum; true when it was one.
    fn oversize(&mut self, datagram: &[u8]) -> bool {
        let over = datagram.len() > self.config.max_datagram;
        if over {
            self.stats.oversize += 1;
            debug!(len = datagram.len(), "datagram over the maximum size dropped");
        }
        over
    }

    fn count_receive_error(&mut self, drained: io::Result<usize>, client: Option<Client>) {
        if let Err(e) = drained {
            self.stats.socket_errors += 1;
            debug!(?client, error = %e, "receive failed (an upstream that is down, for a client's socket)");
        }
    }

    /// Marks `client` as active, opening its upstream socket if it is new;
    /// false when it cannot be relayed.
    fn touch_session(&mut self, client: Client, now: Instant) -> bool {
        if let Some(session) = self.sessions.get_mut(&client) {
            session.last_seen = now;
            return true;
        }
        if self.sessions.len() >= self.config.max_clients {
            self.stats.clients_refused += 1;
            warn!(%client, "too many clients; datagram dropped (raise --max-clients)");
            return false;
        }
        match self.open_upstream() {
            Ok(socket) => {
                debug!(%client, local = ?socket.socket().local_addr().ok(), "new client");
                self.sessions.insert(client, Session { socket, last_seen: now });
                self.stats.clients_total += 1;
                true
            }
            Err(e) => {
                self.stats.socket_errors += 1;
                warn!(%client, error = %e, "cannot open an upstream socket");
                false
            }
        }
    }

    fn open_upstream(&self) -> io::Result<BatchSocket> {
        let upstream = self.config.upstream;
        let local: SocketAddr = match upstream {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(upstream)?;
        BatchSocket::new(socket)
    }

    fn receive_from_upstream(&mut self, client: Client) {
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let mut arrived = std::mem::take(&mut self.arrived);
        // A connected socket reports an ICMP error (an upstream that is
        // down) here, once; the socket stays usable.
        let drained =
            session.socket.drain(&mut self.bufs, ROUNDS, |r| arrived.push((client, r.data.to_vec())));
        let now = Instant::now();
        session.last_seen = now;
        self.count_receive_error(drained, Some(client));
        for (client, datagram) in arrived.drain(..) {
            if !self.oversize(&datagram) {
                self.down.send(now, client, datagram);
            }
        }
        self.arrived = arrived;
    }

    /// Sends everything the links release by `now`, in batches per destination.
    fn release(&mut self, now: Instant) {
        let upstream = self.config.upstream;
        let mut batch: Option<Client> = None;
        while let Some((client, datagram)) = self.up.poll_transmit(now) {
            if batch.is_some_and(|b| b != client) {
                self.flush_upstream(batch.take());
            }
            let Some(session) = self.sessions.get(&client) else { continue };
            batch = Some(client);
            if let Err(e) = session.socket.push(&mut self.out, upstream, &datagram) {
                self.send_failed(client, &e);
            }
        }
        self.flush_upstream(batch);
        let mut batch: Option<Client> = None;
        while let Some((client, datagram)) = self.down.poll_transmit(now) {
            if let Some(previous) = batch.filter(|&b| b != client) {
                let flushed = self.listen.flush(&mut self.out, previous);
                self.check_sent(previous, flushed);
            }
            batch = Some(client);
            let pushed = self.listen.push(&mut self.out, client, &datagram);
            self.check_sent(client, pushed);
        }
        if let Some(client) = batch {
            let flushed = self.listen.flush(&mut self.out, client);
            self.check_sent(client, flushed);
        }
    }

    fn flush_upstream(&mut self, client: Option<Client>) {
        let Some(client) = client else { return };
        if let Some(session) = self.sessions.get(&client) {
            let flushed = session.socket.flush(&mut self.out, self.config.upstream);
            self.check_sent(client, flushed);
        }
    }

    fn check_sent(&mut self, client: Client, result: io::Result<()>) {
        if let Err(e) = result {
            self.send_failed(client, &e);
        }
    }

    fn send_failed(&mut self, client: Client, e: &io::Error) {
        self.stats.socket_errors += 1;
        debug!(%client, error = %e, "send failed (is the server up?)");
    }

    fn forget_idle_clients(&mut self, now: Instant) {
        let idle = self.config.client_idle;
        self.sessions.retain(|client, session| {
            let keep = now.duration_since(session.last_seen) < idle;
            if !keep {
                debug!(%client, "client idle; upstream socket closed");
            }
            keep
        });
    }
}
