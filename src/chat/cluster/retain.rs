//! What the writer keeps after Redis acknowledged it, and why: a Redis that
//! is killed (or loses power) may come back without the last second or two
//! of writes it had acknowledged (its append-only file is written to disk
//! once a second by default). The writer keeps every line it wrote for
//! [`RETAIN`] with the id Redis gave it; when Redis comes back as a new
//! process, it looks which of them are gone and sends those again (readers
//! skip any copy they have seen, by writer and number).
//!
//! Commands are built as values and replies read here; nothing is sent.

use std::collections::VecDeque;
use std::time::Duration;

use redis::{Cmd, Value};
use tokio::time::Instant;

use super::Outbound;

/// How long an acknowledged line is kept: more than Redis's default
/// `appendfsync everysec` can lose.
pub const RETAIN: Duration = Duration::from_secs(5);
/// Most lines kept (a bound on memory under a flood).
const MOST: usize = 50_000;

/// A line Redis acknowledged, where it put it, and when.
#[derive(Debug)]
struct Kept {
    at: Instant,
    key: String,
    id: Vec<u8>,
    item: Outbound,
}

/// The lines acknowledged in the last [`RETAIN`], oldest first.
#[derive(Debug, Default)]
pub struct Retained {
    kept: VecDeque<Kept>,
    /// Lines that aged out or did not fit since Redis last started.
    forgotten: u64,
}

/// What a check against a restarted Redis found.
#[derive(Debug, Default)]
pub struct Lost {
    /// Kept lines Redis no longer has: to send again, oldest first.
    pub resend: Vec<Outbound>,
    /// Whether lines older than those kept may be gone too (all kept ones
    /// were gone, and older ones had been forgotten).
    pub maybe_more: bool,
}

impl Retained {
    /// `item` was added to the stream `key` as entry `id`.
    pub fn keep(&mut self, now: Instant, key: String, id: Vec<u8>, item: Outbound) {
        if self.kept.len() == MOST {
            self.kept.pop_front();
            self.forgotten += 1;
        }
        self.kept.push_back(Kept { at: now, key, id, item });
    }

    /// Forgets what was acknowledged more than [`RETAIN`] before `now`.
    pub fn expire(&mut self, now: Instant) {
        while self.kept.front().is_some_and(|kept| now.duration_since(kept.at) > RETAIN) {
            self.kept.pop_front();
            self.forgotten += 1;
        }
    }

    /// One `XRANGE key id id` per kept line: whether Redis still has it.
    pub fn checks(&self) -> Vec<Cmd> {
        self.kept
            .iter()
            .map(|kept| {
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(&kept.key).arg(&kept.id[..]).arg(&kept.id[..]);
                cmd
            })
            .collect()
    }

    /// Takes the kept lines whose check (in the order of [`Retained::checks`])
    /// came back empty: Redis lost them. Everything else kept is dropped: a
    /// new Redis process starts a new count.
    pub fn lost(&mut self, answers: &[Value]) -> Lost {
        let gone =
            |answer: Option<&Value>| matches!(answer, Some(Value::Array(entries)) if entries.is_empty());
        let kept = std::mem::take(&mut self.kept);
        let all_gone = !kept.is_empty() && (0..kept.len()).all(|i| gone(answers.get(i)));
        let resend: Vec<Outbound> = kept
            .into_iter()
            .enumerate()
            .filter(|(i, _)| gone(answers.get(*i)))
            .map(|(_, k)| k.item)
            .collect();
        let maybe_more = all_gone && std::mem::take(&mut self.forgotten) > 0;
        self.forgotten = 0;
        Lost { resend, maybe_more }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn line(seq: u64) -> Outbound {
        Outbound::Line {
            room: Arc::from("lobby"),
            line: Bytes::from(format!("<a> {seq}\n")),
            kept: true,
            seq,
        }
    }

    fn seq(item: &Outbound) -> u64 {
        match item {
            Outbound::Line { seq, .. } => *seq,
            _ => 0,
        }
    }

    #[test]
    fn lines_redis_lost_are_found_and_sent_again_in_order() {
        let start = Instant::now();
        let mut retained = Retained::default();
        for n in 1..=4 {
            retained.keep(start, "k".into(), format!("{n}-0").into_bytes(), line(n));
        }
        assert_eq!(retained.checks().len(), 4);
        let found = Value::Array(vec![Value::Nil]);
        let empty = Value::Array(vec![]);
        let lost = retained.lost(&[found.clone(), found, empty.clone(), empty]);
        assert_eq!(lost.resend.iter().map(seq).collect::<Vec<_>>(), [3, 4]);
        assert!(!lost.maybe_more);
        assert!(retained.checks().is_empty(), "a new Redis starts a new count");
    }

    #[test]
    fn old_lines_are_forgotten_and_losing_all_kept_ones_may_mean_more() {
        let start = Instant::now();
        let mut retained = Retained::default();
        retained.keep(start, "k".into(), b"1-0".to_vec(), line(1));
        retained.keep(start + RETAIN, "k".into(), b"2-0".to_vec(), line(2));
        retained.expire(start + RETAIN + Duration::from_millis(1));
        assert_eq!(retained.checks().len(), 1);
        let lost = retained.lost(&[Value::Array(vec![])]);
        assert_eq!(lost.resend.len(), 1);
        assert!(lost.maybe_more, "line 1 was forgotten and may be gone too");
    }
}
