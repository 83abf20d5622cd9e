//! Shared socket setup: binding listeners on a list of addresses, parsing
//! `HOST[:PORT]` targets, and connecting with a timeout.
//!
//! Every server in the crate binds through [`bind`], so they all agree on the
//! rules: `SO_REUSEADDR` on TCP listeners (a restarted server does not trip
//! over its own `TIME_WAIT` sockets), TCP and UDP on the same port number, and
//! `IPV6_V6ONLY` set exactly when the address list also holds an IPv4 address
//! (so `--bind ::` alone is dual-stack, and `--bind 0.0.0.0,::` does not clash).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The largest UDP payload that fits in one IPv4 datagram.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// A receive buffer large enough that no datagram is ever truncated.
pub const UDP_RECV_BUFFER: usize = 65_536;

/// The listen backlog of every TCP listener.
const BACKLOG: i32 = 1024;

/// How many times binding to port 0 is retried when the port the kernel picked
/// for TCP is already taken for UDP.
const EPHEMERAL_RETRIES: usize = 16;

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP: a byte stream.
    Tcp,
    /// UDP: datagrams.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// Which transports a server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// Listen on TCP.
    pub tcp: bool,
    /// Listen on UDP.
    pub udp: bool,
}

impl Transports {
    /// Both TCP and UDP.
    pub const BOTH: Transports = Transports { tcp: true, udp: true };
    /// TCP only.
    pub const TCP: Transports = Transports { tcp: true, udp: false };
    /// UDP only.
    pub const UDP: Transports = Transports { tcp: false, udp: true };
}

/// One socket a server listens on, as reported in its status line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The service's name, such as `echo`.
    pub service: &'static str,
    /// TCP or UDP.
    pub transport: Transport,
    /// The bound address, with the real port when port 0 was asked for.
    pub addr: SocketAddr,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.service, self.transport, self.addr)
    }
}

/// Binding a socket failed.
#[derive(Debug)]
pub struct BindError {
    /// The transport of the socket that could not be bound.
    pub transport: Transport,
    /// The address it was bound to.
    pub addr: SocketAddr,
    /// What the operating system said (its message is part of this one's).
    pub source: io::Error,
}

impl std::error::Error for BindError {}

impl BindError {
    /// True when another socket already holds the port.
    pub fn is_addr_in_use(&self) -> bool {
        self.source.kind() == io::ErrorKind::AddrInUse
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ip, port, t) = (self.addr.ip(), self.addr.port(), self.transport);
        match self.source.kind() {
            io::ErrorKind::AddrInUse => write!(f, "{t} port {port} on {ip} is already in use"),
            io::ErrorKind::PermissionDenied => write!(
                f,
                "{t} port {port} on {ip} needs privileges (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            ),
            io::ErrorKind::AddrNotAvailable => {
                write!(f, "{ip} is not an address of this machine")
            }
            _ => write!(f, "cannot bind {t} {}: {}", self.addr, describe(&self.source)),
        }
    }
}

/// The sockets a server bound with [`bind`].
#[derive(Debug, Default)]
pub struct Bound {
    /// One TCP listener per address, when TCP was asked for.
    pub tcp: Vec<TcpListener>,
    /// One UDP socket per address, when UDP was asked for.
    pub udp: Vec<UdpSocket>,
}

impl Bound {
    /// The bound addresses, labelled with `service`.
    pub fn endpoints(&self, service: &'static str) -> Vec<Endpoint> {
        let tcp = self.tcp.iter().filter_map(|l| l.local_addr().ok()).map(|addr| Endpoint {
            service,
            transport: Transport::Tcp,
            addr,
        });
        let udp = self.udp.iter().filter_map(|s| s.local_addr().ok()).map(|addr| Endpoint {
            service,
            transport: Transport::Udp,
            addr,
        });
        tcp.chain(udp).collect()
    }
}

/// Binds `transports` on every address in `ips`, all on the same `port`.
///
/// With port 0 the kernel picks a free port for the first socket and every
/// other socket reuses that number, so a server's TCP and UDP sides share one
/// port even then. Must be called from within a tokio runtime.
///
/// # Errors
/// The first socket that cannot be bound; sockets bound before it are closed.
pub fn bind(ips: &[IpAddr], port: u16, transports: Transports) -> Result<Bound, BindError> {
    let v6only = ips.iter().any(IpAddr::is_ipv4);
    let mut attempt = 0;
    loop {
        match bind_once(ips, port, transports, v6only) {
            Err(e) if port == 0 && e.is_addr_in_use() && attempt < EPHEMERAL_RETRIES => {
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn bind_once(
    ips: &[IpAddr],
    mut port: u16,
    transports: Transports,
    v6only: bool,
) -> Result<Bound, BindError> {
    let mut bound = Bound::default();
    for &ip in ips {
        if transports.tcp {
            let addr = SocketAddr::new(ip, port);
            let listener = tcp_listener(addr, v6only).map_err(|source| BindError {
                transport: Transport::Tcp,
                addr,
                source,
            })?;
            port = listener.local_addr().map_or(port, |a| a.port());
            bound.tcp.push(listener);
        }
        if transports.udp {
            let addr = SocketAddr::new(ip, port);
            let socket = udp_socket(addr, v6only).map_err(|source| BindError {
                transport: Transport::Udp,
                addr,
                source,
            })?;
            port = socket.local_addr().map_or(port, |a| a.port());
            bound.udp.push(socket);
        }
    }
    Ok(bound)
}

fn new_socket(addr: SocketAddr, ty: Type, protocol: Protocol, v6only: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6only)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A TCP listener on `addr` with `SO_REUSEADDR`. Needs a tokio runtime.
///
/// # Errors
/// Whatever `socket`, `bind` or `listen` report.
pub fn tcp_listener(addr: SocketAddr, v6only: bool) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP, v6only)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A UDP socket bound to `addr`. Needs a tokio runtime.
///
/// # Errors
/// Whatever `socket` or `bind` report.
pub fn udp_socket(addr: SocketAddr, v6only: bool) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP, v6only)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A `HOST[:PORT]` given on the command line; the port may be left for the
/// command to fill in with its default.
///
/// Accepted forms: `host`, `host:port`, `1.2.3.4`, `1.2.3.4:port`, `::1`,
/// `[::1]`, `[::1]:port`.
///
/// ```
/// use socketeer::net::Target;
///
/// let t: Target = "[::1]:7007".parse().unwrap();
/// assert_eq!((t.host.as_str(), t.port), ("::1", Some(7007)));
/// let t: Target = "localhost".parse().unwrap();
/// assert_eq!(t.port, None);
/// assert!("localhost:0".parse::<Target>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address literal (without brackets).
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

/// A target that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing was given.
    #[error("empty address; expected HOST or HOST:PORT")]
    Empty,
    /// The part after the last colon is not a port number.
    #[error("invalid port '{port}' in '{target}'; expected a number from 1 to 65535")]
    InvalidPort {
        /// The whole target as given.
        target: String,
        /// The offending port text.
        port: String,
    },
    /// A `[` without its `]`, or text after `]` that is not `:PORT`.
    #[error("invalid address '{target}'; write IPv6 addresses as [ADDR]:PORT")]
    Malformed {
        /// The whole target as given.
        target: String,
    },
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        let malformed = || TargetError::Malformed { target: s.to_owned() };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(malformed)?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(malformed());
            }
            let port = match after {
                "" => None,
                _ => Some(parse_port(s, after.strip_prefix(':').ok_or_else(malformed)?)?),
            };
            return Ok(Target { host: host.to_owned(), port });
        }
        if s.parse::<Ipv6Addr>().is_ok() {
            return Ok(Target { host: s.to_owned(), port: None });
        }
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => Err(malformed()),
            Some(("", _)) => Err(TargetError::Empty),
            Some((host, port)) => Ok(Target { host: host.to_owned(), port: Some(parse_port(s, port)?) }),
            None => Ok(Target { host: s.to_owned(), port: None }),
        }
    }
}

fn parse_port(target: &str, port: &str) -> Result<u16, TargetError> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(TargetError::InvalidPort { target: target.to_owned(), port: port.to_owned() }),
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = self.host.contains(':');
        match (bracket, self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

impl Target {
    /// Resolves the target to socket addresses, using `default_port` when the
    /// target names none.
    ///
    /// # Errors
    /// [`ConnectError::Resolve`] when the name does not resolve.
    pub async fn resolve(&self, default_port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
        let port = self.port.unwrap_or(default_port);
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let resolve_error = |detail: String| ConnectError::Resolve { host: self.host.clone(), detail };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error("no addresses".to_owned()));
        }
        Ok(addrs)
    }
}

/// An I/O error as one plain phrase: the common network cases in words, and
/// never the "(os error N)" number people cannot act on.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "the other side reset the connection".to_owned(),
        io::ErrorKind::ConnectionAborted => "the connection was aborted".to_owned(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => {
            "the other side closed the connection".to_owned()
        }
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => strip_os_error(&e.to_string()),
    }
}

/// `text` without the " (os error N)" that the standard library appends.
pub fn strip_os_error(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find(" (os error ") {
        let Some(end) = out[start..].find(')') else { break };
        out.replace_range(start..start + end + 1, "");
    }
    out
}

/// Reaching a server failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("cannot resolve '{host}': {detail}")]
    Resolve {
        /// The name as given.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// Nothing listens on the port (TCP RST, or ICMP port unreachable for UDP).
    #[error("connection refused by {addr}; is the server running on that port?")]
    Refused {
        /// The address that refused.
        addr: SocketAddr,
    },
    /// The connection attempt got no answer in time.
    #[error("no answer from {addr} within {}; {}", humantime::format_duration(*.after), no_answer_hint(addr))]
    TimedOut {
        /// The address tried.
        addr: SocketAddr,
        /// How long was waited.
        after: Duration,
    },
    /// Any other socket error.
    #[error("cannot reach {addr}: {}", describe(.error))]
    Io {
        /// The address tried.
        addr: SocketAddr,
        /// What the operating system said.
        error: io::Error,
    },
}

/// Why a connection attempt to `addr` may go unanswered. Off this machine
/// the host may be down or unreachable; on loopback it is there, and a
/// listener whose queue of finished handshakes (the `listen` backlog) is full
/// because it never calls `accept` silently drops new attempts.
fn no_answer_hint(addr: &SocketAddr) -> &'static str {
    if addr.ip().is_loopback() {
        "a server listens there but is not accepting connections (its backlog is full), \
         or a firewall drops them"
    } else {
        "is the host reachable?"
    }
}

impl ConnectError {
    /// Classifies an I/O error on a socket to `addr`: a refusal (TCP RST, or
    /// ICMP port unreachable on a connected UDP socket) becomes [`ConnectError::Refused`].
    pub fn from_io(addr: SocketAddr, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused { addr },
            _ => ConnectError::Io { addr, error: source },
        }
    }
}

/// Connects over TCP to the first of `addrs` that answers within `timeout`
/// each, with `TCP_NODELAY` set (request/response tools want each write sent now).
///
/// # Errors
/// The error of the last address tried.
pub async fn connect_tcp(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(|e| ConnectError::from_io(addr, e))?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(ConnectError::from_io(addr, e)),
            Err(_) => last = Some(ConnectError::TimedOut { addr, after: timeout }),
        }
    }
    Err(last.unwrap_or(ConnectError::Resolve { host: String::new(), detail: "no addresses".to_owned() }))
}

/// A UDP socket connected to the first of `addrs`, bound to an ephemeral port
/// of the same address family. Connecting makes the kernel drop datagrams from
/// anyone else and report ICMP port-unreachable as [`ConnectError::Refused`].
///
/// # Errors
/// When no socket can be bound or connected.
pub async fn connect_udp(addrs: &[SocketAddr]) -> Result<UdpSocket, ConnectError> {
    let addr = *addrs
        .first()
        .ok_or_else(|| ConnectError::Resolve { host: String::new(), detail: "no addresses".to_owned() })?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| ConnectError::from_io(addr, e))?;
    socket.connect(addr).await.map_err(|e| ConnectError::from_io(addr, e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> Result<Target, TargetError> {
        s.parse()
    }

    #[test]
    fn parses_every_target_form() {
        let t = |host: &str, port| Target { host: host.to_owned(), port };
        assert_eq!(target("localhost"), Ok(t("localhost", None)));
        assert_eq!(target("localhost:7007"), Ok(t("localhost", Some(7007))));
        assert_eq!(target("127.0.0.1:1"), Ok(t("127.0.0.1", Some(1))));
        assert_eq!(target("::1"), Ok(t("::1", None)));
        assert_eq!(target("[::1]"), Ok(t("::1", None)));
        assert_eq!(target("[::1]:65535"), Ok(t("::1", Some(65535))));
    }

    #[test]
    fn rejects_bad_targets_naming_the_bad_part() {
        assert_eq!(target(""), Err(TargetError::Empty));
        assert_eq!(target(":80"), Err(TargetError::Empty));
        let bad_port = |t: &str, p: &str| Err(TargetError::InvalidPort { target: t.into(), port: p.into() });
        assert_eq!(target("host:0"), bad_port("host:0", "0"));
        assert_eq!(target("host:65536"), bad_port("host:65536", "65536"));
        assert_eq!(target("host:http"), bad_port("host:http", "http"));
        assert_eq!(target("[::1]:x"), bad_port("[::1]:x", "x"));
        assert!(matches!(target("[::1"), Err(TargetError::Malformed { .. })));
        assert!(matches!(target("[::1]x"), Err(TargetError::Malformed { .. })));
        assert!(matches!(target("[nothost]:1"), Err(TargetError::Malformed { .. })));
        assert!(matches!(target("fe80::1::2:80"), Err(TargetError::Malformed { .. })));
    }

    #[test]
    fn io_errors_read_as_plain_phrases() {
        assert_eq!(strip_os_error("No such file or directory (os error 2)"), "No such file or directory");
        assert_eq!(strip_os_error("a (os error 1): b (os error 2)"), "a: b");
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(describe(&reset), "the other side reset the connection");
        assert_eq!(describe(&io::Error::from_raw_os_error(2)), "No such file or directory");
    }

    #[test]
    fn displays_targets_so_they_parse_back() {
        for s in ["localhost:7", "[::1]:7", "::1", "example.org"] {
            let t = target(s).unwrap();
            assert_eq!(target(&t.to_string()), Ok(t));
        }
    }

    #[tokio::test]
    async fn port_zero_gives_tcp_and_udp_the_same_port() {
        let bound = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], 0, Transports::BOTH).unwrap();
        let eps = bound.endpoints("echo");
        assert_eq!(eps.len(), 2);
        assert_ne!(eps[0].addr.port(), 0);
        assert_eq!(eps[0].addr.port(), eps[1].addr.port());
        assert_eq!(eps[0].to_string(), format!("echo tcp 127.0.0.1:{}", eps[0].addr.port()));
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_as_in_use() {
        let first = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], 0, Transports::TCP).unwrap();
        let port = first.tcp[0].local_addr().unwrap().port();
        let err = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], port, Transports::TCP).unwrap_err();
        assert!(err.is_addr_in_use());
        assert_eq!(err.to_string(), format!("tcp port {port} on 127.0.0.1 is already in use"));
    }

    #[tokio::test]
    async fn ipv4_and_ipv6_wildcards_bind_side_by_side() {
        let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
        let bound = bind(&ips, 0, Transports::BOTH).unwrap();
        assert_eq!(bound.endpoints("x").len(), 4);
    }
}
