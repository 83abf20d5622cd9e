//! The TCP connect reactor: one thread, one epoll, one non-blocking socket
//! per probe in flight, and no allocation or timer object per probe (the
//! scheduler's slots index a preallocated socket table; timeouts are a queue).
//!
//! Per probe, two system calls: `connect`, then `connect` again to the same
//! address, which on Linux reports what became of the first: refused
//! (`ECONNREFUSED`, and the socket is reset, ready for the next probe),
//! connected (0), or still under way (`EALREADY`: wait for epoll). On
//! loopback the kernel answers within the first call, so a closed port costs
//! no socket, no `close` and no epoll registration: the reactor keeps a few
//! idle sockets and reuses them. Answers that take a round trip go through
//! epoll, with a socket of their own until then.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use socket2::{Domain, SockAddr, Socket, Type};

use super::report::{PortState, Reason};
use super::schedule::throttle::SharedThrottle;
use super::schedule::{Scheduler, SlotId};
use super::worker::{Group, Plan, Reporter, Stopped, poll_wait, share};

/// Probes sent between two looks at what has arrived.
pub(super) const SEND_BATCH: usize = 256;

/// What a connect attempt came to.
enum Outcome {
    /// Still connecting: wait for epoll.
    Pending,
    /// Settled: the verdict, and the connection when open.
    Verdict(PortState, Reason, Option<TcpStream>),
    /// The system is out of file descriptors or local ports: try later.
    Shortage,
}

/// Scans reactor `k`'s share of the group's TCP ports with connect().
///
/// # Errors
/// When epoll cannot be set up.
pub(super) fn scan(
    group: &Group,
    plan: &Plan,
    k: usize,
    throttles: Vec<Arc<SharedThrottle>>,
    mut out: Reporter<'_>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let ports = share(&plan.tcp_ports, k, plan.connect_threads);
    let mut scheduler = Scheduler::sharing(plan.schedule, throttles, ports, false, Instant::now());
    let mut sockets: Vec<Option<Socket>> = (0..plan.schedule.window.max(1)).map(|_| None).collect();
    let mut events = Events::with_capacity(1024);
    let mut connector = Connector::default();
    let mut reactor = (&mut poll, &mut connector, &mut sockets, &mut events);
    // Stopped: the results so far still go out, marked incomplete.
    let _ = drive(group, &mut reactor, &mut scheduler, &mut out);
    out.finish(&scheduler, PortState::Filtered);
    Ok(())
}

/// The reactor's state: epoll, idle sockets, the in-flight sockets by slot, and an event buffer.
type Parts<'a> = (&'a mut Poll, &'a mut Connector, &'a mut Vec<Option<Socket>>, &'a mut Events);

fn drive(
    group: &Group,
    (poll, connector, sockets, events): &mut Parts<'_>,
    scheduler: &mut Scheduler,
    out: &mut Reporter<'_>,
) -> Result<(), Stopped> {
    loop {
        let mut now = Instant::now();
        let mut batch = 0;
        while let Some((slot, probe)) = scheduler.poll_send(now) {
            out.sending(probe);
            let (socket, outcome) = connector.connect(group.addr(probe.host, probe.port));
            match outcome {
                Outcome::Verdict(state, reason, stream) => {
                    // The kernel answered within connect(): a round trip all the same.
                    let settled = scheduler.settle_at_once(slot, now, Instant::now(), state, reason);
                    if state == PortState::Open && settled.recorded {
                        out.open(settled.probe, reason, stream)?;
                    }
                }
                Outcome::Pending => {
                    let registered = socket.as_ref().map(|s| {
                        poll.registry().register(
                            &mut SourceFd(&s.as_raw_fd()),
                            Token(slot as usize),
                            Interest::WRITABLE,
                        )
                    });
                    match registered {
                        Some(Ok(())) => {
                            sockets[slot as usize] = socket;
                            scheduler.sent(slot, now);
                        }
                        _ => {
                            out.unsent(probe);
                            scheduler.defer(slot, now);
                        }
                    }
                }
                Outcome::Shortage => {
                    tracing::debug!(
                        "out of sockets or local ports with {} probes in flight; waiting for some to finish",
                        scheduler.in_flight()
                    );
                    out.unsent(probe);
                    scheduler.defer(slot, now);
                    break;
                }
            }
            now = Instant::now();
            batch += 1;
            if batch == SEND_BATCH {
                break;
            }
        }
        out.progress(scheduler.concluded());
        if scheduler.is_done() || out.stopped() {
            return Ok(());
        }
        let wait = Some(poll_wait(scheduler, batch == SEND_BATCH));
        if let Err(e) = poll.poll(events, wait)
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::warn!("epoll_wait failed: {e}");
        }
        for event in events.iter() {
            let slot = event.token().0 as SlotId;
            let Some(socket) = sockets[slot as usize].as_ref() else { continue };
            let Some((state, reason)) = settled(socket) else { continue };
            let socket = sockets[slot as usize].take();
            let settled = scheduler.settle(slot, Instant::now(), state, reason);
            if state == PortState::Open && settled.recorded {
                out.open(settled.probe, reason, socket.map(TcpStream::from))?;
            }
        }
        let now = Instant::now();
        while let Some(expired) = scheduler.handle_timeout(now) {
            sockets[expired.slot as usize] = None;
        }
    }
}

/// Idle sockets kept for reuse, per address family.
const IDLE_SOCKETS: usize = 64;

/// Starts connections, reusing sockets whose last attempt was refused.
#[derive(Default)]
struct Connector {
    idle: [Vec<Socket>; 2],
}

impl Connector {
    /// Starts a non-blocking connect to `addr` and reads its state at once.
    fn connect(&mut self, addr: SocketAddr) -> (Option<Socket>, Outcome) {
        let family = usize::from(addr.is_ipv6());
        let (socket, reused) = match self.idle[family].pop() {
            Some(socket) => (socket, true),
            None => match Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None) {
                Ok(socket) => (socket, false),
                Err(e) => return (None, classify_error(&e)),
            },
        };
        let to = SockAddr::from(addr);
        match socket.connect(&to).map_err(|e| errno(&e)) {
            Ok(()) => return (None, connected(socket)),
            Err(Some(Errno::EINPROGRESS)) => {}
            // A reused socket in a state we did not expect: start over with a new one.
            Err(Some(Errno::EISCONN | Errno::EALREADY | Errno::EINVAL | Errno::EBADFD)) if reused => {
                return self.connect(addr);
            }
            Err(e) => {
                let outcome = classify_errno(e);
                if matches!(outcome, Outcome::Shortage) {
                    self.idle[family].push(socket);
                }
                return (None, outcome);
            }
        }
        // Asking again reports what became of the first attempt.
        match socket.connect(&to).map_err(|e| errno(&e)) {
            Err(Some(Errno::ECONNREFUSED)) => {
                if self.idle[family].len() < IDLE_SOCKETS {
                    self.idle[family].push(socket);
                }
                (None, Outcome::Verdict(PortState::Closed, Reason::Reset, None))
            }
            Err(Some(Errno::EALREADY)) => (Some(socket), Outcome::Pending),
            Ok(()) | Err(Some(Errno::EISCONN)) => (None, connected(socket)),
            Err(e) => (None, classify_errno(e)),
        }
    }
}

/// The verdict on a socket whose connect completed: open, or a self-connect.
fn connected(socket: Socket) -> Outcome {
    match settled(&socket) {
        Some((PortState::Open, reason)) => Outcome::Verdict(PortState::Open, reason, Some(socket.into())),
        Some((state, reason)) => Outcome::Verdict(state, reason, None),
        None => Outcome::Verdict(PortState::Filtered, Reason::Unreachable, None),
    }
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

/// The verdict on a connecting socket, or `None` while it still connects.
fn settled(socket: &Socket) -> Option<(PortState, Reason)> {
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => match classify_error(&e) {
            Outcome::Verdict(state, reason, _) => Some((state, reason)),
            // Resource errors do not arrive on a socket that exists.
            Outcome::Pending | Outcome::Shortage => Some((PortState::Filtered, Reason::Unreachable)),
        },
        Ok(None) => {
            let peer = socket.peer_addr().ok()?.as_socket()?;
            let local = socket.local_addr().ok().and_then(|a| a.as_socket());
            if local == Some(peer) {
                Some((PortState::Closed, Reason::SelfConnect))
            } else {
                Some((PortState::Open, Reason::SynAck))
            }
        }
    }
}

fn classify_error(e: &io::Error) -> Outcome {
    classify_errno(errno(e))
}

fn classify_errno(errno: Option<Errno>) -> Outcome {
    match errno {
        Some(Errno::ECONNREFUSED) => Outcome::Verdict(PortState::Closed, Reason::Reset, None),
        Some(
            Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOBUFS
            | Errno::ENOMEM
            | Errno::EADDRNOTAVAIL
            | Errno::EAGAIN,
        ) => Outcome::Shortage,
        Some(Errno::ETIMEDOUT) => Outcome::Verdict(PortState::Filtered, Reason::NoResponse, None),
        _ => Outcome::Verdict(PortState::Filtered, Reason::Unreachable, None),
    }
}
