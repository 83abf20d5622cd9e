//! The report card at a terminal: cases grouped, one line each, then what
//! went wrong in each failed case and why.

use std::fmt::Write;

use console::{Style, style};
use socketeer::check::{Group, Outcome, Report, Verdict};

use super::super::output::wrap;

/// How wide explanations are wrapped.
const WIDTH: usize = 88;

fn paint(verdict: Verdict) -> Style {
    match verdict {
        Verdict::Pass => Style::new().green(),
        Verdict::Fail => Style::new().red().bold(),
        Verdict::Warn => Style::new().yellow(),
        Verdict::Skip => Style::new().dim(),
    }
}

/// `text` indented by `indent` spaces on every line, wrapped to fit.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .flat_map(|line| wrap(line, WIDTH - indent).lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The whole card.
pub fn render(report: &Report) -> String {
    let mut out = format!("{} {}\n", style(format!("check {}", report.check)).bold(), report.subject);
    if let Some(why) = &report.aborted {
        // What the program printed follows the first line: a traceback keeps its indentation.
        // The first line is one message, left whole so it can be searched for and copied.
        let (head, printed) = why.split_once('\n').unwrap_or((why, ""));
        let _ = write!(out, "\n{} the check could not start:\n  {head}\n", style("ERROR").red().bold());
        if !printed.is_empty() {
            let _ = writeln!(out, "{}", indent(printed, 4));
        }
        return out;
    }
    let id_width = report.outcomes.iter().map(|o| o.case.id.len()).max().unwrap_or(0);
    for group in Group::ALL {
        let members: Vec<&Outcome> = report.outcomes.iter().filter(|o| o.case.group == group).collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", style(group.name()).bold().underlined());
        for outcome in members {
            let verdict = paint(outcome.verdict).apply_to(outcome.verdict.label());
            let _ = write!(out, "  {verdict}  {:id_width$}  {}", outcome.case.id, outcome.case.title);
            if let Some(why) = &outcome.finding.skipped {
                let _ = write!(out, " {}", style(format!("({why})")).dim());
            }
            out.push('\n');
            for note in outcome.finding.notes.iter().filter(|_| outcome.verdict == Verdict::Pass) {
                let _ = writeln!(out, "  {:4}  {:id_width$}  {}", "", "", style(note).dim());
            }
        }
    }
    let troubled: Vec<&Outcome> =
        report.outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Fail | Verdict::Warn)).collect();
    for outcome in troubled {
        out.push('\n');
        out.push_str(&details(outcome));
    }
    let tally =
        paint(if report.passed() { Verdict::Pass } else { Verdict::Fail }).apply_to(report.tally.to_string());
    let _ = writeln!(out, "\n{tally}");
    out
}

/// What went wrong in one case, and why it matters.
pub fn details(outcome: &Outcome) -> String {
    let case = &outcome.case;
    let finding = &outcome.finding;
    let mut out = format!(
        "{} {}: {}\n",
        paint(outcome.verdict).apply_to(outcome.verdict.label()),
        style(case.id).bold(),
        case.title
    );
    let mut field = |name: &str, text: &str| {
        let _ = writeln!(out, "  {}\n{}", style(format!("{name}:")).dim(), block(text, 4));
    };
    field("sent", finding.sent.as_deref().unwrap_or(case.sends));
    field("expected", case.expects);
    if let Some(problem) = &finding.problem {
        field("found", &problem.what);
    }
    if let Some(got) = &finding.got {
        field("got", got);
    }
    for note in &finding.notes {
        field("measured", note);
    }
    if let Some(crash) = &outcome.crash {
        let stderr =
            if crash.stderr.is_empty() { "(nothing on stderr)".to_owned() } else { crash.stderr.clone() };
        let _ = writeln!(
            out,
            "  {}\n{}",
            style(format!("the program stopped ({}); its stderr:", crash.status)).dim(),
            indent(&stderr, 4)
        );
    }
    if let Some(traceback) = &outcome.traceback {
        let _ = writeln!(
            out,
            "  {}\n{}",
            style("the program kept running, but printed on stderr:").dim(),
            indent(&traceback.text, 4)
        );
        if let Some(reading) = traceback.reading {
            let _ = writeln!(out, "  {}\n{}", style("what the traceback says:").dim(), block(reading, 4));
        }
    }
    let _ = writeln!(out, "  {}\n{}", style("why:").dim(), block(case.explanation, 4));
    let _ = writeln!(out, "  {} {}", style("read:").dim(), case.doc_link());
    out
}

/// `text` indented, not wrapped (a traceback keeps its lines).
fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{}", socketeer::text::sanitize(l))).collect::<Vec<_>>().join("\n")
}
