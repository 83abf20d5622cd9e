//! Private network namespaces for the experiments that need a network of
//! their own (root only): made with `ip netns add`, entered by one thread
//! with `setns`, and deleted, with everything in them, when dropped.

use std::fs::File;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

use super::LabError;

/// A network namespace this process made; dropping it deletes it.
#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
}

impl Namespace {
    /// Makes `socketeer-lab-PID-suffix`, with its loopback up.
    ///
    /// # Errors
    /// When `ip` is missing or refuses (not root).
    pub(crate) fn create(suffix: &str) -> Result<Namespace, LabError> {
        let name = format!("skt-lab-{}-{suffix}", std::process::id());
        ip(&["netns", "add", &name])?;
        let namespace = Namespace { name };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Its name, as `ip netns list` shows it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args...`.
    ///
    /// # Errors
    /// When `ip` fails.
    pub(crate) fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        ip(&[&["-n", &self.name][..], args].concat())
    }

    /// Runs `program args...` inside it (`ip netns exec`), feeding `stdin`.
    ///
    /// # Errors
    /// When the program cannot be started or fails.
    pub(crate) fn exec(&self, program: &str, args: &[&str], stdin: &str) -> Result<(), LabError> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]).args(args);
        run(command, &format!("{program} {}", args.join(" ")), stdin)
    }

    /// Moves the calling thread (only it) into the namespace: sockets it
    /// makes from now on belong there, and keep belonging there.
    ///
    /// # Errors
    /// When the namespace cannot be opened or entered.
    pub(crate) fn enter(&self) -> Result<(), LabError> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(LabError::io(format!("opening {path}")))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::Io { context: format!("entering {path}"), error: e.into() })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting a namespace takes its interfaces (a veth end, and so its peer) with it.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip args...`.
///
/// # Errors
/// When `ip` is missing or fails; the error carries what it said.
pub(crate) fn ip(args: &[&str]) -> Result<(), LabError> {
    let mut command = Command::new("ip");
    command.args(args);
    run(command, &format!("ip {}", args.join(" ")), "")
}

fn run(mut command: Command, what: &str, stdin: &str) -> Result<(), LabError> {
    use std::io::Write;
    use std::process::Stdio;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Spawn { program, error: e })?;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().map_err(LabError::io(format!("running {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Child {
        what: what.to_owned(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}
