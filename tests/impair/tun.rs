//! Issue 15: `impair --tun`, every IP packet between two network namespaces
//! the test makes (or one and the host), through the impairment model: real
//! TCP (nc) and ICMP (ping) across it, settings changed while it runs, and
//! nothing left behind.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::util::{Daemon, binary, require, run, run_command};

/// A running `impair --tun` between two namespaces of its own.
struct Path {
    daemon: Daemon,
    names: [String; 2],
    control: String,
    _dir: tempfile::TempDir,
}

/// Names no other test (or test run) uses.
fn names() -> [String; 2] {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = format!("skt-test-{}-{n}", std::process::id());
    [format!("{stem}-a"), format!("{stem}-b")]
}

/// `impair --tun --netns A,B extra...` with a control socket, once it is up.
fn path(extra: &[&str]) -> Path {
    require("ip", "iproute2");
    let names = names();
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("tun.sock").to_str().unwrap().to_owned();
    let netns = names.join(",");
    let mut args = vec!["impair", "--tun", "--netns", &netns, "--seed", "1", "--control", &control];
    args.extend_from_slice(extra);
    // The path, up, down, and the control socket.
    let daemon = Daemon::start(&args, 4);
    assert!(daemon.status_lines()[0].starts_with("impair tun"), "{:?}", daemon.status_lines());
    Path { daemon, names, control, _dir: dir }
}

impl Path {
    /// `program args...` run inside end `end` (0 or 1).
    fn exec(&self, end: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[end], program]);
        command
    }

    fn ctl(&self, words: &[&str]) -> String {
        run(&[&["impair", "ctl", &self.control][..], words].concat(), b"").ok().trim().to_owned()
    }

    fn stats(&self) -> Value {
        serde_json::from_str(&self.ctl(&["stats"])).unwrap()
    }

    /// Stops it as Ctrl-C would, and checks it removed both namespaces.
    fn stop(self) -> Vec<String> {
        let names = self.names.clone();
        let stopped = self.daemon.stop_with("INT");
        assert!(stopped.status.success(), "{stopped:#?}");
        for name in &names {
            assert!(!namespaces().contains(name), "{name} left behind");
        }
        stopped.stdout
    }
}

/// The names `ip netns list` shows.
fn namespaces() -> Vec<String> {
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The fastest round trip of a ping's summary line, in milliseconds.
fn min_rtt(ping_output: &str) -> f64 {
    let summary =
        ping_output.lines().find(|l| l.starts_with("rtt ")).unwrap_or_else(|| panic!("{ping_output}"));
    summary.split(" = ").nth(1).unwrap().split('/').next().unwrap().parse().unwrap()
}

#[test]
fn tcp_carries_a_file_intact_through_loss_and_delay_and_the_namespaces_go_away() {
    require("nc", "netcat-openbsd");
    let path = path(&["--loss", "5%", "--delay", "5ms"]);
    let program = env!("CARGO_BIN_EXE_socketeer");
    let echo = Daemon::start_command(
        path.exec(1, program),
        &["echo", "serve", "--tcp", "--bind", "198.18.0.2", "--port", "0"],
        1,
    );
    let port = echo.addr("echo", "tcp").port().to_string();
    let data = binary(300_000);
    // A real peer no one here wrote: nc sends the file and reads the echo until the server closes.
    let mut nc = path.exec(0, "nc");
    nc.args(["-N", "-w", "30", "198.18.0.2", &port]);
    let out = run_command(&mut nc, &data);
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stdout_bytes == data,
        "{} bytes came back, not the {} sent",
        out.stdout_bytes.len(),
        data.len()
    );
    let stats = path.stats();
    for way in ["up", "down"] {
        let dropped = stats[way]["dropped_loss"].as_u64().unwrap();
        assert!(dropped > 0, "5% of some 200 segments {way}: {stats}");
        assert!(stats[way]["forwarded"].as_u64().unwrap() > 100, "{stats}");
    }
    drop(echo);
    let printed = path.stop();
    assert!(printed.iter().any(|l| l.starts_with("up: ") && l.contains("dropped")), "{printed:?}");
}

#[test]
fn ping_crosses_the_delay_of_each_direction_over_ipv4_and_ipv6() {
    require("ping", "iputils-ping");
    let path = path(&["--up-delay", "30ms", "--down-delay", "10ms"]);
    for to in ["198.18.0.2", "2001:2::c612:2"] {
        let mut ping = path.exec(0, "ping");
        ping.args(["-c", "3", "-i", "0.2", "-W", "5", to]);
        let out = run_command(&mut ping, b"");
        assert!(out.status.success(), "{out:#?}");
        // A delay is a floor by construction: no reply can come back sooner.
        assert!(min_rtt(&out.stdout) >= 40.0, "30 ms there and 10 ms back: {}", out.stdout);
    }
    let stats = path.stats();
    assert_eq!(stats["up"]["received"], stats["up"]["forwarded"], "{stats}");
    assert!(stats["up"]["received"].as_u64().unwrap() >= 6, "{stats}");
    path.stop();
}

#[test]
fn all_loss_cuts_the_path_and_the_control_socket_restores_it() {
    require("ping", "iputils-ping");
    let path = path(&[]);
    assert!(path.ctl(&["set", "loss=100%"]).starts_with("ok up: loss 100%"));
    let mut ping = path.exec(1, "ping");
    ping.args(["-c", "2", "-i", "0.2", "-W", "1", "198.18.0.1"]);
    let cut = run_command(&mut ping, b"");
    assert_eq!(cut.code(), Some(1), "nothing gets through: {cut:#?}");
    assert!(path.stats()["down"]["dropped_loss"].as_u64().unwrap() >= 2);
    path.ctl(&["set", "loss=0%"]);
    let mut ping = path.exec(1, "ping");
    ping.args(["-c", "2", "-i", "0.2", "-W", "5", "198.18.0.1"]);
    let restored = run_command(&mut ping, b"");
    assert!(restored.status.success(), "{restored:#?}");
    path.stop();
}

#[test]
fn an_existing_namespace_is_joined_with_the_host_as_the_other_end_and_left_as_it_was() {
    require("ping", "iputils-ping");
    let [name, _] = names();
    let added = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
    assert!(added.success());
    let tun = Daemon::start(
        &["impair", "--tun", "--netns", &name, "--addresses", "198.18.91.1,198.18.91.2", "--json"],
        1,
    );
    let started: Value = serde_json::from_str(&tun.status_lines()[0]).unwrap();
    assert_eq!(started["ends"][0]["name"], "host", "{started}");
    assert_eq!(started["ends"][1]["namespace"], name.as_str(), "{started}");
    let interface = started["ends"][0]["interface"].as_str().unwrap().to_owned();
    // From the host into the namespace the test made.
    let out = run_command(Command::new("ping").args(["-c", "2", "-i", "0.2", "-W", "5", "198.18.91.2"]), b"");
    assert!(out.status.success(), "{out:#?}");
    let stopped = tun.stop_with("TERM");
    assert!(stopped.status.success(), "{stopped:#?}");
    assert!(namespaces().contains(&name), "a joined namespace stays");
    let links = Command::new("ip").args(["-n", &name, "-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    let host_links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    assert_eq!(links.lines().count(), 1, "only its loopback is left: {links}");
    assert!(
        !String::from_utf8_lossy(&host_links.stdout).contains(&interface),
        "{interface} left on the host"
    );
}

#[test]
fn without_root_it_says_to_use_sudo_and_exits_2() {
    require("setpriv", "util-linux");
    let program = env!("CARGO_BIN_EXE_socketeer");
    let mut nobody = Command::new("setpriv");
    nobody.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--", program]);
    nobody.args(["impair", "--tun", "--netns", "a,b", "--loss", "1%"]);
    let out = run_command(&mut nobody, b"");
    assert_eq!(out.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("needs root") && out.stderr.contains("sudo"), "{}", out.stderr);
}

#[test]
fn tun_arguments_that_cannot_be_are_usage_errors() {
    let [a, b] = names();
    let two = format!("{a},{b}");
    let same = format!("{a},{a}");
    for (args, needle) in [
        (&["impair", "--tun"][..], "--netns A,B"),
        (&["impair", "--tun", "--netns", "x,y,z"], "one or two names"),
        (&["impair", "--tun", "--netns", &same], "both ends"),
        (&["impair", "--tun", "--netns", "../etc"], "cannot name a network namespace"),
        (&["impair", "--tun", "--netns", &two, "--addresses", "198.18.0.1,198.18.0.1"], "twice"),
        (&["impair", "--tun", "--netns", &two, "--addresses", "198.18.0.1"], "two IPv4 addresses"),
        (&["impair", "--tun", "--netns", &two, "--listen", "127.0.0.1:0"], "cannot be used with"),
        (&["impair", "--netns", &two], "--tun"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    for name in [&a, &b] {
        assert!(!namespaces().contains(name), "a refused path made {name}");
    }
}
