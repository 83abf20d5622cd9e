//! Child processes of the experiments: the binary re-executed with a task,
//! talking back in JSON lines on its stdout.

use std::io::{BufRead, BufReader, Read};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::process::{self, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::LabError;
use super::servers::ServerModel;

/// The longest line a child may print; anything longer is an error.
const MAX_LINE: u64 = 64 * 1024;

/// How much of a child's stderr is kept to explain its failure.
const STDERR_TAIL: usize = 2048;

/// What a child process of an experiment does. The binary receives it as one
/// JSON argument (see [`SelfExec`]) and prints the results as JSON lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum ChildTask {
    /// Count like a worker of [`super::threads`], one [`super::threads::Tick`] per line.
    Count {
        /// The worker's name.
        worker: String,
        /// How far to count.
        count: u32,
        /// The pause after each number.
        delay: Duration,
    },
    /// Run one job of [`super::cpu`] and print a [`super::cpu::JobResult`].
    CpuJob {
        /// The job's size.
        count: u64,
    },
    /// Serve echo on loopback until stdin closes: first a
    /// [`super::servers::Listening`] line, then nothing.
    EchoServer {
        /// Thread per connection or async.
        model: ServerModel,
        /// The most connections served at once.
        max_connections: usize,
    },
    /// Try to bind 127.0.0.1 on this TCP port and print a
    /// [`super::bind::BindAttempt`] (`lab bind` runs it as an unprivileged user).
    BindPort {
        /// The port.
        port: u16,
    },
}

/// How to run a [`ChildTask`] in a new process: this program with these
/// arguments, then the task as JSON.
#[derive(Clone, Debug)]
pub struct SelfExec {
    program: PathBuf,
    args: Vec<String>,
}

impl SelfExec {
    /// Runs tasks as `program args... TASK_JSON`; the binary passes its own
    /// path and the hidden subcommand that reads the task.
    pub fn new<S: Into<String>>(program: PathBuf, args: impl IntoIterator<Item = S>) -> SelfExec {
        SelfExec { program, args: args.into_iter().map(Into::into).collect() }
    }

    /// Starts a child running `task`; `what` names it in errors.
    pub(crate) fn spawn(&self, what: impl Into<String>, task: &ChildTask) -> Result<Child, LabError> {
        self.spawn_through(what, &[], task)
    }

    /// Starts a child running `task` through `wrapper` (a program and its
    /// arguments that runs the rest of its command line, like `setpriv ...`).
    pub(crate) fn spawn_through(
        &self,
        what: impl Into<String>,
        wrapper: &[String],
        task: &ChildTask,
    ) -> Result<Child, LabError> {
        let task = serde_json::to_string(task).map_err(|e| LabError::Child {
            what: "encoding a task for a child process".to_owned(),
            detail: e.to_string(),
        })?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        Child::spawn(what, command.args(&self.args).arg(task))
    }
}

/// A running child process whose stdout is read as JSON lines and whose
/// stderr is kept to explain a failure. Dropping it kills the process.
#[derive(Debug)]
pub(crate) struct Child {
    what: String,
    process: process::Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
    reaped: bool,
}

impl Child {
    /// Starts `command` with all three standard streams piped.
    pub(crate) fn spawn(what: impl Into<String>, command: &mut Command) -> Result<Child, LabError> {
        let mut process =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(
                |source| LabError::Spawn {
                    program: command.get_program().to_string_lossy().into_owned(),
                    error: source,
                },
            )?;
        let stderr = process.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                let start = text.len().saturating_sub(STDERR_TAIL);
                String::from_utf8_lossy(&text[start..]).trim().to_owned()
            })
        });
        Ok(Child {
            what: what.into(),
            stdin: process.stdin.take(),
            stdout: process.stdout.take().map(BufReader::new),
            stderr,
            process,
            reaped: false,
        })
    }

    /// The child's stdout as JSON values of type `T`, one per line (can be
    /// taken once; later calls yield nothing).
    pub(crate) fn lines<T: DeserializeOwned>(&mut self) -> JsonLines<T> {
        JsonLines { what: self.what.clone(), reader: self.stdout.take(), _type: PhantomData }
    }

    /// Closes the child's stdin and waits up to `limit` for it to exit.
    ///
    /// # Errors
    /// When it exits with a failure status (its stderr is in the message), or
    /// runs past `limit` (it is killed).
    pub(crate) fn finish(mut self, limit: Duration) -> Result<(), LabError> {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) =
                self.process.try_wait().map_err(LabError::io(format!("waiting for {}", self.what)))?
            {
                break status;
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout { what: self.what.clone(), limit });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.reaped = true;
        if status.success() {
            return Ok(());
        }
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let said = stderr.lines().last().map(|l| format!(": {l}")).unwrap_or_default();
        Err(LabError::Child { what: self.what.clone(), detail: format!("exited with {status}{said}") })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// A child's stdout, parsed line by line.
#[derive(Debug)]
pub(crate) struct JsonLines<T> {
    what: String,
    reader: Option<BufReader<ChildStdout>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<T, LabError>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        let mut line = String::new();
        let read = reader.take(MAX_LINE).read_line(&mut line);
        let bad = |detail: String| Some(Err(LabError::Child { what: self.what.clone(), detail }));
        match read {
            Ok(0) => None,
            Ok(_) if !line.ends_with('\n') => {
                bad(format!("printed an unfinished or over-long line: {line:.80}"))
            }
            Ok(_) => Some(serde_json::from_str(&line).map_err(|e| LabError::Child {
                what: self.what.clone(),
                detail: format!("{e}: {line:.80}"),
            })),
            Err(e) => bad(format!("reading its output: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_travel_as_tagged_json() {
        let task = ChildTask::CpuJob { count: 10 };
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(json, r#"{"task":"cpu_job","count":10}"#);
        assert_eq!(serde_json::from_str::<ChildTask>(&json).unwrap(), task);
    }

    #[test]
    fn reads_json_lines_and_reports_a_failing_child() {
        let mut child =
            Child::spawn("sh", Command::new("sh").args(["-c", "echo '{\"n\":1}'; echo oops >&2; exit 3"]))
                .unwrap();
        let values: Vec<serde_json::Value> = child.lines().collect::<Result<_, _>>().unwrap();
        assert_eq!(values, vec![serde_json::json!({"n": 1})]);
        let err = child.finish(Duration::from_secs(10)).unwrap_err().to_string();
        assert!(err.contains("exit status: 3: oops"), "{err}");
    }

    #[test]
    fn a_child_past_its_limit_is_killed() {
        let child = Child::spawn("sleeper", Command::new("sleep").arg("30")).unwrap();
        let err = child.finish(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
    }
}
