//! The generic part of every server check: pick the cases, give each a
//! target (the running server, or a fresh start of the program), run its
//! probe with a time limit, notice a crash, and collect the outcomes.
//!
//! A fresh start per case costs the program's start-up time (a third of a
//! second for Python on a busy machine), so several cases, each with its own
//! instance, run at once, and stopped instances are reaped in the
//! background. A case runs once the case it depends on has passed.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::case::{Case, Crash, Finding, Outcome, Report, Verdict};
use super::program::{Launch, Running, free_port, port_was_taken};
use super::server::{Ctx, Memo, Planned, ServerCheck};
use super::{CheckError, Options, Subject};
use crate::net::Transport;

/// How many times a program is started when its port was taken meanwhile.
const START_TRIES: usize = 3;

/// How many cases run at once when each has its own instance of the
/// program: they wait on the network far more than they compute.
const AT_ONCE: usize = 4;

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
async fn start_instance(
    launch: Launch,
    transport: Transport,
    options: Options,
) -> Result<Instance, CheckError> {
    {
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
    }
}

/// Runs `check` against `subject`, telling `on_event` how it goes.
///
/// A case whose prerequisite ([`Planned::needs`]) failed is skipped, saying
/// which: when a server never answers, one case says so and the rest do
/// not repeat it. With a program to start, independent cases run at the same
/// time, each against its own instance; a running server gets one case at a
/// time, because cases that share it would disturb each other.
///
/// # Errors
/// When the options select no case, the program cannot be started at all,
/// or the grader cannot bind its own sockets; a program that starts but
/// does not listen, or an address where nothing listens, is a report
/// (aborted), not an error, so that a class keeps going.
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
    if let Subject::Address { addr, name } = subject
        && let Some(why) = unreachable(*addr, name, &planned, options).await
    {
        return Ok(Report::aborted(check.name(), subject.display(), why));
    }
    on_event(Event::Planned(planned.len()));
    let (at_once, order) = match subject {
        Subject::Address { .. } => (1, (0..planned.len()).collect()),
        Subject::Program(_) => (AT_ONCE, slow_first(&planned)),
    };
    let mut memo = Memo::default();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; planned.len()];
    let mut running = FuturesUnordered::new();
    let mut stopping = Vec::new();
    let mut order = order.into_iter().peekable();
    loop {
        while running.len() < at_once
            && let Some(&next) = order.peek()
        {
            let case = &planned[next];
            let prerequisite = case.needs.and_then(|id| planned.iter().position(|p| p.case.id == id));
            match prerequisite.map(|at| &outcomes[at]) {
                // Cases start in order: wait for the prerequisite to end.
                Some(None) => break,
                Some(Some(before)) if before.verdict == Verdict::Fail || before.verdict == Verdict::Skip => {
                    on_event(Event::Started(&case.case));
                    let why = format!("{} did not pass", before.case.id);
                    let outcome = Outcome::new(case.case, Finding::skip(why), Duration::ZERO, None);
                    on_event(Event::Finished(&outcome));
                    outcomes[next] = Some(outcome);
                }
                _ => {
                    on_event(Event::Started(&case.case));
                    running.push(run_case(next, case, subject, options, memo.clone()));
                }
            }
            order.next();
        }
        let Some((at, ran)) = running.next().await else { break };
        let ran = match ran? {
            Ran::NotStarted(why) if outcomes.iter().all(Option::is_none) => {
                // The first start failed: every case would fail the same way.
                return Ok(Report::aborted(check.name(), subject.display(), why));
            }
            Ran::NotStarted(why) => Ran::Done(
                Box::new(Outcome::new(planned[at].case, Finding::fail(why), Duration::ZERO, None)),
                None,
                None,
            ),
            ran => ran,
        };
        if let Ran::Done(outcome, learned, stop) = ran {
            memo.learn(learned);
            stopping.extend(stop);
            on_event(Event::Finished(&outcome));
            outcomes[at] = Some(*outcome);
        }
    }
    join_all(stopping).await;
    Ok(Report::new(check.name(), subject.display(), outcomes.into_iter().flatten().collect()))
}

/// The order in which to start the cases of `planned` (indices): the ones
/// others depend on first, then the robust ones, which wait out timeouts
/// and so take longest, then the concurrent ones, then the rest; so that
/// the last case to start is a short one. The report keeps the plan's order.
fn slow_first(planned: &[Planned]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].needs.is_some(), std::cmp::Reverse(planned[i].case.group)));
    order
}

/// How one case ended.
enum Ran {
    /// Its instance of the program never listened: why.
    NotStarted(String),
    /// It ran: the outcome, what it learned, and the stopping of its instance.
    Done(Box<Outcome>, Option<Memo>, Option<JoinHandle<Option<Crash>>>),
}

/// Runs the case at index `at` of the plan against `subject` (a fresh instance of it, when a program).
async fn run_case(
    at: usize,
    planned: &Planned,
    subject: &Subject,
    options: &Options,
    mut memo: Memo,
) -> (usize, Result<Ran, CheckError>) {
    let started = Instant::now();
    let launch = match subject {
        Subject::Address { addr, .. } => {
            let mut ctx = Ctx { addr: *addr, program: None, options, memo: &mut memo };
            let finding = run_limited(planned, &mut ctx).await;
            let outcome = Outcome::new(planned.case, finding, started.elapsed(), None);
            return (at, Ok(Ran::Done(Box::new(outcome), Some(memo), None)));
        }
        Subject::Program(launch) => launch,
    };
    let instance = start_instance(launch.clone(), planned.probe.transport(), options.clone());
    let (mut running, addr) = match instance.await {
        Err(e) => return (at, Err(e)),
        Ok(Err(why)) => return (at, Ok(Ran::NotStarted(why))),
        Ok(Ok(started)) => started,
    };
    let mut ctx = Ctx { addr, program: Some(&running), options, memo: &mut memo };
    let finding = run_limited(planned, &mut ctx).await;
    if finding.problem.is_some() {
        // A crash in progress may take a moment to become an exit.
        running.wait_exit(CRASH_GRACE).await;
    }
    let crash = running.ended().await;
    let stderr = running.stderr_tail();
    let stop = tokio::spawn(running.stop());
    let outcome = Outcome::new(planned.case, finding, started.elapsed(), crash).with_traceback_from(&stderr);
    (at, Ok(Ran::Done(Box::new(outcome), Some(memo), Some(stop))))
}

/// Why nothing can be graded at `addr` (which the user called `name`), when
/// the server is plainly not there: said once, instead of by every case.
async fn unreachable(addr: SocketAddr, name: &str, planned: &[Planned], options: &Options) -> Option<String> {
    let transport = planned.first()?.probe.transport();
    let refused = match transport {
        Transport::Tcp => {
            let attempt = tokio::time::timeout(options.startup_timeout, TcpStream::connect(addr)).await;
            matches!(attempt, Ok(Err(ref e)) if e.kind() == io::ErrorKind::ConnectionRefused)
        }
        // Nothing answers "no" over UDP for sure; the cases will tell.
        Transport::Udp => false,
    };
    refused.then(|| {
        format!(
            "could not connect to {name}: connection refused \u{2014} is the server running, on this port?"
        )
    })
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
