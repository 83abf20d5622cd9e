//! Round-trip probes over an echo server, and their statistics.
//!
//! Each probe carries its sequence number in its first 8 bytes, followed by a
//! filler that depends only on its position, so a reply can be matched to its
//! probe: a reply to an earlier probe that timed out is counted as late, a
//! second reply to a probe as a duplicate, and over UDP a reply that matches
//! no probe (corrupted on the way) as mismatched; each is skipped, never
//! taken for the current probe's.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::EchoClient;
use crate::client::ClientError;
use crate::net::Transport;
use crate::stats::{RttSummary, as_opt_millis, millis, percent};

/// The smallest probe: the sequence number alone.
pub const MIN_PROBE_SIZE: usize = 8;

/// How many unanswered probes are remembered, so that their late replies
/// are told from duplicates; a reply to an older one counts as a duplicate.
const REMEMBERED: usize = 4096;

/// The outcome of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The server.
    pub from: SocketAddr,
    /// The probe's sequence number, from 1.
    pub seq: u64,
    /// Its size in bytes.
    pub bytes: usize,
    /// The round-trip time, or `None` when no reply came in time.
    #[serde(rename = "rtt_ms", serialize_with = "as_opt_millis")]
    pub rtt: Option<Duration>,
    /// Replies to earlier probes that had timed out, arriving while waiting for this one.
    pub late: u64,
    /// Second (or later) replies to a probe, arriving while waiting for this one.
    pub duplicates: u64,
    /// Replies that matched no probe (corrupted on the way), over UDP.
    pub mismatched: u64,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rtt {
            Some(rtt) => {
                write!(
                    f,
                    "{} bytes from {}: seq={} time={:.3} ms",
                    self.bytes,
                    self.from,
                    self.seq,
                    millis(rtt)
                )?;
            }
            None => write!(f, "no reply from {} for seq={}", self.from, self.seq)?,
        }
        write_extras(f, self.late, self.duplicates, self.mismatched, (" (", ")"))
    }
}

/// Writes the counts of `late`, duplicate and mismatched replies that are
/// not zero, comma-separated, between `open` and `close`.
fn write_extras(
    f: &mut fmt::Formatter<'_>,
    late: u64,
    duplicates: u64,
    mismatched: u64,
    (open, close): (&str, &str),
) -> fmt::Result {
    let counts = [
        (late, "late", "late"),
        (duplicates, "duplicate", "duplicates"),
        (mismatched, "mismatched", "mismatched"),
    ];
    let mut shown = counts.iter().filter(|(n, ..)| *n > 0).peekable();
    if shown.peek().is_none() {
        return Ok(());
    }
    f.write_str(open)?;
    for (i, (n, one, many)) in shown.enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}{n} {}", if *n == 1 { one } else { many })?;
    }
    f.write_str(close)
}

/// Sends probes through an [`EchoClient`] and times their echoes.
#[derive(Debug)]
pub struct Pinger {
    client: EchoClient,
    size: usize,
    timeout: Duration,
    /// The most recent probes that got no reply in time.
    unanswered: BTreeSet<u64>,
}

impl Pinger {
    /// A pinger sending `size`-byte probes (at least [`MIN_PROBE_SIZE`]) and
    /// waiting up to `timeout` for each echo.
    pub fn new(client: EchoClient, size: usize, timeout: Duration) -> Self {
        Pinger { client, size: size.max(MIN_PROBE_SIZE), timeout, unanswered: BTreeSet::new() }
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.client.peer()
    }

    /// Sends probe `seq` and waits for its echo.
    ///
    /// # Errors
    /// Socket errors, and over TCP [`ClientError::Unexpected`] when a reply
    /// matches no probe (the server is not an echo server: TCP does not
    /// corrupt, and the stream is out of step from there).
    pub async fn probe(&mut self, seq: u64) -> Result<Probe, ClientError> {
        let sent = payload(seq, self.size);
        let started = Instant::now();
        self.client.send(&sent).await?;
        let deadline = started + self.timeout;
        let mut probe = Probe {
            from: self.peer(),
            seq,
            bytes: self.size,
            rtt: None,
            late: 0,
            duplicates: 0,
            mismatched: 0,
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let reply = match self.client.receive(self.size, remaining).await {
                Ok(reply) => reply,
                Err(ClientError::Timeout { .. }) => {
                    self.remember_unanswered(seq);
                    return Ok(probe);
                }
                Err(e) => return Err(e),
            };
            if reply == sent {
                probe.rtt = Some(started.elapsed());
                return Ok(probe);
            }
            match sequence_of(&reply) {
                Some(earlier) if earlier < seq && reply == payload(earlier, self.size) => {
                    match self.unanswered.remove(&earlier) {
                        true => probe.late += 1,
                        false => probe.duplicates += 1,
                    }
                }
                _ if self.client.transport() == Transport::Udp => probe.mismatched += 1,
                _ => {
                    return Err(ClientError::Unexpected {
                        addr: self.peer(),
                        detail: "the reply matches no probe; is it an echo server?".to_owned(),
                    });
                }
            }
        }
    }

    fn remember_unanswered(&mut self, seq: u64) {
        self.unanswered.insert(seq);
        if self.unanswered.len() > REMEMBERED {
            self.unanswered.pop_first();
        }
    }
}

/// The bytes of probe `seq`: its number, then a printable filler.
fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut bytes = seq.to_be_bytes().to_vec();
    bytes.extend((MIN_PROBE_SIZE..size).map(|i| b'a' + (i % 26) as u8));
    bytes
}

fn sequence_of(reply: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(reply.get(..MIN_PROBE_SIZE)?.try_into().ok()?))
}

/// Collects probes into a [`PingSummary`].
#[derive(Clone, Debug, Default)]
pub struct PingStats {
    sent: u64,
    late: u64,
    duplicates: u64,
    mismatched: u64,
    rtts: Vec<Duration>,
}

impl PingStats {
    /// Counts one probe.
    pub fn add(&mut self, probe: &Probe) {
        self.sent += 1;
        self.late += probe.late;
        self.duplicates += probe.duplicates;
        self.mismatched += probe.mismatched;
        self.rtts.extend(probe.rtt);
    }

    /// The totals so far.
    pub fn summary(&self) -> PingSummary {
        let received = self.rtts.len() as u64;
        PingSummary {
            sent: self.sent,
            received,
            late: self.late,
            duplicates: self.duplicates,
            mismatched: self.mismatched,
            loss_percent: percent(self.sent - received, self.sent),
            rtt: RttSummary::of(&self.rtts),
        }
    }
}

/// What a run of probes found, like ping's closing lines.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PingSummary {
    /// Probes sent.
    pub sent: u64,
    /// Probes echoed in time.
    pub received: u64,
    /// Echoes that came after their probe's timeout.
    pub late: u64,
    /// Echoes of a probe after its first.
    pub duplicates: u64,
    /// Replies that matched no probe (corrupted on the way).
    pub mismatched: u64,
    /// The share of probes without an echo in time.
    pub loss_percent: f64,
    /// Round-trip statistics of the echoed probes.
    #[serde(rename = "rtt_ms")]
    pub rtt: Option<RttSummary>,
}

impl fmt::Display for PingSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sent, {} received, {:.1}% loss", self.sent, self.received, self.loss_percent)?;
        write_extras(f, self.late, self.duplicates, self.mismatched, (", ", ""))?;
        if let Some(rtt) = &self.rtt {
            write!(f, "\n{rtt}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_sequence_number() {
        let p = payload(0x0102, 12);
        assert_eq!(p, [0, 0, 0, 0, 0, 0, 1, 2, b'i', b'j', b'k', b'l']);
        assert_eq!(sequence_of(&p), Some(0x0102));
        assert_eq!(sequence_of(b"short"), None);
        assert_eq!(payload(1, 8).len(), 8);
    }

    #[test]
    fn summary_counts_loss_and_late_replies() {
        let mut stats = PingStats::default();
        let ms = Duration::from_millis;
        let probe = |seq, rtt, (late, duplicates, mismatched)| Probe {
            from: "127.0.0.1:7".parse().unwrap(),
            seq,
            bytes: 8,
            rtt,
            late,
            duplicates,
            mismatched,
        };
        stats.add(&probe(1, Some(ms(2)), (0, 0, 0)));
        stats.add(&probe(2, None, (0, 0, 1)));
        stats.add(&probe(3, Some(ms(4)), (1, 0, 0)));
        stats.add(&probe(4, Some(ms(6)), (0, 2, 0)));
        assert_eq!(
            probe(1, Some(ms(2)), (0, 0, 0)).to_string(),
            "8 bytes from 127.0.0.1:7: seq=1 time=2.000 ms"
        );
        assert_eq!(
            probe(2, None, (0, 0, 1)).to_string(),
            "no reply from 127.0.0.1:7 for seq=2 (1 mismatched)"
        );
        assert_eq!(
            probe(4, Some(ms(6)), (1, 2, 0)).to_string(),
            "8 bytes from 127.0.0.1:7: seq=4 time=6.000 ms (1 late, 2 duplicates)"
        );
        let s = stats.summary();
        assert_eq!((s.sent, s.received, s.late, s.duplicates, s.mismatched), (4, 3, 1, 2, 1));
        assert_eq!(s.loss_percent, 25.0);
        assert_eq!(s.rtt.unwrap().avg, ms(4));
        assert_eq!(
            s.to_string(),
            "4 sent, 3 received, 25.0% loss, 1 late, 2 duplicates, 1 mismatched\n\
             rtt min/avg/max/p99 = 2.000/4.000/6.000/6.000 ms"
        );
    }
}
