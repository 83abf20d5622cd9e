//! Running the lab's Python side: a script given to `python3 -c`, which
//! prints JSON lines. Shared by `lab cpu --python` and `lab race --python`.

use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::LabError;
use super::child::Child;

/// How the Python comparison went.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PythonRun {
    /// `--python` was not given.
    NotAsked,
    /// `python3` is not installed.
    Missing,
    /// It ran; its rows are in the report.
    Ran {
        /// Its version.
        version: String,
        /// Whether its global interpreter lock was on.
        gil: bool,
    },
    /// It started but did not finish.
    Failed {
        /// What went wrong.
        error: String,
    },
}

impl PythonRun {
    /// One line for people: the version and the GIL, or why there is no Python.
    pub(crate) fn describe(&self) -> Option<String> {
        match self {
            PythonRun::NotAsked => None,
            PythonRun::Missing => Some("python: python3 is not installed; showing Rust only".to_owned()),
            PythonRun::Ran { version, gil } => {
                Some(format!("python {version}, GIL {}", if *gil { "on" } else { "off" }))
            }
            PythonRun::Failed { error } => Some(format!("python: {error}")),
        }
    }
}

/// Runs `python3 -c script args...` and parses every line it prints as a `T`.
///
/// # Errors
/// [`PythonRun::Missing`] when there is no `python3`, [`PythonRun::Failed`]
/// when it fails, prints something else, or runs past `limit`.
pub(crate) fn run_script<T: DeserializeOwned>(
    script: &str,
    args: &[String],
    limit: Duration,
) -> Result<Vec<T>, PythonRun> {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).args(args);
    let mut child = match Child::spawn("python3", &mut command) {
        Ok(child) => child,
        Err(LabError::Spawn { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(PythonRun::Missing);
        }
        Err(e) => return Err(PythonRun::Failed { error: e.to_string() }),
    };
    let lines = child.lines::<T>().collect::<Result<Vec<T>, _>>();
    let finished = child.finish(limit);
    let lines = lines.map_err(|e| PythonRun::Failed { error: e.to_string() })?;
    finished.map_err(|e| PythonRun::Failed { error: e.to_string() })?;
    Ok(lines)
}
