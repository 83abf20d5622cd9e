//! `lab blocking`: four ways to wait for data that comes late.
//!
//! In each case the peer sends 4 bytes after a delay. The reader:
//! - calls a blocking `recv`: the thread sleeps until the data comes;
//! - sets a receive timeout shorter than the delay: `recv` fails with
//!   `EAGAIN` when it runs out;
//! - makes the socket non-blocking: `recv` fails with `EAGAIN` at once, and
//!   a loop that retries spins until the data comes;
//! - waits with `poll` for the socket to become readable, then reads.
//!
//! Each case counts its `recv` calls and the CPU the reading thread used.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sock::{Readiness, loopback_pair, thread_cpu, wait_until};
use super::table::Table;
use super::{LabError, Lesson, Took, join, spawn, thousands};
use crate::stats::as_millis;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BlockingConfig {
    /// How long the peer waits before it sends.
    #[serde(rename = "delay_ms", serialize_with = "as_millis")]
    pub delay: Duration,
    /// The receive timeout of the second case (shorter than the delay to show it expire).
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
}

/// What the peer sends.
const PAYLOAD: &[u8] = b"ping";

/// How the reader waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Way {
    /// A blocking `recv`.
    Blocking,
    /// `SO_RCVTIMEO`, then `recv`.
    Timeout,
    /// A non-blocking socket and a loop around `recv`.
    NonBlocking,
    /// `poll`, then `recv`.
    Poll,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Way::Blocking => "blocking recv",
            Way::Timeout => "recv with a timeout",
            Way::NonBlocking => "non-blocking recv loop",
            Way::Poll => "poll, then recv",
        })
    }
}

/// One case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockingRow {
    /// How the reader waited.
    pub way: Way,
    /// Bytes it got (0 when it gave up).
    pub bytes: usize,
    /// What its first `recv` call said, when that was an error.
    pub first_error: Option<String>,
    /// `recv` calls made.
    pub recv_calls: u64,
    /// Wall time until it had the data or gave up.
    #[serde(rename = "waited_ms", serialize_with = "as_millis")]
    pub waited: Duration,
    /// CPU time the reading thread used meanwhile.
    #[serde(rename = "cpu_ms", serialize_with = "as_millis")]
    pub cpu: Duration,
}

/// What `lab blocking` observed.
#[derive(Clone, Debug, Serialize)]
pub struct BlockingReport {
    /// What was run.
    pub config: BlockingConfig,
    /// One row per way.
    pub rows: Vec<BlockingRow>,
}

/// Runs the four cases.
///
/// # Errors
/// When loopback sockets cannot be made or used.
pub fn run(config: BlockingConfig) -> Result<BlockingReport, LabError> {
    let rows = [Way::Blocking, Way::Timeout, Way::NonBlocking, Way::Poll]
        .into_iter()
        .map(|way| case(way, config))
        .collect::<Result<_, _>>()?;
    Ok(BlockingReport { config, rows })
}

fn case(way: Way, config: BlockingConfig) -> Result<BlockingRow, LabError> {
    let (mut client, mut reader) = loopback_pair()?;
    let delay = config.delay;
    // The timeout and non-blocking cases are only what they claim if the data
    // is not there yet at the first recv, however the threads get scheduled:
    // there the peer starts its delay when the reader says so.
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let signalled = matches!(way, Way::Timeout | Way::NonBlocking);
    // The peer is late on purpose: the delay is the experiment.
    let peer = spawn("late-peer", move || {
        if signalled {
            let _ = wait_for_go.recv();
        }
        std::thread::sleep(delay);
        client.write_all(PAYLOAD)
    })?;
    let io = |context: &'static str| LabError::io(context);
    match way {
        Way::Timeout => reader.set_read_timeout(Some(config.timeout)).map_err(io("setting SO_RCVTIMEO"))?,
        Way::NonBlocking => reader.set_nonblocking(true).map_err(io("making the socket non-blocking"))?,
        Way::Blocking | Way::Poll => {}
    }
    let (started, cpu_before) = (Instant::now(), thread_cpu());
    let mut buf = [0u8; 64];
    let (mut calls, mut bytes, mut first_error) = (0u64, 0usize, None);
    if way == Way::Poll {
        wait_until(reader.as_fd(), Readiness::Readable, config.delay * 10 + Duration::from_secs(5))
            .map_err(io("polling"))?;
    }
    loop {
        calls += 1;
        match reader.read(&mut buf) {
            Ok(n) => {
                bytes = n;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(describe(&e));
                    let _ = go.send(());
                }
                let would_block = e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut;
                if way != Way::NonBlocking || !would_block {
                    break;
                }
            }
        }
    }
    let (waited, cpu) = (started.elapsed(), thread_cpu().saturating_sub(cpu_before));
    drop(go);
    // The peer's write may fail once the timeout case has given up and closed; that is fine.
    let _ = join("late-peer", peer)?;
    drop(reader);
    Ok(BlockingRow { way, bytes, first_error, recv_calls: calls, waited, cpu })
}

fn describe(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EAGAIN) => "EAGAIN: ",
        _ => "",
    };
    format!("{name}{}", crate::net::strip_os_error(&e.to_string()))
}

impl BlockingReport {
    fn row(&self, way: Way) -> Option<&BlockingRow> {
        self.rows.iter().find(|r| r.way == way)
    }
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the peer sends {} bytes after {}; the timeout is {}",
            PAYLOAD.len(),
            Took(self.config.delay),
            Took(self.config.timeout)
        )?;
        let mut table = Table::new(&["way", "got", "recv calls", "waited", "CPU", "first recv error"]);
        for r in &self.rows {
            table.row([
                r.way.to_string(),
                format!("{} bytes", r.bytes),
                thousands(r.recv_calls),
                Took(r.waited).to_string(),
                Took(r.cpu).to_string(),
                r.first_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for BlockingReport {
    fn lesson(&self) -> String {
        let mut text = String::new();
        if let Some(r) = self.row(Way::Blocking) {
            text.push_str(&format!(
                "The blocking recv slept {} until the data came and used {} of CPU. ",
                Took(r.waited),
                Took(r.cpu)
            ));
        }
        if let Some(r) = self.row(Way::Timeout) {
            text.push_str(&match (&r.first_error, r.bytes) {
                (Some(error), 0) => format!(
                    "With a {} timeout recv gave up after {} with an error ({error}), not with 0 bytes: \
                     the connection is still open and the data can still come. ",
                    Took(self.config.timeout),
                    Took(r.waited)
                ),
                _ => format!(
                    "The recv with a {} timeout got the data in time ({}). ",
                    Took(self.config.timeout),
                    Took(r.waited)
                ),
            });
        }
        if let Some(r) = self.row(Way::NonBlocking) {
            text.push_str(&format!(
                "A non-blocking recv never waits: {} calls answered EAGAIN before the data came after {}, and \
                 the loop burned {} of CPU doing it. ",
                thousands(r.recv_calls.saturating_sub(1)),
                Took(r.waited),
                Took(r.cpu)
            ));
        }
        if let Some(r) = self.row(Way::Poll) {
            text.push_str(&format!(
                "poll waited {} for the socket to become readable using {} of CPU, then {} recv took the data: \
                 with many sockets, that is how one thread waits for all of them.",
                Took(r.waited),
                Took(r.cpu),
                if r.recv_calls == 1 { "one".to_owned() } else { thousands(r.recv_calls) }
            ));
        }
        text.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_timeout_gives_up_and_only_non_blocking_says_eagain_first() {
        let config = BlockingConfig { delay: Duration::from_millis(60), timeout: Duration::from_millis(10) };
        let report = run(config).unwrap();
        let got: Vec<(Way, usize, bool)> =
            report.rows.iter().map(|r| (r.way, r.bytes, r.first_error.is_some())).collect();
        assert_eq!(
            got,
            [
                (Way::Blocking, 4, false),
                (Way::Timeout, 0, true),
                (Way::NonBlocking, 4, true),
                (Way::Poll, 4, false)
            ]
        );
        assert!(report.rows[2].recv_calls > 1);
        assert_eq!((report.rows[0].recv_calls, report.rows[3].recv_calls), (1, 1));
    }
}
