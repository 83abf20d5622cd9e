//! The receiver's admission rules, through the sans-IO [`Endpoint`] in
//! virtual time: floods of HELLOs (forged or real), a real sender among
//! them, and the memory they may make it keep. No sockets, no files: the
//! test plays the driver.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::content;
use crate::transfer::endpoint::admission::{Caps, EVICTABLE_AFTER};
use crate::transfer::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use crate::transfer::packet::{Hello, Packet, Repr};
use crate::transfer::{Protocol, ReceiverLimits, Sender, SenderConfig, SenderEvent};

fn endpoint(caps: Caps, max_buffered: usize, now: Instant) -> Endpoint {
    let limits = ReceiverLimits {
        max_window: 4096,
        max_block: u16::MAX,
        peer_timeout: Duration::from_secs(10),
        progress_timeout: Duration::from_secs(30),
        linger: Duration::from_secs(2),
    };
    Endpoint::new(EndpointConfig { limits, caps, max_buffered, secret: [42; 32] }, now)
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000))
}

fn hello(session: u32, name: &str, token: &[u8], window: u32, block: u16) -> Vec<u8> {
    let hello =
        Hello { protocol: Protocol::SelectiveRepeat, seq_bits: 16, window, block, size: None, name, token };
    let mut out = Vec::new();
    Repr::Hello(hello).emit(session, &mut out);
    out
}

/// Everything the endpoint sends, parsed to text, with its destination.
fn sent(endpoint: &mut Endpoint) -> Vec<(SocketAddr, String)> {
    let (mut buf, mut all) = (Vec::new(), Vec::new());
    while let Some((_, to)) = endpoint.poll_transmit(&mut buf) {
        let text =
            Packet::new_checked(&buf).ok().and_then(|p| Repr::parse(&p).ok().map(|r| format!("{r:?}")));
        all.push((to, text.unwrap_or_default()));
    }
    all
}

/// The token in the RETRY the endpoint just sent to `to`.
fn retry_token(endpoint: &mut Endpoint, to: SocketAddr) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Some((_, dest)) = endpoint.poll_transmit(&mut buf) {
        if dest == to
            && let Ok(Repr::Retry { token }) = Repr::parse(&Packet::new_checked(&buf).unwrap())
        {
            return token.to_vec();
        }
    }
    panic!("no RETRY for {to}");
}

/// Opens a session for `from` the way a real sender does (HELLO, RETRY,
/// HELLO with the token), playing the driver that accepts it; true when accepted.
fn open(
    endpoint: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    session: u32,
    window: u32,
    block: u16,
) -> bool {
    assert!(endpoint.handle_datagram(now, 0, from, &hello(session, "f", &[], window, block)).is_none());
    let token = retry_token(endpoint, from);
    let name = format!("flood-{from}-{session}");
    match endpoint.handle_datagram(now, 0, from, &hello(session, &name, &token, window, block)) {
        Some(new) => {
            endpoint.accept(now, new);
            true
        }
        None => false,
    }
}

#[test]
fn forged_hellos_cost_a_retry_each_and_keep_nothing() {
    let now = Instant::now();
    let mut endpoint = endpoint(Caps { max_sessions: 4, max_per_source: 2 }, 1 << 20, now);
    for i in 0..10_000 {
        assert!(endpoint.handle_datagram(now, 0, addr(i), &hello(i, "x", &[], 8, 1000)).is_none());
        // A guessed token is no better than none.
        assert!(endpoint.handle_datagram(now, 0, addr(i), &hello(i, "x", &[7; 20], 8, 1000)).is_none());
    }
    assert_eq!(endpoint.sessions(), 0);
    let replies = sent(&mut endpoint);
    assert_eq!(replies.len(), 20_000);
    assert!(replies.iter().all(|(_, r)| r.starts_with("Retry")), "{:?}", &replies[..2]);
    assert!(endpoint.poll_event().is_none(), "a forged HELLO was reported");
    assert_eq!(endpoint.stats().retries, 20_000);
}

/// Drives a real sender from `from` against `endpoint` in virtual time
/// from `now`, while `flood` (addresses with open sessions) pings every
/// 100 ms; returns what the receiver delivered and the sender's end.
fn transfer_during_flood(
    endpoint: &mut Endpoint,
    mut now: Instant,
    from: SocketAddr,
    flood: &[(SocketAddr, u32)],
    data: &[u8],
) -> (Vec<u8>, Result<(), String>) {
    let config = SenderConfig {
        protocol: Protocol::SelectiveRepeat,
        window: 32,
        block: 1000,
        seq_bits: 16,
        session: 7,
        initial_rto: Duration::from_millis(25),
        min_rto: Duration::from_millis(1),
        max_rto: Duration::from_millis(500),
        peer_timeout: Duration::from_secs(10),
        progress_timeout: Duration::from_secs(30),
        name: "real.bin".to_owned(),
        size: Some(data.len() as u64),
    };
    let mut sender = Sender::new(config, now).unwrap();
    let (mut offset, mut received, mut buf) = (0, Vec::new(), Vec::new());
    let mut next_ping = now;
    let end = now + Duration::from_secs(60);
    while now < end {
        if now >= next_ping {
            let mut ping = Vec::new();
            for &(peer, session) in flood {
                Repr::Ping.emit(session, &mut ping);
                endpoint.handle_datagram(now, 0, peer, &ping);
            }
            next_ping = now + Duration::from_millis(100);
        }
        while sender.wants_block() {
            if offset == data.len() {
                sender.end_input();
                break;
            }
            let next = (offset + sender.block_size()).min(data.len());
            sender.push_block(data[offset..next].to_vec());
            offset = next;
        }
        while sender.poll_transmit(now, &mut buf) {
            if let Some(new) = endpoint.handle_datagram(now, 0, from, &buf) {
                endpoint.accept(now, new);
            }
        }
        endpoint.handle_timeout(now);
        while let Some(event) = endpoint.poll_event() {
            match event {
                EndpointEvent::Data(key, bytes) if key.1 == from => received.extend_from_slice(&bytes),
                EndpointEvent::Verified(key) => endpoint.committed(now, key, Ok(())),
                _ => {}
            }
        }
        while let Some((_, to)) = endpoint.poll_transmit(&mut buf) {
            if to == from {
                sender.handle_datagram(now, &buf);
            }
        }
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::Connected { .. } => {}
                SenderEvent::Done => return (received, Ok(())),
                SenderEvent::Failed(e) => return (received, Err(e.to_string())),
            }
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        let deadlines = [sender.poll_timeout(), endpoint.poll_timeout(now), Some(next_ping)];
        now = deadlines.into_iter().flatten().min().unwrap_or(now).max(now + Duration::from_micros(50));
    }
    (received, Err("still running after a minute".to_owned()))
}

#[test]
fn a_flood_that_only_pings_leaves_a_real_sender_its_session() {
    let start = Instant::now();
    let caps = Caps { max_sessions: 64, max_per_source: 16 };
    let mut endpoint = endpoint(caps, 64 << 20, start);
    // 100 attackers at real addresses (they answer the RETRY), 4 sessions each.
    let mut flood = Vec::new();
    for i in 0..100 {
        for session in 0..4 {
            if open(&mut endpoint, start, addr(i), 100 + session, 8, 1000) {
                flood.push((addr(i), 100 + session));
            }
        }
    }
    assert_eq!(flood.len(), 64, "the flood fills the receiver, no more");
    assert_eq!(endpoint.sessions(), 64);
    assert_eq!(endpoint.stats().refused, 100 * 4 - 64);
    // A real sender while the flood is fresh is turned away; once the flood
    // has sat idle (pinging only) past EVICTABLE_AFTER, it takes a place.
    let real = SocketAddr::from(([192, 0, 2, 1], 5000));
    let data = content(50_000, 9);
    let (_, early) = transfer_during_flood(&mut endpoint, start, real, &flood, &data);
    assert!(early.as_ref().is_err_and(|e| e.contains("busy")), "{early:?}");
    let later = start + EVICTABLE_AFTER + Duration::from_millis(200);
    let (received, result) = transfer_during_flood(&mut endpoint, later, real, &flood, &data);
    assert_eq!(result, Ok(()));
    assert!(received == data);
    assert!(endpoint.sessions() <= 64);
    assert_eq!(endpoint.stats().evicted, 1, "one flooder gave its place");
}

#[test]
fn one_address_gets_its_cap_and_another_still_gets_in() {
    let now = Instant::now();
    let mut endpoint = endpoint(Caps { max_sessions: 64, max_per_source: 16 }, 64 << 20, now);
    let opened = (0..16).filter(|&s| open(&mut endpoint, now, addr(1), s, 8, 1000)).count();
    assert_eq!(opened, 16);
    assert!(!open(&mut endpoint, now, addr(1), 16, 8, 1000));
    let refusal = sent(&mut endpoint).into_iter().find(|(_, r)| r.contains("Refused"));
    assert!(refusal.is_some_and(|(_, r)| r.contains("from your address")));
    assert!(open(&mut endpoint, now, addr(2), 1, 8, 1000), "another address is still welcome");
}

#[test]
fn out_of_order_blocks_of_all_sessions_share_one_budget() {
    let now = Instant::now();
    let budget = 4 << 20;
    let mut endpoint = endpoint(Caps { max_sessions: 8, max_per_source: 8 }, budget, now);
    for session in 0..8 {
        assert!(open(&mut endpoint, now, addr(1), session, 4096, 60_000));
    }
    endpoint.handle_timeout(now);
    // Every session gets blocks 1..200 of 60 kB, never block 0: 96 MB held
    // out of order if nothing stopped it.
    let block = vec![7u8; 60_000];
    let mut datagram = Vec::new();
    for session in 0..8 {
        for seq in 1..200u32 {
            Repr::Data { seq, stamp: seq as u16, payload: &block }.emit(session, &mut datagram);
            endpoint.handle_datagram(now, 0, addr(1), &datagram);
        }
    }
    assert!(endpoint.buffered_bytes() <= budget, "{} bytes kept out of order", endpoint.buffered_bytes());
    assert!(endpoint.buffered_bytes() > budget / 2, "the budget is there to be used");
}
