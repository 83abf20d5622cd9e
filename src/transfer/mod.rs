//! Reliable file transfer over UDP with three ARQ protocols: stop-and-wait,
//! Go-Back-N and selective repeat.
//!
//! - [`packet`] (pure): the datagrams, checksummed with CRC-32C; [`name`]
//!   (pure): which file names from the network are taken.
//! - [`seq`], [`rtt`](crate::rtt), [`window`] (pure): sequence numbers that wrap, the
//!   RFC 6298 timeout, the sender's window.
//! - [`stop_and_wait`], [`go_back_n`], [`selective_repeat`] (pure): what
//!   makes each protocol itself: its window limit, what it resends on a
//!   timeout, what its receiver keeps.
//! - [`sender`], [`receiver`] (sans-IO engines): the two ends of a session,
//!   driven with time passed in; the simulation tests run them in virtual
//!   time through [`crate::impair::Link`]s.
//! - [`endpoint`] (sans-IO): the receiver's session table: who is admitted
//!   (an address check and caps), the memory they share, what they say.
//! - [`session`]: the receiver's file side (safe names, a file without a
//!   name until verified); [`driver`]: the only code that touches sockets.

pub mod driver;
pub mod endpoint;
pub mod go_back_n;
pub mod name;
pub mod packet;
pub mod receiver;
pub mod selective_repeat;
pub mod sender;
pub mod seq;
pub mod session;
pub mod stop_and_wait;
pub mod window;

#[cfg(test)]
mod sim;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::units::TimeSpan;

pub use receiver::{Receiver, ReceiverEvent, ReceiverLimits, ReceiverStats};
pub use sender::{Sender, SenderConfig, SenderEvent, SenderStats};

/// The default port of `transfer recv`.
pub const DEFAULT_PORT: u16 = 6969;

/// The retransmission timeout before any round trip was measured. RFC 6298
/// says 1 s, for paths whose round trip nobody knows; loopback and local
/// networks answer in microseconds, and a lost HELLO should not cost a
/// second, nor 100 ms: at 30% loss a 50 MB transfer through `impair` spent
/// half its 0.6 s waiting out 100 + 200 ms of HELLO backoff. A longer path
/// only sees its first HELLOs sent a few times (25, 50, 100 ms apart).
pub const INITIAL_RTO: Duration = Duration::from_millis(25);

/// `duration`, cut to [`TimeSpan::MAX`]: the engines take their timeouts
/// through this, so no deadline they compute (now plus a timeout, doubled
/// by backoff at most to its cap) can overflow an `Instant`, whatever a
/// caller of the library passes.
fn bounded(duration: Duration) -> Duration {
    TimeSpan::saturating(duration).get()
}

/// How long a transfer may go without progress (no new block through)
/// while both sides still answer, before it is given up.
pub const DEFAULT_PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest retransmission timeout, backoff included, for a peer given
/// up after `peer_timeout` of silence: a twentieth of it, within 200 ms to
/// 2 s. Losses on a bursty path come in runs of datagrams, not of time, so
/// waiting longer between tries does not get through a burst sooner; a cap
/// this low leaves room for a dozen tries in a row before the peer is
/// given up, which is what lets stop-and-wait cross a burst of losses.
pub fn max_rto(peer_timeout: Duration) -> Duration {
    (peer_timeout / 20).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// An ARQ protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// One block in flight; see [`stop_and_wait`].
    StopAndWait = 1,
    /// A window, cumulative acknowledgements; see [`go_back_n`].
    GoBackN = 2,
    /// A window, selective acknowledgements; see [`selective_repeat`].
    SelectiveRepeat = 3,
}

impl Protocol {
    /// Every protocol, simplest first.
    pub const ALL: [Protocol; 3] = [Protocol::StopAndWait, Protocol::GoBackN, Protocol::SelectiveRepeat];

    fn from_u8(v: u8) -> Option<Self> {
        Protocol::ALL.into_iter().find(|p| *p as u8 == v)
    }

    /// The largest window `bits`-bit sequence numbers allow this protocol.
    pub fn max_window(self, bits: u8) -> u64 {
        match self {
            Protocol::StopAndWait => stop_and_wait::max_window(bits),
            Protocol::GoBackN => go_back_n::max_window(bits),
            Protocol::SelectiveRepeat => selective_repeat::max_window(bits),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`, so tables can align it with `{:<17}`.
        f.pad(match self {
            Protocol::StopAndWait => "stop-and-wait",
            Protocol::GoBackN => "go-back-n",
            Protocol::SelectiveRepeat => "selective-repeat",
        })
    }
}

/// What a receiver does with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// The next block in order: deliver it.
    Deliver,
    /// Beyond the next one but within the window: keep it for later.
    Buffer,
    /// Already delivered: acknowledge again, drop.
    Duplicate,
    /// Not wanted now: drop (the sender resends it).
    Discard,
}

/// Why a transfer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The settings make no sense (a window too large for the protocol).
    #[error("{0}")]
    Config(String),
    /// The receiver refused the file.
    #[error("the receiver refused the file: {0}")]
    Refused(String),
    /// The other side stopped answering.
    #[error("the other side has not answered for {}; giving up", humantime::format_duration(*.0))]
    PeerSilent(Duration),
    /// Both sides kept talking but no block got through (they disagree on
    /// what was received, or the path loses nearly everything).
    #[error("no progress for {}: the other side answers but no block gets through; giving up", humantime::format_duration(*.0))]
    Stalled(Duration),
    /// The content did not arrive intact.
    #[error("the content's SHA-256 does not match the sender's; nothing was stored")]
    DigestMismatch,
    /// The receiver could not store the content.
    #[error("the receiver could not store the file: {0}")]
    Storage(String),
    /// The other side broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The other side gave up.
    #[error("the other side gave up: {0}")]
    Aborted(String),
}
