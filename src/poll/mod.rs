//! What the plain driver loops share: a thread of their own that never dies
//! in silence ([`thread`]), waiting on sockets with a deadline precise to
//! microseconds, and a [`Waker`] other threads use to interrupt the wait or
//! stop the loop.
//!
//! tokio's timer rounds to whole milliseconds, too coarse for the proxy's
//! added delays and for retransmission timeouts on loopback; `ppoll` takes
//! nanoseconds. The kernel lets a poll timeout run late by 0.1% of its
//! length, so a long wait stops [`EARLY_WAKE`] short and the loop's next,
//! short wait lands on time.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;

pub mod poller;
pub mod thread;

pub use poller::Poller;
pub use thread::{DeathWatch, DriverDied, DriverThread, spawn, spawn_reporting};

/// How far before a deadline a long wait ends.
pub const EARLY_WAKE: Duration = Duration::from_millis(1);

/// Wakes a driver loop from another thread, and asks it to stop. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<EventFd>,
    stop: Arc<AtomicBool>,
}

impl Waker {
    /// A waker for one loop.
    ///
    /// # Errors
    /// When the kernel refuses an eventfd.
    pub fn new() -> io::Result<Self> {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Waker { fd: Arc::new(fd), stop: Arc::new(AtomicBool::new(false)) })
    }

    /// Interrupts the loop's current or next wait.
    pub fn wake(&self) {
        // A full counter already means "wake up"; nothing is lost if this fails.
        let _ = self.fd.write(1);
    }

    /// Asks the loop to stop, and wakes it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// True once [`Waker::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Clears the wake-ups received so far (call when the loop saw one).
    pub fn clear(&self) {
        let _ = self.fd.read();
    }

    /// The descriptor the loop waits on.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sets this thread's timer slack to 1 µs (Linux lets timeouts run late by
/// 50 µs by default). Best effort: without it the loop still works.
pub fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1000);
}

/// Moves this thread into the real-time scheduling class (SCHED_FIFO, at
/// its lowest priority), so that it preempts ordinary threads the moment its
/// timer fires instead of waiting its turn: on a busy machine that is the
/// difference between microseconds and milliseconds of lateness.
///
/// # Errors
/// When the kernel refuses (it takes root or CAP_SYS_NICE).
pub fn make_realtime() -> Result<(), String> {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let policy = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
        .map_err(|e| format!("{e:?}"))
}

/// Waits until one of `fds` is readable or `deadline` passes (forever
/// without one); returns which are readable.
///
/// # Errors
/// When polling fails for another reason than a signal.
pub fn wait(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> io::Result<Vec<bool>> {
    let timeout = deadline.map(|deadline| {
        let remaining = deadline.saturating_duration_since(Instant::now());
        TimeSpec::from_duration(if remaining > EARLY_WAKE { remaining - EARLY_WAKE } else { remaining })
    });
    let mut polled: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    match ppoll(&mut polled, timeout, None) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(polled.iter().map(|fd| fd.revents().is_some_and(|r| !r.is_empty())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_interrupts_a_wait_and_a_deadline_ends_one() {
        let waker = Waker::new().unwrap();
        let remote = waker.clone();
        let thread = std::thread::spawn(move || remote.stop());
        let ready = wait(&[waker.as_fd()], None).unwrap();
        assert_eq!(ready, [true]);
        thread.join().unwrap();
        assert!(waker.is_stopped());
        waker.clear();
        let deadline = Instant::now() + Duration::from_millis(3);
        while Instant::now() < deadline {
            assert_eq!(wait(&[waker.as_fd()], Some(deadline)).unwrap(), [false]);
        }
    }
}
