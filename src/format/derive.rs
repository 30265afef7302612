//! Derivations from the retrieval code (protocol.md §2): the lookup key the
//! server uses to find a thread, and the reply identity only the melder holds.
//!
//! Changing a label breaks every code in circulation — see tests/vectors/derive.json.

use std::fmt;

use age::secrecy::{ExposeSecret, SecretString};
use bech32::{Bech32, Hrp};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::code::RetrievalCode;
use super::keys::{Identity, Recipient};
use super::pq::HybridIdentity;

const SALT: &[u8] = b"meldkluis-v1";
const LOOKUP_INFO: &[u8] = b"meldkluis-v1 lookup-key";
const REPLY_INFO: &[u8] = b"meldkluis-v1 reply-identity";
/// Protocol v2: the seed of the post-quantum hybrid reply identity.
const REPLY_PQ_INFO: &[u8] = b"meldkluis-v2 reply-identity-pq";
/// Protocol v2 (§10.3): the seed of the melder's Ed25519 signing key.
const MELDER_SIGNING_INFO: &[u8] = b"meldkluis-v2 melder-signing-key";

/// The 32-byte key the browser sends to fetch a thread. The server keeps only
/// its hash; it is secret because it reads the whole (encrypted) thread.
#[derive(Clone, PartialEq, Eq)]
pub struct LookupKey(Zeroizing<[u8; 32]>);

/// SHA-256 of a lookup key: what the server stores and compares.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LookupHash(pub [u8; 32]);

/// Why a lookup key sent over the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a lookup key is 64 lower-case hexadecimal characters")]
pub struct BadLookupKey;

impl LookupKey {
    /// Reads the wire form: exactly 64 lower-case hex characters.
    pub fn from_hex(text: &str) -> Result<Self, BadLookupKey> {
        if text.len() != 64
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(BadLookupKey);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, key.as_mut()).map_err(|_| BadLookupKey)?;
        Ok(LookupKey(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(*self.0)
    }

    pub fn hash(&self) -> LookupHash {
        LookupHash(Sha256::digest(*self.0).into())
    }
}

impl fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LookupKey(<secret>)")
    }
}

impl LookupHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for LookupHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LookupHash({})", self.to_hex())
    }
}

/// Everything the melder's browser derives from the code.
pub struct Derived {
    pub lookup_key: LookupKey,
    /// `AGE-SECRET-KEY-1…`, the identity that decrypts replies.
    pub reply_identity: SecretString,
    /// `AGE-SECRET-KEY-PQ-1…`, the post-quantum hybrid reply identity
    /// (protocol v2): the 32 HKDF bytes are the `mlkem768x25519` seed.
    pub reply_identity_pq: SecretString,
    /// The seed of the melder's signing key (protocol v2, §10.3).
    melder_signing_seed: Zeroizing<[u8; 32]>,
}

impl Derived {
    pub fn from_code(code: &RetrievalCode) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), code.canonical().as_bytes());
        let mut lookup = Zeroizing::new([0u8; 32]);
        hkdf.expand(LOOKUP_INFO, lookup.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut reply = Zeroizing::new([0u8; 32]);
        hkdf.expand(REPLY_INFO, reply.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut reply_pq = Zeroizing::new([0u8; 32]);
        hkdf.expand(REPLY_PQ_INFO, reply_pq.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut melder_signing_seed = Zeroizing::new([0u8; 32]);
        hkdf.expand(MELDER_SIGNING_INFO, melder_signing_seed.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Derived {
            lookup_key: LookupKey(lookup),
            reply_identity: encode_identity(&reply),
            reply_identity_pq: HybridIdentity::from_seed(&reply_pq).to_string(),
            melder_signing_seed,
        }
    }

    /// The melder's Ed25519 signing key (protocol v2, §10.3); its public
    /// half is the `thread` of every message of the thread.
    pub fn melder_signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.melder_signing_seed)
    }

    /// The `thread` value: standard base64 of the melder's public key.
    pub fn thread(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(self.melder_signing_key().verifying_key().as_bytes())
    }

    /// The post-quantum hybrid reply identity (protocol v2).
    pub fn reply_identity_pq(&self) -> HybridIdentity {
        self.reply_identity_pq
            .expose_secret()
            .parse()
            .expect("a derived identity is a valid age identity")
    }

    /// Both reply identities: what opens every message of a thread, from
    /// before and after the counsellors moved to post-quantum keys.
    pub fn reply_identities(&self) -> [Identity; 2] {
        [
            Identity::Hybrid(self.reply_identity_pq()),
            Identity::X25519(self.reply_identity()),
        ]
    }

    /// The reply recipient a report to `counsellors` carries: the
    /// post-quantum one when every counsellor's key is post-quantum, else
    /// the classical one (age never mixes the two in one file).
    pub fn reply_recipient_for(&self, counsellors: &[Recipient]) -> Recipient {
        if !counsellors.is_empty() && counsellors.iter().all(Recipient::is_post_quantum) {
            Recipient::Hybrid(self.reply_identity_pq().to_public())
        } else {
            Recipient::X25519(self.reply_identity().to_public())
        }
    }

    /// The age identity that decrypts replies.
    pub fn reply_identity(&self) -> age::x25519::Identity {
        self.reply_identity
            .expose_secret()
            .parse()
            .expect("a derived identity is a valid age identity")
    }

    /// The reply recipient (`age1…`) that travels inside the report.
    pub fn reply_recipient(&self) -> age::x25519::Recipient {
        self.reply_identity().to_public()
    }
}

/// Encodes 32 secret bytes as an age X25519 identity string (Bech32, upper case).
fn encode_identity(secret: &[u8; 32]) -> SecretString {
    let hrp = Hrp::parse("age-secret-key-").expect("valid human-readable part");
    let encoded = Zeroizing::new(
        bech32::encode::<Bech32>(hrp, secret).expect("32 bytes fit in a Bech32 string"),
    );
    SecretString::from(encoded.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn derivations_are_distinct_and_decrypt() {
        let code = RetrievalCode::generate();
        let derived = Derived::from_code(&code);
        let again = Derived::from_code(&RetrievalCode::parse(&code.display()).unwrap());
        assert_eq!(derived.lookup_key, again.lookup_key);
        assert!(
            derived
                .reply_identity
                .expose_secret()
                .starts_with("AGE-SECRET-KEY-1")
        );
        let recipient = derived.reply_recipient();
        let ciphertext = age::encrypt(&recipient, b"antwoord").unwrap();
        let plaintext = age::decrypt(&derived.reply_identity(), &ciphertext).unwrap();
        assert_eq!(plaintext, b"antwoord");
        assert_ne!(
            derived.lookup_key.to_hex(),
            age::x25519::Recipient::from_str(&recipient.to_string())
                .unwrap()
                .to_string()
        );
    }

    #[test]
    fn lookup_key_wire_form_is_strict() {
        let key = "0f".repeat(32);
        assert_eq!(LookupKey::from_hex(&key).unwrap().to_hex(), key);
        for bad in [
            "",
            "0f",
            &"0F".repeat(32),
            &"0g".repeat(32),
            &"0f".repeat(33),
            &format!("{} ", "0f".repeat(32)),
        ] {
            assert_eq!(LookupKey::from_hex(bad), Err(BadLookupKey), "{bad:?}");
        }
    }
}
