//! The envelope (protocol.md §3): the JSON every message carries inside age,
//! padded with spaces to a size bucket so its length says little.
//!
//! Changing a field or the buckets breaks stored messages — see
//! tests/vectors/envelope.json.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::card::{Card, valid_id, valid_lang};
use super::ids::UploadId;
use super::signed::{self, Seal};

/// The largest padded plaintext.
pub const MAX_PLAINTEXT: usize = 16 * 1024 * 1024;
const MIN_BUCKET: usize = 4096;
const MIB: usize = 1024 * 1024;
const MAX_TEXT_CHARS: usize = 1_000_000;
const MAX_CATEGORY_CHARS: usize = 200;
const MAX_CONTACT_CHARS: usize = 2_000;
pub const MAX_ATTACHMENTS: usize = 20;
const MAX_NAME_CHARS: usize = 255;
const MAX_COUNSELLORS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Report,
    /// An advice question: a thread that opens like a report (same shape,
    /// same code and encryption) but is no report, so the statutory terms do
    /// not run. The melder can later send a `Report` in the same thread.
    Question,
    FollowUp,
    Reply,
    /// The melder's anonymous evaluation after closure.
    Evaluation,
}

/// A case status a counsellor's reply sets (protocol.md §3). "Received" is
/// implicit: the day the report arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Acknowledged,
    InProgress,
    FeedbackGiven,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in-progress",
            Status::FeedbackGiven => "feedback-given",
            Status::Closed => "closed",
        }
    }
}

/// The melder's evaluation: two scores from 1 (bad) to 5 (good); what should
/// improve goes in the envelope's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// How did the process go?
    pub process: u8,
    /// Did you feel heard?
    pub heard: u8,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Report => "report",
            Kind::Question => "question",
            Kind::FollowUp => "follow-up",
            Kind::Reply => "reply",
            Kind::Evaluation => "evaluation",
        }
    }
}

/// The counsellor who wrote a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub id: String,
    pub name: String,
}

/// A file sent with a message. Its name and type come from the melder and are
/// untrusted: never use them as a path or print them raw.
///
/// Two forms (protocol.md §3): *inline*, with `data`, or *streamed*, with
/// `size`, `upload` and `head_sha256`, naming a separate age file (§3a).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    #[serde(rename = "type")]
    pub media_type: String,
    /// Inline form: the file as standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Streamed form: the file's real length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Streamed form: the upload that holds the file's age stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadId>,
    /// Streamed form: SHA-256 of the age file's header and nonce, 64 hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha256: Option<String>,
}

/// Where a streamed attachment's bytes are and how to recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamedFile {
    pub size: u64,
    pub upload: UploadId,
    pub head_sha256: [u8; 32],
}

/// The largest file size a streamed attachment may state (2^53 − 1, what a
/// JavaScript number holds exactly).
const MAX_STREAMED_SIZE: u64 = (1 << 53) - 1;

impl Attachment {
    /// An inline attachment holding `bytes`.
    pub fn inline(name: impl Into<String>, media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Attachment {
            name: name.into(),
            media_type: media_type.into(),
            data: Some(STANDARD.encode(bytes)),
            size: None,
            upload: None,
            head_sha256: None,
        }
    }

    /// A streamed attachment (protocol.md §3a).
    pub fn streamed(
        name: impl Into<String>,
        media_type: impl Into<String>,
        file: StreamedFile,
    ) -> Self {
        Attachment {
            name: name.into(),
            media_type: media_type.into(),
            data: None,
            size: Some(file.size),
            upload: Some(file.upload),
            head_sha256: Some(hex::encode(file.head_sha256)),
        }
    }

    /// The bytes of an inline attachment.
    pub fn bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        let data = self.data.as_deref().ok_or(EnvelopeError::Invalid(
            "the attachment is streamed, not inline",
        ))?;
        STANDARD
            .decode(data)
            .map_err(|_| EnvelopeError::Invalid("an attachment is not valid base64"))
    }

    /// The stream a streamed attachment names; `None` for an inline one.
    pub fn stream(&self) -> Option<StreamedFile> {
        let mut head_sha256 = [0u8; 32];
        hex::decode_to_slice(self.head_sha256.as_deref()?, &mut head_sha256).ok()?;
        Some(StreamedFile {
            size: self.size?,
            upload: self.upload?,
            head_sha256,
        })
    }

    /// Exactly one form, and a well-formed one.
    fn validate_form(&self) -> Result<(), EnvelopeError> {
        use EnvelopeError::Invalid;
        match (&self.data, self.size, self.upload, &self.head_sha256) {
            (Some(data), None, None, None) => {
                STANDARD
                    .decode(data)
                    .map_err(|_| Invalid("an attachment is not valid base64"))?;
                Ok(())
            }
            (None, Some(size), Some(_), Some(head)) => {
                let lower_hex = head.len() == 64
                    && head.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if size > MAX_STREAMED_SIZE || !lower_hex {
                    return Err(Invalid("a streamed attachment is malformed"));
                }
                Ok(())
            }
            _ => Err(Invalid(
                "an attachment has either data, or size, upload and head_sha256",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    pub kind: Kind,
    pub text: String,
    /// The language the writer wrote in, a BCP 47 tag ("nl", "en"); absent
    /// in older messages, which a page marks as of unknown language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub reply_recipient: Option<String>,
    #[serde(default)]
    pub counsellors: Vec<String>,
    #[serde(default)]
    pub author: Option<Author>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Replies only: the status this reply sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Evaluations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// v2 (protocol.md §10.2): the melder's public signing key, base64 —
    /// the conversation this message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// v2: the author's own number in this thread, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// v2: SHA-256 (hex) of the age file of the last message the author had
    /// seen; `Some(None)` is the JSON `null` of the first message.
    #[serde(
        default,
        deserialize_with = "signed::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub prev: Option<Option<String>>,
    /// v2, report and question: the exact cards the message was encrypted to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<Card>,
    /// v2, reply: the day the counsellor wrote it, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// v2, reply: counsellors the writer introduces to the thread (§10.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introduces: Vec<Card>,
    /// v2, an introduction: the melder's messages the writer forwards to
    /// the counsellors it introduces, each as the melder signed it (§10.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<signed::Forwarded>,
    /// v2: the signature this envelope arrived with (not part of the JSON).
    #[serde(skip)]
    pub signature: Option<Seal>,
}

/// Why an envelope could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The JSON is not an envelope of this version.
    #[error("not a valid envelope: {0}")]
    Malformed(String),
    /// A field breaks a rule of protocol.md §3.
    #[error("not a valid envelope: {0}")]
    Invalid(&'static str),
    /// The plaintext would exceed the largest bucket.
    #[error("the message is larger than {} MiB", MAX_PLAINTEXT / MIB)]
    TooLarge,
    /// age could not encrypt (no recipients, or a bad one).
    #[error("could not encrypt: {0}")]
    Encrypt(String),
    /// age could not decrypt: not for this identity, or damaged.
    #[error("could not decrypt: {0}")]
    Decrypt(String),
}

impl Envelope {
    /// An empty envelope of a kind; fill in the fields you need.
    pub fn new(kind: Kind, text: impl Into<String>) -> Self {
        Envelope {
            v: 1,
            kind,
            text: text.into(),
            lang: None,
            category: None,
            contact: None,
            reply_recipient: None,
            counsellors: Vec::new(),
            author: None,
            attachments: Vec::new(),
            status: None,
            evaluation: None,
            thread: None,
            seq: None,
            prev: None,
            cards: Vec::new(),
            day: None,
            introduces: Vec::new(),
            forwarded: Vec::new(),
            signature: None,
        }
    }

    /// Checks the rules of protocol.md §3.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        use EnvelopeError::Invalid;
        match self.v {
            1 => signed::validate_v1_fields(self)?,
            2 => signed::validate_v2_fields(self)?,
            _ => return Err(Invalid("unsupported version")),
        }
        if self.text.chars().count() > MAX_TEXT_CHARS {
            return Err(Invalid("the text is too long"));
        }
        if self.text.trim().is_empty()
            && self.attachments.is_empty()
            && self.kind != Kind::Evaluation
        {
            return Err(Invalid("a message needs text or an attachment"));
        }
        if self.lang.as_deref().is_some_and(|tag| !valid_lang(tag)) {
            return Err(Invalid("lang is not a language tag"));
        }
        if too_long(&self.category, MAX_CATEGORY_CHARS) {
            return Err(Invalid("the category is too long"));
        }
        if too_long(&self.contact, MAX_CONTACT_CHARS) {
            return Err(Invalid("the contact details are too long"));
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(Invalid("too many attachments"));
        }
        for attachment in &self.attachments {
            if attachment.name.chars().count() > MAX_NAME_CHARS
                || attachment.media_type.chars().count() > MAX_NAME_CHARS
            {
                return Err(Invalid("an attachment name or type is too long"));
            }
            attachment.validate_form()?;
        }
        let mut uploads: Vec<UploadId> = self.attachments.iter().filter_map(|a| a.upload).collect();
        uploads.sort();
        if uploads.windows(2).any(|w| w[0] == w[1]) {
            return Err(Invalid("two attachments name the same upload"));
        }
        match self.kind {
            Kind::Report | Kind::Question => {
                let recipient = self
                    .reply_recipient
                    .as_deref()
                    .ok_or(Invalid("a report needs a reply recipient"))?;
                // v1: X25519; v2: also the post-quantum hybrid kind.
                recipient
                    .parse::<crate::format::keys::Recipient>()
                    .map_err(|_| Invalid("the reply recipient is not an age recipient"))?;
                if self.counsellors.is_empty() || self.counsellors.len() > MAX_COUNSELLORS {
                    return Err(Invalid("a report names one to ten counsellors"));
                }
                if !self.counsellors.iter().all(|id| valid_id(id)) {
                    return Err(Invalid("a counsellor id is malformed"));
                }
            }
            Kind::FollowUp | Kind::Reply | Kind::Evaluation => {
                if self.reply_recipient.is_some() || !self.counsellors.is_empty() {
                    return Err(Invalid(
                        "only a report carries a reply recipient and counsellors",
                    ));
                }
            }
        }
        match (&self.author, self.kind) {
            (Some(author), Kind::Reply) if valid_id(&author.id) && !author.name.is_empty() => {}
            (None, Kind::Report | Kind::Question | Kind::FollowUp | Kind::Evaluation) => {}
            (_, Kind::Reply) => return Err(Invalid("a reply names its author")),
            _ => return Err(Invalid("only a reply has an author")),
        }
        if self.status.is_some() && self.kind != Kind::Reply {
            return Err(Invalid("only a reply sets a status"));
        }
        match (&self.evaluation, self.kind) {
            (Some(e), Kind::Evaluation)
                if (1..=5).contains(&e.process) && (1..=5).contains(&e.heard) => {}
            (None, Kind::Report | Kind::Question | Kind::FollowUp | Kind::Reply) => {}
            (_, Kind::Evaluation) => {
                return Err(Invalid("an evaluation has two scores from 1 to 5"));
            }
            _ => return Err(Invalid("only an evaluation has scores")),
        }
        Ok(())
    }

    /// Serialises, validates and pads: the exact plaintext that gets
    /// encrypted. A v2 envelope must be signed: use `to_padded_signed`.
    pub fn to_padded(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.validate()?;
        if self.v != 1 {
            return Err(EnvelopeError::Invalid("a v2 envelope must be signed"));
        }
        pad(serde_json::to_vec(self).expect("an envelope always serialises"))
    }

    /// A v2 envelope signed with `key` (protocol.md §10.2), padded.
    pub fn to_padded_signed(
        &self,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        self.validate()?;
        if self.v != 2 {
            return Err(EnvelopeError::Invalid("only a v2 envelope is signed"));
        }
        pad(signed::sign(self, key))
    }

    /// Reads a decrypted plaintext: JSON followed by space padding. A v2
    /// plaintext is read and its signature kept in `signature`, not verified:
    /// the reader decides which key must have signed it (`verify`).
    pub fn from_padded(plaintext: &[u8]) -> Result<Self, EnvelopeError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(EnvelopeError::TooLarge);
        }
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(plaintext)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let envelope = match version.v {
            2 => signed::read(plaintext)?,
            _ => serde_json::from_slice::<Envelope>(plaintext)
                .map_err(|e| EnvelopeError::Malformed(e.to_string()))?,
        };
        envelope.validate()?;
        Ok(envelope)
    }

    /// Pads, signs with `key` and encrypts a v2 envelope to every recipient.
    pub fn seal_signed<R: age::Recipient>(
        &self,
        recipients: &[R],
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let plaintext = zeroize::Zeroizing::new(self.to_padded_signed(key)?);
        super::encrypt(recipients, &plaintext).map_err(EnvelopeError::Encrypt)
    }

    /// True when this v2 envelope arrived signed by `key` (§10.4). A v1
    /// envelope is never verified.
    pub fn verify(&self, key: &ed25519_dalek::VerifyingKey) -> bool {
        self.signature.as_ref().is_some_and(|seal| seal.verify(key))
    }

    /// The melder's public signing key this v2 message names, if well formed.
    pub fn thread_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        signed::verifying_key(self.thread.as_deref()?)
    }

    /// Pads and encrypts to every recipient.
    pub fn seal<R: age::Recipient>(&self, recipients: &[R]) -> Result<Vec<u8>, EnvelopeError> {
        let plaintext = zeroize::Zeroizing::new(self.to_padded()?);
        super::encrypt(recipients, &plaintext).map_err(EnvelopeError::Encrypt)
    }

    /// Decrypts with any of `identities` and reads the envelope.
    pub fn open(
        ciphertext: &[u8],
        identities: &[&dyn age::Identity],
    ) -> Result<Self, EnvelopeError> {
        let decryptor =
            age::Decryptor::new(ciphertext).map_err(|e| EnvelopeError::Decrypt(e.to_string()))?;
        let reader = decryptor
            .decrypt(identities.iter().copied())
            .map_err(|e| EnvelopeError::Decrypt(e.to_string()))?;
        let mut plaintext = zeroize::Zeroizing::new(Vec::new());
        reader
            .take(MAX_PLAINTEXT as u64 + 1)
            .read_to_end(&mut plaintext)
            .map_err(|e| EnvelopeError::Decrypt(e.to_string()))?;
        Self::from_padded(&plaintext)
    }
}

fn pad(mut json: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
    let padded = padded_length(json.len()).ok_or(EnvelopeError::TooLarge)?;
    json.resize(padded, b' ');
    Ok(json)
}

fn too_long(field: &Option<String>, max: usize) -> bool {
    field.as_ref().is_some_and(|s| s.chars().count() > max)
}

/// The bucket for a plaintext of `len` bytes, or `None` above the maximum.
pub fn padded_length(len: usize) -> Option<usize> {
    let padded = if len <= MIN_BUCKET {
        MIN_BUCKET
    } else if len <= MIB {
        len.next_power_of_two()
    } else {
        len.div_ceil(MIB) * MIB
    };
    (padded <= MAX_PLAINTEXT).then_some(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(recipient: &age::x25519::Recipient) -> Envelope {
        let mut envelope = Envelope::new(Kind::Report, "Er wordt gefraudeerd.");
        envelope.reply_recipient = Some(recipient.to_string());
        envelope.counsellors = vec!["vp-jansen".into()];
        envelope.contact = Some("06-12345678".into());
        envelope
    }

    #[test]
    fn buckets() {
        assert_eq!(padded_length(0), Some(4096));
        assert_eq!(padded_length(4096), Some(4096));
        assert_eq!(padded_length(4097), Some(8192));
        assert_eq!(padded_length(MIB), Some(MIB));
        assert_eq!(padded_length(MIB + 1), Some(2 * MIB));
        assert_eq!(padded_length(MAX_PLAINTEXT), Some(MAX_PLAINTEXT));
        assert_eq!(padded_length(MAX_PLAINTEXT + 1), None);
    }

    #[test]
    fn seals_and_opens_for_every_recipient() {
        let counsellor = age::x25519::Identity::generate();
        let melder = age::x25519::Identity::generate();
        let envelope = report(&melder.to_public());
        let sealed = envelope
            .seal(&[counsellor.to_public(), melder.to_public()])
            .unwrap();
        crate::format::agefile::AgeBlob::parse(sealed.clone()).unwrap();
        for identity in [&counsellor, &melder] {
            assert_eq!(Envelope::open(&sealed, &[identity]).unwrap(), envelope);
        }
        let stranger = age::x25519::Identity::generate();
        assert!(matches!(
            Envelope::open(&sealed, &[&stranger]),
            Err(EnvelopeError::Decrypt(_))
        ));
    }

    #[test]
    fn padding_hides_small_differences() {
        let melder = age::x25519::Identity::generate();
        let short = report(&melder.to_public()).to_padded().unwrap();
        let mut longer = report(&melder.to_public());
        longer.text = "x".repeat(3000);
        assert_eq!(short.len(), longer.to_padded().unwrap().len());
    }

    #[test]
    fn refuses_hostile_envelopes() {
        let melder = age::x25519::Identity::generate();
        let good = report(&melder.to_public());
        let mut cases: Vec<Envelope> = Vec::new();
        let mut e = good.clone();
        e.reply_recipient = None;
        cases.push(e);
        let mut e = good.clone();
        e.reply_recipient = Some("age1nope".into());
        cases.push(e);
        let mut e = good.clone();
        e.counsellors.clear();
        cases.push(e);
        let mut e = good.clone();
        e.counsellors = vec!["../etc".into()];
        cases.push(e);
        let mut e = good.clone();
        e.kind = Kind::Reply;
        cases.push(e);
        let mut e = good.clone();
        e.text = " ".into();
        cases.push(e);
        let mut e = good.clone();
        e.v = 2;
        cases.push(e);
        let mut e = good.clone();
        e.text = "x".repeat(MAX_TEXT_CHARS + 1);
        cases.push(e);
        for case in cases {
            assert!(case.validate().is_err(), "{case:?}");
        }
        for raw in [
            &b"{}"[..],
            b"[]",
            b"null",
            b"{\"v\":1,\"kind\":\"report\",\"text\":\"x\",\"evil\":1}",
            b"{\"v\":1,\"kind\":\"nonsense\",\"text\":\"x\"}",
            b"\xff\xfe",
            &[b'['; 100_000],
        ] {
            assert!(Envelope::from_padded(raw).is_err());
        }
    }
}
