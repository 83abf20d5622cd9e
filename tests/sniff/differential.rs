//! Issue 18: filters select exactly the frames libpcap selects. Several
//! hundred expressions, hand-written and generated, run over the corpus of
//! capture files (`corpus.rs`) through `tcpdump -r` and through `socketeer
//! sniff -r`; for every expression tcpdump accepts, socketeer must accept
//! it too and keep the same frames.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use super::corpus::{self, Variant};
use crate::util::{require, run_command, socketeer};

/// Filters a tcpdump user types, and the corners of pcap-filter(7).
const HAND_WRITTEN: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "igmp",
    "sctp",
    "tcp or udp",
    "not ip",
    "not tcp and not udp",
    "ip and not tcp",
    "ip6 and tcp",
    "ip6 and udp",
    "host 127.0.0.1",
    "src host 127.0.0.1",
    "dst host 127.0.0.1",
    "host 10.1.2.3 and host 127.0.0.1",
    "src 10.1.2.3",
    "dst 10.1.2.3 or src 127.0.0.1",
    "src and dst host 127.0.0.1",
    "src or dst host 10.1.2.3",
    "host ::1",
    "host fd00::2",
    "src host fd00::2",
    "ip6 host ::1",
    "ip host 10.1.2.3",
    "arp host 10.1.2.3",
    "rarp host 0.0.0.0",
    "host 10.1",
    "net 10",
    "net 10.0.0.0/8",
    "net 127.0.0.0 mask 255.0.0.0",
    "src net 127",
    "dst net 10.1.2.0/24",
    "net fd00::/8",
    "ip6 net ::/0",
    "net 224.0.0.0/4",
    "port 80",
    "port 53",
    "port 5353",
    "port 7",
    "src port 80",
    "dst port 80",
    "tcp port 80",
    "udp port 53",
    "port 80 or 443",
    "port 80 or port 443",
    // Chains of one load's tests, which the optimizer pulls together as
    // libpcap's or_pullup/and_pullup do (which loads run on a cut frame).
    "port 53 or port 80 or port 443 or port 22",
    "tcp port 9 or udp port 53 or port 7 or port 2905",
    "host 10.0.0.1 or port 53 or host 10.0.0.2 or port 80",
    "not port 53 and not port 80 and not port 9",
    "tcp dst port 80 or 8080",
    "src port 53 and udp",
    "portrange 1-1024",
    "tcp portrange 40000-40010",
    "udp portrange 5000-6000",
    "portrange 9-7",
    "port 2905",
    "sctp port 2905",
    "src and dst port 80",
    "src or dst port 53",
    "port http",
    "port domain",
    "port www",
    "tcp port https",
    "udp port domain",
    "port ssh or port telnet",
    "less 60",
    "greater 100",
    "len > 100",
    "len <= 64",
    "len = 60",
    "greater 1000 and tcp",
    "tcp[13] & 2 != 0",
    "tcp[13] & 18 = 18",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[tcpflags] & tcp-rst != 0",
    "tcp[tcpflags] == tcp-ack",
    "tcp[tcpflags] & tcp-push != 0",
    "tcp[tcpflags] & (tcp-ece|tcp-cwr) != 0",
    "tcp[tcpflags] & tcp-urg != 0",
    "tcp[13] = 0x12",
    "tcp[0:2] = 80",
    "tcp[2:2] > 1023",
    "udp[0:2] = 53",
    "udp[2:2] = 53",
    "udp[4:2] > 10",
    "ip[6:2] & 0x1fff = 0",
    "ip[6:2] & 0x1fff != 0",
    "ip[6] & 0x20 != 0",
    "ip[0] & 0xf > 5",
    "ip[9] = 17",
    "ip[8] = 64",
    "ip[2:2] > 100",
    "ip[16] >= 224",
    "ip[12:4] = 0x7f000001",
    "icmp[icmptype] = icmp-echo",
    "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
    "icmp[0] = 3",
    "icmp[icmptype] = icmp-unreach and icmp[icmpcode] = 3",
    "icmp6[icmp6type] = icmp6-echo",
    "icmp6[0] = 135",
    "icmp6[icmp6type] = icmp6-neighborsolicit",
    "ip6[6] = 17",
    "ip6[6] = 0",
    "ip6[6] = 44",
    "ip6[40] = 6",
    "ip6[24] = 0xff",
    "ether[0] & 1 != 0",
    "ether[12:2] = 0x0800",
    "link[12:2] = 0x86dd",
    "ether[12:2] < 1500",
    "arp[6:2] = 1",
    "arp[6:2] = 2",
    "arp[7] = 3",
    "igmp[0] = 0x11",
    "sctp[0:2] = 2905",
    "ip proto 47",
    "ip proto \\udp",
    "ip proto \\tcp",
    "ip6 proto 17",
    "ip6 proto 6",
    "proto 17",
    "proto \\icmp",
    "ip6 proto 58",
    "ip proto 2",
    "proto 132",
    "ether host 02:00:00:00:00:0a",
    "ether src 02:00:00:00:00:0a",
    "ether dst 02:00:00:00:00:0b",
    "ether dst ff:ff:ff:ff:ff:ff",
    "ether host 01:00:5e:00:00:01",
    "ether src host 02:00:00:00:00:0b",
    "ether proto 0x0800",
    "ether proto 0x86dd",
    "ether proto \\arp",
    "ether proto \\ip6",
    "ether proto 0x88cc",
    "ether proto 0x42",
    "ether proto \\rarp",
    "ether broadcast",
    "broadcast",
    "ether multicast",
    "multicast",
    "ip multicast",
    "ip6 multicast",
    "ip broadcast",
    "vlan",
    "vlan 100",
    "vlan 200",
    "vlan 7",
    "vlan and ip",
    "vlan and tcp",
    "vlan 100 and tcp port 80",
    "vlan and vlan",
    "vlan 200 and vlan 100",
    "vlan and ip6 and udp",
    "not vlan",
    "vlan or ip",
    "ip or vlan",
    "ip and vlan",
    "vlan and port 40006",
    "vlan 100 or vlan 200",
    "(tcp[13] & 2) != 0",
    "(tcp or udp) and port 53",
    "not (port 80 or port 443)",
    "!tcp && !udp || icmp",
    "icmp or udp and port 9",
    "tcp and (port 80 or port 22)",
    "len - 14 > 100",
    "len * 2 > 200",
    "len / 2 < 40",
    "len % 2 = 0",
    "len & 1 = 1",
    "len | 1 = 61",
    "len ^ 1 = 60",
    "len << 1 > 200",
    "len >> 2 = 15",
    "-len < 0",
    "len - 1 ^ 2 = 0",
    "len + tcp[0] > 0",
    "tcp[0] + len > 0",
    "ip[ip[0] & 0xf] = 0",
    "tcp[tcp[12] >> 4] = 0",
    "tcp[20] = 2",
    "tcp[100] = 0",
    "udp[8] = 0x68",
    "ip[100] = 1 or tcp",
    "tcp or ip[100] = 1",
    "not tcp[100] = 0",
    "tcp[12] & 0xf0 > 0x50",
    "(tcp[12] & 0xf0) >> 2 = 40",
    "ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0",
    "udp and ip[6:2] & 0x3fff != 0",
    "tcp and ip[6:2] & 0x2000 != 0",
    "port 53 and ip[6:2] & 0x1fff = 0",
    "icmp and icmp[icmptype] = 3 and udp",
    "ether[6:4] = 0x0000000a",
    "ether[14] = 0x45",
    "ip and ip6",
    "tcp and udp",
    "not not tcp",
    "host 127.0.0.1 and not port 80",
    "src 127.0.0.1 and dst port 80",
];

/// Small primitives that the generated filters combine.
const ATOMS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "ip",
    "ip6",
    "arp",
    "vlan",
    "vlan 100",
    "port 80",
    "port 53",
    "src port 40000",
    "host 127.0.0.1",
    "dst host 10.1.2.3",
    "net fd00::/8",
    "less 64",
    "greater 100",
    "tcp[13] & 2 != 0",
    "ip[6:2] & 0x1fff = 0",
    "ether broadcast",
    "multicast",
    "portrange 1-1024",
    "icmp6",
    "sctp",
    "igmp",
    "ether proto 0x88cc",
    "ip proto 47",
    "udp[0:2] > 1000",
    "ip6 proto 6",
    "len > 80",
    "ip[9] = 6",
    "ether src 02:00:00:00:00:0a",
    "tcp[tcpflags] & tcp-fin != 0",
    "proto 17",
    "src net 10",
    "port 2905",
];

/// Filters built from [`ATOMS`] with a fixed seed: nots, ands, ors and
/// parentheses in every shape the grammar has.
fn generated(count: usize) -> Vec<String> {
    let mut state: u64 = 0x005e_ed18;
    let mut pick = |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let mut out = Vec::new();
    while out.len() < count {
        let atom = |pick: &mut dyn FnMut(usize) -> usize| {
            let a = ATOMS[pick(ATOMS.len())];
            if pick(4) == 0 { format!("not {a}") } else { a.to_owned() }
        };
        let (a, b, c) = (atom(&mut pick), atom(&mut pick), atom(&mut pick));
        let joins = ["and", "or"];
        let (j, k) = (joins[pick(2)], joins[pick(2)]);
        out.push(match pick(5) {
            0 => format!("{a} {j} {b}"),
            1 => format!("{a} {j} {b} {k} {c}"),
            2 => format!("({a} {j} {b}) {k} {c}"),
            3 => format!("{a} {j} ({b} {k} {c})"),
            _ => format!("not ({a} {j} {b})"),
        });
    }
    out
}

/// The frames (by timestamp) tcpdump keeps; `None` when it refuses the filter.
fn tcpdump(file: &Path, filter: &str) -> Option<Vec<u64>> {
    let mut command = Command::new("tcpdump");
    command.args(["-nn", "-tt", "-r"]).arg(file).arg(filter);
    let out = run_command(&mut command, b"");
    if !out.status.success() {
        return None;
    }
    Some(out.stdout.lines().filter_map(|l| l.split('.').next()?.parse().ok()).collect())
}

/// The frames socketeer keeps, or its error.
fn socketeer_frames(file: &Path, filter: &str) -> Result<Vec<u64>, String> {
    let mut command = socketeer();
    command.args(["sniff", "--json", "-r"]).arg(file).arg(filter);
    let out = run_command(&mut command, b"");
    if !out.status.success() {
        return Err(out.stderr.trim().to_owned());
    }
    Ok(out
        .json_lines()
        .iter()
        .filter(|v| v["type"] == "packet")
        .filter_map(|v| {
            let time = chrono::DateTime::parse_from_rfc3339(v["time"].as_str()?).ok()?;
            u64::try_from(time.timestamp()).ok()
        })
        .collect())
}

#[test]
fn filters_keep_the_frames_tcpdump_keeps() {
    require("tcpdump", "tcpdump");
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(Variant, std::path::PathBuf)> =
        Variant::ALL.iter().map(|&v| (v, corpus::write(dir.path(), v).0)).collect();
    let generated = generated(250);
    let mut jobs: Vec<(String, &Path)> = Vec::new();
    for filter in HAND_WRITTEN {
        jobs.extend(files.iter().map(|(_, path)| (filter.to_string(), path.as_path())));
    }
    for filter in &generated {
        for (variant, path) in &files {
            if matches!(variant, Variant::Ethernet | Variant::Snap64) {
                jobs.push((filter.clone(), path.as_path()));
            }
        }
    }
    let next = Mutex::new(jobs.iter());
    let results = Mutex::new((0usize, 0usize, Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let Some((filter, path)) = next.lock().unwrap().next() else { return };
                    let Some(expected) = tcpdump(path, filter) else {
                        results.lock().unwrap().1 += 1;
                        continue;
                    };
                    let ours = socketeer_frames(path, filter);
                    let mut results = results.lock().unwrap();
                    results.0 += 1;
                    if ours.as_ref() != Ok(&expected) {
                        let name = path.file_name().unwrap().to_string_lossy().into_owned();
                        results
                            .2
                            .push(format!("{name}: '{filter}': tcpdump {expected:?}, socketeer {ours:?}"));
                    }
                }
            });
        }
    });
    let (agreed_on, refused_by_tcpdump, mut differences) = results.into_inner().unwrap();
    differences.sort();
    assert!(
        differences.is_empty(),
        "{} of {agreed_on} filter runs differ from tcpdump's:\n{}",
        differences.len(),
        differences.join("\n")
    );
    // Enough of the corpus was compared for the test to mean something.
    assert!(agreed_on >= 1200, "only {agreed_on} runs compared ({refused_by_tcpdump} refused by tcpdump)");
}
