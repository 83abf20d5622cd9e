//! The generic part of every server check: pick the cases, give each a
//! target (the running server, or a fresh start of the program), run its
//! probe with a time limit, notice a crash, and collect the outcomes.
//!
//! A fresh start per case costs the program's start-up time (a third of a
//! second for Python on a busy machine), so the next case's instance is
//! started while the cases before it run, and stopped instances are reaped in
//! the background.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::case::{Case, Finding, Outcome, Report};
use super::program::{Launch, Running, free_port, port_was_taken};
use super::server::{Ctx, Memo, Planned, ServerCheck};
use super::{CheckError, Options, Subject};
use crate::net::Transport;

/// How many times a program is started when its port was taken meanwhile.
const START_TRIES: usize = 3;

/// How many instances are started ahead of the case that will use them.
const PREFETCH: usize = 2;

/// How long a program whose case failed is given to finish crashing.
const CRASH_GRACE: Duration = Duration::from_millis(300);

/// The longest any one case may take before it is called hung.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Progress, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// This many cases will run.
    Planned(usize),
    /// A case starts.
    Started(&'a Case),
    /// A case ended.
    Finished(&'a Outcome),
}

/// An instance of the program under test, listening (or why not).
type Instance = Result<(Running, SocketAddr), String>;

/// Starts an instance of `launch` on a free port and waits until it serves `transport`.
fn start_instance(
    launch: Launch,
    transport: Transport,
    options: Options,
) -> JoinHandle<Result<Instance, CheckError>> {
    tokio::spawn(async move {
        let mut tries = 0;
        loop {
            let port = free_port(options.host)?;
            let addr = SocketAddr::new(options.host, port);
            let vars = [("host", options.host.to_string()), ("port", port.to_string())];
            let mut running = Running::start(&launch, &vars, false)?;
            match running.wait_listening(transport, addr, options.startup_timeout).await {
                Ok(()) => return Ok(Ok((running, addr))),
                Err(e) => {
                    running.stop().await;
                    tries += 1;
                    if !(port_was_taken(&e) && tries < START_TRIES) {
                        return Ok(Err(not_started(&e)));
                    }
                }
            }
        }
    })
}

async fn instance(handle: JoinHandle<Result<Instance, CheckError>>) -> Result<Instance, CheckError> {
    handle.await.unwrap_or_else(|e| Ok(Err(format!("starting the program failed: {e}"))))
}

/// Runs `check` against `subject`, telling `on_event` how it goes.
///
/// # Errors
/// When the options select no case, the program cannot be started at all,
/// or the grader cannot bind its own sockets; a program that starts but
/// does not listen is a report (aborted), not an error, so that a class
/// keeps going.
pub async fn check_server(
    check: ServerCheck,
    subject: &Subject,
    options: &Options,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Report, CheckError> {
    let planned: Vec<Planned> = check.plan().into_iter().filter(|p| options.selects(p.case.id)).collect();
    if planned.is_empty() {
        return Err(CheckError::NoCase(options.only.join(",")));
    }
    on_event(Event::Planned(planned.len()));
    let mut memo = Memo::default();
    let mut outcomes = Vec::with_capacity(planned.len());
    let launch = match subject {
        Subject::Program(launch) => Some(launch),
        Subject::Address(_) => None,
    };
    let prefetch = |i: usize| {
        let (launch, planned) = (launch?, planned.get(i)?);
        Some(start_instance(launch.clone(), planned.probe.transport(), options.clone()))
    };
    let mut ahead: VecDeque<_> = (0..PREFETCH).filter_map(prefetch).collect();
    let mut stopping = Vec::new();
    for (i, planned) in planned.iter().enumerate() {
        on_event(Event::Started(&planned.case));
        let started = Instant::now();
        let current = ahead.pop_front();
        ahead.extend(prefetch(i + PREFETCH));
        let (finding, crash) = match (subject, current) {
            (Subject::Address(addr), _) => {
                let mut ctx = Ctx { addr: *addr, program: None, options, memo: &mut memo };
                (run_limited(planned, &mut ctx).await, None)
            }
            (Subject::Program(_), None) => (Finding::skip("no instance of the program was started"), None),
            (Subject::Program(_), Some(handle)) => match instance(handle).await? {
                Err(why) if outcomes.is_empty() => {
                    // The first start failed: every case would fail the same way.
                    for next in ahead {
                        next.abort();
                    }
                    return Ok(Report::aborted(check.name(), subject.display(), why));
                }
                Err(why) => (Finding::fail(why), None),
                Ok((mut running, addr)) => {
                    let mut ctx = Ctx { addr, program: Some(&running), options, memo: &mut memo };
                    let finding = run_limited(planned, &mut ctx).await;
                    if finding.problem.is_some() {
                        // A crash in progress may take a moment to become an exit.
                        running.wait_exit(CRASH_GRACE).await;
                    }
                    let crash = running.ended().await;
                    stopping.push(tokio::spawn(running.stop()));
                    (finding, crash)
                }
            },
        };
        let outcome = Outcome::new(planned.case, finding, started.elapsed(), crash);
        on_event(Event::Finished(&outcome));
        outcomes.push(outcome);
    }
    join_all(stopping).await;
    Ok(Report::new(check.name(), subject.display(), outcomes))
}

async fn run_limited(planned: &Planned, ctx: &mut Ctx<'_>) -> Finding {
    match tokio::time::timeout(CASE_LIMIT, planned.probe.run(ctx)).await {
        Ok(finding) => finding,
        Err(_) => Finding::fail(format!(
            "the case did not finish within {}: the server stopped answering halfway",
            humantime::format_duration(CASE_LIMIT)
        )),
    }
}

/// Why a program did not start, with what it printed.
pub(crate) fn not_started(e: &CheckError) -> String {
    match e {
        CheckError::NotListening { stderr, .. } if !stderr.is_empty() => {
            format!("{e}; it printed:\n{stderr}")
        }
        e => e.to_string(),
    }
}
