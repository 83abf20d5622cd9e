//! Runs the commands of the course guide, as a learner would type them.
//! The conventions are in the module doc of `tests/course/mod.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::background::Background;
use super::markdown::{GuideCommand, ShellBlock, shell_blocks};
use crate::util::{ALL_ON_FREE_PORTS, Daemon, closed_port, run_command, socketeer};

/// The pages whose commands run, from the repository's root. A test below
/// checks that every page of the guide is here.
pub const PAGES: [&str; 8] = [
    "docs/course/README.md",
    "docs/course/1-sockets-threads-and-processes.md",
    "docs/course/2-tcp-ip-and-threads.md",
    "docs/course/3-client-server.md",
    "docs/course/4-processes-threads-and-ports.md",
    "docs/course/5-chapter-4-exercises.md",
    "docs/course/run-your-own.md",
    "examples/python/README.md",
];

/// The default ports of `socketeer serve` and the services behind them.
const SERVE_PORTS: [(u16, &str, &str); 6] = [
    (7007, "echo", "tcp"),
    (1313, "daytime", "tcp"),
    (3737, "time", "tcp"),
    (12345, "udp", "udp"),
    (5555, "chat", "tcp"),
    (6969, "transfer", "udp"),
];

/// How long `wait $!` waits for the last background command to end.
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Ports the guide's own servers use; each gets a free port of its own, so
/// pages that run side by side never share one (9345 and 9346 are in use).
const PAGE_PORTS: std::ops::RangeInclusive<u16> = 9000..=9999;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs every command of the page at `path` against a `socketeer serve` on
/// free ports, in a scratch directory.
pub fn run_page(path: &str) {
    let page = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let blocks = shell_blocks(&page);
    let serve = Daemon::start(&ALL_ON_FREE_PORTS, 10);
    let mut ports: BTreeMap<u16, u16> = SERVE_PORTS
        .iter()
        .map(|&(port, service, transport)| (port, serve.addr(service, transport).port()))
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    for entry in ["examples", "src", "docs", "Cargo.toml", "README.md"] {
        std::os::unix::fs::symlink(root().join(entry), scratch.path().join(entry)).unwrap();
    }
    let mut servers: Vec<(String, Background)> = Vec::new();
    for block in &blocks {
        if skipped(path, block) {
            continue;
        }
        for command in &block.commands {
            let text = with_ports(&command.text, &mut ports);
            let place = format!("{path}:{}: {}", command.line, command.text);
            if super::markdown::split_comment(&text).0 == "wait $!" {
                let (started, mut last) =
                    servers.pop().unwrap_or_else(|| panic!("{place}: nothing runs in the background"));
                let status = last
                    .wait(WAIT_LIMIT)
                    .unwrap_or_else(|| panic!("{started}\nstill running after {WAIT_LIMIT:?}"));
                assert!(status.success(), "{started}\nended with {status}; it printed:\n{}", last.output());
            } else if command.background {
                servers.push((place, Background::start(shell(&text, scratch.path()), b"")));
            } else {
                run_one(&place, &text, command, scratch.path());
            }
        }
    }
    for (place, server) in servers {
        let ended = server.stop();
        if let Some(status) = ended.exited_early {
            assert!(
                status.success(),
                "{place}\nended by itself with {status}; it printed:\n{}",
                ended.output
            );
        }
    }
}

/// Whether the block's marker says not to run it. `waits for: check` skips
/// the block while `socketeer check` does not exist, and runs it as soon as
/// it does: the engineer who lands the command then sees the guide's use of
/// it run in the same suite, without having to edit the guide first.
fn skipped(path: &str, block: &ShellBlock) -> bool {
    let Some(marker) = &block.marker else { return false };
    if let Some(reason) = marker.strip_prefix("not run:") {
        assert!(!reason.trim().is_empty(), "{path}:{}: say why the block is not run", block.line);
        return true;
    }
    if let Some(command) = marker.strip_prefix("waits for:") {
        let words: Vec<&str> = command.split_whitespace().skip_while(|w| *w == "socketeer").collect();
        let help = run_command(socketeer().args(&words).arg("--help"), b"");
        return !help.status.success();
    }
    false
}

fn run_one(place: &str, text: &str, command: &GuideCommand, dir: &Path) {
    let out = run_command(&mut shell(text, dir), b"");
    assert_eq!(
        out.code(),
        Some(command.exits),
        "{place}\nran as: {text}\nexpected exit {}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        command.exits,
        out.status,
        out.stdout,
        out.stderr
    );
}

/// `sh -c TEXT` in `dir`, with the binary under test first on the PATH.
/// A background command (ending in `&`) is run with `exec`, so that the
/// process the test stops is the command itself.
fn shell(text: &str, dir: &Path) -> Command {
    let (command, _) = super::markdown::split_comment(text);
    let command = command.strip_prefix("sudo ").unwrap_or(command);
    let script = match command.strip_suffix('&') {
        Some(background) => format!("exec {}", background.trim_end()),
        None => command.to_owned(),
    };
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_socketeer"));
    let path = std::env::join_paths(
        std::iter::once(binary.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut sh = Command::new("sh");
    sh.args(["-c", &script]).current_dir(dir).env("PATH", path).env_remove("RUST_LOG");
    sh
}

/// `text` with every port number the guide uses replaced by the port the
/// test gave it: serve's defaults by serve's real ports, 9000 to 9999 by a
/// free port each (the same one for the whole page).
fn with_ports(text: &str, ports: &mut BTreeMap<u16, u16>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let mut previous = ' ';
    let mut flush = |digits: &mut String, out: &mut String, next: char| {
        let standalone = !next.is_alphanumeric() && next != '.';
        match digits.parse::<u16>() {
            Ok(port) if standalone && (ports.contains_key(&port) || PAGE_PORTS.contains(&port)) => {
                let mapped = *ports.entry(port).or_insert_with(closed_port);
                out.push_str(&mapped.to_string());
            }
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() && (!digits.is_empty() || !(previous.is_alphanumeric() || previous == '.')) {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                flush(&mut digits, &mut out, c);
            }
            out.push(c);
        }
        previous = c;
    }
    if !digits.is_empty() {
        flush(&mut digits, &mut out, ' ');
    }
    out
}

#[test]
fn port_numbers_are_replaced_only_where_they_stand_alone() {
    let mut ports = BTreeMap::from([(7007, 40001), (5555, 40002)]);
    assert_eq!(
        with_ports(
            "socketeer echo send localhost:7007 --count 5 127.0.0.7007 x7007 -p 7007,5555",
            &mut ports
        ),
        "socketeer echo send localhost:40001 --count 5 127.0.0.7007 x7007 -p 40001,40002"
    );
    let first = with_ports("--port 9000", &mut ports);
    assert_ne!(first, "--port 9000");
    assert_eq!(with_ports("localhost:9000", &mut ports), format!("localhost:{}", &first[7..]));
    assert_eq!(with_ports("--delay 9100ms 12345678", &mut ports), "--delay 9100ms 12345678");
}

#[test]
fn every_page_of_the_guide_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(root().join("docs/course"))
        .unwrap()
        .map(|e| format!("docs/course/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".md"))
        .collect();
    found.push("examples/python/README.md".to_owned());
    found.sort();
    let mut listed = PAGES.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(found, listed, "add the new page to PAGES in tests/course/guide.rs");
}

macro_rules! page_tests {
    ($($name:ident => $index:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_page(PAGES[$index]);
            }
        )*
    };
}

page_tests! {
    commands_of_the_index_run => 0,
    commands_of_part_1_run => 1,
    commands_of_part_2_run => 2,
    commands_of_part_3_run => 3,
    commands_of_part_4_run => 4,
    commands_of_part_5_run => 5,
    commands_of_run_your_own_run => 6,
    commands_of_the_python_examples_readme_run => 7,
}
