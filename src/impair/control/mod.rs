//! The proxy's control socket: a line protocol on TCP, so that a test or a
//! person (`nc`, or `socketeer impair ctl`) can change settings while it runs,
//! for example to flap a link.
//!
//! Commands, one per line, one reply line each:
//! - `set NAME=VALUE ...` (the names of `--loss`, `--up-delay`, ...): replies
//!   `ok up: ...; down: ...`
//! - `show`: replies `up: ...; down: ...`
//! - `stats`: replies the counters as one JSON object
//! - `help`: replies the list of commands
//!
//! Errors reply `! ` and what went wrong.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::codec::{Framed, LinesCodec};

use super::options::parse_pairs;
use super::proxy::{Control, ControlSender};
use crate::client::ClientError;
use crate::net;
use crate::server::{TcpLimits, accept_loop};
use crate::shutdown::Shutdown;
use crate::stats::Tagged;

/// The longest command line.
const MAX_LINE: usize = 4096;

/// Control connections at once.
const MAX_CONNECTIONS: usize = 16;

/// Serves the control protocol on `listeners` until shutdown, passing
/// requests to the proxy through `proxy`.
pub async fn serve(listeners: Vec<TcpListener>, proxy: ControlSender, shutdown: Shutdown) {
    let limits = TcpLimits { max_connections: MAX_CONNECTIONS, idle_timeout: Duration::from_secs(300) };
    accept_loop("control", listeners, limits, shutdown, move |stream, _, shutdown| {
        session(stream, proxy.clone(), shutdown, limits.idle_timeout)
    })
    .await;
}

async fn session(
    stream: TcpStream,
    proxy: ControlSender,
    shutdown: Shutdown,
    idle: Duration,
) -> io::Result<()> {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let line = tokio::select! {
            () = shutdown.triggered() => return Ok(()),
            line = tokio::time::timeout(idle, lines.next()) => line,
        };
        let reply = match line {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Ok(line))) => answer(&line, &proxy).await,
            Ok(Some(Err(e))) => format!("! {e}"),
        };
        lines.send(reply).await.map_err(io::Error::other)?;
    }
}

/// The reply to one command line.
async fn answer(line: &str, proxy: &ControlSender) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let gone = || "! the proxy is shutting down".to_owned();
    match words.as_slice() {
        ["set", pairs @ ..] if !pairs.is_empty() => {
            let pairs = match parse_pairs(pairs) {
                Ok(pairs) => pairs,
                Err(e) => return format!("! {e}"),
            };
            let (tx, rx) = oneshot::channel();
            if proxy.send(Control::Set(pairs, tx)).is_err() {
                return gone();
            }
            match rx.await {
                Ok(Ok(settings)) => format!("ok {settings}"),
                Ok(Err(e)) => format!("! {e}"),
                Err(_) => gone(),
            }
        }
        ["show"] => {
            let (tx, rx) = oneshot::channel();
            if proxy.send(Control::Show(tx)).is_err() {
                return gone();
            }
            rx.await.map_or_else(|_| gone(), |settings| settings.to_string())
        }
        ["stats"] => {
            let (tx, rx) = oneshot::channel();
            if proxy.send(Control::Stats(tx)).is_err() {
                return gone();
            }
            match rx.await {
                // Typed like every JSON object socketeer prints (`impair --json` says "stats" too).
                Ok(stats) => serde_json::to_string(&Tagged { kind: "stats", value: &stats })
                    .unwrap_or_else(|e| format!("! {e}")),
                Err(_) => gone(),
            }
        }
        ["help"] => "commands: set NAME=VALUE..., show, stats, help".to_owned(),
        _ => format!("! unknown command '{line}'; commands: set NAME=VALUE..., show, stats, help"),
    }
}

/// A control socket's answer to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The command was carried out; the reply line.
    Done(String),
    /// The command was refused (a `! ` line); why.
    Refused(String),
}

/// Sends one command to the control socket at the first of `addrs` that
/// answers, and returns its reply.
///
/// # Errors
/// When the socket cannot be reached, does not answer within `timeout`, or
/// answers with something no control socket says (it is some other server).
pub async fn command(addrs: &[SocketAddr], line: &str, timeout: Duration) -> Result<Reply, ClientError> {
    let stream = net::connect_tcp(addrs, timeout).await?;
    // A connected socket has a peer; the fallback is the first address tried.
    let addr = stream.peer_addr().unwrap_or_else(|_| addrs[0]);
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(1 << 20));
    lines.send(line).await.map_err(|e| ClientError::Io { addr, error: io::Error::other(e) })?;
    let reply = match tokio::time::timeout(timeout, lines.next()).await {
        Err(_) => return Err(ClientError::Timeout { addr, after: timeout }),
        Ok(Some(Ok(reply))) => reply,
        Ok(Some(Err(e))) => return Err(ClientError::Io { addr, error: io::Error::other(e) }),
        Ok(None) => return Err(ClientError::Closed { addr, got: 0, expected: 1 }),
    };
    if let Some(reason) = reply.strip_prefix("! ") {
        return Ok(Reply::Refused(reason.to_owned()));
    }
    let known = ["ok ", "up: ", "{", "commands: "];
    if reply != line && known.iter().any(|start| reply.starts_with(start)) {
        return Ok(Reply::Done(reply));
    }
    let what = if reply == line { "it echoed the command back".to_owned() } else { format!("'{reply}'") };
    Err(ClientError::Unexpected { addr, detail: format!("{what}; is it a proxy's --control address?") })
}
