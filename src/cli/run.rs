//! The runner every `... serve` command shares: status lines, then the
//! services until a signal, the caller's own end, or the death of one of
//! them.
//!
//! A service that stops on its own has failed, whatever it returned: the
//! others are shut down too and the command ends with an error naming it.
//! Running on with one part missing would look healthy to a user (and to a
//! supervisor that restarts failed processes) while refusing half the work.

use std::fmt;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use socketeer::net::Endpoint;
use socketeer::server::{Service, ServiceError};
use socketeer::shutdown::{Drained, GRACE, Shutdown, Signals};
use tracing::{error, info, warn};

use super::output::Output;

/// One status line: a service listening on an address.
#[derive(Serialize)]
struct Listening {
    #[serde(flatten)]
    endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

/// A service that stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("the {service} service stopped: {reason}; the other services were shut down")]
pub struct ServiceDied {
    /// Its name, as in its status lines.
    pub service: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// Prints a status line per endpoint, runs the services until Ctrl-C or
/// SIGTERM, then gives in-flight exchanges [`GRACE`] to finish.
///
/// # Errors
/// [`ServiceDied`] when a service stops on its own; failures to print.
pub async fn run_services(services: Vec<Box<dyn Service>>, out: Output) -> anyhow::Result<()> {
    run_services_until(services, out, std::future::pending()).await
}

/// Like [`run_services`], but also stops when `until` completes.
///
/// # Errors
/// As [`run_services`].
pub async fn run_services_until(
    services: Vec<Box<dyn Service>>,
    out: Output,
    until: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Before the status lines: whoever reads them may signal at once.
    let mut signals = Signals::install()?;
    for service in &services {
        for endpoint in service.endpoints() {
            out.emit("listening", &Listening { endpoint, detail: service.detail() })?;
        }
    }
    let shutdown = Shutdown::new();
    let mut running: FuturesUnordered<_> = services
        .into_iter()
        .map(|service| {
            let name = service.name();
            shutdown.spawn(service.run(shutdown.clone())).map(move |ended| (name, ended))
        })
        .collect();
    let died = tokio::select! {
        signal = signals.next() => {
            info!(signal, "shutting down: no new connections; finishing exchanges in flight");
            None
        }
        // The caller's own end (transfer recv --once): not a signal.
        () = until => {
            info!("work done; shutting down");
            None
        }
        Some((service, ended)) = running.next() => Some(ServiceDied { service, reason: why_it_ended(ended) }),
    };
    if let Some(died) = &died {
        error!(service = died.service, reason = %died.reason, "a service stopped; shutting down the others");
    }
    match shutdown.drain(GRACE).await {
        Drained::Complete => info!("stopped"),
        Drained::TimedOut(tasks) => {
            warn!(tasks, "connections still busy after {}; closing them", humantime::format_duration(GRACE));
        }
    }
    died.map_or(Ok(()), |died| Err(died.into()))
}

/// What a service's task ended with, in words.
fn why_it_ended(ended: Result<Result<(), ServiceError>, tokio::task::JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "it ended on its own".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => ServiceError::panicked(&*panic).to_string(),
            Err(e) => format!("its task was cancelled ({e})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use futures::future::BoxFuture;

    use super::*;

    /// A service that serves until shutdown, or dies as told.
    struct Fake {
        name: &'static str,
        dies: Option<fn() -> Result<(), ServiceError>>,
    }

    impl Service for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        fn endpoints(&self) -> Vec<Endpoint> {
            Vec::new()
        }

        fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
            async move {
                match self.dies {
                    Some(die) => die(),
                    None => {
                        shutdown.triggered().await;
                        Ok(())
                    }
                }
            }
            .boxed()
        }
    }

    async fn run_until_done(dies: fn() -> Result<(), ServiceError>) -> String {
        let services: Vec<Box<dyn Service>> = vec![
            Box::new(Fake { name: "echo", dies: None }),
            Box::new(Fake { name: "transfer", dies: Some(dies) }),
        ];
        // The healthy one would run forever: only the death of the other ends this.
        let error = run_services(services, Output::new(true)).await.unwrap_err();
        error.to_string()
    }

    #[tokio::test]
    async fn a_service_that_fails_ends_the_run_and_is_named() {
        let error =
            run_until_done(|| Err(ServiceError::io("the receiving loop")(io::Error::other("disk gone"))))
                .await;
        assert_eq!(
            error,
            "the transfer service stopped: the receiving loop: disk gone; the other services were shut down"
        );
    }

    #[tokio::test]
    async fn a_service_that_panics_or_returns_early_has_died_too() {
        let panicked = run_until_done(|| panic!("index out of bounds")).await;
        assert!(
            panicked.contains("the transfer service stopped: a thread panicked (index out of bounds)"),
            "{panicked}"
        );
        let returned = run_until_done(|| Ok(())).await;
        assert!(returned.contains("the transfer service stopped: it ended on its own"), "{returned}");
    }
}
