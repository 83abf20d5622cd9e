//! Network namespaces, for the code that needs a network of its own (root
//! only): made with `ip netns add` (or joined when they exist already),
//! entered by one thread at a time with `setns`, and deleted, with everything
//! in them, when a namespace this process made is dropped.
//!
//! Shared by `impair --tun` (the two ends of an impaired path) and the lab's
//! experiments that need hosts of their own.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps the namespaces it names.
const NETNS_DIR: &str = "/run/netns";

/// The longest namespace name taken from a user (a file name under /run/netns).
const MAX_NAME: usize = 64;

/// Something about a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A name that cannot be a namespace's (it becomes a file name).
    #[error(
        "'{0}' cannot name a network namespace: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.' or '-'"
    )]
    BadName(String),
    /// A program (`ip`, ...) could not be started.
    #[error("cannot start {program}: {}", crate::net::describe(.error))]
    Spawn {
        /// The program.
        program: String,
        /// What the operating system said.
        error: io::Error,
    },
    /// A program ran and failed.
    #[error("{what}: {detail}")]
    Command {
        /// The command line.
        what: String,
        /// What it said on its error output.
        detail: String,
    },
    /// Opening or entering a namespace failed.
    #[error("{context}: {}", crate::net::describe(.error))]
    Io {
        /// What was being done.
        context: String,
        /// What the operating system said.
        error: io::Error,
    },
    /// The thread that worked inside a namespace panicked.
    #[error("the thread working in namespace {0} panicked")]
    Panicked(String),
}

/// A named network namespace. One this process made is deleted when dropped
/// (and the interfaces in it with it); one it joined is left as it was.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    owned: bool,
}

impl Namespace {
    /// Makes namespace `name`, with its loopback up.
    ///
    /// # Errors
    /// When the name is unusable, or `ip` is missing or refuses (not root,
    /// or the namespace exists).
    pub fn create(name: &str) -> Result<Namespace, NetnsError> {
        check_name(name)?;
        ip(&["netns", "add", name])?;
        let namespace = Namespace { name: name.to_owned(), owned: true };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Makes a namespace of this process's own, named `skt-PID-N-tag`.
    ///
    /// # Errors
    /// As [`Namespace::create`].
    pub fn private(tag: &str) -> Result<Namespace, NetnsError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Namespace::create(&format!("skt-{}-{n}-{tag}", std::process::id()))
    }

    /// Joins namespace `name` if it exists, or makes it.
    ///
    /// # Errors
    /// As [`Namespace::create`].
    pub fn create_or_join(name: &str) -> Result<Namespace, NetnsError> {
        check_name(name)?;
        if Path::new(NETNS_DIR).join(name).exists() {
            return Ok(Namespace { name: name.to_owned(), owned: false });
        }
        Namespace::create(name)
    }

    /// Its name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when this process made it (and deletes it when dropped).
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Runs `ip -n NAME args...`.
    ///
    /// # Errors
    /// When `ip` fails.
    pub fn ip(&self, args: &[&str]) -> Result<(), NetnsError> {
        ip(&[&["-n", &self.name][..], args].concat())
    }

    /// Runs `program args...` inside it (`ip netns exec`), feeding `stdin`.
    ///
    /// # Errors
    /// When the program cannot be started or fails.
    pub fn exec(&self, program: &str, args: &[&str], stdin: &str) -> Result<(), NetnsError> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]).args(args);
        run(command, &format!("{program} {}", args.join(" ")), stdin)
    }

    /// Moves the calling thread (only it) into the namespace: sockets it
    /// makes from now on belong there, and keep belonging there.
    ///
    /// # Errors
    /// When the namespace cannot be opened or entered.
    pub fn enter(&self) -> Result<(), NetnsError> {
        enter(&format!("{NETNS_DIR}/{}", self.name))
    }

    /// Runs `work` on a thread of its own inside the namespace and returns
    /// what it returned; every other thread stays where it was.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the thread panicked.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.enter().map(|()| work()))
                .join()
                .map_err(|_| NetnsError::Panicked(self.name.clone()))?
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if self.owned {
            // Deleting a namespace takes its interfaces (a veth end, and so its peer) with it.
            let _ = ip(&["netns", "del", &self.name]);
        }
    }
}

/// The namespace the calling thread is in now, kept open so that a thread can
/// come back to it (or another thread go there) after others moved.
#[derive(Debug)]
pub struct Current(File);

impl Current {
    /// The calling thread's network namespace.
    ///
    /// # Errors
    /// When `/proc` cannot tell.
    pub fn here() -> Result<Current, NetnsError> {
        let path = "/proc/thread-self/ns/net";
        File::open(path)
            .map(Current)
            .map_err(|error| NetnsError::Io { context: format!("opening {path}"), error })
    }

    /// Moves the calling thread into it.
    ///
    /// # Errors
    /// When the kernel refuses.
    pub fn enter(&self) -> Result<(), NetnsError> {
        setns(&self.0, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Io {
            context: "returning to the original namespace".to_owned(),
            error: e.into(),
        })
    }
}

fn enter(path: &str) -> Result<(), NetnsError> {
    let file =
        File::open(path).map_err(|error| NetnsError::Io { context: format!("opening {path}"), error })?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetnsError::Io { context: format!("entering {path}"), error: e.into() })
}

/// Names become file names under /run/netns and arguments to `ip`: only
/// plain ones are taken.
fn check_name(name: &str) -> Result<(), NetnsError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ok = (1..=MAX_NAME).contains(&name.len()) && name.chars().all(plain) && !name.starts_with(['.', '-']);
    if ok { Ok(()) } else { Err(NetnsError::BadName(name.to_owned())) }
}

/// Runs `ip args...`.
///
/// # Errors
/// When `ip` is missing or fails; the error carries what it said.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let mut command = Command::new("ip");
    command.args(args);
    run(command, &format!("ip {}", args.join(" ")), "")
}

fn run(mut command: Command, what: &str, stdin: &str) -> Result<(), NetnsError> {
    use std::io::Write;
    use std::process::Stdio;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| NetnsError::Spawn { program, error })?;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|error| NetnsError::Io { context: format!("running {what}"), error })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Command {
        what: what.to_owned(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_taken() {
        for good in ["a", "lossy-b", "lab_1.x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../etc", "a/b", ".hidden", "-n", "a b", &"x".repeat(65)] {
            assert!(matches!(check_name(bad), Err(NetnsError::BadName(_))), "{bad}");
        }
    }
}
