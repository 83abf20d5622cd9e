//! What the two impairment drivers share (the UDP [`proxy`](super::proxy)
//! and the [`tun`](super::tun) relay): a pair of [`Link`]s, one per
//! direction; requests from the control socket ([`Control`]) and how a
//! loop answers them; and the running driver, which says at once why it
//! died if it does. `S` is the driver's counters.

use std::fmt;
use std::sync::mpsc;

use serde::Serialize;
use tokio::sync::oneshot;
use tracing::info;

use super::link::Link;
use super::model::ImpairmentConfig;
use super::options::{self, SettingError};
use crate::poll::{DeathWatch, DriverDied, DriverThread, Waker};

/// Seeds the down direction differently from the up one, so the two
/// directions do not make the same choices in lockstep.
const DOWN_SEED_OFFSET: u64 = 0x9E37_79B9_7F4A_7C15;

/// A request to a running driver, with the channel its answer comes back on.
#[derive(Debug)]
pub enum Control<S> {
    /// Apply `NAME=VALUE` settings (see [`crate::impair::options`]); answers the new settings.
    Set(Vec<(String, String)>, oneshot::Sender<Result<Settings, SettingError>>),
    /// Answer the settings in force.
    Show(oneshot::Sender<Settings>),
    /// Answer the counters.
    Stats(oneshot::Sender<S>),
}

/// The settings of both directions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Client to server (the proxy), or first end to second (TUN).
    pub up: ImpairmentConfig,
    /// The other way.
    pub down: ImpairmentConfig,
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "up: {}; down: {}", self.up, self.down)
    }
}

/// Both directions of an impaired path, carrying packets tagged with `M`.
pub struct Links<M> {
    /// Client to server, or first end to second.
    pub up: Link<M>,
    /// The other way.
    pub down: Link<M>,
}

impl<M> Links<M> {
    /// Both directions, seeded from one seed.
    pub fn new(up: ImpairmentConfig, down: ImpairmentConfig, seed: u64) -> Self {
        Links { up: Link::new(up, seed), down: Link::new(down, seed.wrapping_add(DOWN_SEED_OFFSET)) }
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        Settings { up: *self.up.config(), down: *self.down.config() }
    }

    /// Answers every request waiting in `inbox`; `snapshot` makes the counters.
    pub fn answer<S>(&mut self, inbox: &mpsc::Receiver<Control<S>>, snapshot: impl Fn(&Self) -> S) {
        // A requester that gave up waiting is no concern of the driver's.
        while let Ok(request) = inbox.try_recv() {
            match request {
                Control::Set(pairs, reply) => {
                    let (mut up, mut down) = (*self.up.config(), *self.down.config());
                    let result = options::apply(&mut up, &mut down, &pairs).map(|()| {
                        self.up.set_config(up);
                        self.down.set_config(down);
                        info!(%up, %down, "settings changed");
                        self.settings()
                    });
                    let _ = reply.send(result);
                }
                Control::Show(reply) => {
                    let _ = reply.send(self.settings());
                }
                Control::Stats(reply) => {
                    let _ = reply.send(snapshot(self));
                }
            }
        }
    }
}

/// Sends requests to a running driver; cheap to clone.
#[derive(Debug)]
pub struct ControlSender<S> {
    requests: mpsc::Sender<Control<S>>,
    waker: Waker,
    death: DeathWatch,
}

impl<S> Clone for ControlSender<S> {
    fn clone(&self) -> Self {
        ControlSender {
            requests: self.requests.clone(),
            waker: self.waker.clone(),
            death: self.death.clone(),
        }
    }
}

impl<S> ControlSender<S> {
    /// Queues `request` and wakes the driver.
    ///
    /// # Errors
    /// When the driver has stopped, and why if it died.
    pub fn send(&self, request: Control<S>) -> Result<(), Stopped> {
        self.requests.send(request).map_err(|_| self.stopped())?;
        self.waker.wake();
        Ok(())
    }

    /// Why the driver does not answer: it died (and why), or it is shutting down.
    pub fn stopped(&self) -> Stopped {
        Stopped(self.death.death())
    }
}

/// The driver has stopped: its relay died (why), or it was stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Stopped(pub Option<DriverDied>);

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(why) => write!(f, "the relay stopped: {why}; the proxy relays nothing"),
            None => f.write_str("the proxy is shutting down"),
        }
    }
}

/// An impairment driver running on its own thread, returning counters `S`.
#[derive(Debug)]
pub struct Running<S> {
    control: ControlSender<S>,
    driver: DriverThread<S>,
}

impl<S: Send + 'static> Running<S> {
    /// Starts `body` on a thread named `name`; it gets the waker to watch
    /// and the inbox of requests to answer.
    ///
    /// # Errors
    /// When the waker or the thread cannot be created.
    pub fn spawn<F>(name: &str, body: F) -> std::io::Result<Self>
    where
        F: FnOnce(&Waker, mpsc::Receiver<Control<S>>) -> std::io::Result<S> + Send + 'static,
    {
        let (requests, inbox) = mpsc::channel();
        let driver = crate::poll::spawn(name, move |waker| body(waker, inbox))?;
        let control = ControlSender { requests, waker: driver.waker().clone(), death: driver.death_watch() };
        Ok(Running { control, driver })
    }
}

impl<S> Running<S> {
    /// A handle for changing settings and reading counters.
    pub fn control(&self) -> ControlSender<S> {
        self.control.clone()
    }

    /// Completes when the relay has stopped on its own (it died); then
    /// [`Running::stop`] says why. Cancel-safe.
    pub async fn died(&mut self) -> DriverDied {
        self.driver.finished().await;
        self.driver.death().unwrap_or_else(|| DriverDied::Failed("it stopped".to_owned()))
    }

    /// Stops the driver and returns its final counters. Packets still
    /// delayed are dropped.
    ///
    /// # Errors
    /// Why the relay died, if it did.
    pub fn stop(self) -> Result<S, DriverDied> {
        self.driver.stop()
    }
}
