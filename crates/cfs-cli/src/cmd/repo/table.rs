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
    fn header_wider_than_cells() {
        let rows = vec![vec!["a".to_string(), "b".to_string()]];
        assert_eq!(
            render(&["NAME", "DIGEST"], &rows),
            "┌──────┬────────┐\n│ NAME ┆ DIGEST │\n╞══════╪════════╡\n│ a    ┆ b      │\n└──────┴────────┘\n"
        );
    }
}
