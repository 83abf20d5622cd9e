//! `check --class`: a roster graded into one report.

use std::path::Path;

use anyhow::Context;
use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::check::roster::{Roster, grade_class};
use socketeer::check::{Options, Report, Verdict, html};

use super::super::output::{Output, write_replacing};
use super::{ChecksFailed, Json, Summary, usage_or_runtime};

/// One student's line in JSON.
#[derive(serde::Serialize)]
struct Student<'a> {
    student: &'a str,
    #[serde(flatten)]
    summary: Summary<'a>,
}

/// A case in JSON, with the student it belongs to.
#[derive(serde::Serialize)]
struct StudentCase<'a> {
    student: &'a str,
    #[serde(flatten)]
    case: &'a socketeer::check::Outcome,
}

/// One line of the class card.
fn line(name: &str, report: &Report, width: usize) -> String {
    let failed: Vec<&str> =
        report.outcomes.iter().filter(|o| o.verdict == Verdict::Fail).map(|o| o.case.id).collect();
    let (mark, detail) = match (&report.aborted, report.passed()) {
        (Some(why), _) => {
            // The first line says why; of what the program printed, the
            // last line (a traceback's exception) fits on the card's line.
            let mut lines = why.lines();
            let head = lines.next().unwrap_or_default();
            let last = lines.rev().map(str::trim).find(|l| !l.is_empty());
            let detail = match last {
                Some(last) => format!("did not run: {head} {last}"),
                None => format!("did not run: {head}"),
            };
            (style("FAIL").red().bold(), detail)
        }
        (None, true) => (style("PASS").green(), report.tally.to_string()),
        (None, false) => (style("FAIL").red().bold(), format!("{}: {}", report.tally, failed.join(", "))),
    };
    format!("  {mark}  {name:width$}  {:16} {detail}", report.check)
}

/// Grades the roster at `path`.
pub async fn run(
    path: &Path,
    options: &Options,
    out: &Output,
    html_path: Option<&Path>,
) -> anyhow::Result<()> {
    let roster = Roster::read(path, options).map_err(usage_or_runtime)?;
    let width = roster.submissions.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(roster.submissions.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} students {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    out.note(format!("{} ({} students)\n", style(&roster.title).bold(), roster.submissions.len()))?;
    let mut written = Ok(());
    let reports = grade_class(&roster, |name, report| {
        bar.inc(1);
        let shown = if out.is_json() {
            report
                .outcomes
                .iter()
                .try_for_each(|o| out.emit("case", &Json(StudentCase { student: name, case: o })))
                .and_then(|()| {
                    out.emit("student", &Json(Student { student: name, summary: Summary::of(report) }))
                })
        } else {
            bar.suspend(|| out.note(line(name, report, width)))
        };
        if written.is_ok() {
            written = shown;
        }
    })
    .await;
    bar.finish_and_clear();
    written?;
    let passed = reports.iter().filter(|(_, r)| r.passed()).count();
    if out.is_json() {
        #[derive(serde::Serialize)]
        struct Class<'a> {
            title: &'a str,
            students: usize,
            passed: usize,
        }
        out.emit("summary", &Json(Class { title: &roster.title, students: reports.len(), passed }))?;
    } else {
        out.note(format!("\n{passed} of {} students passed every required case", reports.len()))?;
    }
    if let Some(path) = html_path {
        write_replacing(path, &html::class(&roster.title, &reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if passed == reports.len() { Ok(()) } else { Err(ChecksFailed.into()) }
}
