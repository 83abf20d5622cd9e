//! The SYN reactor: one thread sends its own SYNs through a raw socket and
//! reads the answers, never completing a handshake. SYN-ACK means open, RST
//! means closed, silence through every retry means filtered. (The kernel,
//! which knows nothing of our SYN, resets the half-open connection itself.)
//!
//! A real TCP socket bound to our source port keeps every other program
//! (and the kernel's port picker) off it while the scan runs, and the
//! sequence number of each SYN is a keyed hash of its destination, so only
//! answers to our own probes count.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::socket::{SockaddrStorage, recvfrom};
use socket2::{Domain, SockAddr, Socket};

use super::packet::{self, SYN_LEN, TcpReply};
use super::report::{PortState, Reason};
use super::schedule::Scheduler;
use super::schedule::throttle::SharedThrottle;
use super::tcp::SEND_BATCH;
use super::worker::{Group, Plan, Reporter, Stopped, poll_wait, share};
use crate::rawsock;

/// Attempts at finding a source port free over both IPv4 and IPv6.
const PORT_ATTEMPTS: usize = 16;

/// Scans reactor `k`'s share of the group's TCP ports with raw SYNs. Each
/// reactor has its own source port, so each reads only its own answers.
///
/// # Errors
/// When the raw sockets, the source port or epoll cannot be set up.
pub(super) fn scan(
    group: &Group,
    plan: &Plan,
    k: usize,
    throttles: Vec<Arc<SharedThrottle>>,
    mut out: Reporter<'_>,
) -> io::Result<()> {
    let (_reservation, port) = reserve_port()?;
    let mut poll = Poll::new()?;
    let open = |domain: Domain, token: usize| -> io::Result<Option<Socket>> {
        if !group.ips.iter().any(|ip| ip.is_ipv4() == (domain == Domain::IPV4)) {
            return Ok(None);
        }
        let socket = rawsock::raw_tcp(domain, port)?;
        poll.registry().register(&mut SourceFd(&socket.as_raw_fd()), Token(token), Interest::READABLE)?;
        Ok(Some(socket))
    };
    let (v4, v6) = (open(Domain::IPV4, 0)?, open(Domain::IPV6, 1)?);
    let sources = group.ips.iter().map(|&ip| rawsock::source_for(ip).ok()).collect();
    let hosts = group.ips.iter().enumerate().map(|(i, ip)| (*ip, i as u32)).collect();
    let ports = share(&plan.tcp_ports, k, plan.connect_threads);
    let mut scheduler = Scheduler::sharing(plan.schedule, throttles, ports, true, Instant::now());
    let mut reactor = Reactor { group, v4, v6, sources, hosts, port, key: RandomState::new(), out: &mut out };
    // Stopped: the results so far still go out, marked incomplete.
    let _ = reactor.drive(&mut poll, &mut scheduler);
    out.finish(&scheduler, PortState::Filtered);
    Ok(())
}

/// Failed sends to one host after which it is taken to be absent: with the
/// back-off doubling from 20 ms to half a second, about three seconds, the
/// time Linux gives an address to answer ARP or NDP before it fails it.
const HOST_SEND_FAILURES: u32 = 10;

/// What a failed send says.
enum SendFailure {
    /// This machine is short of buffers for every destination: wait a moment.
    Machine,
    /// Sending to this host failed (an address that does not answer ARP
    /// fills its neighbour queue and then fails: ENOBUFS, EHOSTUNREACH).
    Host,
}

fn classify_send_error(e: &io::Error) -> SendFailure {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EAGAIN | Errno::ENOMEM | Errno::EINTR) => SendFailure::Machine,
        _ => SendFailure::Host,
    }
}

/// A source port held by TCP sockets over IPv4 and IPv6, bound but never
/// listening: answers to it reach no socket, so the kernel resets them, and a
/// probe of the port itself finds it closed.
fn reserve_port() -> io::Result<([Socket; 2], u16)> {
    let mut last = io::Error::other("no source port");
    for _ in 0..PORT_ATTEMPTS {
        let v4 = Socket::new(Domain::IPV4, socket2::Type::STREAM, None)?;
        v4.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
        let port = v4.local_addr()?.as_socket().map_or(0, |a| a.port());
        let v6 = Socket::new(Domain::IPV6, socket2::Type::STREAM, None)?;
        v6.set_only_v6(true)?;
        match v6.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into()) {
            Ok(()) => return Ok(([v4, v6], port)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

struct Reactor<'a, 'r> {
    group: &'a Group,
    v4: Option<Socket>,
    v6: Option<Socket>,
    sources: Vec<Option<IpAddr>>,
    hosts: HashMap<IpAddr, u32>,
    port: u16,
    key: RandomState,
    out: &'a mut Reporter<'r>,
}

impl Reactor<'_, '_> {
    fn drive(&mut self, poll: &mut Poll, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let mut events = Events::with_capacity(16);
        let mut syn = [0u8; SYN_LEN];
        loop {
            let mut now = Instant::now();
            let mut batch = 0;
            while let Some((slot, probe)) = scheduler.poll_send(now) {
                let dst = self.group.ip(probe.host);
                let socket = if dst.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() };
                let (Some(socket), Some(source)) = (socket, self.sources[probe.host as usize]) else {
                    // No route to the host.
                    scheduler.settle(slot, now, PortState::Filtered, Reason::Unreachable);
                    continue;
                };
                packet::build_syn(&mut syn, source, dst, self.port, probe.port, self.cookie(dst, probe.port));
                match socket.send_to(&syn, &SockAddr::from(self.group.addr(probe.host, 0))) {
                    Ok(_) => {
                        self.out.sending(probe);
                        scheduler.sent(slot, now);
                    }
                    Err(e) => match classify_send_error(&e) {
                        SendFailure::Machine => {
                            scheduler.defer(slot, now);
                            break;
                        }
                        SendFailure::Host => {
                            tracing::debug!("sending to {dst} failed: {e}");
                            scheduler.defer_host(slot, now);
                            if scheduler.send_failures(probe.host) >= HOST_SEND_FAILURES {
                                tracing::debug!("{dst} does not answer ARP or NDP; giving it up");
                                scheduler.host_unreachable(probe.host, now);
                            }
                        }
                    },
                }
                now = Instant::now();
                batch += 1;
                if batch == SEND_BATCH {
                    break;
                }
            }
            self.out.progress(scheduler.concluded());
            if scheduler.is_done() || self.out.stopped() {
                return Ok(());
            }
            let wait = Some(poll_wait(scheduler, batch == SEND_BATCH));
            if poll.poll(&mut events, wait).is_err() {
                continue;
            }
            self.read_v4(scheduler)?;
            self.read_v6(scheduler)?;
            let now = Instant::now();
            while scheduler.handle_timeout(now).is_some() {}
        }
    }

    fn read_v4(&mut self, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let mut buf = [0u8; 1500];
        while let Some(n) = self.v4.as_ref().and_then(|mut s| s.read(&mut buf).ok()) {
            if let Some((from, reply)) = packet::parse_ipv4(&buf[..n]) {
                self.answer(scheduler, from, reply)?;
            }
        }
        Ok(())
    }

    fn read_v6(&mut self, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let mut buf = [0u8; 1500];
        let Some(fd) = self.v6.as_ref().map(|s| s.as_raw_fd()) else { return Ok(()) };
        while let Ok((n, Some(from))) = recvfrom::<SockaddrStorage>(fd, &mut buf) {
            let (Some(from), Some(reply)) = (from.as_sockaddr_in6(), packet::parse_tcp(&buf[..n])) else {
                continue;
            };
            self.answer(scheduler, IpAddr::V6(from.ip()), reply)?;
        }
        Ok(())
    }

    fn answer(&mut self, scheduler: &mut Scheduler, from: IpAddr, reply: TcpReply) -> Result<(), Stopped> {
        if reply.dst_port != self.port || reply.ack != self.cookie(from, reply.src_port).wrapping_add(1) {
            return Ok(());
        }
        let verdict = if reply.syn_ack {
            (PortState::Open, Reason::SynAck)
        } else if reply.rst {
            (PortState::Closed, Reason::Reset)
        } else {
            return Ok(());
        };
        let Some(&host) = self.hosts.get(&from) else { return Ok(()) };
        match scheduler.answer(host, reply.src_port, Instant::now(), verdict.0, verdict.1) {
            Some(settled) if settled.recorded && verdict.0 == PortState::Open => {
                self.out.open(settled.probe, verdict.1, None)
            }
            _ => Ok(()),
        }
    }

    /// The sequence number of our SYN to `ip:port`: unguessable by others,
    /// recomputed to check an answer's acknowledgement number.
    fn cookie(&self, ip: IpAddr, port: u16) -> u32 {
        self.key.hash_one((ip, port)) as u32
    }
}
