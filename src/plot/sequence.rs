//! A sequence diagram: messages between two parties over time, one lane per
//! run, side by side, time going down.

use std::fmt::Write;

use super::COLOURS;
use crate::text::markup as escape;

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Sent by the left party (else by the right one).
    pub from_left: bool,
    /// The text beside the arrow.
    pub label: String,
    /// When it was sent.
    pub sent: f64,
    /// When it arrived; `None` draws a lost message ending in a cross.
    pub arrived: Option<f64>,
    /// Drawn in the highlight colour (a resend).
    pub highlight: bool,
}

/// One column of the diagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// Its heading.
    pub title: String,
    /// Under the heading.
    pub note: String,
    /// Its messages.
    pub messages: Vec<Message>,
    /// Times to mark with a dashed line on the left party (timeouts).
    pub marks: Vec<f64>,
}

const LANE_WIDTH: f64 = 300.0;
const GAP: f64 = 40.0;
const TOP: f64 = 90.0;
const MAX_HEIGHT: f64 = 1400.0;

/// An SVG document with `title`, `subtitle` and one lane per entry; time (in
/// any unit, `unit` names it) runs down, on one scale for every lane.
pub fn sequence(title: &str, subtitle: &str, unit: &str, lanes: &[Lane]) -> String {
    let end = lanes
        .iter()
        .flat_map(|l| l.messages.iter().map(|m| m.arrived.unwrap_or(m.sent)))
        .fold(1.0_f64, f64::max);
    let scale = (MAX_HEIGHT / end).min(6.0);
    let width = 20.0 + lanes.len() as f64 * (LANE_WIDTH + GAP);
    let height = TOP + end * scale + 40.0;
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="{width:.0}" height="{height:.0}" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="16" y="24" font-size="16" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(svg, r##"<text x="16" y="42" fill="#555">{}</text>"##, escape(subtitle));
    let _ = writeln!(
        svg,
        r##"<text x="16" y="{:.1}" fill="#555" font-size="10">time ({}) ↓</text>"##,
        TOP - 4.0,
        escape(unit)
    );
    let y = |t: f64| TOP + t * scale;
    for (i, lane) in lanes.iter().enumerate() {
        let left = 20.0 + i as f64 * (LANE_WIDTH + GAP) + 60.0;
        let right = left + LANE_WIDTH - 90.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="64" font-size="13" font-weight="bold" text-anchor="middle">{}</text>"#,
            (left + right) / 2.0,
            escape(&lane.title)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="80" fill="#555" text-anchor="middle">{}</text>"##,
            (left + right) / 2.0,
            escape(&lane.note)
        );
        for x in [left, right] {
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
                y(0.0),
                y(end)
            );
        }
        for &mark in &lane.marks {
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="3,2"/><text x="{:.1}" y="{:.1}" fill="#c00" text-anchor="end" font-size="9">timeout</text>"##,
                left - 30.0,
                y(mark),
                left,
                y(mark),
                left - 32.0,
                y(mark) + 3.0
            );
        }
        for m in &lane.messages {
            let (from, to) = if m.from_left { (left, right) } else { (right, left) };
            let colour = if m.highlight { COLOURS[0] } else { COLOURS[1] };
            let (x2, y2) = match m.arrived {
                Some(t) => (to, y(t)),
                None => {
                    ((from + to) / 2.0, y(m.sent) + (y(m.sent + (end / 40.0).max(1.0)) - y(m.sent)) / 2.0)
                }
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{from:.1}" y1="{:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{colour}"/>"#,
                y(m.sent)
            );
            if m.arrived.is_none() {
                let _ = writeln!(
                    svg,
                    r#"<text x="{x2:.1}" y="{:.1}" fill="{}" text-anchor="middle" font-size="13">✕</text>"#,
                    y2 + 4.0,
                    COLOURS[0]
                );
            }
            let (anchor, x) = if m.from_left { ("end", left - 4.0) } else { ("start", right + 4.0) };
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{colour}" font-size="9">{}</text>"#,
                y(m.sent) + 3.0,
                escape(&m.label)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_per_message_and_a_cross_per_loss() {
        let message = |from_left, arrived| Message {
            from_left,
            label: "DATA <1>".to_owned(),
            sent: 1.0,
            arrived,
            highlight: false,
        };
        let lane = Lane {
            title: "t".to_owned(),
            note: String::new(),
            messages: vec![message(true, Some(11.0)), message(false, None)],
            marks: vec![5.0],
        };
        let svg = sequence("title", "sub", "ms", &[lane]);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches('✕').count(), 1);
        assert!(svg.contains("DATA &lt;1&gt;"));
        assert_eq!(svg.matches("timeout").count(), 1);
    }
}
