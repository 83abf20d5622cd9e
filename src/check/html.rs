//! The HTML report (to come).

use super::case::Report;

/// The report as one self-contained HTML page.
pub fn report(report: &Report) -> String {
    format!("<html><body>{}</body></html>", report.check)
}
