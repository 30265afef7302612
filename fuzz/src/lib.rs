//! What each fuzz target checks. Every function takes arbitrary bytes, must
//! never panic on them, and panics (a "crash" to the fuzzer) when a parser
//! accepts something that does not re-validate or does not round-trip.
//!
//! The fuzz binaries in fuzz_targets/ call these; tests/replay.rs runs the
//! committed seeds in seeds/ through them without libFuzzer.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use meldkluis::format::agefile::{self, AgeBlob, AgeFileError, check_attachment};
use meldkluis::format::bundle::{EntryAttachment, Inbox, InboxEntry, Outbox};
use meldkluis::format::card::{Card, valid_id};
use meldkluis::format::code::{ALPHABET, CODE_LEN, CodeError, RetrievalCode};
use meldkluis::format::envelope::{Envelope, padded_length};
use meldkluis::format::ids::MessageId;
use sha2::{Digest, Sha256};

/// A padded (4096-byte plaintext) age file, the body of the fixed bundle
/// items in "manifest mode" below. Made once by `tests/replay.rs`
/// (`write_seeds`); the seeds name it by `FIXTURE_IDS` and its SHA-256.
pub const FIXTURE_AGE: &[u8] = include_bytes!("../fixtures/item.age");
/// The upload id under which the fixture, a 4096-byte padded plaintext and
/// so also a well-formed streamed attachment, follows the first item.
pub const FIXTURE_UPLOAD: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The ids under which the fixture is put in a bundle in manifest mode.
pub const FIXTURE_IDS: [&str; 2] = [
    "00112233445566778899aabbccddeeff",
    "ffeeddccbbaa99887766554433221100",
];
/// The identity the replay test and the inbox round trip use (the one of
/// tests/vectors/age.json: public test data, not a secret).
pub const TEST_IDENTITY: &str =
    "AGE-SECRET-KEY-152S3KGQTHC05UZ0ZTVYG9LLKMK09CXLGD3GWWUQF3W3AVPUCZ3SQGESLSS";

fn identity() -> &'static age::x25519::Identity {
    static IDENTITY: OnceLock<age::x25519::Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| TEST_IDENTITY.parse().expect("a valid identity"))
}

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// `RetrievalCode::parse`: a parsed code is canonical and re-parses to
/// itself from every form; a refusal names the real offending character,
/// position or length; no single substitution passes the check.
pub fn code(data: &[u8]) {
    let typed = String::from_utf8_lossy(data);
    let symbols: Vec<char> = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    match RetrievalCode::parse(&typed) {
        Ok(code) => {
            let canonical = code.canonical();
            assert_eq!(canonical.len(), CODE_LEN);
            assert!(canonical.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(symbols.len(), CODE_LEN);
            assert!(RetrievalCode::parse(canonical).unwrap() == code);
            let display = code.display();
            assert_eq!(display.len(), CODE_LEN + CODE_LEN / 4 - 1);
            assert!(RetrievalCode::parse(&display).unwrap() == code);
            assert!(RetrievalCode::parse(&display.to_ascii_lowercase()).unwrap() == code);
            // Every single wrong symbol is caught (protocol.md §1).
            let bytes = canonical.as_bytes();
            for i in 0..CODE_LEN {
                for &other in ALPHABET.iter().filter(|&&a| a != bytes[i]) {
                    let mut typo = bytes.to_vec();
                    typo[i] = other;
                    let typo = String::from_utf8(typo).unwrap();
                    assert_eq!(
                        RetrievalCode::parse(&typo).err(),
                        Some(CodeError::CheckFailed)
                    );
                }
            }
        }
        Err(CodeError::InvalidCharacter {
            character,
            position,
        }) => {
            assert!(position >= 1);
            assert_eq!(symbols.get(position - 1), Some(&character));
        }
        Err(CodeError::WrongLength { expected, found }) => {
            assert_eq!(expected, CODE_LEN);
            assert_ne!(found, CODE_LEN);
            assert_eq!(found, symbols.len());
        }
        Err(CodeError::CheckFailed) => assert_eq!(symbols.len(), CODE_LEN),
    }
    // Case never matters.
    let upper = RetrievalCode::parse(&typed.to_ascii_uppercase());
    let lower = RetrievalCode::parse(&typed.to_ascii_lowercase());
    assert_eq!(
        upper.as_ref().map(|c| c.canonical().to_owned()).ok(),
        lower.as_ref().map(|c| c.canonical().to_owned()).ok()
    );
}

/// `Envelope::from_padded`: an accepted envelope validates, pads to a
/// bucket, and reads back equal; more padding never changes the result.
pub fn envelope(data: &[u8]) {
    let Ok(envelope) = Envelope::from_padded(data) else {
        return;
    };
    envelope.validate().expect("a parsed envelope validates");
    let padded = envelope.to_padded().expect("a parsed envelope pads");
    assert_eq!(padded_length(padded.len()), Some(padded.len()));
    assert_eq!(Envelope::from_padded(&padded).unwrap(), envelope);
    let mut more = data.to_vec();
    more.extend_from_slice(b"    ");
    assert_eq!(Envelope::from_padded(&more).unwrap(), envelope);
}

/// The input for a bundle target: a raw tar archive, or (first byte with
/// the high bit set) a manifest.json that the harness packs into a tar with
/// a signature and the fixture item under `FIXTURE_IDS` — bits 0–2 of that
/// byte choose which of the three entries go in, bit 3 adds the fixture as
/// the attachment `FIXTURE_UPLOAD` after the first item. The second mode lets
/// the fuzzer work on the manifest rules behind the tar and hash checks.
fn bundle_bytes(data: &[u8], with_signature: bool) -> Vec<u8> {
    let Some((&mode, manifest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 0x80 == 0 {
        return data.to_vec();
    }
    let signature = "A".repeat(86) + "==";
    let mut entries: Vec<(String, &[u8])> = vec![("manifest.json".into(), manifest)];
    if with_signature && mode & 1 != 0 {
        entries.push(("manifest.sig".into(), signature.as_bytes()));
    }
    for (bit, id) in [(2, FIXTURE_IDS[0]), (4, FIXTURE_IDS[1])] {
        if mode & bit != 0 {
            entries.push((format!("items/{id}.age"), FIXTURE_AGE));
        }
        if bit == 2 && mode & 8 != 0 {
            entries.push((format!("attachments/{FIXTURE_UPLOAD}.age"), FIXTURE_AGE));
        }
    }
    tar(&entries)
}

/// A plain ustar archive, as the reviewer and server write them.
pub fn tar(entries: &[(String, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, body) in entries {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..107].copy_from_slice(b"0000600");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Checks the items of a parsed bundle: each listed once under its
/// canonical name, present, hashed right, and a padded age message.
fn check_items<'a>(
    files: &std::collections::BTreeMap<MessageId, AgeBlob>,
    items: impl ExactSizeIterator<Item = (MessageId, &'a str, &'a str)>,
) {
    assert_eq!(files.len(), items.len());
    for (id, file, sha256) in items {
        assert_eq!(file, format!("items/{id}.age"));
        let body = files.get(&id).expect("every listed item is present");
        assert_eq!(hex::encode(Sha256::digest(body.as_bytes())), sha256);
        AgeBlob::parse_message(body.as_bytes().to_vec()).expect("an item re-validates");
    }
}

/// `Outbox::parse`: an accepted outbox has consistent items, and the same
/// content, rebuilt and signed, parses to the same manifest and verifies.
pub fn outbox(data: &[u8]) {
    let bytes = bundle_bytes(data, true);
    let Ok(outbox) = Outbox::parse(&bytes) else {
        return;
    };
    let manifest = &outbox.manifest;
    assert!(manifest.format == "meldkluis-outbox" && manifest.v == 1);
    assert!(valid_id(&manifest.counsellor));
    check_items(
        &outbox.files,
        manifest
            .items
            .iter()
            .map(|i| (i.id, i.file.as_str(), i.sha256.as_str())),
    );
    // The seeds are signed by another key, and nobody forges Ed25519.
    assert!(
        outbox.verify(&signing_key().verifying_key()).is_err(),
        "a fuzzed signature verified"
    );
    let items: Vec<_> = manifest
        .items
        .iter()
        .map(|i| {
            (
                i.id,
                i.case,
                i.kind,
                outbox.files[&i.id].as_bytes().to_vec(),
            )
        })
        .collect();
    let key = signing_key();
    let rebuilt = Outbox::build(
        &manifest.counsellor,
        manifest.counter,
        manifest.inbox_ack,
        &items,
        &key,
    );
    let again = Outbox::parse(&rebuilt).expect("a rebuilt outbox parses");
    assert_eq!(&again.manifest, manifest);
    assert_eq!(again.files, outbox.files);
    again
        .verify(&key.verifying_key())
        .expect("a rebuilt outbox verifies");
}

/// `Inbox::parse`: an accepted inbox has consistent items and attachments,
/// and the same content, sealed as a stream and opened again, gives the same
/// manifest (but the day) and the same bytes.
pub fn inbox(data: &[u8]) {
    let bytes = bundle_bytes(data, false);
    let Ok(inbox) = Inbox::parse(&bytes) else {
        return;
    };
    let manifest = &inbox.manifest;
    assert!(manifest.format == "meldkluis-inbox" && manifest.v == 1);
    check_items(
        &inbox.files,
        manifest
            .items
            .iter()
            .map(|i| (i.id, i.file.as_str(), i.sha256.as_str())),
    );
    let listed: usize = manifest.items.iter().map(|i| i.attachments.len()).sum();
    assert_eq!(inbox.attachments.len(), listed);
    for attachment in manifest.items.iter().flat_map(|i| &i.attachments) {
        assert_eq!(
            attachment.file,
            format!("attachments/{}.age", attachment.upload)
        );
        let bytes = &inbox.attachments[&attachment.upload];
        assert_eq!(bytes.len() as u64, attachment.length);
        check_attachment(&bytes[..bytes.len().min(65_536)], attachment.length)
            .expect("an accepted attachment re-checks");
    }
    let entries: Vec<InboxEntry> = manifest
        .items
        .iter()
        .map(|i| InboxEntry {
            seq: i.seq,
            id: i.id,
            case: i.case,
            author: i.author.clone(),
            kind: i.kind.clone(),
            day: i.day,
            body: inbox.files[&i.id].as_bytes().to_vec(),
            attachments: i
                .attachments
                .iter()
                .map(|a| EntryAttachment {
                    upload: a.upload,
                    length: a.length,
                })
                .collect(),
        })
        .collect();
    let sealed = Inbox::seal_with(
        &manifest.counsellor,
        manifest.answers_counter,
        &manifest.applied,
        &entries,
        &inbox.attachments,
        &identity().to_public(),
    )
    .expect("a parsed inbox seals");
    AgeBlob::parse(sealed.clone()).expect("a sealed inbox passes the age check");
    let opened = Inbox::open(&sealed, &[identity()]).expect("a sealed inbox opens");
    let mut expected = manifest.clone();
    expected.day = opened.manifest.day;
    assert_eq!(opened.manifest, expected);
    assert_eq!(opened.files, inbox.files);
    assert_eq!(opened.attachments, inbox.attachments);
}

/// `AgeBlob::parse` and `parse_message`: a message check is the shape check
/// plus padding, nothing else; an accepted file is what the age crate
/// reads, kept byte for byte.
pub fn age_header(data: &[u8]) {
    let shape = AgeBlob::parse(data.to_vec());
    let message = AgeBlob::parse_message(data.to_vec());
    match (&shape, &message) {
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(_), Ok(_)) => panic!("a message passed that fails the shape check"),
        (Ok(_), Err(e)) => assert_eq!(e, &AgeFileError::NotPadded),
        (Ok(_), Ok(_)) => {}
    }
    if let Ok(blob) = shape {
        assert_eq!(blob.as_bytes(), data);
        assert!(data.starts_with(b"age-encryption.org/v1\n"));
        age::Decryptor::new(data).expect("the age crate reads what we accept");
        assert_eq!(AgeBlob::parse(data.to_vec()).ok(), Some(blob));
    }
    // The streamed-attachment check (protocol.md §3a) on the same bytes, as
    // a prefix of a file of this length and of a few other lengths: it never
    // panics, and what it accepts is a header the age crate reads, with a
    // padded plaintext length that fits the file.
    for total in [data.len() as u64, data.len() as u64 + 65_552, u64::MAX] {
        if let Ok(shape) = agefile::check_attachment(data, total) {
            assert!(shape.head_len <= data.len());
            assert!(shape.plaintext_len >= agefile::MIN_ATTACHMENT_PLAINTEXT);
            assert_eq!(agefile::padme(shape.plaintext_len), shape.plaintext_len);
            assert!(shape.plaintext_len < total);
            age::Decryptor::new(&data[..shape.head_len]).expect("the age crate reads the head");
        }
    }
}

/// `Card::parse`: an accepted card validates, keeps its keys usable, and
/// round-trips through the JSON the reviewer writes.
pub fn card(data: &[u8]) {
    let Ok(card) = Card::parse(data) else {
        return;
    };
    card.validate().expect("a parsed card validates");
    assert!(valid_id(&card.id) && valid_id(&card.org_id()));
    card.recipient().expect("a parsed card has a recipient");
    card.verifying_key()
        .expect("a parsed card has a signing key");
    assert_eq!(Card::parse(card.to_json().as_bytes()).unwrap(), card);
}
