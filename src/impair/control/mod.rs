//! The proxy's control socket: a line protocol, so that a test or a person
//! (`socketeer impair ctl`, or `nc`) can change settings while it runs, for
//! example to flap a link.
//!
//! Only the proxy's owner may: on a Unix socket (the default in the CLI's
//! examples), the socket file is the owner's alone (0600) and a peer of
//! another user is refused even so; over TCP, where anyone on the machine
//! can connect, a connection must first say `auth TOKEN` with the token
//! printed when the proxy started. A connection idle for [`IDLE`] is
//! closed, and when all [`MAX_CONNECTIONS`] are taken a newcomer takes the
//! seat of one not proven the owner's, or of the one idle longest
//! ([`seats`]).
//!
//! Commands, one per line, one reply line each:
//! - `auth TOKEN` (TCP only, first): replies `ok`
//! - `set NAME=VALUE ...` (the names of `--loss`, `--up-delay`, ...): replies
//!   `ok up: ...; down: ...`
//! - `show`: replies `up: ...; down: ...`
//! - `stats`: replies the counters as one JSON object
//! - `help`: replies the list of commands
//!
//! Errors reply `! ` and what went wrong.

mod client;
pub mod seats;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;
use tokio_util::codec::{Framed, LinesCodec};

pub use client::{Reply, Target, command};
use seats::{Held, Seats};

use super::options::parse_pairs;
use super::running::{Control, ControlSender};
use crate::shutdown::Shutdown;
use crate::stats::Tagged;

/// The longest command line.
const MAX_LINE: usize = 4096;

/// Control connections at once.
pub const MAX_CONNECTIONS: usize = 16;

/// A control connection silent this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);

/// How long a TCP connection has to say `auth TOKEN`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the control socket listens, and how its owner is known.
#[derive(Debug)]
pub enum Listener {
    /// A Unix socket: only its owner (by the file's mode and the peer's
    /// credentials) may use it.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// Its path, removed when the proxy stops.
        path: PathBuf,
    },
    /// TCP sockets: a connection must give `token` first.
    Tcp {
        /// The sockets.
        listeners: Vec<TcpListener>,
        /// The secret printed at start.
        token: String,
    },
}

impl Listener {
    /// A Unix socket at `path`, the owner's alone (mode 0600); a stale
    /// socket file there (of a proxy that was killed) is replaced.
    ///
    /// # Errors
    /// When the path is taken by something else than a socket, or cannot be bound.
    pub fn unix(path: PathBuf) -> io::Result<Listener> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, "another proxy listens there"));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        // Peers of another user are refused in any case; the mode keeps them from connecting at all.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Listener::Unix { listener, path })
    }

    /// TCP `listeners`, with a new random token.
    ///
    /// # Errors
    /// When the system has no randomness to give.
    pub fn tcp(listeners: Vec<TcpListener>) -> io::Result<Listener> {
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).map_err(io::Error::other)?;
        let token = secret.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Listener::Tcp { listeners, token })
    }

    /// The token a TCP connection must give, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Listener::Tcp { token, .. } => Some(token),
            Listener::Unix { .. } => None,
        }
    }
}

/// Serves the control protocol until shutdown, passing requests to the
/// driver (the proxy, or the TUN relay) through `proxy`.
pub async fn serve<S: Serialize + Send + 'static>(
    listener: Listener,
    proxy: ControlSender<S>,
    shutdown: Shutdown,
) {
    let seats = Seats::new(MAX_CONNECTIONS);
    match listener {
        Listener::Unix { listener, path } => {
            let me = nix::unistd::geteuid().as_raw();
            loop {
                let accepted = tokio::select! {
                    () = shutdown.triggered() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                // The owner, or root (who could read the proxy's memory anyway).
                let owner = stream.peer_cred().is_ok_and(|cred| cred.uid() == me || cred.uid() == 0);
                if !owner {
                    shutdown.spawn(async move {
                        let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
                        let _ = lines.send("! this proxy is another user's".to_owned()).await;
                    });
                    continue;
                }
                // Seated here, in the order the kernel queued the connections: a
                // session task that happens to run late must not make an older
                // connection look newer than it is.
                let seat = seats.take(true, Instant::now());
                let (proxy, shutdown) = (proxy.clone(), shutdown.clone());
                shutdown.clone().spawn(async move {
                    let _ = session(stream, proxy, shutdown, seat, Auth::Owner).await;
                });
            }
            let _ = std::fs::remove_file(path);
        }
        Listener::Tcp { listeners, token } => {
            let mut accepting =
                futures::stream::select_all(listeners.into_iter().map(|l| {
                    Box::pin(futures::stream::unfold(l, |l| async { Some((l.accept().await, l)) }))
                }));
            loop {
                let accepted = tokio::select! {
                    () = shutdown.triggered() => break,
                    accepted = accepting.next() => accepted,
                };
                let Some(Ok((stream, _))) = accepted else { continue };
                let seat = seats.take(false, Instant::now());
                let (proxy, shutdown, token) = (proxy.clone(), shutdown.clone(), token.clone());
                shutdown.clone().spawn(async move {
                    let _ = session(stream, proxy, shutdown, seat, Auth::Token(token)).await;
                });
            }
        }
    }
}

/// How a connection shows it is the owner's.
enum Auth {
    /// Known from the peer's credentials.
    Owner,
    /// It must say `auth` with this token first.
    Token(String),
}

async fn session<T: AsyncRead + AsyncWrite + Unpin, S: Serialize>(
    stream: T,
    proxy: ControlSender<S>,
    shutdown: Shutdown,
    seat: Held,
    auth: Auth,
) -> io::Result<()> {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    let send = |reply: String| reply;
    let (mut proven, expected) = match auth {
        Auth::Owner => (true, None),
        Auth::Token(token) => (false, Some(token)),
    };
    loop {
        let wait = if proven { IDLE } else { AUTH_TIMEOUT };
        let line = tokio::select! {
            () = shutdown.triggered() => return Ok(()),
            () = seat.evicted.notified() => {
                let _ = lines.send("! closed to make room for another connection".to_owned()).await;
                return Ok(());
            }
            line = tokio::time::timeout(wait, lines.next()) => line,
        };
        seat.active(Instant::now());
        let reply = match line {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => format!("! {e}"),
            Ok(Some(Ok(line))) if !proven => {
                match (line.split_whitespace().collect::<Vec<_>>().as_slice(), &expected) {
                    (["auth", given], Some(token))
                        if constant_time_eq(given.as_bytes(), token.as_bytes()) =>
                    {
                        proven = true;
                        seat.proven();
                        "ok".to_owned()
                    }
                    _ => {
                        let refusal =
                            "! authenticate first: auth TOKEN, with the token impair printed at start";
                        lines.send(refusal.to_owned()).await.map_err(io::Error::other)?;
                        return Ok(());
                    }
                }
            }
            Ok(Some(Ok(line))) => answer(&line, &proxy).await,
        };
        lines.send(send(reply)).await.map_err(io::Error::other)?;
    }
}

/// Compares secrets without telling, by its time, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The reply to one command line.
async fn answer<S: Serialize>(line: &str, proxy: &ControlSender<S>) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    // A dead relay is said at once, and why: not an answer that looks like a shutdown.
    let gone = || format!("! {}", proxy.stopped());
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
        ["auth", ..] => "ok".to_owned(),
        ["help"] => "commands: set NAME=VALUE..., show, stats, help".to_owned(),
        _ => format!("! unknown command '{line}'; commands: set NAME=VALUE..., show, stats, help"),
    }
}
