//! One client's task: the only code that touches its socket. It reads lines
//! and hands each to the hub, and writes what the client's mailbox has for
//! it, copied into one buffer per write.
//!
//! The task never waits on anything but its own socket, its own mailbox, its
//! timer and the shutdown signal, so a client that stops reading holds up
//! no one: it falls behind its room's log, and the task ends.
//!
//! A connection's life, and the one timer that watches it:
//!
//! - From connect to its first whole line it is *silent*: its address
//!   counts it among its silent connections, it must send a whole line
//!   within `register_timeout`, and bytes that are not a whole line do not
//!   count. That line also tells what it speaks ([`protocol::identify`]): an
//!   IRC client's registration makes it an IRC session ([`Dialect`]), which
//!   must complete registration within `register_timeout` as well.
//! - The room hears that it joined at its first line, or after
//!   [`ANNOUNCE_GRACE`] (when a silent one is also sent a `PING`): a
//!   connection that comes and goes at once is never announced.
//! - A line, once begun, must end within `line_timeout` (slowloris).
//! - A client that says nothing for `ping_interval` is sent `PING`;
//!   `chat join` answers by itself. One that does not answer (a person
//!   reading at `nc`) stays as long as its machine acknowledges what it is
//!   sent: TCP keepalive and a TCP user timeout close it when it does not.
//! - A client whose output waits (its socket full) is too slow when it
//!   falls more than `queue` bytes behind, or stays behind for
//!   `slow_timeout`: it is told why, and its connection is reset so that
//!   nothing lingers for it in the kernel.

mod dialect;
mod finish;
mod input;

pub(in crate::chat) use dialect::Dialect;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::AnyDelimiterCodec;
use tracing::{debug, warn};

use super::admission::Ticket;
use super::delivery::{Mailbox, Mark, Outbox, Overflow};
use super::flood::TokenBucket;
use super::hub::{Backplane, Claim, ClientId, HubError};
use super::protocol;
use super::server::Shared;
use crate::shutdown::Shutdown;

/// About how much one write sends: what a mailbox collects at once.
const WRITE_BUDGET: usize = 32 * 1024;
/// Collect-and-write rounds before a busy client lets others run.
const FLUSH_ROUNDS: usize = 4;
/// How often a client whose socket is full is checked for falling behind.
const LAG_CHECK: Duration = Duration::from_millis(200);
/// How long a new connection may stay unannounced without a line.
pub const ANNOUNCE_GRACE: Duration = Duration::from_secs(2);
/// TCP keepalive: how long a silent connection waits before it is probed, how
/// often, and how many unanswered probes mean the peer is gone.
const KEEPALIVE: (Duration, Duration, u32) = (Duration::from_secs(60), Duration::from_secs(10), 3);
/// How long what the server sent may go unacknowledged by the client's
/// machine before the connection counts as lost (TCP_USER_TIMEOUT).
const UNACKNOWLEDGED: Duration = Duration::from_secs(90);
/// The kernel's send buffer per client (Linux doubles it for its own
/// bookkeeping): small, so that what waits for a slow client waits in its
/// room's log, where `--queue` bounds it, not in the kernel.
pub const SEND_BUFFER: usize = 32 * 1024;

/// Why a client is too slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
enum Slow {
    /// It fell too far behind.
    #[error(transparent)]
    Behind(#[from] Overflow),
    /// Its output waited this long without it catching up.
    #[error("what it was sent waited more than {} (the bound is --slow-timeout)", humantime::format_duration(*.0))]
    Late(Duration),
}

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
    /// The timer fired: something is due.
    due: bool,
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
            || self.due
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
    /// No whole line came within the registration timeout.
    Silent,
    /// A line took longer than the line timeout to arrive.
    SlowLine,
    /// The client reads too slowly.
    TooSlow(Slow),
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
            Ending::Silent => Some("said nothing"),
            Ending::SlowLine => Some("line too slow"),
            Ending::TooSlow(_) => Some("too slow"),
            Ending::Failed(_) => Some("connection lost"),
        }
    }
}

/// Serves one client from its greeting to its goodbye.
pub(super) async fn serve<B: Backplane>(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared<B>>,
    shutdown: Shutdown,
    dialect: Dialect,
) -> io::Result<()> {
    let (time, interval, retries) = KEEPALIVE;
    let keepalive = TcpKeepalive::new().with_time(time).with_interval(interval).with_retries(retries);
    let socket = SockRef::from(&stream);
    let options = socket
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED)))
        .and_then(|()| socket.set_send_buffer_size(SEND_BUFFER));
    if let Err(e) = options {
        debug!(%peer, error = %e, "cannot set the socket's options");
    }
    let config = &shared.config;
    let id = shared.next_id();
    let outbox = Arc::new(Outbox::new(config.queue));
    let membership = Membership { shared: &shared, id, present: true };
    let mailbox = shared.hub.lock().connect(id, outbox);
    let now = Instant::now();
    let mut connection = Connection {
        stream,
        mailbox,
        dialect,
        out: BytesMut::new(),
        input: BytesMut::new(),
        eof: false,
        // One more byte than the limit: the \r of a \r\n does not count.
        codec: AnyDelimiterCodec::new_with_max_length(vec![b'\n'], Vec::new(), config.max_line + 1),
        nick: None,
        flood: config.rate_limit.map(|limit| TokenBucket::new(limit, now.into_std())),
        refused: 0,
        ticket,
        connected: now,
        heard: now,
        pinged: None,
        pings: 0,
        registered: false,
        announced: false,
        line_began: None,
        behind_since: None,
        next_lag_check: None,
        timer: Box::pin(tokio::time::sleep_until(now)),
        timer_at: now,
    };
    let ending = connection.run(&shared, id, &shutdown).await;
    let nick = shared.hub.lock().nick(id).unwrap_or_default().to_owned();
    match &ending {
        Ending::TooSlow(slow) => warn!(%peer, nick, "disconnecting a client: {slow}"),
        Ending::Failed(e) => debug!(%peer, nick, error = %e, "client connection failed"),
        ending => debug!(%peer, nick, ?ending, "client left"),
    }
    // Leaving now frees the nickname; the client still gets the room's lines until now.
    let left = membership.leave(ending.reason(), !shutdown.is_triggered(), &connection.mailbox);
    connection.mailbox.stop_at(left);
    connection.finish(ending, config).await
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
    /// What the client speaks.
    dialect: Dialect,
    /// Lines collected and not yet written; unallocated while there are none.
    out: BytesMut,
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
    /// Its place under the server's caps.
    ticket: Ticket,
    connected: Instant,
    /// When the last whole line came (the connection's start before one did).
    heard: Instant,
    /// When the last `PING` went out.
    pinged: Option<Instant>,
    /// `PING`s sent: each carries its number.
    pings: u64,
    /// A whole line has come.
    registered: bool,
    /// Its room has heard of it.
    announced: bool,
    /// When the bytes of the line being received began to come.
    line_began: Option<Instant>,
    /// Since when output has been waiting for the socket.
    behind_since: Option<Instant>,
    /// While behind: when to look again whether it fell too far.
    next_lag_check: Option<Instant>,
    /// Fires at the earliest of the deadlines above.
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
}

impl Connection {
    /// Reads, routes and writes until the session ends.
    async fn run<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId, shutdown: &Shutdown) -> Ending {
        self.rearm(shared);
        loop {
            let ready = std::future::poll_fn(|cx| self.poll_events(cx, shutdown)).await;
            if let Err(ending) = self.handle(ready, shared, id) {
                return ending;
            }
            self.rearm(shared);
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
        let due = self.timer.as_mut().poll(cx).is_ready();
        let events = Events { stopping, mail, writable, readable, due, claimed };
        match events.any() {
            true => Poll::Ready(events),
            false => Poll::Pending,
        }
    }

    /// Acts on what happened: input first, then output, then what is due.
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
            let mut hub = shared.hub.lock();
            if let Err(e) = claimed.and_then(|()| hub.rename(id, &nick)) {
                self.refuse(&e);
            }
            self.announce(&mut hub, id);
            drop(hub);
            // The lines that waited behind the /nick.
            self.decode(shared, id)?;
        }
        match events.readable {
            Some(Ok(())) => self.receive(shared, id)?,
            Some(Err(e)) => return Err(Ending::Failed(e)),
            None => {}
        }
        if let Some(Err(e)) = events.writable {
            return Err(Ending::Failed(e));
        }
        if events.mail || events.writable.is_some() {
            match self.out.is_empty() || events.writable.is_some() {
                true => self.flush()?,
                // The socket is still full: only look whether the client fell behind.
                false => self.check_lag(shared)?,
            }
        }
        if events.due {
            self.on_time(shared, id)?;
        }
        Ok(())
    }

    /// Does what is due by now.
    fn on_time<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        let config = &shared.config;
        let now = Instant::now();
        if self.registering() && now >= self.connected + config.register_timeout {
            return Err(Ending::Silent);
        }
        if self.line_began.is_some_and(|began| now >= began + config.line_timeout) {
            return Err(Ending::SlowLine);
        }
        if !self.announced && now >= self.connected + ANNOUNCE_GRACE && self.nick.is_none() {
            self.announce(&mut shared.hub.lock(), id);
            if !self.registered {
                // Clients that answer pings (chat join) thereby send their first line.
                self.ping(now);
            }
        }
        if self.registered && now >= self.quiet_since() + config.ping_interval {
            self.ping(now);
        }
        if self.next_lag_check.is_some_and(|at| now >= at) {
            self.next_lag_check = Some(now + LAG_CHECK);
            self.check_lag(shared)?;
        }
        Ok(())
    }

    /// Since when the client has neither sent a line nor been pinged.
    fn quiet_since(&self) -> Instant {
        self.pinged.map_or(self.heard, |pinged| pinged.max(self.heard))
    }

    /// Points the timer at the earliest deadline.
    fn rearm<B: Backplane>(&mut self, shared: &Shared<B>) {
        let config = &shared.config;
        let deadlines = [
            self.registering().then(|| self.connected + config.register_timeout),
            (!self.announced).then(|| self.connected + ANNOUNCE_GRACE),
            self.line_began.map(|began| began + config.line_timeout),
            self.registered.then(|| self.quiet_since() + config.ping_interval),
            self.next_lag_check,
        ];
        let Some(at) = deadlines.into_iter().flatten().min() else { return };
        if at != self.timer_at || self.timer.is_elapsed() {
            self.timer_at = at;
            self.timer.as_mut().reset(at);
        }
    }

    /// Whether the client has yet to send its first whole line, or (IRC)
    /// to finish registering.
    fn registering(&self) -> bool {
        !self.registered || self.dialect.registering()
    }

    /// Tells the room (once) that this client is here; not while an IRC
    /// client registers, under a name it is about to change.
    fn announce<B: Backplane>(&mut self, hub: &mut super::hub::Hub<B>, id: ClientId) {
        if !self.announced && !self.dialect.registering() {
            self.announced = true;
            hub.announce(id);
        }
    }

    /// Sends a `PING`.
    fn ping(&mut self, now: Instant) {
        self.pings += 1;
        self.pinged = Some(now);
        self.reply(protocol::ping(self.pings));
    }

    /// Whether the client fell too far behind, or has been behind too long.
    fn check_lag<B: Backplane>(&self, shared: &Shared<B>) -> Result<(), Ending> {
        let slow_timeout = shared.config.slow_timeout;
        if self.behind_since.is_some_and(|since| since.elapsed() > slow_timeout) {
            return Err(Ending::TooSlow(Slow::Late(slow_timeout)));
        }
        self.mailbox.check().map_err(|overflow| Ending::TooSlow(overflow.into()))
    }

    /// Queues a line for this client alone.
    fn reply(&self, line: bytes::Bytes) {
        if !line.is_empty() {
            self.mailbox.outbox().push(self.mailbox.mark(), &line);
        }
    }

    /// Tells the client why the hub refused what it asked.
    fn refuse(&self, e: &HubError) {
        self.reply(self.dialect.refusal(e));
    }

    /// Copies what is due into `out`, rendered for the client: see
    /// [`Mailbox::collect`].
    fn collect(&mut self, budget: usize) -> Result<bool, Overflow> {
        if !self.dialect.translates() {
            return self.mailbox.collect(&mut self.out, budget);
        }
        let mut raw = BytesMut::new();
        let more = self.mailbox.collect(&mut raw, budget)?;
        self.dialect.render(&raw, &mut self.out);
        Ok(more)
    }

    /// Writes what is collected, collecting more while the socket takes it,
    /// for a few rounds.
    fn flush(&mut self) -> Result<(), Ending> {
        for _ in 0..FLUSH_ROUNDS {
            let more = match self.out.is_empty() {
                true => self.collect(WRITE_BUDGET).map_err(|overflow| Ending::TooSlow(overflow.into()))?,
                false => true,
            };
            while !self.out.is_empty() {
                match self.stream.try_write(&self.out) {
                    Ok(n) => self.out.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.behind_since.is_none() {
                            let now = Instant::now();
                            self.behind_since = Some(now);
                            self.next_lag_check = Some(now + LAG_CHECK);
                        }
                        return Ok(());
                    }
                    Err(e) => return Err(Ending::Failed(e)),
                }
            }
            if !more {
                // Caught up: an idle client holds no buffer.
                self.out = BytesMut::new();
                self.behind_since = None;
                self.next_lag_check = None;
                return Ok(());
            }
        }
        // More is waiting: come back to it after the other clients had a turn.
        self.mailbox.outbox().wake();
        Ok(())
    }
}
