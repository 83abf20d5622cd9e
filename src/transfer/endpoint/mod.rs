//! The receiving side's session table, sans-IO (as quinn-proto's
//! `Endpoint`): datagrams from any number of senders in; the sessions they
//! open, their content, their ends and the datagrams to send back out. It
//! owns the admission rules ([`admission`]) and the memory budget shared by
//! the sessions; the driver owns the sockets and the files.
//!
//! Call order, as the driver does it: pass every datagram to
//! [`Endpoint::handle_datagram`]; when it returns a [`NewSession`], create
//! the file and [`Endpoint::accept`] or [`Endpoint::refuse`] it at once;
//! read [`Endpoint::poll_event`] until `None` (write [`EndpointEvent::Data`],
//! store on [`EndpointEvent::Verified`] and answer with
//! [`Endpoint::committed`], report the ends); send [`Endpoint::poll_transmit`]
//! until `None`; call [`Endpoint::handle_timeout`] at
//! [`Endpoint::poll_timeout`].

pub mod admission;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::name::check_name;
use super::packet::{ErrorCode, Kind, Packet, PacketError, Repr};
use super::receiver::refusal;
use super::{Protocol, Receiver, ReceiverEvent, ReceiverLimits, ReceiverStats};
use admission::{Caps, Seat, Tokens, Verdict};

/// A session is known by the socket it arrived on (an index the driver
/// chooses), its sender, and its id.
pub type SessionKey = (usize, SocketAddr, u32);

/// How an endpoint admits and serves sessions.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// What each session is granted.
    pub limits: ReceiverLimits,
    /// The caps on sessions at once.
    pub caps: Caps,
    /// Bytes all sessions together may keep out of order.
    pub max_buffered: usize,
    /// The key of RETRY tokens: random, made once per receiver.
    pub secret: [u8; 32],
}

/// A HELLO that passed the address check and the caps: the driver creates
/// its file, then accepts or refuses it.
#[derive(Debug)]
pub struct NewSession {
    key: SessionKey,
    engine: Receiver,
    name: String,
    protocol: Protocol,
    size: Option<u64>,
    evict: Option<SessionKey>,
}

impl NewSession {
    /// The session.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The file's name (already checked to be a plain name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content's size, when announced.
    pub fn size(&self) -> Option<u64> {
        self.size
    }
}

/// What happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Content arrived in order: append it to the session's file.
    Data(SessionKey, Vec<u8>),
    /// All content is in and verified: store it, then call [`Endpoint::committed`].
    Verified(SessionKey),
    /// The session ended (or was refused at its HELLO).
    Ended(Ended),
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The session.
    pub key: SessionKey,
    /// The file's name.
    pub name: String,
    /// The ARQ protocol.
    pub protocol: Protocol,
    /// How long it lasted.
    pub duration: Duration,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The receiver's counters.
    pub stats: ReceiverStats,
}

/// Counters of an endpoint, beyond those of each session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// RETRYs sent: HELLOs without a valid token.
    pub retries: u64,
    /// HELLOs refused (name, caps, file).
    pub refused: u64,
    /// Sessions ended to make room for new ones.
    pub evicted: u64,
    /// Datagrams dropped that belong to no session: malformed, corrupted,
    /// or for a session that does not exist.
    pub dropped: u64,
}

struct Slot {
    engine: Receiver,
    name: String,
    protocol: Protocol,
    started: Instant,
}

/// The sessions of a receiver, sans-IO.
pub struct Endpoint {
    config: EndpointConfig,
    tokens: Tokens,
    sessions: HashMap<SessionKey, Slot>,
    /// Datagrams to send that belong to no session's engine.
    replies: VecDeque<(SessionKey, Vec<u8>)>,
    /// Sessions that may have datagrams to send.
    dirty: VecDeque<SessionKey>,
    events: VecDeque<EndpointEvent>,
    stats: EndpointStats,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint with no sessions; tokens count their periods from `now`.
    pub fn new(config: EndpointConfig, now: Instant) -> Self {
        Endpoint {
            tokens: Tokens::new(config.secret, now),
            config,
            sessions: HashMap::new(),
            replies: VecDeque::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// Sessions held, lingering ones included.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions still receiving or storing.
    pub fn active(&self) -> usize {
        self.sessions.values().filter(|s| s.engine.is_active()).count()
    }

    /// The names being received now.
    pub fn receiving(&self) -> impl Iterator<Item = &str> {
        self.sessions.values().filter(|s| s.engine.is_active()).map(|s| s.name.as_str())
    }

    /// Bytes all sessions keep out of order now.
    pub fn buffered_bytes(&self) -> usize {
        self.sessions.values().map(|s| s.engine.buffered_bytes()).sum()
    }

    /// The endpoint's own counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Takes in one datagram that arrived on socket `local` from `from`.
    /// Returns the session a HELLO asks for, once it passed the checks:
    /// accept or refuse it before the next datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: usize,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<NewSession> {
        let packet = match Packet::new_checked(data) {
            Ok(packet) => packet,
            Err(error) => {
                self.drop_broken(local, from, data, &error);
                return None;
            }
        };
        let key = (local, from, packet.session());
        if let Some(slot) = self.sessions.get_mut(&key) {
            slot.engine.handle_datagram(now, &packet);
            if slot.engine.wants_ack_now() {
                let mut ack = Vec::new();
                if slot.engine.poll_transmit(&mut ack) {
                    self.replies.push_back((key, ack));
                }
            }
            self.collect(key, now);
            return None;
        }
        match Repr::parse(&packet) {
            Ok(Repr::Hello(hello)) => {
                if !self.tokens.check(now, from, key.2, hello.token) {
                    let token = self.tokens.make(now, from, key.2);
                    let mut retry = Vec::new();
                    Repr::Retry { token: &token }.emit(key.2, &mut retry);
                    self.replies.push_back((key, retry));
                    self.stats.retries += 1;
                    return None;
                }
                let refused = |reason: String| (hello.name.to_owned(), hello.protocol, reason);
                let admitted = check_name(hello.name)
                    .and_then(|()| self.name_free(hello.name))
                    .and_then(|()| Receiver::accept(now, key.2, &hello, self.config.limits))
                    .map_err(refused)
                    .and_then(|engine| match self.make_room(now, from) {
                        Verdict::Refuse(why) => Err(refused(why.to_owned())),
                        Verdict::Admit => Ok((engine, None)),
                        Verdict::Evict(victim) => Ok((engine, Some(victim))),
                    });
                match admitted {
                    Ok((engine, evict)) => Some(NewSession {
                        key,
                        engine,
                        name: hello.name.to_owned(),
                        protocol: hello.protocol,
                        size: hello.size,
                        evict,
                    }),
                    Err((name, protocol, reason)) => {
                        self.refuse_hello(key, name, protocol, &reason);
                        None
                    }
                }
            }
            // A session this receiver does not know (it restarted, or the
            // session ended long ago): tell the sender so it stops at once.
            Ok(_) if matches!(packet.kind(), Kind::Data | Kind::Fin) => {
                let mut reply = Vec::new();
                let message = "no such session on the receiver (did it restart?)";
                Repr::Error { code: ErrorCode::Aborted, message }.emit(key.2, &mut reply);
                self.replies.push_back((key, reply));
                self.stats.dropped += 1;
                None
            }
            _ => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    /// Counts a datagram that failed its checks: against its session when
    /// its header still names one of this sender's, else against the endpoint.
    fn drop_broken(&mut self, local: usize, from: SocketAddr, data: &[u8], error: &PacketError) {
        let claimed = data.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
        let slot = match claimed.and_then(|id| self.sessions.get_mut(&(local, from, id))) {
            Some(slot) => Some(slot),
            // The id itself may be what was corrupted: the sender's only session then.
            None => {
                let mut of_sender = self.sessions.iter_mut().filter(|(k, _)| k.0 == local && k.1 == from);
                match (of_sender.next(), of_sender.next()) {
                    (Some((_, slot)), None) => Some(slot),
                    _ => None,
                }
            }
        };
        match slot {
            Some(slot) => slot.engine.note_corrupt(),
            None => self.stats.dropped += 1,
        }
        tracing::trace!(%from, %error, "transfer: datagram dropped");
    }

    /// Refuses a name that another session is receiving now: one of them
    /// would replace or lose the other.
    fn name_free(&self, name: &str) -> Result<(), String> {
        if self.receiving().any(|n| n == name) {
            return Err(format!(
                "'{name}' is being received from another sender now; try again later or send it under another --name"
            ));
        }
        Ok(())
    }

    /// Whether a session from `from` fits, by the caps.
    fn make_room(&self, now: Instant, from: SocketAddr) -> Verdict<SessionKey> {
        let seats = self.sessions.iter().map(|(key, slot)| {
            let seat = Seat {
                source: key.1.ip(),
                lingering: !slot.engine.is_active(),
                idle_since: slot.engine.last_delivery(),
            };
            (*key, seat)
        });
        admission::admit(self.config.caps, now, from.ip(), seats)
    }

    fn refuse_hello(&mut self, key: SessionKey, name: String, protocol: Protocol, reason: &str) {
        let mut reply = Vec::new();
        refusal(key.2, reason, &mut reply);
        self.replies.push_back((key, reply));
        self.stats.refused += 1;
        let error = Some(format!("refused: {reason}"));
        let ended =
            Ended { key, name, protocol, duration: Duration::ZERO, error, stats: ReceiverStats::default() };
        self.events.push_back(EndpointEvent::Ended(ended));
    }

    /// Opens the session: its file is ready.
    pub fn accept(&mut self, now: Instant, new: NewSession) {
        if let Some(victim) = new.evict {
            self.evict(now, victim);
        }
        tracing::debug!(from = %new.key.1, name = %new.name, protocol = %new.protocol, "transfer: incoming file");
        let slot = Slot { engine: new.engine, name: new.name, protocol: new.protocol, started: now };
        self.sessions.insert(new.key, slot);
        self.dirty.push_back(new.key);
        self.share_buffers();
    }

    /// Refuses the session (its file could not be made), telling the sender `reason`.
    pub fn refuse(&mut self, new: NewSession, reason: &str) {
        self.refuse_hello(new.key, new.name, new.protocol, reason);
    }

    fn evict(&mut self, now: Instant, key: SessionKey) {
        let Some(slot) = self.sessions.get_mut(&key) else { return };
        if slot.engine.is_active() {
            slot.engine
                .evict("the receiver needed this transfer's place: it had delivered nothing for a while");
            self.stats.evicted += 1;
            self.collect(key, now);
            let mut last = Vec::new();
            if let Some(slot) = self.sessions.get_mut(&key) {
                while slot.engine.poll_transmit(&mut last) {
                    self.replies.push_back((key, std::mem::take(&mut last)));
                }
            }
        }
        self.sessions.remove(&key);
    }

    /// Reports whether the content of a [`EndpointEvent::Verified`] session was stored.
    pub fn committed(&mut self, now: Instant, key: SessionKey, result: Result<(), String>) {
        if let Some(slot) = self.sessions.get_mut(&key) {
            slot.engine.committed(now, result);
            self.collect(key, now);
        }
    }

    /// Gives up on a session whose content cannot be written; the sender is told.
    pub fn abort(&mut self, now: Instant, key: SessionKey, message: String) {
        if let Some(slot) = self.sessions.get_mut(&key) {
            slot.engine.abort(message);
            self.collect(key, now);
        }
    }

    /// Tells every sender still sending that the receiver stops.
    pub fn shutdown(&mut self) {
        let mut reply = Vec::new();
        for (&key, _) in self.sessions.iter().filter(|(_, s)| s.engine.is_active()) {
            Repr::Error { code: ErrorCode::Aborted, message: "the receiver is shutting down" }
                .emit(key.2, &mut reply);
            self.replies.push_back((key, std::mem::take(&mut reply)));
        }
    }

    /// Moves a session's content and events to the endpoint's queue.
    fn collect(&mut self, key: SessionKey, now: Instant) {
        let Some(slot) = self.sessions.get_mut(&key) else { return };
        while let Some(data) = slot.engine.poll_data() {
            self.events.push_back(EndpointEvent::Data(key, data));
        }
        while let Some(event) = slot.engine.poll_event() {
            let error = match event {
                ReceiverEvent::Verified => {
                    self.events.push_back(EndpointEvent::Verified(key));
                    continue;
                }
                ReceiverEvent::Done => None,
                ReceiverEvent::Failed(e) => Some(e.to_string()),
            };
            self.events.push_back(EndpointEvent::Ended(Ended {
                key,
                name: slot.name.clone(),
                protocol: slot.protocol,
                duration: now.saturating_duration_since(slot.started),
                error,
                stats: slot.engine.stats(),
            }));
        }
        if self.dirty.back() != Some(&key) {
            self.dirty.push_back(key);
        }
    }

    /// Shares the out-of-order budget: each session may keep what it keeps
    /// now plus an equal share of what is left.
    fn share_buffers(&mut self) {
        let used = self.buffered_bytes();
        let left = self.config.max_buffered.saturating_sub(used);
        let share = left / self.sessions.len().max(1);
        for slot in self.sessions.values_mut() {
            slot.engine.set_buffer_allowance(slot.engine.buffered_bytes() + share);
        }
    }

    /// Fires the sessions' timers, and forgets the finished ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.engine.poll_timeout(now).is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(slot) = self.sessions.get_mut(&key) {
                slot.engine.handle_timeout(now);
            }
            self.collect(key, now);
        }
        // A finished session goes once what it had to say was sent.
        let dirty = &self.dirty;
        self.sessions.retain(|key, s| !s.engine.is_finished(now) || dirty.contains(key));
        self.share_buffers();
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.sessions.values().filter_map(|s| s.engine.poll_timeout(now)).min()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Writes the next datagram to send into `out` and says where it goes:
    /// the socket index and the address. Datagrams for one destination come
    /// one after another, so the driver can batch them.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<(usize, SocketAddr)> {
        if let Some((key, datagram)) = self.replies.pop_front() {
            *out = datagram;
            return Some((key.0, key.1));
        }
        while let Some(&key) = self.dirty.front() {
            if let Some(slot) = self.sessions.get_mut(&key)
                && slot.engine.poll_transmit(out)
            {
                return Some((key.0, key.1));
            }
            self.dirty.pop_front();
        }
        None
    }
}
