//! A line diff of two texts, for showing what a change would do.
//!
//! The diff is a longest common subsequence of lines: the lines both texts share, in
//! order, are kept as they are, and everything else is a removal from the old text or
//! an addition from the new one. Where lines change in place, the removals come
//! before the additions, as in `diff -u`. Rendered, each line gets a two-character
//! prefix: `- ` removed, `+ ` added, two spaces unchanged.
//!
//! The common head and tail are matched first, so the quadratic table only covers
//! the part that changed; a change too large for the table ([`MAX_TABLE_CELLS`]) is
//! shown as every old line removed and every new line added, which is correct if not
//! minimal. Deliberately not here: hunks and context trimming (the texts diffed are
//! job documents, short enough to show whole), and character-level highlighting.

use std::fmt::Write as _;

/// Largest LCS table (old lines × new lines of the changed middle) computed.
pub const MAX_TABLE_CELLS: usize = 4_000_000;

/// One line of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// In both texts.
    Same(&'a str),
    /// Only in the old text.
    Removed(&'a str),
    /// Only in the new text.
    Added(&'a str),
}

/// The lines of `old` and `new` as a diff, in order.
pub fn diff<'a>(old: &'a str, new: &'a str) -> Vec<Line<'a>> {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old_middle = &old[head..old.len() - tail];
    let new_middle = &new[head..new.len() - tail];

    let mut lines: Vec<Line<'a>> = old[..head].iter().map(|l| Line::Same(l)).collect();
    lines.extend(middle(old_middle, new_middle));
    lines.extend(old[old.len() - tail..].iter().map(|l| Line::Same(l)));
    lines
}

/// The diff as text: `- `, `+ ` or two spaces before each line, newline-terminated
/// (an empty line is just its marker, or nothing when unchanged).
pub fn render(lines: &[Line<'_>]) -> String {
    let mut out = String::new();
    for line in lines {
        let (prefix, text) = match line {
            Line::Same(text) => (' ', text),
            Line::Removed(text) => ('-', text),
            Line::Added(text) => ('+', text),
        };
        if text.is_empty() {
            // No trailing blanks for an empty line.
            let _ = writeln!(out, "{}", prefix.to_string().trim());
        } else {
            let _ = writeln!(out, "{prefix} {text}");
        }
    }
    out
}

/// The diff of the part between the common head and tail.
fn middle<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Line<'a>> {
    let (n, m) = (old.len(), new.len());
    if n == 0 || m == 0 || n.saturating_mul(m) > MAX_TABLE_CELLS {
        let removed = old.iter().map(|l| Line::Removed(l));
        return removed.chain(new.iter().map(|l| Line::Added(l))).collect();
    }
    // lcs[i * (m + 1) + j]: length of the longest common subsequence of old[i..] and
    // new[j..]; filled from the end so the walk below can go forward.
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if old[i] == new[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let mut lines = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if old[i] == new[j] {
            lines.push(Line::Same(old[i]));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
            lines.push(Line::Removed(old[i]));
            i += 1;
        } else {
            lines.push(Line::Added(new[j]));
            j += 1;
        }
    }
    lines.extend(old[i..].iter().map(|l| Line::Removed(l)));
    lines.extend(new[j..].iter().map(|l| Line::Added(l)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_texts_have_no_changes() {
        let text = "name: a\nschedule: '@daily'\n";
        let lines = diff(text, text);
        assert!(lines.iter().all(|l| matches!(l, Line::Same(_))));
        assert_eq!(render(&lines), "  name: a\n  schedule: '@daily'\n");
        assert!(diff("", "").is_empty());
    }

    #[test]
    fn an_insertion() {
        let lines = diff("a\nb\nd\n", "a\nb\nc\nd\n");
        assert_eq!(
            lines,
            [
                Line::Same("a"),
                Line::Same("b"),
                Line::Added("c"),
                Line::Same("d")
            ]
        );
        assert_eq!(render(&lines), "  a\n  b\n+ c\n  d\n");
        assert_eq!(render(&diff("", "x\n")), "+ x\n");
    }

    #[test]
    fn a_deletion() {
        let lines = diff("a\nb\nc\n", "a\nc\n");
        assert_eq!(
            lines,
            [Line::Same("a"), Line::Removed("b"), Line::Same("c")]
        );
        assert_eq!(render(&diff("x\ny\n", "")), "- x\n- y\n");
    }

    #[test]
    fn a_change_removes_before_it_adds() {
        let lines = diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(render(&lines), "  a\n- b\n+ B\n  c\n");
    }

    #[test]
    fn the_common_lines_are_kept_between_changes() {
        let old = "k\nx1\ny\nz\nx2\nw\n";
        let new = "k\ny\nq\nz\nw\nv\n";
        let lines = diff(old, new);
        let same: Vec<&str> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Same(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert_eq!(same, ["k", "y", "z", "w"]);
        // Replaying the diff gives back both texts.
        let replay = |keep_removed: bool| -> Vec<&str> {
            lines
                .iter()
                .filter_map(|l| match (l, keep_removed) {
                    (Line::Same(s), _) => Some(*s),
                    (Line::Removed(s), true) | (Line::Added(s), false) => Some(*s),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(replay(true), old.lines().collect::<Vec<_>>());
        assert_eq!(replay(false), new.lines().collect::<Vec<_>>());
    }

    #[test]
    fn a_change_too_large_for_the_table_is_still_correct() {
        let old: String = (0..2_100).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..2_100).map(|i| format!("new {i}\n")).collect();
        let lines = diff(&old, &new);
        assert_eq!(lines.len(), 4_200);
        assert_eq!(lines[0], Line::Removed("old 0"));
        assert_eq!(lines[2_100], Line::Added("new 0"));
    }
}
