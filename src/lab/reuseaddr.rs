//! `lab reuseaddr`: restarting a server while its old connection waits in
//! TIME_WAIT.
//!
//! Each case runs a listener on a port of its own, serves one connection and
//! closes it, stops the listener, and starts a new one on the same port. The
//! side that closes first keeps the connection in TIME_WAIT (60 s on
//! Linux), and TIME_WAIT holds the port: a new listener can bind only if it
//! sets `SO_REUSEADDR`, and on Linux only if the old one had set it too (the
//! connection in TIME_WAIT inherited the old listener's setting). When the
//! client closes first, the TIME_WAIT is on the client's side and the
//! server's port is free at once.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

use super::sock::{TcpSocketEntry, TcpState, tcp_sockets_on};
use super::table::Table;
use super::{LabError, Lesson};

/// How long to wait for a closed connection to show up in TIME_WAIT.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Who closes the connection first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The server (the usual case when a server is stopped or restarted).
    Server,
    /// The client.
    Client,
}

impl fmt::Display for Closer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Closer::Server => "server",
            Closer::Client => "client",
        })
    }
}

/// One case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReuseCase {
    /// The port.
    pub port: u16,
    /// Who closed first.
    pub closed_first: Closer,
    /// Whether the old listener set `SO_REUSEADDR`.
    pub old_reuseaddr: bool,
    /// Whether the new one did.
    pub new_reuseaddr: bool,
    /// The old connection's server side, if it was in TIME_WAIT when the new listener bound.
    pub time_wait: Vec<TcpSocketEntry>,
    /// 1 if the old connection's client side was in TIME_WAIT then, else 0.
    pub client_time_wait: usize,
    /// Whether the new listener could bind.
    pub bound: bool,
    /// The error when it could not.
    pub error: Option<String>,
}

/// What `lab reuseaddr` observed.
#[derive(Clone, Debug, Serialize)]
pub struct ReuseReport {
    /// The cases, in order.
    pub cases: Vec<ReuseCase>,
}

/// Runs the four cases.
///
/// # Errors
/// When loopback sockets cannot be made, or a closed connection never shows
/// up in `/proc/net/tcp`.
pub fn run() -> Result<ReuseReport, LabError> {
    let cases = [
        (Closer::Server, false, false),
        (Closer::Server, false, true),
        (Closer::Server, true, true),
        (Closer::Client, false, false),
    ];
    let cases =
        cases.into_iter().map(|(closer, old, new)| case(closer, old, new)).collect::<Result<_, _>>()?;
    Ok(ReuseReport { cases })
}

fn listener(port: u16, reuse: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    // Set explicitly both ways: Rust's TcpListener::bind would turn it on.
    socket.set_reuse_address(reuse)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(16)?;
    Ok(socket.into())
}

fn case(closed_first: Closer, old_reuseaddr: bool, new_reuseaddr: bool) -> Result<ReuseCase, LabError> {
    let old = listener(0, old_reuseaddr).map_err(LabError::io("starting the first listener"))?;
    let port = old.local_addr().map_err(LabError::io("reading the listener's address"))?.port();
    let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(LabError::io("connecting"))?;
    let (server, _) = old.accept().map_err(LabError::io("accepting"))?;
    // Whoever closes first sends the first FIN and ends up in TIME_WAIT once
    // the other side's FIN arrives. Other programs on this machine have
    // connections too: ours are told apart by both their ends.
    let server_end = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let client_end = client.local_addr().map_err(LabError::io("reading the client's address"))?;
    let (waiting_local, waiting_remote) = match closed_first {
        Closer::Server => {
            drop(server);
            drop(client);
            (server_end, client_end)
        }
        Closer::Client => {
            drop(client);
            drop(server);
            (client_end, server_end)
        }
    };
    wait_for_time_wait(waiting_local, waiting_remote)?;
    drop(old);
    let entries = tcp_sockets_on(port)?;
    let ours = |local, remote| {
        move |e: &&TcpSocketEntry| e.state == TcpState::TimeWait && e.local == local && e.remote == remote
    };
    let time_wait: Vec<TcpSocketEntry> =
        entries.iter().filter(ours(server_end, client_end)).copied().collect();
    let client_time_wait = entries.iter().filter(ours(client_end, server_end)).count();
    let (bound, error) = match listener(port, new_reuseaddr) {
        Ok(_) => (true, None),
        Err(e) => (false, Some(crate::net::strip_os_error(&e.to_string()))),
    };
    Ok(ReuseCase {
        port,
        closed_first,
        old_reuseaddr,
        new_reuseaddr,
        time_wait,
        client_time_wait,
        bound,
        error,
    })
}

/// Waits until the connection from `local` to `remote` is in TIME_WAIT (the
/// last FIN crosses loopback at once, but the state change is not promised
/// to be visible the instant `close` returns).
fn wait_for_time_wait(local: SocketAddr, remote: SocketAddr) -> Result<(), LabError> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let entries = tcp_sockets_on(local.port())?;
        if entries.iter().any(|e| e.local == local && e.remote == remote && e.state == TcpState::TimeWait) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Child {
                what: "the closed connection".to_owned(),
                detail: format!("{local} ↔ {remote} did not reach TIME_WAIT within {SETTLE_LIMIT:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "SO_REUSEADDR" } else { "plain" }
}

impl fmt::Display for ReuseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = Table::new(&[
            "port",
            "closed first",
            "old listener",
            "TIME_WAIT on the port",
            "new listener",
            "new bind",
        ]);
        for c in &self.cases {
            let waiting = match (c.time_wait.first(), c.client_time_wait) {
                (Some(e), _) => format!("{} ↔ {}", e.local, e.remote),
                (None, n) if n > 0 => "none (the client's side has it)".to_owned(),
                (None, _) => "none".to_owned(),
            };
            table.row([
                c.port.to_string(),
                c.closed_first.to_string(),
                on_off(c.old_reuseaddr).to_owned(),
                waiting,
                on_off(c.new_reuseaddr).to_owned(),
                match &c.error {
                    None => "bound".to_owned(),
                    Some(e) => format!("failed: {e}"),
                },
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for ReuseReport {
    fn lesson(&self) -> String {
        let find = |closer, old, new| {
            self.cases
                .iter()
                .find(|c| c.closed_first == closer && c.old_reuseaddr == old && c.new_reuseaddr == new)
        };
        let mut text = String::new();
        if let Some(c) = find(Closer::Server, false, false) {
            if c.bound {
                text.push_str("The plain restart bound even with the old connection in TIME_WAIT: this kernel does not hold the port. ");
            } else {
                text.push_str(&format!(
                    "When the server closed first its side of the connection stayed in TIME_WAIT, and a plain \
                     listener restarted on port {} failed: \"{}\". ",
                    c.port,
                    c.error.as_deref().unwrap_or("")
                ));
            }
        }
        match (find(Closer::Server, false, true), find(Closer::Server, true, true)) {
            (Some(half), Some(both)) if !half.bound && both.bound => text.push_str(
                "Setting SO_REUSEADDR on the new listener alone was not enough here; with it on the old listener \
                 too (its connections inherit it) the restart bound at once. That is why servers set it before \
                 bind, every time they start. ",
            ),
            (Some(half), Some(both)) if half.bound && both.bound => text.push_str(
                "With SO_REUSEADDR on the new listener the restart bound at once, whatever the old one had. ",
            ),
            (Some(_), Some(both)) => text.push_str(&format!(
                "SO_REUSEADDR on both listeners {} ",
                if both.bound { "let the restart bind." } else { "still did not let the restart bind." }
            )),
            _ => {}
        }
        if let Some(c) = find(Closer::Client, false, false) {
            text.push_str(&if c.bound && c.time_wait.is_empty() {
                "When the client closed first, TIME_WAIT stayed on the client's side and a plain listener bound \
                 the server's port at once."
                    .to_owned()
            } else {
                format!("When the client closed first, the plain restart {}.", if c.bound { "bound" } else { "failed" })
            });
        }
        text.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_wait_holds_the_port_unless_both_listeners_reuse_it() {
        let report = run().unwrap();
        let outcome: Vec<(bool, usize)> = report.cases.iter().map(|c| (c.bound, c.time_wait.len())).collect();
        assert_eq!(outcome, [(false, 1), (false, 1), (true, 1), (true, 0)], "{report:#?}");
        assert_eq!(report.cases[3].client_time_wait, 1);
    }
}
