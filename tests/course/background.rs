//! Programs the course tests run in the background (servers, a capture):
//! any command, ready once it prints its first line on stdout or stderr,
//! stopped with its whole process group when the test is done with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a program may take to print its first line.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// How long a stopped program may take to exit after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// A running program and every line it printed so far (stdout and stderr
/// merged, in the order they were read).
pub struct Background {
    child: Child,
    description: String,
    lines: Arc<Mutex<Vec<String>>>,
    arrivals: Receiver<()>,
    /// True once the program has been waited for: its id may then belong
    /// to someone else, and must not be signalled again.
    reaped: bool,
    /// Kept open, so a program that reads its input waits for more instead
    /// of seeing the end of it.
    _stdin: Option<ChildStdin>,
}

/// How a background program ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status when it ended on its own before it was stopped.
    pub exited_early: Option<ExitStatus>,
    /// Everything it printed.
    pub output: String,
}

impl Background {
    /// Starts `command` with `stdin` written to its input (the pipe stays
    /// open) and waits for its first line of output.
    pub fn start(mut command: Command, stdin: &[u8]) -> Background {
        let description = format!("{command:?}");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let mut input = child.stdin.take();
        if let Some(pipe) = input.as_mut() {
            pipe.write_all(stdin).unwrap();
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (arrived, arrivals) = mpsc::channel();
        read_lines(child.stdout.take().unwrap(), lines.clone(), arrived.clone());
        read_lines(child.stderr.take().unwrap(), lines.clone(), arrived);
        let background = Background { child, description, lines, arrivals, reaped: false, _stdin: input };
        assert!(
            background.wait_until(READY_LIMIT, |lines| !lines.is_empty()),
            "{} printed nothing within {READY_LIMIT:?}",
            background.description
        );
        background
    }

    /// The first line it printed.
    pub fn first_line(&self) -> String {
        self.lines.lock().unwrap()[0].clone()
    }

    /// The address in its first line, written the way socketeer's status
    /// lines write it (`echo tcp 127.0.0.1:7007`): the first word that parses.
    pub fn addr(&self) -> SocketAddr {
        let first = self.first_line();
        first
            .split_whitespace()
            .find_map(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no address in the first line of {}: {first}", self.description))
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until `done` holds for the lines printed so far, or `limit` passes.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.lines.lock().unwrap()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Wakes on every new line; a timeout only ends the wait.
            let _ = self.arrivals.recv_timeout(left);
        }
    }

    /// Waits for a line containing `needle`; panics after `limit`.
    pub fn expect_line(&self, needle: &str, limit: Duration) {
        assert!(
            self.wait_until(limit, |lines| lines.iter().any(|l| l.contains(needle))),
            "{} never printed {needle:?}; it printed:\n{}",
            self.description,
            self.output()
        );
    }

    /// Waits up to `limit` for the program to end by itself; its exit status,
    /// or `None` (it is then still running).
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let _ = self.arrivals.recv_timeout(Duration::from_millis(20));
        }
    }

    /// Stops the program and its children (SIGTERM to the process group,
    /// SIGKILL if they are still there after a while).
    pub fn stop(mut self) -> Ended {
        let exited_early = self.child.try_wait().unwrap();
        let group = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + EXIT_LIMIT;
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            let _ = self.arrivals.recv_timeout(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
        Ended { exited_early, output: self.output() }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn read_lines(pipe: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>, arrived: Sender<()>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
            lines.lock().unwrap().push(String::from_utf8_lossy(&line).into_owned());
            let _ = arrived.send(());
        }
    });
}
