//! Protocol v2's signed envelope (protocol.md §10.2): the inner envelope as
//! a JSON string, signed as those exact bytes, so no canonical JSON is
//! needed — the signer writes the bytes once and every reader checks them.
//!
//! `{"v":2,"signed":"<inner envelope JSON>","sig":"<base64 Ed25519>"}`
//!
//! Reading keeps the signature (`Seal`); which key must have made it is
//! the reader's decision (§10.4): the melder's key for the melder's
//! messages, the pinned card's for a reply. Changing the label or the
//! rules breaks stored messages — see tests/vectors/signed.json.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize};

use super::day::Day;
use super::envelope::{Envelope, EnvelopeError, Kind};

/// What every v2 signature covers before the signed bytes.
pub const LABEL: &[u8] = b"meldkluis-message-v2\n";
/// The most cards a thread pins or a reply introduces.
const MAX_CARDS: usize = 10;
/// The most of the melder's messages an introduction forwards.
pub const MAX_FORWARDED: usize = 200;
/// The largest `seq` (what a JavaScript number holds exactly).
const MAX_SEQ: u64 = (1 << 53) - 1;

/// The signature a v2 envelope arrived with, and the exact bytes it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The inner envelope's JSON text, exactly as signed.
    pub signed: String,
    pub sig: [u8; 64],
}

impl Seal {
    /// Strict Ed25519 verification (RFC 8032, no malleable signatures).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &signing_input(&self.signed),
            &Signature::from_bytes(&self.sig),
        )
        .is_ok()
    }
}

fn signing_input(signed: &str) -> Vec<u8> {
    [LABEL, signed.as_bytes()].concat()
}

/// The outer object of a v2 plaintext, as it is written and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outer {
    v: u32,
    signed: String,
    sig: String,
}

/// One of the melder's messages as an introduction forwards it (§10.5):
/// the message exactly as the melder signed it, and the SHA-256 of the age
/// file it arrived in, so the introduced counsellor can put it in its place
/// among the items of their inbox they cannot decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarded {
    pub sha256: String,
    pub message: Outer,
}

impl Forwarded {
    /// The signed form of a v2 message read with its signature; `None` for
    /// a v1 message or one made here (no signature kept).
    pub fn of(envelope: &Envelope, sha256: &str) -> Option<Self> {
        let seal = envelope.signature.as_ref()?;
        Some(Forwarded {
            sha256: sha256.to_string(),
            message: Outer {
                v: 2,
                signed: seal.signed.clone(),
                sig: STANDARD.encode(seal.sig),
            },
        })
    }

    /// The forwarded message, read and checked by §3 and §10.2's rules; its
    /// signature is kept, not verified (the reader knows which key).
    pub fn open(&self) -> Result<Envelope, EnvelopeError> {
        let envelope = from_outer(self.message.clone())?;
        envelope.validate()?;
        Ok(envelope)
    }
}

/// The outer JSON of a v2 envelope signed with `key` (not yet padded).
pub(super) fn sign(envelope: &Envelope, key: &SigningKey) -> Vec<u8> {
    let signed = serde_json::to_string(envelope).expect("an envelope always serialises");
    let sig = key.sign(&signing_input(&signed));
    serde_json::to_vec(&Outer {
        v: 2,
        sig: STANDARD.encode(sig.to_bytes()),
        signed,
    })
    .expect("the outer object always serialises")
}

/// Reads a v2 plaintext: the outer object, then the inner envelope, which
/// must itself say `v: 2`. Validation is the caller's (`from_padded`).
pub(super) fn read(plaintext: &[u8]) -> Result<Envelope, EnvelopeError> {
    let outer: Outer =
        serde_json::from_slice(plaintext).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    from_outer(outer)
}

fn from_outer(outer: Outer) -> Result<Envelope, EnvelopeError> {
    let sig: [u8; 64] = STANDARD
        .decode(&outer.sig)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(EnvelopeError::Invalid("sig is not base64 of 64 bytes"))?;
    let mut envelope: Envelope =
        serde_json::from_str(&outer.signed).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if outer.v != 2 || envelope.v != 2 {
        return Err(EnvelopeError::Invalid(
            "a signed envelope is v2 inside and out",
        ));
    }
    envelope.signature = Some(Seal {
        signed: outer.signed,
        sig,
    });
    Ok(envelope)
}

/// An Ed25519 public key from standard base64 of its 32 bytes.
pub fn verifying_key(base64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD.decode(base64).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Lower-case hex SHA-256 of an age file: what `prev` names (§10.2).
pub fn message_hash(age_file: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(age_file))
}

/// Reads `prev` so that a JSON `null` (`Some(None)`) differs from an
/// absent field (`None`).
pub(super) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

pub(super) fn validate_v1_fields(e: &Envelope) -> Result<(), EnvelopeError> {
    let none = e.thread.is_none()
        && e.seq.is_none()
        && e.prev.is_none()
        && e.cards.is_empty()
        && e.day.is_none()
        && e.introduces.is_empty()
        && e.forwarded.is_empty();
    if none {
        Ok(())
    } else {
        Err(EnvelopeError::Invalid(
            "a v1 envelope has none of v2's fields",
        ))
    }
}

/// The rules of protocol.md §10.2's table.
pub(super) fn validate_v2_fields(e: &Envelope) -> Result<(), EnvelopeError> {
    use EnvelopeError::Invalid;
    e.thread
        .as_deref()
        .and_then(verifying_key)
        .ok_or(Invalid("thread is not base64 of an Ed25519 public key"))?;
    let seq = e.seq.ok_or(Invalid("a v2 envelope has seq"))?;
    if !(1..=MAX_SEQ).contains(&seq) {
        return Err(Invalid("seq counts from 1"));
    }
    let opening = matches!(e.kind, Kind::Report | Kind::Question);
    if matches!(e.kind, Kind::FollowUp | Kind::Evaluation) && seq < 2 {
        return Err(Invalid("the melder's first message is the report"));
    }
    match &e.prev {
        None => return Err(Invalid("a v2 envelope has prev")),
        Some(None) if opening && seq == 1 => {}
        Some(None) => return Err(Invalid("only the first message has no prev")),
        Some(Some(_)) if opening && seq == 1 => {
            return Err(Invalid("the first message has prev null"));
        }
        Some(Some(hash)) => {
            if !is_sha256_hex(hash) {
                return Err(Invalid("prev is not a SHA-256 in lower-case hex"));
            }
        }
    }
    if opening {
        let same_ids = e.cards.len() == e.counsellors.len()
            && e.cards
                .iter()
                .zip(&e.counsellors)
                .all(|(c, id)| &c.id == id);
        if !same_ids {
            return Err(Invalid("cards are the counsellors' cards, in order"));
        }
        valid_cards(&e.cards)?;
    } else if !e.cards.is_empty() {
        return Err(Invalid("only a report or question carries cards"));
    }
    match (&e.day, e.kind) {
        (Some(day), Kind::Reply) if Day::parse(day).is_some() => {}
        (_, Kind::Reply) => return Err(Invalid("a reply carries the day it was written")),
        (None, _) => {}
        (Some(_), _) => return Err(Invalid("only a reply carries a day")),
    }
    if !e.introduces.is_empty() {
        if e.kind != Kind::Reply {
            return Err(Invalid("only a reply introduces counsellors"));
        }
        valid_cards(&e.introduces)?;
    }
    if !e.forwarded.is_empty() {
        valid_forwarded(e)?;
    }
    Ok(())
}

fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An introduction's forwarded messages (§10.5): each the melder's own,
/// signed with the melder's key of this very thread. One that is not makes
/// the whole introduction invalid: its writer forged or altered it.
fn valid_forwarded(e: &Envelope) -> Result<(), EnvelopeError> {
    use EnvelopeError::Invalid;
    if e.introduces.is_empty() {
        return Err(Invalid("only an introduction forwards messages"));
    }
    if e.forwarded.len() > MAX_FORWARDED {
        return Err(Invalid("an introduction forwards at most 200 messages"));
    }
    let thread = e.thread_key().ok_or(Invalid("no thread"))?;
    let mut hashes: Vec<&str> = e.forwarded.iter().map(|f| f.sha256.as_str()).collect();
    hashes.sort_unstable();
    if hashes.windows(2).any(|w| w[0] == w[1]) {
        return Err(Invalid("a forwarded message is named twice"));
    }
    for forwarded in &e.forwarded {
        if !is_sha256_hex(&forwarded.sha256) {
            return Err(Invalid("a forwarded sha256 is not lower-case hex"));
        }
        let message = forwarded.open()?;
        let melders = matches!(
            message.kind,
            Kind::Report | Kind::Question | Kind::FollowUp | Kind::Evaluation
        );
        if !melders || message.thread != e.thread || !message.verify(&thread) {
            return Err(Invalid(
                "a forwarded message is not the melder's, signed in this thread",
            ));
        }
    }
    Ok(())
}

fn valid_cards(cards: &[super::card::Card]) -> Result<(), EnvelopeError> {
    use EnvelopeError::Invalid;
    if cards.len() > MAX_CARDS {
        return Err(Invalid("at most ten cards"));
    }
    if cards.iter().any(|card| card.validate().is_err()) {
        return Err(Invalid("a card is not valid"));
    }
    let mut ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Invalid("a card is named twice"));
    }
    Ok(())
}
