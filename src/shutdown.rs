//! The one shutdown signal every server listens to.
//!
//! A [`Shutdown`] is cloned into every accept loop and connection task. When it
//! is triggered, accept loops stop accepting, idle connections close, and
//! connections in the middle of an exchange finish it; [`Shutdown::drain`] then
//! waits for the tracked tasks for a bounded grace period.

use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long servers get to finish in-flight exchanges after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(2);

/// A shutdown signal plus the set of tasks that must finish before exit.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

/// What [`Shutdown::drain`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every task finished within the grace period.
    Complete,
    /// This many tasks were still running when the grace period ended.
    TimedOut(usize),
}

impl Shutdown {
    /// A signal that has not been triggered, tracking no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: every [`Shutdown::triggered`] future completes.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the shutdown starts. Cancel-safe: use it in `select!`.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Spawns a task that [`Shutdown::drain`] waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Triggers the shutdown (if not yet) and waits up to `grace` for every
    /// tracked task to finish.
    pub async fn drain(&self, grace: Duration) -> Drained {
        self.trigger();
        self.tasks.close();
        match tokio::time::timeout(grace, self.tasks.wait()).await {
            Ok(()) => Drained::Complete,
            Err(_) => Drained::TimedOut(self.tasks.len()),
        }
    }
}

/// Handlers for Ctrl-C (SIGINT) and SIGTERM, in place from their creation:
/// a signal that comes before [`Signals::next`] is awaited is kept, not fatal.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// When the signal handlers cannot be installed.
    pub fn install() -> io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Waits for the next signal and returns its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM and returns the signal's name.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub async fn signal() -> io::Result<&'static str> {
    Ok(Signals::install()?.next().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_tasks_that_finish_after_the_signal() {
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        shutdown.spawn(async move {
            s.triggered().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        });
        assert_eq!(shutdown.drain(GRACE).await, Drained::Complete);
        assert!(shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period() {
        let shutdown = Shutdown::new();
        shutdown.spawn(tokio::time::sleep(Duration::from_secs(60)));
        shutdown.spawn(tokio::time::sleep(Duration::from_secs(60)));
        assert_eq!(shutdown.drain(GRACE).await, Drained::TimedOut(2));
    }
}
