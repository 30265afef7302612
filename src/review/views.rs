//! What the reviewer's front ends show, as typed data: the case overview,
//! one case with its conversation, the open deadlines. The command line and
//! the desktop program render these in their own language; nothing here is
//! text for people, and everything that came from an inbox is [`Untrusted`].

use crate::format::day::Day;
use crate::format::envelope::{Envelope, Evaluation, Kind, Status};
use crate::format::ids::{CaseId, MessageId};
use crate::format::signed::message_hash;

use super::attachment::{self, Damage};
use super::deadlines::{Deadlines, Urgency, deadlines, urgency};
use super::error::ReviewError;
use super::export::sanitize_file_name;
use super::untrusted::Untrusted;
use super::vault::{CaseRecord, Vault};

/// The authors the vault records for a melder's messages.
pub const MELDER: &str = "melder";

/// Where a case stands, as the melder's page and the counsellor see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaseStatus {
    /// Arrived; no counsellor message yet.
    Received,
    Acknowledged,
    InProgress,
    FeedbackGiven,
    Closed,
}

impl CaseStatus {
    pub fn of(case: &CaseRecord) -> Self {
        if case.closed.is_some() {
            return CaseStatus::Closed;
        }
        match case.status {
            Some((Status::Acknowledged, _)) => CaseStatus::Acknowledged,
            Some((Status::InProgress, _)) => CaseStatus::InProgress,
            Some((Status::FeedbackGiven, _)) => CaseStatus::FeedbackGiven,
            // A reopened case: closed no longer, but its last status said so.
            Some((Status::Closed, _)) => CaseStatus::InProgress,
            None if case.acknowledged.is_some() => CaseStatus::Acknowledged,
            None => CaseStatus::Received,
        }
    }
}

/// The categories the report form offers (web/pages/report.html); a
/// category outside this list came from a modified page and is shown as
/// untrusted text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KnownCategory {
    FraudOrAbuseOfPower,
    UndesirableBehaviour,
    ConflictOfInterest,
    InformationLeak,
    MisuseOfResources,
    Other,
}

impl KnownCategory {
    pub const ALL: [KnownCategory; 6] = [
        KnownCategory::FraudOrAbuseOfPower,
        KnownCategory::UndesirableBehaviour,
        KnownCategory::ConflictOfInterest,
        KnownCategory::InformationLeak,
        KnownCategory::MisuseOfResources,
        KnownCategory::Other,
    ];

    /// The value the form sends.
    pub fn code(self) -> &'static str {
        match self {
            KnownCategory::FraudOrAbuseOfPower => "fraud-or-abuse-of-power",
            KnownCategory::UndesirableBehaviour => "undesirable-behaviour",
            KnownCategory::ConflictOfInterest => "conflict-of-interest",
            KnownCategory::InformationLeak => "information-leak",
            KnownCategory::MisuseOfResources => "misuse-of-resources",
            KnownCategory::Other => "other",
        }
    }
}

/// A report's category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Category {
    Known(KnownCategory),
    /// Not one the form offers.
    Unlisted(Untrusted),
}

impl Category {
    pub fn parse(code: &str) -> Self {
        KnownCategory::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .map(Category::Known)
            .unwrap_or_else(|| Category::Unlisted(Untrusted::new(code)))
    }
}

/// One line of the case overview.
#[derive(Debug, Clone)]
pub struct CaseSummary {
    pub id: CaseId,
    /// The day the report arrived (for a question: the day it was asked).
    pub received: Day,
    /// Still an advice question: no statutory terms run.
    pub question: bool,
    /// The day the thread began as an advice question, if it did.
    pub asked: Option<Day>,
    pub status: CaseStatus,
    pub category: Option<Category>,
    /// The report's first words (empty when the report cannot be read).
    pub subject: Untrusted,
    pub deadlines: Deadlines,
    pub urgency: Urgency,
    /// Messages from the melder not opened yet.
    pub unread: usize,
    /// The melder wrote last: the case waits for this counsellor.
    pub awaiting_answer: bool,
    pub messages: usize,
    /// Private notes on the case.
    pub notes: usize,
}

impl CaseSummary {
    /// The first eight characters of the id: what people type and read.
    pub fn short_id(&self) -> String {
        self.id.to_hex()[..8].to_string()
    }
}

/// Every case, most urgent first (overdue, then soon, …, closed last).
pub fn overview(vault: &Vault, today: Day) -> Vec<CaseSummary> {
    let mut cases: Vec<CaseSummary> = vault
        .state
        .cases
        .iter()
        .map(|(id, case)| summary(vault, id, case, today))
        .collect();
    cases.sort_by_key(|c| (c.urgency.sort_key(), c.received, c.id));
    cases
}

fn summary(vault: &Vault, id: &CaseId, case: &CaseRecord, today: Day) -> CaseSummary {
    CaseSummary {
        id: *id,
        received: case.received,
        question: case.question,
        asked: case.asked,
        status: CaseStatus::of(case),
        category: case.category.as_deref().map(Category::parse),
        subject: subject(vault, case),
        deadlines: deadlines(case.received, case.acknowledged),
        urgency: urgency(case, today),
        unread: case
            .messages
            .iter()
            .filter(|m| !m.seen && m.author == MELDER)
            .count(),
        // The melder wrote last, and not only an evaluation. A message
        // that is not genuinely the melder's asks for nothing (§10.4).
        awaiting_answer: case
            .messages
            .iter()
            .rev()
            .find(|m| super::authenticity::counts(m.authenticity))
            .is_some_and(|m| m.author == MELDER && m.kind != Kind::Evaluation.as_str()),
        messages: case.messages.len(),
        notes: case.notes.len(),
    }
}

/// The subject kept at import, or (for cases imported before subjects were
/// kept) the report's first words, decrypted now.
fn subject(vault: &Vault, case: &CaseRecord) -> Untrusted {
    if let Some(subject) = &case.subject {
        return Untrusted::new(subject.clone());
    }
    case.messages
        .iter()
        .find(|m| {
            m.author == MELDER
                && (m.kind == Kind::Report.as_str() || m.kind == Kind::Question.as_str())
        })
        .and_then(|m| vault.read_message(&m.id).ok())
        .and_then(|body| Envelope::open(&body, &vault.identities()).ok())
        .map(|e| {
            Untrusted::new(
                e.text
                    .chars()
                    .take(super::import::SUBJECT_CHARS)
                    .collect::<String>(),
            )
        })
        .unwrap_or_default()
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorView {
    Melder,
    /// This vault's counsellor.
    You,
    /// Another counsellor on the same case, by the id the server gave.
    Counsellor(Untrusted),
    /// Claims to be the melder (or a counsellor) but is not signed by the
    /// key the case pinned (protocol.md §10.4).
    NotMelder,
}

/// One message of a case, numbered from 1 in the case's order: the number
/// exported attachments carry (`02-photo.jpg` is message 2's).
#[derive(Debug, Clone)]
pub struct MessageView {
    pub number: usize,
    pub id: MessageId,
    pub day: Day,
    pub kind: Option<Kind>,
    pub author: AuthorView,
    pub seen: bool,
    pub content: Content,
    /// What its signature showed (protocol.md §10.4).
    pub authenticity: Option<crate::review::vault::Authenticity>,
    /// A message is missing before this one.
    pub gap_before: bool,
    /// A melder's message written before they had seen this many of your
    /// replies (on their way, or withheld).
    pub unseen_replies: u32,
    /// The melder's message as a colleague forwarded it when they
    /// introduced this counsellor (protocol.md §10.5), signed by the melder.
    pub forwarded: bool,
}

/// What a message holds, as far as this vault can read it.
#[derive(Debug, Clone)]
pub enum Content {
    Readable(Box<Readable>),
    /// Another counsellor's reply: encrypted to the melder and its author.
    ForMelderOnly,
    /// Damaged, or not encrypted to any of this vault's keys.
    Unreadable(Untrusted),
    /// A message that came while an introduction waits for the counsellor
    /// to compare the introducer's fingerprint: not shown until then.
    WaitingForIntroduction,
}

#[derive(Debug, Clone)]
pub struct Readable {
    pub text: Untrusted,
    pub status: Option<Status>,
    pub category: Option<Category>,
    /// Contact details the melder chose to give: identifying.
    pub contact: Option<Untrusted>,
    pub evaluation: Option<Evaluation>,
    pub attachments: Vec<AttachmentView>,
    /// Counsellors this reply introduces to the conversation (§10.5).
    pub introduces: Vec<IntroducedView>,
}

/// A counsellor a reply introduces: to compare with the organisation's
/// published fingerprint sheet.
#[derive(Debug, Clone)]
pub struct IntroducedView {
    pub name: Untrusted,
    pub organisation: Untrusted,
    pub fingerprint: String,
}

/// A file sent with a message.
#[derive(Debug, Clone)]
pub struct AttachmentView {
    /// The message's number and the file's place in it (from 0).
    pub message: usize,
    pub index: usize,
    pub name: Untrusted,
    /// The name export gives it: `NN-` plus the sanitised name.
    pub export_name: String,
    pub media_type: Untrusted,
    pub size: u64,
    /// Why export would refuse it, if it would.
    pub damage: Option<Damage>,
}

/// A private note.
#[derive(Debug, Clone)]
pub struct NoteView {
    pub day: Day,
    /// Written by this counsellor, but shown as any text: it may quote a report.
    pub text: Untrusted,
}

/// One whole case.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub summary: CaseSummary,
    /// The counsellors the melder chose (card ids).
    pub counsellors: Vec<Untrusted>,
    pub acknowledged: Option<Day>,
    pub feedback: Option<Day>,
    pub closed: Option<Day>,
    pub evaluation: Option<Evaluation>,
    pub messages: Vec<MessageView>,
    pub notes: Vec<NoteView>,
    /// Whether a reply can be encrypted to the melder (the report was read).
    pub can_reply: bool,
    /// A signed (v2) case: a colleague can be introduced (§10.5).
    pub can_introduce: bool,
    /// An introduction of this counsellor waiting for them to compare the
    /// introducer's fingerprint before the case is taken on (§10.5).
    pub pending_introduction: Option<IntroducedView>,
}

impl CaseView {
    /// The melder's contact details, from whichever message gave them last.
    pub fn contact(&self) -> Option<&Untrusted> {
        self.messages.iter().rev().find_map(|m| match &m.content {
            Content::Readable(r) => r.contact.as_ref(),
            _ => None,
        })
    }
}

/// The whole case, decrypted in memory.
pub fn case(vault: &Vault, id: &CaseId, today: Day) -> Result<CaseView, ReviewError> {
    let record = vault
        .state
        .cases
        .get(id)
        .ok_or_else(|| ReviewError::NoSuchCase(id.to_hex()))?;
    let identities = vault.identities();
    let mut introductions = super::introduce::Introductions::default();
    let mut messages = Vec::with_capacity(record.messages.len());
    for (i, m) in record.messages.iter().enumerate() {
        let number = i + 1;
        let not_genuine = matches!(
            m.authenticity,
            Some(crate::review::vault::Authenticity::NotGenuine)
        );
        let author = if not_genuine {
            AuthorView::NotMelder
        } else if m.author == MELDER {
            AuthorView::Melder
        } else if m.author == vault.card.id {
            AuthorView::You
        } else {
            AuthorView::Counsellor(Untrusted::new(m.author.clone()))
        };
        let body = vault.read_message(&m.id)?;
        // The file must be the one that arrived (its hash was kept then).
        if m.sha256
            .as_ref()
            .is_some_and(|kept| *kept != message_hash(&body))
        {
            messages.push(MessageView {
                number,
                id: m.id,
                day: m.day,
                kind: kind_of(&m.kind),
                author: AuthorView::NotMelder,
                seen: m.seen,
                content: Content::Unreadable(Untrusted::new(
                    "the stored file is not the one that arrived".to_string(),
                )),
                authenticity: Some(crate::review::vault::Authenticity::NotGenuine),
                gap_before: m.gap_before,
                unseen_replies: 0,
                forwarded: false,
            });
            continue;
        }
        let forwarded = match m.forwarded_in {
            Some(_) => introductions.envelope(vault, record, m),
            None => None,
        };
        let is_forwarded = forwarded.is_some();
        let waiting = record.pending_introduction.is_some()
            && m.authenticity.is_none()
            && m.author != vault.card.id;
        let content = match (Envelope::open(&body, &identities), forwarded) {
            (Ok(_), _) if waiting => Content::WaitingForIntroduction,
            (Ok(envelope), _) | (Err(_), Some(envelope)) => {
                Content::Readable(Box::new(readable(vault, envelope, number)))
            }
            (Err(_), None) if matches!(author, AuthorView::Counsellor(_)) => Content::ForMelderOnly,
            (Err(e), None) => Content::Unreadable(Untrusted::new(e.to_string())),
        };
        messages.push(MessageView {
            number,
            id: m.id,
            day: m.day,
            kind: kind_of(&m.kind),
            author,
            seen: m.seen,
            content,
            authenticity: m.authenticity,
            gap_before: m.gap_before,
            forwarded: is_forwarded,
            unseen_replies: m.unseen_replies,
        });
    }
    Ok(CaseView {
        summary: summary(vault, id, record, today),
        counsellors: record
            .counsellors
            .iter()
            .map(|c| Untrusted::new(c.clone()))
            .collect(),
        acknowledged: record.acknowledged,
        feedback: record.feedback,
        closed: record.closed,
        evaluation: record.evaluation,
        messages,
        notes: record
            .notes
            .iter()
            .map(|n| NoteView {
                day: n.day,
                text: Untrusted::new(n.text.clone()),
            })
            .collect(),
        can_reply: record.reply_recipient.is_some(),
        can_introduce: record.reply_recipient.is_some()
            && record.thread.is_some()
            && record.counsellors.contains(&vault.card.id),
        pending_introduction: super::introduce::pending(vault, record).map(|(.., card)| {
            IntroducedView {
                name: Untrusted::new(card.name.clone()),
                organisation: Untrusted::new(card.organisation.clone()),
                fingerprint: card.fingerprint(),
            }
        }),
    })
}

fn kind_of(text: &str) -> Option<Kind> {
    [
        Kind::Report,
        Kind::Question,
        Kind::FollowUp,
        Kind::Reply,
        Kind::Evaluation,
    ]
    .into_iter()
    .find(|k| k.as_str() == text)
}

fn readable(vault: &Vault, envelope: Envelope, number: usize) -> Readable {
    let attachments = envelope
        .attachments
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let (size, damage) = match a.stream() {
                None => (a.bytes().map(|b| b.len() as u64).unwrap_or(0), None),
                Some(stream) => (stream.size, attachment::check_stored(vault, &stream).err()),
            };
            AttachmentView {
                message: number,
                index,
                name: Untrusted::new(a.name.clone()),
                export_name: export_name(number, &a.name),
                media_type: Untrusted::new(a.media_type.clone()),
                size,
                damage,
            }
        })
        .collect();
    Readable {
        text: Untrusted::new(envelope.text),
        status: envelope.status,
        category: envelope.category.as_deref().map(Category::parse),
        contact: envelope.contact.map(Untrusted::new),
        evaluation: envelope.evaluation,
        attachments,
        introduces: envelope
            .introduces
            .iter()
            .map(|card| IntroducedView {
                name: Untrusted::new(card.name.clone()),
                organisation: Untrusted::new(card.organisation.clone()),
                fingerprint: card.fingerprint(),
            })
            .collect(),
    }
}

/// The name export writes an attachment under (before de-duplication).
pub fn export_name(message_number: usize, name: &str) -> String {
    format!("{message_number:02}-{}", sanitize_file_name(name))
}

/// The deadlines still open, most urgent first.
pub fn open_deadlines(vault: &Vault, today: Day) -> Vec<CaseSummary> {
    overview(vault, today)
        .into_iter()
        .filter(|c| {
            !matches!(
                c.urgency,
                Urgency::Closed | Urgency::Done | Urgency::Question
            )
        })
        .collect()
}

/// Marks every message of a case as opened; saves only when something changed.
pub fn mark_seen(vault: &mut Vault, id: &CaseId) -> Result<(), ReviewError> {
    let Some(case) = vault.state.cases.get_mut(id) else {
        return Err(ReviewError::NoSuchCase(id.to_hex()));
    };
    let mut changed = false;
    for m in &mut case.messages {
        changed |= !m.seen;
        m.seen = true;
    }
    if changed {
        vault.save()?;
    }
    Ok(())
}
