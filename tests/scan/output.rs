//! What a scan writes: our table, JSON and list on stdout; nmap's grepable,
//! normal and XML formats (checked with nmap's own DTD and ndiff) in files;
//! exit codes; partial results after Ctrl-C.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use super::fixture::*;
use crate::util::{Finished, closed_port, require, run, run_command, socketeer};

#[test]
fn hosts_come_out_whole_with_their_ports_sorted() {
    in_private_netns(|| {
        // Listeners opened out of order, on two hosts given out of order.
        let ports = [65000, 22, 8080, 443];
        tcp_listeners("127.0.0.1", &ports, None);
        tcp_listeners("127.0.0.2", &[80], None);
        let out = run(&["scan", "127.0.0.2", "127.0.0.1", "-p", "1-65535", "--json"], b"");
        let lines = out.json_lines();
        let kinds: Vec<(&str, &str, u64)> = lines
            .iter()
            .map(|v| {
                (v["type"].as_str().unwrap(), v["ip"].as_str().unwrap_or(""), v["port"].as_u64().unwrap_or(0))
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("port", "127.0.0.2", 80),
                ("host", "127.0.0.2", 0),
                ("port", "127.0.0.1", 22),
                ("port", "127.0.0.1", 443),
                ("port", "127.0.0.1", 8080),
                ("port", "127.0.0.1", 65000),
                ("host", "127.0.0.1", 0),
                ("summary", "", 0),
            ],
            "{}",
            out.stdout
        );
        let host = &lines[1];
        assert_eq!((host["status"].as_str(), host["counts"]["closed"].as_u64()), (Some("up"), Some(65534)));
        let summary = &lines[7];
        assert_eq!(summary["tcp_method"], "connect");
        assert_eq!(summary["partial"], false);
        assert_eq!(summary["hosts_up"], 2);

        let table = run(&["scan", "127.0.0.1", "-p", "1-65535"], b"");
        let rows: Vec<&str> =
            table.ok().lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
        assert_eq!(rows[..4], ["22/tcp", "443/tcp", "8080/tcp", "65000/tcp"], "{}", table.stdout);
    });
}

#[test]
fn the_grepable_file_has_a_status_and_a_ports_line_per_host() {
    in_private_netns(|| {
        let open = tcp_listeners("127.0.0.1", &[0], None)[0];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scan.gnmap");
        let file = file.to_str().unwrap();
        // nmap's own spelling: -oG takes a file name, and the scan's result also goes to stdout.
        let ports = format!("{open},1-100");
        let out = run(&["scan", "-oG", file, "127.0.0.1", "-p", &ports], b"");
        assert!(out.ok().contains(&format!("{open}/tcp")), "the table still goes to stdout");
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# socketeer ") && lines[0].contains(" scan initiated "), "{text}");
        assert_eq!(lines[1], "Host: 127.0.0.1 ()\tStatus: Up");
        assert_eq!(
            lines[2],
            format!("Host: 127.0.0.1 ()\tPorts: {open}/open/tcp/////\tIgnored State: closed (100)")
        );
        assert!(lines[3].starts_with("# socketeer done at "), "{text}");
        assert!(lines[3].contains("-- 1 IP address (1 host up) scanned in "), "{text}");
        assert_eq!(lines.len(), 4, "{text}");
        // And to stdout with -.
        let stdout = run(&["scan", "127.0.0.1", "-p", &ports, "-oG", "-"], b"");
        assert!(stdout.ok().contains("\tIgnored State: closed (100)"), "{}", stdout.stdout);
        assert!(!stdout.stdout.contains("HOST "), "- takes stdout instead of the table");
    });
}

/// nmap and we scan the same fixture into XML: ours is valid against nmap's
/// DTD, and nmap's own ndiff sees the same ports in both.
#[test]
fn the_xml_is_nmaps_and_ndiff_reads_it() {
    require("xmllint", "libxml2-utils");
    require("ndiff", "ndiff");
    require("nmap", "nmap");
    in_private_netns(|| {
        tcp_listeners("127.0.0.1", &[22, 8080], None);
        drop_tcp("23");
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("ours");
        let base = base.to_str().unwrap();
        let ports = "1-100,8080";
        let out = run(&["scan", "127.0.0.1", "-p", ports, "-sV", "-Pn", "-n", "-T4", "-oA", base], b"");
        assert_eq!(out.code(), Some(0), "{out:#?}");
        for extension in ["nmap", "gnmap", "xml"] {
            assert!(std::path::Path::new(&format!("{base}.{extension}")).is_file(), "-oA writes {extension}");
        }
        let ours = format!("{base}.xml");
        let valid = run_command(
            Command::new("xmllint").args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &ours]),
            b"",
        );
        assert!(valid.status.success(), "invalid against nmap.dtd: {valid:#?}");
        let theirs = dir.path().join("nmap.xml");
        let nmap = run_command(
            Command::new("nmap").args(["-sT", "-Pn", "-n", "-p", ports, "127.0.0.1", "-oX"]).arg(&theirs),
            b"",
        );
        assert!(nmap.status.success(), "{nmap:#?}");
        let diff = run_command(Command::new("ndiff").arg(&theirs).arg(&ours), b"");
        // The ports and states each side has that the other has not.
        let changed = |sign: char| -> std::collections::BTreeSet<String> {
            let port_lines = diff.stdout.lines().filter(|l| l.starts_with(sign) && l.contains("/tcp "));
            port_lines.map(|l| l[1..].split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect()
        };
        assert_eq!(changed('-'), changed('+'), "ndiff sees other ports or states:\n{}", diff.stdout);
        assert!(diff.stdout.contains("Nmap"), "ndiff read both files: {diff:#?}");
        let normal = std::fs::read_to_string(format!("{base}.nmap")).unwrap();
        assert!(
            normal.contains("Scan report for 127.0.0.1") && normal.contains("22/tcp   open     ssh"),
            "{normal}"
        );
        assert!(normal.contains("23/tcp   filtered telnet"), "{normal}");
    });
}

#[test]
fn exit_codes_tell_nothing_open_from_an_error() {
    let port = tcp_listeners("127.0.0.1", &[0], None)[0];
    let closed = closed_port();
    let open = run(&["scan", "127.0.0.1", "-p", &port.to_string(), "-o", "list"], b"");
    assert_eq!((open.code(), open.stdout.trim()), (Some(0), format!("127.0.0.1:{port}").as_str()));
    let nothing = run(&["scan", "127.0.0.1", "-p", &closed.to_string()], b"");
    assert_eq!(nothing.code(), Some(1), "no open port: exit 1");
    assert!(nothing.stderr.is_empty(), "{}", nothing.stderr);
    assert!(nothing.stdout.contains("0 open, 1 closed"));
    let usage = run(&["scan", "127.0.0.1", "-p", "0"], b"");
    assert_eq!(usage.code(), Some(2));
    // The scan cannot start: an exclude that does not resolve. Not "nothing open".
    let failed =
        run(&["scan", "127.0.0.1", "-p", &closed.to_string(), "--exclude", "no-such-host.invalid"], b"");
    assert_eq!(failed.code(), Some(3), "{failed:#?}");
    assert!(failed.stderr.contains("cannot resolve the excluded host"), "{}", failed.stderr);
}

#[test]
fn udp_items_without_a_udp_scan_are_warned_about() {
    let port = tcp_listeners("127.0.0.1", &[0], None)[0];
    let spec = format!("T:{port},U:53");
    let out = run(&["scan", "127.0.0.1", "-p", &spec, "-o", "list"], b"");
    assert_eq!(out.stdout.trim(), format!("127.0.0.1:{port}"));
    assert!(out.stderr.contains("no UDP scan was asked for"), "{}", out.stderr);
}

#[test]
fn an_interrupted_scan_prints_what_it_has_marked_partial() {
    in_private_netns(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A port that never answers keeps the scan waiting for its long timeout.
        drop_tcp("9");
        let (probed, seen) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let _ = probed.send(conn.is_ok());
            }
        });
        let ports = format!("9,{port}");
        for json in [true, false] {
            let mut args = vec!["scan", "127.0.0.1", "-p", &ports, "--timeout", "60s"];
            if json {
                args.push("--json");
            }
            let child =
                socketeer().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            // Ready when our probe has reached the open port.
            assert!(seen.recv().unwrap());
            let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
            assert!(kill.success());
            let output = child.wait_with_output().unwrap();
            let out = Finished {
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stdout_bytes: output.stdout,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                elapsed: std::time::Duration::ZERO,
            };
            assert_eq!(out.code(), Some(130), "{out:#?}");
            if json {
                let summary = out.json_of("summary");
                assert_eq!(summary["partial"], true, "{}", out.stdout);
                assert_eq!(out.json_of("port")["port"], u64::from(port));
            } else {
                let last = out.stdout.lines().last().unwrap_or_default();
                assert!(last.starts_with("interrupted, partial results: scanned 1 host"), "{}", out.stdout);
            }
            while seen.try_recv().is_ok() {}
        }
    });
}

#[test]
fn json_records_the_scan_method_and_a_syn_fallback() {
    require("setpriv", "util-linux");
    let port = tcp_listeners("127.0.0.1", &[0], None)[0].to_string();
    let out = run_command(
        Command::new("setpriv")
            .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
            .arg(env!("CARGO_BIN_EXE_socketeer"))
            .args(["scan", "127.0.0.1", "-p", &port, "--syn", "--json"]),
        b"",
    );
    let summary = out.json_of("summary");
    assert_eq!(summary["tcp_method"], "connect", "{}", out.stdout);
    assert!(summary["syn_fallback"].as_str().is_some_and(|r| r.contains("CAP_NET_RAW")), "{summary}");
    let syn = run(&["scan", "127.0.0.1", "-p", &port, "--syn", "--json"], b"");
    let summary = syn.json_of("summary");
    assert_eq!((summary["tcp_method"].as_str(), summary.get("syn_fallback")), (Some("syn"), None));
}
