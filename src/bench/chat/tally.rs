//! Bookkeeping of a chat load: the senders' windows (how many messages may
//! be in flight) and each receiver's count of what arrived, in which order.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::wire::Stamp;
use crate::stats::{latency_histogram, record};

/// A sender's window: it may send message `seq` only once every message
/// before `seq - size` has reached all of its recipients.
///
/// Each slot counts the recipients of one message in flight; whoever brings
/// the count to the full number frees the slot and moves the window. A
/// recipient gets one sender's messages in order, so messages complete in
/// order too.
#[derive(Debug)]
pub struct Window {
    slots: Box<[AtomicU32]>,
    recipients: u32,
    /// Messages 0..completed have reached everyone.
    completed: AtomicU64,
    moved: Notify,
}

impl Window {
    /// A window of `size` messages, each for `recipients` clients.
    pub fn new(size: usize, recipients: usize) -> Window {
        Window {
            slots: (0..size.max(1)).map(|_| AtomicU32::new(0)).collect(),
            recipients: u32::try_from(recipients).unwrap_or(u32::MAX),
            completed: AtomicU64::new(0),
            moved: Notify::new(),
        }
    }

    /// Records that one recipient got message `seq`.
    pub fn delivered(&self, seq: u64) {
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 >= self.recipients {
            slot.store(0, Ordering::Relaxed);
            self.completed.fetch_max(seq + 1, Ordering::Release);
            self.moved.notify_one();
        }
    }

    /// How many messages from `next` on may be sent now.
    pub fn room(&self, next: u64) -> u64 {
        (self.completed.load(Ordering::Acquire) + self.slots.len() as u64).saturating_sub(next)
    }

    /// Waits until message `next` may be sent, and returns how many may.
    /// Only one task (the sender) may wait.
    pub async fn wait_for_room(&self, next: u64) -> u64 {
        loop {
            match self.room(next) {
                0 => self.moved.notified().await,
                room => return room,
            }
        }
    }
}

/// What one receiving connection saw.
#[derive(Debug)]
pub struct Tally {
    /// The next sequence number expected from each sender.
    next: Vec<u64>,
    /// Messages received from each sender.
    received: Vec<u64>,
    /// Messages received in all.
    pub deliveries: u64,
    /// Messages that were not the next one expected from their sender
    /// (duplicates, reorderings, or the first after a gap).
    pub out_of_order: u64,
    /// Lines that were neither deliveries nor expected notices: unreadable payloads.
    pub garbled: u64,
    /// Errors from the server.
    pub errors: u64,
    /// The first error's text.
    pub first_error: Option<String>,
    /// Of the errors, the server's per-client limits holding the load back.
    pub limited: u64,
    /// Publish-to-receive latency.
    pub latency: Histogram<u64>,
    /// When the last message arrived.
    pub last_delivery: Option<Instant>,
}

impl Tally {
    /// An empty tally for a load with `senders` senders.
    pub fn new(senders: usize) -> Tally {
        Tally {
            next: vec![0; senders],
            received: vec![0; senders],
            deliveries: 0,
            out_of_order: 0,
            garbled: 0,
            errors: 0,
            first_error: None,
            limited: 0,
            latency: latency_histogram(),
            last_delivery: None,
        }
    }

    /// Counts a delivery of `stamp` at `now`, `since_base` after the run's base.
    pub fn delivered(&mut self, stamp: Stamp, now: Instant, since_base: Duration) {
        let Some(next) = self.next.get_mut(stamp.sender) else {
            self.garbled += 1;
            return;
        };
        if stamp.seq != *next {
            self.out_of_order += 1;
        }
        *next = stamp.seq + 1;
        self.received[stamp.sender] += 1;
        self.deliveries += 1;
        self.last_delivery = Some(now);
        record(&mut self.latency, since_base.saturating_sub(Duration::from_nanos(stamp.nanos)), 1);
    }

    /// Counts an error line from the server.
    pub fn error(&mut self, line: &[u8]) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(String::from_utf8_lossy(line).into_owned());
        }
    }

    /// Whether everything each sender sent (`sent`) has arrived, except
    /// from `except` (this connection's own sender, which a chat server does
    /// not echo).
    pub fn complete(&self, sent: &[u64], except: Option<usize>) -> bool {
        self.received.iter().zip(sent).enumerate().all(|(k, (&got, &sent))| Some(k) == except || got >= sent)
    }

    /// Messages from `sent` that never arrived here, but from `except`.
    pub fn missing(&self, sent: &[u64], except: Option<usize>) -> u64 {
        self.received
            .iter()
            .zip(sent)
            .enumerate()
            .filter(|&(k, _)| Some(k) != except)
            .map(|(_, (&got, &sent))| sent.saturating_sub(got))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_moves_when_every_recipient_has_a_message() {
        let window = Window::new(2, 3);
        assert_eq!(window.room(0), 2);
        window.delivered(0);
        window.delivered(0);
        assert_eq!(window.room(2), 0, "one recipient still lacks message 0");
        window.delivered(0);
        assert_eq!(window.room(2), 1);
        // The slot of message 0 is reused by message 2.
        for _ in 0..3 {
            window.delivered(1);
            window.delivered(2);
        }
        assert_eq!(window.room(3), 2);
    }

    #[test]
    fn a_tally_counts_order_gaps_and_duplicates() {
        let mut tally = Tally::new(2);
        let now = Instant::now();
        let at = |sender, seq| Stamp { sender, seq, nanos: 0 };
        for seq in [0, 1, 2] {
            tally.delivered(at(0, seq), now, Duration::from_millis(1));
        }
        tally.delivered(at(1, 0), now, Duration::ZERO);
        assert_eq!((tally.deliveries, tally.out_of_order), (4, 0));
        assert!(tally.complete(&[3, 1], None));
        assert!(!tally.complete(&[4, 1], None));
        assert!(tally.complete(&[3, 9], Some(1)));
        tally.delivered(at(0, 5), now, Duration::ZERO);
        tally.delivered(at(0, 5), now, Duration::ZERO);
        assert_eq!(tally.out_of_order, 2, "a gap and a duplicate");
        assert_eq!(tally.missing(&[7, 1], None), 2);
        tally.delivered(at(9, 0), now, Duration::ZERO);
        assert_eq!(tally.garbled, 1);
        assert_eq!(tally.latency.max(), 1000);
    }
}
