//! A box-drawn table in the layout composefs-rs `cfsctl images` prints
//! (comfy-table's UTF-8 "full" style):
//!
//! ```text
//! ┌───────┬──────────────┐
//! │ NAME  ┆ DIGEST       │
//! ╞═══════╪══════════════╡
//! │ myimg ┆ 2bf43e7629a1 │
//! ├╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
//! │ other ┆ 0123456789ab │
//! └───────┴──────────────┘
//! ```
//!
//! Each cell is padded by one space on both sides; a column is as wide as
//! its widest cell (in characters). Cells are single-line.
//!
//! That is for people: when standard output is not a terminal,
//! [`render_for_stdout`] prints plain columns instead (two spaces between
//! columns, no trailing blanks), which `cut`, `awk` and `grep` handle:
//!
//! ```text
//! NAME   DIGEST
//! myimg  2bf43e7629a1
//! ```

use std::io::IsTerminal;

/// [`render`] on a terminal, [`render_plain`] otherwise.
pub(crate) fn render_for_stdout(header: &[&str], rows: &[Vec<String>]) -> String {
    if std::io::stdout().is_terminal() {
        render(header, rows)
    } else {
        render_plain(header, rows)
    }
}

/// Plain columns: each cell padded to its column's width, two spaces
/// between columns, trailing blanks trimmed.
pub(crate) fn render_plain(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - width(cell)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders `header` and `rows` (each as long as `header`).
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let rule = |left: char, fill: char, mid: char, right: char| {
        let mut line = String::new();
        line.push(left);
        for (i, w) in widths.iter().enumerate() {
            if i > 0 {
                line.push(mid);
            }
            line.extend(std::iter::repeat_n(fill, w + 2));
        }
        line.push(right);
        line.push('\n');
        line
    };
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::from("│");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                line.push('┆');
            }
            line.push(' ');
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - width(cell) + 1));
        }
        line.push_str("│\n");
        line
    };
    let mut out = rule('┌', '─', '┬', '┐');
    out.push_str(&line(&mut header.iter().copied()));
    out.push_str(&rule('╞', '═', '╪', '╡'));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push_str(&rule('├', '╌', '┼', '┤'));
        }
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out.push_str(&rule('└', '─', '┴', '┘'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_reference() {
        // Output of composefs-rs 0.9.4 `cfsctl images` for two refs.
        let expected = "\
┌────────────────────┬──────────────┐
│ NAME               ┆ DIGEST       │
╞════════════════════╪══════════════╡
│ myimg              ┆ b0b9a54469b7 │
├╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
│ a/much/longer/name ┆ b0b9a54469b7 │
└────────────────────┴──────────────┘
";
        let rows = vec![
            vec!["myimg".to_string(), "b0b9a54469b7".to_string()],
            vec!["a/much/longer/name".to_string(), "b0b9a54469b7".to_string()],
        ];
        assert_eq!(render(&["NAME", "DIGEST"], &rows), expected);
    }

    #[test]
    fn plain_columns() {
        let rows = vec![
            vec!["myimg".to_string(), "b0b9a54469b7".to_string()],
            vec!["a/much/longer/name".to_string(), "b0".to_string()],
        ];
        assert_eq!(
            render_plain(&["NAME", "DIGEST"], &rows),
            "NAME                DIGEST\nmyimg               b0b9a54469b7\na/much/longer/name  b0\n"
        );
    }

    #[test]
    fn header_wider_than_cells() {
        let rows = vec![vec!["a".to_string(), "b".to_string()]];
        assert_eq!(
            render(&["NAME", "DIGEST"], &rows),
            "┌──────┬────────┐\n│ NAME ┆ DIGEST │\n╞══════╪════════╡\n│ a    ┆ b      │\n└──────┴────────┘\n"
        );
    }
}
