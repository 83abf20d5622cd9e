//! Host discovery on a link (issue 19): which addresses are up, how that is
//! found out, and how nmap's formats report hosts found down, beside nmap
//! 7.93 on the same namespaces. One link serves every scenario (setting one
//! up is most of a scenario's cost).

use std::process::Command;

use super::fixture::{open_set, set, summary, tcp_listeners};
use super::link::*;
use crate::util::{require, run, run_command};

/// Present: the target. Absent: the rest of the range (no one holds them,
/// so they answer no ARP).
const RANGE: &str = "10.19.0.2-4";
/// The same in IPv6: the target, and an address no one holds.
const RANGE6: [&str; 2] = [TARGET6, "fd19::3"];

/// One link for every discovery scenario: a target that answers ARP and NDP
/// but drops TCP pings (ports 80 and 443) and ICMP echo, as a firewalled
/// host does, with addresses beside it that no one holds.
#[test]
fn hosts_on_a_link() {
    require("nmap", "nmap");
    require("xmllint", "libxml2-utils");
    across_a_link(
        || {
            tcp_listeners(TARGET, &[22], None);
            tcp_listeners(TARGET6, &[22], None);
            nft(&[
                "add table inet quiet",
                "add chain inet quiet input { type filter hook input priority 0; }",
                "add rule inet quiet input tcp dport { 80, 443 } drop",
                "add rule inet quiet input icmp type echo-request drop",
                "add rule inet quiet input icmpv6 type echo-request drop",
            ]);
        },
        || {
            arp_and_ndp_find_exactly_the_hosts_that_are_there();
            nmaps_formats_list_hosts_found_down_as_nmap_does();
            absent_hosts_never_hold_a_scan_back();
        },
    );
}

/// Item 2: on a link, our own ARP requests and NDP solicitations find the
/// target, whatever it drops, and the absent addresses down; nmap -sn agrees.
fn arp_and_ndp_find_exactly_the_hosts_that_are_there() {
    let mut args = vec!["scan", RANGE, "-p", "22", "--json"];
    args.extend(RANGE6);
    let out = run(&args, b"");
    let hosts: Vec<(String, String, String)> = out
        .json_lines()
        .into_iter()
        .filter(|v| v["type"] == "host")
        .map(|v| {
            let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
            (field("ip"), field("status"), field("reason"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("10.19.0.2", "up", "arp-response"),
        ("10.19.0.3", "down", "no-response"),
        ("10.19.0.4", "down", "no-response"),
        ("fd19::2", "up", "nd-response"),
        ("fd19::3", "down", "no-response"),
    ]
    .iter()
    .map(|&(ip, status, reason)| (ip.to_owned(), status.to_owned(), reason.to_owned()))
    .collect();
    let mut sorted = hosts.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{}", out.stderr);
    // Hosts found down are not scanned: the two ports are the two hosts' 22.
    let summary = summary(&out);
    assert_eq!(
        (summary["hosts_up"].as_u64(), summary["ports"]["open"].as_u64()),
        (Some(2), Some(2)),
        "{summary}"
    );
    assert_eq!(
        summary["ports"].as_object().map(|p| p.values().filter_map(|n| n.as_u64()).sum::<u64>()),
        Some(2),
        "{summary}"
    );
    // nmap's IPv4 verdicts are compared in nmaps_formats_list_hosts_found_down_as_nmap_does.
    let nmap6 = run_command(Command::new("nmap").args(["-6", "-sn", "-n", "-oG", "-"]).args(RANGE6), b"");
    let up: Vec<&str> = nmap6.stdout.lines().filter(|l| l.ends_with("Status: Up")).collect();
    assert_eq!(up, [format!("Host: {TARGET6} ()\tStatus: Up")], "{}", nmap6.stdout);
}
/// Item 1: nmap's formats name hosts found down only with `-v`, as nmap
/// 7.93's do: the grepable `Host:` lines and the XML's `<host>` states are
/// nmap's own.
fn nmaps_formats_list_hosts_found_down_as_nmap_does() {
    let dir = tempfile::tempdir().unwrap();
    for verbose in [false, true] {
        let files = |who: &str| {
            let base = dir.path().join(format!("{who}-{verbose}"));
            (format!("{}.gnmap", base.display()), format!("{}.xml", base.display()))
        };
        let (our_grep, our_xml) = files("ours");
        let mut args = vec!["scan", RANGE, "-p", "22,23", "-oG", &our_grep, "-oX", &our_xml];
        args.extend(verbose.then_some("-v"));
        let out = run(&args, b"");
        assert_eq!(out.code(), Some(0), "{out:#?}");
        let (nmap_grep, nmap_xml) = files("nmap");
        let mut nmap = Command::new("nmap");
        nmap.args(["-sT", "-n", "-p", "22,23", RANGE, "-oG", &nmap_grep, "-oX", &nmap_xml]);
        nmap.args(verbose.then_some("-v"));
        assert!(run_command(&mut nmap, b"").status.success());
        let read = |path: &str| std::fs::read_to_string(path).unwrap();
        assert_eq!(host_lines(&read(&our_grep)), host_lines(&read(&nmap_grep)), "-v: {verbose}");
        assert_eq!(xml_hosts(&read(&our_xml)), xml_hosts(&read(&nmap_xml)), "-v: {verbose}");
        let scanned =
            |path: &str| read(path).lines().find(|l| l.starts_with("# Ports scanned:")).map(String::from);
        assert_eq!(scanned(&our_grep), scanned(&nmap_grep), "-v: {verbose}");
        assert_eq!(scanned(&our_grep).is_some(), verbose);
        // Hosts found down in nmap's own form keep the XML valid against nmap's DTD.
        let mut xmllint = Command::new("xmllint");
        xmllint.args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &our_xml]);
        let valid = run_command(&mut xmllint, b"");
        assert!(valid.status.success(), "-v: {verbose}: {valid:#?}");
    }
}

/// The first round's item 2: without discovery (`-Pn`) a SYN scan probes
/// the absent hosts' ports too, and gives each host up (its neighbour is
/// never resolved) without holding the present host back.
fn absent_hosts_never_hold_a_scan_back() {
    let out = run(&["scan", RANGE, "-p", "1-1024", "--syn", "-Pn", "--json"], b"");
    assert_eq!(open_set(&out), set(&[(TARGET, 22, "tcp")]), "{}", out.stderr);
    let summary = summary(&out);
    // 22 open, 80 and 443 filtered; the absent hosts have no closed port.
    assert_eq!(summary["ports"]["closed"], 1024 - 3, "{summary}");
    assert_eq!(summary["hosts_up"], 3, "{summary}");
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
