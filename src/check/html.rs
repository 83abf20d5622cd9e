//! The HTML report: one self-contained page (styles inline, no scripts, no
//! fetches) with the summary, every case, and what went wrong and why; for a
//! class, a table of students × cases first.

use std::fmt::Write;

use super::case::{Group, Outcome, Report, Verdict};

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:64rem;color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}h3{font-size:1rem;margin:1.2rem 0 .3rem;text-transform:capitalize}
.subject{color:#59636e;font-family:ui-monospace,monospace;word-break:break-all}
.summary{display:flex;gap:.6rem;margin:1rem 0;flex-wrap:wrap}
.count{border-radius:6px;padding:.4rem .8rem;font-weight:600}
.pass{background:#dafbe1;color:#116329}.fail{background:#ffebe9;color:#a40e26}.warn{background:#fff8c5;color:#7d4e00}.skip{background:#eff2f5;color:#59636e}
table{border-collapse:collapse;width:100%}table.cases{table-layout:fixed}table.cases td:first-child{width:3.5rem}table.cases td:nth-child(2){width:14rem}td,th{padding:.3rem .5rem;border-bottom:1px solid #d1d9e0;text-align:left;vertical-align:top}
.verdict{font-weight:700;font-size:.8rem;border-radius:4px;padding:.1rem .4rem;white-space:nowrap}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.5rem;border-radius:6px;white-space:pre-wrap;word-break:break-all;margin:.2rem 0}
div.grid-wrap{overflow-x:auto;max-width:100%}
details{border:1px solid #d1d9e0;border-radius:6px;padding:.5rem .8rem;margin:.6rem 0}summary{cursor:pointer;font-weight:600}
dt{font-weight:600;color:#59636e;margin-top:.4rem}dd{margin:0 0 0 1rem}
.note{color:#59636e;font-size:.85rem}.grid td{text-align:center}.grid th.case{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:400;font-size:.8rem}
";

/// `text` safe inside an element or a quoted attribute.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    crate::text::markup(text)
}

fn class_of(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Warn => "warn",
        Verdict::Skip => "skip",
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

fn summary(report: &Report) -> String {
    let t = report.tally;
    let mut out = String::from("<div class=\"summary\" id=\"summary\">");
    for (n, label, class) in [
        (t.passed, "passed", "pass"),
        (t.failed, "failed", "fail"),
        (t.warned, "warnings", "warn"),
        (t.skipped, "skipped", "skip"),
    ] {
        let _ = write!(out, "<span class=\"count {class}\" data-{label}=\"{n}\">{n} {label}</span>");
    }
    out.push_str("</div>\n");
    out
}

/// One check's sections: summary, the table of cases by group, details.
fn body(report: &Report, heading: &str) -> String {
    let mut out = format!(
        "<{heading}>check {}</{heading}>\n<div class=\"subject\">{}</div>\n",
        esc(&report.check),
        esc(&report.subject)
    );
    if let Some(why) = &report.aborted {
        let _ =
            writeln!(out, "<p class=\"count fail\">The check could not start.</p><pre>{}</pre>", esc(why));
        return out;
    }
    out.push_str(&summary(report));
    for group in Group::ALL {
        let cases: Vec<&Outcome> = report.outcomes.iter().filter(|o| o.case.group == group).collect();
        if cases.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{}</h3>\n<table class=\"cases\">", group.name());
        for o in cases {
            let note =
                o.finding.skipped.iter().chain(o.finding.notes.iter().filter(|_| o.verdict == Verdict::Pass));
            let notes: String = note.map(|n| format!("<div class=\"note\">{}</div>", esc(n))).collect();
            let _ = write!(
                out,
                "<tr id=\"{id}\"><td><span class=\"verdict {class}\">{label}</span></td><td><code>{id}</code></td>\
                 <td>{title}{notes}</td></tr>",
                id = esc(o.case.id),
                class = class_of(o.verdict),
                label = o.verdict.label(),
                title = esc(o.case.title),
            );
        }
        out.push_str("</table>\n");
    }
    for o in report.outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Fail | Verdict::Warn)) {
        out.push_str(&details(o));
    }
    out
}

fn details(o: &Outcome) -> String {
    let mut out = format!(
        "<details open class=\"case\"><summary><span class=\"verdict {}\">{}</span> <code>{}</code> {}</summary><dl>",
        class_of(o.verdict),
        o.verdict.label(),
        esc(o.case.id),
        esc(o.case.title)
    );
    let mut field = |name: &str, text: &str, pre: bool| {
        let text = esc(text);
        let _ = if pre {
            write!(out, "<dt>{name}</dt><dd><pre>{text}</pre></dd>")
        } else {
            write!(out, "<dt>{name}</dt><dd>{text}</dd>")
        };
    };
    field("sent", o.finding.sent.as_deref().unwrap_or(o.case.sends), o.finding.sent.is_some());
    field("expected", o.case.expects, false);
    if let Some(problem) = &o.finding.problem {
        field("found", &problem.what, false);
    }
    if let Some(got) = &o.finding.got {
        field("got", got, true);
    }
    for note in &o.finding.notes {
        field("measured", note, false);
    }
    if let Some(crash) = &o.crash {
        field(&format!("the program stopped ({}); its stderr", crash.status), &crash.stderr, true);
    }
    if let Some(traceback) = &o.traceback {
        field("the program kept running, but printed on stderr", &traceback.text, true);
        if let Some(reading) = traceback.reading {
            field("what the traceback says", reading, false);
        }
    }
    field("why", o.case.explanation, false);
    let doc = o.case.doc_link();
    let link = esc(&doc);
    let _ = writeln!(out, "<dt>read</dt><dd><a href=\"{link}\"><code>{link}</code></a></dd></dl></details>");
    out
}

/// One check as a page.
pub fn report(report: &Report) -> String {
    page(&format!("check {}: {}", report.check, report.subject), &body(report, "h1"))
}

/// The table of `students` (all graded by one check) × its cases.
fn grid<'a>(students: impl Iterator<Item = (usize, &'a (String, Report))> + Clone) -> String {
    let mut ids: Vec<&str> = Vec::new();
    for (_, (_, r)) in students.clone() {
        for o in &r.outcomes {
            if !ids.contains(&o.case.id) {
                ids.push(o.case.id);
            }
        }
    }
    let mut out =
        String::from("<div class=\"grid-wrap\"><table class=\"grid\"><tr><th>student</th><th>check</th>");
    for id in &ids {
        let _ = write!(out, "<th class=\"case\">{}</th>", esc(id));
    }
    out.push_str("<th>result</th></tr>\n");
    for (i, (name, r)) in students {
        let _ =
            write!(out, "<tr><th><a href=\"#student-{i}\">{}</a></th><td>{}</td>", esc(name), esc(&r.check));
        for id in &ids {
            match r.outcomes.iter().find(|o| o.case.id == *id) {
                Some(o) => {
                    let _ = write!(
                        out,
                        "<td class=\"{}\" title=\"{}\">{}</td>",
                        class_of(o.verdict),
                        esc(id),
                        &o.verdict.label()[..1]
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        let result = match (&r.aborted, r.passed()) {
            (Some(_), _) => "<td class=\"fail\">did not start</td>".to_owned(),
            (None, true) => "<td class=\"pass\">pass</td>".to_owned(),
            (None, false) => format!("<td class=\"fail\">{} failed</td>", r.tally.failed),
        };
        let _ = writeln!(out, "{result}</tr>");
    }
    out.push_str("</table></div>\n");
    out
}

/// A class as a page: a table of students × cases, then each student's report.
pub fn class(title: &str, reports: &[(String, Report)]) -> String {
    let mut out = format!("<h1>{}</h1>\n", esc(title));
    let passed = reports.iter().filter(|(_, r)| r.passed()).count();
    let _ = writeln!(
        out,
        "<div class=\"summary\" id=\"summary\"><span class=\"count pass\" data-students-passed=\"{passed}\">{passed} of {} passed</span></div>",
        reports.len()
    );
    // One table per check: a class that mixes checks would otherwise get
    // a column for every case of every check, wider than any screen.
    let mut checks: Vec<&str> = Vec::new();
    for (_, r) in reports {
        if !checks.contains(&r.check.as_str()) {
            checks.push(&r.check);
        }
    }
    for check in checks {
        if reports.iter().any(|(_, r)| r.check != check) {
            let _ = writeln!(out, "<h2 class=\"grid-check\">{}</h2>", esc(check));
        }
        let students = reports.iter().enumerate().filter(|(_, (_, r))| r.check == check);
        out.push_str(&grid(students));
    }
    for (i, (name, r)) in reports.iter().enumerate() {
        let _ =
            write!(out, "<section id=\"student-{i}\"><h2>{}</h2>\n{}</section>\n", esc(name), body(r, "h3"));
    }
    page(title, &out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::check::case::{Case, Finding, Level};

    const CASE: Case = Case {
        id: "echo.tcp.1mib",
        title: "a <big> message",
        group: Group::Correct,
        level: Level::Required,
        sends: "1 MiB",
        expects: "1 MiB back",
        explanation: "TCP is a stream",
        anchor: "tcp-is-a-stream",
    };

    #[test]
    fn everything_shown_is_escaped() {
        let finding = Finding::fail("got <script>alert(1)</script>").got("b'\\x1b[2J'");
        let outcome = Outcome::new(CASE, finding, Duration::ZERO, None);
        let page = report(&Report::new("echo", "python3 'evil<>.py'", vec![outcome]));
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));
        assert!(page.contains("a &lt;big&gt; message") && page.contains("evil&lt;&gt;.py"));
        assert!(page.contains("data-failed=\"1\"") && page.contains("docs/check.md#tcp-is-a-stream"));
        assert!(!page.contains("http"), "the page fetches nothing");
    }

    #[test]
    fn a_class_has_a_grid_of_students_and_cases() {
        let ok = Report::new("echo", "a", vec![Outcome::new(CASE, Finding::pass(), Duration::ZERO, None)]);
        let bad =
            Report::new("echo", "b", vec![Outcome::new(CASE, Finding::fail("no"), Duration::ZERO, None)]);
        let page = class("Class", &[("Ana".into(), ok), ("Ben".into(), bad)]);
        assert!(page.contains("1 of 2 passed"));
        assert!(page.contains("<td class=\"pass\" title=\"echo.tcp.1mib\">P</td>"));
        assert!(page.contains("<td class=\"fail\">1 failed</td>"));
    }

    #[test]
    fn a_class_mixing_checks_gets_a_table_per_check() {
        let time = Case { id: "time.tcp.epoch", ..CASE };
        let echo = Report::new("echo", "a", vec![Outcome::new(CASE, Finding::pass(), Duration::ZERO, None)]);
        let time = Report::new("time", "b", vec![Outcome::new(time, Finding::pass(), Duration::ZERO, None)]);
        let page = class("Class", &[("Ana".into(), echo), ("Ben".into(), time)]);
        assert_eq!(page.matches("<table class=\"grid\">").count(), 2, "{page}");
        let tables: Vec<&str> = page.split("<table class=\"grid\">").skip(1).collect();
        assert!(
            tables[0].contains("echo.tcp.1mib")
                && !tables[0].split("</table>").next().unwrap().contains("time.tcp")
        );
        assert!(page.contains("<div class=\"grid-wrap\">"), "a wide table scrolls inside the page");
    }

    #[test]
    fn the_doc_section_is_a_link() {
        let outcome = Outcome::new(CASE, Finding::fail("no"), Duration::ZERO, None);
        let page = report(&Report::new("echo", "x", vec![outcome]));
        assert!(page.contains("<a href=\"docs/check.md#tcp-is-a-stream\">"), "{page}");
    }
}
