//! Text that came from a report or an inbox is hostile input on the
//! counsellor's laptop. It crosses from the library to the front ends only
//! as [`Untrusted`], whose every way out neutralises it, so no front end can
//! forget to.

use std::fmt;

use super::terminal::{clean, clean_line};

/// Text written by a melder, another counsellor, or anyone who could forge
/// an inbox. Shown only through [`Untrusted::line`], [`Untrusted::lines`]
/// or `Display` (one line); [`Untrusted::raw`] is for searching and for
/// formats that escape on their own (CSV, PDF text objects).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Untrusted(String);

impl Untrusted {
    pub fn new(text: impl Into<String>) -> Self {
        Untrusted(text.into())
    }

    /// One line: control, bidi and invisible characters shown as `\u{…}`,
    /// newlines and tabs as `\n` and `\t`.
    pub fn line(&self) -> String {
        clean_line(&self.0)
    }

    /// The text's lines, each neutralised. A front end prints them inside
    /// a frame of its own (an indent, a box), so a line can never pose as
    /// the program's own heading.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .split('\n')
            .map(|line| clean(line).replace('\t', "    "))
    }

    /// The first `max` characters as one neutralised line, with `…` when cut.
    pub fn excerpt(&self, max: usize) -> String {
        let flat: String = self.0.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cut: String = flat.chars().take(max).collect();
        if flat.chars().count() > max {
            cut.push('…');
        }
        clean_line(&cut)
    }

    /// The text as it arrived. Never print this to a terminal or a window.
    pub fn raw(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// Debug shows only the length: untrusted text may be a secret report.
impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Untrusted({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_out_is_neutralised() {
        let hostile = Untrusted::new("a\u{1b}[2J\nb\u{202e}c\u{e0041}\u{ad}");
        assert_eq!(
            hostile.line(),
            "a\\u{001b}[2J\\nb\\u{202e}c\\u{e0041}\\u{00ad}"
        );
        assert_eq!(hostile.to_string(), hostile.line());
        let lines: Vec<String> = hostile.lines().collect();
        assert_eq!(lines, ["a\\u{001b}[2J", "b\\u{202e}c\\u{e0041}\\u{00ad}"]);
        assert_eq!(format!("{hostile:?}"), "Untrusted(17 bytes)");
    }

    #[test]
    fn excerpt_folds_whitespace_and_cuts() {
        let text = Untrusted::new("Pesterijen\n\nop de   afdeling Financiën");
        assert_eq!(text.excerpt(100), "Pesterijen op de afdeling Financiën");
        assert_eq!(text.excerpt(10), "Pesterijen…");
    }
}
