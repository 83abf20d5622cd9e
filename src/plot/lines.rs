//! A line chart: series of (x, y) points on shared axes, the y axis linear
//! or logarithmic, measured points as dots and models as dashed lines.

use std::fmt::Write;

use super::COLOURS;
use crate::text::markup;

/// One line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Series of one group share a colour.
    pub group: usize,
    /// A model rather than a measurement: dashed, without dots.
    pub dashed: bool,
}

/// What the axes show.
#[derive(Clone, Debug, PartialEq)]
pub struct Axes {
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// A logarithmic y axis, for values spanning orders of magnitude.
    pub y_log: bool,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 290.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 60.0;

/// An SVG document with `title`, a `subtitle` and the series, with a legend.
pub fn lines(title: &str, subtitle: &str, axes: &Axes, series: &[Series]) -> String {
    let points =
        || series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    let (x_min, x_max) = if x_min < x_max { (x_min, x_max) } else { (0.0, 1.0) };
    let y_scale = YScale::new(axes.y_log, points().map(|&(_, y)| y));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
    let py = |y: f64| TOP + plot_h - y_scale.fraction(y) * plot_h;
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="16" y="26" font-size="16" font-weight="bold">{}</text>"#, markup(title));
    let _ = writeln!(svg, r##"<text x="16" y="46" fill="#555">{}</text>"##, markup(subtitle));
    for tick in y_scale.ticks() {
        let y = py(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            number(tick)
        );
    }
    for i in 0..=5 {
        let x = x_min + (x_max - x_min) * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            TOP + plot_h + 18.0,
            number(x)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0,
        markup(&axes.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        markup(&axes.y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[s.group % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        if !s.dashed {
            for point in &path {
                let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3.5" fill="{colour}"/>"#);
            }
        }
        let legend_y = TOP + 10.0 + 22.0 * i as f64;
        let legend_x = LEFT + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 28.0,
            legend_x + 34.0,
            legend_y + 4.0,
            markup(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A number as a tick label: few digits, no trailing zeros.
fn number(v: f64) -> String {
    let text = if v.abs() >= 100.0 || v == v.round() { format!("{v:.0}") } else { format!("{v:.2}") };
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// How y values map onto the plot's height.
struct YScale {
    log: bool,
    min: f64,
    max: f64,
}

impl YScale {
    fn new(log: bool, values: impl Iterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.filter(|v| !log || *v > 0.0).collect();
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        if log {
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let (lo, hi) = if min <= max { (min.log10().floor(), max.log10().ceil()) } else { (0.0, 1.0) };
            YScale { log, min: 10f64.powf(lo), max: 10f64.powf(hi.max(lo + 1.0)) }
        } else {
            YScale { log, min: 0.0, max: if max > 0.0 { max * 1.05 } else { 1.0 } }
        }
    }

    /// Where `y` sits, from 0 (bottom) to 1 (top).
    fn fraction(&self, y: f64) -> f64 {
        let f = if self.log {
            (y.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (y - self.min) / (self.max - self.min)
        };
        f.clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (lo, hi) = (self.min.log10().round() as i32, self.max.log10().round() as i32);
            (lo..=hi).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=5).map(|i| self.min + (self.max - self.min) * f64::from(i) / 5.0).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, dashed: bool) -> Series {
        Series { label: label.to_owned(), points: vec![(0.0, 1.0), (10.0, 100.0)], group: 0, dashed }
    }

    #[test]
    fn draws_each_series_with_a_legend() {
        let axes = Axes { x_label: "loss %".into(), y_label: "MB/s".into(), y_log: true };
        let svg = lines("t", "s", &axes, &[series("measured", false), series("bound", true)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2, "dots for the measured series only");
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains(">measured</text>") && svg.contains(">bound</text>"));
        assert!(svg.contains(">100</text>") && svg.contains(">1</text>"), "log ticks at powers of ten");
    }

    #[test]
    fn a_log_scale_puts_decades_evenly() {
        let scale = YScale::new(true, [1.0, 1000.0].into_iter());
        assert_eq!(scale.fraction(1.0), 0.0);
        assert!((scale.fraction(10.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(scale.fraction(1000.0), 1.0);
        assert_eq!(scale.ticks(), [1.0, 10.0, 100.0, 1000.0]);
    }

    #[test]
    fn empty_and_odd_input_still_draws() {
        let axes = Axes { x_label: String::new(), y_label: String::new(), y_log: false };
        let svg = lines(
            "t",
            "s",
            &axes,
            &[Series { label: "x".into(), points: vec![(f64::NAN, 1.0)], group: 1, dashed: false }],
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(250.0), "250");
    }
}
