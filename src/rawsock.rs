//! Raw IP sockets, through socket2's and nix's safe interfaces: the crate
//! needs no `unsafe` for them. Opening one needs CAP_NET_RAW. (Packet
//! capture's `AF_PACKET` socket and its ring are in `sniff::capture`.)

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::bpf::op;

/// Receive buffer of a raw socket: answers queue here between polls.
const RECV_BUFFER: usize = 8 << 20;

/// What to tell a user who lacks the capability.
pub(crate) const NEEDS_CAP_NET_RAW: &str =
    "raw sockets need CAP_NET_RAW: run as root or grant it with setcap cap_net_raw+ep";

/// Whether this process may open raw sockets; the reason when not.
///
/// # Errors
/// A one-line reason, naming the missing capability.
pub(crate) fn check_raw_access() -> Result<(), String> {
    match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(NEEDS_CAP_NET_RAW.to_owned()),
        Err(e) => Err(format!("cannot open a raw socket: {e}")),
    }
}

/// A non-blocking raw TCP socket of `domain` that only passes segments sent
/// to `port` (a socket filter in the kernel, so the rest of the machine's
/// TCP traffic never reaches us).
///
/// # Errors
/// When the socket cannot be opened (no CAP_NET_RAW, say) or set up.
pub(crate) fn raw_tcp(domain: Domain, port: u16) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::RAW.nonblocking(), Some(Protocol::TCP))?;
    if setsockopt(&socket, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
        socket.set_recv_buffer_size(RECV_BUFFER)?;
    }
    socket.attach_filter(&dst_port_filter(domain, port))?;
    Ok(socket)
}

/// A classic BPF program accepting TCP segments whose destination port is
/// `port`. IPv4 raw sockets see the IP header first (its length is in the
/// low nibble of byte 0); IPv6 raw sockets see the TCP header first.
fn dst_port_filter(domain: Domain, port: u16) -> Vec<SockFilter> {
    use op::{JEQ_K, LD_H_ABS, LD_H_IND, LDX_B_MSH, RET_K};
    let mut program = Vec::new();
    if domain == Domain::IPV4 {
        program.push(SockFilter::new(LDX_B_MSH, 0, 0, 0));
        program.push(SockFilter::new(LD_H_IND, 0, 0, 2));
    } else {
        program.push(SockFilter::new(LD_H_ABS, 0, 0, 2));
    }
    program.push(SockFilter::new(JEQ_K, 0, 1, u32::from(port)));
    program.push(SockFilter::new(RET_K, 0, 0, u32::from(u16::MAX)));
    program.push(SockFilter::new(RET_K, 0, 0, 0));
    program
}

/// The source address the kernel uses to reach `dst` (a routing lookup:
/// connecting a UDP socket sends nothing).
///
/// # Errors
/// When there is no route to `dst`.
pub(crate) fn source_for(dst: IpAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = match dst {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect((dst, 9))?;
    Ok(socket.local_addr()?.ip())
}
