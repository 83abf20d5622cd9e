//! File transfer over UDP, end to end: the real sender and receiver over
//! loopback, directly and through the real impairment proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Daemon, Finished, binary, run, socketeer};

mod hostile;
mod raw;

use raw::{hello_reply, open_files_in};

const PROTOCOLS: [&str; 3] = ["stop-and-wait", "go-back-n", "selective-repeat"];

fn receiver(dir: &Path, extra: &[&str]) -> Daemon {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["transfer", "recv", "--port", "0", "--dir", dir, "--json"];
    args.extend_from_slice(extra);
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "3s"]);
    }
    Daemon::start(&args, 1)
}

fn write_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let content = binary(len);
    let path = dir.join(name);
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

fn send(file: &Path, target: SocketAddr, extra: &[&str]) -> Finished {
    let (file, target) = (file.to_str().unwrap(), target.to_string());
    let mut args = vec!["transfer", "send", file, &target, "--json", "--timeout", "20s"];
    args.extend_from_slice(extra);
    run(&args, b"")
}

#[test]
fn every_protocol_moves_a_file_intact_over_loopback() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &[]);
    let target = recv.addr("transfer", "udp");
    for (protocol, len) in
        [("stop-and-wait", 300_000), ("go-back-n", 1_500_000), ("selective-repeat", 1_500_017)]
    {
        let (file, content) = write_file(outbox.path(), &format!("{protocol}.bin"), len);
        let out = send(&file, target, &["--protocol", protocol]);
        let summary = out.json_of("summary");
        assert_eq!(summary["protocol"], protocol);
        assert_eq!(summary["bytes"], len as u64);
        assert!(summary["goodput_bytes_per_sec"].as_f64().unwrap() > 0.0);
        let stored = std::fs::read(inbox.path().join(format!("{protocol}.bin"))).unwrap();
        assert!(stored == content, "{protocol}: the stored file differs");
    }
    let stopped = recv.stop_with("TERM");
    let reports: Vec<serde_json::Value> =
        stopped.stdout.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r["type"] == "received" && r["error"].is_null()), "{reports:?}");
}

#[test]
fn every_protocol_survives_every_impairment_of_the_proxy() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &[]);
    let upstream = recv.addr("transfer", "udp").to_string();
    // Stop-and-wait pays a round trip per block: it gets a smaller file.
    let (small, _) = write_file(outbox.path(), "small.bin", 14_000);
    let (large, _) = write_file(outbox.path(), "large.bin", 100_000);
    let scenarios: [&[&str]; 9] = [
        &[],
        &["--loss", "1%"],
        &["--loss", "10%"],
        &["--loss", "30%"],
        &["--burst-loss", "2%,30%"],
        &["--duplicate", "10%"],
        &["--reorder", "10%", "--reorder-distance", "3"],
        &["--corrupt", "5%"],
        &["--delay", "20ms", "--jitter", "5ms"],
    ];
    std::thread::scope(|s| {
        for (i, impairment) in scenarios.iter().enumerate() {
            let (upstream, small, large) = (&upstream, &small, &large);
            s.spawn(move || {
                let mut args = vec!["impair", "--listen", "127.0.0.1:0", "--to", upstream, "--seed", "42"];
                args.extend_from_slice(impairment);
                let proxy = Daemon::start(&args, 3);
                let target = proxy.addr("impair", "udp");
                for protocol in PROTOCOLS {
                    let (file, window) =
                        if protocol == "stop-and-wait" { (small, "1") } else { (large, "16") };
                    let name = format!("{i}-{protocol}");
                    let out =
                        send(file, target, &["--protocol", protocol, "--window", window, "--name", &name]);
                    assert!(out.status.success(), "{impairment:?} {protocol}: {}", out.stderr);
                }
            });
        }
    });
    for (i, _) in scenarios.iter().enumerate() {
        for protocol in PROTOCOLS {
            let source = if protocol == "stop-and-wait" { &small } else { &large };
            let stored = std::fs::read(inbox.path().join(format!("{i}-{protocol}"))).unwrap();
            assert!(stored == std::fs::read(source).unwrap(), "scenario {i} {protocol}: content differs");
        }
    }
}

#[test]
fn sequence_numbers_wrap_over_a_real_socket() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recv = receiver(inbox.path(), &[]);
    let (file, content) = write_file(outbox.path(), "wrap.bin", 140_000);
    // 100 blocks with 4-bit numbers: they wrap six times. Without --window
    // the window is the most 4 bits allow.
    for (protocol, window, used) in [("go-back-n", Some("15"), 15), ("selective-repeat", None, 8)] {
        let name = format!("wrap-{protocol}");
        let mut args = vec!["-p", protocol, "--seq-bits", "4", "--name", &name];
        args.extend(window.map(|w| ["-w", w]).iter().flatten());
        let out = send(&file, recv.addr("transfer", "udp"), &args);
        assert!(out.status.success(), "{}", out.stderr);
        assert_eq!(out.json_of("summary")["window"], used, "{protocol}");
        assert!(std::fs::read(inbox.path().join(&name)).unwrap() == content);
    }
    let too_big =
        send(&file, recv.addr("transfer", "udp"), &["-p", "selective-repeat", "--seq-bits", "4", "-w", "9"]);
    assert_eq!(too_big.code(), Some(2));
    assert!(
        too_big
            .stderr
            .contains("selective-repeat with 4-bit sequence numbers allows a window of 1 to 8, not 9")
    );
}

#[test]
fn stdin_is_sent_under_the_given_name() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &[]);
    let target = recv.addr("transfer", "udp").to_string();
    let content = binary(70_001);
    let out = run(&["transfer", "send", "-", &target, "--name", "piped.bin"], &content);
    assert!(out.ok().starts_with("sent piped.bin (70001 bytes) in "), "{}", out.stdout);
    assert!(std::fs::read(inbox.path().join("piped.bin")).unwrap() == content);
    let empty = run(&["transfer", "send", "-", &target, "--name", "empty.bin"], b"");
    assert!(empty.status.success(), "{}", empty.stderr);
    assert_eq!(std::fs::read(inbox.path().join("empty.bin")).unwrap(), b"");
}

#[test]
fn names_are_never_paths_and_files_are_kept_unless_overwrite() {
    let parent = tempfile::tempdir().unwrap();
    let inbox = parent.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let recv = receiver(&inbox, &[]);
    let target = recv.addr("transfer", "udp").to_string();
    for name in ["../escape.txt", "/tmp/absolute.txt", "sub/dir.txt"] {
        let out = run(&["transfer", "send", "-", &target, "--name", name], b"payload");
        assert_eq!(out.code(), Some(2), "{name}");
        assert!(out.stderr.contains("is a path, not a plain file name"), "{name}: {}", out.stderr);
        // A sender that does not check its own names meets the receiver's check.
        let refusal = hello_reply(&target, name);
        assert!(refusal.contains("is a path, not a plain file name"), "{name}: {refusal}");
    }
    assert!(!parent.path().join("escape.txt").exists());
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0);

    assert!(run(&["transfer", "send", "-", &target, "--name", "once.txt"], b"first").status.success());
    let again = run(&["transfer", "send", "-", &target, "--name", "once.txt"], b"second");
    assert_eq!(again.code(), Some(1));
    assert!(again.stderr.contains("'once.txt' already exists on the receiver"), "{}", again.stderr);
    assert_eq!(std::fs::read(inbox.join("once.txt")).unwrap(), b"first");
    drop(recv);
    let overwriting = receiver(&inbox, &["--overwrite"]);
    let target = overwriting.addr("transfer", "udp").to_string();
    assert!(run(&["transfer", "send", "-", &target, "--name", "once.txt"], b"second").status.success());
    assert_eq!(std::fs::read(inbox.join("once.txt")).unwrap(), b"second");
}

#[test]
fn a_silent_receiver_ends_the_send_with_a_clear_error() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &[]);
    let upstream = recv.addr("transfer", "udp").to_string();
    let proxy = Daemon::start(&["impair", "--listen", "127.0.0.1:0", "--to", &upstream, "--loss", "100%"], 3);
    let target = proxy.addr("impair", "udp").to_string();
    let out = run(&["transfer", "send", "-", &target, "--timeout", "1s"], b"into the void");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("the other side has not answered for 1s; giving up"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(15));

    let nobody = crate::util::closed_port();
    let out = run(&["transfer", "send", "-", &format!("127.0.0.1:{nobody}")], b"hello?");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("is `socketeer transfer recv` running there?"), "{}", out.stderr);
}

#[test]
fn a_sender_that_vanishes_leaves_no_file_behind() {
    let inbox = tempfile::tempdir().unwrap();
    let recv = receiver(inbox.path(), &["--timeout", "1s"]);
    let target = recv.addr("transfer", "udp").to_string();
    let mut sender = socketeer()
        .args(["transfer", "send", "-", &target, "--name", "half.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    sender.stdin.as_mut().unwrap().write_all(&binary(200_000)).unwrap();
    // Let the first blocks arrive (the receiver holds a file in the inbox,
    // without a name), then kill the sender mid-transfer.
    let holds_a_file = || open_files_in(recv.pid(), inbox.path()) > 0;
    assert!(crate::util::eventually(Duration::from_secs(10), holds_a_file), "no file was opened");
    assert_eq!(std::fs::read_dir(inbox.path()).unwrap().count(), 0, "an unverified file has a name");
    Command::new("kill").args(["-KILL", &sender.id().to_string()]).status().unwrap();
    sender.wait().unwrap();
    let cleaned = crate::util::eventually(Duration::from_secs(10), || !holds_a_file());
    assert!(cleaned, "the partial file is still open");
    assert_eq!(std::fs::read_dir(inbox.path()).unwrap().count(), 0);
    let stopped = recv.stop_with("TERM");
    let report: serde_json::Value = serde_json::from_str(&stopped.stdout[0]).unwrap();
    assert_eq!(report["name"], "half.bin");
    assert!(report["error"].as_str().unwrap().contains("has not answered"), "{report}");
}

#[test]
fn files_sent_one_after_another_are_never_refused_as_busy() {
    let (outbox, inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // One transfer at a time: finished ones linger to answer a repeated FIN,
    // and must not hold the only slot.
    let recv = receiver(inbox.path(), &["--max-sessions", "1"]);
    let target = recv.addr("transfer", "udp");
    for i in 0..20 {
        let (file, _) = write_file(outbox.path(), &format!("f{i}"), 100);
        let out = send(&file, target, &[]);
        assert_eq!(out.code(), Some(0), "send {i}: {}", out.stderr);
    }
    assert_eq!(std::fs::read_dir(inbox.path()).unwrap().count(), 20);
}

#[test]
fn swapped_arguments_get_a_hint() {
    let out = run(&["transfer", "send", "localhost:6969", "report.pdf"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("cannot open localhost:6969: No such file or directory (the file comes first"),
        "{}",
        out.stderr
    );
}
