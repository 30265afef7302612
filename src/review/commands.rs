//! What the reviewer's subcommands do, as functions on an open vault. The
//! binary only parses arguments, asks for the passphrase and prints.

use std::fmt::Write as _;

use crate::format::bundle::{Inbox, Outbox, OutboxKind};
use crate::format::envelope::{Author, Envelope, Kind};
use crate::format::ids::{CaseId, MessageId};

use super::error::ReviewError;
use super::terminal::{clean, clean_line};
use super::vault::{CaseRecord, MessageRecord, Pending, Vault};
use crate::format::day::Day;

/// What an import brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub new_cases: usize,
    pub new_messages: usize,
    /// Queued items the server confirmed; they leave the queue.
    pub confirmed: usize,
    /// Messages that could not be read (stored, shown as unreadable).
    pub unreadable: usize,
}

/// Imports an inbox: idempotent, so the same inbox twice changes nothing.
pub fn import(vault: &mut Vault, inbox_bytes: &[u8]) -> Result<ImportSummary, ReviewError> {
    let inbox = Inbox::open(inbox_bytes, vault.identity())?;
    if inbox.manifest.counsellor != vault.card.id {
        return Err(ReviewError::NotMyInbox(inbox.manifest.counsellor));
    }
    let mut summary = ImportSummary::default();
    let mut items = inbox.manifest.items.clone();
    items.sort_by_key(|item| item.seq);
    for item in &items {
        let body = &inbox.files[&item.id];
        let known = vault
            .state
            .cases
            .get(&item.case)
            .is_some_and(|case| case.messages.iter().any(|m| m.id == item.id));
        vault.state.inbox_ack = vault.state.inbox_ack.max(item.seq);
        if known {
            continue;
        }
        vault.store_message(&item.id, body.as_bytes())?;
        let envelope = Envelope::open(body.as_bytes(), &[vault.identity()]).ok();
        if envelope.is_none() {
            summary.unreadable += 1;
        }
        let case = vault.state.cases.entry(item.case).or_insert_with(|| {
            summary.new_cases += 1;
            CaseRecord {
                received: item.day,
                reply_recipient: None,
                category: None,
                messages: Vec::new(),
            }
        });
        if let Some(report) = envelope.filter(|e| e.kind == Kind::Report && item.author == "melder")
            && case.reply_recipient.is_none()
        {
            case.reply_recipient = report.reply_recipient;
            case.category = report.category;
            case.received = item.day;
        }
        case.messages.push(MessageRecord {
            id: item.id,
            author: item.author.clone(),
            kind: item.kind.clone(),
            day: item.day,
            seq: Some(item.seq),
        });
        summary.new_messages += 1;
    }
    let before = vault.state.pending.len();
    let applied = &inbox.manifest.applied;
    vault.state.pending.retain(|p| !applied.contains(&p.id));
    summary.confirmed = before - vault.state.pending.len();
    vault.save()?;
    Ok(summary)
}

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

/// One line per case: id prefix, day received, messages, what waits.
pub fn list(vault: &Vault) -> String {
    let mut cases: Vec<(&CaseId, &CaseRecord)> = vault.state.cases.iter().collect();
    cases.sort_by_key(|(id, case)| (case.received, **id));
    if cases.is_empty() {
        return "Geen zaken. / No cases.\n".into();
    }
    let mut out = String::new();
    for (id, case) in cases {
        let last = case.messages.last();
        let waiting = last.is_some_and(|m| m.author == "melder");
        let _ = writeln!(
            out,
            "{}  {}  {:>3} berichten/messages  {}  {}",
            &id.to_hex()[..8],
            case.received,
            case.messages.len(),
            case.category
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".into()),
            if waiting {
                "wacht op u / awaiting you"
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

/// The whole case, decrypted, with every untrusted character neutralised.
pub fn show(vault: &Vault, case_id: &CaseId) -> Result<String, ReviewError> {
    let case = &vault.state.cases[case_id];
    let mut out = String::new();
    let _ = writeln!(out, "Zaak / case {case_id}");
    let _ = writeln!(out, "Ontvangen / received: {}", case.received);
    for record in &case.messages {
        let _ = writeln!(
            out,
            "\n── {} · {} · {} ──",
            record.day,
            record.kind,
            author_label(vault, &record.author)
        );
        let body = vault.read_message(&record.id)?;
        match Envelope::open(&body, &[vault.identity()]) {
            Ok(envelope) => {
                if let Some(category) = &envelope.category {
                    let _ = writeln!(out, "Categorie / category: {}", clean_line(category));
                }
                if let Some(contact) = &envelope.contact {
                    let _ = writeln!(out, "Contact: {}", clean_line(contact));
                }
                let _ = writeln!(out, "{}", clean(&envelope.text));
                for (n, attachment) in envelope.attachments.iter().enumerate() {
                    let size = attachment.bytes().map(|b| b.len()).unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "[bijlage / attachment {}] {} ({}, {} bytes)",
                        n + 1,
                        clean_line(&attachment.name),
                        clean_line(&attachment.media_type),
                        size
                    );
                }
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
    Ok(out)
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

/// Writes a reply, encrypted to the melder and to this counsellor, and
/// queues it for the next outbox.
pub fn reply(vault: &mut Vault, case_id: &CaseId, text: &str) -> Result<MessageId, ReviewError> {
    let case = &vault.state.cases[case_id];
    let melder: age::x25519::Recipient = case
        .reply_recipient
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| ReviewError::NoReplyRecipient(case_id.to_hex()))?;
    let mut envelope = Envelope::new(Kind::Reply, text);
    envelope.author = Some(Author {
        id: vault.card.id.clone(),
        name: vault.card.name.clone(),
    });
    let sealed = envelope.seal(&[melder, vault.recipient()])?;
    let id = MessageId::random();
    vault.store_message(&id, &sealed)?;
    let author = vault.card.id.clone();
    let case = vault.state.cases.get_mut(case_id).expect("resolved above");
    case.messages.push(MessageRecord {
        id,
        author,
        kind: Kind::Reply.as_str().into(),
        day: Day::today(),
        seq: None,
    });
    vault.state.pending.push(Pending {
        id,
        case: *case_id,
        kind: OutboxKind::Reply,
    });
    vault.save()?;
    Ok(id)
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
