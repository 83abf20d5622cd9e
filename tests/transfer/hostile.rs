//! Issue 15, the receiver: what an attacker or a demanding user found, each
//! reproduction as a test. The receiver is the real binary; attackers are
//! hand-made peers ([`super::raw`]) on other loopback addresses.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::raw::{Answer, RawPeer, open_files_in};
use super::{receiver, send, write_file};
use crate::util::{Daemon, binary, eventually, require, run, run_command, socketeer};

/// A `transfer send -` whose input the test writes: it stays mid-transfer
/// until its stdin closes.
struct SlowSender {
    child: std::process::Child,
}

impl SlowSender {
    fn start(target: &str, name: &str, first: &[u8]) -> SlowSender {
        let mut child = socketeer()
            .args(["transfer", "send", "-", target, "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(first).unwrap();
        SlowSender { child }
    }

    fn finish(mut self, rest: &[u8]) -> crate::util::Finished {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(rest).unwrap();
        drop(stdin);
        let started = Instant::now();
        let output = self.child.wait_with_output().unwrap();
        crate::util::Finished {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stdout_bytes: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// Issue 15.1: with --overwrite, a peer who could list the directory sent a
/// file named like the in-flight temporary file; the victim's verified file
/// was then stored with the attacker's bytes, and both sides said success.
#[test]
fn a_peer_cannot_replace_a_file_being_received() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &["--overwrite"]);
    let target = recv.addr("transfer", "udp").to_string();
    let victim_content = binary(300_000);
    let victim = SlowSender::start(&target, "report.pdf", &victim_content[..100_000]);
    assert!(eventually(Duration::from_secs(10), || open_files_in(recv.pid(), inbox.path()) > 0));
    // What an attacker who can list the directory sees while it is received.
    let listed: Vec<String> = std::fs::read_dir(inbox.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let temporary = listed.iter().find(|n| n.ends_with(".part")).cloned();
    assert_eq!(temporary, None, "the file being received has a name others can see: {listed:?}");
    // Guessing does not help either: names of the temporary pattern are refused.
    let guess = temporary.unwrap_or_else(|| ".socketeer-0123456789abcdef.part".to_owned());
    let attack = run(&["transfer", "send", "-", &target, "--name", &guess], b"the attacker's bytes");
    assert_ne!(attack.code(), Some(0), "the attack was accepted");
    let refusal = super::raw::hello_reply(&target, &guess);
    assert!(refusal.contains("the receiver's own temporary files"), "{refusal}");
    let done = victim.finish(&victim_content[100_000..]);
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        std::fs::read(inbox.path().join("report.pdf")).unwrap() == victim_content,
        "the stored file is not the victim's"
    );
}

/// Issue 15.2: forged HELLOs took every session slot for as long as their
/// sender kept pinging, and each could hold 16 MiB. A flood from many
/// addresses that completes the address check (it is not spoofed) and then
/// only pings must leave a real sender its session, and the memory the
/// flood makes the receiver keep stays within --max-buffer.
#[test]
fn a_flood_of_sessions_leaves_a_real_sender_its_session() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &["--max-buffer", "8MiB", "--max-sessions", "32"]);
    let target = recv.addr("transfer", "udp");
    let rss_before = resident_kib(recv.pid());
    // 40 attackers on 127.0.1.x, more than the receiver's 32 places.
    let mut flood: Vec<RawPeer> =
        (1..=40u8).map(|i| RawPeer::bind(IpAddr::from([127, 0, 1, i]), 1000 + u32::from(i))).collect();
    let mut held = 0;
    for (i, peer) in flood.iter_mut().enumerate() {
        match peer.hello(target, &format!("flood-{i}"), 4096, 65_000) {
            Answer::Accepted { .. } => held += 1,
            Answer::Other(refusal) => assert!(refusal.contains("busy"), "{refusal}"),
        }
    }
    assert_eq!(held, 32, "the flood should fill every place");
    // Eight of them fill their windows out of order (block 0 never comes),
    // the most a session could be made to keep.
    let block = vec![0x55u8; 65_000];
    for peer in flood.iter_mut().take(8) {
        for seq in 1..100 {
            peer.data(target, seq, seq as u16, &block);
        }
    }
    // A real sender, while the flood keeps its sessions alive.
    let (outbox, _) = (tempfile::tempdir().unwrap(), ());
    let (file, content) = write_file(outbox.path(), "real.bin", 200_000);
    let started = Instant::now();
    let mut delivered = false;
    while !delivered && started.elapsed() < Duration::from_secs(20) {
        for peer in &mut flood {
            peer.ping(target);
        }
        let out = send(&file, target, &[]);
        delivered = out.status.success();
        assert!(delivered || out.stderr.contains("busy"), "{}", out.stderr);
    }
    assert!(delivered, "the flood held the real sender out for 20 s");
    assert!(std::fs::read(inbox.path().join("real.bin")).unwrap() == content);
    let grown = resident_kib(recv.pid()).saturating_sub(rss_before);
    assert!(
        grown < 40 << 10,
        "the receiver grew by {grown} KiB (8 floods x 99 blocks of 65 kB: 51 MB without a budget)"
    );
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Issue 15.2: forged source addresses never see the RETRY token, so they
/// get no session, no file and no report.
#[test]
fn hellos_without_the_token_get_nothing_but_a_retry() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &["--max-sessions", "1"]);
    let target = recv.addr("transfer", "udp");
    for i in 0..200u32 {
        let mut spoofed = RawPeer::bind(IpAddr::from([127, 0, 2, 1]), i);
        let answer = spoofed.hello_once(target, "spoofed.bin").unwrap();
        assert!(answer.starts_with("Retry"), "{answer}");
    }
    assert_eq!(open_files_in(recv.pid(), inbox.path()), 0);
    // The one place is still free.
    let content = binary(10_000);
    let out = run(&["transfer", "send", "-", &target.to_string(), "--name", "real.bin"], &content);
    assert!(out.status.success(), "{}", out.stderr);
    let stopped = recv.stop_with("TERM");
    assert_eq!(stopped.stdout.len(), 1, "only the real transfer is reported: {:?}", stopped.stdout);
}

/// Issue 15.3: selective repeat with 2-bit sequence numbers through loss,
/// reordering and duplication was still exchanging a datagram a second
/// after 60 s in 3 of 6 runs.
#[test]
fn two_bit_sequence_numbers_finish_through_a_path_that_reorders_and_duplicates() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &[]);
    let upstream = recv.addr("transfer", "udp").to_string();
    let (file, content) = write_file(outbox.path(), "wrap.bin", 60_000);
    for seed in ["1", "2", "3"] {
        let messy = [
            "--loss",
            "5%",
            "--reorder",
            "10%",
            "--reorder-distance",
            "3",
            "--duplicate",
            "10%",
            "--seed",
            seed,
        ];
        let proxy = Daemon::start(
            &[&["impair", "--listen", "127.0.0.1:0", "--to", &upstream][..], &messy].concat(),
            3,
        );
        let name = format!("wrap-{seed}");
        let target = proxy.addr("impair", "udp");
        let out = send(&file, target, &["-p", "selective-repeat", "--seq-bits", "2", "--name", &name]);
        assert!(out.status.success(), "seed {seed}: {}", out.stderr);
        assert!(std::fs::read(inbox.path().join(&name)).unwrap() == content, "seed {seed}");
    }
}

/// Issue 15.4: stop-and-wait through the bursty links the help suggests
/// gave up with the default timeouts: 13 losses in a row, each timeout
/// doubled up to 2 s, outlast 10 s of silence.
#[test]
fn stop_and_wait_crosses_bursts_of_loss_with_default_timeouts() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &["--timeout", "10s"]);
    let upstream = recv.addr("transfer", "udp").to_string();
    let (file, content) = write_file(outbox.path(), "bursty.bin", 200_000);
    for model in ["2%,25%", "1%,30%"] {
        // Seed 3 of both models held a burst that outlasted the old timeouts.
        for seed in ["1", "2", "3"] {
            let args = [
                "impair",
                "--listen",
                "127.0.0.1:0",
                "--to",
                &upstream,
                "--burst-loss",
                model,
                "--seed",
                seed,
            ];
            let proxy = Daemon::start(&args, 3);
            let target = proxy.addr("impair", "udp").to_string();
            let name = format!("bursty-{model}-{seed}");
            let path = file.to_str().unwrap();
            let out = run(&["transfer", "send", path, &target, "-p", "stop-and-wait", "--name", &name], b"");
            assert!(out.status.success(), "{model} seed {seed}: {}", out.stderr);
            assert!(std::fs::read(inbox.path().join(&name)).unwrap() == content);
        }
    }
}

/// Issue 15.5: the low items.
#[test]
fn stale_temporary_files_of_a_killed_receiver_are_removed_at_start() {
    let inbox = tempfile::tempdir().unwrap();
    let stale = inbox.path().join(".socketeer-0123456789abcdef.part");
    std::fs::write(&stale, b"left by a receiver killed mid-transfer").unwrap();
    std::fs::write(inbox.path().join("keep.part"), b"someone else's").unwrap();
    let _recv = receiver(inbox.path(), &[]);
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(inbox.path().join("keep.part").exists());
}

#[test]
fn a_second_sender_of_a_name_being_received_is_refused_at_once() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &[]);
    let target = recv.addr("transfer", "udp").to_string();
    let first = SlowSender::start(&target, "same.bin", &binary(50_000));
    assert!(eventually(Duration::from_secs(10), || open_files_in(recv.pid(), inbox.path()) > 0));
    let second = run(&["transfer", "send", "-", &target, "--name", "same.bin"], &binary(5_000_000));
    assert_eq!(second.code(), Some(1));
    assert!(second.stderr.contains("'same.bin' is being received from another sender"), "{}", second.stderr);
    assert!(second.elapsed < Duration::from_secs(5), "refused only after sending: {:?}", second.elapsed);
    assert!(first.finish(b"").status.success());
}

#[test]
fn a_size_beyond_the_free_space_and_odd_names_are_refused_at_hello() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &[]);
    let target = recv.addr("transfer", "udp").to_string();
    let mut huge = RawPeer::bind(IpAddr::from([127, 0, 0, 1]), 9);
    huge.set_size(1 << 62);
    let answer = huge.hello(target.parse().unwrap(), "huge.bin", 8, 1024);
    assert!(matches!(&answer, Answer::Other(e) if e.contains("has room for")), "{answer:?}");
    for name in [" ", "...", " padded"] {
        let refusal = super::raw::hello_reply(&target, name);
        assert!(refusal.contains("Refused"), "{name:?}: {refusal}");
    }
}

#[test]
fn errors_sent_to_the_sender_hold_no_paths_of_the_receiver() {
    let inbox = tempfile::tempdir().unwrap();
    // The final name is a directory: the file cannot take it.
    std::fs::create_dir(inbox.path().join("taken")).unwrap();
    let recv = receiver(inbox.path(), &["--overwrite"]);
    let target = recv.addr("transfer", "udp").to_string();
    let out = run(&["transfer", "send", "-", &target, "--name", "taken"], b"content");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("cannot name the file 'taken'"), "{}", out.stderr);
    let inbox_path = inbox.path().canonicalize().unwrap();
    assert!(!out.stderr.contains(inbox_path.to_str().unwrap()), "{}", out.stderr);
}

#[test]
fn a_directory_the_receiver_cannot_write_is_refused_at_start() {
    require("setpriv", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(socketeer().get_program())
        .args(["transfer", "recv", "--port", "0", "--dir", dir.path().to_str().unwrap()]);
    let out = run_command(&mut command, b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot write into"), "{}", out.stderr);
}

#[test]
fn corrupted_datagrams_are_counted_as_dropped() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &[]);
    let upstream = recv.addr("transfer", "udp").to_string();
    let proxy = Daemon::start(
        &["impair", "--listen", "127.0.0.1:0", "--to", &upstream, "--up-corrupt", "10%", "--seed", "4"],
        3,
    );
    let (file, _) = write_file(outbox.path(), "corrupt.bin", 100_000);
    assert!(send(&file, proxy.addr("impair", "udp"), &[]).status.success());
    let stopped = recv.stop_with("TERM");
    let report: serde_json::Value = serde_json::from_str(&stopped.stdout[0]).unwrap();
    assert!(report["stats"]["dropped"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn a_sender_tries_every_address_of_the_receiver() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &[]);
    let ipv4 = recv.addr("transfer", "udp");
    // Nothing listens on ::1 at that port: refused at once, then 127.0.0.1 answers,
    // as for `localhost` where it names both.
    let nobody: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, ipv4.port()).into();
    let config = socketeer::transfer::SenderConfig {
        protocol: socketeer::transfer::Protocol::SelectiveRepeat,
        window: 16,
        block: 1000,
        seq_bits: 16,
        session: 77,
        initial_rto: socketeer::transfer::INITIAL_RTO,
        min_rto: Duration::from_millis(5),
        max_rto: Duration::from_millis(500),
        peer_timeout: Duration::from_secs(10),
        progress_timeout: Duration::from_secs(10),
        name: "either.bin".to_owned(),
        size: Some(5000),
    };
    let input = Box::new(std::io::Cursor::new(binary(5000)));
    let waker = socketeer::poll::Waker::new().unwrap();
    let report = socketeer::transfer::driver::send(input, &[nobody, ipv4], config, &waker, |_| {}).unwrap();
    assert_eq!(report.to, ipv4);
    assert_eq!(std::fs::read(inbox.path().join("either.bin")).unwrap(), binary(5000));
}

/// Issue 14: `transfer recv` exited 0 with "work done" after its receiving
/// thread panicked. A loop that dies must end the command with an error
/// that says why.
#[test]
fn a_receiving_loop_that_dies_ends_the_command_with_an_error() {
    use std::io::{BufRead, BufReader, Read};
    let inbox = tempfile::tempdir().unwrap();
    let mut child = socketeer()
        .env(socketeer::transfer::driver::FAULT_ENV, "panic")
        .args(["transfer", "recv", "--port", "0", "--dir", inbox.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut status).unwrap();
    let addr: SocketAddr = status.split_whitespace().nth(2).unwrap().parse().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(b"any datagram", addr).unwrap();
    let started = Instant::now();
    let code = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit.code();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still running after its loop died");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("work done"), "{stderr}");
}

/// Issue 14: `transfer recv --timeout 300000000000y` started, then panicked
/// at the first HELLO (an `Instant` overflow).
#[test]
fn timeouts_no_clock_can_hold_are_refused_at_start() {
    for args in [
        &["transfer", "recv", "--port", "0", "--timeout", "300000000000y"][..],
        &["transfer", "recv", "--port", "0", "--progress-timeout", "300000000000y"],
        &["transfer", "send", "-", "127.0.0.1:9", "--timeout", "300000000000y"],
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains("too large; the largest duration is 365d"), "{}", out.stderr);
    }
}
