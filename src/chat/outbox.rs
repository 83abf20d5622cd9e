//! A client's outbound queue: bounded in bytes, filled by whoever routes a
//! line to the client, emptied by the client's own task.
//!
//! Lines are `Bytes`, so a message broadcast to a thousand clients is one
//! allocation with a thousand references, not a thousand copies. Pushing never
//! blocks and never touches a socket: a client that cannot keep up overflows
//! its own queue, which is then emptied and marked, and its task disconnects
//! it. Nobody else waits for it.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a queued line costs beyond its bytes: its handle in the queue.
const ENTRY_OVERHEAD: usize = size_of::<Bytes>();

/// Queues above this many entries give their memory back once emptied, so a
/// burst does not leave every idle client holding a large array.
const KEEP_ENTRIES: usize = 64;

/// A bounded queue of lines for one client.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    lines: VecDeque<Bytes>,
    /// The cost of the lines queued plus those taken but not yet written.
    cost: usize,
    overflowed: bool,
}

/// The queue passed its bound: the client reads too slowly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("its outbound queue passed {limit} bytes: it reads too slowly")]
pub struct Overflow {
    /// The bound, in bytes.
    pub limit: usize,
}

impl Outbox {
    /// An empty queue that holds up to `limit` bytes (counting each line's
    /// bytes and a small overhead per line).
    pub fn new(limit: usize) -> Outbox {
        Outbox { state: Mutex::new(State::default()), ready: Notify::new(), limit }
    }

    /// What `line` counts against the bound.
    pub fn cost(line: &Bytes) -> usize {
        line.len() + ENTRY_OVERHEAD
    }

    /// Queues `line`, waking the owner if the queue was empty. If the line
    /// does not fit, the queue overflows instead: it drops everything it
    /// holds, refuses every later line, and wakes the owner to disconnect.
    pub fn push(&self, line: &Bytes) {
        let mut state = self.state.lock();
        if state.overflowed {
            return;
        }
        let cost = state.cost + Outbox::cost(line);
        if cost > self.limit {
            state.overflowed = true;
            state.lines = VecDeque::new();
            state.cost = 0;
        } else {
            state.lines.push_back(line.clone());
            state.cost = cost;
            if state.lines.len() > 1 {
                // The owner was woken for the first line and has not taken it yet.
                return;
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Completes when lines were pushed (or the queue overflowed) since the
    /// last [`Outbox::take`]. Cancel-safe.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves every queued line to the end of `into`. Their cost still counts
    /// against the bound until [`Outbox::written`] says they left.
    ///
    /// # Errors
    /// When the queue overflowed.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Result<(), Overflow> {
        let mut state = self.state.lock();
        if state.overflowed {
            return Err(Overflow { limit: self.limit });
        }
        if into.is_empty() && state.lines.len() <= KEEP_ENTRIES {
            // Swapping keeps both arrays' memory in use, without copying.
            std::mem::swap(into, &mut state.lines);
        } else {
            into.extend(state.lines.drain(..));
            if state.lines.capacity() > KEEP_ENTRIES {
                state.lines = VecDeque::new();
            }
        }
        Ok(())
    }

    /// Frees `cost` from the bound: lines of that cost (see
    /// [`Outbox::cost`]) were written to the socket.
    pub fn written(&self, cost: usize) {
        let mut state = self.state.lock();
        state.cost = state.cost.saturating_sub(cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[tokio::test]
    async fn lines_come_out_in_order_and_wake_the_owner() {
        let outbox = Outbox::new(1024);
        outbox.push(&line("one\n"));
        outbox.push(&line("two\n"));
        outbox.ready().await;
        let mut taken = VecDeque::new();
        outbox.take(&mut taken).unwrap();
        assert_eq!(taken, [line("one\n"), line("two\n")]);
        outbox.push(&line("three\n"));
        outbox.take(&mut taken).unwrap();
        assert_eq!(taken.len(), 3);
    }

    #[test]
    fn a_shared_line_is_not_copied() {
        let outboxes: Vec<_> = (0..3).map(|_| Outbox::new(1024)).collect();
        let shared = line("<alice> hi\n");
        for outbox in &outboxes {
            outbox.push(&shared);
        }
        let mut taken = VecDeque::new();
        outboxes[2].take(&mut taken).unwrap();
        assert_eq!(taken[0].as_ptr(), shared.as_ptr());
    }

    #[test]
    fn overflow_drops_the_queue_and_sticks() {
        let one = line(&"x".repeat(100));
        let limit = 3 * Outbox::cost(&one);
        let outbox = Outbox::new(limit);
        let mut taken = VecDeque::new();
        for _ in 0..3 {
            outbox.push(&one);
        }
        outbox.take(&mut taken).unwrap();
        // Taken but unwritten lines still count: a fourth does not fit.
        outbox.push(&one);
        assert_eq!(outbox.take(&mut taken), Err(Overflow { limit }));
        outbox.written(limit);
        outbox.push(&one);
        assert!(outbox.take(&mut taken).is_err(), "an overflowed queue stays overflowed");
    }

    #[test]
    fn written_lines_make_room() {
        let one = line("hello\n");
        let outbox = Outbox::new(2 * Outbox::cost(&one));
        let mut taken = VecDeque::new();
        for _ in 0..10 {
            outbox.push(&one);
            outbox.take(&mut taken).unwrap();
            let sent = taken.pop_front().unwrap();
            outbox.written(Outbox::cost(&sent));
        }
        assert!(taken.is_empty());
    }
}
