//! Selective repeat: up to W blocks in flight (W <= 2^(bits-1)), a receiver
//! that keeps blocks out of order within its window, and acknowledgements
//! that list what arrived beyond the cumulative point (SACK ranges). The
//! sender resends only what is missing: a block whose own timer fired, or
//! one that a later send overtook (fast retransmit on evidence of loss
//! instead of a wait for the timeout). The evidence is by time, as in RACK
//! (RFC 8985): once a send is known to have arrived after a round trip of
//! R, every block sent before it and still unacknowledged R plus a small
//! reordering allowance after its own send is lost. Judging a resent block
//! by its resend is what catches a lost resend too, without waiting for the
//! timeout; ordering sends by count, not time, is what judges the sends of
//! one batch, which leave at the same instant.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Acceptance;
use super::go_back_n::queue;
use super::window::SendWindow;

/// The largest window `bits`-bit sequence numbers allow: the receiver's
/// window and the sender's may be a whole window apart, so together they
/// must fit in the number space without overlap.
pub fn max_window(bits: u8) -> u64 {
    1u64 << (bits - 1)
}

/// When the timer of the oldest block in flight fired (`rto` since its
/// last send), queues that block alone; true when it fired. Resending every
/// block whose timer ran out would resend the many that were only queued
/// behind a burst; once this one is acknowledged, the time-based evidence
/// of the next acknowledgements (the sender's RACK check) finds the ones truly lost.
pub fn on_timeout(window: &mut SendWindow, now: Instant, rto: Duration, resend: &mut VecDeque<u64>) -> bool {
    let oldest = window.in_flight().filter_map(|(i, b)| Some((b.last_sent?, i))).min();
    match oldest {
        Some((sent, index)) if sent + rto <= now => {
            queue(window, index, resend);
            true
        }
        _ => false,
    }
}

/// The latest send known to have arrived, and its round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its place among all sends.
    pub order: u64,
    /// How long it took to be acknowledged.
    pub rtt: Duration,
}

/// Queues each block below `horizon` (what the last ACK reported on) that
/// was sent before `newest` and has been out longer than `newest`'s round
/// trip plus `reorder_window`; returns how many it queued, and when the
/// next of the others will have been out that long.
pub fn detect_losses(
    window: &mut SendWindow,
    resend: &mut VecDeque<u64>,
    horizon: u64,
    newest: Delivered,
    reorder_window: Duration,
    now: Instant,
) -> (usize, Option<Instant>) {
    let mut lost = Vec::new();
    let mut next = None::<Instant>;
    for (index, block) in window.in_flight().take_while(|(i, _)| *i < horizon) {
        let Some(sent) = block.last_sent.filter(|_| block.send_order < newest.order && !block.resend_queued)
        else {
            continue;
        };
        let deadline = sent + newest.rtt + reorder_window;
        if deadline <= now {
            lost.push(index);
        } else {
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
    }
    for &index in &lost {
        queue(window, index, resend);
    }
    (lost.len(), next)
}

/// Queues the oldest block in flight for a tail probe; true when there was one.
pub fn probe(window: &mut SendWindow, resend: &mut VecDeque<u64>) -> bool {
    let Some(oldest) = window.in_flight().map(|(i, _)| i).next() else { return false };
    queue(window, oldest, resend);
    true
}

/// The receiver keeps any block within its window of `window` blocks from
/// the next one expected.
pub fn accept(expected: u64, window: u64, index: u64) -> Acceptance {
    if index < expected {
        Acceptance::Duplicate
    } else if index == expected {
        Acceptance::Deliver
    } else if index < expected + window {
        Acceptance::Buffer
    } else {
        Acceptance::Discard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_window(count: u8, t0: Instant) -> SendWindow {
        let mut w = SendWindow::new(16);
        for i in 0..count {
            let index = w.push(vec![i]);
            w.mark_sent(index, t0);
        }
        w
    }

    #[test]
    fn a_timeout_resends_the_oldest_send_only() {
        let t0 = Instant::now();
        let mut w = sent_window(3, t0);
        w.mark_sent(0, t0 + Duration::from_millis(5));
        let mut resend = VecDeque::new();
        let rto = Duration::from_millis(10);
        assert!(!on_timeout(&mut w, t0 + Duration::from_millis(9), rto, &mut resend));
        assert!(on_timeout(&mut w, t0 + rto, rto, &mut resend));
        assert_eq!(resend, [1], "block 0 was resent later; block 2 waits for evidence");
    }

    #[test]
    fn a_block_sent_before_one_that_arrived_is_lost_once_it_is_overdue() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = SendWindow::new(16);
        for i in 0..4u8 {
            let index = w.push(vec![i]);
            w.mark_sent(index, t0);
        }
        let mut resend = VecDeque::new();
        // Block 2 (the third send) arrived after 5 ms.
        w.ack_one(2);
        let newest = Delivered { order: w.get(2).unwrap().send_order, rtt: ms(5) };
        let (lost, next) = detect_losses(&mut w, &mut resend, 4, newest, ms(1), t0 + ms(5));
        assert_eq!((lost, next), (0, Some(t0 + ms(6))), "within the reordering allowance: wait");
        let (lost, next) = detect_losses(&mut w, &mut resend, 4, newest, ms(1), t0 + ms(6));
        assert_eq!((lost, next), (2, None));
        assert_eq!(resend, [0, 1], "sent before block 2 in the same batch; block 3 was sent after it");
        resend.clear();
        // The resend of block 0 is judged by its own send.
        w.mark_sent(0, t0 + ms(10));
        w.mark_sent(3, t0 + ms(10));
        w.ack_one(3);
        let newest = Delivered { order: w.get(3).unwrap().send_order, rtt: ms(2) };
        let (lost, _) = detect_losses(&mut w, &mut resend, 4, newest, ms(0), t0 + ms(12));
        assert_eq!(lost, 1, "the resend of block 0 went before block 3's and is overdue");
        assert_eq!(resend, [0]);
        resend.clear();
        w.mark_sent(0, t0 + ms(20));
        let (lost, _) = detect_losses(&mut w, &mut resend, 1, newest, ms(0), t0 + ms(30));
        assert_eq!(lost, 0, "block 0's latest send came after the newest delivered one");
    }

    #[test]
    fn the_receiver_buffers_within_its_window() {
        assert_eq!(accept(10, 4, 9), Acceptance::Duplicate);
        assert_eq!(accept(10, 4, 10), Acceptance::Deliver);
        assert_eq!(accept(10, 4, 13), Acceptance::Buffer);
        assert_eq!(accept(10, 4, 14), Acceptance::Discard);
        assert_eq!(max_window(16), 32_768);
    }
}
