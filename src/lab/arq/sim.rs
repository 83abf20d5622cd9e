//! One transfer through the crate's own ARQ engines ([`crate::transfer`]'s
//! `Sender` and `Receiver`), in virtual time, over a link with a fixed delay
//! and a fixed rate, losing exactly the datagrams the loss pattern names.
//! Every datagram becomes a [`Datagram`] of the timeline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::transfer::packet::{Packet, Repr};
use crate::transfer::{Protocol, Receiver, ReceiverEvent, ReceiverLimits, Sender, SenderConfig, SenderEvent};

/// The link and what it loses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// One-way propagation delay.
    #[serde(rename = "delay_ms", serialize_with = "crate::stats::as_millis")]
    pub delay: Duration,
    /// The time one DATA block takes to put on the wire.
    #[serde(rename = "block_time_ms", serialize_with = "crate::stats::as_millis")]
    pub block_time: Duration,
    /// DATA blocks whose first send is lost.
    pub lose_data: Vec<u32>,
    /// Blocks whose first send's acknowledgement is lost.
    pub lose_ack_of: Vec<u32>,
}

/// One datagram of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Datagram {
    /// Sent by the sender (true) or the receiver.
    pub from_sender: bool,
    /// What it is: `DATA 3`, `ACK 4`, ...
    pub label: String,
    /// A DATA block sent again.
    pub resent: bool,
    /// When it was sent, from the start.
    #[serde(rename = "sent_ms", serialize_with = "crate::stats::as_millis")]
    pub sent: Duration,
    /// When it arrived; `None` when the link lost it.
    #[serde(rename = "arrived_ms", serialize_with = "crate::stats::as_opt_millis")]
    pub arrived: Option<Duration>,
}

/// A retransmission timer that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timeout {
    /// When.
    #[serde(rename = "at_ms", serialize_with = "crate::stats::as_millis")]
    pub at: Duration,
}

/// What one protocol did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// The protocol.
    pub protocol: Protocol,
    /// Its window.
    pub window: u32,
    /// Every datagram, in the order sent.
    pub datagrams: Vec<Datagram>,
    /// Every timeout of the sender.
    pub timeouts: Vec<Timeout>,
    /// Whether the receiver got the content intact and the sender heard so.
    pub delivered: bool,
    /// From the first DATA sent until every block was acknowledged.
    #[serde(rename = "data_phase_ms", serialize_with = "crate::stats::as_millis")]
    pub data_phase: Duration,
    /// DATA datagrams sent, first sends and resends.
    pub data_sent: u64,
    /// Of which resends.
    pub resent: u64,
    /// DATA datagrams the link lost.
    pub data_lost: u64,
}

/// The content is made of this many blocks of this size.
pub(crate) const BLOCK: u16 = 1000;
/// Virtual time after which a run stops, done or not.
const GIVE_UP: Duration = Duration::from_secs(120);

/// One direction of the link: a transmitter that sends one datagram at a
/// time at the link's rate, then the delay. Arrivals keep their order.
struct Direction {
    free_at: Instant,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Direction {
    fn new(start: Instant) -> Self {
        Direction { free_at: start, in_flight: VecDeque::new() }
    }

    /// Puts a datagram on the wire; returns when it arrives (if not `lost`).
    fn send(&mut self, now: Instant, link: &Link, bytes: Vec<u8>, lost: bool) -> Instant {
        let wire = link.block_time.mul_f64(bytes.len() as f64 / f64::from(BLOCK));
        self.free_at = self.free_at.max(now) + wire;
        let arrival = self.free_at + link.delay;
        if !lost {
            self.in_flight.push_back((arrival, bytes));
        }
        arrival
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    fn take_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_arrival()? <= now { self.in_flight.pop_front().map(|(_, bytes)| bytes) } else { None }
    }
}

/// Runs `protocol` with `window` over `link`, moving `blocks` blocks.
pub fn run(protocol: Protocol, window: u32, blocks: u32, link: &Link) -> Run {
    let start = Instant::now();
    let mut now = start;
    let content: Vec<u8> = (0..u64::from(blocks) * u64::from(BLOCK)).map(|i| (i % 253) as u8).collect();
    let config = SenderConfig {
        protocol,
        window,
        block: BLOCK,
        seq_bits: 16,
        session: 0xa5a5,
        initial_rto: Duration::from_millis(200),
        min_rto: Duration::from_millis(1),
        max_rto: Duration::from_secs(4),
        peer_timeout: Duration::from_secs(60),
        progress_timeout: Duration::from_secs(60),
        name: "lab.bin".to_owned(),
        size: Some(content.len() as u64),
    };
    let limits = ReceiverLimits {
        max_window: 1 << 12,
        max_block: u16::MAX,
        peer_timeout: Duration::from_secs(60),
        progress_timeout: Duration::from_secs(60),
        linger: Duration::from_millis(100),
    };
    let mut out = Run {
        protocol,
        window,
        datagrams: Vec::new(),
        timeouts: Vec::new(),
        delivered: false,
        data_phase: Duration::ZERO,
        data_sent: 0,
        resent: 0,
        data_lost: 0,
    };
    let Ok(mut sender) = Sender::new(config, now) else { return out };
    let mut receiver: Option<Receiver> = None;
    let (mut up, mut down) = (Direction::new(start), Direction::new(start));
    let (mut offset, mut received, mut buf) = (0usize, Vec::new(), Vec::new());
    let (mut first_data, mut all_acked) = (None, None);
    let mut lost_once: Vec<(bool, u32)> = Vec::new();
    let (mut sent_seqs, mut arrived_seqs): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut finished = false;
    while !finished && now - start < GIVE_UP {
        while sender.wants_block() && offset < content.len() {
            let end = (offset + sender.block_size()).min(content.len());
            sender.push_block(content[offset..end].to_vec());
            offset = end;
        }
        if offset == content.len() && sender.wants_block() {
            sender.end_input();
        }
        while sender.poll_transmit(now, &mut buf) {
            let (label, seq) = describe(&buf);
            let mut resent = false;
            let lost = match seq {
                Some(seq) => {
                    first_data.get_or_insert(now);
                    resent = sent_seqs.contains(&seq);
                    if !resent {
                        sent_seqs.push(seq);
                    }
                    let lost = first_time(&mut lost_once, true, seq, &link.lose_data);
                    out.data_sent += 1;
                    out.resent += u64::from(resent);
                    out.data_lost += u64::from(lost);
                    lost
                }
                None => false,
            };
            let arrival = up.send(now, link, buf.clone(), lost);
            out.datagrams.push(datagram(true, label, resent, start, now, arrival, lost));
        }
        // What the receiver sends now answers nothing in particular (a timer).
        transmit_receiver(&mut receiver, None, now, link, &mut down, &mut lost_once, &mut out, start);
        let mut progressed = false;
        while let Some(bytes) = up.take_due(now) {
            progressed = true;
            let Ok(packet) = Packet::new_checked(&bytes) else { continue };
            let first_arrival = match describe(&bytes).1 {
                Some(seq) if !arrived_seqs.contains(&seq) => {
                    arrived_seqs.push(seq);
                    Some(seq)
                }
                _ => None,
            };
            match (&mut receiver, Repr::parse(&packet)) {
                (None, Ok(Repr::Hello(hello))) => {
                    receiver = Receiver::accept(now, packet.session(), &hello, limits).ok();
                }
                (Some(r), _) => r.handle_datagram(now, &packet),
                _ => {}
            }
            // What the receiver sends right after a block answers that block.
            transmit_receiver(
                &mut receiver,
                first_arrival,
                now,
                link,
                &mut down,
                &mut lost_once,
                &mut out,
                start,
            );
        }
        while let Some(bytes) = down.take_due(now) {
            progressed = true;
            sender.handle_datagram(now, &bytes);
        }
        if all_acked.is_none() && sender.stats().bytes_acked >= content.len() as u64 && first_data.is_some() {
            all_acked = Some(now);
        }
        if let Some(r) = receiver.as_mut() {
            while let Some(data) = r.poll_data() {
                received.extend_from_slice(&data);
            }
            while let Some(event) = r.poll_event() {
                if event == ReceiverEvent::Verified {
                    r.committed(now, Ok(()));
                }
            }
        }
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::Connected { .. } => {}
                SenderEvent::Done => {
                    out.delivered = received == content;
                    finished = true;
                }
                SenderEvent::Failed(_) => finished = true,
            }
        }
        if progressed || finished {
            continue;
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            let before = sender.stats().timeouts;
            sender.handle_timeout(now);
            if sender.stats().timeouts > before {
                out.timeouts.push(Timeout { at: now - start });
            }
            continue;
        }
        if let Some(r) = receiver.as_mut().filter(|r| r.poll_timeout(now).is_some_and(|t| t <= now)) {
            r.handle_timeout(now);
            continue;
        }
        let next = [
            sender.poll_timeout(),
            receiver.as_ref().and_then(|r| r.poll_timeout(now)),
            up.next_arrival(),
            down.next_arrival(),
        ];
        now = next.into_iter().flatten().min().unwrap_or(now + Duration::from_millis(1)).max(now);
    }
    if let (Some(first), Some(last)) = (first_data, all_acked) {
        out.data_phase = last - first;
    }
    out
}

/// Whether `seq` is in `pattern` and this is the first time it comes up
/// (only first sends are lost, so every transfer ends).
fn first_time(seen: &mut Vec<(bool, u32)>, data: bool, seq: u32, pattern: &[u32]) -> bool {
    if !pattern.contains(&seq) || seen.contains(&(data, seq)) {
        return false;
    }
    seen.push((data, seq));
    true
}

fn datagram(
    from_sender: bool,
    label: String,
    resent: bool,
    start: Instant,
    now: Instant,
    arrival: Instant,
    lost: bool,
) -> Datagram {
    Datagram { from_sender, label, resent, sent: now - start, arrived: (!lost).then(|| arrival - start) }
}

/// Sends what the receiver has to send; when it answers the first arrival
/// of block `answers`, the pattern may lose its first such ACK.
#[allow(clippy::too_many_arguments)]
fn transmit_receiver(
    receiver: &mut Option<Receiver>,
    answers: Option<u32>,
    now: Instant,
    link: &Link,
    down: &mut Direction,
    lost_once: &mut Vec<(bool, u32)>,
    out: &mut Run,
    start: Instant,
) {
    let Some(r) = receiver.as_mut() else { return };
    let mut buf = Vec::new();
    while r.poll_transmit(&mut buf) {
        let (label, _) = describe(&buf);
        let is_ack = label.starts_with("ACK");
        let lost = is_ack && answers.is_some_and(|seq| first_time(lost_once, false, seq, &link.lose_ack_of));
        let arrival = down.send(now, link, buf.clone(), lost);
        out.datagrams.push(datagram(false, label, false, start, now, arrival, lost));
    }
}

/// A short label and, for DATA, the block's sequence number.
fn describe(bytes: &[u8]) -> (String, Option<u32>) {
    let Ok(packet) = Packet::new_checked(bytes) else { return ("?".to_owned(), None) };
    let label = match Repr::parse(&packet) {
        Ok(Repr::Hello(..)) => "HELLO".to_owned(),
        Ok(Repr::HelloAck { .. }) => "HELLO-ACK".to_owned(),
        Ok(Repr::Data { seq, .. }) => return (format!("DATA {seq}"), Some(seq)),
        Ok(Repr::Ack { cumulative, sack, .. }) => {
            let ranges: Vec<String> = sack
                .iter()
                .map(|&(first, end)| match end.wrapping_sub(first) {
                    1 => first.to_string(),
                    _ => format!("{first}-{}", end.wrapping_sub(1)),
                })
                .collect();
            match ranges.is_empty() {
                true => format!("ACK {cumulative}"),
                false => format!("ACK {cumulative} +{}", ranges.join(",")),
            }
        }
        Ok(Repr::Fin { .. }) => "FIN".to_owned(),
        Ok(Repr::FinAck { .. }) => "FIN-ACK".to_owned(),
        Ok(Repr::Error { .. }) => "ERROR".to_owned(),
        Ok(Repr::Ping) => "PING".to_owned(),
        // Kinds this lab does not know get a generic label.
        #[allow(unreachable_patterns)]
        Ok(_) => "OTHER".to_owned(),
        Err(_) => "?".to_owned(),
    };
    (label, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(lose_data: Vec<u32>, lose_ack_of: Vec<u32>) -> Link {
        Link {
            delay: Duration::from_millis(10),
            block_time: Duration::from_millis(1),
            lose_data,
            lose_ack_of,
        }
    }

    #[test]
    fn every_protocol_delivers_through_the_pattern_and_loses_exactly_it() {
        for (protocol, window) in
            [(Protocol::StopAndWait, 1), (Protocol::GoBackN, 4), (Protocol::SelectiveRepeat, 4)]
        {
            let run = run(protocol, window, 8, &link(vec![2, 5], vec![3]));
            assert!(run.delivered, "{protocol}: {run:#?}");
            assert_eq!(run.data_lost, 2, "{protocol}");
            assert!(run.resent >= 2, "{protocol}: {run:#?}");
            assert_eq!(run.datagrams.iter().filter(|d| d.arrived.is_none()).count(), 3, "{protocol}");
        }
    }

    #[test]
    fn stop_and_wait_without_loss_takes_a_round_trip_per_block() {
        let run = run(Protocol::StopAndWait, 1, 4, &link(vec![], vec![]));
        assert!(run.delivered);
        assert_eq!(run.resent, 0);
        // Each block: 1 ms on the wire, 10 ms there, the ACK's own time on the wire, 10 ms back.
        let per_block = run.data_phase / 4;
        assert!(per_block >= Duration::from_millis(21) && per_block < Duration::from_millis(23), "{run:#?}");
    }
}
