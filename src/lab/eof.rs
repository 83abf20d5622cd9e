//! `lab eof`: how `recv` says the other side is gone.
//!
//! - An orderly close (the peer sends, then closes): `recv` returns the
//!   bytes, then 0, and 0 again every time it is asked.
//! - A reset (the peer closes with `SO_LINGER` 0, which sends RST instead of
//!   FIN): `recv` fails with "connection reset".
//! - A loop that ignores the 0 and keeps calling `recv`: it never blocks
//!   again, so it spins; the experiment counts its calls and the CPU they burn.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::SockRef;

use super::sock::{loopback_pair, thread_cpu};
use super::{LabError, Lesson, Took, thousands};
use crate::stats::as_millis;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EofConfig {
    /// How long the loop that ignores 0 may spin.
    #[serde(rename = "spin_ms", serialize_with = "as_millis")]
    pub spin: Duration,
}

/// The message the peer sends before it goes.
const GOODBYE: &[u8] = b"bye\n";
/// How many times `recv` is called after the peer left, to show what repeats.
const CALLS: usize = 3;

/// What one `recv` call gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RecvResult {
    /// Some bytes.
    Data {
        /// How many.
        bytes: usize,
    },
    /// 0: the peer will send nothing more.
    Zero,
    /// An error.
    Error {
        /// The error's kind, as Rust names it (`ConnectionReset`).
        kind: String,
        /// The operating system's words.
        message: String,
    },
}

impl fmt::Display for RecvResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvResult::Data { bytes } => write!(f, "{bytes} bytes"),
            RecvResult::Zero => f.write_str("0"),
            RecvResult::Error { kind, .. } => write!(f, "error {kind}"),
        }
    }
}

/// The loop that ignores 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Spin {
    /// `recv` calls made.
    pub calls: u64,
    /// Of which returned 0.
    pub zeros: u64,
    /// Bytes those calls received.
    pub bytes: u64,
    /// Wall time spent.
    #[serde(rename = "wall_ms", serialize_with = "as_millis")]
    pub wall: Duration,
    /// CPU time the looping thread used.
    #[serde(rename = "cpu_ms", serialize_with = "as_millis")]
    pub cpu: Duration,
}

/// What `lab eof` observed.
#[derive(Clone, Debug, Serialize)]
pub struct EofReport {
    /// What was run.
    pub config: EofConfig,
    /// `recv` after the peer sent `bye\n` and closed.
    pub orderly: Vec<RecvResult>,
    /// `recv` after the peer reset the connection.
    pub reset: Vec<RecvResult>,
    /// The loop that ignores 0.
    pub spin: Spin,
}

/// Runs the three cases.
///
/// # Errors
/// When loopback sockets cannot be made or used.
pub fn run(config: EofConfig) -> Result<EofReport, LabError> {
    let (mut client, mut server) = loopback_pair()?;
    client.write_all(GOODBYE).map_err(LabError::io("sending"))?;
    client.shutdown(Shutdown::Both).map_err(LabError::io("closing"))?;
    drop(client);
    let orderly = calls(&mut server);

    let (client, mut server) = loopback_pair()?;
    // A zero linger makes close() abort the connection: RST, not FIN.
    SockRef::from(&client).set_linger(Some(Duration::ZERO)).map_err(LabError::io("setting SO_LINGER"))?;
    drop(client);
    let reset = calls(&mut server);

    let (client, mut server) = loopback_pair()?;
    drop(client);
    let spin = spin(&mut server, config.spin);
    Ok(EofReport { config, orderly, reset, spin })
}

fn calls(server: &mut TcpStream) -> Vec<RecvResult> {
    let mut buf = [0u8; 1024];
    (0..CALLS)
        .map(|_| match server.read(&mut buf) {
            Ok(0) => RecvResult::Zero,
            Ok(n) => RecvResult::Data { bytes: n },
            Err(e) => RecvResult::Error {
                kind: format!("{:?}", e.kind()),
                message: crate::net::strip_os_error(&e.to_string()),
            },
        })
        .collect()
}

/// `while True: data = recv(1024); handle(data)`, with no `if not data: break`.
fn spin(server: &mut TcpStream, budget: Duration) -> Spin {
    let mut buf = [0u8; 1024];
    let (started, cpu_before) = (Instant::now(), thread_cpu());
    let (mut calls, mut zeros, mut bytes) = (0u64, 0u64, 0u64);
    while started.elapsed() < budget {
        calls += 1;
        match server.read(&mut buf) {
            Ok(0) => zeros += 1,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Spin { calls, zeros, bytes, wall: started.elapsed(), cpu: thread_cpu().saturating_sub(cpu_before) }
}

fn list(results: &[RecvResult]) -> String {
    results.iter().map(ToString::to_string).collect::<Vec<_>>().join(", then ")
}

impl fmt::Display for EofReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "peer sends {:?} and closes:      recv returns {}",
            String::from_utf8_lossy(GOODBYE),
            list(&self.orderly)
        )?;
        writeln!(f, "peer resets (SO_LINGER 0, RST): recv returns {}", list(&self.reset))?;
        if let Some(RecvResult::Error { message, .. }) =
            self.reset.iter().find(|r| matches!(r, RecvResult::Error { .. }))
        {
            writeln!(f, "  the error: {message}")?;
        }
        let s = &self.spin;
        write!(
            f,
            "a loop that ignores 0, for {}: {} recv calls, {} returned 0, {} bytes; CPU {} ({:.0}% of the time)",
            Took(s.wall),
            thousands(s.calls),
            thousands(s.zeros),
            s.bytes,
            Took(s.cpu),
            share(s.cpu, s.wall)
        )
    }
}

fn share(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() { 0.0 } else { 100.0 * part.as_secs_f64() / whole.as_secs_f64() }
}

impl Lesson for EofReport {
    fn lesson(&self) -> String {
        let mut text = String::new();
        let zeros_after_data = self
            .orderly
            .iter()
            .skip_while(|r| matches!(r, RecvResult::Data { .. }))
            .all(|r| *r == RecvResult::Zero);
        if zeros_after_data && self.orderly.contains(&RecvResult::Zero) {
            text.push_str(&format!(
                "After an orderly close recv returned {}: 0 bytes is how TCP says the other side will send \
                 nothing more, and it says so again on every call. ",
                list(&self.orderly)
            ));
        } else {
            text.push_str(&format!("After an orderly close recv returned {}. ", list(&self.orderly)));
        }
        match self.reset.iter().find(|r| matches!(r, RecvResult::Error { .. })) {
            Some(RecvResult::Error { message, .. }) => text.push_str(&format!(
                "A reset is not an end of data but an error (\"{message}\"): the peer aborted, and bytes it had \
                 not yet delivered may be lost. "
            )),
            _ => text.push_str(&format!("After the reset recv returned {}. ", list(&self.reset))),
        }
        let s = &self.spin;
        if s.zeros > 1 {
            text.push_str(&format!(
                "A loop that ignores the 0 called recv {} times in {} without receiving a byte and used {} of \
                 CPU ({:.0}% of that time): recv never blocks on a closed connection, so the loop spins. Stop \
                 at the first 0.",
                thousands(s.calls),
                Took(s.wall),
                Took(s.cpu),
                share(s.cpu, s.wall)
            ));
        } else {
            text.push_str(
                "The loop that ignores 0 was stopped before it could spin; give it a longer --spin.",
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orderly_close_reads_as_zero_and_a_reset_as_an_error() {
        let report = run(EofConfig { spin: Duration::from_millis(20) }).unwrap();
        assert_eq!(
            report.orderly,
            [RecvResult::Data { bytes: GOODBYE.len() }, RecvResult::Zero, RecvResult::Zero]
        );
        assert!(
            matches!(&report.reset[0], RecvResult::Error { kind, .. } if kind == "ConnectionReset"),
            "{:?}",
            report.reset
        );
        assert!(report.spin.zeros > 1 && report.spin.zeros == report.spin.calls, "{:?}", report.spin);
    }
}
