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

/// Addresses of the link that no one holds answer no ARP: discovery reports
/// them down and their ports are never probed; with `-Pn` a SYN scan
/// probes them, and gives each up without holding the present host back.
#[test]
fn absent_addresses_on_the_link_are_down() {
    let open = [22, 443];
    across_a_link(
        || {
            tcp_listeners(TARGET, &open, None);
        },
        || {
            // .2 is the target; .3 to .6 are absent.
            let range = "10.19.0.2-6";
            for method in [&[][..], &["--syn"]] {
                let mut args = vec!["scan", range, "-p", "1-1024", "--json"];
                args.extend_from_slice(method);
                let out = crate::util::run(&args, b"");
                let status: Vec<(String, String)> = out
                    .json_lines()
                    .into_iter()
                    .filter(|v| v["type"] == "host")
                    .map(|v| (v["ip"].as_str().unwrap().to_owned(), v["status"].as_str().unwrap().to_owned()))
                    .collect();
                let up: Vec<&str> =
                    status.iter().filter(|(_, s)| s == "up").map(|(ip, _)| ip.as_str()).collect();
                assert_eq!((up, status.len()), (vec![TARGET], 5), "{method:?}: {status:?}");
                let expected: Vec<(&str, u16, &str)> = open.iter().map(|&p| (TARGET, p, "tcp")).collect();
                assert_eq!(super::fixture::open_set(&out), super::fixture::set(&expected), "{method:?}");
                let summary = super::fixture::summary(&out);
                assert_eq!((summary["hosts"].as_u64(), summary["hosts_up"].as_u64()), (Some(5), Some(1)));
                assert_eq!(summary["ports"]["closed"], 1024 - 2, "only the host that is there was scanned");
            }
            // nmap's discovery beside ours.
            let nmap = crate::util::run_command(
                std::process::Command::new("nmap").args(["-sn", "-n", range, "-oG", "-"]),
                b"",
            );
            let nmap_up: Vec<&str> = nmap.stdout.lines().filter(|l| l.ends_with("Status: Up")).collect();
            assert_eq!(nmap_up, [format!("Host: {TARGET} ()\tStatus: Up")], "{}", nmap.stdout);
            // Item 2: without discovery, the absent hosts' ports are probed; SYN scan
            // gives them up as unreachable, and the present host is still exact.
            let out =
                crate::util::run(&["scan", "10.19.0.2-4", "-p", "1-1024", "--syn", "-Pn", "--json"], b"");
            let expected: Vec<(&str, u16, &str)> = open.iter().map(|&p| (TARGET, p, "tcp")).collect();
            assert_eq!(super::fixture::open_set(&out), super::fixture::set(&expected), "{}", out.stderr);
            assert_eq!(super::fixture::summary(&out)["ports"]["closed"], 1024 - 2, "{}", out.stdout);
        },
    );
}
