//! What the reviewer's subcommands do, as functions on an open vault. The
//! binary only parses arguments, asks for the passphrase and prints. `today`
//! is a parameter wherever deadlines matter, so tests run on a fixed clock.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::format::bundle::{Outbox, OutboxKind};
use crate::format::day::Day;
use crate::format::envelope::{Author, Envelope, Kind, Status};
use crate::format::ids::{CaseId, MessageId};

use super::attachment::{self, Damage, DecryptError};
use super::deadlines::{Duty, Urgency, deadlines, urgency};
use super::error::ReviewError;
use super::export::{sanitize_file_name, write_new_file, write_new_file_with};
use super::stats::current_status;
use super::terminal::{clean, clean_line};
use super::vault::{CaseRecord, MessageRecord, Note, Pending, Vault};

/// The language of a standard text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

/// The standard acknowledgement, to send as is or to edit.
pub fn acknowledgement_template(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => include_str!("templates/acknowledgement.nl.txt"),
        Lang::En => include_str!("templates/acknowledgement.en.txt"),
    }
}

/// The standard closing message, which invites the melder's evaluation.
pub fn closing_template(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => include_str!("templates/closing.nl.txt"),
        Lang::En => include_str!("templates/closing.en.txt"),
    }
}

pub use super::import::{ImportSummary, import, import_from};

/// Finds the case whose id starts with `prefix`.
pub fn resolve_case(vault: &Vault, prefix: &str) -> Result<CaseId, ReviewError> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        return Err(ReviewError::NoSuchCase(prefix));
    }
    let mut matches = vault
        .state
        .cases
        .keys()
        .filter(|id| id.to_hex().starts_with(&prefix));
    match (matches.next(), matches.next()) {
        (Some(id), None) => Ok(*id),
        (None, _) => Err(ReviewError::NoSuchCase(clean_line(&prefix))),
        (Some(_), Some(_)) => Err(ReviewError::AmbiguousCase(clean_line(&prefix))),
    }
}

fn urgency_label(urgency: &Urgency) -> String {
    let duty = |d: &Duty| match d {
        Duty::Acknowledge => "ontvangst bevestigen / acknowledge",
        Duty::Feedback => "terugkoppelen / feedback",
    };
    match urgency {
        Urgency::Overdue { duty: d, since } => {
            format!("TE LAAT / OVERDUE: {} (uiterlijk / due {since})", duty(d))
        }
        Urgency::Soon { duty: d, by } => {
            format!("BINNENKORT / SOON: {} uiterlijk / by {by}", duty(d))
        }
        Urgency::Pending { duty: d, by } => format!("{} uiterlijk / by {by}", duty(d)),
        Urgency::Done => "termijnen gehaald / deadlines met".into(),
        Urgency::Closed => "gesloten / closed".into(),
    }
}

/// Cases sorted by urgency (overdue first), open cases before closed ones.
fn by_urgency(vault: &Vault, today: Day) -> Vec<(CaseId, &CaseRecord, Urgency)> {
    let mut cases: Vec<_> = vault
        .state
        .cases
        .iter()
        .map(|(id, case)| (*id, case, urgency(case, today)))
        .collect();
    cases.sort_by_key(|(id, case, urgency)| (urgency.sort_key(), case.received, *id));
    cases
}

/// One line per case, most urgent first.
pub fn list(vault: &Vault, today: Day) -> String {
    let cases = by_urgency(vault, today);
    if cases.is_empty() {
        return "Geen zaken. / No cases.\n".into();
    }
    let mut out = String::new();
    for (id, case, urgency) in cases {
        let waiting = case.messages.last().is_some_and(|m| m.author == "melder");
        let _ = writeln!(
            out,
            "{}  {}  {:<14}  {:<24}  {}{}",
            &id.to_hex()[..8],
            case.received,
            current_status(case),
            case.category
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".into()),
            urgency_label(&urgency),
            if waiting {
                "  · nieuw bericht / new message"
            } else {
                ""
            }
        );
    }
    if !vault.state.pending.is_empty() {
        let _ = writeln!(
            out,
            "{} bericht(en) klaar voor de volgende outbox / item(s) queued for the next outbox",
            vault.state.pending.len()
        );
    }
    out
}

/// The deadlines of every open case; `true` when something is overdue.
pub fn deadlines_report(vault: &Vault, today: Day) -> (String, bool) {
    let mut out = String::new();
    let mut overdue = false;
    for (id, _, urgency) in by_urgency(vault, today) {
        if matches!(urgency, Urgency::Closed | Urgency::Done) {
            continue;
        }
        overdue |= urgency.is_overdue();
        let _ = writeln!(out, "{}  {}", &id.to_hex()[..8], urgency_label(&urgency));
    }
    if out.is_empty() {
        out.push_str("Geen openstaande termijnen. / No open deadlines.\n");
    }
    (out, overdue)
}

/// The whole case, decrypted, with every untrusted character neutralised.
pub fn show(vault: &Vault, case_id: &CaseId, today: Day) -> Result<String, ReviewError> {
    let case = &vault.state.cases[case_id];
    let mut out = String::new();
    let _ = writeln!(out, "Zaak / case {case_id}");
    let _ = writeln!(out, "Ontvangen / received: {}", case.received);
    let _ = writeln!(out, "Status: {}", current_status(case));
    if case.counsellors.len() > 1 {
        let names: Vec<String> = case.counsellors.iter().map(|c| clean_line(c)).collect();
        let _ = writeln!(
            out,
            "Vertrouwenspersonen / counsellors: {}",
            names.join(", ")
        );
    }
    let due = deadlines(case.received, case.acknowledged);
    let _ = writeln!(
        out,
        "Bevestigen uiterlijk / acknowledge by {}{}; terugkoppelen uiterlijk / feedback by {}{}",
        due.acknowledge_by,
        case.acknowledged
            .map(|d| format!(" (gedaan / done {d})"))
            .unwrap_or_default(),
        due.feedback_by,
        case.feedback
            .map(|d| format!(" (gedaan / done {d})"))
            .unwrap_or_default(),
    );
    let _ = writeln!(out, "Nu / now: {}", urgency_label(&urgency(case, today)));
    for record in &case.messages {
        let _ = writeln!(
            out,
            "\n── {} · {} · {} ──",
            record.day,
            clean_line(&record.kind),
            author_label(vault, &record.author)
        );
        let body = vault.read_message(&record.id)?;
        match Envelope::open(&body, &vault.identities()) {
            Ok(envelope) => write_envelope(&mut out, &envelope, vault),
            Err(_) if record.author != "melder" && record.author != vault.card.id => {
                let _ = writeln!(
                    out,
                    "[antwoord van een andere vertrouwenspersoon, alleen voor de melder versleuteld / another counsellor's reply, encrypted for the melder only]"
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "[onleesbaar bericht / unreadable message: {}]",
                    clean_line(&e.to_string())
                );
            }
        }
    }
    for note in &case.notes {
        let _ = writeln!(
            out,
            "\n── {} · notitie / note (alleen in uw kluis / only in your vault) ──\n{}",
            note.day,
            clean(&note.text)
        );
    }
    Ok(out)
}

fn write_envelope(out: &mut String, envelope: &Envelope, vault: &Vault) {
    if let Some(status) = envelope.status {
        let _ = writeln!(out, "Status → {}", status.as_str());
    }
    if let Some(category) = &envelope.category {
        let _ = writeln!(out, "Categorie / category: {}", clean_line(category));
    }
    if let Some(contact) = &envelope.contact {
        let _ = writeln!(out, "Contact: {}", clean_line(contact));
    }
    if let Some(evaluation) = envelope.evaluation {
        let _ = writeln!(
            out,
            "Evaluatie / evaluation: proces / process {}/5, gehoord / heard {}/5",
            evaluation.process, evaluation.heard
        );
    }
    let _ = writeln!(out, "{}", clean(&envelope.text));
    for (n, attachment) in envelope.attachments.iter().enumerate() {
        let (size, state) = match attachment.stream() {
            None => (
                attachment.bytes().map(|b| b.len() as u64).unwrap_or(0),
                String::new(),
            ),
            Some(stream) => (
                stream.size,
                match attachment::check_stored(vault, &stream) {
                    Ok(()) => String::new(),
                    Err(damage) => format!(" — BESCHADIGD / DAMAGED: {damage}"),
                },
            ),
        };
        let _ = writeln!(
            out,
            "[bijlage / attachment {}] {} ({}, {}){state}",
            n + 1,
            clean_line(&attachment.name),
            clean_line(&attachment.media_type),
            human_size(size)
        );
    }
}

/// `48213 bytes (47.1 KiB)`: exact, and readable for large files.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{bytes} bytes, {value:.1} {}", UNITS[unit])
}

fn author_label(vault: &Vault, author: &str) -> String {
    if author == "melder" {
        "melder".into()
    } else if author == vault.card.id {
        format!("u / you ({})", clean_line(&vault.card.name))
    } else {
        clean_line(author)
    }
}

/// Writes a message to the melder — encrypted to the melder and to this
/// counsellor — optionally setting a status, and queues it for the next
/// outbox. The first message is the acknowledgement of receipt; a message
/// marked feedback-given or closed gives feedback; closed closes the case.
pub fn send(
    vault: &mut Vault,
    case_id: &CaseId,
    text: &str,
    status: Option<Status>,
    today: Day,
) -> Result<MessageId, ReviewError> {
    let case = &vault.state.cases[case_id];
    let melder: age::x25519::Recipient = case
        .reply_recipient
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| ReviewError::NoReplyRecipient(case_id.to_hex()))?;
    if case.closed.is_some() {
        return Err(ReviewError::CaseClosed(case_id.to_hex()));
    }
    let mut envelope = Envelope::new(Kind::Reply, text);
    envelope.author = Some(Author {
        id: vault.card.id.clone(),
        name: vault.card.name.clone(),
    });
    envelope.status = status;
    // The melder's page marks the text with it (WCAG 3.1.2); replies are Dutch first.
    envelope.lang = Some(vault.card.lang.clone().unwrap_or_else(|| "nl".into()));
    let sealed = envelope.seal(&[melder, vault.recipient()])?;
    let id = MessageId::random();
    vault.store_message(&id, &sealed)?;
    let author = vault.card.id.clone();
    let case = vault.state.cases.get_mut(case_id).expect("resolved above");
    case.messages.push(MessageRecord {
        id,
        author,
        kind: Kind::Reply.as_str().into(),
        day: today,
        seq: None,
        attachments: Vec::new(),
    });
    case.acknowledged.get_or_insert(today);
    if matches!(status, Some(Status::FeedbackGiven | Status::Closed)) {
        case.feedback.get_or_insert(today);
    }
    if let Some(status) = status {
        case.status = Some((status, today));
    }
    let kind = if status == Some(Status::Closed) {
        case.closed = Some(today);
        OutboxKind::Close
    } else {
        OutboxKind::Reply
    };
    vault.state.pending.push(Pending {
        id,
        case: *case_id,
        kind,
    });
    vault.save()?;
    Ok(id)
}

/// Adds a private note; it never leaves the vault.
pub fn note(
    vault: &mut Vault,
    case_id: &CaseId,
    text: &str,
    today: Day,
) -> Result<(), ReviewError> {
    let case = vault
        .state
        .cases
        .get_mut(case_id)
        .expect("resolved by the caller");
    case.notes.push(Note {
        day: today,
        text: text.to_string(),
    });
    vault.save()
}

/// What `export` did.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// The files written, in the case's order.
    pub written: Vec<PathBuf>,
    /// Attachments refused as damaged: nothing of them was written.
    pub refused: Vec<RefusedAttachment>,
}

/// An attachment `export` refused.
#[derive(Debug)]
pub struct RefusedAttachment {
    /// The (safe) name it would have had.
    pub name: String,
    pub damage: Damage,
}

/// Writes every attachment of a case into `dir` under sanitised names, never
/// overwriting: inline ones from the message, streamed ones decrypted from
/// the vault as a stream and checked (protocol.md §3a). A damaged attachment
/// is refused and leaves no file; the others are written all the same.
pub fn export(vault: &Vault, case_id: &CaseId, dir: &Path) -> Result<ExportReport, ReviewError> {
    std::fs::create_dir_all(dir).map_err(ReviewError::io(dir))?;
    let case = &vault.state.cases[case_id];
    let mut report = ExportReport::default();
    for (m, record) in case.messages.iter().enumerate() {
        let body = vault.read_message(&record.id)?;
        let Ok(envelope) = Envelope::open(&body, &vault.identities()) else {
            continue;
        };
        for attachment in &envelope.attachments {
            let name = format!("{:02}-{}", m + 1, sanitize_file_name(&attachment.name));
            let Some(stream) = attachment.stream() else {
                let bytes = attachment.bytes()?;
                report.written.push(write_new_file(dir, &name, &bytes)?);
                continue;
            };
            let written = write_new_file_with(dir, &name, |file| {
                let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
                attachment::decrypt(vault, &stream, &mut out)?;
                out.flush().map_err(DecryptError::Write)
            })?;
            match written {
                Ok(path) => report.written.push(path),
                Err(DecryptError::Damaged(damage)) => {
                    report.refused.push(RefusedAttachment { name, damage })
                }
                Err(DecryptError::Write(e)) => return Err(ReviewError::io(dir)(e)),
            }
        }
    }
    Ok(report)
}

/// Closed cases whose closure is more than `retention_days` ago.
pub fn purge_candidates(vault: &Vault, today: Day, retention_days: i64) -> Vec<CaseId> {
    vault
        .state
        .cases
        .iter()
        .filter(|(_, case)| {
            case.closed
                .is_some_and(|closed| (today.0 - closed.0).whole_days() > retention_days)
        })
        .map(|(id, _)| *id)
        .collect()
}

/// Removes cases from the vault: their record and their stored messages.
pub fn purge(vault: &mut Vault, cases: &[CaseId]) -> Result<usize, ReviewError> {
    for id in cases {
        if let Some(case) = vault.state.cases.remove(id) {
            for message in &case.messages {
                vault.remove_message(&message.id)?;
                for upload in &message.attachments {
                    vault.remove_attachment(upload)?;
                }
            }
        }
        vault.state.pending.retain(|p| p.case != *id);
    }
    vault.save()?;
    Ok(cases.len())
}

/// Makes the next signed outbox with everything queued (an empty one is the
/// plain sync request). Queued items stay queued until an inbox confirms them.
pub fn outbox(vault: &mut Vault) -> Result<Vec<u8>, ReviewError> {
    vault.state.counter += 1;
    let mut items = Vec::new();
    for pending in &vault.state.pending {
        items.push((
            pending.id,
            pending.case,
            pending.kind,
            vault.read_message(&pending.id)?,
        ));
    }
    let bytes = Outbox::build(
        &vault.card.id,
        vault.state.counter,
        vault.state.inbox_ack,
        &items,
        vault.signing_key(),
    );
    vault.save()?;
    Ok(bytes)
}
