//! Selective repeat: up to W blocks in flight (W <= 2^(bits-1)), a receiver
//! that keeps blocks out of order within its window, and acknowledgements
//! that list what arrived beyond the cumulative point (SACK ranges). The
//! sender resends only what is missing: a block whose own timer fired, or
//! one that at least [`DUPTHRESH`] later blocks have overtaken (fast
//! retransmit: evidence of loss instead of a wait for the timeout).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Acceptance;
use super::go_back_n::queue;
use super::window::SendWindow;

/// How many acknowledged blocks above a missing one count as its loss:
/// smaller values mistake reordering for loss, larger ones wait longer.
pub const DUPTHRESH: u64 = 3;

/// The largest window `bits`-bit sequence numbers allow: the receiver's
/// window and the sender's may be a whole window apart, so together they
/// must fit in the number space without overlap.
pub fn max_window(bits: u8) -> u64 {
    1u64 << (bits - 1)
}

/// Queues every block in flight whose own timer (`rto` since its last
/// send) fired; true when any did.
pub fn on_timeout(window: &mut SendWindow, now: Instant, rto: Duration, resend: &mut VecDeque<u64>) -> bool {
    let expired: Vec<u64> = window
        .in_flight()
        .filter(|(_, b)| b.last_sent.is_some_and(|sent| sent + rto <= now))
        .map(|(i, _)| i)
        .collect();
    for &index in &expired {
        if let Some(block) = window.get_mut(index) {
            block.fast_retransmitted = false;
        }
        queue(window, index, resend);
    }
    !expired.is_empty()
}

/// After an acknowledgement: queues each block in flight that at least
/// [`DUPTHRESH`] acknowledged blocks have overtaken, once per timeout period.
pub fn on_ack(window: &mut SendWindow, resend: &mut VecDeque<u64>) {
    let highest_acked =
        (window.base()..window.sent_end()).rev().find(|&i| window.get(i).is_some_and(|b| b.acked));
    let Some(highest) = highest_acked else { return };
    let lost: Vec<u64> = window
        .in_flight()
        .filter(|(i, b)| i + DUPTHRESH <= highest && !b.fast_retransmitted && !b.resend_queued)
        .map(|(i, _)| i)
        .collect();
    for index in lost {
        if let Some(block) = window.get_mut(index) {
            block.fast_retransmitted = true;
        }
        queue(window, index, resend);
    }
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
    fn only_expired_blocks_are_resent() {
        let t0 = Instant::now();
        let mut w = sent_window(3, t0);
        w.mark_sent(1, t0 + Duration::from_millis(5));
        w.ack_one(2);
        let mut resend = VecDeque::new();
        assert!(on_timeout(&mut w, t0 + Duration::from_millis(10), Duration::from_millis(10), &mut resend));
        assert_eq!(resend, [0], "block 1 was resent later, block 2 is acknowledged");
    }

    #[test]
    fn a_block_overtaken_by_three_is_resent_at_once_and_only_once() {
        let t0 = Instant::now();
        let mut w = sent_window(6, t0);
        let mut resend = VecDeque::new();
        for i in [1, 2] {
            w.ack_one(i);
        }
        on_ack(&mut w, &mut resend);
        assert!(resend.is_empty(), "two blocks overtook block 0: could be reordering");
        w.ack_one(3);
        on_ack(&mut w, &mut resend);
        assert_eq!(resend, [0]);
        w.mark_sent(0, t0);
        w.ack_one(5);
        on_ack(&mut w, &mut resend);
        assert_eq!(resend, [0], "block 0 is not fast-resent twice; block 4 is only one behind");
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
