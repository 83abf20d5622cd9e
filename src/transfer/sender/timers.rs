//! The sender's clock: when it must next be called, and what is due when it is.

use std::time::Instant;

use super::{MAX_PROBES, MIN_PROBE_TIMEOUT, Sender, State};
use crate::transfer::{Protocol, TransferError, go_back_n, selective_repeat};

impl Sender {
    /// Fires due timers: resends, and gives up on a silent receiver.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now.duration_since(self.last_heard) >= self.config.peer_timeout {
            self.fail(TransferError::PeerSilent(self.config.peer_timeout));
            return;
        }
        if self.progress_deadline().is_some_and(|at| at <= now) {
            self.fail(TransferError::Stalled(self.config.progress_timeout));
            return;
        }
        let rto = self.rtt.rto();
        let fired = match self.config.protocol {
            Protocol::StopAndWait | Protocol::GoBackN => {
                go_back_n::on_timeout(&mut self.window, now, rto, &mut self.resend)
            }
            Protocol::SelectiveRepeat => {
                selective_repeat::on_timeout(&mut self.window, now, rto, &mut self.resend)
            }
        };
        if self.loss_timer.is_some_and(|at| at <= now) {
            self.detect_losses(now);
        }
        let control_due = self.control_sent.is_some_and(|(sent, _)| sent + rto <= now);
        self.control_resend |= control_due;
        if fired || control_due {
            self.stats.timeouts += 1;
            self.rtt.on_timeout();
        } else if self.probe_deadline().is_some_and(|at| at <= now) {
            self.probes += 1;
            self.last_activity = now;
            self.stats.tail_probes += u64::from(selective_repeat::probe(&mut self.window, &mut self.resend));
        }
    }

    /// When selective repeat sends a tail probe: the flow has gone quiet for
    /// two smoothed round trips with blocks still in flight, which under
    /// loss usually means the last resends were lost and nothing sent later
    /// can reveal it. A probe costs one block; waiting costs a whole timeout
    /// (RFC 8985's tail loss probe, resending the oldest block since that is
    /// what holds the window).
    fn probe_deadline(&self) -> Option<Instant> {
        let waiting = self.config.protocol == Protocol::SelectiveRepeat
            && self.state == State::Transferring
            && self.probes < MAX_PROBES
            && self.window.in_flight().next().is_some();
        let rto = self.rtt.rto();
        let pto = self.rtt.srtt().map_or(rto, |srtt| (srtt * 2).max(MIN_PROBE_TIMEOUT)).min(rto);
        waiting.then(|| self.last_activity + pto)
    }

    /// When the transfer is given up for lack of progress: only while
    /// something is outstanding (not while the input is slow to come).
    fn progress_deadline(&self) -> Option<Instant> {
        let waiting = match self.state {
            State::Connecting | State::Finishing => true,
            State::Transferring => self.window.base() < self.window.sent_end(),
            State::Closed => false,
        };
        waiting.then(|| self.last_progress + self.config.progress_timeout)
    }

    /// When [`Sender::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let rto = self.rtt.rto();
        let silence = self.last_heard + self.config.peer_timeout;
        let retransmit = match self.state {
            State::Connecting | State::Finishing => self.control_sent.map(|(sent, _)| sent + rto),
            _ => self.window.next_timeout(rto),
        };
        let ping = self.keepalive.map(|k| self.last_sent + k);
        [Some(silence), retransmit, ping, self.probe_deadline(), self.loss_timer, self.progress_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}
