//! The lab: threads, processes, races and locks, a bounded producer-consumer
//! queue, deadlock and its cure, CPU-bound work in parallel, and
//! thread-per-connection against async servers; then sockets: framing, EOF,
//! TIME_WAIT, backlogs, bind addresses, blocking, text and bytes, names, TCP
//! against UDP under loss, ARQ timelines, and a process's memory. Each
//! experiment runs for real, measures what happened, and returns it as data
//! that says what it shows ([`Lesson`]); the binary prints it.
//!
//! | module | runs | shows |
//! |---|---|---|
//! | [`threads`] | two threads counting with pauses | start, names and ids, `join`, `is_finished`, waits overlap |
//! | [`processes`] | the same work in child processes | what a process costs next to a thread |
//! | [`cpu`] | a CPU-bound job sequentially, in threads, in processes (and in Python) | real parallelism, and the GIL |
//! | [`race`] | threads incrementing one counter three ways | lost updates, atomics, a mutex |
//! | [`producer_consumer`] | producers and consumers over a bounded queue | blocking when full or empty, exactly-once delivery |
//! | [`deadlock`] | two threads taking two locks in opposite orders | a watchdog that finds the cycle; lock ordering |
//! | [`servers`] | an echo workload at rising connection counts | where a thread per connection stops scaling |
//! | [`framing`] | small sends, a large send, newline and length framing over loopback | TCP keeps bytes, not boundaries |
//! | [`eof`] | an orderly close, a reset, a loop that ignores 0 | what `recv` returns when the peer is gone |
//! | [`reuseaddr`] | a listener restarted while TIME_WAIT holds its port | `SO_REUSEADDR`, on both listeners |
//! | [`backlog`] | accept with nobody; connects to a server that never accepts | the accept queue, waiting clients |
//! | [`bind`] | listeners on 127.0.0.1, 127.0.0.2, 0.0.0.0, ::1, ::, reached from here and another namespace | which addresses reach which listener; privileged and ephemeral ports |
//! | [`blocking`] | late data read four ways | blocking, timeouts, `EAGAIN`, `poll`, and what each costs |
//! | [`encoding`] | text sent as UTF-8, split inside a character; Latin-1 | bytes are not text |
//! | [`names`] | `gethostname`, `getaddrinfo` for names in `/etc/hosts` | how names resolve, with no traffic |
//! | [`anatomy`] | this process's maps, threads and status | code, data, heap, stacks; the PCB; I/O- and CPU-bound work |
//! | [`tcp_vs_udp`] | the same messages over TCP and UDP through the same loss | loss shown against loss turned into delay |
//! | [`arq`] | the transfer engines in virtual time over a lossy link | stop-and-wait, Go-Back-N, selective repeat, vs the bounds |
//!
//! Experiments that need other processes re-execute the binary through a
//! [`SelfExec`], which runs a [`ChildTask`] in the child and reads what it
//! prints as JSON lines.

pub mod anatomy;
pub mod arq;
pub mod backlog;
pub mod bind;
pub mod blocking;
pub mod cpu;
pub mod deadlock;
pub mod encoding;
pub mod eof;
pub mod framing;
pub mod names;
pub mod processes;
pub mod producer_consumer;
pub mod race;
pub mod reuseaddr;
pub mod servers;
pub mod tcp_vs_udp;
pub mod threads;

mod child;
mod python;
mod sock;
mod table;
mod tcp_info;

use std::fmt;
use std::io;
use std::time::Duration;

pub use child::{ChildTask, SelfExec};
pub use sock::{TcpSocketEntry, TcpState};
pub use tcp_info::TcpCounters;

/// What an experiment's numbers mean, in two or three sentences written from
/// the numbers of the run itself.
pub trait Lesson {
    /// The explanation, for people reading the output.
    fn lesson(&self) -> String;
}

/// An experiment could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The operating system refused to start a thread.
    #[error("cannot start thread {name}: {}", crate::net::describe(.error))]
    Thread {
        /// The thread's name.
        name: String,
        /// What the operating system said.
        error: io::Error,
    },
    /// A thread of the experiment panicked.
    #[error("thread {name} panicked")]
    Panicked {
        /// The thread's name.
        name: String,
    },
    /// A child process could not be started.
    #[error("cannot start {program}: {}", crate::net::describe(.error))]
    Spawn {
        /// The program.
        program: String,
        /// What the operating system said.
        error: io::Error,
    },
    /// A child process failed, or printed something that is not what it should.
    #[error("{what}: {detail}")]
    Child {
        /// Which child.
        what: String,
        /// What went wrong, with its exit status or output.
        detail: String,
    },
    /// A child process ran past its time limit and was killed.
    #[error("{what} did not finish within {}; it was stopped", humantime::format_duration(*.limit))]
    Timeout {
        /// Which child.
        what: String,
        /// How long it was given.
        limit: Duration,
    },
    /// A network namespace of the experiment could not be made or used.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// The impaired path below an experiment could not be made.
    #[error(transparent)]
    Tun(#[from] crate::impair::tun::TunError),
    /// Reading or writing a file, or the pipes of a child, failed.
    #[error("{context}: {}", crate::net::describe(.error))]
    Io {
        /// What was being done.
        context: String,
        /// What the operating system said.
        error: io::Error,
    },
}

impl LabError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
        let context = context.into();
        move |source| LabError::Io { context, error: source }
    }
}

/// How many threads can really run at once on this machine.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Joins `handle`, turning a panic into [`LabError::Panicked`].
fn join<T>(name: &str, handle: std::thread::JoinHandle<T>) -> Result<T, LabError> {
    handle.join().map_err(|_| LabError::Panicked { name: name.to_owned() })
}

/// Spawns a named thread.
fn spawn<T, F>(name: &str, work: F) -> Result<std::thread::JoinHandle<T>, LabError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map_err(|source| LabError::Thread { name: name.to_owned(), error: source })
}

/// A duration for people: `812 µs`, `3.42 ms`, `1.250 s`.
struct Took(Duration);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s >= 1.0 {
            write!(f, "{s:.3} s")
        } else if s >= 1e-3 {
            write!(f, "{:.2} ms", s * 1e3)
        } else {
            write!(f, "{:.0} µs", s * 1e6)
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_durations() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_499_997_500_000), "12,499,997,500,000");
        assert_eq!(Took(Duration::from_micros(812)).to_string(), "812 µs");
        assert_eq!(Took(Duration::from_micros(3420)).to_string(), "3.42 ms");
        assert_eq!(Took(Duration::from_millis(1250)).to_string(), "1.250 s");
    }
}
