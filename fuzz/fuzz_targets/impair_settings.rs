//! The impairment proxy's control socket takes `NAME=VALUE` lines from
//! anyone who can connect, and the relay then lives with whatever they set.
//! The first line of the input is such a line: no line may panic, a
//! rejected one must leave the settings as they were, and an accepted one
//! is driven through a [`Link`] with the rest of the input as datagrams and
//! the time between them, to the last release: the engine must not panic
//! either, and must account for every datagram.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socketeer::impair::ImpairmentConfig;
use socketeer::impair::link::Link;
use socketeer::impair::options::{apply, parse_pairs};

fuzz_target!(|data: &[u8]| {
    let (line, traffic) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let Ok(line) = std::str::from_utf8(line) else { return };
    let words: Vec<&str> = line.split_whitespace().collect();
    let (mut up, mut down) = (ImpairmentConfig::default(), ImpairmentConfig::default());
    let Ok(pairs) = parse_pairs(&words) else { return };
    if apply(&mut up, &mut down, &pairs).is_err() {
        assert_eq!((up, down), (ImpairmentConfig::default(), ImpairmentConfig::default()));
        return;
    }
    let _ = (up.to_string(), down.to_string());
    // Each datagram: a gap in milliseconds since the last one, a length, its bytes.
    let mut link: Link<usize> = Link::new(up, u64::from(traffic.first().copied().unwrap_or(0)));
    let mut now = Instant::now();
    let mut rest = traffic;
    let mut sent = 0;
    while let [gap, len, tail @ ..] = rest {
        now += Duration::from_millis(u64::from(*gap));
        let len = usize::from(*len).min(tail.len());
        link.send(now, sent, tail[..len].to_vec());
        sent += 1;
        while link.poll_transmit(now).is_some() {}
        rest = &tail[len..];
    }
    // Release everything, jumping from one deadline to the next.
    while let Some(next) = link.poll_timeout() {
        now = now.max(next);
        while link.poll_transmit(now).is_some() {}
    }
    let c = link.counters();
    let dropped = c.dropped_loss + c.dropped_queue + c.dropped_overflow;
    assert_eq!(c.received, sent as u64);
    assert_eq!(c.forwarded, c.received - dropped + c.duplicated, "{c:?}");
});
