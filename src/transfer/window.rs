//! The sender's window: the blocks sent but not yet acknowledged, and the
//! ones waiting to be sent, in block order. Its length is capped by the
//! negotiated window, which is what bounds the sender's memory to window x
//! block size whatever the file size.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One block of content and its transmission history.
#[derive(Clone, Debug)]
pub struct Block {
    /// The content.
    pub data: Vec<u8>,
    /// When it was last sent; `None` while it waits for its first send.
    pub last_sent: Option<Instant>,
    /// The window's count of sends at its last send: orders sends made at
    /// the same instant (a batch), which times cannot, and is the stamp that
    /// DATA carries (its low 16 bits).
    pub send_order: u64,
    /// The window's count of sends at its first send.
    pub first_send: u64,
    /// How many times it was sent.
    pub transmissions: u32,
    /// Acknowledged (selective repeat may acknowledge out of order).
    pub acked: bool,
    /// Queued for a resend and not yet resent.
    pub resend_queued: bool,
}

/// The blocks from the lowest unacknowledged one on.
#[derive(Clone, Debug)]
pub struct SendWindow {
    base: u64,
    blocks: VecDeque<Block>,
    limit: usize,
    /// The first block never sent.
    next_unsent: u64,
    /// Sends so far, resends included.
    sends: u64,
}

impl SendWindow {
    /// An empty window holding at most `limit` blocks.
    pub fn new(limit: usize) -> Self {
        SendWindow {
            base: 0,
            blocks: VecDeque::with_capacity(limit.min(1 << 16)),
            limit,
            next_unsent: 0,
            sends: 0,
        }
    }

    /// The lowest block not yet acknowledged (or the next one to come).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// One past the last block taken in.
    pub fn end(&self) -> u64 {
        self.base + self.blocks.len() as u64
    }

    /// One past the highest block ever sent.
    pub fn sent_end(&self) -> u64 {
        self.next_unsent
    }

    /// True when no more blocks fit.
    pub fn is_full(&self) -> bool {
        self.blocks.len() >= self.limit
    }

    /// True when every block taken in was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Takes in the next block; returns its index.
    pub fn push(&mut self, data: Vec<u8>) -> u64 {
        self.blocks.push_back(Block {
            data,
            last_sent: None,
            send_order: 0,
            first_send: 0,
            transmissions: 0,
            acked: false,
            resend_queued: false,
        });
        self.end() - 1
    }

    /// The block at `index`, if it is in the window.
    pub fn get(&self, index: u64) -> Option<&Block> {
        self.blocks.get(usize::try_from(index.checked_sub(self.base)?).ok()?)
    }

    /// The block at `index`, if it is in the window.
    pub fn get_mut(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks.get_mut(usize::try_from(index.checked_sub(self.base)?).ok()?)
    }

    /// Sends so far, resends included: the stamp of the latest send.
    pub fn sends(&self) -> u64 {
        self.sends
    }

    /// The first block in the window not yet sent by the send numbered
    /// `stamp`: what an acknowledgement echoing that send can vouch for
    /// stops before it.
    pub fn first_sent_after(&self, stamp: u64) -> u64 {
        // First sends go in block order, so the blocks sent by then are a prefix.
        self.base + self.blocks.partition_point(|b| b.transmissions > 0 && b.first_send <= stamp) as u64
    }

    /// The next block never sent, if any.
    pub fn next_unsent(&self) -> Option<u64> {
        (self.next_unsent < self.end()).then_some(self.next_unsent)
    }

    /// Records a send of block `index` at `now`.
    pub fn mark_sent(&mut self, index: u64, now: Instant) {
        self.sends += 1;
        let order = self.sends;
        if let Some(block) = self.get_mut(index) {
            block.last_sent = Some(now);
            block.send_order = order;
            if block.transmissions == 0 {
                block.first_send = order;
            }
            block.transmissions += 1;
            block.resend_queued = false;
        }
        self.next_unsent = self.next_unsent.max(index + 1);
    }

    /// Acknowledges every block below `cumulative`, sliding the window;
    /// returns how many blocks left it.
    pub fn ack_below(&mut self, cumulative: u64) -> u64 {
        let before = self.base;
        while self.base < cumulative.min(self.next_unsent) && self.blocks.pop_front().is_some() {
            self.base += 1;
        }
        self.base - before
    }

    /// Acknowledges one block out of order; true when it was not acknowledged before.
    pub fn ack_one(&mut self, index: u64) -> bool {
        if index >= self.next_unsent {
            return false;
        }
        match self.get_mut(index) {
            Some(block) if !block.acked => {
                block.acked = true;
                true
            }
            _ => false,
        }
    }

    /// The sent, unacknowledged blocks with their indices, lowest first.
    pub fn in_flight(&self) -> impl Iterator<Item = (u64, &Block)> {
        (self.base..).zip(&self.blocks).filter(|(_, b)| b.last_sent.is_some() && !b.acked)
    }

    /// When the earliest sent, unacknowledged block times out with `rto`.
    pub fn next_timeout(&self, rto: Duration) -> Option<Instant> {
        self.in_flight().filter_map(|(_, b)| b.last_sent).min().map(|sent| sent + rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_on_cumulative_acks() {
        let t0 = Instant::now();
        let mut w = SendWindow::new(3);
        for i in 0..3u8 {
            w.push(vec![i]);
        }
        assert!(w.is_full());
        w.mark_sent(0, t0);
        w.mark_sent(1, t0);
        w.mark_sent(1, t0 + Duration::from_millis(5));
        assert_eq!(w.get(1).map(|b| b.transmissions), Some(2));
        assert_eq!(w.next_unsent(), Some(2));
        assert_eq!(w.ack_below(2), 2);
        assert_eq!((w.base(), w.end()), (2, 3));
        assert!(!w.is_full());
        assert_eq!(w.ack_below(3), 0, "block 2 was never sent, so it cannot be acknowledged");
        assert_eq!(w.base(), 2);
    }

    #[test]
    fn selective_acks_leave_holes_until_the_cumulative_point_passes() {
        let t0 = Instant::now();
        let mut w = SendWindow::new(8);
        for i in 0..4u8 {
            let index = w.push(vec![i]);
            w.mark_sent(index, t0);
        }
        assert!(w.ack_one(2));
        assert!(!w.ack_one(2), "acknowledged once only");
        assert!(!w.ack_one(9), "never sent");
        let in_flight: Vec<u64> = w.in_flight().map(|(i, _)| i).collect();
        assert_eq!(in_flight, [0, 1, 3]);
        assert_eq!(w.next_timeout(Duration::from_millis(3)), Some(t0 + Duration::from_millis(3)));
        assert_eq!((w.first_sent_after(0), w.first_sent_after(2), w.first_sent_after(9)), (0, 2, 4));
        w.ack_below(4);
        assert!(w.is_empty());
        assert_eq!(w.next_timeout(Duration::from_millis(3)), None);
    }
}
