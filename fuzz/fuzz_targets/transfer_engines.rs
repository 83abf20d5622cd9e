//! The transfer engines take their timeouts from the command line and
//! their datagrams from the network. The first line of the input is three
//! durations as a user writes them (`10s,30s,2s`: the silence and progress
//! timeouts and the linger), parsed as the flags are; the rest is a
//! conversation: a sender and a receiver on a path the input corrupts,
//! drops and injects into, and a receiving endpoint fed the same bytes.
//! Nothing may panic, whatever the durations or the datagrams.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socketeer::transfer::endpoint::admission::Caps;
use socketeer::transfer::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use socketeer::transfer::packet::{Packet, Repr};
use socketeer::transfer::{Protocol, Receiver, ReceiverLimits, Sender, SenderConfig};
use socketeer::units::parse_duration;

fuzz_target!(|data: &[u8]| {
    let (line, script) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => return,
    };
    let Ok(line) = std::str::from_utf8(line) else { return };
    let mut durations = line.split(',').map(|d| parse_duration(d).unwrap_or(Duration::from_secs(1)));
    let mut next = || durations.next().unwrap_or(Duration::from_secs(1));
    let (peer_timeout, progress_timeout, linger) = (next(), next(), next());
    let Some((&shape, script)) = script.split_first() else { return };
    let protocol = Protocol::ALL[usize::from(shape % 3)];
    let seq_bits = 1 + (shape >> 2) % 16;
    let window = if protocol == Protocol::StopAndWait { 1 } else { (protocol.max_window(seq_bits) as u32).min(8) };
    let now = Instant::now();
    let config = SenderConfig {
        protocol,
        window,
        block: 16,
        seq_bits,
        session: 5,
        initial_rto: Duration::from_millis(25),
        min_rto: Duration::from_millis(1),
        max_rto: peer_timeout,
        peer_timeout,
        progress_timeout,
        name: "fuzz.bin".to_owned(),
        size: None,
    };
    let Ok(mut sender) = Sender::new(config, now) else { return };
    let limits = ReceiverLimits { max_window: 64, max_block: 64, peer_timeout, progress_timeout, linger };
    let caps = Caps { max_sessions: 4, max_per_source: 2 };
    let mut endpoint = Endpoint::new(EndpointConfig { limits, caps, max_buffered: 4096, secret: [1; 32] }, now);
    let peer: SocketAddr = ([127, 0, 0, 1], 9).into();
    let mut receiver: Option<Receiver> = None;
    let (mut buf, mut clock, mut fed) = (Vec::new(), now, 0u8);
    // Each step: an action byte, a gap in milliseconds, a length, bytes.
    let mut rest = script;
    while let [action, gap, len, tail @ ..] = rest {
        clock += Duration::from_millis(u64::from(*gap));
        let len = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        if sender.wants_block() && fed < 40 {
            sender.push_block(bytes.iter().copied().chain(std::iter::repeat(fed)).take(16).collect());
            fed += 1;
        } else if sender.wants_block() {
            sender.end_input();
        }
        // The sender's datagrams, perhaps corrupted or dropped, go to the receiver.
        while sender.poll_transmit(clock, &mut buf) {
            if action & 1 == 1 && !buf.is_empty() {
                let at = usize::from(*gap) % buf.len();
                buf[at] ^= *action;
            }
            if action & 2 == 2 {
                continue;
            }
            if let Ok(packet) = Packet::new_checked(&buf) {
                match (&mut receiver, Repr::parse(&packet)) {
                    (None, Ok(Repr::Hello(hello))) => receiver = Receiver::accept(clock, 5, &hello, limits).ok(),
                    (Some(r), _) => r.handle_datagram(clock, &packet),
                    _ => {}
                }
            }
            if let Some(new) = endpoint.handle_datagram(clock, 0, peer, &buf) {
                endpoint.accept(clock, new);
            }
        }
        // The input's own bytes, as a datagram from anyone, to every engine.
        sender.handle_datagram(clock, bytes);
        if let (Some(r), Ok(packet)) = (&mut receiver, Packet::new_checked(bytes)) {
            r.handle_datagram(clock, &packet);
        }
        if let Some(new) = endpoint.handle_datagram(clock, usize::from(*action >> 7), peer, bytes) {
            endpoint.refuse(new, "fuzz");
        }
        if let Some(r) = &mut receiver {
            while r.poll_transmit(&mut buf) {
                if action & 4 == 0 {
                    sender.handle_datagram(clock, &buf);
                }
            }
            while r.poll_data().is_some() {}
            while let Some(event) = r.poll_event() {
                if event == socketeer::transfer::ReceiverEvent::Verified {
                    r.committed(clock, Ok(()));
                }
            }
            if r.poll_timeout(clock).is_some_and(|t| t <= clock) {
                r.handle_timeout(clock);
            }
        }
        while let Some(event) = endpoint.poll_event() {
            if let EndpointEvent::Verified(key) = event {
                endpoint.committed(clock, key, Err("fuzz".to_owned()));
            }
        }
        endpoint.handle_timeout(clock);
        while endpoint.poll_transmit(&mut buf).is_some() {}
        while sender.poll_event().is_some() {}
        if sender.poll_timeout().is_some_and(|t| t <= clock) {
            sender.handle_timeout(clock);
        }
    }
});
