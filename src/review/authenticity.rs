//! What the laptop decides about each message it imports (protocol.md
//! §10.4): whether the melder really wrote it, and whether one is missing
//! before it. The case pins the melder's key from its first message; from
//! then on a melder message counts only when that key signed it, with the
//! next number, after a message this laptop knows.

use crate::format::envelope::{Envelope, Kind};

use super::vault::{Authenticity, CaseRecord};

/// What one imported melder message is, and what it does to its case.
pub struct Judged {
    pub authenticity: Authenticity,
    pub gap_before: bool,
}

/// Judges a melder message against its case as imported so far.
/// `self_signed`: the envelope's signature verifies with its own `thread`
/// key (checked while the inbox was read, when the signed bytes were at hand).
pub fn judge_melder(case: &CaseRecord, envelope: &Envelope, self_signed: bool) -> Judged {
    let judged = |authenticity, gap_before| Judged {
        authenticity,
        gap_before,
    };
    if envelope.v == 1 {
        // An unsigned message in a signed thread is what an operator who
        // inserts a message into the database can make.
        return match case.thread {
            Some(_) => judged(Authenticity::NotGenuine, false),
            None => judged(Authenticity::Older, false),
        };
    }
    let seq = envelope.seq.unwrap_or(0);
    if !self_signed {
        return judged(Authenticity::NotGenuine, false);
    }
    let Some(pinned) = case.thread.as_deref() else {
        // The first message pins the thread; a signed message in a case
        // that pinned nothing has nothing to be checked against.
        let opening = matches!(envelope.kind, Kind::Report | Kind::Question)
            && seq == 1
            && case.reply_recipient.is_none();
        return match opening {
            true => judged(Authenticity::Verified, false),
            false => judged(Authenticity::NotGenuine, false),
        };
    };
    if envelope.thread.as_deref() != Some(pinned) {
        return judged(Authenticity::NotGenuine, false);
    }
    if seq <= case.melder_seq {
        return judged(Authenticity::Replayed, false);
    }
    let known_prev = match envelope.prev.as_ref().and_then(|p| p.as_deref()) {
        Some(hash) => case
            .messages
            .iter()
            .any(|m| m.sha256.as_deref() == Some(hash)),
        None => true,
    };
    judged(
        Authenticity::Verified,
        seq > case.melder_seq + 1 || !known_prev,
    )
}

/// Judges a counsellor's reply this vault can read (a colleague's, or one
/// that claims to be this counsellor's own) in a signed thread: it must be
/// a reply by the counsellor the server names, in this thread, signed with
/// that counsellor's pinned card key, and numbered after the last one seen
/// of them — a lower number again is a replay. `None` for a case of the
/// older format.
pub fn judge_reply(
    case: &mut CaseRecord,
    author: &str,
    me: &str,
    envelope: &Envelope,
) -> Option<Authenticity> {
    let thread = case.thread.as_deref()?;
    let key = case
        .pinned
        .get(author)
        .and_then(|k| crate::format::signed::verifying_key(k));
    let genuine = envelope.v == 2
        && envelope.kind == Kind::Reply
        && envelope.author.as_ref().is_some_and(|a| a.id == author)
        && envelope.thread.as_deref() == Some(thread)
        && key.is_some_and(|key| envelope.verify(&key));
    if !genuine {
        return Some(Authenticity::NotGenuine);
    }
    let seq = envelope.seq.unwrap_or(0);
    let last = match author == me {
        true => &mut case.my_seq,
        false => case.colleague_seq.entry(author.to_string()).or_insert(0),
    };
    if seq <= *last {
        return Some(Authenticity::Replayed);
    }
    *last = seq;
    Some(Authenticity::Verified)
}

/// How many of this counsellor's (`me`) replies in the case come after the
/// message a melder's message names in `prev`: replies the melder had not
/// seen. 0 when `prev` names no message here (that is a gap, shown apart).
pub fn unseen_replies(case: &CaseRecord, envelope: &Envelope, me: &str) -> u32 {
    let Some(Some(prev)) = envelope.prev.as_ref() else {
        return 0;
    };
    let Some(seen) = case
        .messages
        .iter()
        .position(|m| m.sha256.as_deref() == Some(prev.as_str()))
    else {
        return 0;
    };
    case.messages[seen + 1..]
        .iter()
        .filter(|m| m.author == me)
        .count() as u32
}

/// Records a verified melder message in its case: the first pins the
/// thread and the cards it was encrypted to, every one moves the melder's
/// number on.
pub fn record_melder(case: &mut CaseRecord, envelope: &Envelope) {
    if case.thread.is_none() {
        case.thread = envelope.thread.clone();
        case.pinned = envelope
            .cards
            .iter()
            .map(|card| (card.id.clone(), card.signing_key.clone()))
            .collect();
    }
    case.melder_seq = case.melder_seq.max(envelope.seq.unwrap_or(0));
}

/// Whether a message may change its case (subject, category, a question
/// turned report, an evaluation) and count for a deadline.
pub fn counts(authenticity: Option<Authenticity>) -> bool {
    matches!(
        authenticity,
        None | Some(Authenticity::Older | Authenticity::Verified)
    )
}
