//! Both engines in virtual time, joined by two impaired links from
//! [`crate::impair::link`]: no sockets, no sleeping, and a seed per run, so a
//! transfer over a terrible network takes milliseconds and repeats exactly.

use std::time::{Duration, Instant};

use proptest::prelude::*;

mod admission;

use super::packet::{Packet, Repr};
use super::{
    Protocol, Receiver, ReceiverEvent, ReceiverLimits, Sender, SenderConfig, SenderEvent, TransferError,
};
use crate::impair::link::Link;
use crate::impair::model::{ImpairmentConfig, LossModel, Probability};

/// One simulated run.
#[derive(Clone, Debug)]
struct Sim {
    protocol: Protocol,
    window: u32,
    block: u16,
    seq_bits: u8,
    up: ImpairmentConfig,
    down: ImpairmentConfig,
    seed: u64,
    /// How long the receiver waits for a silent sender.
    receiver_timeout: Duration,
}

/// What happened.
#[derive(Debug)]
struct Outcome {
    received: Vec<u8>,
    sender: Result<(), TransferError>,
    receiver: Option<Result<(), TransferError>>,
    elapsed: Duration,
    retransmitted: u64,
}

/// Virtual time after which a run counts as stuck.
const STUCK: Duration = Duration::from_secs(24 * 3600);

impl Sim {
    fn new(protocol: Protocol) -> Self {
        Sim {
            protocol,
            window: 16,
            block: 100,
            seq_bits: 16,
            up: ImpairmentConfig::default(),
            down: ImpairmentConfig::default(),
            seed: 1,
            receiver_timeout: Duration::from_secs(3600),
        }
    }

    fn both(mut self, config: ImpairmentConfig) -> Self {
        self.up = config;
        self.down = config;
        self
    }

    fn run(&self, content: &[u8]) -> Outcome {
        let start = Instant::now();
        let mut now = start;
        let config = SenderConfig {
            protocol: self.protocol,
            window: if self.protocol == Protocol::StopAndWait { 1 } else { self.window },
            block: self.block,
            seq_bits: self.seq_bits,
            session: 0x5e55,
            initial_rto: Duration::from_millis(200),
            min_rto: Duration::from_millis(1),
            max_rto: Duration::from_secs(2),
            peer_timeout: Duration::from_secs(3600),
            progress_timeout: Duration::from_secs(3600),
            name: "sim.bin".to_owned(),
            size: Some(content.len() as u64),
        };
        let limits = ReceiverLimits {
            max_window: 1 << 16,
            max_block: u16::MAX,
            peer_timeout: self.receiver_timeout,
            progress_timeout: Duration::from_secs(3600),
            linger: Duration::from_secs(2),
        };
        let mut sender = Sender::new(config, now).unwrap();
        let mut receiver: Option<Receiver> = None;
        let mut up: Link<()> = Link::new(self.up, self.seed);
        let mut down: Link<()> = Link::new(self.down, self.seed.wrapping_add(1));
        let (mut offset, mut received, mut buf) = (0usize, Vec::new(), Vec::new());
        let (mut sender_result, mut receiver_result) = (None, None);
        while sender_result.is_none() {
            assert!(
                now - start < STUCK,
                "stuck: {:?} {:?}",
                sender.stats(),
                receiver.as_ref().map(Receiver::stats)
            );
            while sender.wants_block() {
                let end = (offset + sender.block_size()).min(content.len());
                if offset == content.len() {
                    sender.end_input();
                    break;
                }
                sender.push_block(content[offset..end].to_vec());
                offset = end;
            }
            while sender.poll_transmit(now, &mut buf) {
                up.send(now, (), buf.clone());
            }
            if let Some(r) = receiver.as_mut() {
                while r.poll_transmit(&mut buf) {
                    down.send(now, (), buf.clone());
                }
            }
            let mut progressed = false;
            while let Some(((), datagram)) = up.poll_transmit(now) {
                progressed = true;
                let Ok(packet) = Packet::new_checked(&datagram) else { continue };
                match (&mut receiver, Repr::parse(&packet)) {
                    (None, Ok(Repr::Hello(hello))) => {
                        receiver = Some(Receiver::accept(now, packet.session(), &hello, limits).unwrap());
                    }
                    (Some(r), _) => r.handle_datagram(now, &packet),
                    _ => {}
                }
            }
            while let Some(((), datagram)) = down.poll_transmit(now) {
                progressed = true;
                sender.handle_datagram(now, &datagram);
            }
            if let Some(r) = receiver.as_mut() {
                while let Some(data) = r.poll_data() {
                    received.extend_from_slice(&data);
                }
                while let Some(event) = r.poll_event() {
                    match event {
                        ReceiverEvent::Verified => r.committed(now, Ok(())),
                        ReceiverEvent::Done => receiver_result = Some(Ok(())),
                        ReceiverEvent::Failed(e) => receiver_result = Some(Err(e)),
                    }
                }
            }
            while let Some(event) = sender.poll_event() {
                match event {
                    SenderEvent::Connected { .. } => {}
                    SenderEvent::Done => sender_result = Some(Ok(())),
                    SenderEvent::Failed(e) => sender_result = Some(Err(e)),
                }
            }
            if progressed {
                continue;
            }
            if sender.poll_timeout().is_some_and(|t| t <= now) {
                sender.handle_timeout(now);
                continue;
            }
            if let Some(r) = receiver.as_mut().filter(|r| r.poll_timeout(now).is_some_and(|t| t <= now)) {
                r.handle_timeout(now);
                continue;
            }
            let deadlines = [
                sender.poll_timeout(),
                receiver.as_ref().and_then(|r| r.poll_timeout(now)),
                up.poll_timeout(),
                down.poll_timeout(),
            ];
            now = deadlines.into_iter().flatten().min().unwrap_or(now + Duration::from_millis(1)).max(now);
        }
        Outcome {
            received,
            sender: sender_result.unwrap_or(Ok(())),
            receiver: receiver_result,
            elapsed: now - start,
            retransmitted: sender.stats().retransmitted,
        }
    }
}

fn p(s: &str) -> Probability {
    s.parse().unwrap()
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn assert_delivered(sim: &Sim, data: &[u8]) -> Outcome {
    let outcome = sim.run(data);
    assert_eq!(outcome.sender, Ok(()), "{sim:?}");
    assert_eq!(outcome.receiver, Some(Ok(())), "{sim:?}");
    assert!(
        outcome.received == data,
        "{sim:?}: {} of {} bytes, content differs",
        outcome.received.len(),
        data.len()
    );
    outcome
}

#[test]
fn every_protocol_delivers_over_a_perfect_link() {
    for protocol in Protocol::ALL {
        for len in [0, 1, 99, 100, 101, 1000, 12_345] {
            let outcome = assert_delivered(&Sim::new(protocol), &content(len, 1));
            assert_eq!(outcome.retransmitted, 0, "{protocol} resent over a perfect link");
        }
    }
}

#[test]
fn sequence_numbers_wrap_around_many_times() {
    for (protocol, bits, window) in [
        (Protocol::StopAndWait, 1, 1),
        (Protocol::GoBackN, 3, 7),
        (Protocol::SelectiveRepeat, 4, 8),
        (Protocol::SelectiveRepeat, 2, 2),
    ] {
        let sim = Sim { seq_bits: bits, window, ..Sim::new(protocol) };
        // FIFO links (loss, duplicates, jitter that keeps order): with tiny
        // number spaces, a datagram overtaken by a whole space of others
        // would be mistaken for a new one, which is why real ones are 16 bits.
        let lossy = ImpairmentConfig {
            loss: LossModel::Independent { rate: p("10%") },
            duplicate: p("5%"),
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(2),
            ..Default::default()
        };
        assert_delivered(&sim.both(lossy), &content(30_000, 2));
    }
}

#[test]
fn windows_beyond_the_protocol_limits_are_refused() {
    for (protocol, bits, window) in [(Protocol::GoBackN, 3, 8), (Protocol::SelectiveRepeat, 4, 9)] {
        let config = SenderConfig {
            protocol,
            window,
            block: 100,
            seq_bits: bits,
            session: 1,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(1),
            max_rto: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(1),
            progress_timeout: Duration::from_secs(1),
            name: String::new(),
            size: None,
        };
        assert!(matches!(Sender::new(config, Instant::now()), Err(TransferError::Config(_))));
    }
}

#[test]
fn selective_repeat_resends_less_than_go_back_n() {
    let lossy = ImpairmentConfig { loss: LossModel::Independent { rate: p("5%") }, ..Default::default() };
    let data = content(100_000, 3);
    let gbn = assert_delivered(&Sim { window: 32, ..Sim::new(Protocol::GoBackN) }.both(lossy), &data);
    let sr = assert_delivered(&Sim { window: 32, ..Sim::new(Protocol::SelectiveRepeat) }.both(lossy), &data);
    assert!(
        sr.retransmitted * 3 < gbn.retransmitted,
        "SR resent {}, GBN {}",
        sr.retransmitted,
        gbn.retransmitted
    );
}

#[test]
fn heavy_loss_still_delivers() {
    let terrible = ImpairmentConfig { loss: LossModel::Independent { rate: p("70%") }, ..Default::default() };
    for protocol in Protocol::ALL {
        assert_delivered(&Sim::new(protocol).both(terrible), &content(3000, 4));
    }
}

#[test]
fn a_dead_link_ends_in_a_clear_error_not_a_hang() {
    let dead = ImpairmentConfig::loss(Probability::ONE);
    let sim = Sim::new(Protocol::SelectiveRepeat).both(dead);
    let outcome = sim.run(&content(500, 5));
    assert_eq!(outcome.sender, Err(TransferError::PeerSilent(Duration::from_secs(3600))));
    assert!(outcome.elapsed <= Duration::from_secs(3601));
}

fn impairments() -> impl Strategy<Value = ImpairmentConfig> {
    (0.0..0.6f64, 0.0..0.2f64, 0.0..0.2f64, 0.0..0.2f64, 0u64..30, 0u64..10, any::<bool>()).prop_map(
        |(loss, duplicate, corrupt, reorder, delay, jitter, bursty)| ImpairmentConfig {
            loss: if bursty {
                LossModel::GilbertElliott {
                    enter_bad: Probability::from_fraction(loss / 10.0).unwrap(),
                    leave_bad: p("30%"),
                    loss_bad: p("90%"),
                    loss_good: p("1%"),
                }
            } else {
                LossModel::Independent { rate: Probability::from_fraction(loss).unwrap() }
            },
            duplicate: Probability::from_fraction(duplicate).unwrap(),
            corrupt: Probability::from_fraction(corrupt).unwrap(),
            reorder: Probability::from_fraction(reorder).unwrap(),
            reorder_distance: 3,
            delay: Duration::from_millis(delay),
            jitter: Duration::from_millis(jitter),
            jitter_reorders: true,
            ..Default::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever the network does short of losing everything, every byte
    /// arrives once, in order, and the receiver verifies it, whatever the
    /// sequence space.
    #[test]
    fn received_bytes_equal_sent_bytes(
        protocol in prop::sample::select(Protocol::ALL.to_vec()),
        blocks in 0usize..300,
        tail in prop::sample::select(vec![0usize, 1, 57]),
        window in 1u32..40,
        seq_bits in prop::sample::select(vec![2u8, 3, 5, 16]),
        up in impairments(),
        down in impairments(),
        seed in any::<u64>(),
    ) {
        // Any sequence space, the window within what it allows: stale
        // copies of wrapped numbers must never be taken for new blocks.
        let window = window.min(protocol.max_window(seq_bits) as u32);
        let sim = Sim { protocol, window, seq_bits, up, down, seed, ..Sim::new(protocol) };
        let data = content(blocks * 100 + tail, seed as u8);
        let outcome = sim.run(&data);
        prop_assert_eq!(&outcome.sender, &Ok(()));
        prop_assert_eq!(&outcome.receiver, &Some(Ok(())));
        prop_assert!(outcome.received == data);
    }
}

#[test]
fn an_echo_server_is_not_taken_for_a_receiver() {
    let config = SenderConfig {
        protocol: Protocol::SelectiveRepeat,
        window: 8,
        block: 100,
        seq_bits: 16,
        session: 9,
        initial_rto: Duration::from_millis(100),
        min_rto: Duration::from_millis(1),
        max_rto: Duration::from_secs(1),
        peer_timeout: Duration::from_secs(5),
        progress_timeout: Duration::from_secs(5),
        name: "x".to_owned(),
        size: None,
    };
    let now = Instant::now();
    let mut sender = Sender::new(config, now).unwrap();
    let mut hello = Vec::new();
    assert!(sender.poll_transmit(now, &mut hello));
    // The "receiver" sends the HELLO straight back.
    sender.handle_datagram(now, &hello);
    match sender.poll_event() {
        Some(SenderEvent::Failed(TransferError::Protocol(message))) => {
            assert!(message.contains("echo server"))
        }
        other => panic!("{other:?}"),
    }
}

/// A path that loses, reorders and duplicates: what makes small sequence
/// spaces wrap while an old copy is still on its way.
fn messy() -> ImpairmentConfig {
    ImpairmentConfig {
        loss: LossModel::Independent { rate: p("10%") },
        duplicate: p("10%"),
        reorder: p("10%"),
        reorder_distance: 3,
        delay: Duration::from_millis(1),
        ..Default::default()
    }
}

/// Issue 15: selective repeat with 2-bit sequence numbers through loss,
/// reordering and duplication was still exchanging datagrams after a
/// minute. A copy delayed while the numbers wrapped was taken for the new
/// block of its number; the receiver ran ahead of the sender, and each took
/// the other's datagrams for old ones forever. Stamps tell them apart (PAWS).
#[test]
fn tiny_sequence_spaces_survive_reordering_and_duplication() {
    for seed in 0..24 {
        for (protocol, bits, window) in [
            (Protocol::SelectiveRepeat, 2, 2),
            (Protocol::SelectiveRepeat, 3, 4),
            (Protocol::GoBackN, 2, 3),
            (Protocol::GoBackN, 3, 7),
            (Protocol::StopAndWait, 1, 1),
        ] {
            let sim = Sim { seq_bits: bits, window, seed, ..Sim::new(protocol) }.both(messy());
            assert_delivered(&sim, &content(20_000, seed as u8));
        }
    }
}

/// A receiver more impatient than its sender (3 s against the sender's
/// hour) on a bursty path: the sender's backoff must stop well within the
/// receiver's timeout, which HELLO-ACK announces, or a burst of losses
/// outlasts it and the receiver drops a session the sender still sends on.
#[test]
fn backoff_fits_within_the_receivers_timeout_through_bursts() {
    for seed in 0..40 {
        let bursty = ImpairmentConfig { loss: "2%,30%".parse().unwrap(), ..Default::default() };
        let sim = Sim { seed, receiver_timeout: Duration::from_secs(3), ..Sim::new(Protocol::StopAndWait) }
            .both(bursty);
        assert_delivered(&sim, &content(14_000, seed as u8));
    }
}

/// Issue 14: a timeout of 300000000000 years panicked the receiver at the
/// first HELLO (an `Instant` overflow). The parsers refuse such values now,
/// and the engines cut whatever a caller of the library passes.
#[test]
fn timeouts_beyond_any_clock_are_cut_not_overflowed() {
    let now = Instant::now();
    let forever = Duration::MAX;
    let config = SenderConfig {
        protocol: Protocol::SelectiveRepeat,
        window: 4,
        block: 100,
        seq_bits: 16,
        session: 1,
        initial_rto: forever,
        min_rto: forever,
        max_rto: forever,
        peer_timeout: forever,
        progress_timeout: forever,
        name: "x".to_owned(),
        size: None,
    };
    let mut sender = Sender::new(config, now).unwrap();
    let mut hello = Vec::new();
    assert!(sender.poll_transmit(now, &mut hello));
    assert!(sender.poll_timeout().is_some_and(|t| t > now));
    sender.handle_timeout(now);
    let packet = Packet::new_checked(&hello).unwrap();
    let Ok(Repr::Hello(hello)) = Repr::parse(&packet) else { panic!("not a HELLO") };
    let limits = ReceiverLimits {
        max_window: 8,
        max_block: 100,
        peer_timeout: forever,
        progress_timeout: forever,
        linger: forever,
    };
    let mut receiver = Receiver::accept(now, 1, &hello, limits).unwrap();
    assert!(receiver.poll_timeout(now).is_some_and(|t| t > now));
    receiver.handle_timeout(now);
    let mut ack = Vec::new();
    assert!(receiver.poll_transmit(&mut ack), "the HELLO-ACK");
}
