//! What the reviewer's front ends do to a vault, as functions on an open
//! vault; what they show comes from `views`. The front ends only parse,
//! ask for the passphrase and render. `today`
//! is a parameter wherever deadlines matter, so tests run on a fixed clock.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::format::bundle::{Outbox, OutboxKind};
use crate::format::day::Day;
use crate::format::envelope::{Author, Envelope, Kind, Status};
use crate::format::ids::{CaseId, MessageId};

use super::attachment::{self, Damage, DecryptError};
use super::error::ReviewError;
use super::export::{create_private_dir, sanitize_file_name, write_new_file, write_new_file_with};
use super::introduce::Introduction;
use super::terminal::clean_line;
use super::vault::{Authenticity, MessageRecord, Note, Pending, Vault};

pub use super::i18n::Lang;

/// The standard acknowledgement, to send as is or to edit.
pub fn acknowledgement_template(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => include_str!("templates/acknowledgement.nl.txt"),
        Lang::En => include_str!("templates/acknowledgement.en.txt"),
    }
}

/// The standard message that reopens a closed case (see [`reopen`]).
pub fn reopening_template(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => include_str!("templates/reopening.nl.txt"),
        Lang::En => include_str!("templates/reopening.en.txt"),
    }
}

/// The standard message that introduces a colleague (see [`introduce`]).
pub fn introduction_template(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => include_str!("templates/introduction.nl.txt"),
        Lang::En => include_str!("templates/introduction.en.txt"),
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
pub use super::introduce::{accept as accept_introduction, introduce};

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

/// Writes a message to the melder — encrypted to the melder and to this
/// counsellor — optionally setting a status, and queues it for the next
/// outbox. The first message is the acknowledgement of receipt; a message
/// marked feedback-given or closed gives feedback; closed closes the case.
/// A closed case takes no message: [`reopen`] it first.
pub fn send(
    vault: &mut Vault,
    case_id: &CaseId,
    text: &str,
    status: Option<Status>,
    today: Day,
) -> Result<MessageId, ReviewError> {
    if vault.state.cases[case_id].closed.is_some() {
        return Err(ReviewError::CaseClosed(case_id.to_hex()));
    }
    let kind = if status == Some(Status::Closed) {
        OutboxKind::Close
    } else {
        OutboxKind::Reply
    };
    queue_reply(vault, case_id, text, status, kind, today, None)
}

/// Reopens a closed case with a message to the melder (status in
/// progress): the server keeps the case again, so a follow-up after closure
/// is never a dead end. On an open case this is an error.
pub fn reopen(
    vault: &mut Vault,
    case_id: &CaseId,
    text: &str,
    today: Day,
) -> Result<MessageId, ReviewError> {
    if vault.state.cases[case_id].closed.is_none() {
        return Err(ReviewError::CaseOpen(case_id.to_hex()));
    }
    queue_reply(
        vault,
        case_id,
        text,
        Some(Status::InProgress),
        OutboxKind::Reopen,
        today,
        None,
    )
}

/// Writes, stores and queues a reply; `introduction` makes it one that
/// introduces a colleague (introduce.rs).
pub(super) fn queue_reply(
    vault: &mut Vault,
    case_id: &CaseId,
    text: &str,
    status: Option<Status>,
    kind: OutboxKind,
    today: Day,
    introduction: Option<Introduction>,
) -> Result<MessageId, ReviewError> {
    let case = &vault.state.cases[case_id];
    let melder: crate::format::keys::Recipient = case
        .reply_recipient
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| ReviewError::NoReplyRecipient(case_id.to_hex()))?;
    // The counsellor's own copy uses a key of the melder's kind: age never
    // mixes classical and post-quantum recipients in one file.
    let own = vault
        .own_recipient_beside(&melder)
        .ok_or_else(|| ReviewError::NoReplyRecipient(case_id.to_hex()))?;
    let mut envelope = Envelope::new(Kind::Reply, text);
    envelope.author = Some(Author {
        id: vault.card.id.clone(),
        name: vault.card.name.clone(),
    });
    envelope.status = status;
    // The melder's page marks the text with it (WCAG 3.1.2); replies are Dutch first.
    envelope.lang = Some(vault.card.lang.clone().unwrap_or_else(|| "nl".into()));
    // A case the melder began in protocol v2 is answered signed (§10.4):
    // the melder's page shows nothing else as genuine.
    let sealed = match &case.thread {
        Some(thread) => {
            envelope.v = 2;
            envelope.thread = Some(thread.clone());
            envelope.seq = Some(case.my_seq + 1);
            // The last message of the case this laptop knows and that is
            // what it says (a forged one is no place in the conversation).
            envelope.prev = Some(case.messages.iter().rev().find_map(|m| {
                let genuine = !matches!(
                    m.authenticity,
                    Some(Authenticity::NotGenuine | Authenticity::Replayed)
                );
                m.sha256.clone().filter(|_| genuine)
            }));
            envelope.day = Some(today.to_string());
            let mut recipients = vec![melder, own];
            if let Some(introduction) = &introduction {
                envelope.introduces = vec![introduction.card.clone()];
                envelope.forwarded = introduction.forwarded.clone();
                recipients.push(introduction.recipient.clone());
            }
            envelope.seal_signed(&recipients, vault.signing_key())?
        }
        None => envelope.seal(&[melder, own])?,
    };
    let id = MessageId::random();
    vault.store_message(&id, &sealed)?;
    let author = vault.card.id.clone();
    let case = vault.state.cases.get_mut(case_id).expect("resolved above");
    if case.thread.is_some() {
        case.my_seq += 1;
    }
    let introduce = match introduction {
        Some(Introduction { card, .. }) => {
            case.pinned
                .insert(card.id.clone(), card.signing_key.clone());
            vec![card.id]
        }
        None => Vec::new(),
    };
    case.messages.push(MessageRecord {
        id,
        author,
        kind: Kind::Reply.as_str().into(),
        day: today,
        seq: None,
        attachments: Vec::new(),
        seen: true,
        sha256: Some(crate::format::signed::message_hash(&sealed)),
        authenticity: case.thread.as_ref().map(|_| Authenticity::Verified),
        gap_before: false,
        forwarded_in: None,
        unseen_replies: 0,
    });
    case.acknowledged.get_or_insert(today);
    if matches!(status, Some(Status::FeedbackGiven | Status::Closed)) {
        case.feedback.get_or_insert(today);
    }
    if let Some(status) = status {
        case.status = Some((status, today));
    }
    match kind {
        OutboxKind::Close => case.closed = Some(today),
        OutboxKind::Reopen => case.closed = None,
        OutboxKind::Reply => {}
    }
    vault.state.pending.push(Pending {
        id,
        case: *case_id,
        kind,
        introduce,
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
    create_private_dir(dir)?;
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
    let counter = vault.state.counter + 1;
    let bytes = build_outbox(vault, counter)?;
    vault.state.counter = counter;
    vault.save()?;
    Ok(bytes)
}

/// Writes the next signed outbox to `path` and returns its counter. The
/// counter is spent only once the bundle is safely on disk under a
/// temporary name beside `path`: a path that cannot be written (a full or
/// read-only stick, a missing folder) changes nothing in the vault.
pub fn write_outbox(vault: &mut Vault, path: &Path) -> Result<u64, ReviewError> {
    let counter = vault.state.counter + 1;
    let bytes = build_outbox(vault, counter)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".part");
    let temporary = PathBuf::from(temporary);
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(ReviewError::io(path)(e));
    }
    vault.state.counter = counter;
    if let Err(e) = vault.save() {
        vault.state.counter = counter - 1;
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path).map_err(ReviewError::io(path))?;
    Ok(counter)
}

fn build_outbox(vault: &Vault, counter: u64) -> Result<Vec<u8>, ReviewError> {
    let mut items = Vec::new();
    let mut introduce = std::collections::BTreeMap::new();
    for pending in &vault.state.pending {
        if !pending.introduce.is_empty() {
            introduce.insert(pending.id, pending.introduce.clone());
        }
        items.push((
            pending.id,
            pending.case,
            pending.kind,
            vault.read_message(&pending.id)?,
        ));
    }
    Ok(Outbox::build_introducing(
        &vault.card.id,
        counter,
        vault.state.inbox_ack,
        &items,
        &introduce,
        vault.signing_key(),
    ))
}

#[cfg(test)]
mod template_tests {
    use super::*;

    /// The site calls a report "zij/haar" ("de melding"); the standard
    /// texts must not call it "hem" (issue 15).
    #[test]
    fn dutch_templates_call_the_report_haar() {
        for text in [
            acknowledgement_template(Lang::Nl),
            reopening_template(Lang::Nl),
            closing_template(Lang::Nl),
        ] {
            let words: Vec<&str> = text
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| !w.is_empty())
                .collect();
            assert!(!words.contains(&"hem"), "{text}");
        }
        assert!(acknowledgement_template(Lang::Nl).contains("Ik lees haar zorgvuldig"));
    }
}
