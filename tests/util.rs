//! Helpers for driving the real `socketeer` binary over loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one command may run before the test calls it hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn socketeer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socketeer"));
    command.env_remove("RUST_LOG");
    command
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Stdout's lines parsed as JSON (whatever the exit status: a failing
    /// command still reports what it did).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let parse = |l: &str| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{self:#?}"));
        self.stdout.lines().map(parse).collect()
    }

    /// The JSON line whose `type` is `kind`.
    pub fn json_of(&self, kind: &str) -> serde_json::Value {
        self.json_lines()
            .into_iter()
            .find(|v| v["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {self:#?}"))
    }
}

/// Runs the binary with `args`, feeding it `stdin`, and waits for it to end.
pub fn run(args: &[&str], stdin: &[u8]) -> Finished {
    run_command(socketeer().args(args), stdin)
}

/// Runs any command to completion with `stdin`, failing the test if it hangs.
pub fn run_command(command: &mut Command, stdin: &[u8]) -> Finished {
    run_command_within(command, stdin, COMMAND_LIMIT)
}

/// [`run_command`] for a command that may take up to `limit` (a whole grading run, say).
pub fn run_command_within(command: &mut Command, stdin: &[u8], limit: Duration) -> Finished {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A command may stop reading before taking everything; that is its business.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = wait_limited(&mut child, limit);
    writer.join().unwrap();
    let stdout_bytes = stdout.join();
    let stdout = String::from_utf8_lossy(&stdout_bytes).into_owned();
    Finished { status, stdout, stdout_bytes, stderr: text(stderr.join()), elapsed: started.elapsed() }
}

struct Collector {
    text: Arc<Mutex<Vec<u8>>>,
    thread: thread::JoinHandle<()>,
}

impl Collector {
    fn join(self) -> Vec<u8> {
        self.thread.join().unwrap();
        std::mem::take(&mut self.text.lock().unwrap())
    }

    fn snapshot(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn collect(mut pipe: impl Read + Send + 'static) -> Collector {
    let text = Arc::new(Mutex::new(Vec::new()));
    let sink = text.clone();
    let thread = thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Collector { text, thread }
}

fn wait_limited(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A status line of a running server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub service: String,
    pub transport: String,
    pub addr: SocketAddr,
}

/// A server started from the binary, stopped (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub listening: Vec<Listening>,
    stdout_lines: Vec<String>,
    /// Lines printed after the status lines, read as they come so that the
    /// daemon never blocks on a full pipe.
    later_lines: Mutex<mpsc::Receiver<String>>,
    /// Later lines already taken by [`Daemon::wait_for`].
    seen: Mutex<Vec<String>>,
    stderr: Collector,
}

/// How a daemon ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// From the signal to the exit.
    pub took: Duration,
    pub stderr: String,
    /// What it printed after its status lines.
    pub stdout: Vec<String>,
}

impl Daemon {
    /// Starts `socketeer args` and waits for its `lines` status lines.
    pub fn start(args: &[&str], lines: usize) -> Daemon {
        Daemon::start_command(socketeer(), args, lines)
    }

    /// Starts `command args` (`ip netns exec NS socketeer`, say) and waits
    /// for its `lines` status lines.
    pub fn start_command(mut command: Command, args: &[&str], lines: usize) -> Daemon {
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn socketeer");
        let stderr = collect(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout_lines = Vec::new();
        while stdout_lines.len() < lines {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => stdout_lines.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{args:?} printed {stdout_lines:?}, then nothing; stderr: {}", stderr.snapshot());
                }
            }
        }
        let listening = stdout_lines.iter().filter_map(|l| parse_status(l)).collect();
        Daemon { child, listening, stdout_lines, later_lines: Mutex::new(rx), seen: Mutex::default(), stderr }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines it printed at start.
    pub fn status_lines(&self) -> &[String] {
        &self.stdout_lines
    }

    /// The address of `service` over `transport`.
    pub fn addr(&self, service: &str, transport: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|l| l.service == service && l.transport == transport)
            .unwrap_or_else(|| panic!("no {service} {transport} in {:?}", self.listening))
            .addr
    }

    /// Waits (a minute at most) until the lines printed after the status lines
    /// satisfy `done`, and returns them: a readiness signal from the daemon's
    /// own output instead of a sleep.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + COMMAND_LIMIT;
        let later = self.later_lines.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match later.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("waited for {what}; printed: {seen:#?}; stderr: {}", self.stderr.snapshot()),
            }
        }
        seen.clone()
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.snapshot()
    }

    /// Sends `signal` (`-STOP`, `-CONT`) and leaves it running.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(kill.success());
    }

    /// Sends `signal` (TERM, INT) and waits for the exit.
    pub fn stop_with(mut self, signal: &str) -> Stopped {
        let pid = self.child.id().to_string();
        let sent = Instant::now();
        let kill = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("run kill");
        assert!(kill.success());
        let status = wait_limited(&mut self.child, Duration::from_secs(10));
        let took = sent.elapsed();
        let mut stdout = std::mem::take(self.seen.get_mut().unwrap());
        let later = self.later_lines.get_mut().unwrap();
        while let Ok(line) = later.recv_timeout(Duration::from_secs(2)) {
            stdout.push(line);
        }
        Stopped { status, took, stderr: self.stderr.snapshot(), stdout }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `echo tcp 127.0.0.1:7007` (and a trailing detail in parentheses),
/// or its JSON form.
fn parse_status(line: &str) -> Option<Listening> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| v[key].as_str().map(str::to_owned);
        return Some(Listening {
            service: text("service")?,
            transport: text("transport")?,
            addr: text("addr")?.parse().ok()?,
        });
    }
    let mut words = line.split_whitespace();
    let (service, transport, addr) = (words.next()?, words.next()?, words.next()?);
    Some(Listening { service: service.into(), transport: transport.into(), addr: addr.parse().ok()? })
}

/// Fails the test with an install hint when `program` is missing.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is not installed: install {package} (scripts/test.sh does this when run as root)"
    );
}

/// A loopback port with nothing listening on it (TCP and UDP), free to hand
/// to a server a test starts.
///
/// Taken from below the kernel's ephemeral range (32768 and up), so no
/// socket bound to port 0, which every other test uses, can land on it
/// meanwhile; each call in this process gets a different one, starting at
/// an offset from the process id so that test runs side by side spread out.
pub fn closed_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    loop {
        let port = FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
}

/// Connections in the ESTABLISHED state whose local port is `port`, from
/// `/proc/net/tcp` and `tcp6`: how a test sees that a server has accepted.
pub fn established_on(port: u16) -> usize {
    const ESTABLISHED: &str = "01";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&ESTABLISHED)
        })
        .count()
}

/// Polls `check` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Random-looking bytes covering every value, without a random-number crate.
pub fn binary(len: usize) -> Vec<u8> {
    let mut x: u32 = 2_463_534_242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `socketeer serve` with every service on a port the kernel picks.
pub const ALL_ON_FREE_PORTS: [&str; 15] = [
    "serve",
    "--echo-port",
    "0",
    "--daytime-port",
    "0",
    "--time-port",
    "0",
    "--udp-port",
    "0",
    "--transfer-port",
    "0",
    "--chat-port",
    "0",
    "--chat-http-port",
    "0",
];
