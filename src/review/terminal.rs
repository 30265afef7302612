//! Text from reports is hostile input on the counsellor's laptop: escape
//! sequences could rewrite the terminal, bidirectional overrides could make
//! text read differently from what it is. Everything printed goes through
//! `clean`, which shows such characters as visible `\u{…}` notation.

/// Shows control, bidi and invisible formatting characters as `\u{…}`; keeps
/// newlines and tabs.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || c == '\t' {
            out.push(c);
        } else if is_dangerous(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Like `clean`, for one-line fields: newlines and tabs are shown too.
pub fn clean_line(text: &str) -> String {
    clean(text).replace('\n', "\\n").replace('\t', "\\t")
}

fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
            // soft hyphen, Mongolian vowel separator, tag characters: invisible
            | '\u{00ad}' | '\u{180e}' | '\u{e0000}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralises_escapes_and_overrides() {
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{001b}[2Jb");
        assert_eq!(clean("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(clean("r\u{7}\u{9b}"), "r\\u{0007}\\u{009b}");
        assert_eq!(clean("regel 1\nregel 2\tok"), "regel 1\nregel 2\tok");
        assert_eq!(clean_line("a\nb\r"), "a\\nb\\u{000d}");
        assert_eq!(clean("gewoon tekst — é ü 漢字"), "gewoon tekst — é ü 漢字");
    }
}
