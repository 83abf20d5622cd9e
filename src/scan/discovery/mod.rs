//! Host discovery: which addresses of a group are there, before any of
//! their ports is probed, so an absent host costs one short wait instead of
//! a timeout per port.
//!
//! Addresses of this machine are up at once. On a directly attached
//! Ethernet link, with CAP_NET_RAW, an address is asked with our own ARP
//! request or NDP solicitation ([`link`]) and nothing else, as nmap does:
//! its answer, or its silence, is exact. Every other address is asked
//! everything at the same time, as nmap does: a TCP connect to ports 80 and
//! 443 (a completed connection or a refusal are both answers), and an ICMP
//! echo request when this process may open a raw socket. An IPv4 address
//! that answered none of them but whose link-layer address the kernel
//! learned while sending them (it answered the kernel's ARP: the host is on
//! this link and there, even if it drops all IP) is up too. What gives no
//! answer within the timeout is down. `-Pn` ([`super::ScanConfig::discover`]
//! false) skips all this and takes every host to be up.

mod link;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{SockaddrStorage, recvfrom};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::report::HostReason;
use link::LinkProbe;

/// The ports a TCP ping connects to: nmap's, for the same reason (web
/// servers are everywhere, and a closed port answers as well as an open one).
const PING_PORTS: [u16; 2] = [80, 443];

/// Identifies our echo requests among the machine's other pings.
const ECHO_ID: u16 = 0x5c4e;

/// How each address answered, in the order given; `None` for no answer.
pub(super) async fn discover(addrs: &[(IpAddr, u32)], timeout: Duration) -> Vec<Option<HostReason>> {
    let mut found: Vec<Option<HostReason>> = addrs
        .iter()
        .map(|&(ip, scope)| is_local(ip, scope).then_some(HostReason::LocalhostResponse))
        .collect();
    let asked: Vec<usize> = (0..addrs.len()).filter(|&i| found[i].is_none()).collect();
    if asked.is_empty() {
        return found;
    }
    let probe = LinkProbe::new(&asked.iter().map(|&i| addrs[i]).collect::<Vec<_>>());
    // (index among those asked, index in `addrs`)
    let (by_link, by_ping): (Vec<_>, Vec<_>) =
        asked.into_iter().enumerate().partition(|&(k, _)| probe.handles(k));
    let link_answers = tokio::task::spawn_blocking(move || probe.run(timeout));
    let asked: Vec<usize> = by_ping.into_iter().map(|(_, i)| i).collect();
    let targets: Vec<(IpAddr, u32)> = asked.iter().map(|&i| addrs[i]).collect();
    let echo = tokio::task::spawn_blocking(move || echo_replies(&targets, timeout));
    let mut pings = JoinSet::new();
    for &i in &asked {
        for port in PING_PORTS {
            let addr = socket_addr(addrs[i], port);
            pings.spawn(async move { (i, tcp_ping(addr, timeout).await) });
        }
    }
    while let Some(done) = pings.join_next().await {
        if let Ok((i, Some(reason))) = done {
            found[i].get_or_insert(reason);
        }
    }
    if let Ok(replied) = echo.await {
        for (k, &i) in asked.iter().enumerate() {
            if replied.get(k).copied().unwrap_or(false) {
                found[i].get_or_insert(HostReason::EchoReply);
            }
        }
    }
    let resolved = neighbours();
    for &i in &asked {
        if found[i].is_none() && resolved.contains(&addrs[i].0) {
            found[i] = Some(HostReason::ArpResponse);
        }
    }
    if let Ok(answered) = link_answers.await {
        for (_, i) in by_link.into_iter().filter(|&(k, _)| answered[k]) {
            found[i] =
                Some(if addrs[i].0.is_ipv4() { HostReason::ArpResponse } else { HostReason::NdResponse });
        }
    }
    found
}

fn socket_addr((ip, scope): (IpAddr, u32), port: u16) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) => SocketAddrV6::new(v6, port, 0, scope).into(),
        v4 => SocketAddr::new(v4, port),
    }
}

/// True when `ip` is an address of this machine: a socket can be bound to it.
fn is_local(ip: IpAddr, scope: u32) -> bool {
    UdpSocket::bind(socket_addr((ip, scope), 0)).is_ok()
}

/// What a connect to `addr` says about its host: a connection or a refusal
/// is an answer; anything else (unreachable, silence) is none.
async fn tcp_ping(addr: SocketAddr, timeout: Duration) -> Option<HostReason> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Some(HostReason::SynAck),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Some(HostReason::ConnRefused),
        _ => None,
    }
}

/// Which of `targets` answered an ICMP echo request within `timeout`; all
/// false when no raw socket can be opened (no CAP_NET_RAW).
fn echo_replies(targets: &[(IpAddr, u32)], timeout: Duration) -> Vec<bool> {
    let mut replied = vec![false; targets.len()];
    let index: HashMap<IpAddr, usize> = targets.iter().enumerate().map(|(i, &(ip, _))| (ip, i)).collect();
    let open = |domain, protocol| Socket::new(domain, Type::RAW, Some(protocol)).ok();
    let v4 =
        targets.iter().any(|(ip, _)| ip.is_ipv4()).then(|| open(Domain::IPV4, Protocol::ICMPV4)).flatten();
    let v6 =
        targets.iter().any(|(ip, _)| ip.is_ipv6()).then(|| open(Domain::IPV6, Protocol::ICMPV6)).flatten();
    for (seq, &(ip, scope)) in targets.iter().enumerate() {
        let socket = if ip.is_ipv4() { &v4 } else { &v6 };
        if let Some(socket) = socket {
            let request = echo_request(ip.is_ipv6(), seq as u16);
            // A send that fails (no route, no neighbour) is a host that does not answer.
            let _ = socket.send_to(&request, &socket_addr((ip, scope), 0).into());
        }
    }
    let deadline = Instant::now() + timeout;
    for socket in [&v4, &v6].into_iter().flatten() {
        let mut buf = [0u8; 2048];
        while let Some(left) = time_left(deadline) {
            if socket.set_read_timeout(Some(left)).is_err() {
                break;
            }
            let Ok((n, Some(from))) = recvfrom::<SockaddrStorage>(socket.as_raw_fd(), &mut buf) else {
                break;
            };
            let from = match (from.as_sockaddr_in(), from.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => continue,
            };
            if is_echo_reply(&buf[..n], from.is_ipv6())
                && let Some(&i) = index.get(&from)
            {
                replied[i] = true;
            }
        }
    }
    replied
}

/// What is left until `deadline`, as a socket's read timeout can hold it:
/// none under a microsecond, which the kernel's timeval would read as 0,
/// "wait forever".
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|left| left.as_micros() > 0)
}

/// An echo request with our id; the kernel fills in ICMPv6's checksum.
fn echo_request(v6: bool, seq: u16) -> Vec<u8> {
    use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type};
    let echo = IcmpEchoHeader { id: ECHO_ID, seq };
    if v6 {
        Icmpv6Header::new(Icmpv6Type::EchoRequest(echo)).to_bytes().to_vec()
    } else {
        Icmpv4Header::with_checksum(Icmpv4Type::EchoRequest(echo), &[]).to_bytes().to_vec()
    }
}

/// True for an echo reply to one of ours: ICMPv4 comes with its IP header, ICMPv6 without.
fn is_echo_reply(bytes: &[u8], v6: bool) -> bool {
    use etherparse::{Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type};
    if v6 {
        Icmpv6Slice::from_slice(bytes)
            .is_ok_and(|icmp| matches!(icmp.icmp_type(), Icmpv6Type::EchoReply(e) if e.id == ECHO_ID))
    } else {
        etherparse::Ipv4Slice::from_slice(bytes)
            .ok()
            .and_then(|ip| Icmpv4Slice::from_slice(ip.payload().payload).ok())
            .is_some_and(|icmp| matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == ECHO_ID))
    }
}

/// IPv4 addresses the kernel has a link-layer address for (`/proc/net/arp`,
/// flag ATF_COM): they answered ARP.
fn neighbours() -> Vec<IpAddr> {
    const COMPLETE: u32 = 0x2;
    let Ok(table) = std::fs::read_to_string("/proc/net/arp") else { return Vec::new() };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(2)?.trim_start_matches("0x"), 16).ok()?;
            (flags & COMPLETE != 0).then(|| fields[0].parse().ok()).flatten()
        })
        .collect()
}
