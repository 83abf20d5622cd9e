//! The program under test: started on a port of our choosing, watched until
//! it listens, sampled from `/proc` while it runs, and stopped with its whole
//! process group.
//!
//! A command is a list of words with placeholders (`{host}`, `{port}`, and
//! for scanners `{ports}`, `{first}`, `{last}`) that [`Launch::command`]
//! fills in. The program runs in a process group of its own, so stopping it
//! also stops whatever it started (a shell script's children, a
//! `multiprocessing` pool); its stdout and stderr are read all the time (a
//! program that prints a lot must never block on a full pipe) and the last
//! part is kept to explain a crash.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::CheckError;
use super::case::Crash;
use crate::net::Transport;
use crate::process::{self, GroupSample};

/// How much of each output stream is kept.
const KEPT_OUTPUT: usize = 1024 * 1024;

/// How much of stderr a crash report shows.
const CRASH_TAIL: usize = 2048;

/// How often `/proc` is looked at while waiting for the program to listen.
const LISTEN_POLL: Duration = Duration::from_millis(20);

/// Every how many looks at `/proc/net` the program's own sockets are looked at too.
const GROUP_LOOK_EVERY: u32 = 10;

/// How long a program may listen elsewhere before that is its answer (a
/// program may open a helper socket before its real one).
const ELSEWHERE_GRACE: Duration = Duration::from_secs(1);

/// How long the rest of an ended program's output may take to arrive.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// How long a program may take to end after SIGTERM before it gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// A command to run, with placeholders, in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The program and its arguments, placeholders not yet filled in.
    pub argv: Vec<String>,
    /// Where to run it (the current directory when `None`).
    pub dir: Option<PathBuf>,
}

impl Launch {
    /// A launch of `argv` that must mention at least one of `needed` (the
    /// placeholders through which the program learns where to listen or
    /// what to scan).
    ///
    /// # Errors
    /// [`CheckError::Command`] when `argv` is empty or mentions none of `needed`.
    pub fn new(argv: Vec<String>, needed: &[&str]) -> Result<Launch, CheckError> {
        let Some(program) = argv.first() else {
            return Err(CheckError::Command("no command given after --".to_owned()));
        };
        if !needed.is_empty() && !argv.iter().any(|a| needed.iter().any(|n| a.contains(n))) {
            return Err(CheckError::Command(format!(
                "the command must say where to connect or listen: put {} where {program} takes it, \
                 e.g. -- python3 server.py {}",
                needed.join(" or "),
                needed[0]
            )));
        }
        Ok(Launch { argv, dir: None })
    }

    /// The command with every `{name}` of `vars` replaced by its value.
    pub fn command(&self, vars: &[(&str, String)]) -> Vec<String> {
        self.argv
            .iter()
            .map(|arg| {
                vars.iter().fold(arg.clone(), |arg, (name, value)| arg.replace(&format!("{{{name}}}"), value))
            })
            .collect()
    }

    /// The command as one line, placeholders and all, for reports.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Bytes a program printed, shared with the task that reads them.
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything kept so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Everything kept so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn spawn_reader(&self, mut pipe: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
        let kept = self.0.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut kept) = kept.lock() {
                    let room = KEPT_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        })
    }
}

/// A running program under test. Dropping it kills its process group.
#[derive(Debug)]
pub struct Running {
    child: Child,
    pgid: u32,
    /// The command line that was run, placeholders filled in.
    pub command: Vec<String>,
    /// What it printed on stdout.
    pub stdout: Captured,
    /// What it printed on stderr.
    pub stderr: Captured,
    stdin: Option<ChildStdin>,
    exited: Option<ExitStatus>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts `launch` with `vars` filled in, in a new process group, with
    /// stdin a pipe when `stdin` (a client that reads what the user types),
    /// else empty.
    ///
    /// # Errors
    /// [`CheckError::Spawn`] when the program cannot be started.
    pub fn start(launch: &Launch, vars: &[(&str, String)], stdin: bool) -> Result<Running, CheckError> {
        let command = launch.command(vars);
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .process_group(0)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Python buffers stdout when it is a pipe; a student's prints
            // should arrive when they are made, as they would at a terminal.
            .env("PYTHONUNBUFFERED", "1")
            .kill_on_drop(true);
        if let Some(dir) = &launch.dir {
            cmd.current_dir(dir);
        }
        let mut child =
            cmd.spawn().map_err(|source| CheckError::Spawn { program: command[0].clone(), source })?;
        let pgid = child.id().unwrap_or_default();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(stdout.spawn_reader(pipe));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(stderr.spawn_reader(pipe));
        }
        let stdin = child.stdin.take();
        Ok(Running { child, pgid, command, stdout, stderr, stdin, exited: None, readers })
    }

    /// The process id of the program (and of its process group).
    pub fn pid(&self) -> u32 {
        self.pgid
    }

    /// Waits until something of this machine serves `transport` at `addr`
    /// (seen in `/proc/net`, without connecting, so the program's first
    /// client is the first case's), for at most `limit`.
    ///
    /// # Errors
    /// [`CheckError::NotListening`] when the program ends first or time
    /// runs out; it says where the program listens instead, if anywhere.
    pub async fn wait_listening(
        &mut self,
        transport: Transport,
        addr: SocketAddr,
        limit: Duration,
    ) -> Result<(), CheckError> {
        let deadline = Instant::now() + limit;
        let wanted = |s: &process::SocketEntry| {
            s.transport == transport && s.local.port() == addr.port() && s.serves(addr.ip())
        };
        let mut looks = 0u32;
        // Since when the program has been listening elsewhere and not here.
        let mut elsewhere_since: Option<Instant> = None;
        loop {
            // Taken before the look, so that the last look is made after the deadline.
            let out_of_time = Instant::now() >= deadline;
            // Whose socket it is takes a walk through all of /proc: once
            // something listens there, every few looks (to notice a program
            // that listens on a port of its own choosing), and when time is up.
            let someone =
                process::sockets_on_port(transport, addr.port()).iter().any(|s| s.is_server() && wanted(s));
            let mine = if someone || out_of_time || looks.is_multiple_of(GROUP_LOOK_EVERY) {
                // Its own socket, not another program's that happens to use the port.
                process::server_sockets_of(&process::group_members(self.pgid))
            } else {
                Vec::new()
            };
            looks += 1;
            if mine.iter().any(wanted) {
                return Ok(());
            }
            if let Some(crash) = self.ended().await {
                return Err(CheckError::NotListening {
                    transport,
                    addr,
                    why: format!("it stopped first ({})", crash.status),
                    stderr: crash.stderr,
                });
            }
            let elsewhere = mine.iter().find(|s| s.transport == transport);
            if elsewhere.is_some() {
                elsewhere_since.get_or_insert_with(Instant::now);
            }
            let settled_elsewhere = elsewhere_since.is_some_and(|since| since.elapsed() >= ELSEWHERE_GRACE);
            // Judged on the same look as above: a program that binds just
            // as time runs out is late, not listening elsewhere.
            if out_of_time || (settled_elsewhere && elsewhere.is_some()) {
                let why = match elsewhere.or(mine.first()) {
                    Some(s) => format!(
                        "it listens on {} {} instead (port {}); take the port from the command line (sys.argv)",
                        s.transport,
                        s.local,
                        s.local.port()
                    ),
                    None => format!("nothing listened within {}", humantime::format_duration(limit)),
                };
                return Err(CheckError::NotListening { transport, addr, why, stderr: self.stderr_tail() });
            }
            tokio::time::sleep(LISTEN_POLL).await;
        }
    }

    /// How the program ended, if it has, with everything it printed on
    /// stderr (read to the end of the pipe, unless a process it started
    /// still holds the pipe open).
    pub async fn ended(&mut self) -> Option<Crash> {
        self.crashed()?;
        for reader in std::mem::take(&mut self.readers) {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, reader).await;
        }
        self.crashed()
    }

    /// How the program ended, if it has: its status and the end of its
    /// stderr so far. Once seen, the exit is remembered.
    pub fn crashed(&mut self) -> Option<Crash> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        let status = self.exited?;
        Some(Crash { status: describe_exit(status), stderr: self.stderr_tail() })
    }

    /// Whether any process of the program's group is still alive (read
    /// from `/proc`, so it needs no `&mut`: drivers ask it to stop waiting
    /// for a program that has died).
    pub fn alive(&self) -> bool {
        !process::group_members(self.pgid).is_empty()
    }

    /// Waits up to `limit` for the program to end by itself; its exit
    /// status when it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited {
            return Some(status);
        }
        let status = tokio::time::timeout(limit, self.child.wait()).await.ok()?.ok()?;
        self.exited = Some(status);
        Some(status)
    }

    /// The end of what the program printed on stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr.text(), CRASH_TAIL)
    }

    /// CPU, threads and open files of the program's process group now.
    pub fn sample(&self) -> GroupSample {
        process::sample_group(self.pgid)
    }

    /// Types `line` into the program's stdin.
    ///
    /// # Errors
    /// When stdin was not a pipe, or the program closed it.
    pub async fn type_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("stdin is not a pipe"))?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await
    }

    /// Stops the program and everything in its process group: SIGTERM, then
    /// SIGKILL for whatever is left after a second. Returns how it ended
    /// when it had ended by itself before.
    pub async fn stop(mut self) -> Option<Crash> {
        let crashed = self.crashed();
        let group = Pid::from_raw(self.pgid as i32);
        // The group may be gone already; then there is nothing to stop.
        let _ = killpg(group, Signal::SIGTERM);
        if crashed.is_none() {
            let _ = tokio::time::timeout(TERM_GRACE, self.child.wait()).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait().await;
        crashed
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Stop the whole group, not only the first process (kill_on_drop).
        let _ = killpg(Pid::from_raw(self.pgid as i32), Signal::SIGKILL);
    }
}

/// "exit status 1", "killed by signal SIGSEGV".
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by signal {}", signal.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended".to_owned(),
    }
}

/// The last `max` bytes of `text` (at a character boundary), whole lines
/// where possible.
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    cut.split_once('\n').map_or(cut, |(_, rest)| rest).to_owned()
}

/// A port of `ip` that was free for both TCP and UDP a moment ago (servers
/// such as echo and daytime bind both), picked at random from the upper
/// range: the kernel's own choice for port 0 tends to hand the same port to
/// programs that ask at the same moment, and several checks may be starting
/// programs at once. The program under test binds it next; should another
/// take it in between, the program's start fails and is retried.
///
/// # Errors
/// When no socket can be bound at all.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    use std::hash::{BuildHasher, RandomState};
    const LOWEST: u16 = 20_000;
    const SPAN: u64 = 40_000;
    let random = RandomState::new();
    for attempt in 0u32..64 {
        let port = LOWEST + (random.hash_one((std::process::id(), attempt, Instant::now())) % SPAN) as u16;
        let taken = !process::sockets_on_port(Transport::Tcp, port).is_empty();
        if !taken
            && std::net::TcpListener::bind((ip, port)).is_ok()
            && std::net::UdpSocket::bind((ip, port)).is_ok()
        {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Whether a start failed because the port was taken after it was picked.
pub(crate) fn port_was_taken(e: &CheckError) -> bool {
    matches!(e, CheckError::NotListening { stderr, .. } if stderr.contains("Address already in use") || stderr.contains("address already in use"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in() {
        let launch =
            Launch::new(vec!["python3".into(), "s.py".into(), "{host}:{port}".into()], &["{port}"]).unwrap();
        let vars = [("host", "127.0.0.1".to_owned()), ("port", "9000".to_owned())];
        assert_eq!(launch.command(&vars), ["python3", "s.py", "127.0.0.1:9000"]);
    }

    #[test]
    fn a_command_must_say_where_to_listen() {
        let err = Launch::new(vec!["python3".into(), "s.py".into()], &["{port}"]).unwrap_err();
        assert!(err.to_string().contains("{port}"), "{err}");
        assert!(Launch::new(Vec::new(), &[]).is_err());
    }

    #[test]
    fn tails_keep_whole_lines() {
        assert_eq!(tail("one\ntwo\nthree\n", 9), "three");
        assert_eq!(tail("short", 100), "short");
        assert_eq!(tail("ééééé", 3), "é");
    }

    #[tokio::test]
    async fn a_program_that_never_listens_is_reported_with_its_stderr() {
        let launch =
            Launch::new(vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3 # {port}".into()], &["{port}"])
                .unwrap();
        let mut running = Running::start(&launch, &[("port", "1".to_owned())], false).unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let err = running.wait_listening(Transport::Tcp, addr, Duration::from_secs(10)).await.unwrap_err();
        let CheckError::NotListening { why, stderr, .. } = err else { panic!("{err:?}") };
        assert!(why.contains("exit status 3"), "{why}");
        assert_eq!(stderr, "oops");
    }

    #[tokio::test]
    async fn stop_ends_the_whole_group() {
        let launch =
            Launch::new(vec!["sh".into(), "-c".into(), "sleep 60 & sleep 60 # {port}".into()], &["{port}"])
                .unwrap();
        let running = Running::start(&launch, &[("port", "1".to_owned())], false).unwrap();
        let pgid = running.pid();
        // Wait until the shell has started its children: the group has three members.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process::group_members(pgid).len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(process::group_members(pgid).len(), 3);
        assert!(running.stop().await.is_none());
        // SIGKILL is delivered at once but acted on when each process next
        // runs: on a busy machine that can be a moment after killpg returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !process::group_members(pgid).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(process::group_members(pgid), Vec::<u32>::new());
    }
}
