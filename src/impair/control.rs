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
            let (tx, rx) = oneshot::channel();
            if proxy.send(Control::Set(parse_pairs(pairs), tx)).is_err() {
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
                Ok(stats) => serde_json::to_string(&stats).unwrap_or_else(|e| format!("! {e}")),
                Err(_) => gone(),
            }
        }
        ["help"] => "commands: set NAME=VALUE..., show, stats, help".to_owned(),
        _ => format!("! unknown command '{line}'; commands: set NAME=VALUE..., show, stats, help"),
    }
}

/// Sends one command to the control socket at `addr` and returns the reply line.
///
/// # Errors
/// When the socket cannot be reached or does not answer within `timeout`.
pub async fn command(addr: SocketAddr, line: &str, timeout: Duration) -> Result<String, ClientError> {
    let stream = net::connect_tcp(&[addr], timeout).await?;
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(1 << 20));
    lines.send(line).await.map_err(|e| ClientError::Io { addr, error: io::Error::other(e) })?;
    match tokio::time::timeout(timeout, lines.next()).await {
        Err(_) => Err(ClientError::Timeout { addr, after: timeout }),
        Ok(Some(Ok(reply))) => Ok(reply),
        Ok(Some(Err(e))) => Err(ClientError::Io { addr, error: io::Error::other(e) }),
        Ok(None) => Err(ClientError::Closed { addr, got: 0, expected: 1 }),
    }
}
