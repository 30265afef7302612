//! The shape check for age files the server accepts (protocol.md §4). The
//! server cannot decrypt; it can refuse anything that is not a binary age v1
//! file to X25519 recipients or to post-quantum hybrid (`mlkem768x25519`)
//! recipients, never both, so garbage and passphrase-encrypted files never
//! reach a counsellor.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_STANZAS: usize = 64;
const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 16;
const CHUNK_BYTES: usize = 64 * 1024 + TAG_BYTES;

/// A byte string that passed the check: a binary age v1 file with X25519
/// recipients. This is the only form in which the server holds a message.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeBlob(Vec<u8>);

/// Why a body is not an acceptable age file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeFileError {
    /// Not a well-formed binary age v1 file; the text says where it broke.
    #[error("not a binary age v1 file: {0}")]
    NotAge(&'static str),
    /// The payload length is not that of a plaintext padded to a size bucket
    /// (protocol.md §3): the file was truncated, or the sender did not pad.
    #[error("the message is truncated or not padded to a size bucket")]
    NotPadded,
    /// A stanza other than X25519, mlkem768x25519 (or grease), e.g. a
    /// passphrase (scrypt).
    #[error(
        "the age file has a {0:?} recipient; only X25519 and mlkem768x25519 recipients are accepted"
    )]
    BadRecipientType(String),
}

impl AgeFileError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            AgeFileError::NotAge(_) => "not_age",
            AgeFileError::NotPadded => "not_padded",
            AgeFileError::BadRecipientType(_) => "bad_recipient_type",
        }
    }
}

impl AgeBlob {
    /// Checks `bytes` and wraps them; nothing is copied.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, AgeFileError> {
        check(&bytes)?;
        Ok(AgeBlob(bytes))
    }

    /// Checks a *message*: besides the shape, its payload must be exactly
    /// that of a padded envelope. This catches truncation that the shape check
    /// alone cannot see, and refuses unpadded messages that would leak sizes.
    pub fn parse_message(bytes: Vec<u8>) -> Result<Self, AgeFileError> {
        let payload = check(&bytes)?;
        let plaintext = plaintext_length(payload).ok_or(AgeFileError::NotPadded)?;
        if crate::format::envelope::padded_length(plaintext) != Some(plaintext) {
            return Err(AgeFileError::NotPadded);
        }
        Ok(AgeBlob(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for AgeBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeBlob({} bytes)", self.0.len())
    }
}

/// The smallest plaintext a streamed attachment carries (protocol.md §3a).
pub const MIN_ATTACHMENT_PLAINTEXT: u64 = 4096;

/// The Padmé length for `len` (protocol.md §3a): `len` rounded up so that at
/// most `⌊log2 ⌊log2 len⌋⌋ + 1` significant bits remain.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // ⌊log2 len⌋
    let s = 64 - u64::from(e.leading_zeros()); // ⌊log2 e⌋ + 1
    let mask = (1u64 << (e - s)) - 1;
    // Saturating: near 2^64 (only hostile lengths get there) the result is
    // simply not a bucket of that length.
    len.saturating_add(mask) & !mask
}

/// The padded plaintext length of a streamed attachment of `size` bytes.
pub fn attachment_padded_length(size: u64) -> u64 {
    padme(size.max(MIN_ATTACHMENT_PLAINTEXT))
}

/// The ciphertext length of a payload (nonce and STREAM chunks) carrying
/// `plaintext` bytes.
pub fn payload_length(plaintext: u64) -> u64 {
    let chunk = (CHUNK_BYTES - TAG_BYTES) as u64;
    let chunks = plaintext.div_ceil(chunk).max(1);
    (NONCE_BYTES as u64)
        .saturating_add(plaintext)
        .saturating_add(chunks * TAG_BYTES as u64)
}

/// What the check of a streamed attachment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentShape {
    /// Bytes from the start of the file through the payload nonce: what
    /// `head_sha256` covers.
    pub head_len: usize,
    /// The padded plaintext length the payload carries.
    pub plaintext_len: u64,
}

/// Checks a streamed attachment from its first bytes and its total length
/// (protocol.md §3a): a §4 header, a well-formed payload length, and a padded
/// plaintext of at least 4096 bytes. `prefix` must hold the whole header and
/// the nonce; 64 KiB always suffices.
pub fn check_attachment(prefix: &[u8], total_len: u64) -> Result<AttachmentShape, AgeFileError> {
    let header_len = check_header(prefix)?;
    let payload = total_len
        .checked_sub(header_len as u64)
        .ok_or(AgeFileError::NotAge("the payload is truncated"))?;
    let payload = usize::try_from(payload).map_err(|_| AgeFileError::NotPadded)?;
    check_payload_length(payload)?;
    let head = prefix
        .get(..header_len + NONCE_BYTES)
        .ok_or(AgeFileError::NotAge("the header is too large"))?;
    second_opinion(head)?;
    let plaintext = plaintext_length(payload).ok_or(AgeFileError::NotPadded)? as u64;
    if plaintext < MIN_ATTACHMENT_PLAINTEXT || padme(plaintext) != plaintext {
        return Err(AgeFileError::NotPadded);
    }
    Ok(AttachmentShape {
        head_len: header_len + NONCE_BYTES,
        plaintext_len: plaintext,
    })
}

/// Checks the shape and returns the payload length (nonce and chunks).
fn check(bytes: &[u8]) -> Result<usize, AgeFileError> {
    let header_len = check_header(bytes)?;
    let payload = bytes.len() - header_len;
    check_payload_length(payload)?;
    second_opinion(&bytes[..header_len + NONCE_BYTES])?;
    Ok(payload)
}

/// Checks the header at the start of `bytes` and returns its length, through
/// the MAC line.
fn check_header(bytes: &[u8]) -> Result<usize, AgeFileError> {
    if bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(AgeFileError::NotAge("ASCII armour; send the binary file"));
    }
    let mut rest = bytes.strip_prefix(INTRO).ok_or(AgeFileError::NotAge(
        "missing the age-encryption.org/v1 line",
    ))?;
    let mut x25519 = 0;
    let mut hybrid = 0;
    let mut stanzas = 0;
    loop {
        let (line, after) = next_line(rest)?;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            if decode_b64(mac).map(|m| m.len()) != Some(32) {
                return Err(AgeFileError::NotAge("the header MAC is malformed"));
            }
            if bytes.len() - after.len() > MAX_HEADER_BYTES {
                return Err(AgeFileError::NotAge("the header is too large"));
            }
            rest = after;
            break;
        }
        let stanza = line.strip_prefix(b"-> ").ok_or(AgeFileError::NotAge(
            "a header line is neither a stanza nor the MAC",
        ))?;
        stanzas += 1;
        if stanzas > MAX_STANZAS {
            return Err(AgeFileError::NotAge("too many stanzas"));
        }
        let parts: Vec<&[u8]> = stanza.split(|&b| b == b' ').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || !p.iter().all(|b| (0x21..=0x7e).contains(b)))
        {
            return Err(AgeFileError::NotAge("a stanza line is malformed"));
        }
        let (body, after) = stanza_body(after)?;
        rest = after;
        let tag = parts[0];
        if tag == b"X25519" {
            if parts.len() != 2 || decode_b64(parts[1]).map(|s| s.len()) != Some(32) {
                return Err(AgeFileError::NotAge(
                    "an X25519 stanza has a malformed share",
                ));
            }
            if body.len() != 32 {
                return Err(AgeFileError::NotAge(
                    "an X25519 stanza has a malformed body",
                ));
            }
            x25519 += 1;
        } else if tag == crate::format::pq::STANZA_TAG.as_bytes() {
            // protocol.md §4 (v2): the post-quantum hybrid stanza, with
            // exactly the sizes of the age spec: a 1120-byte `enc` and a
            // 32-byte body.
            let args = &parts[1..];
            if args.len() != 1
                || args[0].len() != crate::format::pq::ENC_ARG_CHARS
                || decode_b64(args[0]).map(|e| e.len()) != Some(crate::format::pq::ENC_BYTES)
            {
                return Err(AgeFileError::NotAge(
                    "an mlkem768x25519 stanza has a malformed enc",
                ));
            }
            if body.len() != crate::format::pq::BODY_BYTES {
                return Err(AgeFileError::NotAge(
                    "an mlkem768x25519 stanza has a malformed body",
                ));
            }
            hybrid += 1;
        } else if !tag.ends_with(b"-grease") {
            return Err(AgeFileError::BadRecipientType(
                String::from_utf8_lossy(tag).into_owned(),
            ));
        }
    }
    if x25519 == 0 && hybrid == 0 {
        return Err(AgeFileError::NotAge(
            "no X25519 or mlkem768x25519 recipient",
        ));
    }
    // The age spec: a post-quantum recipient is never in one file with a
    // classical one (that would make the file only as strong as X25519).
    if x25519 > 0 && hybrid > 0 {
        return Err(AgeFileError::NotAge(
            "classical and post-quantum recipients mixed in one file",
        ));
    }
    Ok(bytes.len() - rest.len())
}

/// A second opinion from the age crate's own parser, so the two can never
/// disagree about what a counsellor will be able to open. `head` is the
/// header and the nonce, which is all it reads.
fn second_opinion(head: &[u8]) -> Result<(), AgeFileError> {
    age::Decryptor::new(head)
        .map(|_| ())
        .map_err(|_| AgeFileError::NotAge("the header does not parse"))
}

fn next_line(bytes: &[u8]) -> Result<(&[u8], &[u8]), AgeFileError> {
    let end = bytes
        .iter()
        .take(MAX_HEADER_BYTES)
        .position(|&b| b == b'\n')
        .ok_or(AgeFileError::NotAge("the header is truncated"))?;
    Ok((&bytes[..end], &bytes[end + 1..]))
}

/// Reads body lines: full 64-column lines, then one shorter (possibly empty) line.
fn stanza_body(mut bytes: &[u8]) -> Result<(Vec<u8>, &[u8]), AgeFileError> {
    let mut encoded = Vec::new();
    loop {
        let (line, after) = next_line(bytes)?;
        bytes = after;
        if line.len() > 64 {
            return Err(AgeFileError::NotAge("a stanza body line is too long"));
        }
        encoded.extend_from_slice(line);
        if encoded.len() > MAX_HEADER_BYTES {
            return Err(AgeFileError::NotAge("the header is too large"));
        }
        if line.len() < 64 {
            let body = decode_b64(&encoded).ok_or(AgeFileError::NotAge(
                "a stanza body is not canonical base64",
            ))?;
            return Ok((body, bytes));
        }
    }
}

/// Canonical unpadded base64, as the age spec demands.
fn decode_b64(text: &[u8]) -> Option<Vec<u8>> {
    let decoded = STANDARD_NO_PAD.decode(text).ok()?;
    (STANDARD_NO_PAD.encode(&decoded).as_bytes() == text).then_some(decoded)
}

/// The plaintext length a well-shaped payload of `len` bytes carries.
fn plaintext_length(len: usize) -> Option<usize> {
    let chunks = len.checked_sub(NONCE_BYTES)?;
    let full = chunks / CHUNK_BYTES;
    let last = chunks % CHUNK_BYTES;
    Some(full * (CHUNK_BYTES - TAG_BYTES) + last.saturating_sub(TAG_BYTES))
}

/// The payload is a nonce and STREAM chunks of 64 KiB plus a 16-byte tag; the
/// last chunk may be empty only when it is the only one.
fn check_payload_length(len: usize) -> Result<(), AgeFileError> {
    let chunks = len
        .checked_sub(NONCE_BYTES)
        .ok_or(AgeFileError::NotAge("the payload is truncated"))?;
    let last = chunks % CHUNK_BYTES;
    let ok = match last {
        0 => chunks > 0,
        TAG_BYTES => chunks == TAG_BYTES,
        n => n > TAG_BYTES,
    };
    if ok {
        Ok(())
    } else {
        Err(AgeFileError::NotAge("the payload is truncated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::SecretString;

    fn x25519_file(len: usize) -> Vec<u8> {
        let recipient = age::x25519::Identity::generate().to_public();
        age::encrypt(&recipient, &vec![7u8; len]).unwrap()
    }

    #[test]
    fn accepts_rust_age_files_of_every_chunk_shape() {
        for len in [0, 1, 65_535, 65_536, 65_537, 200_000] {
            AgeBlob::parse(x25519_file(len)).unwrap_or_else(|e| panic!("{len}: {e}"));
        }
    }

    #[test]
    fn refuses_passphrase_files() {
        let file = age::encrypt(
            &age::scrypt::Recipient::new(SecretString::from("wachtwoord".to_owned())),
            b"x",
        )
        .unwrap();
        assert_eq!(
            AgeBlob::parse(file).unwrap_err(),
            AgeFileError::BadRecipientType("scrypt".into())
        );
    }

    #[test]
    fn refuses_truncated_messages_at_every_length() {
        let file = x25519_file(128 * 1024);
        AgeBlob::parse_message(file.clone()).unwrap();
        // A cut exactly at the length of a smaller bucket looks like a
        // complete smaller message; only the key holder can tell (age's
        // last-chunk flag). Those few lengths are skipped here.
        let payload_start = file.len() - (16 + 2 * CHUNK_BYTES);
        let smaller_buckets: Vec<usize> = [4096usize, 8192, 16_384, 32_768, 65_536]
            .iter()
            .map(|b| payload_start + NONCE_BYTES + b + TAG_BYTES * b.div_ceil(65_536))
            .collect();
        for cut in (0..file.len())
            .step_by(61)
            .chain(file.len() - 40..file.len())
            .filter(|cut| !smaller_buckets.contains(cut))
        {
            let err = AgeBlob::parse_message(file[..cut].to_vec()).unwrap_err();
            assert!(
                matches!(err.code(), "not_age" | "not_padded"),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refuses_unpadded_messages() {
        for len in [0, 100, 4095, 4097, 70_000] {
            assert_eq!(
                AgeBlob::parse_message(x25519_file(len)).unwrap_err(),
                AgeFileError::NotPadded
            );
        }
        for len in [4096, 8192, 1024 * 1024, 3 * 1024 * 1024] {
            AgeBlob::parse_message(x25519_file(len)).unwrap();
        }
    }

    #[test]
    fn payload_length_arithmetic() {
        assert_eq!(plaintext_length(16 + 16), Some(0));
        assert_eq!(plaintext_length(16 + 4096 + 16), Some(4096));
        assert_eq!(
            plaintext_length(16 + CHUNK_BYTES + 16 + 10),
            Some(65_536 + 10)
        );
        assert_eq!(plaintext_length(3), None);
    }

    #[test]
    fn refuses_garbage_and_armour() {
        for junk in [
            b"".to_vec(),
            b"hello".to_vec(),
            b"age-encryption.org/v1\n--- abc\n".to_vec(),
            b"age-encryption.org/v1\n".to_vec(),
            vec![0u8; 10_000],
            b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec(),
        ] {
            assert_eq!(AgeBlob::parse(junk).unwrap_err().code(), "not_age");
        }
    }

    #[test]
    fn padme_matches_the_worked_examples() {
        assert_eq!(padme(5000), 5120);
        assert_eq!(padme(209_715_200), 209_715_200);
        assert_eq!(padme(209_715_201), 213_909_504);
        assert_eq!(attachment_padded_length(0), 4096);
        assert_eq!(attachment_padded_length(1), 4096);
        // No overflow panic on a hostile length.
        assert!(padme(u64::MAX) < u64::MAX);
        for len in [
            2u64,
            3,
            4096,
            4097,
            65_537,
            1 << 20,
            500 << 20,
            u64::MAX >> 1,
        ] {
            let padded = padme(len);
            assert!(padded >= len && padme(padded) == padded, "{len}");
            // At most 12 % overhead (Padmé's bound) above small sizes.
            if len >= 4096 {
                assert!(
                    u128::from(padded - len) * 100 <= u128::from(len) * 12,
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn attachment_check_reads_the_head_and_the_length() {
        let recipient = age::x25519::Identity::generate().to_public();
        for size in [4096usize, 5120, 65_536, 212_992] {
            let file = age::encrypt(&recipient, &vec![0u8; size]).unwrap();
            let shape = check_attachment(&file[..file.len().min(65_536)], file.len() as u64)
                .unwrap_or_else(|e| panic!("{size}: {e}"));
            assert_eq!(shape.plaintext_len, size as u64);
            assert_eq!(
                file.len() as u64,
                shape.head_len as u64 - NONCE_BYTES as u64 + payload_length(size as u64)
            );
        }
        // Not a bucket, too small, cut short, or one byte too long.
        for size in [4097usize, 100, 0] {
            let file = age::encrypt(&recipient, &vec![0u8; size]).unwrap();
            assert_eq!(
                check_attachment(&file, file.len() as u64).unwrap_err(),
                AgeFileError::NotPadded,
                "{size}"
            );
        }
        let file = age::encrypt(&recipient, &vec![0u8; 8192]).unwrap();
        let len = file.len() as u64;
        assert!(check_attachment(&file, len - 1).is_err());
        assert!(check_attachment(&file, len + 1).is_err());
        assert!(check_attachment(&file[..20], len).is_err());
        assert!(check_attachment(b"not age at all", 1 << 20).is_err());
    }

    fn hybrid_file(len: usize) -> Vec<u8> {
        let recipient = crate::format::pq::HybridIdentity::generate().to_public();
        age::encrypt(&recipient, &vec![7u8; len]).unwrap()
    }

    #[test]
    fn accepts_hybrid_files_and_their_exact_sizes_only() {
        for len in [0, 65_536, 200_000] {
            AgeBlob::parse(hybrid_file(len)).unwrap_or_else(|e| panic!("{len}: {e}"));
        }
        let file = hybrid_file(10);
        let text = String::from_utf8_lossy(&file).into_owned();
        let line_start = text.find("-> mlkem768x25519 ").unwrap();
        let line_end = line_start + text[line_start..].find('\n').unwrap();
        let enc_start = line_start + "-> mlkem768x25519 ".len();
        let body_end = line_end + 1 + text[line_end + 1..].find('\n').unwrap();
        let splice = |from: usize, to: usize, with: &str| {
            let mut f = file[..from].to_vec();
            f.extend_from_slice(with.as_bytes());
            f.extend_from_slice(&file[to..]);
            f
        };
        let enc = &text[enc_start..line_end];
        assert_eq!(enc.len(), 1494);
        let hostile = [
            // one byte short, one byte long
            splice(enc_start, line_end, &enc[..enc.len() - 2]),
            splice(enc_start, line_end, &format!("{enc}AA")),
            // not canonical: the last character's unused bits set
            splice(line_end - 1, line_end, "B"),
            // an extra argument, and none at all
            splice(line_end, line_end, " x"),
            splice(enc_start - 1, line_end, ""),
            // a body of 31 and of 33 bytes
            splice(line_end + 1, body_end, &STANDARD_NO_PAD.encode([0u8; 31])),
            splice(line_end + 1, body_end, &STANDARD_NO_PAD.encode([0u8; 33])),
        ];
        for (i, f) in hostile.into_iter().enumerate() {
            assert_eq!(AgeBlob::parse(f).unwrap_err().code(), "not_age", "case {i}");
        }
        // The tag is case-sensitive: anything else is an unknown recipient type.
        let upper = splice(line_start + 3, enc_start - 1, "MLKEM768X25519");
        assert_eq!(
            AgeBlob::parse(upper).unwrap_err().code(),
            "bad_recipient_type"
        );
    }

    #[test]
    fn refuses_classical_and_hybrid_stanzas_in_one_file() {
        let hybrid = hybrid_file(10);
        let classical = x25519_file(10);
        let h = String::from_utf8_lossy(&hybrid).into_owned();
        let c = String::from_utf8_lossy(&classical).into_owned();
        // Move the X25519 stanza (two lines) into the hybrid file's header.
        let x_start = c.find("-> X25519 ").unwrap();
        let x_line_end = x_start + c[x_start..].find('\n').unwrap();
        let x_end = x_line_end + 1 + c[x_line_end + 1..].find('\n').unwrap() + 1;
        let at = h.find("-> mlkem768x25519 ").unwrap();
        let mut mixed = hybrid[..at].to_vec();
        mixed.extend_from_slice(&classical[x_start..x_end]);
        mixed.extend_from_slice(&hybrid[at..]);
        let err = AgeBlob::parse(mixed).unwrap_err();
        assert_eq!(
            err,
            AgeFileError::NotAge("classical and post-quantum recipients mixed in one file")
        );
    }

    #[test]
    fn refuses_a_tampered_stanza() {
        let mut file = x25519_file(10);
        let text = String::from_utf8_lossy(&file[..60]).into_owned();
        let at = text.find("X25519 ").unwrap() + 7;
        file[at] = b'!';
        assert_eq!(AgeBlob::parse(file).unwrap_err().code(), "not_age");
    }
}
