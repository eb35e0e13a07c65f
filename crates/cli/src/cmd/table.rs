//! Text tables as sfdisk prints them: columns as wide as their widest cell, numbers
//! right-aligned, text left-aligned, no trailing spaces.

use std::fmt::Write as _;

/// `rows` (the first one the header) as lines; `right[c]` right-aligns column `c`.
pub fn render<R: AsRef<[String]>>(rows: &[R], right: &[bool]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.as_ref().get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.as_ref().iter().enumerate() {
            if c > 0 {
                line.push(' ');
            }
            let w = widths[c];
            if right.get(c).copied().unwrap_or(false) {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
    o
}
