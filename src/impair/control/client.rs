//! The control socket's client side: one command, one reply.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LinesCodec};

use crate::net::{self, ConnectError};

/// A control socket to talk to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Unix socket's path.
    Unix(PathBuf),
    /// TCP addresses (the first that answers), and the token the proxy printed.
    Tcp(Vec<SocketAddr>, Option<String>),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "{}", path.display()),
            Target::Tcp(addrs, _) => match addrs.first() {
                Some(addr) => write!(f, "{addr}"),
                None => f.write_str("no address"),
            },
        }
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

/// Why a command got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The TCP socket could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The Unix socket could not be reached.
    #[error("cannot reach the control socket {target}: {}", net::describe(.error))]
    Unreachable {
        /// The socket.
        target: String,
        /// What the system said.
        error: io::Error,
    },
    /// No reply in time.
    #[error("no reply from {target} within {}", humantime::format_duration(*.after))]
    Timeout {
        /// The socket.
        target: String,
        /// How long was waited.
        after: Duration,
    },
    /// The connection broke or closed before a reply.
    #[error("{target} closed the connection without a reply")]
    Closed {
        /// The socket.
        target: String,
    },
    /// The reply is not what a control socket says.
    #[error("unexpected reply from {target}: {detail}; is it a proxy's --control address?")]
    Unexpected {
        /// The socket.
        target: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// Sends one command to the control socket `target` (authenticating first
/// over TCP) and returns its reply.
///
/// # Errors
/// When the socket cannot be reached, does not answer within `timeout`, or
/// answers with something no control socket says (it is some other server).
pub async fn command(target: &Target, line: &str, timeout: Duration) -> Result<Reply, CommandError> {
    let name = target.to_string();
    match target {
        Target::Unix(path) => {
            let connect = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path));
            let stream = match connect.await {
                Err(_) => return Err(CommandError::Timeout { target: name, after: timeout }),
                Ok(Err(error)) => return Err(CommandError::Unreachable { target: name, error }),
                Ok(Ok(stream)) => stream,
            };
            exchange(stream, None, line, timeout, name).await
        }
        Target::Tcp(addrs, token) => {
            let stream = net::connect_tcp(addrs, timeout).await?;
            exchange(stream, token.as_deref(), line, timeout, name).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    token: Option<&str>,
    line: &str,
    timeout: Duration,
    target: String,
) -> Result<Reply, CommandError> {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(1 << 20));
    let mut ask = async |line: String| -> Result<String, CommandError> {
        let closed = || CommandError::Closed { target: target.clone() };
        lines.send(line).await.map_err(|_| closed())?;
        match tokio::time::timeout(timeout, lines.next()).await {
            Err(_) => Err(CommandError::Timeout { target: target.clone(), after: timeout }),
            Ok(Some(Ok(reply))) => Ok(reply),
            Ok(_) => Err(closed()),
        }
    };
    if let Some(token) = token {
        let reply = ask(format!("auth {token}")).await?;
        if let Some(reason) = reply.strip_prefix("! ") {
            return Ok(Reply::Refused(reason.to_owned()));
        }
    }
    let reply = ask(line.to_owned()).await?;
    if let Some(reason) = reply.strip_prefix("! ") {
        return Ok(Reply::Refused(reason.to_owned()));
    }
    let known = ["ok", "up: ", "{", "commands: "];
    if reply != line && known.iter().any(|start| reply.starts_with(start)) {
        return Ok(Reply::Done(reply));
    }
    let detail = if reply == line { "it echoed the command back".to_owned() } else { format!("'{reply}'") };
    Err(CommandError::Unexpected { target, detail })
}
