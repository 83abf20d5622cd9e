//! `socketeer scan` against listeners this test opens, on loopback or in
//! network namespaces the tests create.
//!
//! Full-range scans run inside a private network namespace that the test
//! creates (its own loopback, nothing else listening, its own ephemeral
//! ports and ICMP budget), so the open set is exactly the fixture's and no
//! other test can disturb it. nmap, where it is compared, runs in the same
//! namespace against the same fixture.

mod discovery;
pub(crate) mod fixture;
mod link;
mod output;
mod throttled;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

use fixture::*;

use crate::util::{Daemon, Finished, require, run, run_command, socketeer};

#[test]
fn a_full_tcp_scan_finds_exactly_the_open_set_every_time() {
    in_private_netns(|| {
        // Both ends of the range and ports inside the ephemeral range, where
        // self-connects happen.
        let v4 = [1, 22, 80, 1024, 8080, 32768, 40000, 45000, 50001, 60999, 65535];
        tcp_listeners("127.0.0.1", &v4, None);
        tcp_listeners("::1", &[443, 33333, 65535], Some(b"hello\r\n"));
        let mut expected: Vec<(&str, u16, &str)> = v4.iter().map(|&p| ("127.0.0.1", p, "tcp")).collect();
        expected.extend([("::1", 443, "tcp"), ("::1", 33333, "tcp"), ("::1", 65535, "tcp")]);
        for round in 0..3 {
            let out = run(&["scan", "127.0.0.1", "::1", "-p-", "--json"], b"");
            assert_eq!(open_set(&out), set(&expected), "round {round}: {}", out.stderr);
            let summary = summary(&out);
            assert_eq!(summary["ports"]["open"], expected.len(), "round {round}");
            assert_eq!(summary["ports"]["closed"], 2 * 65535 - expected.len(), "round {round}: {summary}");
            assert_eq!(summary["hosts"], 2);
        }
    });
}

#[test]
fn a_port_that_connects_to_itself_is_closed() {
    in_private_netns(|| {
        // With one ephemeral port, every connection to that port from this
        // namespace gets it as its source: TCP simultaneous open with itself,
        // and a UDP probe that comes back to its own socket.
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40000").unwrap();
        let out = run(&["scan", "127.0.0.1", "-p", "40000", "--all", "--json", "--udp", "--tcp"], b"");
        assert_eq!(out.code(), Some(1), "nothing is open: {out:#?}");
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["type"] == "port")
            .collect();
        assert_eq!(lines.len(), 2, "{}", out.stdout);
        for line in lines {
            assert_eq!(
                (line["state"].as_str(), line["reason"].as_str()),
                (Some("closed"), Some("self-connect")),
                "{line}"
            );
        }
    });
}

#[test]
fn a_full_udp_scan_tells_open_silent_and_closed_apart() {
    in_private_netns(|| {
        udp_sockets("127.0.0.1", &[7, 53, 40000, 65535], true);
        udp_sockets("::1", &[123], true);
        udp_sockets("127.0.0.1", &[9999, 50000], false);
        let out = run(&["scan", "127.0.0.1", "::1", "-p-", "--udp", "--json"], b"");
        let expected = [
            ("127.0.0.1", 7, "udp"),
            ("127.0.0.1", 53, "udp"),
            ("127.0.0.1", 40000, "udp"),
            ("127.0.0.1", 65535, "udp"),
            ("::1", 123, "udp"),
        ];
        assert_eq!(open_set(&out), set(&expected), "{}", out.stderr);
        let summary = summary(&out);
        // Silent sockets can only be open|filtered; no closed port may be called open.
        assert_eq!(summary["ports"]["open"], 5);
        assert!(summary["ports"]["open_filtered"].as_u64().unwrap() >= 2, "{summary}");
        let silent = run(&["scan", "127.0.0.1", "-p", "9999,50000,50001", "--udp", "--all", "--json"], b"");
        let states: Vec<String> = verdicts(&silent).into_values().collect();
        assert_eq!(states, ["open|filtered", "open|filtered", "closed"], "{}", silent.stdout);
    });
}

#[test]
fn our_verdicts_match_nmaps_on_the_same_fixture() {
    in_private_netns(|| {
        let tcp_open = tcp_listeners("127.0.0.1", &[22, 8080, 40001, 65535], None);
        drop_tcp("23, 8081");
        udp_sockets("127.0.0.1", &[53, 7000, 40001], true);
        udp_sockets("127.0.0.1", &[9000], false);
        let tcp_ports: Vec<u16> = [1, 21, 22, 23, 8080, 8081, 40001, 40002, 65534, 65535].to_vec();
        let udp_ports: Vec<u16> = [52, 53, 54, 7000, 9000, 40001, 40002].to_vec();
        assert_eq!(tcp_open.len(), 4);
        let nmap_tcp = nmap_verdicts(&["-sT"], &tcp_ports);
        assert_eq!(our_verdicts(&[], &tcp_ports), nmap_tcp, "connect scan");
        assert_eq!(our_verdicts(&["--syn"], &tcp_ports), nmap_verdicts(&["-sS"], &tcp_ports), "SYN scan");
        let nmap_udp = nmap_verdicts(&["-sU"], &udp_ports);
        assert_eq!(our_verdicts(&["--udp"], &udp_ports), nmap_udp, "UDP scan");
        assert_eq!(nmap_udp[&9000], "open|filtered");
        assert_eq!(nmap_tcp[&22], "open");
        assert_eq!(nmap_tcp[&23], "filtered");
    });
}

#[test]
fn banners_are_read_from_greetings_and_from_http_answers() {
    let ssh = tcp_listeners("127.0.0.1", &[0], Some(b"SSH-2.0-Fixture_1.0\r\n"))[0];
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = http.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut conn in http.incoming().flatten() {
            let mut request = [0u8; 256];
            if conn.read(&mut request).is_ok_and(|n| request[..n].starts_with(b"GET / HTTP/1.0")) {
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nServer: fixture/2\r\n\r\n");
            }
        }
    });
    let silent = tcp_listeners("127.0.0.1", &[0], None)[0];
    let echo_server = Daemon::start(&["echo", "serve", "--tcp", "--port", "0"], 1);
    let echo = echo_server.addr("echo", "tcp").port();
    let ports = format!("{ssh},{http_port},{silent},{echo}");
    let out = run(&["scan", "127.0.0.1", "-p", &ports, "--banner", "--banner-timeout", "1s", "--json"], b"");
    let banners = banners_by_port(&out);
    assert_eq!(banners[&u64::from(ssh)], "SSH-2.0-Fixture_1.0");
    assert_eq!(banners[&u64::from(http_port)], "HTTP/1.0 200 OK (Server: fixture/2)");
    assert_eq!(banners[&u64::from(silent)], serde_json::Value::Null, "silent and not HTTP");
    assert_eq!(banners[&u64::from(echo)], "(echoes what it is sent)", "our probe is not its banner");
    let table = run(&["scan", "127.0.0.1", "-p", &ssh.to_string(), "--banner"], b"");
    assert!(table.ok().contains("SSH-2.0-Fixture_1.0"), "{}", table.stdout);
}

/// Issue 13: binary greetings (the time service's four bytes, say) show
/// escaped, never as mangled text or raw control bytes. Fixed bytes, not
/// the time service's clock: its bytes change with the date, and the
/// private-use heuristic only covers today's.
#[test]
fn a_binary_banner_is_escaped() {
    // Bytes that happen to be UTF-8 (a private-use character), and bytes that are not.
    let utf8_by_chance = tcp_listeners("127.0.0.1", &[0], Some(&[0xee, 0xbf, 0x84, 0x0a]))[0];
    let binary = tcp_listeners("127.0.0.1", &[0], Some(&[0xe9, 0x0a, 0x3c, 0x11]))[0];
    let ports = format!("{utf8_by_chance},{binary}");
    let out = run(&["scan", "127.0.0.1", "-p", &ports, "--banner", "--banner-timeout", "1s", "--json"], b"");
    let banners = banners_by_port(&out);
    assert_eq!(banners[&u64::from(utf8_by_chance)], "\\xEE\\xBF\\x84^J", "{}", out.stdout);
    assert_eq!(banners[&u64::from(binary)], "\\xE9^J<^Q", "{}", out.stdout);
    let table = run(&["scan", "127.0.0.1", "-p", &ports, "--banner", "--banner-timeout", "1s"], b"");
    assert!(
        table.ok().contains("\\xE9^J<^Q") && table.stdout.contains("\\xEE\\xBF\\x84^J"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.is_ascii(), "{:?}", table.stdout);
}

#[test]
fn targets_from_a_file_ranges_and_excludes() {
    in_private_netns(|| {
        let port = tcp_listeners("127.0.0.1", &[0], None)[0];
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("targets.txt");
        std::fs::write(&list, "# fixture hosts\n127.0.0.1-4\n::1  # and IPv6\n").unwrap();
        let list = list.to_str().unwrap();
        let p = port.to_string();
        let out =
            run(&["scan", "-iL", list, "--exclude", "127.0.0.2,127.0.0.3", "-p", &p, "--all", "--json"], b"");
        let hosts: BTreeSet<String> = verdicts(&out).into_keys().map(|(ip, _, _)| ip).collect();
        assert_eq!(hosts, ["127.0.0.1", "127.0.0.4", "::1"].map(String::from).into());
        assert_eq!(open_set(&out), set(&[("127.0.0.1", port, "tcp")]));
        // A name that does not resolve is reported, and the scan goes on.
        let out = run(&["scan", "no-such-host.invalid", "127.0.0.1", "-p", &p, "--json"], b"");
        assert_eq!(open_set(&out), set(&[("127.0.0.1", port, "tcp")]));
        assert!(out.stderr.contains("cannot resolve 'no-such-host.invalid'"), "{}", out.stderr);
        assert_eq!(summary(&out)["unresolved"], 1);
    });
}

/// nmap's target forms (issue 19): octet lists, and IPv6 addresses with a zone.
#[test]
fn octet_lists_and_zones_are_targets() {
    in_private_netns(|| {
        let port = tcp_listeners("127.0.0.2", &[0], None)[0];
        tcp_listeners("::1", &[port], None);
        let p = port.to_string();
        let out = run(&["scan", "127.0.0.1,2", "::1%lo", "-p", &p, "--json"], b"");
        assert_eq!(open_set(&out), set(&[("127.0.0.2", port, "tcp"), ("::1", port, "tcp")]), "{out:#?}");
        assert_eq!(summary(&out)["hosts"], 3);
        let out = run(&["scan", "::1%no-such-if", "-p", &p, "--json"], b"");
        assert!(out.stderr.contains("no interface 'no-such-if'"), "{}", out.stderr);
    });
}

/// `--top-ports` takes as many ports as asked, per transport (issue 19).
#[test]
fn top_ports_gives_as_many_ports_as_asked() {
    in_private_netns(|| {
        let out = run(&["scan", "127.0.0.1", "--top-ports", "1000", "--json"], b"");
        assert_eq!(summary(&out)["ports"]["closed"], 1000, "{}", out.stdout);
        let out = run(&["scan", "127.0.0.1", "--udp", "--top-ports", "100", "--json"], b"");
        assert_eq!(summary(&out)["ports"]["closed"], 100, "{}", out.stdout);
        let fast = run(&["scan", "127.0.0.1", "-F", "--json"], b"");
        assert_eq!(summary(&fast)["ports"]["closed"], 100, "{}", fast.stdout);
    });
}

#[test]
fn syn_without_the_capability_falls_back_to_connect() {
    require("setpriv", "util-linux");
    let port = tcp_listeners("127.0.0.1", &[0], None)[0].to_string();
    let out = run_command(
        Command::new("setpriv")
            .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
            .arg(env!("CARGO_BIN_EXE_socketeer"))
            .args(["scan", "127.0.0.1", "-p", &port, "--syn", "-o", "list"]),
        b"",
    );
    assert_eq!(out.stdout.trim(), format!("127.0.0.1:{port}"), "{out:#?}");
    let notices: Vec<&str> =
        out.stderr.lines().filter(|l| l.contains("--syn is not possible here")).collect();
    assert_eq!(notices.len(), 1, "one notice: {}", out.stderr);
    assert!(notices[0].contains("CAP_NET_RAW"));
}

#[test]
fn too_few_file_descriptors_slow_the_scan_down_but_lose_nothing() {
    require("prlimit", "util-linux");
    in_private_netns(|| {
        let open = tcp_listeners("127.0.0.1", &[1500, 2500, 3999], None);
        // Fewer descriptors than the window wants: sockets fail with EMFILE
        // and the scanner must back off and retry, not crash or skip ports.
        let out = run_command(
            Command::new("prlimit").arg("--nofile=24:24").arg(env!("CARGO_BIN_EXE_socketeer")).args([
                "scan",
                "127.0.0.1",
                "-p",
                "1-4000",
                "--max-inflight",
                "1000",
                "--json",
            ]),
            b"",
        );
        let expected: Vec<(&str, u16, &str)> = open.iter().map(|&p| ("127.0.0.1", p, "tcp")).collect();
        assert_eq!(open_set(&out), set(&expected), "{out:#?}");
        assert_eq!(summary(&out)["ports"]["closed"], 4000 - 3);
    });
}

#[test]
fn bad_input_is_a_usage_error_naming_the_token() {
    for (args, needle) in [
        (&["scan", "127.0.0.1", "-p", "22,0"][..], "invalid port '0'"),
        (&["scan", "127.0.0.1", "-p", "90-80"], "invalid range '90-80'"),
        (&["scan", "127.0.0.1", "-p", "ssh,gopherish"], "unknown service name 'gopherish'"),
        (&["scan", "127.0.0.1", "-p", "X:80"], "unknown protocol prefix in 'X:80'"),
        (&["scan", "127.0.0.1", "--exclude-ports", "70000"], "invalid port '70000'"),
        (&["scan", "127.0.0.1/33"], "invalid CIDR block '127.0.0.1/33'"),
        (&["scan", "127.0.0.9-1"], "invalid address range '127.0.0.9-1'"),
        (&["scan", "bad host!"], "invalid target 'bad host!'"),
        (&["scan", "127.0.0.1", "--top-ports", "100000"], "--top-ports 100000"),
        (&["scan", "127.0.0.1", "-p", "U:53"], "U: ports need --udp"),
        (&["scan", "127.0.0.1", "-p", "80", "--exclude-ports", "80"], "no TCP ports left to scan\n"),
        (&["scan", "127.0.0.1", "--exclude", "300.1.1.1"], "'300.1.1.1'"),
        (&["scan"], "TARGET"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {}", out.stderr);
    }
}

/// A file the scan needs and cannot have: it says which, and exits 3 (the
/// scan could not run), not 1 (it ran and found nothing open).
#[test]
fn a_missing_target_list_or_output_directory_says_which_file() {
    for (args, needle) in [
        (
            &["scan", "-iL", "/nonexistent/targets.txt"][..],
            "cannot read target list /nonexistent/targets.txt",
        ),
        (
            &["scan", "127.0.0.1", "-p", "1", "-oG", "/nonexistent/scan.gnmap"],
            "cannot write /nonexistent/scan.gnmap",
        ),
    ] {
        let out = socketeer().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{args:?}: {out:?}");
    }
}

/// The `banner` of every port row of a `scan --json` run, by port.
fn banners_by_port(out: &Finished) -> BTreeMap<u64, serde_json::Value> {
    out.json_lines()
        .into_iter()
        .filter(|v| v["type"] == "port")
        .map(|v| (v["port"].as_u64().unwrap(), v["banner"].clone()))
        .collect()
}
