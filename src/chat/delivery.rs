//! How lines reach clients, without a copy or a queue entry per recipient
//! (shared state, no sockets).
//!
//! - A room's [`Log`] holds the room's recent lines once, in order, up to a
//!   byte bound. Broadcasting a line is one append, whatever the room's size.
//! - Each client's [`Outbox`] holds the few lines meant for it alone (private
//!   messages, replies, errors), each marked with where the room's log was
//!   when it was queued.
//! - Each client's [`Mailbox`] is its reading side: a cursor into its room's
//!   log plus its outbox. [`Mailbox::collect`] copies what is due, in order,
//!   straight into the client's write buffer: one contiguous buffer per
//!   write, and no per-recipient allocation.
//!
//! A client that reads too slowly falls behind its room's log; once the log
//! has dropped lines the client has not had, the client is too slow and is
//! disconnected (and the same if its outbox passes its bound). Its memory
//! never grows: it is a cursor. The log holds lines only while a member
//! still has them to read: when every member is caught up, the next append
//! first drops everything before it, so the byte bound (which may be tens
//! of MiB, to let readers through a burst) costs memory only during a burst.
//!
//! Waking: a client whose mailbox is caught up parks itself on the log; the
//! next append wakes every parked client once. Busy clients are not woken:
//! they find the new lines when they next collect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;
use parking_lot::{Mutex, RwLock};

use super::hub::ClientId;
use crate::units::format_size;

/// What a queued line costs beyond its bytes: its entry.
const ENTRY_OVERHEAD: usize = 48;

/// Outbox queues above this many entries give their memory back once emptied.
const KEEP_ENTRIES: usize = 16;

/// A position in a room's log: the line that will be appended next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Which log (each has its own number, from 1).
    pub log: u64,
    /// The sequence number of the next line in that log.
    pub seq: u64,
}

impl Mark {
    /// After every line of whatever room: for a client's last words.
    pub const LAST: Mark = Mark { log: 0, seq: 0 };
}

/// A client fell behind: what it had to receive passed the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("more than {} waited for it (it reads too slowly; the bound is --queue)", format_size(*.limit as u64))]
pub struct Overflow {
    /// The bound, in bytes.
    pub limit: usize,
}

/// The recent lines of one room, shared by its members.
#[derive(Debug)]
pub struct Log {
    id: u64,
    limit: usize,
    lines: RwLock<Lines>,
    /// The sequence number of the next line (readable without the lock).
    end: AtomicU64,
    /// Members that are caught up and wait for the next line.
    parked: Mutex<Vec<Arc<Outbox>>>,
    /// Mailboxes reading this log.
    members: AtomicUsize,
}

#[derive(Debug, Default)]
struct Lines {
    entries: VecDeque<Entry>,
    /// The sequence number of `entries[0]`.
    first: u64,
    cost: usize,
}

#[derive(Debug)]
struct Entry {
    /// The client who caused the line, who does not get it back.
    origin: Option<ClientId>,
    line: Bytes,
}

impl Log {
    /// An empty log numbered `id` that keeps at least the last `limit` bytes.
    pub fn new(id: u64, limit: usize) -> Log {
        Log {
            id,
            limit,
            lines: RwLock::new(Lines::default()),
            end: AtomicU64::new(0),
            parked: Mutex::new(Vec::new()),
            members: AtomicUsize::new(0),
        }
    }

    /// Where the next line will go.
    pub fn mark(&self) -> Mark {
        Mark { log: self.id, seq: self.end.load(Ordering::Acquire) }
    }

    /// Appends `line` for every member but `origin`, dropping the oldest
    /// lines beyond the bound (or all of them, when every member has read
    /// them), and wakes the members that were waiting.
    pub fn publish(&self, origin: Option<ClientId>, line: Bytes) {
        // Held until the line is in: a member parks either before (and had
        // read everything) or after (and sees the line).
        let mut list = self.parked.lock();
        let mut parked = std::mem::take(&mut *list);
        {
            // A member may be listed twice (it left and came back); one parked on another log
            // since (it moved) is not caught up here.
            parked.sort_unstable_by_key(Arc::as_ptr);
            parked.dedup_by_key(|outbox| Arc::as_ptr(outbox));
            let caught_up =
                parked.iter().filter(|outbox| outbox.parked_on.load(Ordering::Acquire) == self.id);
            let all_read = caught_up.count() >= self.members.load(Ordering::Acquire);
            let mut lines = self.lines.write();
            if all_read && !lines.entries.is_empty() {
                lines.first += lines.entries.len() as u64;
                lines.cost = 0;
                lines.entries = VecDeque::new();
            }
            lines.cost += cost(&line);
            lines.entries.push_back(Entry { origin, line });
            while lines.cost > self.limit && lines.entries.len() > 1 {
                if let Some(old) = lines.entries.pop_front() {
                    lines.cost -= cost(&old.line);
                    lines.first += 1;
                }
            }
            self.end.fetch_add(1, Ordering::Release);
        }
        drop(list);
        for outbox in parked {
            // One parked on another log since (it moved) is left to that log.
            if outbox.parked_on.compare_exchange(self.id, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                outbox.wake();
            }
        }
    }

    /// How many bytes of lines the log holds now (for tests and reports).
    pub fn held(&self) -> usize {
        self.lines.read().cost
    }

    /// Copies lines from `from` up to `to` (exclusive) that are not `me`'s
    /// own into `buf`, stopping once `buf` holds `budget` bytes. Returns
    /// where it stopped.
    fn copy(
        &self,
        from: u64,
        to: u64,
        me: ClientId,
        buf: &mut BytesMut,
        budget: usize,
    ) -> Result<u64, Overflow> {
        if from >= to {
            return Ok(from);
        }
        let lines = self.lines.read();
        if from < lines.first {
            return Err(Overflow { limit: self.limit });
        }
        let mut at = from;
        let start = usize::try_from(from - lines.first).unwrap_or(usize::MAX);
        for entry in lines.entries.iter().skip(start) {
            if at >= to || buf.len() >= budget {
                break;
            }
            if entry.origin != Some(me) {
                buf.extend_from_slice(&entry.line);
            }
            at += 1;
        }
        Ok(at)
    }

    /// Whether a reader at `cursor` has fallen behind what the log keeps.
    fn dropped_since(&self, cursor: u64) -> bool {
        cursor < self.lines.read().first
    }

    /// Parks `outbox` (its next append wakes it, once) if a reader at
    /// `cursor` that stops at `stop` has read everything; false (and not
    /// parked) when a line came meanwhile.
    fn park(&self, outbox: &Arc<Outbox>, cursor: u64, stop: u64) -> bool {
        let mut list = self.parked.lock();
        if cursor < stop.min(self.end.load(Ordering::Acquire)) {
            return false;
        }
        if outbox.parked_on.swap(self.id, Ordering::AcqRel) != self.id {
            list.push(outbox.clone());
        }
        true
    }
}

fn cost(line: &Bytes) -> usize {
    line.len() + ENTRY_OVERHEAD
}

/// The lines meant for one client alone, and the client's wake-up.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<Private>,
    /// The client's task, and whether it was woken since it last looked.
    waker: AtomicWaker,
    woken: AtomicBool,
    /// The log whose parked list the client is on (0: none).
    parked_on: AtomicU64,
    limit: usize,
}

#[derive(Debug, Default)]
struct Private {
    lines: VecDeque<(Mark, Bytes)>,
    cost: usize,
    overflowed: bool,
}

impl Outbox {
    /// An empty outbox that holds up to `limit` bytes.
    pub fn new(limit: usize) -> Outbox {
        Outbox {
            state: Mutex::new(Private::default()),
            waker: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            parked_on: AtomicU64::new(0),
            limit,
        }
    }

    /// Queues `line`, to be delivered after every line of the client's room
    /// before `after`. If it does not fit, the outbox overflows instead: it
    /// drops what it holds and the client is disconnected.
    pub fn push(&self, after: Mark, line: &Bytes) {
        let mut state = self.state.lock();
        if state.overflowed {
            return;
        }
        let cost = state.cost + cost(line);
        if cost > self.limit {
            state.overflowed = true;
            state.lines = VecDeque::new();
        } else {
            state.lines.push_back((after, line.clone()));
            state.cost = cost;
            if state.lines.len() > 1 {
                // The client was woken for the first line and has not taken it yet.
                return;
            }
        }
        drop(state);
        self.wake();
    }

    /// Ready when there may be something to collect (the client was woken
    /// since the last time this was ready); otherwise registers the task to wake.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        match self.woken.swap(false, Ordering::AcqRel) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// Wakes the client as if a line had come.
    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn take(&self, into: &mut VecDeque<(Mark, Bytes)>) -> Result<(), Overflow> {
        let mut state = self.state.lock();
        if state.overflowed {
            return Err(Overflow { limit: self.limit });
        }
        into.extend(state.lines.drain(..));
        state.cost = 0;
        if state.lines.capacity() > KEEP_ENTRIES {
            state.lines = VecDeque::new();
        }
        Ok(())
    }
}

/// A client's reading side: its room's log with its cursor, and its outbox.
#[derive(Debug)]
pub struct Mailbox {
    id: ClientId,
    outbox: Arc<Outbox>,
    room: Arc<Log>,
    /// The next line of `room` this client has not had.
    cursor: u64,
    /// Private lines taken from the outbox, waiting for the room lines before them.
    held: VecDeque<(Mark, Bytes)>,
    /// Where the client left its room: no room line from here on is its.
    stop: u64,
}

impl Mailbox {
    /// Client `id`'s mailbox, reading `room` from `cursor` on.
    pub fn new(id: ClientId, outbox: Arc<Outbox>, room: Arc<Log>, cursor: u64) -> Mailbox {
        room.members.fetch_add(1, Ordering::AcqRel);
        Mailbox { id, outbox, room, cursor, held: VecDeque::new(), stop: u64::MAX }
    }

    /// The client's outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Copies the lines due, in order, into `buf` until it holds about
    /// `budget` bytes (a line is never split). Returns true if more is
    /// waiting; when it returns false the mailbox is caught up and the next
    /// line wakes it.
    ///
    /// # Errors
    /// When the client fell behind its room's log or overflowed its outbox.
    pub fn collect(&mut self, buf: &mut BytesMut, budget: usize) -> Result<bool, Overflow> {
        self.outbox.take(&mut self.held)?;
        while let Some(&(after, _)) = self.held.front() {
            // A line marked in another log came after every line of this one.
            let due = if after.log == self.room.id { after.seq } else { u64::MAX };
            self.cursor = self.room.copy(self.cursor, due.min(self.stop), self.id, buf, budget)?;
            if buf.len() >= budget || self.cursor < due.min(self.stop).min(self.end()) {
                return Ok(true);
            }
            if let Some((_, line)) = self.held.pop_front() {
                buf.extend_from_slice(&line);
            }
        }
        self.cursor = self.room.copy(self.cursor, self.stop, self.id, buf, budget)?;
        if self.held.capacity() > KEEP_ENTRIES {
            self.held = VecDeque::new();
        }
        // Parking looks again: a line appended just now would not wake us.
        Ok(!self.room.park(&self.outbox, self.cursor, self.stop))
    }

    fn end(&self) -> u64 {
        self.room.end.load(Ordering::Acquire)
    }

    /// Where the room's log is now (the next line).
    pub fn mark(&self) -> Mark {
        self.room.mark()
    }

    /// The client left its room at `mark`: later room lines are not for it.
    pub fn stop_at(&mut self, mark: Mark) {
        if mark.log == self.room.id {
            self.stop = mark.seq;
        }
    }

    /// Moves to another room, reading it from `cursor`: first copies into
    /// `buf` everything still due from the old room (the client was a member
    /// when those lines were sent).
    ///
    /// # Errors
    /// When the client had already fallen behind.
    pub fn move_to(&mut self, room: Arc<Log>, cursor: u64, buf: &mut BytesMut) -> Result<(), Overflow> {
        self.collect(buf, usize::MAX)?;
        self.leave_room();
        room.members.fetch_add(1, Ordering::AcqRel);
        self.room = room;
        self.cursor = cursor;
        self.stop = u64::MAX;
        Ok(())
    }

    /// No longer reads its room: not counted among its readers, nor parked there.
    fn leave_room(&self) {
        let _ = self.outbox.parked_on.compare_exchange(self.room.id, 0, Ordering::AcqRel, Ordering::Acquire);
        self.room.members.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether anything is still due to the client.
    pub fn pending(&self) -> bool {
        !self.held.is_empty()
            || !self.outbox.state.lock().lines.is_empty()
            || self.cursor < self.stop.min(self.end())
    }

    /// Whether the client has already fallen behind its room or overflowed
    /// its outbox (checked while its socket is full and it collects nothing).
    ///
    /// # Errors
    /// When it has.
    pub fn check(&self) -> Result<(), Overflow> {
        if self.outbox.state.lock().overflowed {
            return Err(Overflow { limit: self.outbox.limit });
        }
        if self.cursor < self.stop && self.room.dropped_since(self.cursor) {
            return Err(Overflow { limit: self.room.limit });
        }
        Ok(())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.leave_room();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn collected(mailbox: &mut Mailbox) -> String {
        let mut buf = BytesMut::new();
        mailbox.collect(&mut buf, usize::MAX).unwrap();
        String::from_utf8(buf.to_vec()).unwrap()
    }

    fn member(id: ClientId, room: &Arc<Log>) -> Mailbox {
        Mailbox::new(id, Arc::new(Outbox::new(1 << 20)), room.clone(), room.mark().seq)
    }

    #[test]
    fn everyone_but_the_origin_gets_each_line_once_in_order() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let (mut alice, mut bob) = (member(1, &room), member(2, &room));
        room.publish(Some(1), line("<alice> one\n"));
        room.publish(Some(2), line("<bob> two\n"));
        room.publish(None, line("* notice\n"));
        assert_eq!(collected(&mut alice), "<bob> two\n* notice\n");
        assert_eq!(collected(&mut bob), "<alice> one\n* notice\n");
        assert_eq!(collected(&mut bob), "", "nothing twice");
    }

    #[test]
    fn private_lines_keep_their_place_among_room_lines() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let mut bob = member(2, &room);
        room.publish(Some(1), line("<alice> before\n"));
        bob.outbox().push(room.mark(), &line("*alice* psst\n"));
        room.publish(Some(1), line("<alice> after\n"));
        assert_eq!(collected(&mut bob), "<alice> before\n*alice* psst\n<alice> after\n");
    }

    #[test]
    fn a_budget_stops_between_lines_and_the_rest_comes_next_time() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let mut bob = member(2, &room);
        for n in 0..10 {
            room.publish(None, line(&format!("line {n}\n")));
        }
        let mut buf = BytesMut::new();
        assert!(bob.collect(&mut buf, 20).unwrap(), "more is waiting");
        assert_eq!(&buf[..], b"line 0\nline 1\nline 2\n");
        assert_eq!(collected(&mut bob).lines().count(), 7);
    }

    #[test]
    fn a_caught_up_mailbox_is_woken_by_the_next_line() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let mut bob = member(2, &room);
        assert!(!bob.collect(&mut BytesMut::new(), usize::MAX).unwrap());
        assert_eq!(bob.outbox().parked_on.load(Ordering::Acquire), room.id);
        room.publish(None, line("hi\n"));
        assert_eq!(bob.outbox().parked_on.load(Ordering::Acquire), 0);
        // The wake-up is kept for the client's next look.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert_eq!(bob.outbox().poll_ready(&mut cx), Poll::Ready(()));
        assert_eq!(bob.outbox().poll_ready(&mut cx), Poll::Pending);
    }

    #[test]
    fn falling_behind_the_log_is_an_overflow() {
        let room = Arc::new(Log::new(1, 3 * cost(&line("0123456789\n"))));
        let mut slow = member(2, &room);
        for _ in 0..3 {
            room.publish(None, line("0123456789\n"));
        }
        assert!(slow.check().is_ok());
        room.publish(None, line("0123456789\n"));
        assert!(slow.check().is_err());
        assert_eq!(slow.collect(&mut BytesMut::new(), usize::MAX), Err(Overflow { limit: room.limit }));
    }

    #[test]
    fn an_outbox_over_its_bound_overflows() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let one = line(&"x".repeat(100));
        let mut bob = Mailbox::new(2, Arc::new(Outbox::new(2 * cost(&one))), room.clone(), 0);
        bob.outbox().push(room.mark(), &one);
        bob.outbox().push(room.mark(), &one);
        assert!(bob.collect(&mut BytesMut::new(), usize::MAX).is_ok());
        for _ in 0..3 {
            bob.outbox().push(room.mark(), &one);
        }
        assert!(bob.collect(&mut BytesMut::new(), usize::MAX).is_err());
    }

    #[test]
    fn a_client_that_left_gets_the_lines_until_then_and_its_last_words() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let mut bob = member(2, &room);
        room.publish(Some(1), line("<alice> before\n"));
        bob.stop_at(room.mark());
        bob.outbox().push(Mark::LAST, &line("* bye\n"));
        room.publish(Some(1), line("<alice> after bob left\n"));
        assert_eq!(collected(&mut bob), "<alice> before\n* bye\n");
    }

    #[test]
    fn moving_rooms_delivers_the_old_rooms_lines_first() {
        let (lobby, rust) = (Arc::new(Log::new(1, 1 << 20)), Arc::new(Log::new(2, 1 << 20)));
        let mut bob = member(2, &lobby);
        lobby.publish(Some(1), line("<alice> still lobby\n"));
        let cursor = rust.mark().seq;
        bob.outbox().push(rust.mark(), &line("* you are in rust\n"));
        let mut buf = BytesMut::new();
        bob.move_to(rust.clone(), cursor, &mut buf).unwrap();
        lobby.publish(Some(1), line("<alice> gone\n"));
        rust.publish(Some(3), line("<carol> welcome\n"));
        bob.collect(&mut buf, usize::MAX).unwrap();
        assert_eq!(&buf[..], &b"<alice> still lobby\n* you are in rust\n<carol> welcome\n"[..]);
    }

    #[test]
    fn a_log_keeps_lines_only_while_a_member_has_them_to_read() {
        let room = Arc::new(Log::new(1, 1 << 20));
        let (mut alice, mut bob) = (member(1, &room), member(2, &room));
        for n in 0..100 {
            room.publish(Some(1), line(&format!("<alice> {n}\n")));
        }
        assert!(room.held() > 100 * 10, "bob has not read them");
        assert_eq!(collected(&mut bob).lines().count(), 100);
        assert_eq!(collected(&mut alice), "");
        room.publish(Some(1), line("<alice> last\n"));
        assert_eq!(room.held(), cost(&line("<alice> last\n")), "everyone had the rest");
        assert_eq!(collected(&mut bob), "<alice> last\n");
        // One who moved away no longer holds the log back, nor counts as caught up.
        let elsewhere = Arc::new(Log::new(2, 1 << 20));
        alice.move_to(elsewhere.clone(), elsewhere.mark().seq, &mut BytesMut::new()).unwrap();
        room.publish(None, line("* one\n"));
        room.publish(None, line("* two\n"));
        assert_eq!(room.held(), 2 * cost(&line("* one\n")), "bob has not read these yet");
        drop(bob);
        room.publish(None, line("* three\n"));
        assert_eq!(room.held(), cost(&line("* three\n")), "no one left to read them");
    }

    #[test]
    fn a_reader_racing_the_writer_never_loses_a_line_to_trimming() {
        // A member that finds a new line while parking must not count as caught up:
        // if it did, the next append would drop the line it has yet to read.
        // Room for every line at once: a busy machine may run the writer to
        // the end before the reader is scheduled, and overflow is not what
        // this test is about.
        let room = Arc::new(Log::new(1, 1 << 26));
        let mut reader = member(2, &room);
        let total = 20_000;
        let writer = {
            let room = room.clone();
            std::thread::spawn(move || {
                for n in 0..total {
                    room.publish(Some(1), line(&format!("{n}\n")));
                }
            })
        };
        let mut got = 0;
        let mut buf = BytesMut::new();
        while got < total {
            buf.clear();
            reader.collect(&mut buf, usize::MAX).expect("no line dropped before it was read");
            got += buf.iter().filter(|&&b| b == b'\n').count();
        }
        writer.join().unwrap();
        assert_eq!(got, total);
        assert!(!room.park(reader.outbox(), 0, u64::MAX), "a reader behind the end does not park");
    }
}
