//! Raw IP sockets and `AF_PACKET` sockets, through socket2's and nix's safe
//! interfaces: the crate needs no `unsafe` for them. Opening one needs
//! CAP_NET_RAW.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, recvmmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::bpf::op;

/// Receive buffer of a raw socket: answers queue here between polls.
const RECV_BUFFER: usize = 8 << 20;

/// What a socket filter returns to keep a frame whole. Returning the snap
/// length instead would have the kernel trim the frame before it is
/// queued, and the frame's real length (which `recv` reports with
/// `MSG_TRUNC` while copying only `snaplen` bytes) would be lost.
pub(crate) const WHOLE_FRAME: u32 = u32::MAX;

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

/// ETH_P_ALL: every protocol, in network byte order as `socket()` wants it.
const ETH_P_ALL: u16 = 0x0003;
/// PACKET_OUTGOING: a frame this host sent.
const PACKET_OUTGOING: u32 = 4;
/// Frames received per system call, at most.
pub(crate) const BATCH: usize = 64;

/// A non-blocking `AF_PACKET` raw socket that sees the frames of one
/// interface, link header included, with kernel timestamps and the kernel's
/// count of frames dropped for want of queue space.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    socket: Socket,
    slots: Vec<Vec<u8>>,
    /// The kernel's count of drops, as of the last frame read.
    dropped: u32,
    /// That count when the capture started.
    dropped_before: u32,
}

impl PacketSocket {
    /// Opens a socket for interface `ifindex` that keeps `snaplen` bytes of
    /// each frame and queues up to `buffer` bytes between reads.
    ///
    /// Instead of `bind()` (whose `sockaddr_ll` nix cannot build safely), a
    /// socket filter in the kernel drops other interfaces' frames and, on
    /// loopback, the outgoing copy of each frame (loopback shows every frame
    /// twice, once leaving and once arriving, as libpcap also knows).
    /// `program`, when given, runs after that and decides what is kept; it
    /// should accept with [`WHOLE_FRAME`]: `snaplen` applies when reading.
    ///
    /// # Errors
    /// When the socket cannot be opened (`PermissionDenied` without
    /// CAP_NET_RAW) or set up.
    pub(crate) fn open(
        ifindex: u32,
        loopback: bool,
        snaplen: usize,
        buffer: usize,
        program: Option<Vec<SockFilter>>,
    ) -> io::Result<Self> {
        let protocol = Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::RAW.nonblocking(), Some(protocol))?;
        if setsockopt(&socket, sockopt::RcvBufForce, &buffer).is_err() {
            socket.set_recv_buffer_size(buffer)?;
        }
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
        setsockopt(&socket, sockopt::RxqOvfl, &1)?;
        let mut filter = interface_guard(ifindex, loopback);
        match program {
            Some(program) => filter.extend(program),
            None => filter.push(SockFilter::new(op::RET_K, 0, 0, WHOLE_FRAME)),
        }
        socket.attach_filter(&filter)?;
        let mut socket = PacketSocket {
            socket,
            slots: (0..BATCH).map(|_| vec![0u8; snaplen]).collect(),
            dropped: 0,
            dropped_before: 0,
        };
        // Frames queued before the filter was attached may be anyone's. A
        // batch that is not full means the queue was emptied; a flood that
        // matches the filter must not keep us here, hence the bound.
        for _ in 0..64 {
            if socket.recv(|_, _, _| {})? < BATCH {
                break;
            }
        }
        socket.dropped_before = socket.dropped;
        Ok(socket)
    }

    /// Reads the frames queued now (one batch at most), handing each to
    /// `each` as its kernel timestamp (since the Unix epoch), its length on
    /// the wire and the bytes captured; returns how many there were (0: none
    /// waiting).
    ///
    /// # Errors
    /// When the socket fails.
    pub(crate) fn recv(&mut self, mut each: impl FnMut(Duration, u32, &[u8])) -> io::Result<usize> {
        let mut meta = [(0usize, Duration::ZERO); BATCH];
        let mut received = 0;
        // Fresh headers each time: the kernel shrinks each header's control
        // length to what it used, and nix does not restore it, so reused
        // headers would truncate the next drop count.
        let cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec, u32);
        let mut headers = MultiHeaders::<()>::preallocate(BATCH, Some(cmsg));
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                self.slots.iter_mut().map(|slot| [IoSliceMut::new(slot)]).collect();
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
            let results = match recvmmsg(self.socket.as_raw_fd(), &mut headers, iovs.iter_mut(), flags, None)
            {
                Ok(results) => results,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            for (slot, message) in meta.iter_mut().zip(results) {
                let mut time = Duration::ZERO;
                for cmsg in message.cmsgs().into_iter().flatten() {
                    match cmsg {
                        ControlMessageOwned::ScmTimestampns(ts) => {
                            time = Duration::new(
                                ts.tv_sec().max(0) as u64,
                                ts.tv_nsec().clamp(0, 999_999_999) as u32,
                            );
                        }
                        ControlMessageOwned::RxqOvfl(dropped) => self.dropped = dropped,
                        _ => {}
                    }
                }
                *slot = (message.bytes, time);
                received += 1;
            }
        }
        for (slot, &(len, time)) in self.slots.iter().zip(&meta[..received]) {
            each(time, len as u32, &slot[..len.min(slot.len())]);
        }
        Ok(received)
    }

    /// Frames the kernel dropped because this socket's queue was full, as of
    /// the last frame read (the kernel reports the count with each frame).
    pub(crate) fn dropped(&self) -> u64 {
        u64::from(self.dropped.wrapping_sub(self.dropped_before))
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The head of every capture program: accept only frames of `ifindex`, and
/// on loopback only the arriving copy. Each failed test jumps to the
/// `ret #0` right after it; a pass jumps over it.
fn interface_guard(ifindex: u32, loopback: bool) -> Vec<SockFilter> {
    let mut program = vec![
        SockFilter::new(op::LD_W_ABS, 0, 0, op::AD_IFINDEX),
        SockFilter::new(op::JEQ_K, 1, 0, ifindex),
        SockFilter::new(op::RET_K, 0, 0, 0),
    ];
    if loopback {
        program.extend([
            SockFilter::new(op::LD_W_ABS, 0, 0, op::AD_PKTTYPE),
            SockFilter::new(op::JEQ_K, 0, 1, PACKET_OUTGOING),
            SockFilter::new(op::RET_K, 0, 0, 0),
        ]);
    }
    program
}
