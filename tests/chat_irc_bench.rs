//! `bench chat --irc` (issue 17): the same load against our chat spoken to
//! as IRC and against ngircd, a packaged IRC server, so that the ratio in
//! docs/BENCHMARKS.md compares like with like (bench/chat-irc.sh).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::chat::{WAIT, server};
use crate::util::{closed_port, eventually, require, run};

/// ngircd on loopback with no limits in the load's way, stopped when dropped.
struct Ngircd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    fn start() -> Ngircd {
        require("ngircd", "ngircd");
        let dir = tempfile::tempdir().unwrap();
        let port = closed_port();
        let config = dir.path().join("ngircd.conf");
        std::fs::write(&config, ngircd_config(port)).unwrap();
        let child = Command::new("ngircd")
            .arg("--nodaemon")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        assert!(eventually(WAIT, || TcpStream::connect(&addr).is_ok()), "ngircd did not start");
        Ngircd { child, port, _dir: dir }
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration bench/chat-irc.sh gives ngircd: loopback, no flood
/// penalty, no caps per address.
pub fn ngircd_config(port: u16) -> String {
    format!(
        "[Global]\nName = bench.ngircd.local\nInfo = bench\nListen = 127.0.0.1\nPorts = {port}\n\
         MotdPhrase = bench\n[Limits]\nMaxConnections = 0\nMaxConnectionsIP = 0\nMaxJoins = 0\n\
         MaxPenaltyTime = 0\nPingTimeout = 600\nPongTimeout = 600\n[Options]\nDNS = no\nIdent = no\nPAM = no\n[SSL]\n"
    )
}

fn bench_irc(target: &str) -> Value {
    let args =
        ["bench", "chat", target, "--irc", "--clients", "10", "--senders", "2", "-d", "500ms", "--json"];
    run(&args, b"").json_of("report")
}

#[test]
fn bench_chat_speaks_irc_to_our_chat_and_to_ngircd_alike() {
    let ours = server(&["--rate-limit", "off", "--max-per-ip", "off"]);
    let ngircd = Ngircd::start();
    let theirs = format!("127.0.0.1:{}", ngircd.port);
    for target in [ours.addr("chat", "tcp").to_string(), theirs] {
        let report = bench_irc(&target);
        assert_eq!(report["exactly_once_in_order"], true, "{target}: {report}");
        let (sent, deliveries) = (report["sent"].as_u64().unwrap(), report["deliveries"].as_u64().unwrap());
        // Each message to the 9 other clients of #lobby: IRC does not echo to its sender.
        assert_eq!(deliveries, sent * 9, "{target}: {report}");
        assert!(sent > 10, "{target}: {report}");
    }
}
