//! Importing an inbox as a stream (protocol.md §6). Each message and each
//! streamed attachment goes into the vault, still encrypted, as it passes
//! through a bounded buffer; the vault's state changes only once the whole
//! inbox has been read and checked, down to age's last tag. A refused inbox
//! leaves no new file behind, and importing the same inbox twice changes
//! nothing.

use std::collections::BTreeMap;
use std::io::Read;

use crate::format::agefile::attachment_padded_length;
use crate::format::bundle::{Inbox, InboxItem, InboxManifest, InboxPart};
use crate::format::card::server_key_fingerprint;
use crate::format::envelope::{Envelope, Kind, StreamedFile};
use crate::format::ids::{CaseId, MessageId, UploadId};
use crate::format::signed::message_hash;

use super::authenticity;
use super::error::{InboxMismatch, ReviewError};
use super::introduce::{self, Introduced};
use super::vault::{
    Authenticity, CaseRecord, MessageRecord, StoredAttachment, StoredMessage, Vault,
};

/// How much of a report's text the vault keeps as the case's subject.
pub const SUBJECT_CHARS: usize = 200;

/// What an import brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub new_cases: usize,
    pub new_messages: usize,
    /// Queued items the server confirmed; they leave the queue.
    pub confirmed: usize,
    /// Messages this vault cannot read: damaged, or another counsellor's
    /// reply (encrypted to the melder and its author only).
    pub unreadable: usize,
    /// Streamed attachments written to the vault.
    pub attachments: usize,
    /// Streamed attachments of new messages that do not match what their
    /// message names (another file, another length) or that the inbox
    /// lacks: `export` will refuse them.
    pub damaged_attachments: usize,
    /// The fingerprint of the server's inbox key when this import pinned it
    /// (the first signed inbox): to compare with the operator's
    /// `meldkluis check-config`.
    pub server_key_pinned: Option<String>,
    /// Messages that claim to be the melder's but are not signed by the
    /// melder's key, or repeat one already seen (protocol.md §10.4): kept,
    /// marked, and never taken as the melder's words.
    pub not_genuine: usize,
}

/// Imports an inbox held in memory.
pub fn import(vault: &mut Vault, inbox: &[u8]) -> Result<ImportSummary, ReviewError> {
    import_from(vault, inbox)
}

/// Imports an inbox read as a stream, e.g. straight from the file on the
/// USB stick. Memory stays bounded whatever the attachments weigh.
pub fn import_from(vault: &mut Vault, inbox: impl Read) -> Result<ImportSummary, ReviewError> {
    vault.remove_partial_attachments()?;
    let mut created = Created::default();
    let result = read_inbox(vault, inbox, &mut created).and_then(|read| apply(vault, read));
    if result.is_err() {
        created.remove(vault);
    }
    result
}

/// Files this import wrote that were not there before: removed again when
/// the import fails, so a refused inbox leaves nothing behind.
#[derive(Default)]
struct Created {
    messages: Vec<MessageId>,
    attachments: Vec<UploadId>,
}

impl Created {
    fn remove(&self, vault: &Vault) {
        for id in &self.messages {
            let _ = vault.remove_message(id);
        }
        for upload in &self.attachments {
            let _ = vault.remove_attachment(upload);
        }
    }
}

/// A message as it arrived.
struct Arrived {
    item: InboxItem,
    /// Already in the vault from an earlier import.
    known: bool,
    /// The envelope of a new message this vault can read, without its text
    /// and attachments (the vault keeps only the fields below in its state).
    envelope: Option<Envelope>,
    /// A v2 envelope signed by the key its own `thread` names (§10.4).
    self_signed: bool,
    /// SHA-256 (hex) of the message's age file.
    sha256: String,
}

struct ReadInbox {
    answers: u64,
    /// The server key to pin: a signed inbox to a vault that knows none.
    signer: Option<[u8; 32]>,
    arrived: Vec<Arrived>,
    applied: Vec<MessageId>,
    attachments: usize,
    damaged_attachments: usize,
}

/// Reads the whole inbox, storing files as they pass; changes no state.
fn read_inbox(
    vault: &Vault,
    inbox: impl Read,
    created: &mut Created,
) -> Result<ReadInbox, ReviewError> {
    let identities = vault.identities();
    let mut reader = Inbox::open_stream(inbox, &identities)?;
    if reader.manifest().counsellor != vault.card.id {
        return Err(ReviewError::NotMyInbox(
            reader.manifest().counsellor.clone(),
        ));
    }
    let signer = check_signer(vault, reader.signer())?;
    check_fits(vault, reader.manifest())?;
    let mut arrived: Vec<Arrived> = Vec::new();
    // The streamed attachments the current message names, still to come.
    let mut named: BTreeMap<UploadId, StreamedFile> = BTreeMap::new();
    let mut attachments = 0;
    let mut damaged_attachments = 0;
    while let Some(part) = reader.next_part()? {
        match part {
            InboxPart::Message { item, file } => {
                damaged_attachments += std::mem::take(&mut named).len();
                // A message id names one message: the same id in another case,
                // or with other bytes than the file kept for it, is an inbox
                // made to swap what an already judged message shows.
                let owner = vault
                    .state
                    .cases
                    .iter()
                    .find(|(_, case)| case.messages.iter().any(|m| m.id == item.id))
                    .map(|(id, _)| *id);
                if owner.is_some_and(|owner| owner != item.case) {
                    return Err(InboxMismatch::ReusedId(item.id.to_hex()).into());
                }
                let known = owner.is_some();
                let mut envelope = None;
                if !known {
                    match vault.store_message(&item.id, file.as_bytes())? {
                        StoredMessage::Created => created.messages.push(item.id),
                        StoredMessage::Same => {}
                        StoredMessage::Different => {
                            return Err(InboxMismatch::ReusedId(item.id.to_hex()).into());
                        }
                    }
                    envelope = Envelope::open(file.as_bytes(), &identities).ok();
                }
                let self_signed = envelope
                    .as_ref()
                    .is_some_and(|e| e.thread_key().is_some_and(|key| e.verify(&key)));
                if let Some(envelope) = &mut envelope {
                    // A melder's message was checked above; the signed
                    // bytes hold the whole text. A counsellor's reply is
                    // checked against the case's pinned card in `apply`.
                    if item.author == "melder" {
                        envelope.signature = None;
                    }
                    named = envelope
                        .attachments
                        .iter()
                        .filter_map(|a| a.stream())
                        .map(|s| (s.upload, s))
                        .collect();
                    // Keep only what the state needs: the report's first
                    // words become the case's subject.
                    envelope.text = if matches!(envelope.kind, Kind::Report | Kind::Question) {
                        envelope.text.chars().take(SUBJECT_CHARS).collect()
                    } else {
                        String::new()
                    };
                    envelope.contact = None;
                    envelope.attachments = Vec::new();
                }
                arrived.push(Arrived {
                    sha256: message_hash(file.as_bytes()),
                    item,
                    known,
                    envelope,
                    self_signed,
                });
            }
            InboxPart::Attachment(mut stream) => {
                // The reader hands out an attachment only after its message.
                let message = arrived.last().expect("a message comes first");
                if !message.known && message.envelope.is_some() {
                    let matches = named.remove(&stream.attachment.upload).is_some_and(|f| {
                        f.head_sha256 == stream.head_sha256
                            && stream.shape.plaintext_len == attachment_padded_length(f.size)
                    });
                    if !matches {
                        damaged_attachments += 1;
                    }
                }
                let upload = stream.attachment.upload;
                match vault.store_attachment(&mut stream)? {
                    StoredAttachment::Created => {
                        created.attachments.push(upload);
                        attachments += 1;
                    }
                    StoredAttachment::Replaced => attachments += 1,
                    StoredAttachment::Kept => {}
                }
            }
        }
    }
    damaged_attachments += named.len();
    let manifest = reader.into_manifest();
    Ok(ReadInbox {
        answers: manifest.answers_counter,
        signer,
        arrived,
        applied: manifest.applied,
        attachments,
        damaged_attachments,
    })
}

/// What the laptop checks before anything of an inbox is stored
/// (protocol.md §6): it answers an outbox this vault made and no older one
/// than an inbox already read; its messages come in the server's order;
/// and it confirms only messages this vault sent. The server's signature
/// (`check_signer`) is what keeps a courier from making an inbox; these
/// checks keep even a signed one from replaying an old answer or
/// confirming what was never sent.
fn check_fits(vault: &Vault, manifest: &InboxManifest) -> Result<(), ReviewError> {
    let state = &vault.state;
    let answers = manifest.answers_counter;
    if answers > state.counter {
        return Err(InboxMismatch::AnswersUnmade {
            answers,
            made: state.counter,
        }
        .into());
    }
    if answers < state.inbox_answers {
        return Err(InboxMismatch::Older {
            answers,
            read: state.inbox_answers,
        }
        .into());
    }
    // The server numbers each counsellor's messages as it hands them out,
    // and an inbox lists them in that order. (It cannot be required that
    // they follow on from the vault's last number without a gap: a server
    // upgraded from schema 3 kept its old numbers, shared by all
    // counsellors. That a message was withheld is for the hash chains of
    // the authenticity protocol to show.)
    for pair in manifest.items.windows(2) {
        if pair[1].seq <= pair[0].seq {
            return Err(InboxMismatch::OutOfOrder {
                after: pair[0].seq,
                found: pair[1].seq,
            }
            .into());
        }
    }
    let mine = &vault.card.id;
    for id in &manifest.applied {
        let queued = state.pending.iter().any(|p| p.id == *id);
        let sent = state
            .cases
            .values()
            .flat_map(|case| &case.messages)
            .any(|m| m.id == *id && m.author == *mine);
        if !queued && !sent {
            return Err(InboxMismatch::UnknownApplied(id.to_hex()).into());
        }
    }
    Ok(())
}

/// The server's signature (protocol.md §6): once this vault knows the
/// server's key, every inbox must be signed with exactly that key. Returns
/// the key to pin when this is the first signed inbox. An unsigned inbox
/// to a vault that knows no key yet comes from a server from before signing
/// and is read as before.
fn check_signer(
    vault: &Vault,
    signer: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Option<[u8; 32]>, ReviewError> {
    use base64::Engine;
    let known = vault.state.server_key.as_deref();
    match (known, signer) {
        (None, None) => Ok(None),
        (None, Some(key)) => Ok(Some(key.to_bytes())),
        (Some(_), None) => Err(InboxMismatch::Unsigned.into()),
        (Some(known), Some(key)) => {
            if base64::engine::general_purpose::STANDARD.encode(key.to_bytes()) == known {
                Ok(None)
            } else {
                let known_bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
                    .decode(known)
                    .ok()
                    .and_then(|k| k.try_into().ok())
                    .unwrap_or_default();
                Err(InboxMismatch::OtherServerKey {
                    known: server_key_fingerprint(&known_bytes),
                    found: server_key_fingerprint(&key.to_bytes()),
                }
                .into())
            }
        }
    }
}

/// Records what arrived in the vault's state, in the server's order, and
/// saves it.
fn apply(vault: &mut Vault, read: ReadInbox) -> Result<ImportSummary, ReviewError> {
    let mut summary = ImportSummary {
        attachments: read.attachments,
        damaged_attachments: read.damaged_attachments,
        ..ImportSummary::default()
    };
    let mut arrived = read.arrived;
    arrived.sort_by_key(|a| a.item.seq);
    // The conversation each case pinned (protocol.md §10.4) is that case's
    // alone: a server that copies a conversation's messages into another
    // case gets them marked as copies there, never pinned or taken on.
    let mut threads: BTreeMap<String, CaseId> = vault
        .state
        .cases
        .iter()
        .filter_map(|(id, case)| Some((case.thread.clone()?, *id)))
        .collect();
    for Arrived {
        item,
        known,
        envelope,
        self_signed,
        sha256,
    } in arrived
    {
        vault.state.inbox_ack = vault.state.inbox_ack.max(item.seq);
        if known {
            continue;
        }
        if envelope.is_none() {
            summary.unreadable += 1;
        }
        let case = vault.state.cases.entry(item.case).or_insert_with(|| {
            summary.new_cases += 1;
            CaseRecord::new(item.day)
        });
        let from_melder = item.author == "melder";
        // Is it the melder's, and is one missing before it (protocol.md
        // §10.4)? A message that is not genuine changes nothing in the case.
        // While an introduction waits for the counsellor's confirmation, the
        // melder's messages wait with it: they are judged once it is.
        let waiting = from_melder && case.pending_introduction.is_some();
        let judged = envelope
            .as_ref()
            .filter(|_| from_melder && !waiting)
            .map(|e| authenticity::judge_melder(case, e, self_signed));
        let elsewhere = envelope
            .as_ref()
            .and_then(|e| threads.get(e.thread.as_ref()?))
            .is_some_and(|owner| *owner != item.case);
        let authenticity = match &envelope {
            Some(_) if elsewhere => Some(Authenticity::Replayed),
            Some(_) if waiting => None,
            Some(e) if !from_melder => match introduce::check(case, &item.author, e, &vault.card) {
                Introduced::NotForMe => {
                    authenticity::judge_reply(case, &item.author, &vault.card.id, e)
                }
                Introduced::Forged => Some(Authenticity::NotGenuine),
                // Taken on at once only when the counsellor compared this
                // very card before; otherwise it waits for them to.
                Introduced::Valid(card) if vault.state.colleagues.get(&card.id) == Some(&*card) => {
                    introduce::take_on(case, &item.author, item.id, e);
                    Some(Authenticity::Verified)
                }
                Introduced::Valid(_) => {
                    case.pending_introduction = Some(item.id);
                    None
                }
            },
            _ => judged.as_ref().map(|j| j.authenticity),
        };
        let judged = judged.filter(|_| !elsewhere);
        let mut unseen_replies = 0;
        if let (true, Some(e), Some(Authenticity::Verified)) =
            (from_melder, &envelope, authenticity)
        {
            unseen_replies = authenticity::unseen_replies(case, e, &vault.card.id);
            authenticity::record_melder(case, e);
        }
        if let Some(thread) = &case.thread {
            threads.entry(thread.clone()).or_insert(item.case);
        }
        if !authenticity::counts(authenticity) {
            summary.not_genuine += 1;
        }
        let envelope = envelope.filter(|_| authenticity::counts(authenticity) && !waiting);
        // The server files a case's first message as a report and every
        // later one as a follow-up; the vault records what the envelope says
        // it is (an evaluation, an advice question, a question turned into a
        // report), so an evaluation does not read as a message waiting for
        // an answer.
        let mut kind = item.kind;
        if let Some(said) = envelope.as_ref().map(|e| e.kind).filter(|k| {
            from_melder && matches!(k, Kind::Evaluation | Kind::Question | Kind::Report)
        }) {
            kind = said.as_str().into();
        }
        match envelope {
            Some(first)
                if from_melder
                    && matches!(first.kind, Kind::Report | Kind::Question)
                    && case.reply_recipient.is_none() =>
            {
                case.reply_recipient = first.reply_recipient;
                case.category = first.category;
                case.counsellors = first.counsellors;
                case.received = item.day;
                case.subject = Some(first.text);
                if first.kind == Kind::Question {
                    case.question = true;
                    case.asked = Some(item.day);
                }
            }
            // The melder turns the question into a report: from today it is
            // one, and the statutory terms run from today. Whatever was said
            // about the question does not acknowledge the report.
            Some(report) if from_melder && report.kind == Kind::Report && case.question => {
                case.question = false;
                case.received = item.day;
                case.acknowledged = None;
                case.feedback = None;
                case.status = None;
                if report.category.is_some() {
                    case.category = report.category;
                }
                case.subject = Some(report.text);
            }
            Some(evaluation) if from_melder && evaluation.kind == Kind::Evaluation => {
                case.evaluation = evaluation.evaluation;
            }
            _ => {}
        }
        case.messages.push(MessageRecord {
            id: item.id,
            author: item.author,
            kind,
            day: item.day,
            seq: Some(item.seq),
            attachments: item.attachments.iter().map(|a| a.upload).collect(),
            seen: false,
            sha256: Some(sha256),
            authenticity,
            gap_before: judged.is_some_and(|j| j.gap_before),
            forwarded_in: None,
            unseen_replies,
        });
        summary.new_messages += 1;
    }
    vault.state.inbox_answers = vault.state.inbox_answers.max(read.answers);
    if let Some(key) = read.signer {
        use base64::Engine;
        vault.state.server_key = Some(base64::engine::general_purpose::STANDARD.encode(key));
        summary.server_key_pinned = Some(server_key_fingerprint(&key));
    }
    let before = vault.state.pending.len();
    vault
        .state
        .pending
        .retain(|p| !read.applied.contains(&p.id));
    summary.confirmed = before - vault.state.pending.len();
    vault.save()?;
    Ok(summary)
}
