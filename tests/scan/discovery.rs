//! Host discovery on a link (issue 19, items 2 and 4 of the first round
//! and 1-2 of the second): which addresses are up, how that is found out,
//! and how nmap's formats report hosts found down, each beside nmap 7.93 on
//! the same namespaces.

use std::process::Command;

use super::fixture::tcp_listeners;
use super::link::*;
use crate::util::{require, run, run_command};

/// Present: the target. Absent: the rest of the range (no one holds them,
/// so they answer no ARP).
const RANGE: &str = "10.19.0.2-4";

/// nmap's formats name hosts found down only with `-v`, as nmap 7.93's do:
/// the grepable `Host:` lines and the XML's `<host>` states are nmap's own.
#[test]
fn nmaps_formats_list_hosts_found_down_as_nmap_does() {
    require("nmap", "nmap");
    across_a_link(
        || {
            tcp_listeners(TARGET, &[22], None);
        },
        || {
            let dir = tempfile::tempdir().unwrap();
            for verbose in [false, true] {
                let files = |who: &str| {
                    let base = dir.path().join(format!("{who}-{verbose}"));
                    (format!("{}.gnmap", base.display()), format!("{}.xml", base.display()))
                };
                let (our_grep, our_xml) = files("ours");
                let mut args = vec!["scan", RANGE, "-p", "22,80", "-oG", &our_grep, "-oX", &our_xml];
                args.extend(verbose.then_some("-v"));
                let out = run(&args, b"");
                assert_eq!(out.code(), Some(0), "{out:#?}");
                let (nmap_grep, nmap_xml) = files("nmap");
                let mut nmap = Command::new("nmap");
                nmap.args(["-sT", "-n", "-p", "22,80", RANGE, "-oG", &nmap_grep, "-oX", &nmap_xml]);
                nmap.args(verbose.then_some("-v"));
                assert!(run_command(&mut nmap, b"").status.success());
                let read = |path: &str| std::fs::read_to_string(path).unwrap();
                assert_eq!(host_lines(&read(&our_grep)), host_lines(&read(&nmap_grep)), "-v: {verbose}");
                assert_eq!(xml_hosts(&read(&our_xml)), xml_hosts(&read(&nmap_xml)), "-v: {verbose}");
                let scanned = read(&our_grep)
                    .lines()
                    .any(|l| l == "# Ports scanned: TCP(2;22,80) UDP(0;) SCTP(0;) PROTOCOLS(0;)");
                assert_eq!(scanned, verbose, "{}", read(&our_grep));
            }
        },
    );
}

/// The grepable lines about hosts, in order of address.
fn host_lines(grepable: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        grepable.lines().filter(|l| l.starts_with("Host: ")).map(String::from).collect();
    lines.sort();
    lines
}

/// `(address, state)` of each `<host>` of an XML report, in order of address.
fn xml_hosts(xml: &str) -> Vec<(String, String)> {
    let attribute = |element: &str, name: &str| -> String {
        let start = element.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3).unwrap_or(element.len());
        element[start..].split('"').next().unwrap_or_default().to_owned()
    };
    // `<host ...>` and `<host>`; not `<hosthint>`, `<hostnames>` or `<hosts>`.
    let mut hosts: Vec<(String, String)> = xml
        .split("<host")
        .skip(1)
        .filter(|chunk| chunk.starts_with([' ', '>']))
        .filter_map(|chunk| {
            let host = chunk.split("</host>").next()?;
            let status = host.split("<status").nth(1)?;
            let address = host.split("<address").nth(1)?;
            Some((attribute(address, "addr"), attribute(status, "state")))
        })
        .collect();
    hosts.sort();
    hosts
}
