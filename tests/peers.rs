//! Against peers no one here wrote: netcat as our servers' client, and
//! openbsd-inetd's built-in services as our clients' server.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{ALL_ON_FREE_PORTS, Daemon, eventually, require, run, run_command};

fn nc(args: &[&str], stdin: &[u8]) -> String {
    require("nc", "netcat-openbsd");
    run_command(Command::new("nc").args(args), stdin).stdout
}

#[test]
fn netcat_talks_to_our_echo_and_daytime_servers() {
    let server = Daemon::start(&[&ALL_ON_FREE_PORTS[..], &["--only", "echo,daytime,time"]].concat(), 6);
    let port = |service, transport| server.addr(service, transport).port().to_string();
    let echo_tcp = nc(&["-N", "127.0.0.1", &port("echo", "tcp")], b"over tcp\nsecond line\n");
    assert_eq!(echo_tcp, "over tcp\nsecond line\n");
    let echo_udp = nc(&["-u", "-w1", "127.0.0.1", &port("echo", "udp")], b"over udp\n");
    assert_eq!(echo_udp, "over udp\n");
    let daytime_tcp = nc(&["-N", "127.0.0.1", &port("daytime", "tcp")], b"");
    assert!(daytime_tcp.ends_with("\r\n") && daytime_tcp.lines().count() == 1, "{daytime_tcp:?}");
    let daytime_udp = nc(&["-u", "-w1", "127.0.0.1", &port("daytime", "udp")], b"\n");
    assert_eq!(daytime_udp.lines().count(), 1, "{daytime_udp:?}");
    let time_tcp = run_command(Command::new("nc").args(["-N", "127.0.0.1", &port("time", "tcp")]), b"");
    let since_1900 = u32::from_be_bytes(time_tcp.stdout_bytes[..].try_into().expect("4 bytes"));
    let now = chrono::Utc::now().timestamp() + 2_208_988_800;
    assert!((i64::from(since_1900) - now).abs() < 5, "{since_1900} vs {now}");
}

/// openbsd-inetd with its internal echo, daytime and time services. Its TCP
/// side listens on 127.7.7.7 (a loopback address of its own, so a system
/// inetd on 127.0.0.1 cannot clash); its UDP side listens on ::1 because
/// inetd refuses datagrams from 127.0.0.0/8 sources (a guard against loops).
struct Inetd {
    child: Child,
    _config: tempfile::TempDir,
    /// Held while inetd runs: its ports are fixed, so two test runs on one
    /// machine (two checkouts, say) take turns.
    _lock: std::fs::File,
}

impl Inetd {
    fn start() -> Inetd {
        require("inetd", "openbsd-inetd");
        let lock = std::fs::File::create(std::env::temp_dir().join("socketeer-inetd-test.lock")).unwrap();
        lock.lock().unwrap();
        let config = tempfile::tempdir().unwrap();
        let path = config.path().join("inetd.conf");
        let mut text = String::new();
        for service in ["echo", "daytime", "time"] {
            text += &format!("127.7.7.7:{service} stream tcp4 nowait root internal\n");
            text += &format!("[::1]:{service} dgram udp6 wait root internal\n");
        }
        std::fs::write(&path, text).unwrap();
        let child = Command::new("inetd")
            .args(["-d", "-i"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start inetd");
        let ready =
            eventually(Duration::from_secs(5), || std::net::TcpStream::connect("127.7.7.7:37").is_ok());
        assert!(ready, "inetd did not start listening on 127.7.7.7 (it needs root for ports 7, 13 and 37)");
        Inetd { child, _config: config, _lock: lock }
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn our_clients_talk_to_inetd() {
    let _inetd = Inetd::start();
    assert_eq!(
        run(&["echo", "send", "127.7.7.7:7", "to inetd", "and back"], b"").ok(),
        "to inetd\nand back\n"
    );
    assert_eq!(run(&["echo", "send", "[::1]:7", "--udp", "datagram"], b"").ok(), "datagram\n");
    for (target, udp) in [("127.7.7.7:7", false), ("[::1]:7", true)] {
        let mut args = vec!["echo", "ping", target, "-c", "3", "-i", "20ms", "--json"];
        if udp {
            args.push("--udp");
        }
        assert_eq!(run(&args, b"").json_of("summary")["received"], 3, "{target}");
    }
    let raw = run(&["echo", "send", "127.7.7.7:7", "--raw"], b"raw\x00bytes\xff");
    assert!(raw.status.success());
    assert_eq!(raw.stdout_bytes, b"raw\x00bytes\xff");

    let daytime_tcp = run(&["daytime", "get", "127.7.7.7:13"], b"");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(daytime_tcp.ok().trim_end().ends_with(&year), "inetd's ctime line: {}", daytime_tcp.stdout);
    let daytime_udp = run(&["daytime", "get", "[::1]:13", "--udp"], b"");
    assert!(daytime_udp.ok().contains(&year));
    for args in [
        &["daytime", "get", "127.7.7.7:37", "--time", "--json"][..],
        &["daytime", "get", "[::1]:37", "--time", "--udp", "--json"],
    ] {
        let answer = run(args, b"").json_of("answer");
        let utc: chrono::DateTime<chrono::Utc> = answer["utc"].as_str().unwrap().parse().unwrap();
        assert!((utc - chrono::Utc::now()).num_seconds().abs() < 5, "{args:?}: {answer}");
    }
}
