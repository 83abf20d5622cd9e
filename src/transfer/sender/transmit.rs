//! What the sender puts on the wire next: HELLO, DATA, PING or FIN.

use std::time::Instant;

use sha2::Digest;

use super::{Sender, State};
use crate::transfer::packet::{Hello, Repr};

impl Sender {
    /// Writes the next datagram to send into `out`; false when there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let sent = match self.state {
            State::Connecting => self.control_due(now) && self.emit_hello(out),
            State::Transferring | State::Finishing => {
                self.emit_data(now, out) || self.emit_fin(now, out) || self.emit_ping(now, out)
            }
            State::Closed => false,
        };
        if sent {
            self.stats.datagrams_sent += 1;
            self.last_sent = now;
        }
        sent
    }

    /// True when a HELLO or FIN should go now (first time, or its timer
    /// fired), recording the send.
    fn control_due(&mut self, now: Instant) -> bool {
        let due = self.control_sent.is_none() || self.control_resend;
        if due {
            let count = self.control_sent.map_or(0, |(_, n)| n);
            self.control_sent = Some((now, count + 1));
            self.control_resend = false;
        }
        due
    }

    fn emit_hello(&self, out: &mut Vec<u8>) -> bool {
        let c = &self.config;
        let hello = Hello {
            protocol: c.protocol,
            seq_bits: c.seq_bits,
            window: c.window,
            block: c.block,
            size: c.size,
            name: &c.name,
            token: &self.token,
        };
        Repr::Hello(hello).emit(c.session, out);
        true
    }

    fn emit_data(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let (index, resent) = loop {
            match self.resend.pop_front() {
                Some(index) if self.window.get(index).is_some_and(|b| !b.acked) => break (index, true),
                Some(_) => continue,
                None => match self.window.next_unsent() {
                    Some(index) => break (index, false),
                    None => return false,
                },
            }
        };
        if self.window.base() == self.window.sent_end() {
            // Nothing was outstanding: the wait for progress starts now.
            self.last_progress = now;
        }
        let Some(block) = self.window.get(index) else { return false };
        // The count of this send, as `mark_sent` is about to record it.
        let stamp = (self.window.sends() + 1) as u16;
        Repr::Data { seq: self.space.wire(index), stamp, payload: &block.data }
            .emit(self.config.session, out);
        self.window.mark_sent(index, now);
        self.stats.data_sent += 1;
        self.stats.retransmitted += u64::from(resent);
        true
    }

    /// Keeps the session alive while the input is slow to come.
    fn emit_ping(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let due = self.keepalive.is_some_and(|k| now >= self.last_sent + k);
        if due {
            Repr::Ping.emit(self.config.session, out);
        }
        due
    }

    fn emit_fin(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.input_ended || !self.window.is_empty() {
            return false;
        }
        if self.state == State::Transferring {
            self.state = State::Finishing;
            self.control_sent = None;
            self.control_resend = false;
        }
        if !self.control_due(now) {
            return false;
        }
        let sha256 = self.hasher.clone().finalize().into();
        let fin = Repr::Fin { total_bytes: self.stats.bytes_in, total_blocks: self.window.base(), sha256 };
        fin.emit(self.config.session, out);
        true
    }
}
