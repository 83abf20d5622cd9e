//! Charts as standalone SVG documents: enough to put a measured result in
//! the docs or a slide, with no plotting dependency.

mod bars;
mod lines;

pub use bars::{Bar, bars};
pub use lines::{Axes, Series, lines};

/// Colours of the groups of bars and series.
const COLOURS: [&str; 4] = ["#c3622c", "#3572a5", "#4c9a52", "#8a5cb8"];

/// Text made safe to put inside an SVG element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a < b & \"c\" >\u{7}"), "a &lt; b &amp; &quot;c&quot; &gt;");
        let svg = bars(
            "a < b & c",
            "",
            &[Bar { label: "<script>".into(), value: 1.0, note: String::new(), group: 0 }],
        );
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(!svg.contains("<script>"));
    }
}
