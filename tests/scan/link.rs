//! A target host across a link: two private network namespaces joined by a
//! veth pair, so the target's kernel answers as a remote host does (its ICMP
//! rate limits apply; loopback is exempt from them) and addresses of the
//! link that no one holds go unanswered at ARP/NDP, as absent hosts on a LAN.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use super::fixture::{in_private_netns, verdicts};
use crate::util::{Finished, require, run, run_command};

/// The scanner's side of the link.
pub const SCANNER: &str = "10.19.0.1";
/// The target's IPv4 and IPv6 addresses.
pub const TARGET: &str = "10.19.0.2";
pub const TARGET6: &str = "fd19::2";

/// Runs `setup` on a thread inside a new namespace (the target, at
/// [`TARGET`] and [`TARGET6`]), then `scan` in another (the scanner, at
/// [`SCANNER`] and fd19::1), the two joined by a veth pair. Sockets and rules
/// `setup` makes live in the target; it stays up until `scan` returns.
pub fn across_a_link<T: Send>(setup: impl FnOnce() + Send, scan: impl FnOnce() -> T + Send) -> T {
    require("ip", "iproute2");
    in_private_netns(|| {
        thread::scope(|scope| {
            let (tid_tx, tid_rx) = mpsc::channel();
            let (linked_tx, linked_rx) = mpsc::channel::<()>();
            let (ready_tx, ready_rx) = mpsc::channel();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            scope.spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("a second namespace needs root");
                ip(&["link", "set", "lo", "up"]);
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                // The scanner side moves our end of the pair in here.
                if linked_rx.recv().is_err() {
                    return;
                }
                configure("veth-t", TARGET, "fd19::2");
                setup();
                wait_until_up("veth-t");
                ready_tx.send(()).unwrap();
                // Kept alive (with the namespace) until the scan is over.
                let _ = done_rx.recv();
            });
            let tid = tid_rx.recv().unwrap().to_string();
            ip(&["link", "add", "veth-s", "type", "veth", "peer", "name", "veth-t", "netns", &tid]);
            configure("veth-s", SCANNER, "fd19::1");
            linked_tx.send(()).unwrap();
            ready_rx.recv().expect("the target's setup failed");
            wait_until_up("veth-s");
            let result = scan();
            drop(done_tx);
            result
        })
    })
}

fn configure(device: &str, v4: &str, v6: &str) {
    ip(&["addr", "add", &format!("{v4}/24"), "dev", device]);
    ip(&["-6", "addr", "add", &format!("{v6}/64"), "dev", device, "nodad"]);
    ip(&["link", "set", device, "up"]);
}

/// Waits until `device` is up with a carrier. A veth pair gets its carrier
/// when both ends are up, but the kernel acts on it later (its link watch
/// runs up to a second after), and until then the device drops every frame
/// it is given: a scan started earlier would see a dead link.
fn wait_until_up(device: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = run_command(Command::new("ip").args(["-o", "link", "show", "dev", device]), b"");
        if out.stdout.contains("state UP") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{device} never came up: {}", out.stdout);
        thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {}", args.join(" "));
}

/// Runs `nft` with each of `rules` (in the calling thread's namespace).
pub fn nft(rules: &[&str]) {
    require("nft", "nftables");
    for rule in rules {
        let out = run_command(Command::new("nft").arg(rule), b"");
        assert!(out.status.success(), "nft {rule}: {out:#?}");
    }
}

/// Writes a sysctl of the calling thread's namespace.
pub fn sysctl(name: &str, value: &str) {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// The verdict every port of `ports` should have: `open` for those in
/// `open`, `otherwise` for the rest.
pub fn truth(ports: impl IntoIterator<Item = u16>, open: &[u16], otherwise: &str) -> BTreeMap<u16, String> {
    ports.into_iter().map(|p| (p, if open.contains(&p) { "open" } else { otherwise }.to_owned())).collect()
}

/// Our verdicts for `host`'s `ports` (a port spec), one scan with `args`.
pub fn ours(host: &str, ports: &str, args: &[&str]) -> (BTreeMap<u16, String>, Finished) {
    let mut all = vec!["scan", host, "-p", ports, "--all", "--json"];
    all.extend_from_slice(args);
    let out = run(&all, b"");
    assert!(out.code().is_some_and(|c| c <= 1), "{out:#?}");
    let found = verdicts(&out).into_iter().map(|((_, port, _), state)| (port, state)).collect();
    (found, out)
}

/// nmap's verdicts for the same, from its greppable output (listed ports,
/// and the "Ignored State" for the rest of `ports`).
pub fn nmaps(host: &str, ports: impl IntoIterator<Item = u16>, args: &[&str]) -> BTreeMap<u16, String> {
    require("nmap", "nmap");
    let ports: Vec<u16> = ports.into_iter().collect();
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = run_command(
        Command::new("nmap").args(args).args(["-n", "-Pn", "-oG", "-", "-p", &list.join(","), host]),
        b"",
    );
    assert!(out.status.success(), "nmap failed: {out:#?}");
    let line = out.stdout.lines().find(|l| l.contains("Ports: ")).unwrap_or_else(|| panic!("{}", out.stdout));
    let ignored =
        line.split("Ignored State: ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("");
    let mut verdicts: BTreeMap<u16, String> = ports.iter().map(|&p| (p, ignored.to_owned())).collect();
    let listed = line.split("Ports: ").nth(1).unwrap().split('\t').next().unwrap();
    for entry in listed.split(", ").filter(|e| !e.trim().is_empty()) {
        let fields: Vec<&str> = entry.split('/').collect();
        verdicts.insert(fields[0].trim().parse().unwrap(), fields[1].to_owned());
    }
    verdicts
}

/// The ports where `found` differs from `truth`, with both verdicts.
pub fn wrong(found: &BTreeMap<u16, String>, truth: &BTreeMap<u16, String>) -> Vec<(u16, String, String)> {
    truth
        .iter()
        .filter(|(port, state)| found.get(port) != Some(state))
        .map(|(port, state)| (*port, state.clone(), found.get(port).cloned().unwrap_or_default()))
        .collect()
}
