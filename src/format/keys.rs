//! The two kinds of age key Meldkluis uses: classical X25519 (`age1…`,
//! protocol v1) and the post-quantum hybrid `mlkem768x25519` (`age1pq1…`,
//! protocol v2; src/format/pq.rs). One type for each half, so cards,
//! vaults and envelopes take either; the `age` crate keeps them out of one
//! file (the hybrid type's `postquantum` label).

use std::fmt;
use std::str::FromStr;

use age::secrecy::SecretString;
use age_core::format::{FileKey, Stanza};

use super::pq::{HybridIdentity, HybridRecipient};

/// A public key a file can be encrypted to.
#[derive(Clone, PartialEq, Eq)]
pub enum Recipient {
    X25519(age::x25519::Recipient),
    Hybrid(HybridRecipient),
}

/// Why a string is not an age recipient or identity of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an age recipient (age1… or age1pq1…)")]
    BadRecipient,
    #[error("not an age identity (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)")]
    BadIdentity,
}

impl Recipient {
    /// Whether files to this recipient are protected against a future
    /// quantum computer (harvest now, decrypt later).
    pub fn is_post_quantum(&self) -> bool {
        matches!(self, Recipient::Hybrid(_))
    }
}

impl From<age::x25519::Recipient> for Recipient {
    fn from(r: age::x25519::Recipient) -> Self {
        Recipient::X25519(r)
    }
}

impl From<HybridRecipient> for Recipient {
    fn from(r: HybridRecipient) -> Self {
        Recipient::Hybrid(r)
    }
}

impl FromStr for Recipient {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.starts_with("age1pq1") {
            s.parse()
                .map(Recipient::Hybrid)
                .map_err(|_| KeyError::BadRecipient)
        } else {
            s.parse()
                .map(Recipient::X25519)
                .map_err(|_| KeyError::BadRecipient)
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::X25519(r) => r.fmt(f),
            Recipient::Hybrid(r) => r.fmt(f),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl age::Recipient for Recipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError> {
        match self {
            Recipient::X25519(r) => r.wrap_file_key(file_key),
            Recipient::Hybrid(r) => r.wrap_file_key(file_key),
        }
    }
}

/// A secret key that opens files. Both kinds wipe their secrets on drop.
#[derive(Clone)]
pub enum Identity {
    X25519(age::x25519::Identity),
    Hybrid(HybridIdentity),
}

impl Identity {
    /// A new post-quantum hybrid identity: what `init` and `rotate-keys` make.
    pub fn generate_hybrid() -> Self {
        Identity::Hybrid(HybridIdentity::generate())
    }

    pub fn to_public(&self) -> Recipient {
        match self {
            Identity::X25519(i) => Recipient::X25519(i.to_public()),
            Identity::Hybrid(i) => Recipient::Hybrid(i.to_public()),
        }
    }

    /// The identity string as age writes it in an identity file.
    pub fn to_string(&self) -> SecretString {
        match self {
            Identity::X25519(i) => i.to_string(),
            Identity::Hybrid(i) => i.to_string(),
        }
    }

    pub fn is_post_quantum(&self) -> bool {
        matches!(self, Identity::Hybrid(_))
    }

    /// Reads an identity string of either kind.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        if s.starts_with("AGE-SECRET-KEY-PQ-1") {
            s.parse()
                .map(Identity::Hybrid)
                .map_err(|_| KeyError::BadIdentity)
        } else if s.starts_with("AGE-SECRET-KEY-1") {
            s.parse()
                .map(Identity::X25519)
                .map_err(|_| KeyError::BadIdentity)
        } else {
            Err(KeyError::BadIdentity)
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.to_public())
    }
}

impl age::Identity for Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        match self {
            Identity::X25519(i) => i.unwrap_stanza(stanza),
            Identity::Hybrid(i) => i.unwrap_stanza(stanza),
        }
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        match self {
            Identity::X25519(i) => i.unwrap_stanzas(stanzas),
            Identity::Hybrid(i) => i.unwrap_stanzas(stanzas),
        }
    }
}

/// Whether an identity string is secret-shaped: used when reading identity
/// files line by line.
pub fn looks_like_identity(line: &str) -> bool {
    line.starts_with("AGE-SECRET-KEY-1") || line.starts_with("AGE-SECRET-KEY-PQ-1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn both_kinds_parse_print_and_open() {
        for identity in [
            Identity::X25519(age::x25519::Identity::generate()),
            Identity::generate_hybrid(),
        ] {
            let recipient = identity.to_public();
            let text = recipient.to_string();
            assert_eq!(text.parse::<Recipient>().unwrap(), recipient);
            let again = Identity::parse(identity.to_string().expose_secret()).unwrap();
            assert_eq!(again.to_public(), recipient);
            assert_eq!(recipient.is_post_quantum(), text.starts_with("age1pq1"));
            let ct = crate::format::encrypt(&[recipient], b"x").unwrap();
            assert_eq!(age::decrypt(&identity, &ct).unwrap(), b"x");
        }
        assert!("age1".parse::<Recipient>().is_err());
        assert!(Identity::parse("AGE-PLUGIN-YUBIKEY-1QQQ").is_err());
    }
}
