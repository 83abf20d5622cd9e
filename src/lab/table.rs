//! Aligned text tables for the experiments' reports.

use std::fmt;

/// A table whose columns are as wide as their widest cell: columns of numbers
/// are aligned right, columns with words in them left.
#[derive(Debug)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header row.
    pub(crate) fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|h| (*h).to_owned()).collect()] }
    }

    /// Adds a row; a row shorter than the header leaves its last cells empty.
    pub(crate) fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        // A column is text when a cell below the header starts with a letter.
        let text: Vec<bool> = (0..columns)
            .map(|c| {
                self.rows[1..].iter().filter_map(|r| r.get(c)).any(|s| s.starts_with(char::is_alphabetic))
            })
            .collect();
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let mut line = String::new();
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                if c > 0 {
                    line.push_str("  ");
                }
                if text[c] {
                    line.push_str(&format!("{cell:<width$}"));
                } else {
                    line.push_str(&format!("{cell:>width$}"));
                }
            }
            f.write_str(line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_to_the_widest_cell() {
        let mut table = Table::new(&["variant", "time", "ok"]);
        table.row(["threads".to_owned(), "1.5 s".to_owned(), "yes".to_owned()]);
        table.row(["sequential".to_owned(), "12.25 s".to_owned(), "no".to_owned()]);
        assert_eq!(
            table.to_string(),
            "variant        time  ok\nthreads       1.5 s  yes\nsequential  12.25 s  no"
        );
    }
}
