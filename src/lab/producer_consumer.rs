//! `lab producer-consumer`: P producers and C consumers over a bounded queue.
//!
//! Two queues do the same job: crossbeam's bounded channel (what a Rust
//! program would use) and [`BoundedQueue`], a `Mutex<VecDeque>` with two
//! `Condvar`s written here to show what such a channel does inside. Each runs
//! three scenarios: slow consumers (the queue fills and producers wait), slow
//! producers (it empties and consumers wait), and no work at all (the queue's
//! own cost). Every item is numbered, and the run checks that each one was
//! consumed exactly once.
//!
//! A wait is counted once per `put` that found the queue full, or `take` that
//! found it empty, however many wake-ups it then took.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use serde::Serialize;

use super::table::Table;
use super::{LabError, Lesson, Took, join, spawn, thousands};
use crate::stats::as_millis;

/// The shape of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PcConfig {
    /// Producer threads.
    pub producers: usize,
    /// Consumer threads.
    pub consumers: usize,
    /// Items the queue holds at most.
    pub capacity: usize,
    /// Items each producer makes.
    pub items: u64,
    /// The time the slow side spends on each item.
    #[serde(rename = "work_ms", serialize_with = "as_millis")]
    pub work: Duration,
}

/// Which queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueKind {
    /// `crossbeam_channel::bounded`.
    Channel,
    /// [`BoundedQueue`]: a mutex and two condition variables.
    MutexCondvar,
}

/// Which side is slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Consumers spend the work time on each item.
    SlowConsumers,
    /// Producers spend the work time on each item.
    SlowProducers,
    /// Nobody works: the queue's own speed.
    NoWork,
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueKind::Channel => "channel",
            QueueKind::MutexCondvar => "mutex+condvar",
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::SlowConsumers => "slow consumers",
            Scenario::SlowProducers => "slow producers",
            Scenario::NoWork => "no work",
        })
    }
}

/// One queue in one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PcRow {
    /// The queue.
    pub queue: QueueKind,
    /// The scenario.
    pub scenario: Scenario,
    /// `put`s that found the queue full and waited.
    pub producer_waits: u64,
    /// `take`s that found the queue empty and waited.
    pub consumer_waits: u64,
    /// Items taken out, in all.
    pub consumed: u64,
    /// Items produced but never consumed.
    pub missing: u64,
    /// Items consumed more than once (counting each extra time), or never produced.
    pub duplicated: u64,
    /// From start until the last consumer was done.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// Items consumed per second.
    pub items_per_sec: f64,
}

impl PcRow {
    /// Every produced item was consumed once, and nothing else was.
    pub fn exactly_once(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }
}

/// What `lab producer-consumer` measured.
#[derive(Clone, Debug, Serialize)]
pub struct PcReport {
    /// The shape of the run.
    pub config: PcConfig,
    /// Items produced in each run.
    pub items: u64,
    /// Every queue in every scenario.
    pub rows: Vec<PcRow>,
}

/// A bounded FIFO queue built from a mutex and two condition variables. It
/// closes when its last [`Producer`] is dropped: takers then get what is
/// left, then `None`.
#[derive(Debug)]
pub struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    not_full: Condvar,
    not_empty: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    producers: usize,
}

/// The putting end of a [`BoundedQueue`].
#[derive(Debug)]
pub struct Producer<T>(Arc<BoundedQueue<T>>);

/// The taking end of a [`BoundedQueue`].
#[derive(Debug, Clone)]
pub struct Consumer<T>(Arc<BoundedQueue<T>>);

impl<T> BoundedQueue<T> {
    /// A queue of at most `capacity` items (at least 1) with `producers` producer ends.
    pub fn channel(capacity: usize, producers: usize) -> (Vec<Producer<T>>, Consumer<T>) {
        let queue = Arc::new(BoundedQueue {
            state: Mutex::new(State { items: VecDeque::with_capacity(capacity), producers }),
            not_full: Condvar::new(),
            not_empty: Condvar::new(),
            capacity: capacity.max(1),
        });
        ((0..producers).map(|_| Producer(queue.clone())).collect(), Consumer(queue))
    }

    // The state stays consistent across a panic (each change is one push or pop): ignore poisoning.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Producer<T> {
    /// Adds `item`, waiting while the queue is full; returns whether it waited.
    pub fn put(&self, item: T) -> bool {
        let queue = &self.0;
        let mut state = queue.lock();
        let waited = state.items.len() >= queue.capacity;
        while state.items.len() >= queue.capacity {
            state = queue.not_full.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.items.push_back(item);
        drop(state);
        queue.not_empty.notify_one();
        waited
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.producers -= 1;
        if state.producers == 0 {
            drop(state);
            self.0.not_empty.notify_all();
        }
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item, waiting while the queue is empty and open;
    /// `None` once it is closed and empty. Also returns whether it waited.
    pub fn take(&self) -> (Option<T>, bool) {
        let queue = &self.0;
        let mut state = queue.lock();
        let waited = state.items.is_empty() && state.producers > 0;
        while state.items.is_empty() && state.producers > 0 {
            state = queue.not_empty.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        let item = state.items.pop_front();
        drop(state);
        if item.is_some() {
            queue.not_full.notify_one();
        }
        (item, waited)
    }
}

/// The two operations a scenario needs from a queue's ends.
trait Put: Send + 'static {
    /// Adds an item, waiting while full; whether it waited.
    fn put_item(&self, item: u64) -> bool;
}

trait Take: Send + 'static {
    /// Takes an item, waiting while empty; `None` when closed and drained.
    fn take_item(&self) -> (Option<u64>, bool);
}

impl Put for Sender<u64> {
    fn put_item(&self, item: u64) -> bool {
        match self.try_send(item) {
            Ok(()) => false,
            Err(TrySendError::Full(item)) => {
                // Fails only when every consumer is gone; the exactly-once check then shows the loss.
                let _ = self.send(item);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Take for Receiver<u64> {
    fn take_item(&self) -> (Option<u64>, bool) {
        match self.try_recv() {
            Ok(item) => (Some(item), false),
            Err(TryRecvError::Empty) => (self.recv().ok(), true),
            Err(TryRecvError::Disconnected) => (None, false),
        }
    }
}

impl Put for Producer<u64> {
    fn put_item(&self, item: u64) -> bool {
        self.put(item)
    }
}

impl Take for Consumer<u64> {
    fn take_item(&self) -> (Option<u64>, bool) {
        self.take()
    }
}

/// Runs every queue in every scenario.
///
/// # Errors
/// When a thread cannot be started or panics.
pub fn run(config: PcConfig) -> Result<PcReport, LabError> {
    let mut rows = Vec::new();
    for queue in [QueueKind::Channel, QueueKind::MutexCondvar] {
        for scenario in [Scenario::SlowConsumers, Scenario::SlowProducers, Scenario::NoWork] {
            let row = match queue {
                QueueKind::Channel => {
                    let (tx, rx) = crossbeam_channel::bounded(config.capacity);
                    let producers = (0..config.producers).map(|_| tx.clone()).collect();
                    drop(tx);
                    exchange(config, scenario, producers, rx)
                }
                QueueKind::MutexCondvar => {
                    let (producers, consumer) = BoundedQueue::channel(config.capacity, config.producers);
                    exchange(config, scenario, producers, consumer)
                }
            };
            rows.push(PcRow { queue, ..row? });
        }
    }
    Ok(PcReport { config, items: config.producers as u64 * config.items, rows })
}

/// Moves every item from the producers to the consumers, counting waits,
/// then checks that each item arrived exactly once.
fn exchange<P: Put, C: Take + Clone>(
    config: PcConfig,
    scenario: Scenario,
    producers: Vec<P>,
    consumer: C,
) -> Result<PcRow, LabError> {
    let pause = |slow: Scenario| {
        let work = config.work;
        move || {
            if scenario == slow && !work.is_zero() {
                thread::sleep(work);
            }
        }
    };
    let started = Instant::now();
    // Consumers first: if a producer cannot be started, the others still get drained.
    let consumers = (1..=config.consumers)
        .map(|i| {
            let (consumer, work) = (consumer.clone(), pause(Scenario::SlowConsumers));
            spawn(&format!("consumer-{i}"), move || {
                let (mut waits, mut taken) = (0, Vec::new());
                loop {
                    let (item, waited) = consumer.take_item();
                    waits += u64::from(waited);
                    let Some(item) = item else { break };
                    taken.push(item);
                    work();
                }
                (waits, taken)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(consumer);
    let producers = producers
        .into_iter()
        .enumerate()
        .map(|(p, producer)| {
            let work = pause(Scenario::SlowProducers);
            spawn(&format!("producer-{}", p + 1), move || {
                let first = p as u64 * config.items;
                (first..first + config.items)
                    .map(|item| {
                        work();
                        u64::from(producer.put_item(item))
                    })
                    .sum::<u64>()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut producer_waits = 0;
    for handle in producers {
        producer_waits += join("producer", handle)?;
    }
    let total = config.producers as u64 * config.items;
    let mut times_seen = vec![0u32; usize::try_from(total).unwrap_or(usize::MAX)];
    let (mut consumer_waits, mut consumed, mut duplicated) = (0, 0, 0);
    for handle in consumers {
        let (waits, taken) = join("consumer", handle)?;
        consumer_waits += waits;
        consumed += taken.len() as u64;
        for item in taken {
            match times_seen.get_mut(item as usize) {
                Some(seen) => {
                    duplicated += u64::from(*seen > 0);
                    *seen += 1;
                }
                None => duplicated += 1,
            }
        }
    }
    let elapsed = started.elapsed();
    Ok(PcRow {
        queue: QueueKind::Channel,
        scenario,
        producer_waits,
        consumer_waits,
        consumed,
        missing: times_seen.iter().filter(|&&n| n == 0).count() as u64,
        duplicated,
        elapsed,
        items_per_sec: consumed as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

impl PcReport {
    fn row(&self, queue: QueueKind, scenario: Scenario) -> Option<&PcRow> {
        self.rows.iter().find(|r| r.queue == queue && r.scenario == scenario)
    }
}

impl fmt::Display for PcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "{} producers × {} items, {} consumers, queue capacity {}, {} of work per item on the slow side",
            c.producers,
            thousands(c.items),
            c.consumers,
            c.capacity,
            Took(c.work)
        )?;
        let mut table = Table::new(&[
            "queue",
            "scenario",
            "producer waits (full)",
            "consumer waits (empty)",
            "items/s",
            "time",
            "each item once",
        ]);
        for r in &self.rows {
            let once = if r.exactly_once() {
                format!("yes ({})", thousands(r.consumed))
            } else {
                format!("NO: {} missing, {} extra", r.missing, r.duplicated)
            };
            table.row([
                r.queue.to_string(),
                r.scenario.to_string(),
                thousands(r.producer_waits),
                thousands(r.consumer_waits),
                thousands(r.items_per_sec as u64),
                Took(r.elapsed).to_string(),
                once,
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for PcReport {
    fn lesson(&self) -> String {
        let waits = |scenario, producer: bool| {
            self.rows
                .iter()
                .filter(|r| r.scenario == scenario)
                .map(|r| if producer { r.producer_waits } else { r.consumer_waits })
                .sum::<u64>()
        };
        let rate = |queue| self.row(queue, Scenario::NoWork).map_or(0, |r| r.items_per_sec as u64);
        let all_once = self.rows.iter().all(PcRow::exactly_once);
        format!(
            "With slow consumers the queue stays full and producers waited {} times; with slow producers it \
             stays empty and consumers waited {} times: a bounded queue makes the fast side keep the slow \
             side's pace instead of piling items up in memory. {} With no work to do, the channel moved {} \
             items/s and the mutex+condvar queue {}.",
            thousands(waits(Scenario::SlowConsumers, true)),
            thousands(waits(Scenario::SlowProducers, false)),
            if all_once {
                format!("In every run each of the {} items was consumed exactly once.", thousands(self.items))
            } else {
                "Some run lost or repeated items: see the last column.".to_owned()
            },
            thousands(rate(QueueKind::Channel)),
            thousands(rate(QueueKind::MutexCondvar)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condvar_queue_is_fifo_blocks_when_full_and_closes_with_its_last_producer() {
        let (mut producers, consumer) = BoundedQueue::channel(2, 2);
        let second = producers.pop().unwrap();
        let first = producers.pop().unwrap();
        assert!(!first.put(1));
        assert!(!first.put(2));
        let blocked = thread::spawn(move || second.put(3));
        // The third put cannot complete until a take makes room, however long we look.
        thread::sleep(Duration::from_millis(20));
        assert!(!blocked.is_finished());
        assert_eq!(consumer.take(), (Some(1), false));
        blocked.join().unwrap();
        drop(first);
        assert_eq!(consumer.take(), (Some(2), false));
        assert_eq!(consumer.take(), (Some(3), false));
        assert_eq!(consumer.take(), (None, false));
    }

    #[test]
    fn every_item_arrives_once_through_both_queues() {
        let config =
            PcConfig { producers: 3, consumers: 2, capacity: 2, items: 500, work: Duration::from_micros(10) };
        let report = run(config).unwrap();
        assert_eq!(report.rows.len(), 6);
        for r in &report.rows {
            assert!(r.exactly_once(), "{r:?}");
            assert_eq!(r.consumed, 1500);
        }
    }
}
