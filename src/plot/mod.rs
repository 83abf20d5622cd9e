//! Charts as standalone SVG documents: enough to put a measured result in
//! the docs or a slide, with no plotting dependency.

mod bars;
mod lines;
mod sequence;

pub use bars::{Bar, bars};
pub use lines::{Axes, Series, lines};
pub use sequence::{Lane, Message, sequence};

/// Colours of the groups of bars and series.
const COLOURS: [&str; 4] = ["#c3622c", "#3572a5", "#4c9a52", "#8a5cb8"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let svg = bars(
            "a < b & c",
            "",
            &[Bar { label: "<script>".into(), value: 1.0, note: String::new(), group: 0 }],
        );
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(!svg.contains("<script>"));
    }
}
