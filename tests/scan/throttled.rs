//! Issue 19, items 1 to 3: targets that limit their answers, addresses no
//! one holds, and a service that answers late, across a link to a target
//! namespace. Each scan is compared with the truth the test set up, and
//! nmap's verdicts on the same target are shown beside ours.

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use super::fixture::{tcp_listeners, udp_sockets};
use super::link::*;
use crate::util::Finished;

type Verdicts = std::collections::BTreeMap<u16, String>;

/// Ours must be exact. nmap's mistakes are shown beside ours, not held
/// against it (nmap itself is wrong now and then against a limit), but it
/// must see the same open ports: the fixture is what the test says it is.
fn compare(what: &str, ours: &Verdicts, nmap: &Verdicts, truth: &Verdicts, out: &Finished) {
    let (ours_wrong, nmap_wrong) = (wrong(ours, truth), wrong(nmap, truth));
    assert!(
        ours_wrong.is_empty(),
        "{what}: socketeer wrong on (port, truth, ours) {ours_wrong:?}; nmap on {nmap_wrong:?}\n{}",
        out.stderr
    );
    let open = |v: &Verdicts| v.iter().filter(|(_, s)| *s == "open").map(|(p, _)| *p).collect::<Vec<u16>>();
    assert_eq!(open(nmap), open(truth), "{what}: nmap sees other open ports; nmap wrong on {nmap_wrong:?}");
}

/// Ours must be exact; nmap is run on the same target only when ours is
/// not, to show its verdicts beside ours. Against a limit nmap takes as long
/// as we do, and the suite's time is short (the bench compares the two on
/// these cases: `bench/scan.sh`, docs/BENCHMARKS.md).
fn exact(what: &str, ours: &Verdicts, nmap: impl FnOnce() -> Verdicts, truth: &Verdicts, out: &Finished) {
    let ours_wrong = wrong(ours, truth);
    if !ours_wrong.is_empty() {
        let nmap_wrong = wrong(&nmap(), truth);
        let first = &ours_wrong[..ours_wrong.len().min(10)];
        panic!(
            "{what}: socketeer wrong on {} ports, the first (port, truth, ours): {first:?}; nmap wrong on {}: \
             {nmap_wrong:?}\n{}",
            ours_wrong.len(),
            nmap_wrong.len(),
            out.stderr
        );
    }
}

/// An nft limit on the target's resets, for the connect and the SYN scan.
#[test]
fn closed_ports_behind_a_reset_limit_are_closed() {
    let open = [22, 80];
    across_a_link(
        || {
            tcp_listeners(TARGET, &open, None);
            nft(&[
                "add table inet scantest",
                "add chain inet scantest out { type filter hook output priority 0; }",
                "add rule inet scantest out tcp flags & rst == rst limit rate over 50/second burst 5 packets drop",
            ]);
        },
        || {
            // A hundred ports are gone in a millisecond: the burst of five
            // answers them all only at the pace of the limit.
            let truth = truth(1..=100, &open, "closed");
            for method in [&[][..], &["--syn"]] {
                let (found, out) = ours(TARGET, "1-100", method);
                let nmap = || nmaps(TARGET, 1..=100, if method.is_empty() { &["-sT"] } else { &["-sS"] });
                exact(&format!("{method:?}"), &found, nmap, &truth, &out);
                let host = out.json_of("host");
                assert!(host["throttled"].is_object(), "the host is said to throttle: {host}");
            }
        },
    );
}

/// Runs each scan on a thread of its own, at once (they must not share a
/// limit they could exhaust), each thread in the calling thread's namespace.
fn at_once(scans: Vec<Box<dyn FnOnce() + Send + '_>>) {
    thread::scope(|scope| {
        let running: Vec<_> = scans.into_iter().map(|scan| scope.spawn(scan)).collect();
        for scan in running {
            if let Err(panic) = scan.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// One UDP scan of `host`'s `ports`, exact against `truth`.
fn udp_exact(host: &'static str, ports: &str, truth: &Verdicts) {
    let (found, out) = ours(host, ports, &["--udp"]);
    let family = if host == TARGET6 { "-6" } else { "-4" };
    let nmap = || nmaps(host, truth.keys().copied(), &["-sU", family]);
    exact(&format!("{host} {ports}"), &found, nmap, truth, &out);
}

/// An nft limit on the target's ICMP errors: closed ports (port
/// unreachable) stay closed, and ports a firewall rejects (admin prohibited,
/// in IPv4 and IPv6: item 3 of the second round) stay filtered, not
/// open|filtered. The rejected ports are scanned on their own: among closed
/// ports, the lost port unreachables alone would show the limit.
#[test]
fn udp_answers_behind_an_icmp_limit_keep_their_verdicts() {
    let open = [53, 70];
    across_a_link(
        || {
            udp_sockets(TARGET, &open, true);
            // Only the firewall's limit: the kernel's own is off.
            sysctl("net.ipv4.icmp_ratelimit", "0");
            sysctl("net.ipv6.icmp.ratelimit", "0");
            nft(&[
                "add table inet scantest",
                "add chain inet scantest in { type filter hook input priority 0; }",
                "add rule inet scantest in meta nfproto ipv4 udp dport 1001-1100 reject with icmp type admin-prohibited",
                "add rule inet scantest in meta nfproto ipv6 udp dport 1001-1100 reject with icmpv6 type admin-prohibited",
                "add chain inet scantest out { type filter hook output priority 0; }",
                "add rule inet scantest out icmp type destination-unreachable limit rate over 50/second burst 5 packets drop",
                "add rule inet scantest out icmpv6 type destination-unreachable limit rate over 50/second burst 5 packets drop",
            ]);
        },
        || {
            let closed = truth(1..=100, &open, "closed");
            let rejected = truth(1001..=1050, &[], "filtered");
            // One after the other: besides the rules' limits, the kernel has one
            // for all ICMP errors of both families (net.ipv4.icmp_msgs_per_sec, a
            // burst of 50), and two scans at once would share it.
            udp_exact(TARGET, "1-100", &closed);
            udp_exact(TARGET, "1001-1050", &rejected);
            udp_exact(TARGET6, "1001-1050", &rejected);
        },
    );
}

/// Linux's own limit (one ICMP error a second per peer after a burst of
/// six), in IPv4 and IPv6: each family's limit is its own, so the two scans
/// run at once (their 20 probes are well within the limit the two families
/// share, a burst of 50 errors).
#[test]
fn the_kernels_default_icmp_limit_makes_no_wrong_verdict() {
    let open = [7];
    across_a_link(
        || {
            udp_sockets(TARGET, &open, true);
            udp_sockets(TARGET6, &open, true);
        },
        || {
            let truth = truth(1..=10, &open, "closed");
            at_once(vec![
                Box::new(|| udp_exact(TARGET, "1-10", &truth)),
                Box::new(|| udp_exact(TARGET6, "1-10", &truth)),
            ]);
        },
    );
}

/// A UDP service that answers 800 ms after the question is open.
#[test]
fn a_udp_service_that_answers_late_is_open() {
    across_a_link(
        || {
            let socket = UdpSocket::bind((TARGET, 5353)).unwrap();
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    // The service's own slowness, not a synchronization.
                    thread::sleep(Duration::from_millis(800));
                    let _ = socket.send_to(&buf[..n], from);
                }
            });
        },
        || {
            let truth = truth([5353, 5354], &[5353], "closed");
            let (found, out) = ours(TARGET, "5353,5354", &["--udp"]);
            let nmap = nmaps(TARGET, [5353, 5354], &["-sU"]);
            compare("a late UDP service", &found, &nmap, &truth, &out);
        },
    );
}
