//! One client's task: the only code that touches its socket. It reads lines
//! and hands each to the hub, and writes what the client's mailbox has for
//! it, copied into one buffer per write.
//!
//! The task never waits on anything but its own socket, its own mailbox, its
//! timers and the shutdown signal, so a client that stops reading holds up
//! no one: it falls behind its room's log, and the task ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};
use tracing::{debug, warn};

use super::delivery::{Mailbox, Mark, Outbox, Overflow};
use super::flood::TokenBucket;
use super::hub::{Backplane, Claim, ClientId, HubError};
use super::protocol::{self, HELP, Request};
use super::server::Shared;
use crate::server::IdleTimer;
use crate::shutdown::Shutdown;
use crate::text::sanitize;

/// How much a read asks for at once.
const READ_CHUNK: usize = 16 * 1024;
/// About how much one write sends: what a mailbox collects at once.
const WRITE_BUDGET: usize = 32 * 1024;
/// Collect-and-write rounds before a busy client lets others run.
const FLUSH_ROUNDS: usize = 4;
/// How often a client whose socket is full is checked for falling behind.
const LAG_CHECK: Duration = Duration::from_millis(200);
/// How long a leaving client's last lines may take to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);
/// How long to read and drop a leaving client's input after saying goodbye,
/// so that closing the socket does not reset it and lose the goodbye.
const LINGER: Duration = Duration::from_millis(300);
/// TCP keepalive: how long a silent connection waits before it is probed, how
/// often, and how many unanswered probes mean the peer is gone.
const KEEPALIVE: (Duration, Duration, u32) = (Duration::from_secs(60), Duration::from_secs(10), 3);

/// What a session's task was woken for.
struct Events {
    /// The server is shutting down.
    stopping: bool,
    /// The mailbox may have lines.
    mail: bool,
    /// The socket can take more (asked only while there is output waiting).
    writable: Option<io::Result<()>>,
    /// The socket has input, or an error.
    readable: Option<io::Result<()>>,
    /// Time to look whether a blocked client fell behind.
    lagging: bool,
    /// Nothing was received for the idle timeout.
    idle: bool,
    /// The other servers answered a `/nick`.
    claimed: Option<Result<(), HubError>>,
}

impl Events {
    fn any(&self) -> bool {
        self.stopping
            || self.claimed.is_some()
            || self.mail
            || self.writable.is_some()
            || self.readable.is_some()
            || self.lagging
            || self.idle
    }
}

fn ready_or_none<T>(poll: Poll<T>) -> Option<T> {
    match poll {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

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
            Ending::Closed => None,
            Ending::Shutdown => Some("server shutting down"),
            Ending::Idle => Some("idle"),
            Ending::TooSlow(_) => Some("too slow"),
            Ending::Failed(_) => Some("connection lost"),
        }
    }
}

/// Serves one client from its greeting to its goodbye.
pub(super) async fn serve<B: Backplane>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<B>>,
    shutdown: Shutdown,
) -> io::Result<()> {
    let (time, interval, retries) = KEEPALIVE;
    let keepalive = TcpKeepalive::new().with_time(time).with_interval(interval).with_retries(retries);
    if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        debug!(%peer, error = %e, "cannot set TCP keepalive");
    }
    let config = &shared.config;
    let id = shared.next_id();
    let outbox = Arc::new(Outbox::new(config.queue));
    let membership = Membership { shared: &shared, id, present: true };
    let mailbox = shared.hub.lock().connect(id, outbox);
    let mut connection = Connection {
        stream,
        mailbox,
        out: BytesMut::new(),
        lag_check: None,
        input: BytesMut::new(),
        eof: false,
        codec: AnyDelimiterCodec::new_with_max_length(vec![b'\n'], Vec::new(), config.max_line),
        nick: None,
        flood: config.rate_limit.map(|limit| TokenBucket::new(limit, Instant::now())),
        refused: 0,
        idle: IdleTimer::new(config.idle_timeout),
    };
    let ending = connection.run(&shared, id, &shutdown).await;
    let nick = shared.hub.lock().nick(id).unwrap_or_default().to_owned();
    match &ending {
        Ending::TooSlow(overflow) => {
            warn!(%peer, nick, "disconnecting a client: {overflow}");
        }
        Ending::Failed(e) => debug!(%peer, nick, error = %e, "client connection failed"),
        ending => debug!(%peer, nick, ?ending, "client left"),
    }
    // Leaving now frees the nickname; the client still gets the room's lines until now.
    let left = membership.leave(ending.reason(), !shutdown.is_triggered(), &connection.mailbox);
    connection.mailbox.stop_at(left);
    connection.finish(ending, shared.config.idle_timeout).await
}

/// A client's place in the hub, given up however the task ends.
struct Membership<'a, B: Backplane> {
    shared: &'a Shared<B>,
    id: ClientId,
    present: bool,
}

impl<B: Backplane> Membership<'_, B> {
    /// Leaves the hub (its room hears it with `announce`) and returns where
    /// the room's log was at that moment.
    fn leave(mut self, reason: Option<&str>, announce: bool, mailbox: &Mailbox) -> Mark {
        let mut hub = self.shared.hub.lock();
        hub.disconnect(self.id, reason, announce);
        self.present = false;
        mailbox.mark()
    }
}

impl<B: Backplane> Drop for Membership<'_, B> {
    fn drop(&mut self) {
        if self.present {
            self.shared.hub.lock().disconnect(self.id, Some("connection lost"), true);
        }
    }
}

struct Connection {
    stream: TcpStream,
    mailbox: Mailbox,
    /// Lines collected and not yet written; unallocated while there are none.
    out: BytesMut,
    /// While `out` waits for the socket: when to look whether the client fell behind.
    lag_check: Option<Pin<Box<Sleep>>>,
    /// Bytes read and not yet decoded into lines; empty and unallocated
    /// while the client is quiet.
    input: BytesMut,
    /// The client has closed its side: `input` is all there is.
    eof: bool,
    codec: AnyDelimiterCodec,
    /// A `/nick` waiting for the other servers of a cluster: the client's
    /// later lines wait behind it, unread.
    nick: Option<(String, Claim)>,
    flood: Option<TokenBucket>,
    /// Lines refused by flood control since the last one accepted.
    refused: u64,
    idle: IdleTimer,
}

impl Connection {
    /// Reads, routes and writes until the session ends.
    async fn run<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId, shutdown: &Shutdown) -> Ending {
        loop {
            let ready = std::future::poll_fn(|cx| self.poll_events(cx, shutdown)).await;
            if let Err(ending) = self.handle(ready, shared, id) {
                return ending;
            }
        }
    }

    /// Ready with everything that happened since the last look; otherwise
    /// registers this task with each source of events. Polling the sources
    /// directly (rather than through `select!`) registers the task once
    /// each, with no waiter lists to join and leave on every wake-up.
    fn poll_events(&mut self, cx: &mut Context<'_>, shutdown: &Shutdown) -> Poll<Events> {
        // The server wakes every mailbox when it starts shutting down.
        let stopping = shutdown.is_triggered();
        let mail = self.mailbox.outbox().poll_ready(cx).is_ready();
        let writable = match self.out.is_empty() {
            true => None,
            false => ready_or_none(self.stream.poll_write_ready(cx)),
        };
        let claimed = self.nick.as_mut().and_then(|(_, claim)| ready_or_none(claim.as_mut().poll(cx)));
        // Input waits while a /nick does; after the end of the stream there is none.
        let readable = match self.nick.is_none() && !self.eof {
            true => ready_or_none(self.stream.poll_read_ready(cx)),
            false => None,
        };
        let lagging = self.lag_check.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        let idle = self.idle.poll_expired(cx).is_ready();
        let events = Events { stopping, mail, writable, readable, lagging, idle, claimed };
        match events.any() {
            true => Poll::Ready(events),
            false => Poll::Pending,
        }
    }

    /// Acts on what happened: input first, then output.
    fn handle<B: Backplane>(
        &mut self,
        events: Events,
        shared: &Shared<B>,
        id: ClientId,
    ) -> Result<(), Ending> {
        if events.stopping {
            return Err(Ending::Shutdown);
        }
        if let Some(claimed) = events.claimed {
            let (nick, _) = self.nick.take().expect("a claim answered was pending");
            if let Err(e) = claimed.and_then(|()| shared.hub.lock().rename(id, &nick)) {
                self.reply(protocol::error(sanitize(&e.to_string())));
            }
            // The lines that waited behind the /nick.
            self.decode(shared, id)?;
        }
        match events.readable {
            Some(Ok(())) => self.receive(shared, id)?,
            Some(Err(e)) => return Err(Ending::Failed(e)),
            None if events.idle => return Err(Ending::Idle),
            None => {}
        }
        if let Some(Err(e)) = events.writable {
            return Err(Ending::Failed(e));
        }
        if events.mail || events.writable.is_some() {
            match self.out.is_empty() || events.writable.is_some() {
                true => self.flush()?,
                // The socket is still full: only look whether the client fell behind.
                false => self.mailbox.check().map_err(Ending::TooSlow)?,
            }
        }
        if events.lagging {
            self.mailbox.check().map_err(Ending::TooSlow)?;
            self.lag_check = Some(Box::pin(tokio::time::sleep(LAG_CHECK)));
        }
        Ok(())
    }

    /// Reads what has arrived and handles every whole line in it.
    fn receive<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        self.input.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.input) {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A new socket is reported readable once before any data: hold no buffer for it.
                if self.input.is_empty() {
                    self.input = BytesMut::new();
                }
                return Ok(());
            }
            Err(e) => return Err(Ending::Failed(e)),
        }
        self.idle.touch();
        self.decode(shared, id)
    }

    /// Handles the whole lines read, up to a `/nick` that has to wait for
    /// the other servers.
    fn decode<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        while self.nick.is_none() {
            let decoded = match self.eof {
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
        if self.eof && self.nick.is_none() {
            return Err(Ending::Closed);
        }
        if self.input.is_empty() {
            // A quiet client holds no buffer.
            self.input = BytesMut::new();
        }
        // Answers to what was just read go out now, not after another wake-up.
        match self.out.is_empty() {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// Handles one line from the client.
    fn line<B: Backplane>(&mut self, raw: &[u8], shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
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
            Request::Nick(name) => match hub.claim(id, name) {
                Ok(None) => hub.rename(id, name),
                Ok(Some(claim)) => {
                    self.nick = Some((name.to_owned(), claim));
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Request::Who => {
                hub.who(id);
                Ok(())
            }
            Request::Tell { to, text } => hub.tell(id, to, &sanitize(text)),
            Request::Join(room) => match hub.join(id, room) {
                Ok(seat) => {
                    // Publishing takes the hub's lock: this is exactly where the client left.
                    let left = self.mailbox.mark();
                    drop(hub);
                    self.mailbox.stop_at(left);
                    return self
                        .mailbox
                        .move_to(seat.log, seat.cursor, &mut self.out)
                        .map_err(Ending::TooSlow);
                }
                Err(e) => Err(e),
            },
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
        self.mailbox.outbox().push(self.mailbox.mark(), &line);
    }

    /// Writes what is collected, collecting more while the socket takes it,
    /// for a few rounds.
    fn flush(&mut self) -> Result<(), Ending> {
        for _ in 0..FLUSH_ROUNDS {
            let more = match self.out.is_empty() {
                true => self.mailbox.collect(&mut self.out, WRITE_BUDGET).map_err(Ending::TooSlow)?,
                false => true,
            };
            while !self.out.is_empty() {
                match self.stream.try_write(&self.out) {
                    Ok(n) => self.out.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.lag_check.is_none() {
                            self.lag_check = Some(Box::pin(tokio::time::sleep(LAG_CHECK)));
                        }
                        return Ok(());
                    }
                    Err(e) => return Err(Ending::Failed(e)),
                }
            }
            self.lag_check = None;
            if !more {
                // Caught up: an idle client holds no buffer.
                self.out = BytesMut::new();
                return Ok(());
            }
        }
        // More is waiting: come back to it after the other clients had a turn.
        self.mailbox.outbox().wake();
        Ok(())
    }

    /// Says goodbye as the ending asks, writes what is still due (for a
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
            Ending::TooSlow(overflow) => return Err(io::Error::other(overflow.to_string())),
            Ending::Failed(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        if !goodbye.is_empty() {
            self.mailbox.outbox().push(Mark::LAST, &goodbye);
        }
        let flushed = tokio::time::timeout(FLUSH_LIMIT, async {
            loop {
                if self.flush().is_err() || (self.out.is_empty() && !self.mailbox.pending()) {
                    return;
                }
                if self.stream.writable().await.is_err() {
                    return;
                }
            }
        });
        flushed.await.ok();
        self.stream.shutdown().await?;
        let drained = tokio::time::timeout(LINGER, async {
            loop {
                if self.stream.readable().await.is_err() {
                    return;
                }
                self.input.clear();
                self.input.reserve(READ_CHUNK);
                match self.stream.try_read_buf(&mut self.input) {
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
