use std::collections::BTreeMap;

use super::*;

fn config(window: usize) -> ScheduleConfig {
    ScheduleConfig { timeout: Duration::from_secs(1), retries: 1, window, ..ScheduleConfig::default() }
}

fn ports(n: u16) -> Arc<[u16]> {
    (1..=n).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const CLOSED: (PortState, Reason) = (PortState::Closed, Reason::Reset);

#[test]
fn the_window_caps_probes_in_flight() {
    let now = Instant::now();
    let mut s = Scheduler::new(config(2), 1, ports(5), false, now);
    let (a, _) = s.poll_send(now).unwrap();
    s.sent(a, now);
    let (b, _) = s.poll_send(now).unwrap();
    s.sent(b, now);
    assert_eq!(s.poll_send(now), None, "window of 2 is full");
    assert_eq!(s.settle(a, now, CLOSED.0, CLOSED.1).probe.port, 1);
    assert_eq!(s.poll_send(now).map(|(_, p)| p.port), Some(3));
}

#[test]
fn timeouts_count_from_the_send_not_from_the_queue() {
    let start = Instant::now();
    let mut s = Scheduler::new(config(1), 1, ports(2), false, start);
    let (a, _) = s.poll_send(start).unwrap();
    s.sent(a, start);
    // Port 2 waits in the queue for 900 ms, then is sent.
    let later = start + ms(900);
    s.settle(a, later, CLOSED.0, CLOSED.1);
    let (b, probe) = s.poll_send(later).unwrap();
    assert_eq!(probe.port, 2);
    s.sent(b, later);
    let rto = s.current_timeout(0);
    assert_eq!(s.poll_timeout(), Some(later + rto));
    assert_eq!(s.handle_timeout(later + rto - ms(1)), None);
    let expired = s.handle_timeout(later + rto).unwrap();
    assert_eq!((expired.probe.port, expired.probe.attempt), (2, 0));
    assert_eq!(s.poll_send(later + rto).map(|(_, p)| (p.port, p.attempt)), Some((2, 1)), "retried");
}

#[test]
fn unanswered_probes_are_retried_then_marked_silent() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(4), 1, ports(1), false, t0);
    let (slot, _) = s.poll_send(t0).unwrap();
    s.sent(slot, t0);
    let t1 = t0 + Duration::from_secs(1);
    s.handle_timeout(t1).unwrap();
    let (slot, again) = s.poll_send(t1).unwrap();
    assert_eq!((again.port, again.attempt), (1, 1));
    s.sent(slot, t1);
    assert!(!s.is_done());
    s.handle_timeout(t1 + Duration::from_secs(1)).unwrap();
    assert!(s.is_done(), "no RTT sample: the probe waited the whole timeout, nothing to linger for");
    assert_eq!(s.hosts(t1).next().unwrap().0, [Mark::Silent]);
    assert_eq!(s.concluded(), 1);
}

#[test]
fn settled_probes_leave_no_deadline_behind() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 1, ports(3), false, t0);
    for _ in 0..3 {
        let (slot, _) = s.poll_send(t0).unwrap();
        s.sent(slot, t0);
        s.settle(slot, t0, CLOSED.0, CLOSED.1);
    }
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.handle_timeout(t0 + Duration::from_secs(5)), None);
    assert!(s.is_done());
    assert_eq!(s.hosts(t0).next().unwrap().0, [Mark::Answered(CLOSED.0, CLOSED.1); 3]);
}

#[test]
fn running_out_of_sockets_shrinks_the_window_and_loses_nothing() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 1, ports(4), false, t0);
    let (a, _) = s.poll_send(t0).unwrap();
    s.sent(a, t0);
    let (b, pb) = s.poll_send(t0).unwrap();
    s.defer(b, t0);
    assert_eq!(s.poll_send(t0), None, "window shrank to the one in flight");
    s.settle(a, t0, CLOSED.0, CLOSED.1);
    let (_, retry) = s.poll_send(t0).unwrap();
    assert_eq!(retry, pb, "the deferred probe goes first, attempt not counted");
}

#[test]
fn with_nothing_in_flight_a_shortage_waits_a_moment() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 1, ports(1), false, t0);
    let (a, _) = s.poll_send(t0).unwrap();
    s.defer(a, t0);
    assert_eq!(s.poll_send(t0), None);
    assert_eq!(s.poll_timeout(), Some(t0 + EMPTY_BACKOFF));
    assert!(s.poll_send(t0 + EMPTY_BACKOFF).is_some());
}

#[test]
fn a_host_whose_sends_fail_waits_alone() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 2, ports(3), false, t0);
    let (a, pa) = s.poll_send(t0).unwrap();
    assert_eq!(pa.host, 0);
    s.defer_host(a, t0);
    let sent: Vec<u32> = std::iter::from_fn(|| s.poll_send(t0)).map(|(_, p)| p.host).collect();
    assert_eq!(sent, [1, 1, 1], "host 1 goes on at full speed while host 0 backs off");
    let woken = s.poll_timeout().unwrap();
    assert!(woken > t0 && woken <= t0 + HOST_BACKOFF_MAX);
    assert_eq!(s.poll_send(woken).map(|(_, p)| (p.host, p.port, p.attempt)), Some((0, 1, 0)));
    assert_eq!(s.send_failures(0), 1);
}

#[test]
fn an_unreachable_host_gets_filtered_ports_at_once() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 2, ports(3), false, t0);
    let (a, _) = s.poll_send(t0).unwrap();
    s.sent(a, t0);
    s.host_unreachable(0, t0);
    while let Some((slot, probe)) = s.poll_send(t0) {
        assert_eq!(probe.host, 1);
        s.sent(slot, t0);
        s.settle(slot, t0, CLOSED.0, CLOSED.1);
    }
    s.handle_timeout(t0 + Duration::from_secs(1)).unwrap();
    assert!(s.is_done());
    let hosts: Vec<_> = s.hosts(t0).collect();
    assert_eq!(hosts[0].0, [Mark::Answered(PortState::Filtered, Reason::HostUnreachable); 3]);
    assert!(hosts[0].1.unreachable && !hosts[1].1.unreachable);
}

#[test]
fn the_rate_paces_sends() {
    let t0 = Instant::now();
    let cfg = ScheduleConfig { rate: Some(100.0), ..config(100) };
    let mut s = Scheduler::new(cfg, 1, ports(10), false, t0);
    assert!(s.poll_send(t0).is_some());
    assert_eq!(s.poll_send(t0), None);
    assert_eq!(s.poll_timeout(), Some(t0 + ms(10)));
    let sent = (1..=100).filter(|t| s.poll_send(t0 + ms(*t)).is_some()).count();
    assert_eq!(sent, 9, "one per 10 ms");
}

#[test]
fn timeouts_adapt_to_each_hosts_round_trips_within_bounds() {
    let t0 = Instant::now();
    let cfg = ScheduleConfig { timeout: Duration::from_secs(2), ..config(8) };
    let mut s = Scheduler::new(cfg, 2, ports(40), false, t0);
    assert_eq!(s.current_timeout(0), Duration::from_secs(2), "no sample yet: the configured timeout");
    for _ in 0..20 {
        let (slot, probe) = s.poll_send(t0).unwrap();
        s.sent(slot, t0);
        let rtt = if probe.host == 0 { ms(20) } else { Duration::from_secs(5) };
        s.settle(slot, t0 + rtt, CLOSED.0, CLOSED.1);
    }
    let near = s.current_timeout(0);
    assert!(near >= MIN_TIMEOUT && near < ms(200), "{near:?}");
    assert_eq!(s.current_timeout(1), Duration::from_secs(2), "the far host's own timeout, capped");
}

#[test]
fn answers_within_the_send_still_time_the_round_trip() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 1, ports(10), false, t0);
    for _ in 0..10 {
        let (slot, _) = s.poll_send(t0).unwrap();
        s.settle_at_once(slot, t0, t0 + Duration::from_micros(30), CLOSED.0, CLOSED.1);
    }
    assert_eq!(s.current_timeout(0), MIN_TIMEOUT, "microsecond answers: the floor, not the 1 s ceiling");
}

#[test]
fn retries_give_no_round_trip_sample() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 1, ports(1), false, t0);
    let (slot, _) = s.poll_send(t0).unwrap();
    s.sent(slot, t0);
    let t1 = t0 + Duration::from_secs(1);
    s.handle_timeout(t1).unwrap();
    let (slot, probe) = s.poll_send(t1).unwrap();
    assert_eq!(probe.attempt, 1);
    s.sent(slot, t1);
    s.settle(slot, t1 + ms(1), PortState::Open, Reason::SynAck);
    assert_eq!(s.current_timeout(0), Duration::from_secs(1), "Karn: an answer to a retry is ambiguous");
}

#[test]
fn an_indexed_scheduler_matches_answers_by_host_and_port() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(8), 2, [53].into(), true, t0);
    let (a, pa) = s.poll_send(t0).unwrap();
    let (b, pb) = s.poll_send(t0).unwrap();
    s.sent(a, t0);
    s.sent(b, t0);
    assert_eq!((pa.host, pb.host), (0, 1));
    let settled = s.answer(1, 53, t0, PortState::Open, Reason::UdpResponse).unwrap();
    assert_eq!((settled.probe, settled.recorded), (pb, true));
    assert_eq!(s.answer(1, 53, t0, PortState::Open, Reason::UdpResponse), None, "nothing waits for it");
    assert_eq!(s.answer(0, 54, t0, PortState::Open, Reason::UdpResponse), None, "not a port of ours");
}

/// A target in virtual time: each port open, closed or silent (filtered),
/// with a round trip, maybe a slow service, and maybe a token bucket that
/// limits its negative answers (resets, ICMP errors) like Linux's ICMP
/// limit or an nft `limit rate`.
struct Target {
    rtt: Duration,
    open: Vec<u16>,
    silent: Vec<u16>,
    slow: Vec<(u16, Duration)>,
    limit: Option<Bucket>,
}

struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(per_second: f64, burst: f64) -> Self {
        Bucket { per_second, burst, tokens: burst, last: None }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = self.last.map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Target {
    fn new(rtt: Duration) -> Self {
        Target { rtt, open: Vec::new(), silent: Vec::new(), slow: Vec::new(), limit: None }
    }

    /// The answer to a probe of `port` sent at `now`, and when it arrives.
    fn answer(&mut self, port: u16, now: Instant) -> Option<(Instant, PortState, Reason)> {
        if let Some(&(_, delay)) = self.slow.iter().find(|(p, _)| *p == port) {
            return Some((now + self.rtt + delay, PortState::Open, Reason::UdpResponse));
        }
        if self.open.contains(&port) {
            return Some((now + self.rtt, PortState::Open, Reason::SynAck));
        }
        if self.silent.contains(&port) || self.limit.as_mut().is_some_and(|b| !b.allow(now)) {
            return None;
        }
        Some((now + self.rtt, PortState::Closed, Reason::Reset))
    }

    /// What every port of `ports` really is.
    fn truth(&self, ports: &[u16]) -> Vec<Mark> {
        ports
            .iter()
            .map(|p| {
                if self.open.contains(p) {
                    Mark::Answered(PortState::Open, Reason::SynAck)
                } else if self.slow.iter().any(|(s, _)| s == p) {
                    Mark::Answered(PortState::Open, Reason::UdpResponse)
                } else if self.silent.contains(p) {
                    Mark::Silent
                } else {
                    Mark::Answered(PortState::Closed, Reason::Reset)
                }
            })
            .collect()
    }
}

/// Drives `s` against `targets` (one per host) in virtual time until it is
/// done; returns how long that took and when each host was done.
fn simulate(s: &mut Scheduler, targets: &mut [Target], t0: Instant) -> (Duration, Vec<Duration>) {
    simulate_all(std::slice::from_mut(s), targets, t0)
}

/// Drives schedulers that share the hosts (as reactors do) against
/// `targets` until every one is done.
fn simulate_all(
    schedulers: &mut [Scheduler],
    targets: &mut [Target],
    t0: Instant,
) -> (Duration, Vec<Duration>) {
    type Arrival = (usize, u32, u16, PortState, Reason);
    let mut arrivals: BTreeMap<(Instant, u64), Arrival> = BTreeMap::new();
    let mut done_at = vec![None; targets.len()];
    let (mut now, mut seq) = (t0, 0u64);
    while !schedulers.iter().all(Scheduler::is_done) {
        for (k, s) in schedulers.iter_mut().enumerate() {
            while let Some((slot, probe)) = s.poll_send(now) {
                s.sent(slot, now);
                if let Some((at, state, reason)) = targets[probe.host as usize].answer(probe.port, now) {
                    seq += 1;
                    arrivals.insert((at, seq), (k, probe.host, probe.port, state, reason));
                }
            }
        }
        if schedulers.iter().all(Scheduler::is_done) {
            break;
        }
        let next_arrival = arrivals.keys().next().map(|&(t, _)| t);
        let deadlines = schedulers.iter().filter_map(Scheduler::poll_timeout);
        now = deadlines.chain(next_arrival).min().expect("a scheduler with work has a deadline");
        while let Some(entry) = arrivals.first_entry().filter(|e| e.key().0 <= now) {
            let (k, host, port, state, reason) = entry.remove();
            schedulers[k].answer(host, port, now, state, reason);
        }
        for s in schedulers.iter_mut() {
            while s.handle_timeout(now).is_some() {}
        }
        for (host, done) in done_at.iter_mut().enumerate() {
            if done.is_none() && schedulers.iter().all(|s| s.host_done(host as u32)) {
                *done = Some(now - t0);
            }
        }
        assert!(now - t0 < Duration::from_secs(3600), "the simulated scan does not end");
    }
    (now - t0, done_at.into_iter().map(|d| d.unwrap_or(now - t0)).collect())
}

fn marks(s: &Scheduler, host: usize, t: Instant) -> Vec<Mark> {
    s.hosts(t).nth(host).unwrap().0.to_vec()
}

#[test]
fn a_host_that_answers_everything_is_scanned_at_full_speed() {
    let t0 = Instant::now();
    let mut target = Target::new(ms(1));
    target.open = vec![22, 80];
    target.silent = vec![23, 81, 99];
    let mut s = Scheduler::new(config(4096), 1, ports(1000), true, t0);
    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
    assert_eq!(marks(&s, 0, t0), target.truth(&ports(1000)));
    assert_eq!(s.hosts(t0).next().unwrap().1.throttled, None);
    // Two attempts at the adaptive timeout, then lingering out the second's full second.
    assert!(took <= Duration::from_millis(1300), "{took:?}");
}

#[test]
fn a_host_limiting_its_icmp_errors_like_linux_is_scanned_exactly() {
    // Linux's default: one destination-unreachable a second per peer, a burst of six.
    let t0 = Instant::now();
    let mut target = Target::new(ms(1));
    target.open = vec![53];
    target.silent = vec![7, 9];
    target.limit = Some(Bucket::new(1.0, 6.0));
    let mut s = Scheduler::new(config(4096), 1, ports(40), true, t0);
    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
    assert_eq!(marks(&s, 0, t0), target.truth(&ports(40)), "took {took:?}");
    let throttled = s.hosts(t0).next().unwrap().1.throttled.expect("the limit was seen");
    assert!(throttled.reprobed >= 30, "{throttled:?}");
    // 37 closed ports at one answer a second: at least half a minute, whoever scans.
    assert!(took >= Duration::from_secs(30) && took <= Duration::from_secs(150), "{took:?}");
}

#[test]
fn a_fast_reset_limit_is_found_and_kept_under() {
    // An nft rule: at most 50 resets a second, bursts of 5.
    let t0 = Instant::now();
    let mut target = Target::new(ms(2));
    target.open = vec![22, 8080];
    target.silent = (900..950).collect();
    target.limit = Some(Bucket::new(50.0, 5.0));
    let mut s = Scheduler::new(config(4096), 1, ports(1000), true, t0);
    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
    assert_eq!(marks(&s, 0, t0), target.truth(&ports(1000)), "took {took:?}");
    assert!(took <= Duration::from_secs(120), "{took:?}");
}

#[test]
fn one_throttling_host_does_not_slow_down_the_others() {
    let t0 = Instant::now();
    let mut slow = Target::new(ms(1));
    slow.limit = Some(Bucket::new(2.0, 6.0));
    let mut quick = Target::new(ms(1));
    quick.open = vec![10];
    quick.silent = vec![11];
    let mut s = Scheduler::new(config(64), 2, ports(30), true, t0);
    let (took, done) = simulate(&mut s, &mut [slow, quick], t0);
    let notes: Vec<HostNotes> = s.hosts(t0).map(|(_, n)| n).collect();
    assert_eq!(marks(&s, 0, t0), vec![Mark::Answered(PortState::Closed, Reason::Reset); 30], "{notes:?}");
    assert!(notes[0].throttled.is_some() && notes[1].throttled.is_none());
    assert!(done[1] <= Duration::from_millis(1300), "the quick host: {:?}", done[1]);
    assert!(took >= Duration::from_secs(10), "the slow one took its time: {took:?}");
}

#[test]
fn a_slow_service_answers_within_the_timeout_and_counts() {
    let t0 = Instant::now();
    let mut target = Target::new(ms(1));
    target.slow = vec![(9, ms(800))];
    let mut s = Scheduler::new(config(4096), 1, ports(20), true, t0);
    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
    assert_eq!(marks(&s, 0, t0)[8], Mark::Answered(PortState::Open, Reason::UdpResponse));
    assert!(took <= Duration::from_millis(1200), "lingered no longer than the timeout: {took:?}");
    assert_eq!(s.hosts(t0).next().unwrap().1.throttled, None, "a slow answer is not a dropped one");
}

#[test]
fn the_host_timeout_gives_a_host_up() {
    let t0 = Instant::now();
    let mut target = Target::new(ms(1));
    target.limit = Some(Bucket::new(1.0, 1.0));
    let cfg = ScheduleConfig { host_timeout: Some(Duration::from_secs(5)), ..config(4096) };
    let mut s = Scheduler::new(cfg, 1, ports(100), true, t0);
    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
    assert!(took <= Duration::from_secs(8), "{took:?}");
    assert!(s.hosts(t0).next().unwrap().1.incomplete);
}

/// Limits from one answer a second to thousands, bursts from 1 to 50, with
/// and without silent ports: the verdicts are exact every time, and the
/// scan never stalls. (It is slowest, up to some 15 times what the limit
/// allows, where half the ports are silent: every pass over the ports left
/// without an answer probes the silent ones again, at the limit's pace.)
#[test]
fn every_limit_gives_exact_verdicts() {
    for rate in [1.0, 5.0, 50.0, 1000.0] {
        for burst in [1.0, 6.0, 50.0] {
            for n in [20u16, 200, 2000] {
                for silent_percent in [0u16, 10, 50] {
                    if rate * 100.0 < f64::from(n) {
                        continue;
                    }
                    let t0 = Instant::now();
                    let mut target = Target::new(ms(1));
                    target.silent = (1..=n).filter(|p| p % 100 < silent_percent).collect();
                    target.open = vec![n / 2 + 1];
                    target.limit = Some(Bucket::new(rate, burst));
                    let mut s = Scheduler::new(config(4096), 1, ports(n), true, t0);
                    let (took, _) = simulate(&mut s, std::slice::from_mut(&mut target), t0);
                    let truth = target.truth(&ports(n));
                    let case = format!("limit {rate}/s burst {burst}, {n} ports, {silent_percent}% silent");
                    assert_eq!(marks(&s, 0, t0), truth, "{case}");
                    let closed =
                        truth.iter().filter(|m| matches!(m, Mark::Answered(PortState::Closed, _))).count();
                    let least = Duration::from_secs_f64((closed as f64 - burst).max(0.0) / rate);
                    assert!(
                        took <= least * 20 + Duration::from_secs(60),
                        "{case}: {took:?}, at least {least:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn reactors_sharing_a_throttled_host_keep_under_its_limit_together() {
    let t0 = Instant::now();
    let mut target = Target::new(ms(1));
    target.open = vec![80, 301];
    target.limit = Some(Bucket::new(50.0, 5.0));
    let all = ports(600);
    let cfg = ScheduleConfig { sharers: 2, ..config(2048) };
    let throttles: Vec<_> = (0..1).map(|_| Arc::new(SharedThrottle::new(t0, None))).collect();
    let shares: Vec<Arc<[u16]>> = (0..2).map(|k| all.iter().skip(k).step_by(2).copied().collect()).collect();
    let mut reactors: Vec<Scheduler> = shares
        .iter()
        .map(|ports| Scheduler::sharing(cfg, throttles.clone(), ports.clone(), true, t0))
        .collect();
    let (took, _) = simulate_all(&mut reactors, std::slice::from_mut(&mut target), t0);
    for (reactor, ports) in reactors.iter().zip(&shares) {
        assert_eq!(marks(reactor, 0, t0), target.truth(ports), "took {took:?}");
    }
    // 593 resets at 50/s: 12 s at the very least.
    assert!(took <= Duration::from_secs(40), "{took:?}");
}
