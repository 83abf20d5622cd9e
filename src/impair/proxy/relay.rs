//! The relay: the proxy's one loop, which owns every socket.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Instant;

use tracing::{debug, warn};

use super::{ProxyConfig, ProxyStats};
use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::impair::clients::{Admission, ClientAddr, ClientTable};
use crate::impair::link::Link;
use crate::impair::running::{Control, Links};
use crate::poll::{self, Poller, Waker};

/// Batches taken from a socket in one go before the loop looks at its other
/// sockets again: amortises the poll under load without starving them.
const ROUNDS: usize = 4;

/// The poller's tokens: the waker, the listening socket, then one per client.
const WAKER: u64 = 0;
const LISTEN: u64 = 1;
const FIRST_CLIENT: u64 = 2;

/// Datagrams larger than this are sent on their own, not batched, so that
/// a refusal (too big for the path) is known to be theirs.
const ALONE: usize = 16 << 10;

/// Set to `panic` in the environment, the relay panics at its first
/// datagram: how the tests check that a dead relay is reported at once.
pub const FAULT_ENV: &str = "SOCKETEER_IMPAIR_FAULT";

/// The loop and everything it owns.
pub(super) struct Relay {
    listen: BatchSocket,
    config: ProxyConfig,
    links: Links<ClientAddr>,
    clients: ClientTable<BatchSocket>,
    poller: Poller,
    stats: ProxyStats,
    bufs: RecvBuffers,
    /// Datagrams of the batch just received, before they enter a link.
    arrived: Vec<(SocketAddr, Vec<u8>)>,
    out: SendBuffer,
    fault: bool,
}

impl Relay {
    pub(super) fn new(listen: UdpSocket, config: ProxyConfig) -> io::Result<Self> {
        let listen = BatchSocket::new(listen)?;
        let poller = Poller::new()?;
        poller.add(listen.socket().as_fd(), LISTEN)?;
        Ok(Relay {
            listen,
            config,
            links: Links::new(config.up, config.down, config.seed),
            clients: ClientTable::new(config.upstream, config.max_clients, config.client_idle, FIRST_CLIENT),
            poller,
            stats: ProxyStats::default(),
            bufs: RecvBuffers::default(),
            arrived: Vec::new(),
            out: SendBuffer::default(),
            fault: std::env::var(FAULT_ENV).is_ok_and(|v| v == "panic"),
        })
    }

    pub(super) fn run(
        mut self,
        waker: &Waker,
        inbox: mpsc::Receiver<Control<ProxyStats>>,
    ) -> io::Result<ProxyStats> {
        self.poller.add(waker.as_fd(), WAKER)?;
        poll::tighten_timer_slack();
        if self.config.realtime
            && let Err(e) = poll::make_realtime()
        {
            warn!(error = %e, "cannot run in real time (needs root or CAP_SYS_NICE); delays will be less precise under load");
        }
        let mut ready = Vec::new();
        while !waker.is_stopped() {
            let deadline =
                [self.links.up.poll_timeout(), self.links.down.poll_timeout(), self.clients.next_expiry()]
                    .into_iter()
                    .flatten()
                    .min();
            ready.clear();
            ready.extend_from_slice(self.poller.wait(deadline)?);
            for &token in &ready {
                match token {
                    WAKER => {
                        waker.clear();
                        let (stats, clients) = (&self.stats, &self.clients);
                        self.links.answer(&inbox, |links| snapshot(links, stats, clients));
                    }
                    LISTEN => self.receive_from_clients(),
                    client => self.receive_from_upstream(client),
                }
            }
            let now = Instant::now();
            for (client, _) in self.clients.expire(now) {
                // Closing its socket takes it out of the poller too.
                debug!(%client, "client idle; upstream socket closed");
            }
            self.release(now);
        }
        Ok(snapshot(&self.links, &self.stats, &self.clients))
    }

    fn receive_from_clients(&mut self) {
        let mut arrived = std::mem::take(&mut self.arrived);
        let drained = self.listen.drain(&mut self.bufs, ROUNDS, |r| arrived.push((r.from, r.data.to_vec())));
        self.count_receive_error(drained, None);
        assert!(!self.fault || arrived.is_empty(), "{FAULT_ENV} asked for it");
        let now = Instant::now();
        for (client, datagram) in arrived.drain(..) {
            if !self.oversize(&datagram) && self.admit(client, now) {
                self.links.up.send(now, client, datagram);
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

    fn count_receive_error(&mut self, drained: io::Result<usize>, client: Option<ClientAddr>) {
        match drained {
            Ok(_) => {}
            // An ICMP error from the server's side, already counted from the error queue.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                self.stats.socket_errors += 1;
                debug!(?client, error = %e, "receive failed");
            }
        }
    }

    /// Relays `client` from now on if it is new and there is room; false
    /// when it cannot be relayed.
    fn admit(&mut self, client: ClientAddr, now: Instant) -> bool {
        if self.clients.touch(client, now).is_some() {
            return true;
        }
        let poller = &self.poller;
        let opened = self.clients.admit(client, now, |token| {
            let socket = open_upstream(self.config.upstream)?;
            poller.add(socket.socket().as_fd(), token)?;
            Ok::<_, io::Error>(socket)
        });
        match opened {
            Ok(Admission::Admitted) => {
                debug!(%client, "new client");
                self.stats.clients_total += 1;
                true
            }
            Ok(Admission::Full) => {
                self.stats.clients_refused += 1;
                warn!(%client, "too many clients; datagram dropped (raise --max-clients)");
                false
            }
            Err(e) => {
                self.stats.socket_errors += 1;
                warn!(%client, error = %e, "cannot open an upstream socket");
                false
            }
        }
    }

    fn receive_from_upstream(&mut self, token: u64) {
        let Some((client, entry)) = self.clients.by_token(token) else { return };
        let mut arrived = std::mem::take(&mut self.arrived);
        // ICMP errors (a server that is down) wait in the error queue.
        let unreachable = entry.socket.take_errors() as u64;
        let drained = entry.socket.drain(&mut self.bufs, ROUNDS, |r| arrived.push((r.from, r.data.to_vec())));
        self.stats.unreachable += unreachable;
        self.count_receive_error(drained, Some(client));
        let now = Instant::now();
        for (from, datagram) in arrived.drain(..) {
            if !self.clients.reply(client, from, now) {
                self.stats.foreign += 1;
                debug!(%client, %from, "datagram from another host than the server dropped");
            } else if !self.oversize(&datagram) {
                self.links.down.send(now, client, datagram);
            }
        }
        self.arrived = arrived;
    }

    /// Sends everything the links release by `now`, in batches per destination.
    fn release(&mut self, now: Instant) {
        let mut batch: Option<(ClientAddr, SocketAddr)> = None;
        while let Some((client, datagram)) = self.links.up.poll_transmit(now) {
            let Some(to) = self.clients.get(client).map(|c| c.upstream) else { continue };
            if batch.is_some_and(|b| b != (client, to)) {
                self.flush_upstream(batch.take());
            }
            let Some(entry) = self.clients.get(client) else { continue };
            let sent = send(&entry.socket, &mut self.out, to, &datagram);
            batch = (datagram.len() <= ALONE).then_some((client, to));
            count_send(sent, datagram.len(), &mut self.links.up, &mut self.stats);
        }
        self.flush_upstream(batch);
        let mut batch: Option<ClientAddr> = None;
        while let Some((client, datagram)) = self.links.down.poll_transmit(now) {
            if let Some(previous) = batch.filter(|&b| b != client) {
                let flushed = self.listen.flush(&mut self.out, previous);
                count_send(flushed.map_err(|e| (e, 0)), 0, &mut self.links.down, &mut self.stats);
            }
            let sent = send(&self.listen, &mut self.out, client, &datagram);
            batch = (datagram.len() <= ALONE).then_some(client);
            count_send(sent, datagram.len(), &mut self.links.down, &mut self.stats);
        }
        if let Some(client) = batch {
            let flushed = self.listen.flush(&mut self.out, client);
            count_send(flushed.map_err(|e| (e, 0)), 0, &mut self.links.down, &mut self.stats);
        }
    }

    fn flush_upstream(&mut self, batch: Option<(ClientAddr, SocketAddr)>) {
        let Some((client, to)) = batch else { return };
        if let Some(entry) = self.clients.get(client) {
            let flushed = entry.socket.flush(&mut self.out, to);
            count_send(flushed.map_err(|e| (e, 0)), 0, &mut self.links.up, &mut self.stats);
        }
    }
}

/// The counters, from the links and the loop's own.
fn snapshot(links: &Links<ClientAddr>, stats: &ProxyStats, clients: &ClientTable<BatchSocket>) -> ProxyStats {
    ProxyStats { up: links.up.counters(), down: links.down.counters(), clients: clients.len(), ..*stats }
}

/// Sends `datagram` to `to`: batched when small (what is already batched
/// for that destination goes with it), on its own when large, so a refusal
/// is known to be its own. The error names how many of ours it lost.
fn send(
    socket: &BatchSocket,
    out: &mut SendBuffer,
    to: SocketAddr,
    datagram: &[u8],
) -> Result<(), (io::Error, usize)> {
    if datagram.len() <= ALONE {
        return socket.push(out, to, datagram).map_err(|e| (e, 0));
    }
    socket.flush(out, to).map_err(|e| (e, 0))?;
    socket.socket().send_to(datagram, to).map(drop).map_err(|e| (e, 1))
}

/// Counts a send's failure: a datagram too big for the path is dropped
/// with that reason (it was counted forwarded when released); anything else
/// is a socket error.
fn count_send<M>(
    sent: Result<(), (io::Error, usize)>,
    len: usize,
    link: &mut Link<M>,
    stats: &mut ProxyStats,
) {
    match sent {
        Ok(()) => {}
        Err((e, 1)) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) => {
            link.unsent(len);
            debug!(len, "datagram too big for the path dropped");
        }
        Err((e, _)) if e.kind() == io::ErrorKind::ConnectionRefused => stats.unreachable += 1,
        Err((e, _)) => {
            stats.socket_errors += 1;
            debug!(error = %e, "send failed");
        }
    }
}

/// A client's own socket toward the server, not connected: replies may
/// come from any port of the server's host.
fn open_upstream(upstream: SocketAddr) -> io::Result<BatchSocket> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    BatchSocket::new(UdpSocket::bind(local)?)?.with_transport_errors()
}
