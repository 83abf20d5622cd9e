//! `lab bind`: which destination addresses reach which listener.
//!
//! - On loopback: listeners on 127.0.0.1, 127.0.0.2 (one address), 0.0.0.0
//!   (every IPv4 address), ::1 and :: (every address, IPv4 too, unless
//!   `IPV6_V6ONLY`), each on its own port; a connect from 127.0.0.1,
//!   127.0.0.2 and ::1 to each. (All of 127.0.0.0/8 is loopback on Linux.)
//! - As root, with `ip`: a second host in a private network namespace,
//!   joined by a veth pair, connecting to a server namespace's real address
//!   (`netns.rs`): a listener on 127.0.0.1 cannot be reached from another host.
//! - Ports below `ip_unprivileged_port_start` need privilege: bound as this
//!   user, and (as root) as `nobody`.
//! - The ephemeral range the kernel picks client ports from.

mod netns;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};

use super::sock::{Readiness, wait_until};
use super::table::Table;
use super::{ChildTask, LabError, Lesson, SelfExec};

/// How long a connect on loopback may take before it counts as failed.
const CONNECT_LIMIT: Duration = Duration::from_secs(2);
/// How long the unprivileged child may run.
const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// What a connect to a listener's port gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reach {
    /// The listener got the connection.
    Connected,
    /// Nothing listens there for that address: RST.
    Refused,
    /// The connect worked, but another program's listener took it.
    SomeoneElse,
    /// The address cannot be used here (no IPv6, say), or another error.
    Failed {
        /// The error.
        error: String,
    },
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reach::Connected => "connects",
            Reach::Refused => "refused",
            Reach::SomeoneElse => "another program",
            Reach::Failed { .. } => "error",
        })
    }
}

/// One listener and who reached it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListenerRow {
    /// What it bound, e.g. `0.0.0.0` or `:: (dual-stack)`.
    pub bound: String,
    /// Its port.
    pub port: u16,
    /// One result per destination, in the order of [`BindReport::destinations`].
    pub reach: Vec<Reach>,
}

/// A listener in the server namespace, reached from the client namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostReach {
    /// What the listener bound.
    pub bound: String,
    /// What a connect to the server's address on its port gave.
    pub reach: Reach,
}

/// Binding one port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindAttempt {
    /// The port.
    pub port: u16,
    /// The user who tried (`uid`).
    pub uid: u32,
    /// Whether it worked.
    pub bound: bool,
    /// The error otherwise.
    pub error: Option<String>,
}

impl fmt::Display for BindAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => write!(f, "uid {} bound 127.0.0.1:{}", self.uid, self.port),
            Some(e) => write!(f, "uid {} could not bind 127.0.0.1:{}: {e}", self.uid, self.port),
        }
    }
}

/// What `lab bind` observed.
#[derive(Clone, Debug, Serialize)]
pub struct BindReport {
    /// Where the connects went to.
    pub destinations: Vec<IpAddr>,
    /// Each listener on loopback.
    pub loopback: Vec<ListenerRow>,
    /// From another host (namespace) to the server namespace's address, per listener.
    pub other_host: Vec<HostReach>,
    /// Why that part did not run.
    pub other_host_skipped: Option<String>,
    /// The namespaces it made (and removed again before the report).
    pub namespaces: Vec<String>,
    /// `net.ipv4.ip_unprivileged_port_start`.
    pub unprivileged_port_start: Option<u16>,
    /// The port just below it, bound by this process.
    pub privileged_bind: Option<BindAttempt>,
    /// The same, by an unprivileged user (as root only).
    pub unprivileged_bind: Option<BindAttempt>,
    /// Why that could not run.
    pub unprivileged_skipped: Option<String>,
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral_range: Option<(u16, u16)>,
    /// The local ports the kernel gave this experiment's connects.
    pub client_ports: Vec<u16>,
}

/// Runs every part.
///
/// # Errors
/// When loopback sockets cannot be made.
pub fn run(exec: &SelfExec) -> Result<BindReport, LabError> {
    let ipv6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    let mut destinations = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
    if ipv6 {
        destinations.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    let mut listeners: Vec<(String, SocketAddr, bool)> = vec![
        ("127.0.0.1".to_owned(), SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), false),
        ("127.0.0.2".to_owned(), SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)), false),
        ("0.0.0.0".to_owned(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), false),
    ];
    if ipv6 {
        listeners.push(("::1".to_owned(), SocketAddr::from((Ipv6Addr::LOCALHOST, 0)), true));
        listeners.push((":: (dual-stack)".to_owned(), SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)), false));
        listeners.push((":: (IPV6_V6ONLY)".to_owned(), SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)), true));
    }
    let mut client_ports = Vec::new();
    let mut loopback = Vec::new();
    for (bound, addr, v6only) in listeners {
        let (port, _held) = reserve_port(ipv6)?;
        let listener = listen(SocketAddr::new(addr.ip(), port), v6only)?;
        let reach = destinations
            .iter()
            .map(|&dest| reach(&listener, SocketAddr::new(dest, port), &mut client_ports))
            .collect::<Result<_, _>>()?;
        loopback.push(ListenerRow { bound, port, reach });
    }
    let mut namespaces = Vec::new();
    let (other_host, other_host_skipped) = if !nix::unistd::geteuid().is_root() {
        (Vec::new(), Some("needs root (it makes two network namespaces); run with sudo to see it".to_owned()))
    } else {
        let reached = netns::Hosts::create().and_then(|hosts| {
            namespaces = hosts.names();
            hosts.reach_from_client()
        });
        match reached {
            Ok(rows) => (rows.into_iter().map(|(bound, reach)| HostReach { bound, reach }).collect(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    };
    let unprivileged_port_start = read_number("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    let low = unprivileged_port_start.and_then(|start| start.checked_sub(1)).filter(|&p| p > 0);
    let privileged_bind = low.map(try_bind);
    let (unprivileged_bind, unprivileged_skipped) = match low {
        Some(port) if nix::unistd::geteuid().is_root() => match as_nobody(exec, port) {
            Ok(attempt) => (Some(attempt), None),
            Err(why) => (None, Some(why)),
        },
        _ => (None, None),
    };
    let ephemeral_range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|t| {
            let mut numbers = t.split_whitespace().filter_map(|n| n.parse().ok());
            Some((numbers.next()?, numbers.next()?))
        });
    Ok(BindReport {
        destinations,
        loopback,
        other_host,
        other_host_skipped,
        namespaces,
        unprivileged_port_start,
        privileged_bind,
        unprivileged_bind,
        unprivileged_skipped,
        ephemeral_range,
        client_ports,
    })
}

fn read_number(path: &str) -> Option<u16> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A port number no other program can take on any address while the
/// sockets returned are held: they are bound to it on 0.0.0.0 (and [::])
/// but never listen, so a connect they alone match is refused (RST), just
/// as if nothing were bound. Without them, another program's server could
/// be given the same number on an address the experiment expects to be
/// free, and a connect meant to be refused would reach it.
fn reserve_port(ipv6: bool) -> Result<(u16, Vec<Socket>), LabError> {
    const ATTEMPTS: usize = 100;
    let bound = |addr: SocketAddr| -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        Ok(socket)
    };
    for _ in 0..ATTEMPTS {
        let v4 =
            bound(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).map_err(LabError::io("reserving a port"))?;
        let port = v4.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.port()).unwrap_or(0);
        if !ipv6 {
            return Ok((port, vec![v4]));
        }
        // Taken on IPv6 by someone else: try another number.
        if let Ok(v6) = bound(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
            return Ok((port, vec![v4, v6]));
        }
    }
    Err(LabError::io("reserving a port")(std::io::Error::other("no port is free on both IPv4 and IPv6")))
}

fn listen(addr: SocketAddr, v6only: bool) -> Result<TcpListener, LabError> {
    let make = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // Shares the port with the idle sockets of `reserve_port`.
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(v6only)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(16)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    make().map_err(LabError::io(format!("listening on {addr}")))
}

/// Connects to `target` and checks that `listener` (not another program's) got it.
fn reach(listener: &TcpListener, target: SocketAddr, ports: &mut Vec<u16>) -> Result<Reach, LabError> {
    let stream = match TcpStream::connect_timeout(&target, CONNECT_LIMIT) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(Reach::Refused),
        Err(e) => return Ok(Reach::Failed { error: crate::net::strip_os_error(&e.to_string()) }),
    };
    let local = stream.local_addr().map_err(LabError::io("reading a client's address"))?;
    ports.push(local.port());
    if !wait_until(listener.as_fd(), Readiness::Readable, CONNECT_LIMIT).map_err(LabError::io("polling"))? {
        return Ok(Reach::SomeoneElse);
    }
    match listener.accept() {
        Ok((_, peer)) if peer.port() == local.port() => Ok(Reach::Connected),
        _ => Ok(Reach::SomeoneElse),
    }
}

/// Tries to bind 127.0.0.1:`port` as the current user.
pub fn try_bind(port: u16) -> BindAttempt {
    let uid = nix::unistd::geteuid().as_raw();
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => BindAttempt { port, uid, bound: true, error: None },
        Err(e) => {
            BindAttempt { port, uid, bound: false, error: Some(crate::net::strip_os_error(&e.to_string())) }
        }
    }
}

/// Runs [`try_bind`] in a child process as `nobody`, without capabilities.
fn as_nobody(exec: &SelfExec, port: u16) -> Result<BindAttempt, String> {
    let wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"]
        .map(str::to_owned);
    let mut child = exec
        .spawn_through("the unprivileged child", &wrapper, &ChildTask::BindPort { port })
        .map_err(|e| e.to_string())?;
    let attempt = child.lines::<BindAttempt>().next();
    child.finish(CHILD_LIMIT).map_err(|e| e.to_string())?;
    match attempt {
        Some(Ok(attempt)) => Ok(attempt),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the unprivileged child printed nothing".to_owned()),
    }
}

impl BindReport {
    fn cell(&self, bound: &str, dest: IpAddr) -> Option<&Reach> {
        let column = self.destinations.iter().position(|&d| d == dest)?;
        self.loopback.iter().find(|r| r.bound == bound)?.reach.get(column)
    }
}

impl fmt::Display for BindReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = ["listener bound to".to_owned()]
            .into_iter()
            .chain(self.destinations.iter().map(|d| format!("to {d}")))
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut table = Table::new(&headers);
        for row in &self.loopback {
            table.row(std::iter::once(row.bound.clone()).chain(row.reach.iter().map(ToString::to_string)));
        }
        writeln!(f, "{table}")?;
        match &self.other_host_skipped {
            None => {
                writeln!(
                    f,
                    "from another host (a private network namespace over a veth pair) to {}:",
                    netns::SERVER_ADDR
                )?;
                for r in &self.other_host {
                    writeln!(f, "  listener bound to {:<10} {}", r.bound, r.reach)?;
                }
            }
            Some(why) => writeln!(f, "from another host: not run: {why}")?,
        }
        if let Some(start) = self.unprivileged_port_start {
            write!(f, "ports below {start} need privilege (net.ipv4.ip_unprivileged_port_start)")?;
        }
        if let Some(attempt) = &self.privileged_bind {
            write!(f, "\n  {attempt}")?;
        }
        if let Some(attempt) = &self.unprivileged_bind {
            write!(f, "\n  {attempt} (as nobody, no capabilities)")?;
        }
        if let Some(why) = &self.unprivileged_skipped {
            write!(f, "\n  as nobody: could not run: {why}")?;
        }
        if let Some((low, high)) = self.ephemeral_range {
            let (min, max) = (self.client_ports.iter().min(), self.client_ports.iter().max());
            write!(f, "\nephemeral ports (net.ipv4.ip_local_port_range): {low}-{high}")?;
            if let (Some(min), Some(max)) = (min, max) {
                write!(f, "; this run's {} connects got ports {min} to {max}", self.client_ports.len())?;
            }
        }
        Ok(())
    }
}

impl Lesson for BindReport {
    fn lesson(&self) -> String {
        let (one, two) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let connects = |bound: &str, dest| self.cell(bound, dest) == Some(&Reach::Connected);
        let mut text = String::new();
        if connects("127.0.0.1", one) && !connects("127.0.0.1", two) && connects("0.0.0.0", two) {
            text.push_str(
                "A listener gets only connections to the address it bound: the one on 127.0.0.1 refused a \
                 connect to 127.0.0.2 (also this machine), while 0.0.0.0 took both. ",
            );
        }
        let six = IpAddr::V6(Ipv6Addr::LOCALHOST);
        if self.destinations.contains(&six) {
            let dual = connects(":: (dual-stack)", one) && connects(":: (dual-stack)", six);
            let only = !connects(":: (IPV6_V6ONLY)", one) && connects(":: (IPV6_V6ONLY)", six);
            if dual && only && !connects("0.0.0.0", six) {
                text.push_str(
                    "0.0.0.0 is every IPv4 address and no IPv6 one; :: took IPv4 connects too (as ::ffff:127.0.0.1) \
                     unless IPV6_V6ONLY was set. ",
                );
            }
        }
        match &self.other_host_skipped {
            None => {
                let result =
                    |bound: &str| self.other_host.iter().find(|r| r.bound == bound).map(|r| r.reach.clone());
                if result("127.0.0.1") == Some(Reach::Refused) && result("0.0.0.0") == Some(Reach::Connected)
                {
                    text.push_str(
                        "From another host the loopback listener cannot be reached at all (refused), while 0.0.0.0 \
                         and the host's own address answer: bind 127.0.0.1 to keep a server private, 0.0.0.0 or :: \
                         to serve the network. ",
                    );
                }
            }
            Some(_) => text.push_str("(Run as root to see what another host reaches.) "),
        }
        if let Some(attempt) = &self.privileged_bind {
            let nobody = match &self.unprivileged_bind {
                Some(a) if !a.bound => {
                    format!(", and nobody could not ({})", a.error.as_deref().unwrap_or(""))
                }
                Some(_) => ", and so could nobody".to_owned(),
                None => String::new(),
            };
            text.push_str(&format!(
                "Port {} is below {}: uid {} {} bind it{nobody}. ",
                attempt.port,
                self.unprivileged_port_start.unwrap_or(1024),
                attempt.uid,
                if attempt.bound { "could" } else { "could not" }
            ));
        }
        if let Some((low, high)) = self.ephemeral_range {
            let inside = self.client_ports.iter().all(|p| (low..=high).contains(p));
            text.push_str(&format!(
                "Clients get their port from {low}-{high}{}.",
                if inside {
                    ", as every connect here did"
                } else {
                    " (some here did not: another range is set?)"
                }
            ));
        }
        text
    }
}
