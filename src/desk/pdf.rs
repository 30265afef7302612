//! A case as a PDF for handing over: a cover that says what it is, then
//! every readable message in order. Standard fonts only (Helvetica, WinAnsi
//! encoding), so nothing is embedded and nothing outside this program is
//! read; characters outside that encoding print as `?`, and untrusted text
//! is neutralised the same way as on screen.

use std::path::{Path, PathBuf};

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::format::day::Day;
use crate::format::ids::CaseId;
use crate::review::export::write_new_file;
use crate::review::i18n::Lang;
use crate::review::untrusted::Untrusted;
use crate::review::vault::Vault;
use crate::review::views::{self, CaseView, Content as MessageContent};

const PAGE: (f32, f32) = (595.0, 842.0); // A4 in points
const MARGIN: f32 = 56.0;
const LINE: f32 = 14.0;
const WRAP: usize = 92;

/// One line of the document, with its style.
enum Line {
    Title(String),
    Heading(String),
    Text(String),
    Gap,
}

/// Writes `zaak-<id>.pdf` into `dir` (never overwriting) and returns its path.
pub fn export(
    vault: &Vault,
    case: &CaseId,
    with_contact: bool,
    dir: &Path,
    lang: Lang,
    today: Day,
) -> Result<PathBuf, String> {
    let words = lang.words();
    let view = views::case(vault, case, today).map_err(|e| words.error(&e))?;
    let bytes = render(&view, vault, with_contact, lang, today);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", super::display_path(dir)))?;
    let name = format!("zaak-{}.pdf", view.summary.short_id());
    write_new_file(dir, &name, &bytes).map_err(|e| words.error(&e))
}

/// The PDF's bytes.
pub fn render(
    view: &CaseView,
    vault: &Vault,
    with_contact: bool,
    lang: Lang,
    today: Day,
) -> Vec<u8> {
    let words = lang.words();
    let texts = super::text::texts(lang);
    let summary = &view.summary;
    let mut lines = vec![
        Line::Title(texts.pdf_title.into()),
        Line::Gap,
        Line::Heading(format!(
            "{} {} — {}",
            texts.case_heading,
            summary.id.to_hex(),
            summary.subject.excerpt(50)
        )),
        Line::Text(format!("{} {}", texts.pdf_made_on, words.day(today))),
        Line::Text(format!(
            "{}, {}",
            Untrusted::new(vault.card.name.clone()).line(),
            Untrusted::new(vault.card.organisation.clone()).line()
        )),
        Line::Gap,
    ];
    push_wrapped(&mut lines, texts.pdf_cover);
    lines.push(Line::Gap);
    lines.push(Line::Text(format!(
        "{} {} · {} · {}",
        texts.received_on,
        words.day(summary.received),
        words.category(summary.category.as_ref()),
        words.status(summary.status)
    )));
    lines.push(Line::Text(format!(
        "{} {} · {} {}",
        texts.acknowledge_by,
        words.day(summary.deadlines.acknowledge_by),
        texts.feedback_by,
        words.day(summary.deadlines.feedback_by)
    )));
    match (with_contact, view.contact()) {
        (true, Some(contact)) => {
            lines.push(Line::Heading(texts.contact_details.into()));
            for line in contact.lines() {
                push_wrapped(&mut lines, &line);
            }
        }
        (false, Some(_)) => lines.push(Line::Text(texts.pdf_contact_left_out.into())),
        _ => {}
    }
    for message in &view.messages {
        let kind = texts.kind(message.kind);
        lines.push(Line::Gap);
        lines.push(Line::Heading(format!(
            "{} {} · {} · {} · {}",
            texts.message_heading,
            message.number,
            words.day(message.day),
            kind,
            words.author(&message.author)
        )));
        match &message.content {
            MessageContent::Readable(readable) => {
                for line in readable.text.lines() {
                    push_wrapped(&mut lines, &line);
                }
                for a in &readable.attachments {
                    lines.push(Line::Text(format!(
                        "[{}] {} ({})",
                        texts.attachments,
                        a.export_name,
                        super::widgets::size(a.size, lang)
                    )));
                }
            }
            MessageContent::ForMelderOnly => lines.push(Line::Text(texts.for_melder_only.into())),
            MessageContent::WaitingForIntroduction => {
                lines.push(Line::Text(lang.words().waiting_for_introduction.into()))
            }
            MessageContent::Unreadable(why) => {
                lines.push(Line::Text(format!("{} {}", texts.unreadable, why.line())))
            }
        }
    }
    typeset(&lines)
}

fn push_wrapped(lines: &mut Vec<Line>, text: &str) {
    let mut current = String::new();
    for word in text.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > WRAP {
            lines.push(Line::Text(std::mem::take(&mut current)));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        // A single overlong word is cut.
        let mut word: String = word.to_string();
        while word.chars().count() > WRAP {
            let head: String = word.chars().take(WRAP).collect();
            lines.push(Line::Text(head));
            word = word.chars().skip(WRAP).collect();
        }
        current.push_str(&word);
    }
    lines.push(Line::Text(current));
}

/// WinAnsi bytes for Helvetica; anything else becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

fn typeset(lines: &[Line]) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let mut next = 5;
    let mut pages: Vec<Content> = Vec::new();
    let mut content = Content::new();
    let mut y = PAGE.1 - MARGIN;
    content.begin_text();
    for line in lines {
        let (font, size, height) = match line {
            Line::Title(_) => (Name(b"F2"), 18.0, LINE * 1.8),
            Line::Heading(_) => (Name(b"F2"), 11.0, LINE * 1.2),
            Line::Text(_) => (Name(b"F1"), 10.0, LINE),
            Line::Gap => (Name(b"F1"), 10.0, LINE * 0.6),
        };
        if y - height < MARGIN {
            content.end_text();
            pages.push(std::mem::replace(&mut content, Content::new()));
            content.begin_text();
            y = PAGE.1 - MARGIN;
        }
        y -= height;
        let text = match line {
            Line::Title(t) | Line::Heading(t) | Line::Text(t) => t,
            Line::Gap => continue,
        };
        content.set_font(font, size);
        content.set_text_matrix([1.0, 0.0, 0.0, 1.0, MARGIN, y]);
        content.show(Str(&win_ansi(text)));
    }
    content.end_text();
    pages.push(content);

    let mut pdf = Pdf::new();
    let page_ids: Vec<(Ref, Ref)> = pages
        .iter()
        .map(|_| {
            let ids = (Ref::new(next), Ref::new(next + 1));
            next += 2;
            ids
        })
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(page_ids.len() as i32);
    for ((page_id, content_id), content) in page_ids.iter().zip(pages) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(*content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), regular);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(*content_id, &content.finish());
    }
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_ansi_keeps_dutch_and_replaces_the_rest() {
        assert_eq!(win_ansi("Financiën — één"), b"Financi\xebn \x97 \xe9\xe9n");
        assert_eq!(win_ansi("漢"), b"?");
    }

    #[test]
    fn long_text_flows_over_pages() {
        let mut lines = vec![Line::Title("T".into())];
        for i in 0..200 {
            lines.push(Line::Text(format!("regel {i}")));
        }
        let pdf = typeset(&lines);
        assert!(pdf.starts_with(b"%PDF-"));
        let pages = pdf
            .windows(b"/Type /Page\n".len())
            .filter(|w| *w == b"/Type /Page\n")
            .count();
        let count = String::from_utf8_lossy(&pdf).matches("/Type /Page").count();
        assert!(count >= 4, "{count} {pages}");
    }
}
