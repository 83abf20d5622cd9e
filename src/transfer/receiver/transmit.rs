//! What the receiver puts on the wire next: HELLO-ACK, ACK, FIN-ACK or ERROR.

use super::{ACK_EVERY, Receiver};
use crate::transfer::packet::{ErrorCode, MAX_SACK_RANGES, Repr};

impl Receiver {
    /// True when an ACK should go now rather than at the end of the batch
    /// being received: every [`ACK_EVERY`] blocks, and at once when a gap
    /// opened (the sender's evidence of loss) or closed.
    pub fn wants_ack_now(&self) -> bool {
        self.send_ack && (self.urgent_ack || self.data_since_ack >= ACK_EVERY)
    }

    /// Writes the next datagram to send into `out`; false when there is none.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(message) = self.abort.take() {
            Repr::Error { code: ErrorCode::Aborted, message: &message }.emit(self.session, out);
        } else if std::mem::take(&mut self.send_hello_ack) {
            let timeout_ms = u32::try_from(self.limits.peer_timeout.as_millis()).unwrap_or(u32::MAX);
            Repr::HelloAck { window: self.window, block: self.block, timeout_ms }.emit(self.session, out);
        } else if std::mem::take(&mut self.send_ack) {
            let sack = self.sack_ranges();
            let echo = self.echo;
            if let Some(echo) = &mut self.echo {
                echo.fresh = false;
            }
            (self.data_since_ack, self.urgent_ack) = (0, false);
            Repr::Ack { cumulative: self.space.wire(self.expected), echo, sack }.emit(self.session, out);
            self.stats.acks_sent += 1;
        } else if std::mem::take(&mut self.send_fin_ack) {
            let Some((status, message)) = &self.fin_ack else { return false };
            Repr::FinAck { status: *status, message }.emit(self.session, out);
        } else {
            return false;
        }
        true
    }

    /// The runs of blocks kept beyond the cumulative point, lowest first.
    fn sack_ranges(&self) -> Vec<(u32, u32)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &index in self.buffered.keys() {
            let full = ranges.len() == MAX_SACK_RANGES;
            match ranges.last_mut() {
                Some((_, end)) if *end == index => *end += 1,
                _ if full => break,
                _ => ranges.push((index, index + 1)),
            }
        }
        ranges.into_iter().map(|(first, end)| (self.space.wire(first), self.space.wire(end))).collect()
    }
}
