//! A colleague joins a case (protocol.md §10.5), on both laptops.
//!
//! **The introducer** writes a signed reply whose `introduces` names the
//! colleague's card and whose `forwarded` carries the melder's messages as
//! the melder signed them; it is encrypted to the melder, the introducer
//! and the colleague. The outbox item names the colleague, so the server
//! adds them to the case; the melder's page pins their card from that
//! reply on, so the melder's next messages are encrypted to them too.
//!
//! **The colleague's laptop** then receives the whole case: the earlier
//! messages as items it cannot decrypt, and the introduction, which it can.
//! It takes the case on ([`adopt`]) only when the introduction names this
//! vault's own card, forwards the melder's opening message signed by the
//! melder's key, and is itself signed by a counsellor that opening was
//! encrypted to. Everything else about the case (the melder's key, the
//! reply key, the pinned cards) then comes from what the melder signed,
//! never from the server or the courier.

use std::collections::BTreeMap;

use crate::format::bundle::OutboxKind;
use crate::format::card::Card;
use crate::format::day::Day;
use crate::format::envelope::{Envelope, Kind};
use crate::format::ids::{CaseId, MessageId};
use crate::format::keys::Recipient;
use crate::format::signed::{Forwarded, MAX_FORWARDED};

use super::authenticity;
use super::commands::queue_reply;
use super::error::{IntroduceRefusal, ReviewError};
use super::import::SUBJECT_CHARS;
use super::records::{Authenticity, CaseRecord, MessageRecord};
use super::terminal::clean_line;
use super::vault::Vault;
use super::views::MELDER;

/// What turns a reply into an introduction.
pub(super) struct Introduction {
    pub card: Card,
    pub recipient: Recipient,
    pub forwarded: Vec<Forwarded>,
}

/// Introduces `colleague` to a case: queues a signed reply to the melder
/// that names their card (the melder's page shows their name and
/// fingerprint) and forwards the melder's messages to them. The colleague
/// gets the case with their next sync after this outbox reached the
/// server. Refused, changing nothing, for a case of the older format, a
/// colleague already on the case, this vault's own card, or a card whose
/// key is of another kind than the melder's.
pub fn introduce(
    vault: &mut Vault,
    case_id: &CaseId,
    colleague: &Card,
    text: &str,
    today: Day,
) -> Result<MessageId, ReviewError> {
    colleague.validate()?;
    let case = vault
        .state
        .cases
        .get(case_id)
        .ok_or_else(|| ReviewError::NoSuchCase(case_id.to_hex()))?;
    let refuse = |why| ReviewError::CannotIntroduce {
        case: case_id.to_hex(),
        colleague: clean_line(&colleague.id),
        why,
    };
    if case.closed.is_some() {
        return Err(ReviewError::CaseClosed(case_id.to_hex()));
    }
    if case.thread.is_none() {
        return Err(refuse(IntroduceRefusal::OlderFormat));
    }
    if colleague.id == vault.card.id || colleague.signing_key == vault.card.signing_key {
        return Err(refuse(IntroduceRefusal::OwnCard));
    }
    if case.pinned.contains_key(&colleague.id) {
        return Err(refuse(IntroduceRefusal::AlreadyOnCase));
    }
    if !case.counsellors.contains(&vault.card.id) {
        return Err(refuse(IntroduceRefusal::NotChosen));
    }
    let melder: Recipient = case
        .reply_recipient
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| ReviewError::NoReplyRecipient(case_id.to_hex()))?;
    let recipient = colleague.recipient()?;
    if recipient.is_post_quantum() != melder.is_post_quantum() {
        return Err(refuse(IntroduceRefusal::KeyKindDiffers));
    }
    let forwarded = forwarded_messages(vault, case)?;
    queue_reply(
        vault,
        case_id,
        text,
        None,
        OutboxKind::Reply,
        today,
        Some(Introduction {
            card: colleague.clone(),
            recipient,
            forwarded,
        }),
    )
}

/// The melder's genuine messages of a case as the melder signed them: the
/// opening always, then the latest, at most [`MAX_FORWARDED`] in all. A
/// message this vault itself had forwarded to it is forwarded on as it came.
fn forwarded_messages(vault: &Vault, case: &CaseRecord) -> Result<Vec<Forwarded>, ReviewError> {
    let mut all = Vec::new();
    let mut introductions = Introductions::default();
    for record in &case.messages {
        let genuine = record.author == MELDER
            && record.authenticity == Some(Authenticity::Verified)
            && record.sha256.is_some();
        if !genuine {
            continue;
        }
        let sha256 = record.sha256.as_deref().unwrap_or_default();
        let found = match record.forwarded_in {
            Some(introduction) => introductions.entry(vault, introduction, sha256),
            None => {
                let body = vault.read_message(&record.id)?;
                Envelope::open(&body, &vault.identities())
                    .ok()
                    .and_then(|envelope| Forwarded::of(&envelope, sha256))
            }
        };
        all.extend(found);
    }
    if all.len() > MAX_FORWARDED {
        all.drain(1..=all.len() - MAX_FORWARDED);
    }
    Ok(all)
}

/// A case's introductions, each decrypted once, for the forwarded messages
/// they hold: a case view or a further introduction reads many of them
/// from the same introduction.
#[derive(Default)]
pub struct Introductions(BTreeMap<MessageId, Vec<Forwarded>>);

impl Introductions {
    /// The forwarded message with this age-file hash in the introduction
    /// `introduction` of this vault.
    fn entry(&mut self, vault: &Vault, introduction: MessageId, sha256: &str) -> Option<Forwarded> {
        let forwarded = self.0.entry(introduction).or_insert_with(|| {
            vault
                .read_message(&introduction)
                .ok()
                .and_then(|body| Envelope::open(&body, &vault.identities()).ok())
                .map(|envelope| envelope.forwarded)
                .unwrap_or_default()
        });
        forwarded.iter().find(|f| f.sha256 == sha256).cloned()
    }

    /// A melder's message this vault cannot decrypt, read from the
    /// introduction that forwarded it, its signature checked once more
    /// against the case's pinned melder key. `None` when it is not there or
    /// does not verify.
    pub fn envelope(
        &mut self,
        vault: &Vault,
        case: &CaseRecord,
        record: &MessageRecord,
    ) -> Option<Envelope> {
        let entry = self.entry(vault, record.forwarded_in?, record.sha256.as_deref()?)?;
        let envelope = entry.open().ok()?;
        let thread = crate::format::signed::verifying_key(case.thread.as_deref()?)?;
        (envelope.thread == case.thread && envelope.verify(&thread)).then_some(envelope)
    }
}

/// What an introduction of this vault's own card is worth (§10.5).
pub enum Introduced {
    /// It introduces someone else, or the case is known here already:
    /// judge it as any reply.
    NotForMe,
    /// It claims to introduce this counsellor but does not hold up.
    Forged,
    /// It holds up, signed by this card of the melder's opening: the
    /// introducer's card, whose fingerprint the counsellor compares with the
    /// organisation's published list before the case is taken on (anyone
    /// can write an opening, the operator too, and name any card in it).
    Valid(Box<Card>),
}

/// Checks `envelope` (a reply by `author`) as an introduction of `mine` to
/// `case`. Only a case this vault knows nothing readable of can be taken on
/// this way: no pinned thread, no reply key, nothing readable, nothing of
/// this counsellor's own (an introduction cannot take over a case).
pub fn check(case: &CaseRecord, author: &str, envelope: &Envelope, mine: &Card) -> Introduced {
    let for_me = envelope.introduces.iter().any(|card| {
        card.id == mine.id
            && card.signing_key == mine.signing_key
            && card.age_recipient == mine.age_recipient
    });
    if envelope.v != 2 || envelope.kind != Kind::Reply || !for_me {
        return Introduced::NotForMe;
    }
    let unknown = case.thread.is_none()
        && case.reply_recipient.is_none()
        && case.pending_introduction.is_none()
        && case.messages.iter().all(|m| {
            let readable = matches!(
                m.authenticity,
                Some(Authenticity::Verified | Authenticity::Older)
            );
            !readable && m.forwarded_in.is_none() && m.author != mine.id
        });
    if !unknown {
        // A case known here is not taken over by an introduction; as a
        // reply it is judged like any other (a copy is a replay).
        return Introduced::NotForMe;
    }
    // Every forwarded message verified with the thread's key when the
    // envelope was read (signed.rs); the opening names the cards.
    let opening = opening(envelope);
    let introducer = opening.and_then(|o| o.cards.into_iter().find(|c| c.id == author));
    let signed = envelope.author.as_ref().is_some_and(|a| a.id == author)
        && introducer
            .as_ref()
            .and_then(|card| card.verifying_key().ok())
            .is_some_and(|key| envelope.verify(&key));
    match (introducer, signed) {
        (Some(card), true) => Introduced::Valid(Box::new(card)),
        _ => Introduced::Forged,
    }
}

/// The melder's opening (report or question, number 1) among the
/// forwarded messages.
fn opening(envelope: &Envelope) -> Option<Envelope> {
    envelope
        .forwarded
        .iter()
        .filter_map(|f| f.open().ok())
        .find(|m| matches!(m.kind, Kind::Report | Kind::Question) && m.seq == Some(1))
}

/// Takes the case on from an introduction [`check`] found valid and the
/// counsellor confirmed (message `id`, by `author`): the melder's key, the
/// reply key and the pinned cards from the opening (an introduced card never
/// replaces one the opening pinned), and each forwarded message in the place
/// of the undecryptable item its hash names, once.
pub fn take_on(case: &mut CaseRecord, author: &str, id: MessageId, envelope: &Envelope) {
    let Some(opening) = opening(envelope) else {
        return;
    };
    case.thread = envelope.thread.clone();
    case.pinned = opening
        .cards
        .iter()
        .map(|card| (card.id.clone(), card.signing_key.clone()))
        .collect();
    for card in &envelope.introduces {
        case.pinned
            .entry(card.id.clone())
            .or_insert_with(|| card.signing_key.clone());
    }
    case.reply_recipient = opening.reply_recipient.clone();
    case.category = opening.category.clone();
    case.counsellors = opening.counsellors.clone();
    case.pending_introduction = None;
    for forwarded in &envelope.forwarded {
        let Ok(message) = forwarded.open() else {
            continue;
        };
        let Some(record) = case.messages.iter_mut().find(|m| {
            m.author == MELDER
                && m.authenticity.is_none()
                && m.forwarded_in.is_none()
                && m.sha256.as_deref() == Some(forwarded.sha256.as_str())
        }) else {
            continue;
        };
        record.forwarded_in = Some(id);
        record.authenticity = Some(Authenticity::Verified);
        record.kind = message.kind.as_str().into();
        let day = record.day;
        case.melder_seq = case.melder_seq.max(message.seq.unwrap_or(0));
        match message.kind {
            Kind::Question if message.seq == Some(1) => {
                case.question = true;
                case.asked = Some(day);
                case.received = day;
                case.subject = Some(message.text.chars().take(SUBJECT_CHARS).collect());
            }
            Kind::Report => {
                case.question = false;
                case.received = day;
                case.subject = Some(message.text.chars().take(SUBJECT_CHARS).collect());
                if message.category.is_some() {
                    case.category = message.category.clone();
                }
            }
            Kind::Evaluation => case.evaluation = message.evaluation,
            _ => {}
        }
    }
    // The introduction is a message to the melder: their receipt was
    // acknowledged by then.
    let said = envelope.day.as_deref().and_then(Day::parse);
    case.acknowledged = case.acknowledged.or(said);
    case.colleague_seq
        .insert(author.to_string(), envelope.seq.unwrap_or(0));
    if let Some(record) = case.messages.iter_mut().find(|m| m.id == id) {
        record.authenticity = Some(Authenticity::Verified);
    }
}

/// The introduction waiting in a case for the counsellor to compare the
/// introducer's fingerprint, with the introducer's card.
pub fn pending(vault: &Vault, case: &CaseRecord) -> Option<(MessageId, String, Envelope, Card)> {
    let id = case.pending_introduction?;
    let record = case.messages.iter().find(|m| m.id == id)?;
    let body = vault.read_message(&id).ok()?;
    let envelope = Envelope::open(&body, &vault.identities()).ok()?;
    match check(&without(case, id), &record.author, &envelope, &vault.card) {
        Introduced::Valid(card) => Some((id, record.author.clone(), envelope, *card)),
        _ => None,
    }
}

/// The case as it was before the introduction `id` arrived (for checking
/// it again: the introduction itself is not a readable message yet).
fn without(case: &CaseRecord, id: MessageId) -> CaseRecord {
    let mut before = case.clone();
    before.pending_introduction = None;
    before.messages.retain(|m| m.id != id);
    before
}

/// The counsellor compared the introducer's fingerprint and confirms: the
/// case is taken on, and the introducer's card is remembered, so a later
/// introduction by the same card is taken on without asking again.
pub fn accept(vault: &mut Vault, case_id: &CaseId) -> Result<(), ReviewError> {
    let case = vault
        .state
        .cases
        .get(case_id)
        .ok_or_else(|| ReviewError::NoSuchCase(case_id.to_hex()))?;
    let (id, author, envelope, card) =
        pending(vault, case).ok_or_else(|| ReviewError::NoIntroduction(case_id.to_hex()))?;
    // A conversation belongs to one case (import.rs): one this vault pinned
    // elsewhere is not taken on a second time.
    let elsewhere =
        vault.state.cases.iter().any(|(other, c)| {
            other != case_id && c.thread.is_some() && c.thread == envelope.thread
        });
    if elsewhere {
        return Err(ReviewError::NoIntroduction(case_id.to_hex()));
    }
    // The messages that came while it waited (the melder's, and copies of
    // replies), opened now and judged below against what it pinned.
    let after = case
        .messages
        .iter()
        .position(|m| m.id == id)
        .map_or(0, |p| p + 1);
    let identities = vault.identities();
    let waited: Vec<(usize, Envelope)> = case.messages[after..]
        .iter()
        .enumerate()
        .filter(|(_, m)| m.authenticity.is_none() && m.author != vault.card.id)
        .filter_map(|(i, m)| {
            let body = vault.read_message(&m.id).ok()?;
            Some((after + i, Envelope::open(&body, &identities).ok()?))
        })
        .collect();
    let me = vault.card.id.clone();
    let case = vault.state.cases.get_mut(case_id).expect("found above");
    take_on(case, &author, id, &envelope);
    for (i, message) in waited {
        let author = case.messages[i].author.clone();
        if author != MELDER {
            case.messages[i].authenticity = authenticity::judge_reply(case, &author, &me, &message);
            continue;
        }
        let self_signed = message.thread_key().is_some_and(|key| message.verify(&key));
        let judged = authenticity::judge_melder(case, &message, self_signed);
        if judged.authenticity == Authenticity::Verified {
            case.messages[i].unseen_replies = authenticity::unseen_replies(case, &message, &me);
            authenticity::record_melder(case, &message);
        }
        case.messages[i].authenticity = Some(judged.authenticity);
        case.messages[i].gap_before = judged.gap_before;
    }
    vault.state.colleagues.insert(card.id.clone(), card);
    vault.save()
}
