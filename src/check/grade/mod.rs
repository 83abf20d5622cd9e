//! The grading logic, pure: observations in, a verdict and the words that
//! explain it out. Drivers observe; these functions judge. Everything here
//! is tested with literal inputs.

pub mod chat;
pub mod time;
pub mod traceback;

use std::fmt::Write;

use super::show;

/// How a stream of bytes that should have been an exact copy differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Fewer bytes came back, all of them right.
    Short {
        /// How many came back.
        got: usize,
    },
    /// More bytes came back than were sent.
    Long {
        /// How many came back.
        got: usize,
    },
    /// A byte differs.
    DiffersAt {
        /// The offset of the first differing byte.
        offset: usize,
    },
}

/// Compares what came back with what was sent; `None` when identical.
pub fn compare(sent: &[u8], got: &[u8]) -> Option<Mismatch> {
    if let Some(offset) = sent.iter().zip(got).position(|(a, b)| a != b) {
        return Some(Mismatch::DiffersAt { offset });
    }
    match got.len().cmp(&sent.len()) {
        std::cmp::Ordering::Less => Some(Mismatch::Short { got: got.len() }),
        std::cmp::Ordering::Greater => Some(Mismatch::Long { got: got.len() }),
        std::cmp::Ordering::Equal => None,
    }
}

/// The mismatch in words, with the bytes around it.
pub fn describe_mismatch(sent: &[u8], got: &[u8], mismatch: Mismatch) -> String {
    match mismatch {
        Mismatch::Short { got: 0 } => format!("sent {}, got nothing back", show::count(sent.len())),
        Mismatch::Short { got } => {
            format!("sent {}, got only {} back", show::count(sent.len()), show::grouped(got))
        }
        Mismatch::Long { got } => {
            format!("sent {}, got {} back", show::count(sent.len()), show::grouped(got))
        }
        Mismatch::DiffersAt { offset } => {
            let around = offset.saturating_sub(8);
            let mut text = format!("byte {offset} differs: sent ");
            let _ = write!(
                text,
                "{} but got {}",
                show::bytes(&sent[around..], 24),
                show::bytes(&got[around..], 24)
            );
            text
        }
    }
}

/// A share measured from `successes` of `trials`, with its 95% Wilson
/// score interval: sound even near 0% and 100% and for small counts, where
/// the textbook "p ± 1.96·√(p(1−p)/n)" interval is not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    /// successes / trials.
    pub estimate: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// The z value of a 99% two-sided interval: a correct server is failed by
/// chance in one run of a hundred at most.
const Z_99: f64 = 2.576;

impl Share {
    /// The share of `successes` in `trials` with its 99% interval.
    pub fn of(successes: u64, trials: u64) -> Share {
        if trials == 0 {
            return Share { estimate: 0.0, low: 0.0, high: 1.0 };
        }
        let (n, p, z) = (trials as f64, successes as f64 / trials as f64, Z_99);
        let center = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        Share { estimate: p, low: (center - half).max(0.0), high: (center + half).min(1.0) }
    }

    /// Whether `expected` lies inside the interval.
    pub fn admits(&self, expected: f64) -> bool {
        (self.low..=self.high).contains(&expected)
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}% (99% interval {:.0}% to {:.0}%)",
            self.estimate * 100.0,
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

/// What `/proc` showed about a program during a quiet second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quiet {
    /// How long it was watched, in milliseconds.
    pub window_ms: u64,
    /// CPU time it used meanwhile, in milliseconds.
    pub cpu_ms: u64,
    /// How many times its threads were looked at.
    pub samples: u32,
    /// How many of those looks found a thread running or ready to run.
    pub busy_samples: u32,
}

impl Quiet {
    /// The share of one core it used.
    pub fn cpu_share(&self) -> f64 {
        if self.window_ms == 0 { 0.0 } else { self.cpu_ms as f64 / self.window_ms as f64 }
    }

    /// Whether it was spinning: a program with nothing to do sleeps in
    /// `accept`/`recv`. It spins when it used half a core or more, or when
    /// a thread was found running at most looks and it used some CPU at
    /// all (3% of a core). On a busy machine a spinning thread spends most
    /// of its time waiting for its turn in state R, so its CPU time alone
    /// understates it: with 30 runnable threads on two cores it gets 7%.
    pub fn spinning(&self) -> bool {
        let busy = self.samples > 0 && self.busy_samples * 10 >= self.samples * 7;
        self.cpu_share() >= 0.5 || (busy && self.cpu_share() >= 0.03)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_the_first_difference() {
        assert_eq!(compare(b"hello", b"hello"), None);
        assert_eq!(compare(b"hello", b"he"), Some(Mismatch::Short { got: 2 }));
        assert_eq!(compare(b"he", b"hello"), Some(Mismatch::Long { got: 5 }));
        assert_eq!(compare(b"hello", b"help!"), Some(Mismatch::DiffersAt { offset: 3 }));
        let text = describe_mismatch(b"hello", b"help!", Mismatch::DiffersAt { offset: 3 });
        assert_eq!(text, r"byte 3 differs: sent b'hello' but got b'help!'");
        assert_eq!(
            describe_mismatch(&[0; 2048], &[0; 1024], Mismatch::Short { got: 1024 }),
            "sent 2,048 bytes, got only 1,024 back"
        );
    }

    #[test]
    fn the_interval_covers_what_it_should() {
        let share = Share::of(140, 200);
        assert!((share.estimate - 0.7).abs() < 1e-9);
        assert!(share.admits(0.7) && share.admits(0.63) && !share.admits(0.5) && !share.admits(0.9));
        let all = Share::of(200, 200);
        assert!(all.high == 1.0 && all.low > 0.95 && all.low < 1.0);
        assert!(!Share::of(80, 200).admits(0.7));
        assert_eq!(Share::of(0, 0).to_string(), "0% (99% interval 0% to 100%)");
    }

    #[test]
    fn spinning_is_told_from_sleeping() {
        let idle = Quiet { window_ms: 1000, cpu_ms: 0, samples: 20, busy_samples: 0 };
        let spinning = Quiet { window_ms: 1000, cpu_ms: 980, samples: 20, busy_samples: 20 };
        let starved = Quiet { window_ms: 1000, cpu_ms: 200, samples: 20, busy_samples: 19 };
        let blip = Quiet { window_ms: 1000, cpu_ms: 20, samples: 20, busy_samples: 2 };
        // Seen on a machine with a load of 30: 70 ms of CPU, running at every look.
        let crowded = Quiet { window_ms: 1083, cpu_ms: 70, samples: 9, busy_samples: 9 };
        // Runnable at every look but given no CPU: not evidence of anything.
        let never_ran = Quiet { window_ms: 1000, cpu_ms: 0, samples: 9, busy_samples: 9 };
        assert!(!idle.spinning() && spinning.spinning() && starved.spinning() && !blip.spinning());
        assert!(crowded.spinning() && !never_ran.spinning());
    }
}
