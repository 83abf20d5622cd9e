//! A driver loop on a plain thread of its own, as every driver here runs:
//! started with a [`Waker`] it watches, stopped through it, and never dying
//! in silence. When the loop returns an error or panics, the reason is kept
//! ([`DriverThread::death`]) and [`DriverThread::finished`] completes at
//! once, so whoever owns the thread can say so while it happens (a control
//! socket's reply, an exit code) rather than at Ctrl-C.

use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;

use tokio::sync::oneshot;

use super::Waker;

/// Why a driver thread stopped on its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverDied {
    /// Its loop returned an error.
    #[error("{0}")]
    Failed(String),
    /// Its loop panicked, with this message.
    #[error("it panicked ({0})")]
    Panicked(String),
}

impl From<DriverDied> for io::Error {
    fn from(died: DriverDied) -> io::Error {
        io::Error::other(died.to_string())
    }
}

/// A driver loop running on its own thread, returning a `T` when stopped.
#[derive(Debug)]
pub struct DriverThread<T> {
    waker: Waker,
    thread: thread::JoinHandle<Option<T>>,
    ended: Option<oneshot::Receiver<()>>,
    death: Arc<OnceLock<DriverDied>>,
}

/// Starts `body` on a thread named `name`, with a new [`Waker`] to watch.
///
/// # Errors
/// When the waker or the thread cannot be created.
pub fn spawn<T, F>(name: &str, body: F) -> io::Result<DriverThread<T>>
where
    T: Send + 'static,
    F: FnOnce(&Waker) -> io::Result<T> + Send + 'static,
{
    spawn_reporting(name, body, |_| {})
}

/// As [`spawn`], and if the loop dies (an error or a panic), `obituary` is
/// called with why, on the dying thread: for an owner that learns of
/// events through a channel rather than by watching [`DriverThread::finished`].
///
/// # Errors
/// When the waker or the thread cannot be created.
pub fn spawn_reporting<T, F, R>(name: &str, body: F, obituary: R) -> io::Result<DriverThread<T>>
where
    T: Send + 'static,
    F: FnOnce(&Waker) -> io::Result<T> + Send + 'static,
    R: FnOnce(&DriverDied) + Send + 'static,
{
    let waker = Waker::new()?;
    let loop_waker = waker.clone();
    let death = Arc::new(OnceLock::new());
    let loop_death = Arc::clone(&death);
    let (ended_tx, ended) = oneshot::channel();
    let thread = thread::Builder::new().name(name.to_owned()).spawn(move || {
        // Dropped when the thread ends, whatever way: `finished` sees it.
        let _ended = ended_tx;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&loop_waker)));
        let died = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => DriverDied::Failed(crate::net::describe(&e)),
            Err(panic) => DriverDied::Panicked(panic_message(panic.as_ref())),
        };
        obituary(&died);
        let _ = loop_death.set(died);
        None
    })?;
    Ok(DriverThread { waker, thread, ended: Some(ended), death })
}

/// What a panic said, when it said it in words.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

impl<T> DriverThread<T> {
    /// The loop's waker: wakes it, or stops it.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// A handle that tells, from anywhere, why the loop died (if it did).
    pub fn death_watch(&self) -> DeathWatch {
        DeathWatch(Arc::clone(&self.death))
    }

    /// Why the loop stopped on its own, if it did.
    pub fn death(&self) -> Option<DriverDied> {
        self.death.get().cloned()
    }

    /// Completes when the thread has ended, for whatever reason. Cancel-safe.
    pub async fn finished(&mut self) {
        if let Some(ended) = &mut self.ended {
            let _ = ended.await;
            self.ended = None;
        }
    }

    /// Stops the loop and waits for it.
    ///
    /// # Errors
    /// Why the loop died, if it did.
    pub fn stop(self) -> Result<T, DriverDied> {
        self.waker.stop();
        match self.thread.join() {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                Err(self.death.get().cloned().unwrap_or_else(|| DriverDied::Failed("it stopped".to_owned())))
            }
            Err(panic) => Err(DriverDied::Panicked(panic_message(panic.as_ref()))),
        }
    }
}

/// Tells why a driver loop died, if it did; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DeathWatch(Arc<OnceLock<DriverDied>>);

impl DeathWatch {
    /// Why the loop died, if it did.
    pub fn death(&self) -> Option<DriverDied> {
        self.0.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_loop_returns_its_value() {
        let driver = spawn("test", |waker| {
            while !waker.is_stopped() {
                super::super::wait(&[waker.as_fd()], None)?;
            }
            Ok(7)
        })
        .unwrap();
        assert_eq!(driver.stop(), Ok(7));
    }

    #[tokio::test]
    async fn a_loop_that_dies_says_why_at_once() {
        let mut failed = spawn::<(), _>("test", |_| Err(io::Error::other("the socket broke"))).unwrap();
        failed.finished().await;
        assert_eq!(failed.death(), Some(DriverDied::Failed("the socket broke".to_owned())));
        let mut panicked = spawn::<(), _>("test", |_| panic!("a bug")).unwrap();
        let watch = panicked.death_watch();
        panicked.finished().await;
        assert_eq!(watch.death(), Some(DriverDied::Panicked("a bug".to_owned())));
        assert_eq!(panicked.stop(), Err(DriverDied::Panicked("a bug".to_owned())));
    }

    #[test]
    fn a_dying_loop_sends_its_obituary_and_a_stopped_one_does_not() {
        let (tx, rx) = std::sync::mpsc::channel();
        let told = tx.clone();
        let dying = spawn_reporting::<(), _, _>(
            "test",
            |_| panic!("a bug"),
            move |why| {
                let _ = told.send(why.clone());
            },
        )
        .unwrap();
        assert_eq!(rx.recv().unwrap(), DriverDied::Panicked("a bug".to_owned()));
        assert!(dying.stop().is_err());
        let stopped = spawn_reporting(
            "test",
            |waker| {
                while !waker.is_stopped() {
                    super::super::wait(&[waker.as_fd()], None)?;
                }
                Ok(1)
            },
            move |why| {
                let _ = tx.send(why.clone());
            },
        )
        .unwrap();
        assert_eq!(stopped.stop(), Ok(1));
        assert!(rx.try_recv().is_err(), "no obituary for a loop that was stopped");
    }
}
