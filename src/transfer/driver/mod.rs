//! The only transfer code that touches sockets and files: one plain loop per
//! side, on the crate's one driver skeleton ([`crate::poll`]: a
//! [`DriverThread`](crate::poll::DriverThread) that never dies in silence, a
//! [`Poller`](crate::poll::Poller) kept for the loop's life, deadlines
//! precise to microseconds), that feeds its engine, waits until the engine's
//! deadline, and sends what the engine writes, in batches ([`crate::batch`]).
//! No protocol decision is made here.
//!
//! [`send`] is the sending side; [`TransferServer`] the receiving one.

mod recv;
mod send;

pub use recv::{
    FAULT_ENV, REPORT_QUEUE, ReceiveConfig, ReceiveReport, RunningServer, ServerEvent, StartError,
    TransferServer,
};
pub use send::{DriverError, SendReport, send, spawn_send};

/// Receive rounds per wake-up before the loop sends and checks its timers.
const ROUNDS: usize = 8;

/// Whether to look for datagrams before sleeping. Looking saves a poll when
/// the peer already answered (a sender on one core with its receiver, a
/// stream of blocks); it wastes a system call when it never has (a
/// stop-and-wait receiver, which waits for each block). A saturating count
/// of recent looks learns which side of that this loop is on, and every
/// [`RELOOK`]th round looks anyway so that it can change its mind.
#[derive(Debug)]
struct LookFirst {
    score: u8,
    rounds: u32,
}

/// How often a loop that stopped looking first looks anyway.
const RELOOK: u32 = 16;

impl LookFirst {
    fn new() -> Self {
        LookFirst { score: 2, rounds: 0 }
    }

    fn should_look(&mut self) -> bool {
        self.rounds = self.rounds.wrapping_add(1);
        self.score >= 2 || self.rounds.is_multiple_of(RELOOK)
    }

    fn found(&mut self, anything: bool) {
        self.score = if anything { (self.score + 1).min(3) } else { self.score.saturating_sub(1) };
    }
}
