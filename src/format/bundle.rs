//! Outbox and inbox bundles (protocol.md §6): plain tar archives with a
//! manifest.json, carried by USB stick between the air-gapped laptop and the
//! server. The outbox is signed with the counsellor's Ed25519 key; the inbox is
//! age-encrypted as a whole to the counsellor.
//!
//! Changing a name or field breaks bundles in transit — see the tests below and
//! tests/courier.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::agefile::AgeBlob;
use super::card::valid_id;
use super::day::Day;
use super::ids::{CaseId, MessageId, UploadId};

/// The largest bundle, either way.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
const MAX_ENTRIES: usize = 10_000;
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
const SIGNATURE_CONTEXT: &[u8] = b"meldkluis-outbox-v1\n";
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";

/// Why a bundle was refused. Nothing is applied from a refused bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The archive or its manifest is not well-formed; the text says how.
    #[error("not a valid bundle: {0}")]
    Malformed(String),
    /// The outbox signature does not verify against the counsellor's key.
    #[error("the bundle's signature does not verify")]
    BadSignature,
    /// The inbox could not be decrypted with this identity.
    #[error("could not decrypt the inbox: {0}")]
    Decrypt(String),
}

fn malformed(text: impl Into<String>) -> BundleError {
    BundleError::Malformed(text.into())
}

/// What an outbox item asks the server to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxKind {
    /// A counsellor's message to the melder (any status but closed).
    Reply,
    /// The closing message: the server learns the case is closed, to delete
    /// it after the retention period.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxItem {
    pub id: MessageId,
    pub case: CaseId,
    pub kind: OutboxKind,
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxManifest {
    pub format: String,
    pub v: u32,
    pub counsellor: String,
    pub counter: u64,
    pub inbox_ack: u64,
    pub items: Vec<OutboxItem>,
}

/// An outbox whose structure, hashes and age files checked out. Its
/// signature is checked separately, against the card its manifest names.
#[derive(Debug)]
pub struct Outbox {
    pub manifest: OutboxManifest,
    /// SHA-256 of manifest.json: tells a retried bundle from a replayed one.
    pub manifest_hash: [u8; 32],
    manifest_bytes: Vec<u8>,
    signature: Signature,
    pub files: BTreeMap<MessageId, AgeBlob>,
}

fn item_file(id: &MessageId) -> String {
    format!("items/{id}.age")
}

impl Outbox {
    /// Builds and signs an outbox: the bytes to write to the USB stick.
    pub fn build(
        counsellor: &str,
        counter: u64,
        inbox_ack: u64,
        items: &[(MessageId, CaseId, OutboxKind, Vec<u8>)],
        key: &SigningKey,
    ) -> Vec<u8> {
        let manifest = OutboxManifest {
            format: "meldkluis-outbox".into(),
            v: 1,
            counsellor: counsellor.into(),
            counter,
            inbox_ack,
            items: items
                .iter()
                .map(|(id, case, kind, body)| OutboxItem {
                    id: *id,
                    case: *case,
                    kind: *kind,
                    file: item_file(id),
                    sha256: hex::encode(Sha256::digest(body)),
                })
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("serialises");
        let mut signed = SIGNATURE_CONTEXT.to_vec();
        signed.extend_from_slice(&manifest_bytes);
        let signature = STANDARD.encode(key.sign(&signed).to_bytes());
        let mut entries: Vec<(String, &[u8])> = vec![
            (MANIFEST.into(), &manifest_bytes),
            (SIGNATURE.into(), signature.as_bytes()),
        ];
        for (id, _, _, body) in items {
            entries.push((item_file(id), body));
        }
        write_tar(&entries)
    }

    /// Reads an outbox and checks everything but the signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut entries = read_tar(bytes)?;
        let manifest_bytes = entries
            .remove(MANIFEST)
            .ok_or_else(|| malformed("manifest.json is missing"))?;
        let signature_text = entries
            .remove(SIGNATURE)
            .ok_or_else(|| malformed("manifest.sig is missing"))?;
        let signature: [u8; 64] = STANDARD
            .decode(signature_text.trim_ascii())
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed("manifest.sig is not base64 of a 64-byte signature"))?;
        let manifest: OutboxManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| malformed(format!("manifest.json: {e}")))?;
        if manifest.format != "meldkluis-outbox" || manifest.v != 1 {
            return Err(malformed("not an outbox of version 1"));
        }
        if !valid_id(&manifest.counsellor) {
            return Err(malformed("the counsellor id is malformed"));
        }
        let files = take_items(
            &mut entries,
            manifest
                .items
                .iter()
                .map(|i| (i.id, i.file.as_str(), i.sha256.as_str())),
        )?;
        Ok(Outbox {
            manifest_hash: Sha256::digest(&manifest_bytes).into(),
            manifest,
            manifest_bytes,
            signature: Signature::from_bytes(&signature),
            files,
        })
    }

    /// Checks the signature against the counsellor's key from their card.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), BundleError> {
        let mut signed = SIGNATURE_CONTEXT.to_vec();
        signed.extend_from_slice(&self.manifest_bytes);
        key.verify(&signed, &self.signature)
            .map_err(|_| BundleError::BadSignature)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxItem {
    pub seq: u64,
    pub id: MessageId,
    pub case: CaseId,
    /// `melder` or the id of the counsellor who wrote it.
    pub author: String,
    /// `report`, `follow-up` or `reply`.
    pub kind: String,
    pub day: Day,
    pub file: String,
    pub sha256: String,
    /// The streamed attachments this message claimed (protocol.md §3a, §6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<InboxAttachment>,
}

/// A streamed attachment in an inbox: `attachments/<upload>.age`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxAttachment {
    pub upload: UploadId,
    pub file: String,
    /// The age file's length in bytes.
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxManifest {
    pub format: String,
    pub v: u32,
    pub counsellor: String,
    pub answers_counter: u64,
    pub day: Day,
    pub applied: Vec<MessageId>,
    pub items: Vec<InboxItem>,
}

/// One message for the inbox, before hashing.
pub struct InboxEntry {
    pub seq: u64,
    pub id: MessageId,
    pub case: CaseId,
    pub author: String,
    pub kind: String,
    pub day: Day,
    pub body: Vec<u8>,
    /// The streamed attachments the message claimed, in the order it named
    /// them; their bytes stay on disk until the inbox is written.
    pub attachments: Vec<EntryAttachment>,
}

/// A streamed attachment of an inbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAttachment {
    pub upload: UploadId,
    /// The age file's length in bytes.
    pub length: u64,
}

#[derive(Debug)]
pub struct Inbox {
    pub manifest: InboxManifest,
    pub files: BTreeMap<MessageId, AgeBlob>,
}

impl Inbox {
    /// Builds the inbox tar and encrypts it to the counsellor.
    pub fn seal(
        counsellor: &str,
        answers_counter: u64,
        applied: Vec<MessageId>,
        entries: &[InboxEntry],
        recipient: &age::x25519::Recipient,
    ) -> Result<Vec<u8>, BundleError> {
        let manifest = InboxManifest {
            format: "meldkluis-inbox".into(),
            v: 1,
            counsellor: counsellor.into(),
            answers_counter,
            day: Day::today(),
            applied,
            items: entries
                .iter()
                .map(|e| InboxItem {
                    seq: e.seq,
                    id: e.id,
                    case: e.case,
                    author: e.author.clone(),
                    kind: e.kind.clone(),
                    day: e.day,
                    file: item_file(&e.id),
                    sha256: hex::encode(Sha256::digest(&e.body)),
                    attachments: Vec::new(),
                })
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("serialises");
        let mut files: Vec<(String, &[u8])> = vec![(MANIFEST.into(), &manifest_bytes)];
        for entry in entries {
            files.push((item_file(&entry.id), &entry.body));
        }
        let tar = write_tar(&files);
        super::encrypt(std::slice::from_ref(recipient), &tar).map_err(malformed)
    }

    /// Decrypts and checks an inbox.
    pub fn open(ciphertext: &[u8], identities: &[&dyn age::Identity]) -> Result<Self, BundleError> {
        let decryptor =
            age::Decryptor::new(ciphertext).map_err(|e| BundleError::Decrypt(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(identities.iter().copied())
            .map_err(|e| BundleError::Decrypt(e.to_string()))?
            .take(MAX_BUNDLE_BYTES as u64 + 1);
        let mut tar = Vec::new();
        reader
            .read_to_end(&mut tar)
            .map_err(|e| BundleError::Decrypt(e.to_string()))?;
        Self::parse(&tar)
    }

    /// Reads a decrypted inbox tar.
    pub fn parse(tar: &[u8]) -> Result<Self, BundleError> {
        let mut entries = read_tar(tar)?;
        let manifest_bytes = entries
            .remove(MANIFEST)
            .ok_or_else(|| malformed("manifest.json is missing"))?;
        let manifest: InboxManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| malformed(format!("manifest.json: {e}")))?;
        if manifest.format != "meldkluis-inbox" || manifest.v != 1 {
            return Err(malformed("not an inbox of version 1"));
        }
        // The server writes these; the laptop still trusts nothing it did not check.
        for item in &manifest.items {
            if !(item.author == "melder" || valid_id(&item.author)) {
                return Err(malformed("an item's author is malformed"));
            }
            if !matches!(item.kind.as_str(), "report" | "follow-up" | "reply") {
                return Err(malformed("an item's kind is unknown"));
            }
        }
        let files = take_items(
            &mut entries,
            manifest
                .items
                .iter()
                .map(|i| (i.id, i.file.as_str(), i.sha256.as_str())),
        )?;
        Ok(Inbox { manifest, files })
    }
}

/// Matches manifest items to archive entries: each listed once, at its
/// canonical name, with the right hash and a valid age file; nothing extra.
fn take_items<'a>(
    entries: &mut BTreeMap<String, Vec<u8>>,
    items: impl Iterator<Item = (MessageId, &'a str, &'a str)>,
) -> Result<BTreeMap<MessageId, AgeBlob>, BundleError> {
    let mut files = BTreeMap::new();
    for (id, file, sha256) in items {
        if file != item_file(&id) {
            return Err(malformed(format!(
                "item {id} has a non-canonical file name"
            )));
        }
        let body = entries
            .remove(file)
            .ok_or_else(|| malformed(format!("{file} is listed but missing")))?;
        if hex::encode(Sha256::digest(&body)) != sha256 {
            return Err(malformed(format!("{file} does not match its hash")));
        }
        let blob = AgeBlob::parse_message(body).map_err(|e| malformed(format!("{file}: {e}")))?;
        if files.insert(id, blob).is_some() {
            return Err(malformed(format!("item {id} is listed twice")));
        }
    }
    if let Some(extra) = entries.keys().next() {
        return Err(malformed(format!(
            "{extra:?} is not listed in the manifest"
        )));
    }
    Ok(files)
}

/// Reads a tar archive strictly: regular files only, at plain relative names,
/// no duplicates, within the size and entry limits.
fn read_tar(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(malformed("the bundle is larger than 64 MiB"));
    }
    if bytes.len() < 1024 || bytes.len() % 512 != 0 {
        return Err(malformed("not a tar archive"));
    }
    let mut archive = tar::Archive::new(Cursor::new(bytes));
    let mut entries = BTreeMap::new();
    let mut names = BTreeSet::new();
    let iter = archive
        .entries()
        .map_err(|e| malformed(format!("not a tar archive: {e}")))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| malformed(format!("not a tar archive: {e}")))?;
        if names.len() >= MAX_ENTRIES {
            return Err(malformed("too many entries"));
        }
        if !entry.header().entry_type().is_file() {
            return Err(malformed("only regular files may be in a bundle"));
        }
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| malformed("an entry name is not UTF-8"))?;
        let allowed = name == MANIFEST
            || name == SIGNATURE
            || name
                .strip_prefix("items/")
                .and_then(|n| n.strip_suffix(".age"))
                .and_then(MessageId::parse)
                .is_some();
        if !allowed {
            return Err(malformed(format!("unexpected entry {name:?}")));
        }
        let size = entry
            .header()
            .size()
            .map_err(|_| malformed("bad entry size"))?;
        let limit = if name == MANIFEST {
            MAX_MANIFEST_BYTES
        } else {
            MAX_BUNDLE_BYTES
        };
        if size > limit as u64 {
            return Err(malformed(format!("{name} is too large")));
        }
        let mut body = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut body)
            .map_err(|e| malformed(format!("{name} is truncated: {e}")))?;
        if body.len() as u64 != size {
            return Err(malformed(format!("{name} is truncated")));
        }
        if !names.insert(name.clone()) {
            return Err(malformed(format!("{name} appears twice")));
        }
        entries.insert(name, body);
    }
    Ok(entries)
}

/// Writes a deterministic ustar archive: mode 0600, time 0, no owner names,
/// so a bundle carries no trace of when or by whom it was made.
fn write_tar(entries: &[(String, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(name)
            .expect("bundle names are short and relative");
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append(&header, *body)
            .expect("writing to memory cannot fail");
    }
    builder.into_inner().expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age_file() -> Vec<u8> {
        age::encrypt(
            &age::x25519::Identity::generate().to_public(),
            &[b' '; 4096],
        )
        .unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    #[test]
    fn outbox_round_trip_and_signature() {
        let key = key();
        let id = MessageId::random();
        let bytes = Outbox::build(
            "vp-jansen",
            3,
            17,
            &[(id, CaseId::random(), OutboxKind::Reply, age_file())],
            &key,
        );
        let outbox = Outbox::parse(&bytes).unwrap();
        assert_eq!(outbox.manifest.counter, 3);
        assert_eq!(outbox.manifest.inbox_ack, 17);
        assert!(outbox.files.contains_key(&id));
        outbox.verify(&key.verifying_key()).unwrap();
        assert_eq!(
            outbox.verify(&self::key().verifying_key()),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn empty_outbox_is_valid() {
        let key = key();
        let outbox = Outbox::parse(&Outbox::build("vp-jansen", 1, 0, &[], &key)).unwrap();
        outbox.verify(&key.verifying_key()).unwrap();
        assert!(outbox.files.is_empty());
    }

    #[test]
    fn tampered_manifest_fails_the_signature() {
        let key = key();
        let bytes = Outbox::build("vp-jansen", 5, 0, &[], &key);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let at = text.find("\"counter\": 5").unwrap() + 11;
        let mut forged = bytes.clone();
        forged[at] = b'9';
        let outbox = Outbox::parse(&forged).unwrap();
        assert_eq!(
            outbox.verify(&key.verifying_key()),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn refuses_hostile_archives() {
        let body = age_file();
        let id = MessageId::random();
        let good_manifest = |file: &str, sha: &str| {
            format!(
                "{{\"format\":\"meldkluis-outbox\",\"v\":1,\"counsellor\":\"vp-jansen\",\"counter\":1,\"inbox_ack\":0,\"items\":[{{\"id\":\"{id}\",\"case\":\"{}\",\"kind\":\"reply\",\"file\":\"{file}\",\"sha256\":\"{sha}\"}}]}}",
                CaseId::random()
            )
        };
        let sha = hex::encode(Sha256::digest(&body));
        let sig = STANDARD.encode([0u8; 64]);
        let file = item_file(&id);
        let cases: Vec<Vec<(String, Vec<u8>)>> = vec![
            // missing signature
            vec![(MANIFEST.into(), good_manifest(&file, &sha).into_bytes())],
            // wrong hash
            vec![
                (
                    MANIFEST.into(),
                    good_manifest(&file, &"0".repeat(64)).into_bytes(),
                ),
                (SIGNATURE.into(), sig.clone().into_bytes()),
                (file.clone(), body.clone()),
            ],
            // listed file missing
            vec![
                (MANIFEST.into(), good_manifest(&file, &sha).into_bytes()),
                (SIGNATURE.into(), sig.clone().into_bytes()),
            ],
            // path traversal in an entry name
            vec![
                (MANIFEST.into(), good_manifest(&file, &sha).into_bytes()),
                (SIGNATURE.into(), sig.clone().into_bytes()),
                ("items/../../x.age".into(), body.clone()),
            ],
            // not an age file
            vec![
                (
                    MANIFEST.into(),
                    good_manifest(&file, &hex::encode(Sha256::digest(b"plain"))).into_bytes(),
                ),
                (SIGNATURE.into(), sig.clone().into_bytes()),
                (file.clone(), b"plain".to_vec()),
            ],
            // broken JSON
            vec![
                (MANIFEST.into(), b"{\"format\":".to_vec()),
                (SIGNATURE.into(), sig.clone().into_bytes()),
            ],
            // an extra, unlisted file
            vec![
                (MANIFEST.into(), good_manifest(&file, &sha).into_bytes()),
                (SIGNATURE.into(), sig.clone().into_bytes()),
                (file.clone(), body.clone()),
                (item_file(&MessageId::random()), body.clone()),
            ],
        ];
        for entries in cases {
            let refs: Vec<(String, &[u8])> = entries
                .iter()
                .map(|(n, b)| (n.clone(), b.as_slice()))
                .collect();
            let tar = write_tar_unchecked(&refs);
            assert!(matches!(
                Outbox::parse(&tar),
                Err(BundleError::Malformed(_))
            ));
        }
        for junk in [&b""[..], b"hello", &[0u8; 1024], &[0xffu8; 4096]] {
            assert!(matches!(
                Outbox::parse(junk),
                Err(BundleError::Malformed(_))
            ));
        }
    }

    /// Like write_tar, but allows names write_tar's `set_path` would refuse.
    fn write_tar_unchecked(entries: &[(String, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, body) in entries {
            let mut header = tar::Header::new_ustar();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, *body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn an_inbox_with_a_hostile_author_or_kind_is_refused() {
        let identity = age::x25519::Identity::generate();
        for (author, kind) in [
            ("\u{1b}[2Jmelder", "report"),
            ("melder", "report\u{1b}]0;x\u{7}"),
        ] {
            let entry = InboxEntry {
                seq: 1,
                id: MessageId::random(),
                case: CaseId::random(),
                author: author.into(),
                kind: kind.into(),
                day: Day::today(),
                body: age_file(),
                attachments: Vec::new(),
            };
            let sealed =
                Inbox::seal("vp-jansen", 1, vec![], &[entry], &identity.to_public()).unwrap();
            assert!(matches!(
                Inbox::open(&sealed, &[&identity]),
                Err(BundleError::Malformed(_))
            ));
        }
    }

    #[test]
    fn inbox_round_trip() {
        let identity = age::x25519::Identity::generate();
        let entry = InboxEntry {
            seq: 4,
            id: MessageId::random(),
            case: CaseId::random(),
            author: "melder".into(),
            kind: "report".into(),
            day: Day::today(),
            body: age_file(),
            attachments: Vec::new(),
        };
        let applied = vec![MessageId::random()];
        let sealed = Inbox::seal(
            "vp-jansen",
            2,
            applied.clone(),
            &[entry],
            &identity.to_public(),
        )
        .unwrap();
        AgeBlob::parse(sealed.clone()).unwrap();
        let inbox = Inbox::open(&sealed, &[&identity]).unwrap();
        assert_eq!(inbox.manifest.applied, applied);
        assert_eq!(inbox.manifest.items[0].seq, 4);
        assert_eq!(inbox.files.len(), 1);
        let stranger = age::x25519::Identity::generate();
        assert!(matches!(
            Inbox::open(&sealed, &[&stranger]),
            Err(BundleError::Decrypt(_))
        ));
    }
}
