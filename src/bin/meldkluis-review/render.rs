//! The library's views as text, in one language. Everything that came from
//! a report or an inbox is `Untrusted`: a line of it is neutralised, and a
//! text of several lines is printed inside a gutter (`  │ `), so a melder's
//! words can never pose as the program's own heading or label.

use std::fmt::Write as _;

use meldkluis::format::envelope::{Kind, Status};
use meldkluis::review::deadlines::Urgency;
use meldkluis::review::i18n::{Lang, Words};
use meldkluis::review::import::ImportSummary;
use meldkluis::review::stats::Stats;
use meldkluis::review::untrusted::Untrusted;
use meldkluis::review::views::{
    CaseStatus, CaseSummary, CaseView, Category, Content, MessageView, Readable,
};

use crate::text::{self, Text, fill};

/// The gutter in front of every line of untrusted text.
pub const GUTTER: &str = "  │ ";
/// The indent of a case's second and third line in `list`.
const INDENT: &str = "          ";
/// How many characters of the subject `list` shows.
const SUBJECT_CHARS: usize = 72;

/// The overview: three lines a case, most urgent first; the first line
/// starts with the short id (scripts take `cut -c1-8`).
pub fn list(cases: &[CaseSummary], queued: usize, lang: Lang) -> String {
    let (t, w) = (text::of(lang), lang.words());
    let mut out = String::new();
    if cases.is_empty() {
        let _ = writeln!(out, "{}", t.no_cases);
    }
    for (n, case) in cases.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{}  {} · {} · {}",
            case.short_id(),
            fill(t.received_on, &[&w.day(case.received)]),
            w.status(case.status),
            w.category(case.category.as_ref()),
        );
        let subject = if case.subject.is_empty() {
            t.no_subject.to_string()
        } else {
            case.subject.excerpt(SUBJECT_CHARS)
        };
        let _ = writeln!(out, "{INDENT}│ {subject}");
        let mut last = urgency(&case.urgency, w);
        if case.unread > 0 {
            last.push_str(" · ");
            last.push_str(t.unread);
        }
        if case.awaiting_answer {
            last.push_str(" · ");
            last.push_str(t.awaiting_answer);
        }
        let _ = writeln!(out, "{INDENT}{last}");
    }
    if queued > 0 {
        let _ = writeln!(out, "\n{}", fill(t.queued_count, &[&queued]));
    }
    out
}

/// A deadline as a date with its word: "binnenkort: ontvangst bevestigen
/// uiterlijk 8 december 2026"; "termijnen gehaald", "gesloten".
pub fn urgency(urgency: &Urgency, w: &Words) -> String {
    match urgency {
        Urgency::Done | Urgency::Closed => w.urgency_word(urgency).to_string(),
        _ => format!("{}: {}", w.urgency_word(urgency), w.urgency_detail(urgency)),
    }
}

/// One line per open deadline, most urgent first.
pub fn deadlines(cases: &[CaseSummary], lang: Lang) -> String {
    let (t, w) = (text::of(lang), lang.words());
    if cases.is_empty() {
        return format!("{}\n", t.no_open_deadlines);
    }
    cases
        .iter()
        .map(|c| format!("{}  {}\n", c.short_id(), urgency(&c.urgency, w)))
        .collect()
}

fn status_word(status: Status, w: &Words) -> &'static str {
    w.status(match status {
        Status::Acknowledged => CaseStatus::Acknowledged,
        Status::InProgress => CaseStatus::InProgress,
        Status::FeedbackGiven => CaseStatus::FeedbackGiven,
        Status::Closed => CaseStatus::Closed,
    })
}

fn kind_word(kind: Option<Kind>, t: &Text) -> &'static str {
    match kind {
        Some(Kind::Report) => t.kind_report,
        Some(Kind::Question) => t.kind_question,
        Some(Kind::FollowUp) => t.kind_follow_up,
        Some(Kind::Reply) => t.kind_reply,
        Some(Kind::Evaluation) => t.kind_evaluation,
        None => t.kind_unknown,
    }
}

/// The kind to name: the server files an evaluation as a follow-up (it
/// cannot tell them apart), the envelope's scores say what it is.
fn shown_kind(message: &MessageView) -> Option<Kind> {
    match &message.content {
        Content::Readable(r) if r.evaluation.is_some() => Some(Kind::Evaluation),
        _ => message.kind,
    }
}

/// Untrusted text of any length, each line behind the gutter.
fn gutter(out: &mut String, text: &Untrusted) {
    for line in text.lines() {
        let _ = writeln!(out, "{}", format!("{GUTTER}{line}").trim_end());
    }
}

/// One whole case: its facts, then every message numbered as exported
/// attachments are (`02-…` is message 2's), then the private notes.
pub fn case(view: &CaseView, lang: Lang) -> String {
    let (t, w) = (text::of(lang), lang.words());
    let summary = &view.summary;
    let mut out = String::new();
    let line = |out: &mut String, template: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{}", fill(template, &[value]));
    };
    line(&mut out, t.case_heading, &summary.id.to_hex());
    line(&mut out, t.label_received, &w.day(summary.received));
    line(&mut out, t.label_status, &w.status(summary.status));
    line(
        &mut out,
        t.label_category,
        &w.category(summary.category.as_ref()),
    );
    if view.counsellors.len() > 1 {
        let names: Vec<String> = view.counsellors.iter().map(Untrusted::line).collect();
        line(&mut out, t.label_counsellors, &names.join(", "));
    }
    let done = |day: Option<meldkluis::format::day::Day>| {
        day.map(|d| fill(t.done_on, &[&w.day(d)]))
            .unwrap_or_default()
    };
    if let (Some(asked), false) = (summary.asked, summary.question) {
        let _ = writeln!(out, "{}", w.began_as_question(asked));
    }
    // A question has no statutory terms: the "now" line says so.
    if !summary.question {
        line(
            &mut out,
            t.label_acknowledge_by,
            &format!(
                "{}{}",
                w.day(summary.deadlines.acknowledge_by),
                done(view.acknowledged)
            ),
        );
        line(
            &mut out,
            t.label_feedback_by,
            &format!(
                "{}{}",
                w.day(summary.deadlines.feedback_by),
                done(view.feedback)
            ),
        );
    }
    if let Some(closed) = view.closed {
        line(&mut out, t.label_closed, &w.day(closed));
    }
    line(&mut out, t.label_now, &urgency(&summary.urgency, w));
    if !view.can_reply {
        let _ = writeln!(out, "{}", t.cannot_reply);
    }
    if let Some(introducer) = &view.pending_introduction {
        let _ = writeln!(out, "\n!! {}", w.pending_introduction);
        gutter(&mut out, &introducer.name);
        gutter(&mut out, &introducer.organisation);
        let _ = writeln!(out, "  {}", introducer.fingerprint);
        let _ = writeln!(
            out,
            "{}",
            fill(t.accept_introduction_hint, &[&view.summary.short_id()])
        );
    }
    if let Some(contact) = view.contact() {
        let _ = writeln!(out, "{}", t.label_contact);
        gutter(&mut out, contact);
    }
    for message in &view.messages {
        if message.gap_before {
            let _ = writeln!(out, "\n!! {}", w.message_missing_before);
        }
        let _ = writeln!(
            out,
            "\n{}",
            fill(
                t.message_heading,
                &[
                    &message.number,
                    &kind_word(shown_kind(message), t),
                    &w.author(&message.author),
                    &w.day(message.day),
                    &if message.seen { "" } else { t.message_new },
                ]
            )
        );
        if let Some(said) = w.authenticity(message.authenticity) {
            let _ = writeln!(out, "[{said}]");
        }
        if message.forwarded {
            let _ = writeln!(out, "[{}]", w.forwarded_note);
        }
        if message.unseen_replies > 0 {
            let said = w
                .unseen_replies
                .replace("{0}", &message.unseen_replies.to_string());
            let _ = writeln!(out, "[{said}]");
        }
        match &message.content {
            Content::Readable(readable) => write_readable(&mut out, readable, lang),
            Content::ForMelderOnly => {
                let _ = writeln!(out, "{}", t.for_melder_only);
            }
            Content::WaitingForIntroduction => {
                let _ = writeln!(out, "{}", w.waiting_for_introduction);
            }
            Content::Unreadable(why) => {
                let _ = writeln!(out, "{}", fill(t.unreadable_message, &[why]));
            }
        }
    }
    for note in &view.notes {
        let _ = writeln!(out, "\n{}", fill(t.note_heading, &[&w.day(note.day)]));
        gutter(&mut out, &note.text);
    }
    out
}

fn write_readable(out: &mut String, message: &Readable, lang: Lang) {
    let (t, w) = (text::of(lang), lang.words());
    if let Some(status) = message.status {
        let _ = writeln!(out, "{}", fill(t.status_set, &[&status_word(status, w)]));
    }
    if message.category.is_some() {
        let _ = writeln!(
            out,
            "{}",
            fill(t.label_category, &[&w.category(message.category.as_ref())])
        );
    }
    if let Some(evaluation) = message.evaluation {
        let _ = writeln!(
            out,
            "{}",
            fill(
                t.evaluation_scores,
                &[&evaluation.process, &evaluation.heard]
            )
        );
    }
    gutter(out, &message.text);
    if !message.introduces.is_empty() {
        let _ = writeln!(out, "{}", w.introduces_heading);
        for card in &message.introduces {
            gutter(out, &card.name);
            gutter(out, &card.organisation);
            let _ = writeln!(out, "  {}", card.fingerprint);
        }
    }
    for attachment in &message.attachments {
        let mut line = fill(
            t.attachment,
            &[
                &attachment.export_name,
                &format!("«{}»", attachment.name),
                &attachment.media_type,
                &size(attachment.size, lang),
            ],
        );
        if let Some(damage) = &attachment.damage {
            line.push_str(&fill(t.attachment_damaged, &[&w.damage(damage)]));
        }
        let _ = writeln!(out, "{line}");
    }
}

/// A whole number with the language's thousands separator: 1.048.576.
pub fn number(n: u64, lang: Lang) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(text::of(lang).thousands_separator);
        }
        out.push(c);
    }
    out
}

/// A file size, one convention everywhere: exact bytes, and for 1 KiB and
/// more the readable size first: "1,0 MiB (1.048.576 bytes)".
pub fn size(bytes: u64, lang: Lang) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{} bytes", number(bytes, lang));
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let readable =
        format!("{value:.1}").replace('.', &text::of(lang).decimal_separator.to_string());
    format!("{readable} {} ({} bytes)", UNITS[unit], number(bytes, lang))
}

/// What an import brought: a line for standard output and, when
/// attachments are damaged, a warning for standard error.
pub fn import_summary(summary: &ImportSummary, lang: Lang) -> (String, Option<String>) {
    let t = text::of(lang);
    let mut line = fill(
        t.imported,
        &[
            &summary.new_cases,
            &summary.new_messages,
            &summary.confirmed,
        ],
    );
    if summary.attachments > 0 {
        line.push(' ');
        line.push_str(&fill(t.imported_attachments, &[&summary.attachments]));
    }
    if summary.unreadable > 0 {
        line.push(' ');
        line.push_str(&fill(t.imported_unreadable, &[&summary.unreadable]));
    }
    if let Some(fingerprint) = &summary.server_key_pinned {
        line.push('\n');
        line.push_str(&lang.words().server_key_pinned.replace("{0}", fingerprint));
    }
    let damaged = (summary.damaged_attachments > 0)
        .then(|| fill(t.imported_damaged, &[&summary.damaged_attachments]));
    let not_genuine = (summary.not_genuine > 0).then(|| {
        lang.words()
            .not_genuine_arrived
            .replace("{0}", &summary.not_genuine.to_string())
    });
    let warning = match (damaged, not_genuine) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    };
    (line, warning)
}

/// The figures for the annual report, as a table.
pub fn stats(figures: &Stats, lang: Lang) -> String {
    let (t, w) = (text::of(lang), lang.words());
    let mut out = String::new();
    let row = |out: &mut String, key: &str, n: usize| {
        let _ = writeln!(out, "  {key:<40} {n:>6}");
    };
    let _ = writeln!(out, "{}", fill(t.stats_cases, &[&figures.cases]));
    let _ = writeln!(
        out,
        "{}",
        fill(
            t.stats_questions,
            &[&figures.questions, &figures.questions_turned_into_reports]
        )
    );
    let _ = writeln!(out, "\n{}", t.stats_by_category);
    for (code, n) in &figures.by_category {
        let category = Category::parse(code);
        row(&mut out, &w.category(Some(&category)), *n);
    }
    let _ = writeln!(out, "\n{}", t.stats_by_month);
    for (month, n) in &figures.by_month {
        row(&mut out, &month_words(month, w), *n);
    }
    let _ = writeln!(out, "\n{}", t.stats_by_status);
    for (status, n) in &figures.by_status {
        let word = match *status {
            "acknowledged" => w.status(CaseStatus::Acknowledged),
            "in-progress" => w.status(CaseStatus::InProgress),
            "feedback-given" => w.status(CaseStatus::FeedbackGiven),
            "closed" => w.status(CaseStatus::Closed),
            _ => w.status(CaseStatus::Received),
        };
        row(&mut out, word, *n);
    }
    let share = |(part, whole): (usize, usize)| {
        if whole == 0 {
            t.stats_none.to_string()
        } else {
            format!("{:.1} %", 100.0 * part as f64 / whole as f64)
                .replace('.', &t.decimal_separator.to_string())
        }
    };
    let average = |sum: u64| {
        if figures.evaluations == 0 {
            t.stats_none.to_string()
        } else {
            format!("{:.2}", sum as f64 / figures.evaluations as f64)
                .replace('.', &t.decimal_separator.to_string())
        }
    };
    let _ = writeln!(out, "\n{}", t.stats_deadlines);
    let (a, b) = figures.acknowledged_in_time;
    let _ = writeln!(
        out,
        "  {}",
        fill(
            t.stats_acknowledged_in_time,
            &[&a, &b, &share(figures.acknowledged_in_time)]
        )
    );
    let (a, b) = figures.feedback_in_time;
    let _ = writeln!(
        out,
        "  {}",
        fill(
            t.stats_feedback_in_time,
            &[&a, &b, &share(figures.feedback_in_time)]
        )
    );
    let _ = writeln!(
        out,
        "\n{}",
        fill(t.stats_evaluations, &[&figures.evaluations])
    );
    let _ = writeln!(
        out,
        "  {}",
        fill(t.stats_process, &[&average(figures.process_score_sum)])
    );
    let _ = writeln!(
        out,
        "  {}",
        fill(t.stats_heard, &[&average(figures.heard_score_sum)])
    );
    out
}

/// `2026-12` as "december 2026".
fn month_words(key: &str, w: &Words) -> String {
    key.split_once('-')
        .and_then(|(year, month)| {
            let month: usize = month.parse().ok()?;
            Some(format!("{} {year}", w.months.get(month.checked_sub(1)?)?))
        })
        .unwrap_or_else(|| Untrusted::new(key).line())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_one_convention_per_language() {
        assert_eq!(size(0, Lang::Nl), "0 bytes");
        assert_eq!(size(1023, Lang::Nl), "1.023 bytes");
        assert_eq!(size(5000, Lang::Nl), "4,9 KiB (5.000 bytes)");
        assert_eq!(size(1_048_576, Lang::Nl), "1,0 MiB (1.048.576 bytes)");
        assert_eq!(size(1_048_576, Lang::En), "1.0 MiB (1,048,576 bytes)");
    }
}
