//! The receiving engine, sans-IO: datagrams in; acknowledgements, in-order
//! content and events out. It hashes the content as it delivers it, so the
//! FIN's SHA-256 can be checked the moment the last block is in.
//!
//! Call order, as the driver does it: [`Receiver::accept`] a HELLO; pass
//! every datagram of the session to [`Receiver::handle_datagram`]; write out
//! [`Receiver::poll_data`] until `None`; when [`ReceiverEvent::Verified`]
//! comes, store the content and report with [`Receiver::committed`]; send
//! [`Receiver::poll_transmit`] until false; fire [`Receiver::handle_timeout`]
//! at [`Receiver::poll_timeout`]; drop the session once
//! [`Receiver::is_finished`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::packet::{Echo, ErrorCode, FinStatus, Hello, Packet, Repr};
use super::seq::SeqSpace;
use super::{Acceptance, Protocol, TransferError, go_back_n, selective_repeat, stop_and_wait};

mod timers;
mod transmit;

/// The most content bytes one session keeps waiting out of order.
pub const MAX_SESSION_BUFFER: usize = 16 << 20;

/// A receiver acknowledges at least every this many blocks, even in the
/// middle of a batch: fewer acknowledgements starve the sender of evidence.
pub const ACK_EVERY: u32 = 4;

/// What a receiver grants and how long it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// The largest window granted.
    pub max_window: u32,
    /// The largest block granted.
    pub max_block: u16,
    /// A sender silent this long is given up for dead.
    pub peer_timeout: Duration,
    /// A sender whose blocks have brought nothing new for this long is
    /// given up (the two sides disagree, or the path loses nearly everything).
    pub progress_timeout: Duration,
    /// How long a finished session stays to answer a repeated FIN.
    pub linger: Duration,
}

/// What a receiver reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// All content is in and matches the sender's SHA-256: store it, then
    /// call [`Receiver::committed`].
    Verified,
    /// The sender knows the content was stored.
    Done,
    /// The transfer failed; nothing must be stored.
    Failed(TransferError),
}

/// Counters of a receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReceiverStats {
    /// Content bytes delivered in order.
    pub bytes: u64,
    /// DATA datagrams received, duplicates included.
    pub data_received: u64,
    /// Blocks received again.
    pub duplicates: u64,
    /// Blocks kept out of order (selective repeat).
    pub buffered: u64,
    /// Blocks dropped: out of order under Go-Back-N, or beyond the window.
    pub discarded: u64,
    /// Datagrams dropped as malformed or corrupted (a failed checksum).
    pub dropped: u64,
    /// Blocks dropped as stale: sent before the sequence numbers wrapped,
    /// and delayed until their number meant another block (see [`Receiver`]).
    pub stale: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Receiving,
    /// Verified, waiting for the driver to store the content.
    Storing,
    /// Answered the FIN; lingers to answer a repeated one.
    Closing {
        since: Instant,
    },
    Failed,
}

/// One transfer, receiving side.
///
/// Small sequence spaces wrap quickly, and a path that reorders or
/// duplicates can deliver a block so late that its number has come round
/// again: taken for the new block of that number, it would corrupt the
/// content. The receiver tells them apart by the DATA's stamp (the
/// sender's count of sends), as TCP's PAWS does with timestamps: the
/// sender sends block `b` only after block `b - W` (W the window) was
/// acknowledged, so any true copy of `b` was sent after the copy of
/// `b - W` that arrived; a copy of an older block, stamped earlier, is stale
/// (Go-Back-N compares with block `b - 1`, see `is_stale`).
#[derive(Debug)]
pub struct Receiver {
    session: u32,
    protocol: Protocol,
    space: SeqSpace,
    window: u32,
    block: u16,
    limits: ReceiverLimits,
    state: State,
    expected: u64,
    /// Blocks kept out of order, with the stamp of the copy kept.
    buffered: BTreeMap<u64, (u64, Vec<u8>)>,
    buffered_bytes: usize,
    /// How many bytes may be kept out of order now (the endpoint shares a
    /// budget among sessions).
    buffer_allowance: usize,
    /// The stamps of the copies delivered of the last `window` blocks below `expected`.
    delivered_stamps: VecDeque<u64>,
    /// The highest stamp seen, for recovering full stamps from 16 bits.
    latest_stamp: Option<u64>,
    ready: VecDeque<Vec<u8>>,
    hasher: Sha256,
    fin: Option<(u64, u64, [u8; 32])>,
    fin_ack: Option<(FinStatus, String)>,
    send_hello_ack: bool,
    send_ack: bool,
    /// DATA datagrams since the last ACK.
    data_since_ack: u32,
    /// A gap opened or closed: the sender wants to know at once.
    urgent_ack: bool,
    /// The highest block received so far.
    highest_seen: Option<u64>,
    /// The latest DATA received, echoed in every ACK from then on.
    echo: Option<Echo>,
    send_fin_ack: bool,
    /// An ERROR to send: the receiver gave up.
    abort: Option<String>,
    last_heard: Instant,
    /// Since when DATA has come without delivering anything new.
    unproductive_since: Option<Instant>,
    /// When content last arrived in order (or the session started).
    last_delivery: Instant,
    /// The content's size, when the sender announced it.
    announced: Option<u64>,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
}

impl Receiver {
    /// Accepts a HELLO, granting at most the limits' window and block (its
    /// timeouts cut to [`crate::units::TimeSpan::MAX`]).
    ///
    /// # Errors
    /// Why the session is refused (answer it with [`refusal`]).
    pub fn accept(
        now: Instant,
        session: u32,
        hello: &Hello<'_>,
        mut limits: ReceiverLimits,
    ) -> Result<Self, String> {
        for timeout in [&mut limits.peer_timeout, &mut limits.progress_timeout, &mut limits.linger] {
            *timeout = super::bounded(*timeout);
        }
        let bits = hello.seq_bits;
        let space =
            SeqSpace::new(bits).ok_or_else(|| format!("{bits}-bit sequence numbers are not supported"))?;
        let max = hello.protocol.max_window(bits);
        if hello.window == 0 || u64::from(hello.window) > max || hello.block == 0 {
            return Err(format!(
                "window {} and block {} are not valid for {}",
                hello.window, hello.block, hello.protocol
            ));
        }
        Ok(Receiver {
            session,
            protocol: hello.protocol,
            space,
            window: granted_window(hello, limits),
            block: hello.block.min(limits.max_block),
            limits,
            state: State::Receiving,
            expected: 0,
            buffered: BTreeMap::new(),
            buffered_bytes: 0,
            buffer_allowance: MAX_SESSION_BUFFER,
            delivered_stamps: VecDeque::new(),
            latest_stamp: None,
            ready: VecDeque::new(),
            hasher: Sha256::new(),
            fin: None,
            fin_ack: None,
            send_hello_ack: true,
            send_ack: false,
            data_since_ack: 0,
            urgent_ack: false,
            highest_seen: None,
            echo: None,
            send_fin_ack: false,
            abort: None,
            last_heard: now,
            unproductive_since: None,
            last_delivery: now,
            announced: hello.size,
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
        })
    }

    /// Bytes kept out of order now.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Lets the session keep at most `bytes` out of order (never less than
    /// it keeps now); blocks beyond are dropped, and the sender resends them.
    pub fn set_buffer_allowance(&mut self, bytes: usize) {
        self.buffer_allowance = bytes.min(MAX_SESSION_BUFFER);
    }

    /// Counts a datagram of this session that failed its checksum.
    pub fn note_corrupt(&mut self) {
        self.stats.dropped += 1;
    }

    /// When content last arrived in order (or the session started): what
    /// tells a working session from an idle one.
    pub fn last_delivery(&self) -> Instant {
        self.last_delivery
    }

    /// Frees what a session that ended no longer needs.
    fn release_buffers(&mut self) {
        self.buffered = BTreeMap::new();
        self.buffered_bytes = 0;
        self.delivered_stamps = VecDeque::new();
    }

    /// The counters so far.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// The next in-order piece of content, to be written out.
    pub fn poll_data(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// True while content is still coming or being stored.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Receiving | State::Storing)
    }

    /// True when the session can be forgotten.
    pub fn is_finished(&self, now: Instant) -> bool {
        match self.state {
            State::Failed => true,
            State::Closing { since } => now.duration_since(since) >= self.limits.linger,
            _ => false,
        }
    }

    fn fail(&mut self, error: TransferError) {
        self.state = State::Failed;
        self.release_buffers();
        self.events.push_back(ReceiverEvent::Failed(error));
    }

    /// Takes in a datagram of this session.
    pub fn handle_datagram(&mut self, now: Instant, packet: &Packet<'_>) {
        let Ok(repr) = Repr::parse(packet) else {
            self.stats.dropped += 1;
            return;
        };
        self.last_heard = now;
        match (self.state, repr) {
            (State::Receiving, Repr::Hello(_)) if self.expected == 0 => self.send_hello_ack = true,
            (State::Receiving, Repr::Ping) => self.send_ack = true,
            (State::Receiving, Repr::Data { seq, stamp, payload }) => {
                let before = self.expected;
                self.on_data(seq, stamp, payload);
                if self.expected > before {
                    (self.unproductive_since, self.last_delivery) = (None, now);
                } else {
                    self.unproductive_since.get_or_insert(now);
                }
                self.check_announced_size();
                self.try_finish(now);
            }
            (State::Receiving, Repr::Fin { total_bytes, total_blocks, sha256 }) => {
                if self.announced.is_some_and(|size| size != total_bytes) {
                    self.reject(format!(
                        "the sender announced {} bytes and finished after {total_bytes}",
                        self.announced.unwrap_or_default()
                    ));
                    return;
                }
                self.fin = Some((total_bytes, total_blocks, sha256));
                self.try_finish(now);
            }
            (State::Closing { .. }, Repr::Fin { .. }) => self.send_fin_ack = true,
            (State::Closing { .. }, Repr::Data { .. }) => self.send_fin_ack = true,
            (State::Receiving | State::Storing, Repr::Error { message, .. }) => {
                self.fail(TransferError::Aborted(message.to_owned()));
            }
            _ => {}
        }
    }

    fn on_data(&mut self, seq: u32, stamp: u16, payload: &[u8]) {
        self.stats.data_received += 1;
        let window = u64::from(self.window);
        let index = self.space.index(seq, self.expected.saturating_sub(window));
        let stamp = self.unwrap_stamp(stamp);
        let beyond_end = self.fin.is_some_and(|(_, blocks, _)| index >= blocks);
        if payload.len() > usize::from(self.block) || beyond_end {
            self.stats.dropped += 1;
            return;
        }
        let acceptance = match self.protocol {
            Protocol::StopAndWait => stop_and_wait::accept(self.expected, index),
            Protocol::GoBackN => go_back_n::accept(self.expected, index),
            Protocol::SelectiveRepeat => selective_repeat::accept(self.expected, window, index),
        };
        let new = matches!(acceptance, Acceptance::Deliver | Acceptance::Buffer);
        if new && self.is_stale(index, stamp) {
            self.stats.stale += 1;
            return;
        }
        self.echo = Some(Echo { seq, stamp: stamp as u16, fresh: true });
        self.send_ack = true;
        self.data_since_ack += 1;
        // The sender needs to hear at once of a new gap (its evidence of
        // loss) and of a gap filled (its window moves on); the rest can wait
        // for the regular acknowledgement.
        let new_gap =
            acceptance == Acceptance::Buffer && index > self.highest_seen.map_or(self.expected, |h| h + 1);
        let gap_filled = acceptance == Acceptance::Deliver && !self.buffered.is_empty();
        self.urgent_ack |= new_gap || gap_filled;
        self.highest_seen = Some(self.highest_seen.map_or(index, |h| h.max(index)));
        match acceptance {
            Acceptance::Duplicate => self.stats.duplicates += 1,
            Acceptance::Discard => self.stats.discarded += 1,
            Acceptance::Buffer if self.buffered.contains_key(&index) => self.stats.duplicates += 1,
            Acceptance::Buffer if self.buffered_bytes + payload.len() > self.buffer_allowance => {
                // No room: the sender will resend it.
                self.stats.discarded += 1;
            }
            Acceptance::Buffer => {
                self.buffered_bytes += payload.len();
                self.buffered.insert(index, (stamp, payload.to_vec()));
                self.stats.buffered += 1;
            }
            Acceptance::Deliver => {
                self.deliver(stamp, payload.to_vec());
                while let Some((stamp, next)) = self.buffered.remove(&self.expected) {
                    self.buffered_bytes -= next.len();
                    self.deliver(stamp, next);
                }
            }
        }
    }

    /// The full stamp whose low 16 bits are `stamp`: the one nearest the
    /// highest seen.
    fn unwrap_stamp(&mut self, stamp: u16) -> u64 {
        let full = match self.latest_stamp {
            None => u64::from(stamp),
            Some(latest) => {
                let step = i64::from(stamp.wrapping_sub(latest as u16) as i16);
                latest.checked_add_signed(step).unwrap_or(0)
            }
        };
        self.latest_stamp = Some(self.latest_stamp.map_or(full, |l| l.max(full)));
        full
    }

    /// True when a copy of block `index` stamped `stamp` was sent before
    /// the arrived copy of a block that any true copy of it must follow:
    /// then it is an older block whose number came round again (see
    /// [`Receiver`]). Under selective repeat that block is `index - window`:
    /// `index` is first sent once it was acknowledged. Go-Back-N and
    /// stop-and-wait take blocks in order, and resend every block after one
    /// they go back to, so there it is the block just before: an older copy
    /// is either stale or overtaken by a newer one already on its way.
    fn is_stale(&self, index: u64, stamp: u64) -> bool {
        let back = match self.protocol {
            Protocol::SelectiveRepeat => u64::from(self.window),
            Protocol::GoBackN | Protocol::StopAndWait => 1,
        };
        let Some(reference) = index.checked_sub(back) else { return false };
        let first_kept = self.expected - self.delivered_stamps.len() as u64;
        let kept = reference.checked_sub(first_kept).and_then(|i| self.delivered_stamps.get(i as usize));
        kept.is_some_and(|&reference_stamp| stamp <= reference_stamp)
    }

    fn check_announced_size(&mut self) {
        if let Some(size) = self.announced.filter(|&size| self.stats.bytes > size) {
            self.reject(format!("the sender announced {size} bytes and sent more"));
        }
    }

    fn deliver(&mut self, stamp: u64, data: Vec<u8>) {
        self.hasher.update(&data);
        self.stats.bytes += data.len() as u64;
        self.expected += 1;
        self.delivered_stamps.push_back(stamp);
        if self.delivered_stamps.len() > self.window as usize {
            self.delivered_stamps.pop_front();
        }
        self.ready.push_back(data);
    }

    /// Checks the content against the FIN once every block is in.
    fn try_finish(&mut self, now: Instant) {
        let Some((total_bytes, total_blocks, sha256)) = self.fin else { return };
        if self.expected < total_blocks {
            return;
        }
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        if self.expected > total_blocks || self.stats.bytes != total_bytes || digest != sha256 {
            self.fin_ack = Some((
                FinStatus::DigestMismatch,
                "the content's SHA-256 differs from the sender's".to_owned(),
            ));
            self.send_fin_ack = true;
            self.state = State::Closing { since: now };
            self.release_buffers();
            self.events.push_back(ReceiverEvent::Failed(TransferError::DigestMismatch));
            return;
        }
        self.state = State::Storing;
        self.events.push_back(ReceiverEvent::Verified);
    }

    /// Reports whether the verified content was stored.
    pub fn committed(&mut self, now: Instant, result: Result<(), String>) {
        if self.state != State::Storing {
            return;
        }
        self.fin_ack = Some(match &result {
            Ok(()) => (FinStatus::Stored, String::new()),
            Err(e) => (FinStatus::StorageFailed, e.clone()),
        });
        self.send_fin_ack = true;
        self.state = State::Closing { since: now };
        self.release_buffers();
        self.events.push_back(match result {
            Ok(()) => ReceiverEvent::Done,
            Err(e) => ReceiverEvent::Failed(TransferError::Storage(e)),
        });
    }

    /// Gives up because the content cannot be stored; the sender is told.
    pub fn abort(&mut self, message: String) {
        if self.state != State::Failed {
            self.abort = Some(message.clone());
            self.fail(TransferError::Storage(message));
        }
    }

    /// Gives up because the sender broke the protocol; it is told.
    fn reject(&mut self, message: String) {
        if self.state != State::Failed {
            self.abort = Some(message.clone());
            self.fail(TransferError::Protocol(message));
        }
    }

    /// Ends the session at once (the receiver needs its place); the sender is told `why`.
    pub fn evict(&mut self, why: &str) {
        if self.state != State::Failed {
            self.abort = Some(why.to_owned());
            self.fail(TransferError::Aborted(why.to_owned()));
        }
    }
}

/// The window granted to `hello`: within the limits, and small enough that
/// the blocks kept out of order (window x block) stay within
/// [`MAX_SESSION_BUFFER`] whatever the sender asked for.
fn granted_window(hello: &Hello<'_>, limits: ReceiverLimits) -> u32 {
    let block = u32::from(hello.block.min(limits.max_block)).max(1);
    let by_memory = u32::try_from(MAX_SESSION_BUFFER / block as usize).unwrap_or(u32::MAX).max(1);
    hello.window.min(limits.max_window).min(by_memory)
}

/// The ERROR that refuses a HELLO, for `session`.
pub fn refusal(session: u32, message: &str, out: &mut Vec<u8>) {
    Repr::Error { code: ErrorCode::Refused, message }.emit(session, out);
}

#[cfg(test)]
mod tests;
