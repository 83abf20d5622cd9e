//! `lab arq`: stop-and-wait, Go-Back-N and selective repeat, datagram by
//! datagram, for the same losses.
//!
//! Each protocol moves the same blocks through the crate's own engines
//! ([`crate::transfer`]) in virtual time ([`sim`]), over a link with a fixed
//! one-way delay and rate that loses the first send of the DATA blocks (and
//! of the acknowledgements) the pattern names. The report is a timeline per
//! protocol (a sequence diagram in the terminal, and as SVG), and each
//! protocol's goodput beside the textbook bound for the same window, delay
//! and loss ([`crate::bench::transfer::bound`]).

pub mod sim;

use std::fmt;

use serde::Serialize;

pub use sim::{Datagram, Link, Run};

use super::table::Table;
use super::{Lesson, thousands};
use crate::bench::transfer::bound;
use crate::plot::{self, Lane, Message};
use crate::stats::millis;
use crate::transfer::Protocol;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArqConfig {
    /// Blocks of content.
    pub blocks: u32,
    /// Window of Go-Back-N and selective repeat.
    pub window: u32,
    /// The link.
    pub link: Link,
}

/// One protocol's result beside its bound.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArqRun {
    /// What happened.
    #[serde(flatten)]
    pub run: Run,
    /// Content bytes per second over the data phase.
    pub goodput_kb_s: f64,
    /// The textbook bound for this window, delay and the loss seen.
    pub bound_kb_s: f64,
}

/// What `lab arq` observed.
#[derive(Clone, Debug, Serialize)]
pub struct ArqReport {
    /// What was run.
    pub config: ArqConfig,
    /// a = one-way delay / block time.
    pub a: f64,
    /// What the link could carry, full all the time, in KB/s.
    pub link_kb_s: f64,
    /// One per protocol.
    pub runs: Vec<ArqRun>,
}

/// Runs the three protocols.
pub fn run(config: ArqConfig) -> ArqReport {
    let block_s = config.link.block_time.as_secs_f64().max(1e-9);
    let a = config.link.delay.as_secs_f64() / block_s;
    let link_kb_s = f64::from(sim::BLOCK) / block_s / 1000.0;
    let runs = Protocol::ALL
        .into_iter()
        .map(|protocol| {
            let window = if protocol == Protocol::StopAndWait { 1 } else { config.window };
            let run = sim::run(protocol, window, config.blocks, &config.link);
            let bytes = f64::from(config.blocks) * f64::from(sim::BLOCK);
            let goodput_kb_s = bytes / run.data_phase.as_secs_f64().max(1e-9) / 1000.0;
            let loss = run.data_lost as f64 / run.data_sent.max(1) as f64;
            let bound_kb_s = bound(protocol, f64::from(window), a, loss) * link_kb_s;
            ArqRun { run, goodput_kb_s, bound_kb_s }
        })
        .collect();
    ArqReport { config, a, link_kb_s, runs }
}

impl ArqReport {
    /// The timelines as an SVG sequence diagram, one lane per protocol.
    pub fn plot(&self) -> String {
        let lanes: Vec<Lane> = self
            .runs
            .iter()
            .map(|r| Lane {
                title: format!("{} (window {})", r.run.protocol, r.run.window),
                note: format!(
                    "{} DATA sent, {} resent; {:.0} KB/s (bound {:.0})",
                    r.run.data_sent, r.run.resent, r.goodput_kb_s, r.bound_kb_s
                ),
                messages: r
                    .run
                    .datagrams
                    .iter()
                    .map(|d| Message {
                        from_left: d.from_sender,
                        label: d.label.clone(),
                        sent: millis(d.sent),
                        arrived: d.arrived.map(millis),
                        highlight: d.resent,
                    })
                    .collect(),
                marks: r.run.timeouts.iter().map(|t| millis(t.at)).collect(),
            })
            .collect();
        plot::sequence("ARQ: the same losses, three protocols", &self.subtitle(), "ms", &lanes)
    }

    fn subtitle(&self) -> String {
        let link = &self.config.link;
        format!(
            "{} blocks of {} bytes; {} ms each way, {} ms per block on the wire (a = {:.1}); first sends lost: DATA {}, ACK of {}",
            self.config.blocks,
            sim::BLOCK,
            millis(link.delay),
            millis(link.block_time),
            self.a,
            list(&link.lose_data),
            list(&link.lose_ack_of)
        )
    }
}

fn list(items: &[u32]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Width of the arrow between the two parties in the terminal diagram.
const ARROW: usize = 30;

/// One datagram as a line of a terminal sequence diagram.
fn diagram_line(d: &Datagram) -> String {
    let label = if d.resent { format!("{} (again)", d.label) } else { d.label.clone() };
    let fill = |n: usize| "─".repeat(n);
    let room = ARROW.saturating_sub(label.chars().count() + 4);
    let arrow = match (d.from_sender, d.arrived) {
        (true, Some(_)) => format!("─ {label} {}▶", fill(room + 1)),
        (true, None) => format!("─ {label} {}✕{}", fill(room / 2), " ".repeat(room - room / 2 + 1)),
        (false, Some(_)) => format!("◀{} {label} ─", fill(room + 1)),
        (false, None) => format!("{}✕{} {label} ─", " ".repeat(room - room / 2 + 1), fill(room / 2)),
    };
    let fate = match d.arrived {
        Some(t) => format!("arrives {:.1}", millis(t)),
        None => "lost".to_owned(),
    };
    format!("{:>8.1} ms  |{arrow}|  {fate}", millis(d.sent))
}

impl fmt::Display for ArqReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.subtitle())?;
        for r in &self.runs {
            writeln!(f, "\n{} (window {})", r.run.protocol, r.run.window)?;
            writeln!(f, "{:>11}  sender{}receiver", "time", " ".repeat(ARROW - 12))?;
            let mut timeouts = r.run.timeouts.iter().peekable();
            for d in &r.run.datagrams {
                while let Some(t) = timeouts.next_if(|t| t.at <= d.sent) {
                    writeln!(f, "{:>8.1} ms  timeout", millis(t.at))?;
                }
                writeln!(f, "{}", diagram_line(d))?;
            }
        }
        writeln!(f)?;
        let mut table = Table::new(&[
            "protocol",
            "window",
            "DATA sent",
            "resent",
            "lost",
            "timeouts",
            "data phase",
            "goodput",
            "bound",
            "of bound",
        ]);
        for r in &self.runs {
            table.row([
                r.run.protocol.to_string(),
                r.run.window.to_string(),
                r.run.data_sent.to_string(),
                r.run.resent.to_string(),
                r.run.data_lost.to_string(),
                r.run.timeouts.len().to_string(),
                format!("{:.1} ms", millis(r.run.data_phase)),
                format!("{} KB/s", thousands(r.goodput_kb_s.round() as u64)),
                format!("{} KB/s", thousands(r.bound_kb_s.round() as u64)),
                format!("{:.0}%", 100.0 * r.goodput_kb_s / r.bound_kb_s.max(1e-9)),
            ]);
        }
        write!(
            f,
            "{table}\nthe link carries {} KB/s when it is never idle",
            thousands(self.link_kb_s.round() as u64)
        )
    }
}

impl Lesson for ArqReport {
    fn lesson(&self) -> String {
        let find = |p| self.runs.iter().find(|r| r.run.protocol == p);
        let (Some(sw), Some(gbn), Some(sr)) =
            (find(Protocol::StopAndWait), find(Protocol::GoBackN), find(Protocol::SelectiveRepeat))
        else {
            return String::new();
        };
        let round_trip = 2.0 * millis(self.config.link.delay) + millis(self.config.link.block_time);
        let mut text = format!(
            "Stop-and-wait sends one block per round trip (about {round_trip:.0} ms here for {:.0} ms of sending), so \
             it kept the link busy {:.0}% of the time whatever the losses: its bound is 1/(1+2a). ",
            millis(self.config.link.block_time),
            100.0 * sw.goodput_kb_s / self.link_kb_s
        );
        if gbn.run.resent > sr.run.resent {
            text.push_str(&format!(
                "For the same {} lost DATA, Go-Back-N resent {} blocks (each loss sends the whole window after it \
                 again) and selective repeat {} (only what was lost). ",
                gbn.run.data_lost, gbn.run.resent, sr.run.resent
            ));
        } else {
            text.push_str(&format!(
                "Go-Back-N resent {} blocks and selective repeat {}: with losses this sparse the window after a loss \
                 was nearly empty. ",
                gbn.run.resent, sr.run.resent
            ));
        }
        let best =
            self.runs.iter().max_by(|a, b| a.goodput_kb_s.total_cmp(&b.goodput_kb_s)).map(|r| r.run.protocol);
        text.push_str(&format!(
            "A window of {} keeps {} blocks in flight per round trip, which is why the windowed protocols moved \
             the data faster{}; ",
            self.config.window,
            self.config.window,
            best.map_or(String::new(), |p| format!(" ({p} fastest here)"))
        ));
        let below: Vec<String> = self
            .runs
            .iter()
            .filter(|r| r.goodput_kb_s < 0.9 * r.bound_kb_s)
            .map(|r| format!("{} {:.0}%", r.run.protocol, 100.0 * r.goodput_kb_s / r.bound_kb_s.max(1e-9)))
            .collect();
        if below.is_empty() {
            text.push_str("every protocol came within 10% of its textbook bound.");
        } else {
            text.push_str(&format!(
                "below the bound ({}) because the bound prices a loss at a block's time (a window's for \
                 Go-Back-N), while here each loss was noticed only a round trip or a timeout later ({} timeouts \
                 in all), and {} blocks are too few to average away the first and last round trips.",
                below.join(", "),
                self.runs.iter().map(|r| r.run.timeouts.len()).sum::<usize>(),
                self.config.blocks
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_report_has_a_line_per_datagram_and_a_cross_per_loss() {
        let link = Link {
            delay: Duration::from_millis(10),
            block_time: Duration::from_millis(1),
            lose_data: vec![2],
            lose_ack_of: vec![],
        };
        let report = run(ArqConfig { blocks: 6, window: 4, link });
        let text = report.to_string();
        let datagrams: usize = report.runs.iter().map(|r| r.run.datagrams.len()).sum();
        assert_eq!(text.lines().filter(|l| l.contains(" ms  |")).count(), datagrams);
        assert_eq!(text.matches('✕').count(), 3, "one loss per protocol: {text}");
        assert!(report.plot().matches('✕').count() == 3);
        assert!(!report.lesson().is_empty());
    }
}
