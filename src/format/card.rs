//! The counsellor card (protocol.md §5): the public half of a counsellor,
//! made on the laptop by `meldkluis-review init` and installed by the operator
//! in the server's `keys/` directory.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAX_CARD_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CounsellorKind {
    Internal,
    External,
}

/// The card as it is written to disk and served (without the signing key) to
/// browsers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub format: String,
    pub v: u32,
    pub id: String,
    pub name: String,
    pub organisation: String,
    /// Short id of the organisation (its page path `/o/<org>/`); when absent,
    /// derived from `organisation` by `slugify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub kind: CounsellorKind,
    #[serde(default)]
    pub description: String,
    /// The language of `description` (and of the counsellor's texts), a
    /// BCP 47 tag such as "nl"; absent on older cards, which a page then
    /// marks as of unknown language (WCAG 3.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub age_recipient: String,
    /// Standard base64 of the Ed25519 public key that signs outboxes.
    pub signing_key: String,
}

/// Why a card was refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("the card is not valid JSON of the card format: {0}")]
    Malformed(String),
    #[error("the card's {0}")]
    Invalid(&'static str),
}

/// A counsellor id: lower-case letters, digits and dashes, 2–63 characters.
pub fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A language tag as pages use it in `lang` (BCP 47, the common shape): a
/// primary language of 2–3 lower-case letters, then up to four subtags of
/// 1–8 letters or digits ("nl", "en-GB", "fy-NL"), at most 35 characters.
pub fn valid_lang(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    tag.len() <= 35
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.clone().count() <= 4
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A lower-case id from a display name: ASCII letters and digits, the rest
/// one dash ("Ministerie van BZK" → "ministerie-van-bzk"), at most 63.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.chars().take(63).collect();
    out.trim_end_matches('-').to_string()
}

fn length_ok(text: &str, min: usize, max: usize) -> bool {
    let chars = text.chars().count();
    (min..=max).contains(&chars) && !text.chars().any(char::is_control)
}

impl Card {
    /// Reads and checks a card.
    pub fn parse(bytes: &[u8]) -> Result<Self, CardError> {
        if bytes.len() > MAX_CARD_BYTES {
            return Err(CardError::Invalid("file is larger than 16 KiB"));
        }
        let card: Card =
            serde_json::from_slice(bytes).map_err(|e| CardError::Malformed(e.to_string()))?;
        card.validate()?;
        Ok(card)
    }

    pub fn validate(&self) -> Result<(), CardError> {
        use CardError::Invalid;
        if self.format != "meldkluis-card" || self.v != 1 {
            return Err(Invalid("format is not meldkluis-card version 1"));
        }
        if !valid_id(&self.id) {
            return Err(Invalid(
                "id must be 2-63 lower-case letters, digits or dashes, starting with a letter or digit",
            ));
        }
        if !length_ok(&self.name, 1, 200) {
            return Err(Invalid(
                "name must be 1-200 characters without control characters",
            ));
        }
        if !length_ok(&self.organisation, 1, 200) {
            return Err(Invalid(
                "organisation must be 1-200 characters without control characters",
            ));
        }
        if !length_ok(&self.description, 0, 1000) {
            return Err(Invalid(
                "description must be at most 1000 characters without control characters",
            ));
        }
        if self.lang.as_deref().is_some_and(|tag| !valid_lang(tag)) {
            return Err(Invalid(
                "lang must be a language tag such as \"nl\" or \"en-GB\"",
            ));
        }
        if !valid_id(&self.org_id()) {
            return Err(Invalid(
                "org must be 2-63 lower-case letters, digits or dashes (or give an organisation name it can be made from)",
            ));
        }
        self.recipient()?;
        self.verifying_key()?;
        Ok(())
    }

    /// The organisation this counsellor serves.
    pub fn org_id(&self) -> String {
        self.org
            .clone()
            .unwrap_or_else(|| slugify(&self.organisation))
    }

    /// The card's age recipient: classical X25519 (`age1…`, protocol v1) or
    /// post-quantum hybrid (`age1pq1…`, protocol v2).
    pub fn recipient(&self) -> Result<crate::format::keys::Recipient, CardError> {
        self.age_recipient.parse().map_err(|_| {
            CardError::Invalid(
                "age_recipient is not an age recipient (age1… or post-quantum age1pq1…)",
            )
        })
    }

    /// Whether reports to this counsellor are post-quantum (protocol v2).
    pub fn is_post_quantum(&self) -> bool {
        self.recipient().is_ok_and(|r| r.is_post_quantum())
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, CardError> {
        let bytes: [u8; 32] = STANDARD
            .decode(&self.signing_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CardError::Invalid(
                "signing_key is not base64 of a 32-byte Ed25519 key",
            ))?;
        VerifyingKey::from_bytes(&bytes)
            .map_err(|_| CardError::Invalid("signing_key is not a valid Ed25519 key"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a card always serialises") + "\n"
    }

    /// What people compare out of band (read aloud on the phone, on paper,
    /// the organisation's printed sheet) to know a card is the counsellor's
    /// own: six groups of five digits from SHA-256 over the **whole** card,
    /// each field length-prefixed (protocol.md §10.1), so a name,
    /// organisation, description or key changed by anyone in between shows.
    /// Digits, because they read aloud the same in Dutch and English.
    /// Changing this breaks every printed fingerprint — see
    /// tests/vectors/fingerprint.json and the test `fingerprint_vectors`.
    pub fn fingerprint(&self) -> String {
        digit_groups(&self.fingerprint_digest())
    }

    /// The SHA-256 behind `fingerprint` (protocol.md §10.1).
    pub fn fingerprint_digest(&self) -> [u8; 32] {
        let kind = match self.kind {
            CounsellorKind::Internal => "internal",
            CounsellorKind::External => "external",
        };
        let mut hash = Sha256::new().chain_update(b"meldkluis-card-fingerprint-v2\n");
        for field in [
            self.id.as_str(),
            &self.org_id(),
            &self.name,
            &self.organisation,
            kind,
            &self.description,
            self.lang.as_deref().unwrap_or(""),
            &self.age_recipient,
            &self.signing_key,
        ] {
            // A card is at most 16 KiB, so every length fits in a u32.
            hash.update((field.len() as u32).to_be_bytes());
            hash.update(field.as_bytes());
        }
        hash.finalize().into()
    }

    /// The fields whose values differ between two cards (as the
    /// fingerprint reads them, in its order), so `verify-site --cards` can
    /// name them; empty exactly when the fingerprints agree.
    pub fn differing_fields(&self, other: &Card) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let pairs: [(&'static str, bool); 9] = [
            ("id", self.id == other.id),
            ("org", self.org_id() == other.org_id()),
            ("name", self.name == other.name),
            ("organisation", self.organisation == other.organisation),
            ("kind", self.kind == other.kind),
            ("description", self.description == other.description),
            (
                "lang",
                self.lang.as_deref().unwrap_or("") == other.lang.as_deref().unwrap_or(""),
            ),
            ("age_recipient", self.age_recipient == other.age_recipient),
            ("signing_key", self.signing_key == other.signing_key),
        ];
        for (name, same) in pairs {
            if !same {
                fields.push(name);
            }
        }
        fields
    }
}

/// Six groups of five digits from a SHA-256 digest: what people read aloud
/// to compare a key (cards, and the server's inbox key, protocol.md §5–6).
pub fn digit_groups(digest: &[u8]) -> String {
    digest[..30]
        .chunks(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fingerprint of the server's inbox-signing key (protocol.md §6):
/// SHA-256 over "meldkluis-server-key-v1\n" and the 32 key bytes.
pub fn server_key_fingerprint(public: &[u8; 32]) -> String {
    digit_groups(
        &Sha256::new()
            .chain_update(b"meldkluis-server-key-v1\n")
            .chain_update(public)
            .finalize(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/vectors/fingerprint.json, checked independently with Python's
    /// hashlib (tests/vectors/fingerprint.py) and read by the page's tests
    /// too (tests/js/fingerprint.test.mjs).
    #[test]
    fn fingerprint_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/fingerprint.json")).unwrap();
        let cards = vectors["cards"].as_array().unwrap();
        assert!(cards.len() >= 12);
        let mut by_name = std::collections::BTreeMap::new();
        for vector in cards {
            let name = vector["name"].as_str().unwrap();
            let card = Card::parse(vector["card"].to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(card.org_id(), vector["org"].as_str().unwrap(), "{name}");
            assert_eq!(
                hex::encode(card.fingerprint_digest()),
                vector["digest_hex"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                card.fingerprint(),
                vector["fingerprint"].as_str().unwrap(),
                "{name}"
            );
            by_name.insert(name.to_string(), card);
        }
        // A card changed in one field differs in exactly that field.
        for vector in cards {
            let card = &by_name[vector["name"].as_str().unwrap()];
            if let Some(changed) = vector.get("changed") {
                let base = &by_name[changed["from"].as_str().unwrap()];
                assert_ne!(card.fingerprint(), base.fingerprint());
                assert!(
                    card.differing_fields(base)
                        .contains(&changed["field"].as_str().unwrap()),
                    "{vector}"
                );
            }
            if let Some(same) = vector.get("same_as") {
                let base = &by_name[same.as_str().unwrap()];
                assert_eq!(card.fingerprint(), base.fingerprint());
                assert!(card.differing_fields(base).is_empty());
            }
        }
        assert_eq!(by_name["classical-full"].fingerprint(), FINGERPRINT_VECTOR);
    }

    /// docs/protocol.md §10.1 quotes this value (the vector
    /// `classical-full`).
    const FINGERPRINT_VECTOR: &str = "58567 47057 15930 37712 77907 35637";

    #[test]
    fn differing_fields_name_each_field() {
        let card = sample();
        assert!(card.differing_fields(&card.clone()).is_empty());
        let mut other = card.clone();
        other.age_recipient = age::x25519::Identity::generate().to_public().to_string();
        other.name = "B. Jansen".into();
        assert_eq!(card.differing_fields(&other), ["name", "age_recipient"]);
        // An absent lang and an empty one read the same.
        let mut other = card.clone();
        other.lang = None;
        let mut empty = card.clone();
        empty.lang = Some(String::new());
        assert!(other.differing_fields(&empty).is_empty());
        assert_eq!(other.fingerprint(), empty.fingerprint());
    }

    pub(crate) fn sample() -> Card {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Card {
            format: "meldkluis-card".into(),
            v: 1,
            id: "vp-jansen".into(),
            name: "A. Jansen".into(),
            organisation: "Ministerie van Voorbeeldzaken".into(),
            org: None,
            kind: CounsellorKind::External,
            description: String::new(),
            lang: Some("nl".into()),
            age_recipient: age::x25519::Identity::generate().to_public().to_string(),
            signing_key: STANDARD.encode(signing.verifying_key().as_bytes()),
        }
    }

    #[test]
    fn language_tags() {
        for good in ["nl", "en", "en-GB", "fy-NL", "pap", "zh-Hant-TW"] {
            assert!(valid_lang(good), "{good}");
        }
        for bad in [
            "",
            "n",
            "NL",
            "nederlands",
            "nl-",
            "nl_NL",
            "nl\"><x>",
            "a-b",
            "nl-abcdefghi",
            "nl-a-b-c-d-e",
        ] {
            assert!(!valid_lang(bad), "{bad}");
        }
        let mut card = sample();
        card.lang = Some("Dutch".into());
        assert!(card.validate().is_err());
        card.lang = None;
        let json = card.to_json();
        assert!(
            !json.contains("lang"),
            "an absent lang is not written: {json}"
        );
        assert_eq!(Card::parse(json.as_bytes()).unwrap().lang, None);
    }

    #[test]
    fn round_trips() {
        let card = sample();
        assert_eq!(Card::parse(card.to_json().as_bytes()).unwrap(), card);
        assert_eq!(card.org_id(), "ministerie-van-voorbeeldzaken");
        let mut explicit = card.clone();
        explicit.org = Some("bzk".into());
        assert_eq!(
            Card::parse(explicit.to_json().as_bytes()).unwrap().org_id(),
            "bzk"
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Mr. A. Jansen"), "mr-a-jansen");
        assert_eq!(slugify("  Ministerie van BZK!"), "ministerie-van-bzk");
        assert_eq!(slugify("Ω"), "");
    }

    #[test]
    fn refuses_hostile_cards() {
        let good = sample();
        let mut bad = Vec::new();
        let mut c = good.clone();
        c.id = "Vp".into();
        bad.push(c);
        let mut c = good.clone();
        c.id = "../keys".into();
        bad.push(c);
        let mut c = good.clone();
        c.name = "\u{1b}[31mred".into();
        bad.push(c);
        let mut c = good.clone();
        c.age_recipient = "age1pq1xyz".into();
        bad.push(c);
        let mut c = good.clone();
        c.signing_key = "AAAA".into();
        bad.push(c);
        let mut c = good.clone();
        c.format = "other".into();
        bad.push(c);
        let mut c = good.clone();
        c.org = Some("Ministerie".into());
        bad.push(c);
        let mut c = good.clone();
        c.organisation = "Ω".into();
        bad.push(c);
        for card in bad {
            assert!(Card::parse(card.to_json().as_bytes()).is_err(), "{card:?}");
        }
        for raw in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"format\":\"meldkluis-card\"}",
            &[b' '; 20_000],
        ] {
            assert!(Card::parse(raw).is_err());
        }
        let with_extra = good.to_json().replacen('{', "{\"extra\":1,", 1);
        assert!(Card::parse(with_extra.as_bytes()).is_err());
    }
}
