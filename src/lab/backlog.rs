//! `lab backlog`: what `listen`'s backlog does, and what `accept` does when
//! nobody connects.
//!
//! - Nobody connects: `accept` would block forever; with a timeout (a
//!   `poll` on the listener) it gives up after the timeout; a non-blocking
//!   `accept` fails at once with `EAGAIN` ("would block").
//! - A server listens but never accepts: the kernel completes connections
//!   for it (the three-way handshake needs no `accept`) until its accept
//!   queue holds `backlog` of them (Linux lets one more in), then drops
//!   further SYNs, and those clients wait, resending their SYN after 1 s,
//!   then 2 s, ... Once the server accepts, the queue drains and the waiting
//!   clients get in on their next SYN.

use std::fmt;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

use super::sock::{Readiness, TcpState, tcp_sockets_on, wait_until};
use super::table::Table;
use super::{LabError, Lesson, Took};
use crate::stats::{as_millis, as_opt_millis};

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BacklogConfig {
    /// The listener's backlog.
    pub backlog: u32,
    /// Clients that connect to it.
    pub clients: u32,
    /// How long `accept` waits when nobody connects, and how long a client
    /// waits for its connection before it counts as waiting.
    #[serde(rename = "wait_ms", serialize_with = "as_millis")]
    pub wait: Duration,
}

/// How long the server keeps accepting waiting clients, at most.
const ACCEPT_LIMIT: Duration = Duration::from_secs(8);

/// One client of the server that does not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClientOutcome {
    /// 1, 2, ...
    pub client: u32,
    /// Its connect completed before the server accepted anything.
    pub connected_before_accept: bool,
    /// When it completed, counted from the server's first accept (waiting clients only).
    #[serde(rename = "completed_after_accept_ms", serialize_with = "as_opt_millis")]
    pub completed_after_accept: Option<Duration>,
}

/// What `lab backlog` observed.
#[derive(Clone, Debug, Serialize)]
pub struct BacklogReport {
    /// What was run.
    pub config: BacklogConfig,
    /// How long an accept with a timeout waited when nobody connected.
    #[serde(rename = "accept_timeout_waited_ms", serialize_with = "as_millis")]
    pub accept_timeout_waited: Duration,
    /// Whether it got a connection (it should not).
    pub accept_timeout_got_connection: bool,
    /// What a non-blocking accept said.
    pub nonblocking_accept: String,
    /// How long that call took.
    #[serde(rename = "nonblocking_accept_us")]
    pub nonblocking_accept_micros: u64,
    /// Connections waiting in the accept queue before any accept (the listener's Recv-Q).
    pub accept_queue: Option<u64>,
    /// Every client.
    pub clients: Vec<ClientOutcome>,
    /// Connections the server accepted in the end.
    pub accepted: u32,
}

/// Runs both parts.
///
/// # Errors
/// When loopback sockets cannot be made or used.
pub fn run(config: BacklogConfig) -> Result<BacklogReport, LabError> {
    // Nobody connects.
    let idle = listener(config.backlog)?;
    let started = Instant::now();
    let got = wait_until(idle.as_fd(), Readiness::Readable, config.wait).map_err(LabError::io("polling"))?;
    let accept_timeout_waited = started.elapsed();
    idle.set_nonblocking(true).map_err(LabError::io("making the listener non-blocking"))?;
    let started = Instant::now();
    let result = idle.accept();
    let nonblocking_accept_micros = started.elapsed().as_micros() as u64;
    let nonblocking_accept = match result {
        Ok(_) => "a connection".to_owned(),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            format!("EAGAIN: {}", crate::net::strip_os_error(&e.to_string()))
        }
        Err(e) => crate::net::strip_os_error(&e.to_string()),
    };
    drop(idle);

    // Nobody accepts.
    let server = listener(config.backlog)?;
    let addr = server.local_addr().map_err(LabError::io("reading the listener's address"))?;
    let mut clients = Vec::new();
    let mut sockets = Vec::new();
    for client in 1..=config.clients {
        let socket = connect_nonblocking(addr)?;
        let connected = completed(&socket, config.wait)?;
        clients.push(ClientOutcome {
            client,
            connected_before_accept: connected,
            completed_after_accept: None,
        });
        sockets.push(socket);
    }
    let accept_queue = tcp_sockets_on(addr.port())?
        .iter()
        .find(|e| e.state == TcpState::Listen && e.local == addr)
        .map(|e| e.rx_queue);

    // Now accept, until every client is in or the limit passes.
    server.set_nonblocking(true).map_err(LabError::io("making the listener non-blocking"))?;
    let accepting = Instant::now();
    let mut accepted = 0;
    let mut held = Vec::new();
    while accepted < config.clients && accepting.elapsed() < ACCEPT_LIMIT {
        match server.accept() {
            Ok((stream, _)) => {
                accepted += 1;
                held.push(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let left = ACCEPT_LIMIT.saturating_sub(accepting.elapsed());
                wait_until(server.as_fd(), Readiness::Readable, left.min(Duration::from_millis(50)))
                    .map_err(LabError::io("polling"))?;
            }
            Err(e) => return Err(LabError::Io { context: "accepting".to_owned(), error: e }),
        }
        for (outcome, socket) in clients.iter_mut().zip(&sockets) {
            if !outcome.connected_before_accept
                && outcome.completed_after_accept.is_none()
                && completed(socket, Duration::ZERO)?
            {
                outcome.completed_after_accept = Some(accepting.elapsed());
            }
        }
    }
    Ok(BacklogReport {
        config,
        accept_timeout_waited,
        accept_timeout_got_connection: got,
        nonblocking_accept,
        nonblocking_accept_micros,
        accept_queue,
        clients,
        accepted,
    })
}

fn listener(backlog: u32) -> Result<TcpListener, LabError> {
    let make = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        Ok(socket.into())
    };
    make().map_err(LabError::io("listening on 127.0.0.1"))
}

fn connect_nonblocking(addr: SocketAddr) -> Result<Socket, LabError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(LabError::io("making a socket"))?;
    socket.set_nonblocking(true).map_err(LabError::io("making a socket non-blocking"))?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(LabError::Io { context: format!("connecting to {addr}"), error: e }),
    }
    Ok(socket)
}

/// Whether `socket`'s connect finished (successfully) within `wait`.
fn completed(socket: &Socket, wait: Duration) -> Result<bool, LabError> {
    if !wait_until(socket.as_fd(), Readiness::Writable, wait).map_err(LabError::io("polling"))? {
        return Ok(false);
    }
    match socket.take_error().map_err(LabError::io("reading SO_ERROR"))? {
        None => Ok(true),
        Some(e) => Err(LabError::Io { context: "connecting".to_owned(), error: e }),
    }
}

impl BacklogReport {
    fn connected_early(&self) -> usize {
        self.clients.iter().filter(|c| c.connected_before_accept).count()
    }

    fn waiting(&self) -> impl Iterator<Item = &ClientOutcome> {
        self.clients.iter().filter(|c| !c.connected_before_accept)
    }
}

impl fmt::Display for BacklogReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nobody connects: accept with a {} timeout waited {} and got {}",
            Took(self.config.wait),
            Took(self.accept_timeout_waited),
            if self.accept_timeout_got_connection { "a connection" } else { "nothing" }
        )?;
        writeln!(
            f,
            "                 non-blocking accept returned after {} µs: {}",
            self.nonblocking_accept_micros, self.nonblocking_accept
        )?;
        writeln!(
            f,
            "nobody accepts:  listen(backlog {}), {} clients connect; accept queue (Recv-Q) {}",
            self.config.backlog,
            self.config.clients,
            self.accept_queue.map_or("unknown".to_owned(), |n| n.to_string())
        )?;
        let mut table = Table::new(&["client", "before any accept", "after the server accepts"]);
        for c in &self.clients {
            table.row([
                c.client.to_string(),
                if c.connected_before_accept {
                    "connected".to_owned()
                } else {
                    format!("waiting (no answer in {})", Took(self.config.wait))
                },
                match (c.connected_before_accept, c.completed_after_accept) {
                    (true, _) => "-".to_owned(),
                    (false, Some(t)) => format!("connected after {}", Took(t)),
                    (false, None) => "still waiting".to_owned(),
                },
            ]);
        }
        write!(f, "{table}\nthe server accepted {} of {}", self.accepted, self.config.clients)
    }
}

impl Lesson for BacklogReport {
    fn lesson(&self) -> String {
        let mut text = String::new();
        if !self.accept_timeout_got_connection {
            text.push_str(&format!(
                "With nobody connecting, accept just waits: with a timeout it gave up after {}, without one it \
                 would wait forever, and a non-blocking accept returned at once with \"would block\". ",
                Took(self.accept_timeout_waited)
            ));
        }
        let early = self.connected_early();
        let waiting: Vec<&ClientOutcome> = self.waiting().collect();
        text.push_str(&format!(
            "A server that listens but never accepts still let {early} of {} clients connect: the kernel \
             finishes the handshake and queues the connection (backlog {}{}). ",
            self.config.clients,
            self.config.backlog,
            if early as u32 == self.config.backlog + 1 { ", and Linux lets one more in" } else { "" }
        ));
        if waiting.is_empty() {
            text.push_str("No client had to wait: raise --clients above the backlog to see the queue fill.");
            return text;
        }
        let times: Vec<Duration> = waiting.iter().filter_map(|c| c.completed_after_accept).collect();
        text.push_str(&format!(
            "The other {} waited with no answer and no error, their SYNs dropped while the queue was full{}",
            waiting.len(),
            match times.iter().max() {
                Some(&slowest) if times.len() == waiting.len() => format!(
                    "; once the server accepted they got in within {}, on their next SYN (resent after 1 s, then \
                     2 s, ...). A client stuck like this is not looking at an unreachable host but at a server \
                     that does not accept.",
                    Took(slowest)
                ),
                _ => ", and some were still waiting when the experiment stopped.".to_owned(),
            }
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_fills_then_clients_wait_until_the_server_accepts() {
        let config = BacklogConfig { backlog: 2, clients: 5, wait: Duration::from_millis(100) };
        let report = run(config).unwrap();
        assert!(!report.accept_timeout_got_connection);
        assert!(report.nonblocking_accept.starts_with("EAGAIN"), "{}", report.nonblocking_accept);
        let early = report.connected_early();
        assert!((1..=3).contains(&early), "{report:#?}");
        assert_eq!(report.accepted, 5, "{report:#?}");
        assert!(report.waiting().all(|c| c.completed_after_accept.is_some()), "{report:#?}");
    }
}
