//! The UDP reactor: one thread, one unconnected socket per address family,
//! one datagram per probe.
//!
//! Answers tell the verdict: a datagram back means open; ICMP port
//! unreachable means closed; other ICMP unreachables mean filtered; silence
//! through every retry means open|filtered. ICMP errors are read from the
//! socket's error queue (`IP_RECVERR`), whose entries name the destination
//! of the datagram that failed, so no raw socket and no socket per probe is
//! needed. A datagram that comes from our own socket's port (the probe
//! reached ourselves) makes that port closed: nothing else can hold it.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvfrom, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::payloads;
use super::report::{PortState, Reason};
use super::schedule::Scheduler;
use super::schedule::throttle::SharedThrottle;
use super::tcp::SEND_BATCH;
use super::worker::{Group, Plan, Reporter, Stopped, poll_wait, share};

/// Receive buffer of each socket: answers and ICMP errors queue here between polls.
const RECV_BUFFER: usize = 4 << 20;

/// ICMP and ICMPv6 "port unreachable", as `(type, code)`.
const ICMP_PORT_UNREACHABLE: (u8, u8) = (3, 3);
const ICMP6_PORT_UNREACHABLE: (u8, u8) = (1, 4);
/// A firewall's rejects: ICMP network, host and communication
/// administratively prohibited; ICMPv6 administratively prohibited.
const ICMP_NET_PROHIBITED: (u8, u8) = (3, 9);
const ICMP_HOST_PROHIBITED: (u8, u8) = (3, 10);
const ICMP_ADMIN_PROHIBITED: (u8, u8) = (3, 13);
const ICMP6_ADMIN_PROHIBITED: (u8, u8) = (1, 1);

/// The `ee_origin` of errors that came from ICMP or ICMPv6 messages.
const ORIGIN_ICMP: u8 = 2;
const ORIGIN_ICMP6: u8 = 3;

/// One socket per family, created when the group has a host of that family.
struct Sockets {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

impl Sockets {
    fn for_group(group: &Group, poll: &Poll) -> io::Result<Sockets> {
        let want = |v4: bool| group.ips.iter().any(|ip| ip.is_ipv4() == v4);
        let v4 = want(true).then(|| open(Domain::IPV4, 0, poll)).transpose()?;
        let v6 = want(false).then(|| open(Domain::IPV6, 1, poll)).transpose()?;
        Ok(Sockets { v4, v6 })
    }

    fn for_ip(&self, ip: IpAddr) -> Option<&Socket> {
        if ip.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() }
    }
}

fn open(domain: Domain, token: usize, poll: &Poll) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
    let any: SocketAddr = if domain == Domain::IPV4 {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        socket.set_only_v6(true)?;
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    socket.bind(&any.into())?;
    // Past the system's cap only with CAP_NET_ADMIN; a smaller buffer only means more retries.
    if setsockopt(&socket, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    }
    if domain == Domain::IPV4 {
        setsockopt(&socket, sockopt::Ipv4RecvErr, &true)?;
    } else {
        setsockopt(&socket, sockopt::Ipv6RecvErr, &true)?;
    }
    poll.registry().register(&mut SourceFd(&socket.as_raw_fd()), Token(token), Interest::READABLE)?;
    Ok(socket)
}

/// Scans the group's UDP ports.
///
/// # Errors
/// When epoll or the sockets cannot be set up.
pub(super) fn scan(
    group: &Group,
    plan: &Plan,
    throttles: Vec<Arc<SharedThrottle>>,
    mut out: Reporter<'_>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let sockets = Sockets::for_group(group, &poll)?;
    let hosts: HashMap<IpAddr, u32> = group.ips.iter().enumerate().map(|(i, ip)| (*ip, i as u32)).collect();
    let ports = share(&plan.udp_ports, 0, 1);
    let mut scheduler = Scheduler::sharing(plan.udp_schedule, throttles, ports, true, Instant::now());
    let mut reactor = Reactor { group, sockets: &sockets, hosts: &hosts, out: &mut out };
    // Stopped: the results so far still go out, marked incomplete.
    let _ = reactor.drive(&mut poll, &mut scheduler);
    out.finish(&scheduler, PortState::OpenFiltered);
    Ok(())
}

struct Reactor<'a, 'r> {
    group: &'a Group,
    sockets: &'a Sockets,
    hosts: &'a HashMap<IpAddr, u32>,
    out: &'a mut Reporter<'r>,
}

impl Reactor<'_, '_> {
    fn drive(&mut self, poll: &mut Poll, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let mut events = Events::with_capacity(16);
        loop {
            let mut now = Instant::now();
            let mut batch = 0;
            while let Some((slot, probe)) = scheduler.poll_send(now) {
                let ip = self.group.ip(probe.host);
                let Some(socket) = self.sockets.for_ip(ip) else {
                    // Sockets exist for every family in the group; this is for completeness.
                    scheduler.settle(slot, now, PortState::Filtered, Reason::Unreachable);
                    continue;
                };
                match send(socket, self.group.addr(probe.host, probe.port)) {
                    Ok(()) => {
                        self.out.sending(probe);
                        scheduler.sent(slot, now);
                    }
                    // The socket's buffer is full: every host waits a moment.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        scheduler.defer(slot, now);
                        break;
                    }
                    // This host cannot be sent to now (an address that does not
                    // answer ARP fills its neighbour queue): only it waits.
                    Err(e) => {
                        tracing::debug!("sending to {ip} failed: {e}");
                        scheduler.defer_host(slot, now);
                    }
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
            let sockets = self.sockets;
            for socket in [&sockets.v4, &sockets.v6].into_iter().flatten() {
                self.read_answers(socket, scheduler)?;
                self.read_errors(socket, scheduler)?;
            }
            let now = Instant::now();
            while scheduler.handle_timeout(now).is_some() {}
        }
    }

    /// Datagrams back: open ports (or our own probe, come back to us).
    fn read_answers(&mut self, socket: &Socket, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let own_port = socket.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.port());
        let mut buf = [0u8; 1500];
        loop {
            match recvfrom::<SockaddrStorage>(socket.as_raw_fd(), &mut buf) {
                Ok((_, Some(from))) => {
                    let Some(from) = socket_addr(&from) else { continue };
                    let own = Some(from.port()) == own_port && is_local_address(from);
                    let (state, reason) = if own {
                        (PortState::Closed, Reason::SelfConnect)
                    } else {
                        (PortState::Open, Reason::UdpResponse)
                    };
                    self.settle(scheduler, from, state, reason)?;
                }
                Ok((_, None)) => {}
                // A pending ICMP error is also reported here once; the error queue has the details.
                Err(Errno::EAGAIN) => return Ok(()),
                Err(_) => {}
            }
        }
    }

    /// ICMP errors from the error queue: closed or filtered ports.
    fn read_errors(&mut self, socket: &Socket, scheduler: &mut Scheduler) -> Result<(), Stopped> {
        let mut data = [0u8; 64];
        let mut control = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        loop {
            let mut iov = [IoSliceMut::new(&mut data)];
            let (dest, error) = match recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => {
                    let error = msg.cmsgs().ok().into_iter().flatten().find_map(|c| match c {
                        ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                            Some(e)
                        }
                        _ => None,
                    });
                    (msg.address.as_ref().and_then(socket_addr), error)
                }
                // EAGAIN: the queue is empty.
                Err(_) => return Ok(()),
            };
            let (Some(dest), Some(error)) = (dest, error) else { continue };
            let icmp = (error.ee_type, error.ee_code);
            let verdict = match (error.ee_origin, icmp) {
                (ORIGIN_ICMP, ICMP_PORT_UNREACHABLE) | (ORIGIN_ICMP6, ICMP6_PORT_UNREACHABLE) => {
                    (PortState::Closed, Reason::PortUnreachable)
                }
                (ORIGIN_ICMP, ICMP_ADMIN_PROHIBITED) | (ORIGIN_ICMP6, ICMP6_ADMIN_PROHIBITED) => {
                    (PortState::Filtered, Reason::AdminProhibited)
                }
                (ORIGIN_ICMP, ICMP_HOST_PROHIBITED) => (PortState::Filtered, Reason::HostProhibited),
                (ORIGIN_ICMP, ICMP_NET_PROHIBITED) => (PortState::Filtered, Reason::NetProhibited),
                (ORIGIN_ICMP | ORIGIN_ICMP6, _) => (PortState::Filtered, Reason::Unreachable),
                _ => continue,
            };
            self.settle(scheduler, dest, verdict.0, verdict.1)?;
        }
    }

    fn settle(
        &mut self,
        scheduler: &mut Scheduler,
        addr: SocketAddr,
        state: PortState,
        reason: Reason,
    ) -> Result<(), Stopped> {
        let Some(&host) = self.hosts.get(&addr.ip()) else { return Ok(()) };
        // In flight, or late for a silent port within the timeout: both count.
        match scheduler.answer(host, addr.port(), Instant::now(), state, reason) {
            Some(settled) if settled.recorded && state == PortState::Open => {
                self.out.open(settled.probe, reason, None)
            }
            _ => Ok(()),
        }
    }
}

/// Sends the port's probe payload; a pending error from an earlier ICMP
/// message (which `sendto` reports once, instead of sending) is skipped over.
fn send(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    let payload = payloads::for_port(addr.port());
    let to = SockAddr::from(addr);
    let mut result = socket.send_to(payload, &to);
    for _ in 0..2 {
        match &result {
            Err(e) if is_icmp_error(e) => result = socket.send_to(payload, &to),
            _ => break,
        }
    }
    result.map(drop)
}

fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ECONNREFUSED | Errno::EHOSTUNREACH | Errno::ENETUNREACH | Errno::EACCES | Errno::EPROTO)
    )
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = addr.as_sockaddr_in6()?;
    Some(SocketAddr::from((v6.ip(), v6.port())))
}

/// True when `addr`, which has our socket's port, is an address of this
/// machine: binding it then fails because our own socket holds the port,
/// not because the address is foreign. (Binding port 0 instead could fail
/// for want of a free ephemeral port.)
fn is_local_address(addr: SocketAddr) -> bool {
    if addr.ip().is_loopback() {
        return true;
    }
    let Ok(probe) = Socket::new(Domain::for_address(addr), Type::DGRAM, None) else { return false };
    !matches!(probe.bind(&addr.into()), Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable)
}
