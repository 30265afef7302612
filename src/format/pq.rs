//! age's hybrid post-quantum recipient type, `mlkem768x25519` (C2SP age
//! specification, <https://c2sp.org/age>, section "The mlkem768x25519
//! recipient type"), plugged into the `age` crate through its public
//! `Recipient` and `Identity` traits. The `age` crate 0.12 does not ship this
//! type yet; the day it does, this module is replaced by `age::…` and nothing
//! else changes (the strings and stanzas are the standard ones).
//!
//! The construction, as the spec gives it:
//! - identity: a 32-byte seed, Bech32 `AGE-SECRET-KEY-PQ-1…` (upper case);
//! - the KEM is MLKEM768-X25519 (X-Wing; HPKE KEM id 0x647a): the seed is
//!   expanded with SHAKE256 to 96 bytes, the first 64 the ML-KEM-768 seed
//!   (d ‖ z), the last 32 the X25519 scalar; the public key is
//!   `ek_ML-KEM (1184) ‖ X25519 point (32)`, the recipient `age1pq1…` (Bech32
//!   without the 90-character limit); the shared secret is
//!   `SHA3-256(ss_ML-KEM ‖ ss_X25519 ‖ ct_X25519 ‖ pk_X25519 ‖ "\.//^\")`;
//! - the stanza is `-> mlkem768x25519 base64(enc)` with `enc` 1120 bytes
//!   (`ct_ML-KEM (1088) ‖ ct_X25519 (32)`) and a 32-byte body, the file key
//!   sealed by HPKE base mode (HKDF-SHA256, ChaCha20-Poly1305) with info
//!   `age-encryption.org/mlkem768x25519`;
//! - an all-zero X25519 shared secret is an error, not a mismatch;
//! - the recipient carries the label `postquantum`, so the `age` crate refuses
//!   to put it in one file with classical (X25519) recipients.
//!
//! ML-KEM is RustCrypto's `ml-kem`, X25519 `x25519-dalek`, HPKE the `hpke`
//! crate (through `age-core`'s `hpke_seal`/`hpke_open`, as the `age` crate's
//! own `mlkem768p256tag` type does). Pinned by the C2SP CCTV vectors in
//! tests/vectors/cctv-age/ and by tests/vectors/age-pq.json (both directions
//! with the `age-encryption` npm package).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretBox, SecretString};
use age_core::format::{FileKey, Stanza};
use age_core::primitives::{bech32_decode, bech32_encode, bech32_encode_to_fmt};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hpke::generic_array::typenum::{self, U32, Unsigned};
use hpke::kem::SharedSecret;
use hpke::{Deserializable, HpkeError, Serializable};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{Ciphertext, EncodedSizeUser, KemCore, MlKem768};
use rand::{CryptoRng, RngCore};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::{Digest, Sha3_256, Shake256};
use x25519_dalek::{X25519_BASEPOINT_BYTES, x25519};
use zeroize::{Zeroize, Zeroizing};

/// The stanza tag, and the HPKE info string.
pub const STANZA_TAG: &str = "mlkem768x25519";
const HPKE_INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
/// X-Wing's combiner label, the six bytes `\.//^\`.
const XWING_LABEL: &[u8] = b"\\.//^\\";
/// The label that keeps hybrid and classical recipients out of one file.
pub const POSTQUANTUM_LABEL: &str = "postquantum";

const RECIPIENT_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("age1pq");
const IDENTITY_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("AGE-SECRET-KEY-PQ-");

type MlKemEk = <MlKem768 as KemCore>::EncapsulationKey;
type MlKemDk = <MlKem768 as KemCore>::DecapsulationKey;
type EkSize = <MlKemEk as EncodedSizeUser>::EncodedSize;
type CtSize = <MlKem768 as KemCore>::CiphertextSize;

/// Bytes in a recipient's public key: 1184 (ML-KEM-768) + 32 (X25519).
pub const PUBLIC_KEY_BYTES: usize = 1216;
/// Bytes in a stanza's `enc` argument: 1088 (ML-KEM-768) + 32 (X25519).
pub const ENC_BYTES: usize = 1120;
/// Characters of unpadded base64 in the `enc` argument.
pub const ENC_ARG_CHARS: usize = (ENC_BYTES * 4).div_ceil(3);
/// Bytes in a stanza's body: the 16-byte file key and a 16-byte tag.
pub const BODY_BYTES: usize = 32;

// ---------------------------------------------------------------------------
// The KEM, as an `hpke::Kem` so the `hpke` crate runs the key schedule.

/// The secret half: the 32-byte seed and what it expands to.
#[derive(Clone)]
struct PrivateKey {
    seed: Zeroizing<[u8; 32]>,
    dk_pq: MlKemDk,
    sk_t: Zeroizing<[u8; 32]>,
    pk: PublicKey,
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.seed.ct_eq(&*other.seed).into()
    }
}
impl Eq for PrivateKey {}

impl PrivateKey {
    /// Expands a seed (spec: SHAKE256(seed, 96) = d ‖ z ‖ sk_X25519).
    fn from_seed(seed: &[u8; 32]) -> Self {
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut xof = Shake256::default();
        xof.update(seed);
        xof.finalize_xof().read(expanded.as_mut());
        let d: &[u8; 32] = expanded[..32].try_into().expect("32 bytes");
        let z: &[u8; 32] = expanded[32..64].try_into().expect("32 bytes");
        let (dk_pq, ek_pq) = MlKem768::generate_deterministic(&(*d).into(), &(*z).into());
        let mut sk_t = Zeroizing::new([0u8; 32]);
        sk_t.copy_from_slice(&expanded[64..]);
        let pk_t = x25519(*sk_t, X25519_BASEPOINT_BYTES);
        PrivateKey {
            seed: Zeroizing::new(*seed),
            dk_pq,
            sk_t,
            pk: PublicKey { ek_pq, pk_t },
        }
    }
}

impl Serializable for PrivateKey {
    type OutputSize = U32;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(self.seed.as_ref());
    }
}

impl Deserializable for PrivateKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let seed: &[u8; 32] = encoded
            .try_into()
            .map_err(|_| HpkeError::IncorrectInputLength(32, encoded.len()))?;
        Ok(PrivateKey::from_seed(seed))
    }
}

#[derive(Clone, Debug, PartialEq)]
struct PublicKey {
    ek_pq: MlKemEk,
    pk_t: [u8; 32],
}

impl Eq for PublicKey {}

impl Serializable for PublicKey {
    type OutputSize = typenum::Sum<EkSize, U32>;
    fn write_exact(&self, buf: &mut [u8]) {
        let n = EkSize::USIZE;
        buf[..n].copy_from_slice(&self.ek_pq.as_bytes());
        buf[n..].copy_from_slice(&self.pk_t);
    }
}

impl Deserializable for PublicKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        if encoded.len() != PUBLIC_KEY_BYTES {
            return Err(HpkeError::IncorrectInputLength(
                PUBLIC_KEY_BYTES,
                encoded.len(),
            ));
        }
        let (pq, t) = encoded.split_at(EkSize::USIZE);
        let ek_pq = MlKemEk::from_bytes(pq.try_into().expect("length checked"));
        // FIPS 203 §7.2 input check: every coefficient is reduced mod q, so
        // the key re-encodes to the same bytes.
        if ek_pq.as_bytes().as_slice() != pq {
            return Err(HpkeError::ValidationError);
        }
        let pk_t: [u8; 32] = t.try_into().expect("length checked");
        // A low-order X25519 point gives the all-zero shared secret for every
        // (clamped) scalar; refuse it here so encapsulation cannot fail.
        if x25519([1; 32], pk_t) == [0; 32] {
            return Err(HpkeError::ValidationError);
        }
        Ok(PublicKey { ek_pq, pk_t })
    }
}

#[derive(Clone)]
struct EncappedKey {
    ct_pq: Ciphertext<MlKem768>,
    ct_t: [u8; 32],
}

impl Serializable for EncappedKey {
    type OutputSize = typenum::Sum<CtSize, U32>;
    fn write_exact(&self, buf: &mut [u8]) {
        let n = CtSize::USIZE;
        buf[..n].copy_from_slice(&self.ct_pq);
        buf[n..].copy_from_slice(&self.ct_t);
    }
}

impl Deserializable for EncappedKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        if encoded.len() != ENC_BYTES {
            return Err(HpkeError::IncorrectInputLength(ENC_BYTES, encoded.len()));
        }
        let (pq, t) = encoded.split_at(CtSize::USIZE);
        let ct_pq = <[u8; CtSize::USIZE]>::try_from(pq)
            .expect("length checked")
            .into();
        Ok(EncappedKey {
            ct_pq,
            ct_t: t.try_into().expect("length checked"),
        })
    }
}

/// X-Wing's combiner.
fn combine(ss_pq: &[u8], ss_t: &[u8; 32], ct_t: &[u8; 32], pk_t: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    Digest::update(&mut h, ss_pq);
    Digest::update(&mut h, ss_t);
    Digest::update(&mut h, ct_t);
    Digest::update(&mut h, pk_t);
    Digest::update(&mut h, XWING_LABEL);
    h.finalize().into()
}

struct MlKem768X25519;

impl hpke::Kem for MlKem768X25519 {
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;
    type EncappedKey = EncappedKey;
    type NSecret = U32;
    const KEM_ID: u16 = 0x647a;

    fn sk_to_pk(sk: &PrivateKey) -> PublicKey {
        sk.pk.clone()
    }

    /// X-Wing's DeriveKeyPair: the seed is SHAKE256(ikm, 32). age never
    /// derives keys from HPKE input keying material; this is here because
    /// the trait asks for it.
    fn derive_keypair(ikm: &[u8]) -> (PrivateKey, PublicKey) {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut xof = Shake256::default();
        xof.update(ikm);
        xof.finalize_xof().read(seed.as_mut());
        let sk = PrivateKey::from_seed(&seed);
        let pk = sk.pk.clone();
        (sk, pk)
    }

    fn decap(
        sk: &PrivateKey,
        pk_sender_id: Option<&PublicKey>,
        enc: &EncappedKey,
    ) -> Result<SharedSecret<Self>, HpkeError> {
        if pk_sender_id.is_some() {
            return Err(HpkeError::DecapError); // age uses base mode only
        }
        // ML-KEM decapsulation never fails (implicit rejection).
        let ss_pq = sk
            .dk_pq
            .decapsulate(&enc.ct_pq)
            .map_err(|()| HpkeError::DecapError)?;
        let ss_t = Zeroizing::new(x25519(*sk.sk_t, enc.ct_t));
        // The spec: an all-zero X25519 shared secret is an error.
        if *ss_t == [0; 32] {
            return Err(HpkeError::DecapError);
        }
        let mut ss = combine(&ss_pq, &ss_t, &enc.ct_t, &sk.pk.pk_t);
        let out = SharedSecret(ss.into());
        ss.zeroize();
        Ok(out)
    }

    fn encap<R: CryptoRng + RngCore>(
        pk: &PublicKey,
        sender_id_keypair: Option<(&PrivateKey, &PublicKey)>,
        csprng: &mut R,
    ) -> Result<(SharedSecret<Self>, EncappedKey), HpkeError> {
        if sender_id_keypair.is_some() {
            return Err(HpkeError::EncapError);
        }
        let (ct_pq, ss_pq) = pk
            .ek_pq
            .encapsulate(csprng)
            .map_err(|()| HpkeError::EncapError)?;
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        csprng.fill_bytes(ephemeral.as_mut());
        let ct_t = x25519(*ephemeral, X25519_BASEPOINT_BYTES);
        let ss_t = Zeroizing::new(x25519(*ephemeral, pk.pk_t));
        if *ss_t == [0; 32] {
            return Err(HpkeError::EncapError);
        }
        let mut ss = combine(&ss_pq, &ss_t, &ct_t, &pk.pk_t);
        let out = SharedSecret(ss.into());
        ss.zeroize();
        Ok((out, EncappedKey { ct_pq, ct_t }))
    }
}

// ---------------------------------------------------------------------------
// The age types.

/// A hybrid recipient, `age1pq1…`.
#[derive(Clone, PartialEq, Eq)]
pub struct HybridRecipient(Box<PublicKey>);

/// Why a string is not a hybrid recipient or identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PqKeyError {
    #[error("not an age post-quantum recipient (age1pq1…)")]
    BadRecipient,
    #[error("not an age post-quantum identity (AGE-SECRET-KEY-PQ-1…)")]
    BadIdentity,
}

impl FromStr for HybridRecipient {
    type Err = PqKeyError;

    fn from_str(s: &str) -> Result<Self, PqKeyError> {
        // Lower case only, as age writes it (Bech32 forbids mixed case).
        if !s.starts_with("age1pq1") {
            return Err(PqKeyError::BadRecipient);
        }
        bech32_decode(
            s,
            |_| PqKeyError::BadRecipient,
            |hrp| {
                (hrp == RECIPIENT_HRP)
                    .then_some(())
                    .ok_or(PqKeyError::BadRecipient)
            },
            |_, bytes| {
                PublicKey::from_bytes(&bytes.collect::<Vec<u8>>())
                    .map(|pk| HybridRecipient(Box::new(pk)))
                    .map_err(|_| PqKeyError::BadRecipient)
            },
        )
    }
}

impl fmt::Display for HybridRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32_encode_to_fmt(f, RECIPIENT_HRP, &self.0.to_bytes())
    }
}

impl fmt::Debug for HybridRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HybridRecipient({self})")
    }
}

impl age::Recipient for HybridRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let (enc, body) = age_core::primitives::hpke_seal::<MlKem768X25519, _>(
            &self.0,
            HPKE_INFO,
            file_key.expose_secret(),
            &mut rand::rngs::OsRng,
        );
        Ok((
            vec![Stanza {
                tag: STANZA_TAG.to_owned(),
                args: vec![STANDARD_NO_PAD.encode(enc.to_bytes())],
                body,
            }],
            [POSTQUANTUM_LABEL.to_owned()].into_iter().collect(),
        ))
    }
}

/// A hybrid identity, `AGE-SECRET-KEY-PQ-1…`. Holds the seed and its expanded
/// keys, all wiped when dropped.
#[derive(Clone)]
// Boxed: the expanded ML-KEM key is about 4.8 KB, and the secret should sit
// in one heap place that is wiped on drop, not be copied around the stack.
pub struct HybridIdentity(Box<PrivateKey>);

impl HybridIdentity {
    /// A new identity from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        HybridIdentity::from_seed(&seed)
    }

    /// The identity whose seed is `seed` (spec: the identity *is* the seed).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        HybridIdentity(Box::new(PrivateKey::from_seed(seed)))
    }

    pub fn to_public(&self) -> HybridRecipient {
        HybridRecipient(Box::new(self.0.pk.clone()))
    }

    /// The identity string, `AGE-SECRET-KEY-PQ-1…` (upper case, as age writes it).
    pub fn to_string(&self) -> SecretString {
        let lower = Zeroizing::new(bech32_encode(IDENTITY_HRP, self.0.seed.as_ref()));
        SecretString::from(lower.to_uppercase())
    }

    /// The seed, for callers that store it in their own secret form.
    pub fn seed(&self) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new(*self.0.seed))
    }
}

impl FromStr for HybridIdentity {
    type Err = PqKeyError;

    fn from_str(s: &str) -> Result<Self, PqKeyError> {
        if !s.starts_with("AGE-SECRET-KEY-PQ-1") {
            return Err(PqKeyError::BadIdentity);
        }
        bech32_decode(
            s,
            |_| PqKeyError::BadIdentity,
            |hrp| {
                (hrp == IDENTITY_HRP)
                    .then_some(())
                    .ok_or(PqKeyError::BadIdentity)
            },
            |_, bytes| {
                let bytes = Zeroizing::new(bytes.collect::<Vec<u8>>());
                let seed: &[u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| PqKeyError::BadIdentity)?;
                Ok(HybridIdentity::from_seed(seed))
            },
        )
    }
}

impl fmt::Debug for HybridIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HybridIdentity(<secret>)")
    }
}

impl age::Identity for HybridIdentity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if stanza.tag != STANZA_TAG {
            return None;
        }
        // Malformed stanzas of our type are header errors, not mismatches.
        let [enc] = stanza.args.as_slice() else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        if stanza.body.len() != BODY_BYTES {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let Some(enc) = STANDARD_NO_PAD
            .decode(enc)
            .ok()
            .and_then(|b| EncappedKey::from_bytes(&b).ok())
        else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        match age_core::primitives::hpke_open::<MlKem768X25519>(
            &enc,
            &self.0,
            HPKE_INFO,
            &stanza.body,
        ) {
            Ok(plaintext) => {
                let plaintext = Zeroizing::new(plaintext);
                let key: [u8; 16] = plaintext.as_slice().try_into().ok()?;
                Some(Ok(FileKey::new(Box::new(key))))
            }
            // The all-zero X25519 secret (spec: an error).
            Err(HpkeError::DecapError) => Some(Err(age::DecryptError::InvalidHeader)),
            // Sealed to someone else.
            Err(_) => None,
        }
    }
}

/// Whether `stanza` is shaped like an `mlkem768x25519` stanza: one argument of
/// canonical unpadded base64 for exactly 1120 bytes, and a 32-byte body. What
/// the server's shape check (agefile.rs) accepts without a key.
pub fn stanza_shape_ok(args: &[&str], body_len: usize) -> bool {
    matches!(args, [enc] if enc.len() == ENC_ARG_CHARS
        && STANDARD_NO_PAD.decode(enc).is_ok_and(|b| b.len() == ENC_BYTES))
        && body_len == BODY_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_through_age() {
        let identity = HybridIdentity::generate();
        let recipient = identity.to_public();
        let text = recipient.to_string();
        assert!(text.starts_with("age1pq1"));
        assert_eq!(text.parse::<HybridRecipient>().unwrap(), recipient);
        let secret = identity.to_string();
        assert!(secret.expose_secret().starts_with("AGE-SECRET-KEY-PQ-1"));
        let again: HybridIdentity = secret.expose_secret().parse().unwrap();
        assert_eq!(again.to_public(), recipient);

        let ciphertext = age::encrypt(&recipient, b"melding").unwrap();
        assert_eq!(age::decrypt(&identity, &ciphertext).unwrap(), b"melding");
        let stranger = HybridIdentity::generate();
        assert!(matches!(
            age::decrypt(&stranger, &ciphertext),
            Err(age::DecryptError::NoMatchingKeys)
        ));
    }

    #[test]
    fn never_mixed_with_classical_recipients() {
        let hybrid = HybridIdentity::generate().to_public();
        let classical = age::x25519::Identity::generate().to_public();
        let recipients: Vec<&dyn age::Recipient> = vec![&hybrid, &classical];
        assert!(matches!(
            age::Encryptor::with_recipients(recipients.into_iter()),
            Err(age::EncryptError::IncompatibleRecipients { .. })
        ));
    }

    #[test]
    fn hostile_strings_are_refused() {
        let good = HybridIdentity::generate().to_public().to_string();
        for bad in [
            String::new(),
            "age1pq1".to_owned(),
            good.to_uppercase(),
            good[..good.len() - 1].to_owned(),
            good.replacen("age1pq1", "age1pr1", 1),
            age::x25519::Identity::generate().to_public().to_string(),
        ] {
            assert!(bad.parse::<HybridRecipient>().is_err(), "{bad}");
        }
        // A low-order X25519 half.
        let mut bytes = HybridIdentity::generate().0.pk.to_bytes().to_vec();
        bytes[1184..].copy_from_slice(&[0; 32]);
        let low = bech32_encode(RECIPIENT_HRP, &bytes);
        assert_eq!(
            low.parse::<HybridRecipient>(),
            Err(PqKeyError::BadRecipient)
        );
        for bad in [
            "AGE-SECRET-KEY-PQ-1",
            "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ5EAQ5U",
        ] {
            assert!(bad.parse::<HybridIdentity>().is_err());
        }
    }

    #[test]
    fn stanza_shape() {
        let recipient = HybridIdentity::generate().to_public();
        let file_key = FileKey::new(Box::new([7; 16]));
        let (stanzas, labels) = age::Recipient::wrap_file_key(&recipient, &file_key).unwrap();
        assert!(labels.contains(POSTQUANTUM_LABEL));
        let s = &stanzas[0];
        assert_eq!(s.tag, STANZA_TAG);
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        assert!(stanza_shape_ok(&args, s.body.len()));
        assert_eq!(args[0].len(), 1494);
        assert!(!stanza_shape_ok(&args, 31));
        assert!(!stanza_shape_ok(&[&args[0][1..]], 32));
        assert!(!stanza_shape_ok(&[args[0], "x"], 32));
    }
}
