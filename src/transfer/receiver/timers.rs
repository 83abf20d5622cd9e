//! The receiver's clock: when it must next be called, and what is due when it is.

use std::time::Instant;

use super::{Receiver, State};
use crate::transfer::TransferError;

impl Receiver {
    /// Gives up on a silent sender, or on one whose blocks bring nothing new.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Receiving {
            return;
        }
        if now.duration_since(self.last_heard) >= self.limits.peer_timeout {
            self.fail(TransferError::PeerSilent(self.limits.peer_timeout));
        } else if self.stall_deadline().is_some_and(|at| at <= now) {
            let timeout = self.limits.progress_timeout;
            self.abort = Some(format!(
                "the receiver got nothing new for {}; giving up",
                humantime::format_duration(timeout)
            ));
            self.fail(TransferError::Stalled(timeout));
        }
    }

    fn stall_deadline(&self) -> Option<Instant> {
        self.unproductive_since.map(|since| since + self.limits.progress_timeout)
    }

    /// When [`Receiver::handle_timeout`] should next be called (or, once
    /// closing, when [`Receiver::is_finished`] turns true).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Receiving => {
                let silence = self.last_heard + self.limits.peer_timeout;
                Some(self.stall_deadline().map_or(silence, |stall| stall.min(silence)))
            }
            State::Closing { since } => Some(since + self.limits.linger).filter(|&end| end > now),
            State::Storing | State::Failed => None,
        }
    }
}
