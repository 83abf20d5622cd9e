//! The sending engine, sans-IO: content blocks and datagrams in, datagrams,
//! a deadline and events out. The protocol-specific choices (what to resend
//! on a timeout, what counts as evidence of loss) come from the protocol's
//! own module.
//!
//! Call order, as the driver does it: feed blocks with
//! [`Sender::push_block`] while [`Sender::wants_block`] (then
//! [`Sender::end_input`] once); pass every datagram from the receiver to
//! [`Sender::handle_datagram`]; call [`Sender::handle_timeout`] when
//! [`Sender::poll_timeout`] passes; send whatever [`Sender::poll_transmit`]
//! writes until it returns false; read [`Sender::poll_event`] until `None`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::packet::{Echo, ErrorCode, FinStatus, Packet, Repr};
use super::selective_repeat::Delivered;
use super::seq::SeqSpace;
use super::window::{Block, SendWindow};
use super::{Protocol, TransferError, selective_repeat};
use crate::rtt::RttEstimator;

mod timers;
mod transmit;

/// The shortest interval between PINGs.
const MIN_KEEPALIVE: Duration = Duration::from_millis(10);

/// Tail probes before the retransmission timeout takes over.
const MAX_PROBES: u32 = 4;

/// How many tries, at the longest backoff, fit in the receiver's silence timeout.
const BACKOFF_TRIES: u32 = 20;

/// The shortest wait before a tail probe.
const MIN_PROBE_TIMEOUT: Duration = Duration::from_micros(100);

/// How a sender behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// The ARQ protocol.
    pub protocol: Protocol,
    /// Blocks in flight asked for (the receiver may grant fewer).
    pub window: u32,
    /// Bytes per block asked for (the receiver may grant fewer).
    pub block: u16,
    /// Sequence number bits: numbers wrap after 2^bits blocks.
    pub seq_bits: u8,
    /// The session id; random, so that stray datagrams of other sessions are told apart.
    pub session: u32,
    /// The timeout before any round trip was measured.
    pub initial_rto: Duration,
    /// The lowest timeout (loopback wants well under a millisecond).
    pub min_rto: Duration,
    /// The highest timeout, backoff included.
    pub max_rto: Duration,
    /// The receiver is given up for dead after this long without a word.
    pub peer_timeout: Duration,
    /// The transfer is given up after this long without progress (no new
    /// block acknowledged while some are outstanding), even if the
    /// receiver keeps answering.
    pub progress_timeout: Duration,
    /// The file's name, for the receiver.
    pub name: String,
    /// The content's size, when known.
    pub size: Option<u64>,
}

/// What a sender reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// The receiver accepted the session with this window and block size.
    Connected {
        /// Blocks in flight.
        window: u32,
        /// Bytes per block.
        block: u16,
    },
    /// The receiver verified the content and stored it.
    Done,
    /// The transfer failed.
    Failed(TransferError),
}

/// Counters of a sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SenderStats {
    /// Content bytes acknowledged.
    pub bytes_acked: u64,
    /// Content bytes taken in.
    pub bytes_in: u64,
    /// Datagrams sent, all kinds.
    pub datagrams_sent: u64,
    /// DATA datagrams sent, resends included.
    pub data_sent: u64,
    /// DATA datagrams that were resends.
    pub retransmitted: u64,
    /// Resends on evidence of loss rather than a timeout.
    pub fast_retransmits: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Blocks resent as tail probes when the flow went quiet.
    pub tail_probes: u64,
    /// Datagrams received and accepted.
    pub datagrams_received: u64,
    /// Datagrams dropped: corrupt, malformed, or of another session.
    pub dropped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Transferring,
    Finishing,
    Closed,
}

/// One transfer, sending side.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    state: State,
    space: SeqSpace,
    window: SendWindow,
    window_limit: u32,
    block: u16,
    resend: VecDeque<u64>,
    rtt: RttEstimator,
    hasher: Sha256,
    input_ended: bool,
    /// When the HELLO (or the FIN) was last sent, and how often.
    control_sent: Option<(Instant, u32)>,
    /// Its timer fired: send it again now.
    control_resend: bool,
    /// The receiver's RETRY token, sent with every later HELLO.
    token: Vec<u8>,
    last_heard: Instant,
    /// When a block was last acknowledged (or the wait for one began).
    last_progress: Instant,
    /// When anything was last sent, and how long silence may last before a
    /// PING (a quarter of the receiver's timeout; set once connected).
    last_sent: Instant,
    keepalive: Option<Duration>,
    /// The latest send known to have arrived (selective repeat's evidence
    /// of loss for the blocks sent before it), what the last ACK reported
    /// on, and when an overdue block will next be judged lost.
    newest_delivered: Option<Delivered>,
    horizon: u64,
    loss_timer: Option<Instant>,
    /// When an ACK or a DATA last went by, and the tail probes sent since.
    last_activity: Instant,
    probes: u32,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
}

impl Sender {
    /// A sender about to say HELLO. Its timeouts are cut to
    /// [`crate::units::TimeSpan::MAX`].
    ///
    /// # Errors
    /// [`TransferError::Config`] when the window is too large for the
    /// protocol and sequence bits, or a size is zero.
    pub fn new(mut config: SenderConfig, now: Instant) -> Result<Self, TransferError> {
        for timeout in [
            &mut config.initial_rto,
            &mut config.min_rto,
            &mut config.max_rto,
            &mut config.peer_timeout,
            &mut config.progress_timeout,
        ] {
            *timeout = super::bounded(*timeout);
        }
        let space = SeqSpace::new(config.seq_bits).ok_or_else(|| {
            TransferError::Config(format!("sequence bits must be 1 to 32, not {}", config.seq_bits))
        })?;
        let max = config.protocol.max_window(config.seq_bits);
        if config.window == 0 || u64::from(config.window) > max {
            return Err(TransferError::Config(format!(
                "{} with {}-bit sequence numbers allows a window of 1 to {max}, not {}",
                config.protocol, config.seq_bits, config.window
            )));
        }
        if config.block == 0 {
            return Err(TransferError::Config("the block size must be above zero".to_owned()));
        }
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        Ok(Sender {
            state: State::Connecting,
            space,
            window: SendWindow::new(config.window as usize),
            window_limit: config.window,
            block: config.block,
            resend: VecDeque::new(),
            rtt,
            hasher: Sha256::new(),
            input_ended: false,
            control_sent: None,
            control_resend: false,
            token: Vec::new(),
            last_heard: now,
            last_progress: now,
            last_sent: now,
            keepalive: None,
            newest_delivered: None,
            horizon: 0,
            loss_timer: None,
            last_activity: now,
            probes: 0,
            events: VecDeque::new(),
            stats: SenderStats::default(),
            config,
        })
    }

    /// The block size in force (the receiver's choice once connected).
    pub fn block_size(&self) -> usize {
        usize::from(self.block)
    }

    /// True when the engine can take another block now.
    pub fn wants_block(&self) -> bool {
        self.state == State::Transferring && !self.input_ended && !self.window.is_full()
    }

    /// Takes in the next block of content, at most [`Sender::block_size`]
    /// bytes; a shorter one must be the last.
    pub fn push_block(&mut self, data: Vec<u8>) {
        self.hasher.update(&data);
        self.stats.bytes_in += data.len() as u64;
        self.window.push(data);
    }

    /// Says there is no more content.
    pub fn end_input(&mut self) {
        self.input_ended = true;
    }

    /// The round-trip estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// The counters so far.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// True once the transfer is done or failed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn fail(&mut self, error: TransferError) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(SenderEvent::Failed(error));
        }
    }

    /// Takes in a datagram from the receiver.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(packet) = Packet::new_checked(bytes) else {
            self.stats.dropped += 1;
            return;
        };
        let repr = match Repr::parse(&packet) {
            Ok(repr) if packet.session() == self.config.session => repr,
            _ => {
                self.stats.dropped += 1;
                return;
            }
        };
        if matches!(repr, Repr::Hello(_) | Repr::Data { .. } | Repr::Fin { .. } | Repr::Ping) {
            // Only a sender sends these: ours came back, so the other end is
            // no receiver. Waiting would never end, since it keeps answering.
            self.fail(TransferError::Protocol(
                "the other end sends our own datagrams back: is it an echo server rather than `transfer recv`?"
                    .to_owned(),
            ));
            return;
        }
        self.stats.datagrams_received += 1;
        self.last_heard = now;
        match (self.state, repr) {
            (State::Connecting, Repr::Retry { token }) => {
                // Proof of address asked for: the same HELLO again, at once, with the token.
                if let Some((sent, 1)) = self.control_sent {
                    self.rtt.on_sample(now - sent);
                }
                self.token = token.to_vec();
                self.control_sent = None;
                self.control_resend = false;
            }
            (State::Connecting, Repr::HelloAck { window, block, timeout_ms }) => {
                let patience = Duration::from_millis(timeout_ms.into());
                self.keepalive = Some((patience / 4).max(MIN_KEEPALIVE));
                // The receiver gives up after `patience` of silence: try
                // often enough within it that a burst of losses is crossed.
                self.rtt.set_backoff_cap(patience / BACKOFF_TRIES);
                self.connected(now, window, block);
            }
            (State::Transferring | State::Finishing, Repr::Ack { cumulative, echo, sack }) => {
                self.on_ack(now, cumulative, echo, &sack);
            }
            (State::Finishing, Repr::FinAck { status, message }) => {
                self.state = State::Closed;
                self.last_progress = now;
                self.events.push_back(match status {
                    FinStatus::Stored => SenderEvent::Done,
                    FinStatus::DigestMismatch => SenderEvent::Failed(TransferError::DigestMismatch),
                    FinStatus::StorageFailed => {
                        SenderEvent::Failed(TransferError::Storage(message.to_owned()))
                    }
                });
            }
            (_, Repr::Error { code, message }) => self.fail(match code {
                ErrorCode::Refused => TransferError::Refused(message.to_owned()),
                ErrorCode::Protocol => TransferError::Protocol(message.to_owned()),
                ErrorCode::Aborted => TransferError::Aborted(message.to_owned()),
            }),
            // Late or duplicate answers (a second HELLO-ACK, an ACK after the FIN-ACK).
            _ => {}
        }
    }

    fn connected(&mut self, now: Instant, window: u32, block: u16) {
        if window == 0 || window > self.window_limit || block == 0 || block > self.block {
            self.fail(TransferError::Protocol(format!(
                "the receiver granted window {window}, block {block}"
            )));
            return;
        }
        if let Some((sent, 1)) = self.control_sent {
            self.rtt.on_sample(now - sent);
        }
        self.control_sent = None;
        self.window = SendWindow::new(window as usize);
        self.window_limit = window;
        self.block = block;
        self.state = State::Transferring;
        self.last_progress = now;
        self.events.push_back(SenderEvent::Connected { window, block });
    }

    fn on_ack(&mut self, now: Instant, cumulative: u32, echo: Option<Echo>, sack: &[(u32, u32)]) {
        let base = self.window.base();
        let cumulative = self.space.index(cumulative, base);
        if cumulative > self.window.sent_end() {
            return; // Not something we sent: a stale ACK from before a wrap.
        }
        // An ACK can only know of blocks first sent before the DATA it
        // echoes (the latest it got). One delayed while small sequence
        // numbers wrapped claims blocks sent after it was written: its
        // claims are ignored, never cut down to what it could know, since
        // the cut would still acknowledge blocks it never saw.
        let echoed = echo.and_then(|e| self.unwrap_stamp(e.stamp).map(|stamp| (e, stamp)));
        let vouched = echoed.map_or(base, |(_, stamp)| self.window.first_sent_after(stamp));
        let cumulative = if cumulative <= vouched { cumulative.max(base) } else { base };
        let echoed_block =
            echoed.filter(|(e, _)| e.fresh).and_then(|(e, stamp)| self.echoed_block(e.seq, stamp)).cloned();
        if let Some(sent) = echoed_block.as_ref().and_then(|b| b.last_sent) {
            self.rtt.on_sample(now - sent);
        }
        let mut acked: Vec<u64> = (base..cumulative).collect();
        let mut horizon = cumulative;
        if self.config.protocol == Protocol::SelectiveRepeat {
            for &(first, end) in sack {
                let first = self.space.index(first, base);
                let end = (self.space.index(end.wrapping_sub(1), first) + 1).min(self.window.sent_end());
                if end <= vouched {
                    acked.extend(first..end);
                    horizon = horizon.max(end);
                }
            }
        }
        // Which sends surely arrived: blocks sent once, and the echoed send.
        let surely = |b: &Block| b.transmissions == 1 && !b.acked;
        let delivered = acked
            .iter()
            .filter_map(|&i| self.window.get(i).filter(|b| surely(b)))
            .chain(echoed_block.as_ref())
            .filter_map(|b| b.last_sent.map(|sent| Delivered { order: b.send_order, rtt: now - sent }))
            .max_by_key(|d| d.order);
        if delivered.is_some_and(|d| self.newest_delivered.is_none_or(|n| d.order > n.order)) {
            self.newest_delivered = delivered;
        }
        (self.last_activity, self.probes) = (now, 0);
        let mut progress = self.window.ack_below(cumulative);
        if self.config.protocol == Protocol::SelectiveRepeat {
            for &index in acked.iter().filter(|&&i| i >= cumulative) {
                progress += u64::from(self.window.ack_one(index));
            }
            self.horizon = horizon;
            self.detect_losses(now);
        }
        if progress > 0 {
            self.rtt.on_progress();
            self.last_progress = now;
        }
        let newly_acked = self.window.base() - base;
        self.stats.bytes_acked += newly_acked * u64::from(self.block);
        self.stats.bytes_acked = self.stats.bytes_acked.min(self.stats.bytes_in);
    }

    /// The full count of the send whose stamp (its low 16 bits) an ACK
    /// echoes: the latest send with those bits; `None` before that many sends.
    fn unwrap_stamp(&self, stamp: u16) -> Option<u64> {
        let sends = self.window.sends();
        sends.checked_sub(u64::from((sends as u16).wrapping_sub(stamp)))
    }

    /// The block whose send an ACK's echo names, if that send is the
    /// block's latest (whose time is kept): unambiguous even for a resent
    /// block, which is what lets Karn's rule and resends live together.
    fn echoed_block(&self, seq: u32, stamp: u64) -> Option<&Block> {
        let index = self.space.index(seq, self.window.base());
        self.window.get(index).filter(|b| b.send_order == stamp)
    }

    /// Selective repeat: queues the blocks the newest delivered send proves
    /// lost, and arms the timer for the ones not yet overdue.
    fn detect_losses(&mut self, now: Instant) {
        let Some(newest) = self.newest_delivered else { return };
        // Reordering shorter than a quarter of the fastest round trip is not loss (RFC 8985).
        let allowance = self.rtt.min_rtt().unwrap_or_default() / 4;
        let (lost, next) = selective_repeat::detect_losses(
            &mut self.window,
            &mut self.resend,
            self.horizon,
            newest,
            allowance,
            now,
        );
        self.stats.fast_retransmits += lost as u64;
        self.loss_timer = next;
    }
}
