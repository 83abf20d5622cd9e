//! What the scan tests set up and read: private network namespaces,
//! listeners and responders, nft rules, and verdicts from our JSON and from
//! nmap's greppable output.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::thread;

use crate::util::{Finished, require};

/// Runs `f` on a thread of its own inside a new network namespace with its
/// loopback up; sockets it opens and programs it starts live there too.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("a private network namespace needs root (CAP_SYS_ADMIN); run the tests as root");
                require("ip", "iproute2");
                let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().unwrap();
                assert!(up.success(), "ip link set lo up failed");
                f()
            })
            .join()
            .unwrap()
    })
}

/// Makes the namespace's loopback drop TCP segments to `ports` (an nft
/// range such as `1001-1100`) without a word: probes there go unanswered.
pub fn drop_tcp(ports: &str) {
    require("nft", "nftables");
    for rule in [
        "add table inet scantest".to_owned(),
        "add chain inet scantest input { type filter hook input priority 0; }".to_owned(),
        format!("add rule inet scantest input tcp dport {{ {ports} }} drop"),
    ] {
        let status = Command::new("nft").args(rule.split(' ')).status().unwrap();
        assert!(status.success(), "nft {rule}");
    }
}

/// TCP listeners on `ports` of `ip`; each accepted connection is sent `greeting`.
pub fn tcp_listeners(ip: &str, ports: &[u16], greeting: Option<&'static [u8]>) -> Vec<u16> {
    ports
        .iter()
        .map(|&port| {
            let listener = TcpListener::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
            let port = listener.local_addr().unwrap().port();
            thread::spawn(move || {
                for mut conn in listener.incoming().flatten() {
                    if let Some(greeting) = greeting {
                        let _ = conn.write_all(greeting);
                    }
                }
            });
            port
        })
        .collect()
}

/// UDP sockets on `ports` of `ip` that echo every datagram (or, silent, never answer).
pub fn udp_sockets(ip: &str, ports: &[u16], echo: bool) {
    for &port in ports {
        let socket = UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("bind udp {ip}:{port}: {e}"));
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                if echo {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
    }
}

/// `(ip, port, transport) -> state` for every port line of a `--json` scan.
pub fn verdicts(out: &Finished) -> BTreeMap<(String, u16, String), String> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "port")
        .map(|v| {
            let key = (
                v["ip"].as_str().unwrap().to_owned(),
                v["port"].as_u64().unwrap() as u16,
                v["transport"].as_str().unwrap().to_owned(),
            );
            (key, v["state"].as_str().unwrap().to_owned())
        })
        .collect()
}

pub fn open_set(out: &Finished) -> BTreeSet<(String, u16, String)> {
    verdicts(out).into_iter().filter(|(_, state)| state == "open").map(|(k, _)| k).collect()
}

pub fn summary(out: &Finished) -> serde_json::Value {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {out:#?}"))
}

pub fn set(items: &[(&str, u16, &str)]) -> BTreeSet<(String, u16, String)> {
    items.iter().map(|&(ip, port, t)| (ip.to_owned(), port, t.to_owned())).collect()
}

/// nmap's verdicts on 127.0.0.1.
pub fn nmap_verdicts(args: &[&str], ports: &[u16]) -> BTreeMap<u16, String> {
    super::link::nmaps("127.0.0.1", ports.iter().copied(), args)
}

/// Our verdicts on 127.0.0.1.
pub fn our_verdicts(args: &[&str], ports: &[u16]) -> BTreeMap<u16, String> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    super::link::ours("127.0.0.1", &list.join(","), args).0
}
