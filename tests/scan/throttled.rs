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

#[test]
fn closed_ports_behind_a_reset_limit_are_closed() {
    let open = [22, 80, 150];
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
            let truth = truth(1..=200, &open, "closed");
            for method in [&[][..], &["--syn"]] {
                let (found, out) = ours(TARGET, "1-200", method);
                let nmap = nmaps(TARGET, 1..=200, if method.is_empty() { &["-sT"] } else { &["-sS"] });
                compare(&format!("{method:?}"), &found, &nmap, &truth, &out);
                let host = out.json_of("host");
                assert!(host["throttled"].is_object(), "the host is said to throttle: {host}");
            }
        },
    );
}

#[test]
fn closed_udp_ports_behind_an_icmp_limit_are_closed() {
    let open = [53, 120];
    across_a_link(
        || {
            udp_sockets(TARGET, &open, true);
            // Only the firewall's limit: the kernel's own is off.
            sysctl("net.ipv4.icmp_ratelimit", "0");
            nft(&[
                "add table inet scantest",
                "add chain inet scantest out { type filter hook output priority 0; }",
                "add rule inet scantest out icmp type destination-unreachable limit rate over 50/second burst 5 packets drop",
            ]);
        },
        || {
            let truth = truth(1..=150, &open, "closed");
            let (found, out) = ours(TARGET, "1-150", &["--udp"]);
            let nmap = nmaps(TARGET, 1..=150, &["-sU"]);
            compare("UDP, nft ICMP limit", &found, &nmap, &truth, &out);
        },
    );
}

/// Linux's own limit (one ICMP error a second per peer after a burst of
/// six), in IPv4 and IPv6.
#[test]
fn the_kernels_default_icmp_limit_makes_no_wrong_verdict() {
    let open = [7];
    across_a_link(
        || {
            udp_sockets(TARGET, &open, true);
            udp_sockets(TARGET6, &open, true);
        },
        || {
            for host in [TARGET, TARGET6] {
                let truth = truth(1..=14, &open, "closed");
                let (found, out) = ours(host, "1-14", &["--udp"]);
                let nmap = nmaps(host, 1..=14, if host == TARGET6 { &["-sU", "-6"] } else { &["-sU"] });
                compare(host, &found, &nmap, &truth, &out);
            }
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
