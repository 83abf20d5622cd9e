//! One client's task: the only code that touches its socket. It reads lines
//! and hands each to the hub, and writes whatever the client's outbox
//! collects, as many lines per system call as the socket takes.
//!
//! The task never waits on anything but its own socket, its own outbox, its
//! idle timer and the shutdown signal, so a client that stops reading holds
//! up no one: its outbox fills, overflows, and the task ends.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};
use tracing::{debug, warn};

use super::flood::TokenBucket;
use super::hub::ClientId;
use super::outbox::{Outbox, Overflow};
use super::protocol::{self, HELP, Request, sanitize};
use super::server::Shared;
use crate::impair::units::format_size;
use crate::server::IdleTimer;
use crate::shutdown::Shutdown;

/// How much a read asks for at once.
const READ_CHUNK: usize = 16 * 1024;
/// The most lines one `writev` takes.
const MAX_IOVECS: usize = 512;
/// How long a leaving client's last lines may take to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);
/// How long to read and drop a leaving client's input after saying goodbye,
/// so that closing the socket does not reset it and lose the goodbye.
const LINGER: Duration = Duration::from_millis(300);
/// TCP keepalive: how long a silent connection waits before it is probed, how
/// often, and how many unanswered probes mean the peer is gone.
const KEEPALIVE: (Duration, Duration, u32) = (Duration::from_secs(60), Duration::from_secs(10), 3);

/// Why a session ended.
#[derive(Debug)]
enum Ending {
    /// `/quit` or `bye`, with the client's reason.
    Quit(Option<String>),
    /// The client closed its side.
    Closed,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// The client's outbox overflowed.
    TooSlow(Overflow),
    /// The server is shutting down.
    Shutdown,
    /// The socket failed.
    Failed(io::Error),
}

impl Ending {
    /// What the room is told, after "alice left lobby".
    fn reason(&self) -> Option<&str> {
        match self {
            Ending::Quit(reason) => reason.as_deref(),
            Ending::Closed | Ending::Shutdown => None,
            Ending::Idle => Some("idle"),
            Ending::TooSlow(_) => Some("too slow"),
            Ending::Failed(_) => Some("connection lost"),
        }
    }
}

/// Serves one client from its greeting to its goodbye.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> io::Result<()> {
    let (time, interval, retries) = KEEPALIVE;
    let keepalive = TcpKeepalive::new().with_time(time).with_interval(interval).with_retries(retries);
    if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        debug!(%peer, error = %e, "cannot set TCP keepalive");
    }
    let config = &shared.config;
    let outbox = Arc::new(Outbox::new(config.queue));
    let id = shared.next_id();
    let membership = Membership { shared: &shared, id, reason: None, announce: true };
    let nick = shared.hub.lock().connect(id, outbox.clone()).to_owned();
    debug!(%peer, nick, "client joined");
    let mut connection = Connection {
        stream,
        outbox,
        pending: VecDeque::new(),
        input: BytesMut::new(),
        codec: AnyDelimiterCodec::new_with_max_length(vec![b'\n'], Vec::new(), config.max_line),
        flood: config.rate_limit.map(|limit| TokenBucket::new(limit, Instant::now())),
        refused: 0,
        idle: IdleTimer::new(config.idle_timeout),
    };
    let ending = connection.run(&shared, id, &shutdown).await;
    let nick = shared.hub.lock().nick(id).unwrap_or_default().to_owned();
    match &ending {
        Ending::TooSlow(overflow) => {
            warn!(%peer, nick, "disconnecting a client that reads too slowly: {overflow}");
        }
        Ending::Failed(e) => debug!(%peer, nick, error = %e, "client connection failed"),
        ending => debug!(%peer, nick, ?ending, "client left"),
    }
    let mut membership = membership;
    membership.reason = ending.reason().map(str::to_owned);
    membership.announce = !shutdown.is_triggered();
    // Leaving now frees the nickname and stops lines to this client before the goodbye.
    drop(membership);
    connection.finish(ending, shared.config.idle_timeout).await
}

/// A client's place in the hub, given up when dropped, however the task ends.
struct Membership<'a> {
    shared: &'a Shared,
    id: ClientId,
    reason: Option<String>,
    announce: bool,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        self.shared.hub.lock().disconnect(self.id, self.reason.as_deref(), self.announce);
    }
}

struct Connection {
    stream: TcpStream,
    outbox: Arc<Outbox>,
    /// Lines taken from the outbox and not yet written; the first may be
    /// partly written (it is advanced past what was).
    pending: VecDeque<Bytes>,
    /// Bytes read and not yet decoded into lines; empty and unallocated
    /// while the client is quiet.
    input: BytesMut,
    codec: AnyDelimiterCodec,
    flood: Option<TokenBucket>,
    /// Lines refused by flood control since the last one accepted.
    refused: u64,
    idle: IdleTimer,
}

impl Connection {
    /// Reads, routes and writes until the session ends.
    async fn run(&mut self, shared: &Shared, id: ClientId, shutdown: &Shutdown) -> Ending {
        let mut stopping = pin!(shutdown.triggered());
        loop {
            let step = tokio::select! {
                biased;
                () = &mut stopping => return Ending::Shutdown,
                () = self.outbox.ready() => self.send(),
                ready = self.stream.writable(), if !self.pending.is_empty() => match ready {
                    Ok(()) => self.write(),
                    Err(e) => Err(Ending::Failed(e)),
                },
                ready = self.stream.readable() => match ready {
                    Ok(()) => self.receive(shared, id),
                    Err(e) => Err(Ending::Failed(e)),
                },
                () = self.idle.expired() => return Ending::Idle,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Reads what has arrived and handles every whole line in it.
    fn receive(&mut self, shared: &Shared, id: ClientId) -> Result<(), Ending> {
        self.input.reserve(READ_CHUNK);
        let eof = match self.stream.try_read_buf(&mut self.input) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(Ending::Failed(e)),
        };
        self.idle.touch();
        loop {
            let decoded = match eof {
                false => self.codec.decode(&mut self.input),
                true => self.codec.decode_eof(&mut self.input),
            };
            match decoded {
                Ok(Some(line)) => self.line(&line, shared, id)?,
                Ok(None) => break,
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                    let max = shared.config.max_line;
                    self.reply(protocol::error(format_args!(
                        "line too long (the limit is {max} bytes); skipped to its end"
                    )));
                }
                Err(AnyDelimiterCodecError::Io(e)) => return Err(Ending::Failed(e)),
            }
        }
        if eof {
            return Err(Ending::Closed);
        }
        if self.input.is_empty() {
            // A quiet client holds no buffer.
            self.input = BytesMut::new();
        }
        // Answers to what was just read go out now, not after another wake-up.
        self.send()
    }

    /// Handles one line from the client.
    fn line(&mut self, raw: &[u8], shared: &Shared, id: ClientId) -> Result<(), Ending> {
        if let Some(bucket) = &mut self.flood {
            if !bucket.take(Instant::now()) {
                self.refused += 1;
                if self.refused == 1 {
                    let limit = shared.config.rate_limit.map(|l| (l.per_sec, l.burst)).unwrap_or_default();
                    self.reply(protocol::error(format_args!(
                        "slow down: at most {} lines/s (bursts of {}); lines are dropped until you do",
                        limit.0, limit.1
                    )));
                }
                return Ok(());
            }
            self.refused = 0;
        }
        let text = match protocol::decode(raw) {
            Ok(text) => text,
            Err(e) => {
                self.reply(protocol::error(e));
                return Ok(());
            }
        };
        let request = match protocol::parse(text) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.reply(protocol::error(sanitize(&e.to_string())));
                return Ok(());
            }
        };
        let mut hub = shared.hub.lock();
        let refused = match request {
            Request::Say(text) => {
                hub.say(id, &sanitize(text));
                Ok(())
            }
            Request::Act(text) => {
                hub.act(id, &sanitize(text));
                Ok(())
            }
            Request::Nick(name) => hub.rename(id, name),
            Request::Who => {
                hub.who(id);
                Ok(())
            }
            Request::Tell { to, text } => hub.tell(id, to, &sanitize(text)),
            Request::Join(room) => hub.join(id, room),
            Request::Help => {
                drop(hub);
                HELP.iter().for_each(|line| self.reply(protocol::notice(line)));
                return Ok(());
            }
            Request::Quit(reason) => return Err(Ending::Quit(reason.map(|r| sanitize(r).into_owned()))),
        };
        drop(hub);
        if let Err(e) = refused {
            self.reply(protocol::error(sanitize(&e.to_string())));
        }
        Ok(())
    }

    /// Queues a line for this client alone.
    fn reply(&self, line: Bytes) {
        self.outbox.push(&line);
    }

    /// Takes what the outbox holds and writes as much as the socket takes.
    fn send(&mut self) -> Result<(), Ending> {
        self.outbox.take(&mut self.pending).map_err(Ending::TooSlow)?;
        self.write()
    }

    /// Writes pending lines until they are all written or the socket is full.
    fn write(&mut self) -> Result<(), Ending> {
        while !self.pending.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = self.pending.len().min(MAX_IOVECS);
            for (slice, line) in slices.iter_mut().zip(&self.pending) {
                *slice = IoSlice::new(line);
            }
            let written = match self.stream.try_write_vectored(&slices[..count]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Ending::Failed(e)),
            };
            self.advance(written);
        }
        Ok(())
    }

    /// Drops `written` bytes from the front of the pending lines, freeing
    /// each whole line's place in the outbox's bound.
    fn advance(&mut self, mut written: usize) {
        let mut freed = 0;
        while written > 0 {
            let Some(front) = self.pending.front_mut() else { break };
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            if let Some(line) = self.pending.pop_front() {
                // A partly written line was shortened: count what it cost whole.
                freed += Outbox::cost(&line);
            }
        }
        if freed > 0 {
            self.outbox.written(freed);
        }
    }

    /// Says goodbye as the ending asks, writes what is still queued (for a
    /// bounded time), and closes.
    async fn finish(mut self, ending: Ending, idle_timeout: Duration) -> io::Result<()> {
        let goodbye = match &ending {
            Ending::Quit(_) => protocol::notice("bye"),
            Ending::Shutdown => protocol::notice("server shutting down"),
            Ending::Idle => protocol::error(format_args!(
                "nothing received for {}; closing",
                humantime::format_duration(idle_timeout)
            )),
            Ending::Closed => Bytes::new(),
            Ending::TooSlow(overflow) => {
                let limit = format_size(overflow.limit as u64);
                return Err(io::Error::other(format!("outbound queue over {limit}")));
            }
            Ending::Failed(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        if !goodbye.is_empty() {
            self.reply(goodbye);
        }
        let flushed = tokio::time::timeout(FLUSH_LIMIT, async {
            loop {
                if self.send().is_err() || self.pending.is_empty() {
                    return;
                }
                if self.stream.writable().await.is_err() {
                    return;
                }
            }
        });
        flushed.await.ok();
        self.stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let drained = tokio::time::timeout(LINGER, async {
            loop {
                if self.stream.readable().await.is_err() {
                    return;
                }
                match self.stream.try_read(&mut sink) {
                    Ok(0) => return,
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return,
                    _ => {}
                }
            }
        });
        drained.await.ok();
        Ok(())
    }
}
