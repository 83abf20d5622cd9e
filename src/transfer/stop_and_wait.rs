//! Stop-and-wait: one block in flight; the sender waits for each block's
//! acknowledgement before it sends the next, so its goodput is capped at one
//! block per round trip whatever the link's speed. It is Go-Back-N with a
//! window of one, and shares Go-Back-N's rules.
//!
//! With one-bit sequence numbers (`--seq-bits 1`) it is the classic
//! alternating-bit protocol, which is correct only on links that keep order:
//! a copy of block k held back long enough passes for block k+2, and the
//! final SHA-256 check is what catches it. The default is 16 bits, as in
//! TFTP, which no reordering in practice can fool.

use super::go_back_n;

/// Always one block in flight.
pub fn max_window(_bits: u8) -> u64 {
    1
}

pub use go_back_n::{accept, on_timeout};
