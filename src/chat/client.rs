//! The chat client behind `chat join`: full duplex, so what others say
//! arrives while the user is still typing.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

use super::flood::{RateLimit, TokenBucket};
use super::protocol::{self, Request, ServerLine, split_replayed};
use crate::client::{ClientError, Timeouts};
use crate::net::{self, Target};
use crate::text::sanitize;

/// The longest line the client takes from the server; longer ones are
/// replaced by a note.
const MAX_SERVER_LINE: usize = 64 * 1024;
/// How much one read asks for.
const READ_CHUNK: usize = 8 * 1024;

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The user left (`bye`, `/quit`, or the end of input) and the server
    /// said goodbye.
    Left,
    /// The server closed the connection after announcing its shutdown.
    ServerShutDown,
    /// The server closed the connection unasked.
    ServerClosed,
}

/// A line from the server, as [`ChatClient::run`] hands it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// When it was first said, for a line of the room's history.
    pub at: Option<&'a str>,
    /// The line (without its time).
    pub line: ServerLine<'a>,
}

/// A connection to a chat server.
#[derive(Debug)]
pub struct ChatClient {
    stream: TcpStream,
    peer: SocketAddr,
    timeouts: Timeouts,
    pace: Option<RateLimit>,
}

impl ChatClient {
    /// Connects to `target` (port [`super::DEFAULT_PORT`] when it names none).
    ///
    /// # Errors
    /// When the name does not resolve or the connection fails.
    pub async fn connect(target: &Target, timeouts: Timeouts) -> Result<ChatClient, ClientError> {
        let addrs = target.resolve(super::DEFAULT_PORT).await?;
        let stream = net::connect_tcp(&addrs, timeouts.connect).await?;
        let peer = stream.peer_addr().map_err(|e| ClientError::io(addrs[0], e))?;
        Ok(ChatClient { stream, peer, timeouts, pace: Some(RateLimit::DEFAULT) })
    }

    /// Sends the input's lines no faster than `pace` (a little under it, as
    /// lines can bunch up on their way), or as they come with `None`. Lines
    /// pasted or piped in then wait their turn instead of being dropped by
    /// the server's flood limit. The default is [`RateLimit::DEFAULT`], the
    /// server's own; a server that says it has a lower limit is obeyed.
    #[must_use]
    pub fn paced(self, pace: Option<RateLimit>) -> ChatClient {
        ChatClient { pace, ..self }
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Runs the session: asks for `nick` (if any), sends each line of
    /// `input` as it comes, answers the server's `PING`s, and hands every
    /// other line from the server (sanitized, so it cannot drive a
    /// terminal) to `on_line` as it arrives. When `input` ends, leaves with
    /// `/quit` (to a server that greeted it as socketeer's does; any other
    /// is only told that no more is coming) and waits up to the reply
    /// timeout for the server to close.
    ///
    /// # Errors
    /// When the connection fails, or `on_line` or `input` do.
    pub async fn run<I, F>(self, nick: Option<&str>, input: I, mut on_line: F) -> Result<Ending, ClientError>
    where
        I: Stream<Item = io::Result<String>> + Unpin,
        F: FnMut(Received<'_>) -> io::Result<()>,
    {
        let ChatClient { stream, peer, timeouts, pace } = self;
        let io_error = |e| ClientError::io(peer, e);
        let (read, mut write) = stream.into_split();
        let mut lines = LineReader::new(read);
        let mut input = input.fuse();
        // Until the server answers /nick, input waits: lines sent meanwhile
        // would go out under the guest name, or under none if it says no.
        let mut naming: Option<(String, tokio::time::Instant)> = None;
        if let Some(nick) = nick {
            write.write_all(format!("/nick {nick}\n").as_bytes()).await.map_err(io_error)?;
            let renamed = format!(" is now known as {nick}");
            naming = Some((renamed, tokio::time::Instant::now() + timeouts.reply));
        }
        let mut leaving: Option<tokio::time::Instant> = None;
        // Input ended before the server said anything: how to leave waits for its first line.
        let mut undecided: Option<tokio::time::Instant> = None;
        let mut heard = false;
        let mut shutting_down = false;
        // Whether the server greeted us as socketeer's chat does: only such a server gets a /quit.
        let mut ours = false;
        let mut pacer = Pacer::new(pace);
        loop {
            let goodbye_timer = async {
                match leaving {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            // A server that never answers /nick (not a chat server) is not
            // waited for longer than a reply.
            let naming_timer = async {
                match &naming {
                    Some((_, deadline)) => tokio::time::sleep_until(*deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                line = lines.next() => match line.map_err(io_error)? {
                    Some(line) => {
                        let line = sanitize(&line);
                        let (at, rest) = split_replayed(&line);
                        let parsed = ServerLine::parse(rest);
                        if let ServerLine::Ping(token) = parsed {
                            write.write_all(format!("/pong {token}\n").as_bytes()).await.map_err(io_error)?;
                            continue;
                        }
                        ours |= matches!(parsed, ServerLine::Notice(text) if text.starts_with("welcome, "));
                        if let ServerLine::Error(text) = parsed {
                            pacer.obey(text);
                        }
                        shutting_down |= parsed == ServerLine::Notice("server shutting down");
                        if let Some((renamed, _)) = &naming {
                            match parsed {
                                ServerLine::Notice(text) if text.ends_with(renamed.as_str()) => naming = None,
                                ServerLine::Error(reason) => {
                                    return Err(ClientError::Refused { addr: peer, reason: reason.to_owned() });
                                }
                                _ => {}
                            }
                        }
                        on_line(Received { at, line: parsed }).map_err(ClientError::Output)?;
                        heard = true;
                        if undecided.take().is_some() {
                            leaving = Some(leave(&mut write, ours, timeouts).await.map_err(io_error)?);
                        }
                    }
                    None if leaving.is_some() => return Ok(Ending::Left),
                    None if shutting_down => return Ok(Ending::ServerShutDown),
                    None => return Ok(Ending::ServerClosed),
                },
                () = naming_timer => naming = None,
                () = wait_until(pacer.next_send) => pacer.next_send = None,
                () = wait_until(undecided) => {
                    undecided = None;
                    leaving = Some(leave(&mut write, ours, timeouts).await.map_err(io_error)?);
                }
                typed = input.next(), if leaving.is_none() && undecided.is_none() && naming.is_none()
                    && pacer.next_send.is_none() => {
                    let (line, quits) = match typed {
                        Some(line) => {
                            let line = line.map_err(io_error)?;
                            let quits = matches!(protocol::parse(&line), Ok(Some(Request::Quit(_))));
                            (line, quits)
                        }
                        None if heard => {
                            leaving = Some(leave(&mut write, ours, timeouts).await.map_err(io_error)?);
                            continue;
                        }
                        None => {
                            undecided = Some(tokio::time::Instant::now() + timeouts.reply);
                            continue;
                        }
                    };
                    let mut wire = line.into_bytes();
                    wire.push(b'\n');
                    write.write_all(&wire).await.map_err(io_error)?;
                    pacer.sent();
                    if quits {
                        leaving = Some(tokio::time::Instant::now() + timeouts.reply);
                    }
                },
                () = goodbye_timer => return Ok(Ending::Left),
            }
        }
    }
}

/// Keeps the lines a client sends within a rate (see [`ChatClient::paced`]).
struct Pacer {
    bucket: Option<TokenBucket>,
    /// When the next line may go; `None` when it may go now.
    next_send: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(pace: Option<RateLimit>) -> Pacer {
        let now = std::time::Instant::now();
        Pacer { bucket: pace.map(|limit| TokenBucket::new(Self::within(limit), now)), next_send: None }
    }

    /// A little under `limit`: lines sent evenly can still arrive together.
    fn within(limit: RateLimit) -> RateLimit {
        RateLimit { per_sec: limit.per_sec * 0.9, burst: (limit.burst / 2).max(1) }
    }

    /// A line went out.
    fn sent(&mut self) {
        let Some(bucket) = &mut self.bucket else { return };
        let now = tokio::time::Instant::now();
        bucket.take(now.into_std());
        let wait = bucket.wait(now.into_std());
        self.next_send = (!wait.is_zero()).then(|| now + wait);
    }

    /// An error from the server: if it says we went over its limit, that
    /// limit is kept from now on, starting with an empty bucket.
    fn obey(&mut self, error: &str) {
        let Some(limit) = RateLimit::from_refusal(error) else { return };
        let now = tokio::time::Instant::now();
        let bucket = TokenBucket::empty(Self::within(limit), now.into_std());
        self.next_send = Some(now + bucket.wait(now.into_std()));
        self.bucket = Some(bucket);
    }
}

/// Completes at `deadline`, or never without one.
async fn wait_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Leaves at the end of input: with `/quit` on a server that greeted us as
/// ours does; any other is only told that no more is coming (a half close),
/// and left to close. Returns until when to wait for it.
async fn leave(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    ours: bool,
    timeouts: Timeouts,
) -> io::Result<tokio::time::Instant> {
    match ours {
        true => write.write_all(b"/quit\n").await?,
        false => write.shutdown().await?,
    }
    Ok(tokio::time::Instant::now() + timeouts.reply)
}

/// Lines from the server, decoded leniently: invalid UTF-8 is replaced, and
/// a line over [`MAX_SERVER_LINE`] is skipped with a note in its place.
struct LineReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    codec: AnyDelimiterCodec,
    eof: bool,
}

impl LineReader {
    fn new(read: OwnedReadHalf) -> LineReader {
        let codec = AnyDelimiterCodec::new_with_max_length(vec![b'\n'], Vec::new(), MAX_SERVER_LINE);
        LineReader { read, buf: BytesMut::new(), codec, eof: false }
    }

    /// The next line, or `None` once the server closed the connection.
    /// Cancel-safe: a line is taken from the buffer only when returned.
    async fn next(&mut self) -> io::Result<Option<String>> {
        loop {
            let decoded = match self.eof {
                false => self.codec.decode(&mut self.buf),
                true => self.codec.decode_eof(&mut self.buf),
            };
            match decoded {
                Ok(Some(line)) => {
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    return Ok(Some(String::from_utf8_lossy(line).into_owned()));
                }
                Ok(None) if self.eof => return Ok(None),
                Ok(None) => {}
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                    return Ok(Some(format!("! (a line over {MAX_SERVER_LINE} bytes was skipped)")));
                }
                Err(AnyDelimiterCodecError::Io(e)) => return Err(e),
            }
            self.buf.reserve(READ_CHUNK);
            self.read.readable().await?;
            match self.read.try_read_buf(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}
