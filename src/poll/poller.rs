//! The set of descriptors a driver loop waits on, kept between wake-ups:
//! an epoll instance that sockets join when they open and leave when they
//! close, instead of a list rebuilt (and scanned by the kernel) on every
//! wake-up. The wait itself is a `ppoll` on the epoll descriptor, precise
//! to microseconds like [`super::wait`] (`epoll_wait` counts milliseconds),
//! then a non-blocking `epoll_wait` that says which are ready.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;

use super::EARLY_WAKE;

/// Ready descriptors taken per wake-up; more stay ready for the next.
const EVENTS: usize = 256;

/// Descriptors to wait on, each known by a token.
#[derive(Debug)]
pub struct Poller {
    epoll: Epoll,
    events: Vec<EpollEvent>,
    ready: Vec<u64>,
}

impl Poller {
    /// An empty set.
    ///
    /// # Errors
    /// When the kernel refuses an epoll instance.
    pub fn new() -> io::Result<Self> {
        Ok(Poller {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            events: vec![EpollEvent::empty(); EVENTS],
            ready: Vec::new(),
        })
    }

    /// Adds `fd`, reported as `token` while it is readable (or has an error).
    ///
    /// # Errors
    /// When the kernel refuses (it is in the set already, say).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token)).map_err(Into::into)
    }

    /// Removes `fd` (closing it removes it too).
    ///
    /// # Errors
    /// When it was not in the set.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.epoll.delete(fd).map_err(Into::into)
    }

    /// Waits until a descriptor is ready or `deadline` passes (forever
    /// without one); returns the tokens of those ready.
    ///
    /// # Errors
    /// When waiting fails for another reason than a signal.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<&[u64]> {
        let timeout = deadline.map(|deadline| {
            let remaining = deadline.saturating_duration_since(Instant::now());
            TimeSpec::from_duration(if remaining > EARLY_WAKE { remaining - EARLY_WAKE } else { remaining })
        });
        let mut polled = [PollFd::new(self.epoll.0.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut polled, timeout, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = match self.epoll.wait(&mut self.events, EpollTimeout::ZERO) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        self.ready.clear();
        self.ready.extend(self.events[..ready].iter().map(EpollEvent::data));
        Ok(&self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn ready_sockets_are_named_by_their_tokens_until_drained() {
        let mut poller = Poller::new().unwrap();
        let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
        poller.add(a.as_fd(), 1).unwrap();
        poller.add(b.as_fd(), 2).unwrap();
        let soon = Instant::now() + Duration::from_millis(2);
        assert_eq!(
            poller.wait(Some(soon)).unwrap(),
            &[] as &[u64],
            "nothing ready: the deadline ends the wait"
        );
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(poller.wait(None).unwrap(), &[2]);
        assert_eq!(poller.wait(None).unwrap(), &[2], "still ready until read");
        b.recv(&mut [0; 8]).unwrap();
        poller.remove(b.as_fd()).unwrap();
        a.send_to(b"y", b.local_addr().unwrap()).unwrap();
        assert_eq!(poller.wait(Some(Instant::now())).unwrap(), &[] as &[u64], "removed from the set");
    }
}
