//! Who holds the control socket's connections, and who gives way: a fixed
//! number of seats, where a connection that has not shown it is the
//! owner's (the token over TCP, the same user over a Unix socket) gives its
//! seat to a newcomer first, then the one idle longest. Sixteen idle
//! connections from a stranger can then never lock the owner out.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// One connection's seat.
#[derive(Debug)]
struct Seat {
    id: u64,
    owner: bool,
    last_active: Instant,
    evict: Arc<Notify>,
}

/// The seats of one control socket; cheap to clone.
#[derive(Clone, Debug)]
pub struct Seats {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    next_id: u64,
    seats: Vec<Seat>,
}

/// A connection's hold on its seat; gives it up when dropped.
#[derive(Debug)]
pub struct Held {
    seats: Seats,
    id: u64,
    /// Notified when the seat is taken for someone else.
    pub evicted: Arc<Notify>,
}

impl Seats {
    /// `max` seats, all free.
    pub fn new(max: usize) -> Self {
        Seats { inner: Arc::new(Mutex::new(Inner { max: max.max(1), next_id: 0, seats: Vec::new() })) }
    }

    /// A seat for a new connection at `now`, as its owner's or not: a free
    /// one, or one taken from a connection not proven the owner's, or from
    /// the one idle longest.
    pub fn take(&self, owner: bool, now: Instant) -> Held {
        let mut inner = self.inner.lock();
        if inner.seats.len() >= inner.max {
            let victim =
                inner.seats.iter().enumerate().min_by_key(|(_, s)| (s.owner, s.last_active)).map(|(i, _)| i);
            if let Some(i) = victim {
                let seat = inner.seats.swap_remove(i);
                seat.evict.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evicted = Arc::new(Notify::new());
        inner.seats.push(Seat { id, owner, last_active: now, evict: Arc::clone(&evicted) });
        Held { seats: self.clone(), id, evicted }
    }

    /// Connections seated now.
    pub fn len(&self) -> usize {
        self.inner.lock().seats.len()
    }

    /// True when no connection is seated.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Held {
    /// The connection proved it is the owner's (it gave the token).
    pub fn proven(&self) {
        self.update(|seat| seat.owner = true);
    }

    /// The connection was active at `now`.
    pub fn active(&self, now: Instant) {
        self.update(|seat| seat.last_active = now);
    }

    fn update(&self, change: impl FnOnce(&mut Seat)) {
        if let Some(seat) = self.seats.inner.lock().seats.iter_mut().find(|s| s.id == self.id) {
            change(seat);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.seats.inner.lock().seats.retain(|s| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strangers_give_way_to_the_owner_then_the_longest_idle_does() {
        let t0 = Instant::now();
        let seats = Seats::new(3);
        let strangers: Vec<Held> = (0..3).map(|i| seats.take(false, t0 + Duration::from_secs(i))).collect();
        let owner = seats.take(false, t0 + Duration::from_secs(5));
        owner.proven();
        assert_eq!(seats.len(), 3);
        // The oldest stranger was told to go; the owner is seated.
        let told = futures::FutureExt::now_or_never(strangers[0].evicted.notified());
        assert!(told.is_some(), "the oldest stranger keeps its seat");
        let second_owner = seats.take(true, t0 + Duration::from_secs(6));
        let third_owner = seats.take(true, t0 + Duration::from_secs(7));
        drop((second_owner, third_owner));
        assert!(seats.len() <= 3);
        drop(strangers);
        assert_eq!(seats.len(), 1, "only the first owner connection is left");
        drop(owner);
        assert!(seats.is_empty());
    }
}
