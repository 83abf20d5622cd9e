//! What a scheduler is configured with, and what it hands out and takes back.

use std::time::Duration;

/// One probe: a host (an index the driver maps to an address) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The host's index in the driver's host table.
    pub host: u32,
    /// The port probed.
    pub port: u16,
    /// 0 for the first send, 1 for the first retry, ...
    pub attempt: u8,
}

/// The slot of an in-flight probe; valid until the probe settles or expires.
pub type SlotId = u32;

/// How a scheduler paces and retries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// How long an answer is waited for, counted from the probe's send (the
    /// adaptive retry timeout starts here and never exceeds it).
    pub timeout: Duration,
    /// How many times an unanswered probe is sent again within a pass.
    pub retries: u8,
    /// The most probes in flight at once (at least 1).
    pub window: usize,
    /// Probes per second over all hosts, when capped.
    pub rate: Option<f64>,
    /// The slowest pace a host that limits its answers may be given.
    pub min_rate: Option<f64>,
    /// Passes over a host's silent ports at most, the first included.
    pub max_passes: u8,
    /// Give a host up after this long.
    pub host_timeout: Option<Duration>,
    /// How many schedulers probe each host (each a share of its ports): a
    /// throttled host's pace is split between them.
    pub sharers: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            timeout: Duration::from_secs(1),
            retries: 1,
            window: 4096,
            rate: None,
            min_rate: None,
            max_passes: MAX_PASSES,
            host_timeout: None,
            sharers: 1,
        }
    }
}

/// Passes over a throttling host's silent ports, by default.
pub const MAX_PASSES: u8 = 10;

/// A probe whose time ran out; its slot is free again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The slot it held (drop the driver's state for it).
    pub slot: SlotId,
    /// The probe.
    pub probe: Probe,
}

/// An answer the scheduler took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The probe answered (for a late answer: its port, last attempt).
    pub probe: Probe,
    /// The answer gave the port its verdict (false for control probes and
    /// ports that had one already).
    pub recorded: bool,
}

/// The shortest adaptive timeout: room for a busy host's scheduling delays.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
