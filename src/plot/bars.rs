//! A horizontal bar chart.

use std::fmt::Write;

use super::COLOURS;
use crate::text::markup;

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// The text left of the bar.
    pub label: String,
    /// The bar's length, in any unit; all bars share the scale.
    pub value: f64,
    /// The text right of the bar (the value as people should read it).
    pub note: String,
    /// Bars of one group share a colour.
    pub group: usize,
}

const WIDTH: usize = 760;
const LABEL_WIDTH: usize = 190;
const BAR_AREA: usize = 420;
const ROW: usize = 30;
const TOP: usize = 64;

/// An SVG document with `title`, a `subtitle` line and one bar per entry,
/// longest value the full width.
pub fn bars(title: &str, subtitle: &str, bars: &[Bar]) -> String {
    let height = TOP + ROW * bars.len() + 16;
    let max = bars.iter().map(|b| b.value).filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="16" y="26" font-size="16" font-weight="bold">{}</text>"#, markup(title));
    let _ = writeln!(svg, r##"<text x="16" y="46" fill="#555">{}</text>"##, markup(subtitle));
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + i * ROW;
        let share = if max > 0.0 && bar.value.is_finite() { (bar.value / max).clamp(0.0, 1.0) } else { 0.0 };
        let length = (share * BAR_AREA as f64).round().max(1.0);
        let colour = COLOURS[bar.group % COLOURS.len()];
        let (text_y, bar_x) = (y + 15, LABEL_WIDTH + 8);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{text_y}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH,
            markup(&bar.label)
        );
        let _ =
            writeln!(svg, r#"<rect x="{bar_x}" y="{}" width="{length}" height="20" fill="{colour}"/>"#, y);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{text_y}">{}</text>"#,
            bar_x as f64 + length + 6.0,
            markup(&bar.note)
        );
    }
    let axis_bottom = TOP + ROW * bars.len();
    let axis_x = LABEL_WIDTH + 8;
    let _ = writeln!(
        svg,
        r##"<line x1="{axis_x}" y1="{}" x2="{axis_x}" y2="{axis_bottom}" stroke="#333"/>"##,
        TOP - 6
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar { label: label.to_owned(), value, note: format!("{value} s"), group: 0 }
    }

    #[test]
    fn the_longest_value_spans_the_bar_area_and_others_scale() {
        let svg = bars("t", "s", &[bar("a", 2.0), bar("b", 1.0)]);
        assert!(svg.starts_with("<svg "));
        assert!(svg.contains(r#"width="420" height="20""#), "{svg}");
        assert!(svg.contains(r#"width="210" height="20""#), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn zero_and_nan_values_still_draw() {
        let svg = bars("t", "s", &[bar("zero", 0.0), bar("nan", f64::NAN)]);
        assert_eq!(svg.matches(r#"width="1" height="20""#).count(), 2, "{svg}");
    }
}
