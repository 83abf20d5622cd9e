//! Go-Back-N: up to W blocks in flight (W <= 2^bits - 1), cumulative
//! acknowledgements only, and a receiver that keeps nothing out of order.
//! When the oldest block's timer fires, the sender goes back and resends it
//! and every block sent after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Acceptance;
use super::window::SendWindow;

/// The largest window `bits`-bit sequence numbers allow: with more, a
/// receiver could not tell a new block from an old one with the same number.
pub fn max_window(bits: u8) -> u64 {
    (1u64 << bits) - 1
}

/// If the oldest block in flight has waited `rto` since its last send,
/// queues it and everything sent after it; true when the timer fired.
pub fn on_timeout(window: &mut SendWindow, now: Instant, rto: Duration, resend: &mut VecDeque<u64>) -> bool {
    let Some(oldest_sent) = window.in_flight().next().and_then(|(_, b)| b.last_sent) else {
        return false;
    };
    if oldest_sent + rto > now {
        return false;
    }
    let indices: Vec<u64> = window.in_flight().map(|(i, _)| i).collect();
    for index in indices {
        queue(window, index, resend);
    }
    true
}

/// Queues block `index` for a resend unless it already is.
pub(super) fn queue(window: &mut SendWindow, index: u64, resend: &mut VecDeque<u64>) {
    if let Some(block) = window.get_mut(index).filter(|b| !b.resend_queued && !b.acked) {
        block.resend_queued = true;
        resend.push_back(index);
    }
}

/// The receiver takes exactly the next block in order; anything else is
/// dropped and answered with the cumulative acknowledgement again.
pub fn accept(expected: u64, index: u64) -> Acceptance {
    match index.cmp(&expected) {
        std::cmp::Ordering::Equal => Acceptance::Deliver,
        std::cmp::Ordering::Less => Acceptance::Duplicate,
        std::cmp::Ordering::Greater => Acceptance::Discard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_goes_back_to_the_oldest_block_and_resends_all_after_it() {
        let t0 = Instant::now();
        let mut w = SendWindow::new(4);
        for i in 0..4u8 {
            let index = w.push(vec![i]);
            w.mark_sent(index, t0 + Duration::from_millis(u64::from(i)));
        }
        let mut resend = VecDeque::new();
        let rto = Duration::from_millis(10);
        assert!(!on_timeout(&mut w, t0 + Duration::from_millis(9), rto, &mut resend));
        assert!(on_timeout(&mut w, t0 + rto, rto, &mut resend));
        assert_eq!(resend, [0, 1, 2, 3]);
        assert!(on_timeout(&mut w, t0 + rto, rto, &mut resend));
        assert_eq!(resend.len(), 4, "queued once each");
    }

    #[test]
    fn the_receiver_takes_only_the_next_block() {
        assert_eq!(accept(5, 5), Acceptance::Deliver);
        assert_eq!(accept(5, 4), Acceptance::Duplicate);
        assert_eq!(accept(5, 6), Acceptance::Discard);
        assert_eq!(max_window(3), 7);
    }
}
