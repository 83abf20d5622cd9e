//! The generic part of every server check: pick the cases, give each a
//! target (the running server, or a fresh start of the program), run its
//! probe with a time limit, notice a crash, and collect the outcomes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::case::{Case, Finding, Outcome, Report};
use super::program::{Running, free_port};
use super::server::{Ctx, Memo, Planned, ServerCheck};
use super::{CheckError, Options, Subject};

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

/// Runs `check` against `subject`, telling `on_event` how it goes.
///
/// # Errors
/// When the options select no case, or the grader cannot bind its own
/// sockets; a program that does not start is a report (aborted), not an
/// error, so that a class keeps going.
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
    for planned in &planned {
        on_event(Event::Started(&planned.case));
        let started = Instant::now();
        let (finding, crash) = match subject {
            Subject::Address(addr) => {
                let mut ctx = Ctx { addr: *addr, program: None, options, memo: &mut memo };
                (run_limited(planned, &mut ctx).await, None)
            }
            Subject::Program(launch) => {
                let port = free_port(options.host)?;
                let addr = SocketAddr::new(options.host, port);
                let vars = [("host", options.host.to_string()), ("port", port.to_string())];
                let mut running = Running::start(launch, &vars, false)?;
                if let Err(e) = running.wait_listening(planned.probe.transport(), addr, options.startup_timeout).await {
                    let why = not_started(&e);
                    running.stop().await;
                    if outcomes.is_empty() {
                        // The first start failed: every case would fail the same way.
                        return Ok(Report::aborted(check.name(), subject.display(), why));
                    }
                    (Finding::fail(why), None)
                } else {
                    let mut ctx = Ctx { addr, program: Some(&running), options, memo: &mut memo };
                    let finding = run_limited(planned, &mut ctx).await;
                    let crash = running.crashed();
                    running.stop().await;
                    (finding, crash)
                }
            }
        };
        let outcome = Outcome::new(planned.case, finding, started.elapsed(), crash);
        on_event(Event::Finished(&outcome));
        outcomes.push(outcome);
    }
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
        CheckError::NotListening { stderr, .. } if !stderr.is_empty() => format!("{e}; it printed:\n{stderr}"),
        e => e.to_string(),
    }
}
