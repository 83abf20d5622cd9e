//! What the networking experiments share: a connected pair of sockets on
//! loopback, the calling thread's CPU time, and the kernel's table of TCP
//! sockets (`/proc/net/tcp`, what `ss -tan` shows).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use serde::Serialize;

use super::LabError;

/// A listener on 127.0.0.1 (port chosen by the kernel), a client connected
/// to it and the server's end of that connection: `(client, server)`.
///
/// # Errors
/// When loopback sockets cannot be made.
pub(crate) fn loopback_pair() -> Result<(TcpStream, TcpStream), LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(LabError::io("binding a listener on 127.0.0.1"))?;
    let addr = listener.local_addr().map_err(LabError::io("reading the listener's address"))?;
    let client = TcpStream::connect(addr).map_err(LabError::io(format!("connecting to {addr}")))?;
    let (server, _) = listener.accept().map_err(LabError::io(format!("accepting on {addr}")))?;
    Ok((client, server))
}

/// CPU time the calling thread has used so far (zero where the clock is missing).
pub(crate) fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What to wait for on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Bytes to read, a connection to accept, or the end of the stream.
    Readable,
    /// Room to write; for a connecting socket, the connection's outcome.
    Writable,
}

/// Waits with `poll(2)` until `fd` is ready or `timeout` passes; returns
/// whether it became ready.
///
/// # Errors
/// When `poll` fails for another reason than a signal.
pub(crate) fn wait_until(fd: BorrowedFd<'_>, readiness: Readiness, timeout: Duration) -> io::Result<bool> {
    let flags = match readiness {
        Readiness::Readable => PollFlags::POLLIN,
        Readiness::Writable => PollFlags::POLLOUT,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = u16::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A TCP state as the kernel numbers it in `/proc/net/tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    /// 01
    Established,
    /// 02
    SynSent,
    /// 03
    SynRecv,
    /// 04
    FinWait1,
    /// 05
    FinWait2,
    /// 06: the side that closed first waits here, 60 s on Linux.
    TimeWait,
    /// 07
    Close,
    /// 08
    CloseWait,
    /// 09
    LastAck,
    /// 0A
    Listen,
    /// 0B
    Closing,
    /// Anything else.
    Other,
}

impl TcpState {
    fn from_hex(code: &str) -> TcpState {
        const STATES: [TcpState; 11] = [
            TcpState::Established,
            TcpState::SynSent,
            TcpState::SynRecv,
            TcpState::FinWait1,
            TcpState::FinWait2,
            TcpState::TimeWait,
            TcpState::Close,
            TcpState::CloseWait,
            TcpState::LastAck,
            TcpState::Listen,
            TcpState::Closing,
        ];
        u8::from_str_radix(code, 16)
            .ok()
            .and_then(|n| STATES.get(usize::from(n).checked_sub(1)?).copied())
            .unwrap_or(TcpState::Other)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned));
        f.pad(name.as_deref().unwrap_or("OTHER"))
    }
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TcpSocketEntry {
    /// The local address and port.
    pub local: SocketAddr,
    /// The remote one (unspecified for a listener).
    pub remote: SocketAddr,
    /// Its state.
    pub state: TcpState,
    /// Bytes waiting to be read; for a listener, connections waiting to be accepted.
    pub rx_queue: u64,
}

/// Every TCP socket of this network namespace whose local or remote port is `port`.
///
/// # Errors
/// When `/proc/net/tcp` cannot be read (not Linux).
pub(crate) fn tcp_sockets_on(port: u16) -> Result<Vec<TcpSocketEntry>, LabError> {
    let mut entries = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if e.kind() == io::ErrorKind::NotFound && file.ends_with('6') => continue,
            Err(e) => return Err(LabError::Io { context: format!("reading {file}"), error: e }),
        };
        entries.extend(parse_tcp_table(&text).filter(|e| e.local.port() == port || e.remote.port() == port));
    }
    Ok(entries)
}

fn parse_tcp_table(text: &str) -> impl Iterator<Item = TcpSocketEntry> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = parse_hex_addr(fields.next()?)?;
        let remote = parse_hex_addr(fields.next()?)?;
        let state = TcpState::from_hex(fields.next()?);
        let (_tx, rx) = fields.next()?.split_once(':')?;
        Some(TcpSocketEntry { local, remote, state, rx_queue: u64::from_str_radix(rx, 16).ok()? })
    })
}

/// `0100007F:1F4F` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit
/// word of the address is in the kernel's byte order, little-endian here.
fn parse_hex_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::swap_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?.to_be_bytes())),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                     0: 0100007F:1F4F 0100007F:BCAA 06 00000000:00000003 03:00001766 00000000     0        0 0 3 0\n";
        let entries: Vec<_> = parse_tcp_table(table).collect();
        assert_eq!(
            entries,
            [TcpSocketEntry {
                local: "127.0.0.1:8015".parse().unwrap(),
                remote: "127.0.0.1:48298".parse().unwrap(),
                state: TcpState::TimeWait,
                rx_queue: 3,
            }]
        );
        assert_eq!(
            parse_hex_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(TcpState::from_hex("0A").to_string(), "LISTEN");
        assert_eq!(TcpState::from_hex("FF"), TcpState::Other);
    }

    #[test]
    fn finds_its_own_listener_and_connection() {
        let (client, _server) = loopback_pair().unwrap();
        let port = client.peer_addr().unwrap().port();
        let states: Vec<TcpState> = tcp_sockets_on(port).unwrap().iter().map(|e| e.state).collect();
        assert!(states.contains(&TcpState::Established), "{states:?}");
    }
}
