//! Outbox and inbox bundles (protocol.md §6): plain tar archives with a
//! manifest.json, carried by USB stick between the air-gapped laptop and the
//! server. The outbox is signed with the counsellor's Ed25519 key; the inbox is
//! age-encrypted as a whole to the counsellor.
//!
//! Changing a name or field breaks bundles in transit — see the tests below and
//! tests/courier.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Cursor, Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::agefile::{AgeBlob, AttachmentShape, check_attachment};
use super::card::valid_id;
use super::day::Day;
use super::ids::{CaseId, MessageId, UploadId};

/// The largest outbox; in an inbox, the largest message file.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// The most entries a bundle holds; in an inbox, the manifest, the items and
/// their attachments together.
pub const MAX_ENTRIES: usize = 10_000;
/// The largest manifest.json, either way.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest attachment file an inbox may carry: far above any server's
/// `max_attachment_bytes` (500 MiB by default), far below any overflow.
pub const MAX_INBOX_ATTACHMENT_BYTES: u64 = 64 << 30;
/// The most streamed attachments one message may claim (protocol.md §3).
const MAX_ATTACHMENTS_PER_ITEM: usize = 20;
/// How much of an attachment the reader holds to check its head: the age
/// header and nonce always fit (protocol.md §3a).
const ATTACHMENT_PREFIX_BYTES: usize = 64 * 1024;
/// At most this many zero bytes may follow the last entry.
const MAX_TRAILER_BYTES: usize = 1024 * 1024;
const COPY_BUFFER_BYTES: usize = 64 * 1024;
const BLOCK: usize = 512;
const SIGNATURE_CONTEXT: &[u8] = b"meldkluis-outbox-v1\n";
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
/// What the server signs an inbox manifest under (protocol.md §6).
const INBOX_SIGNATURE_CONTEXT: &[u8] = b"meldkluis-inbox-v1\n";
/// The largest `manifest.sig` of an inbox: two lines of base64.
const MAX_INBOX_SIGNATURE_BYTES: u64 = 256;

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

/// The text of an inbox's `manifest.sig` (protocol.md §6): the server's
/// public key and its signature over `meldkluis-inbox-v1\n` and the exact
/// manifest bytes, one base64 line each. Pinned by
/// tests/vectors/inbox-signature.json.
pub fn inbox_signature(key: &ed25519_dalek::SigningKey, manifest: &[u8]) -> String {
    use ed25519_dalek::Signer;
    format!(
        "{}\n{}\n",
        STANDARD.encode(key.verifying_key().to_bytes()),
        STANDARD.encode(
            key.sign(&[INBOX_SIGNATURE_CONTEXT, manifest].concat())
                .to_bytes()
        )
    )
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
    /// A reply that reopens a closed case (a melder wrote after closure):
    /// the server keeps the case again, its retention clock stopped.
    Reopen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxItem {
    pub id: MessageId,
    pub case: CaseId,
    pub kind: OutboxKind,
    pub file: String,
    pub sha256: String,
    /// A reply that introduces counsellors to its case (protocol.md §10.5):
    /// their ids, so the server adds them to the case and delivers its
    /// messages to them from now on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introduce: Vec<String>,
}

/// The most counsellors one outbox item introduces (as a thread pins).
const MAX_INTRODUCED: usize = 10;

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

fn attachment_file(upload: &UploadId) -> String {
    format!("attachments/{upload}.age")
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
        Self::build_introducing(counsellor, counter, inbox_ack, items, &BTreeMap::new(), key)
    }

    /// [`Outbox::build`], where the replies named in `introduce` introduce
    /// those counsellors to their case.
    pub fn build_introducing(
        counsellor: &str,
        counter: u64,
        inbox_ack: u64,
        items: &[(MessageId, CaseId, OutboxKind, Vec<u8>)],
        introduce: &BTreeMap<MessageId, Vec<String>>,
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
                    introduce: introduce.get(id).cloned().unwrap_or_default(),
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
        for item in &manifest.items {
            check_introduced(&manifest.counsellor, item)?;
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

/// An item's `introduce` list: only a reply introduces, at most ten
/// well-formed ids, each once, never its own writer.
fn check_introduced(counsellor: &str, item: &OutboxItem) -> Result<(), BundleError> {
    if item.introduce.is_empty() {
        return Ok(());
    }
    if item.kind != OutboxKind::Reply {
        return Err(malformed("only a reply introduces counsellors"));
    }
    if item.introduce.len() > MAX_INTRODUCED {
        return Err(malformed("an item introduces at most ten counsellors"));
    }
    let mut ids: Vec<&str> = item.introduce.iter().map(String::as_str).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(malformed("an item introduces a counsellor twice"));
    }
    if ids.iter().any(|id| !valid_id(id) || *id == counsellor) {
        return Err(malformed("an introduced counsellor id is malformed"));
    }
    Ok(())
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

/// An inbox read whole into memory: for tests, tools and small inboxes. The
/// reviewer reads inboxes as a stream ([`Inbox::open_stream`]).
#[derive(Debug)]
pub struct Inbox {
    pub manifest: InboxManifest,
    pub files: BTreeMap<MessageId, AgeBlob>,
    /// The streamed attachments' age files, as they came.
    pub attachments: BTreeMap<UploadId, Vec<u8>>,
}

/// Opens a streamed attachment's bytes for [`Inbox::seal_to`].
pub type OpenAttachment<'a> = dyn FnMut(&UploadId) -> io::Result<Box<dyn Read>> + 'a;

/// The reader [`Inbox::open_stream`] returns: the tar read out of age's
/// decrypting stream.
pub type SealedInboxReader<R> = InboxReader<age::stream::StreamReader<BufReader<R>>>;

impl Inbox {
    /// Builds the inbox in memory and encrypts it to the counsellor. Every
    /// entry's attachments must be in `attachments`.
    pub fn seal(
        counsellor: &str,
        answers_counter: u64,
        applied: Vec<MessageId>,
        entries: &[InboxEntry],
        recipient: &dyn age::Recipient,
    ) -> Result<Vec<u8>, BundleError> {
        Self::seal_with(
            counsellor,
            answers_counter,
            &applied,
            entries,
            &BTreeMap::new(),
            recipient,
        )
    }

    /// [`Inbox::seal`] with attachment bytes held in memory.
    pub fn seal_with(
        counsellor: &str,
        answers_counter: u64,
        applied: &[MessageId],
        entries: &[InboxEntry],
        attachments: &BTreeMap<UploadId, Vec<u8>>,
        recipient: &dyn age::Recipient,
    ) -> Result<Vec<u8>, BundleError> {
        let mut open = |upload: &UploadId| -> io::Result<Box<dyn Read>> {
            let bytes = attachments.get(upload).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no attachment {upload}"))
            })?;
            Ok(Box::new(Cursor::new(bytes.clone())))
        };
        Self::seal_to(
            Vec::new(),
            counsellor,
            answers_counter,
            applied,
            entries,
            recipient,
            &mut open,
        )
        .map_err(|e| malformed(e.to_string()))
    }

    /// Whether the laptop would accept an inbox of these entries (entry
    /// count, attachments per message, lengths, unique ids and uploads,
    /// manifest and message sizes), without writing anything: a server can
    /// ask before it starts streaming an answer. [`Inbox::seal_to`] checks
    /// the same.
    pub fn check(
        counsellor: &str,
        answers_counter: u64,
        applied: &[MessageId],
        entries: &[InboxEntry],
    ) -> Result<(), BundleError> {
        Self::manifest_bytes(counsellor, answers_counter, applied, entries).map(|_| ())
    }

    /// The checked manifest.json for these entries.
    fn manifest_bytes(
        counsellor: &str,
        answers_counter: u64,
        applied: &[MessageId],
        entries: &[InboxEntry],
    ) -> Result<Vec<u8>, BundleError> {
        let manifest = InboxManifest {
            format: "meldkluis-inbox".into(),
            v: 1,
            counsellor: counsellor.into(),
            answers_counter,
            day: Day::today(),
            applied: applied.to_vec(),
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
                    attachments: e
                        .attachments
                        .iter()
                        .map(|a| InboxAttachment {
                            upload: a.upload,
                            file: attachment_file(&a.upload),
                            length: a.length,
                        })
                        .collect(),
                })
                .collect(),
        };
        check_inbox_manifest(&manifest)?;
        if let Some(entry) = entries.iter().find(|e| e.body.len() > MAX_BUNDLE_BYTES) {
            return Err(malformed(format!(
                "message {} is larger than 64 MiB",
                entry.id
            )));
        }
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("serialises");
        if manifest_bytes.len() > MAX_MANIFEST_BYTES {
            return Err(malformed("the inbox manifest would be larger than 4 MiB"));
        }
        Ok(manifest_bytes)
    }

    /// Writes the inbox as a stream (protocol.md §6): the tar — manifest,
    /// then each item followed by its attachments — goes through age's
    /// encryptor into `out` as it is made, so memory stays bounded however
    /// large the attachments are. `open_attachment` opens an upload's age
    /// file; it must yield exactly the length its [`EntryAttachment`] states.
    ///
    /// Returns `out` once the age stream is finished. On an error, what was
    /// written is a truncated age file, which the laptop refuses: a server
    /// streaming this into an HTTP body should abort the body rather than end
    /// it cleanly.
    pub fn seal_to<W: Write>(
        out: W,
        counsellor: &str,
        answers_counter: u64,
        applied: &[MessageId],
        entries: &[InboxEntry],
        recipient: &dyn age::Recipient,
        open_attachment: &mut OpenAttachment<'_>,
    ) -> io::Result<W> {
        Self::seal_signed_to(
            out,
            None,
            counsellor,
            answers_counter,
            applied,
            entries,
            recipient,
            open_attachment,
        )
    }

    /// [`Inbox::seal_to`], with the manifest signed by the server's inbox
    /// key when `signer` is given: `manifest.sig` then comes first, holding
    /// the key and the signature (protocol.md §6).
    #[allow(clippy::too_many_arguments)]
    pub fn seal_signed_to<W: Write>(
        out: W,
        signer: Option<&SigningKey>,
        counsellor: &str,
        answers_counter: u64,
        applied: &[MessageId],
        entries: &[InboxEntry],
        recipient: &dyn age::Recipient,
        open_attachment: &mut OpenAttachment<'_>,
    ) -> io::Result<W> {
        // Refuse here what the laptop would refuse, before a byte is written.
        let manifest_bytes = Self::manifest_bytes(counsellor, answers_counter, applied, entries)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient))
            .map_err(io::Error::other)?;
        let mut tar = TarWriter::new(encryptor.wrap_output(out)?);
        if let Some(key) = signer {
            let text = inbox_signature(key, &manifest_bytes);
            tar.entry(SIGNATURE, &mut text.as_bytes(), text.len() as u64)?;
        }
        tar.entry(
            MANIFEST,
            &mut &manifest_bytes[..],
            manifest_bytes.len() as u64,
        )?;
        for entry in entries {
            tar.entry(
                &item_file(&entry.id),
                &mut &entry.body[..],
                entry.body.len() as u64,
            )?;
            for attachment in &entry.attachments {
                let mut source = open_attachment(&attachment.upload)?;
                tar.entry(
                    &attachment_file(&attachment.upload),
                    &mut source,
                    attachment.length,
                )?;
            }
        }
        tar.finish()?.finish()
    }

    /// Decrypts an inbox as a stream and checks its manifest; the parts
    /// follow from [`InboxReader::next_part`].
    pub fn open_stream<R: Read>(
        ciphertext: R,
        identities: &[&dyn age::Identity],
    ) -> Result<SealedInboxReader<R>, BundleError> {
        let decryptor =
            age::Decryptor::new_buffered(BufReader::with_capacity(COPY_BUFFER_BYTES, ciphertext))
                .map_err(|e| BundleError::Decrypt(e.to_string()))?;
        let plaintext = decryptor
            .decrypt(identities.iter().copied())
            .map_err(|e| BundleError::Decrypt(e.to_string()))?;
        InboxReader::new(plaintext)
    }

    /// Decrypts and checks a whole inbox held in memory.
    pub fn open(ciphertext: &[u8], identities: &[&dyn age::Identity]) -> Result<Self, BundleError> {
        Self::read_all(Self::open_stream(ciphertext, identities)?)
    }

    /// Reads a decrypted inbox tar held in memory.
    pub fn parse(tar: &[u8]) -> Result<Self, BundleError> {
        Self::read_all(InboxReader::new(tar)?)
    }

    fn read_all<R: Read>(mut reader: InboxReader<R>) -> Result<Self, BundleError> {
        let mut files = BTreeMap::new();
        let mut attachments = BTreeMap::new();
        while let Some(part) = reader.next_part()? {
            match part {
                InboxPart::Message { item, file } => {
                    files.insert(item.id, file);
                }
                InboxPart::Attachment(mut stream) => {
                    let mut bytes = Vec::new();
                    stream.read_to_end(&mut bytes).map_err(read_error)?;
                    attachments.insert(stream.attachment.upload, bytes);
                }
            }
        }
        Ok(Inbox {
            manifest: reader.manifest,
            files,
            attachments,
        })
    }
}

/// The manifest rules of protocol.md §6 that need no file: what the server
/// writes, the laptop still checks.
fn check_inbox_manifest(manifest: &InboxManifest) -> Result<(), BundleError> {
    if manifest.format != "meldkluis-inbox" || manifest.v != 1 {
        return Err(malformed("not an inbox of version 1"));
    }
    if !valid_id(&manifest.counsellor) {
        return Err(malformed("the counsellor id is malformed"));
    }
    let mut entries = 1usize;
    let mut ids = BTreeSet::new();
    let mut uploads = BTreeSet::new();
    for item in &manifest.items {
        if !(item.author == "melder" || valid_id(&item.author)) {
            return Err(malformed("an item's author is malformed"));
        }
        if !matches!(item.kind.as_str(), "report" | "follow-up" | "reply") {
            return Err(malformed("an item's kind is unknown"));
        }
        if item.file != item_file(&item.id) {
            return Err(malformed(format!(
                "item {} has a non-canonical file name",
                item.id
            )));
        }
        if !ids.insert(item.id) {
            return Err(malformed(format!("item {} is listed twice", item.id)));
        }
        if item.attachments.len() > MAX_ATTACHMENTS_PER_ITEM {
            return Err(malformed(format!(
                "item {} has more than {MAX_ATTACHMENTS_PER_ITEM} attachments",
                item.id
            )));
        }
        for attachment in &item.attachments {
            if attachment.file != attachment_file(&attachment.upload) {
                return Err(malformed(format!(
                    "attachment {} has a non-canonical file name",
                    attachment.upload
                )));
            }
            if !uploads.insert(attachment.upload) {
                return Err(malformed(format!(
                    "attachment {} is listed twice",
                    attachment.upload
                )));
            }
            if attachment.length > MAX_INBOX_ATTACHMENT_BYTES {
                return Err(malformed(format!(
                    "attachment {} is larger than the laptop accepts",
                    attachment.upload
                )));
            }
        }
        entries += 1 + item.attachments.len();
        if entries > MAX_ENTRIES {
            return Err(malformed("too many entries"));
        }
    }
    Ok(())
}

/// One part of an inbox, in manifest order.
pub enum InboxPart<'a> {
    /// A message file: its hash matched and it is a padded age message.
    Message { item: InboxItem, file: AgeBlob },
    /// A streamed attachment of the message that came just before it.
    Attachment(AttachmentStream<'a>),
}

/// A streamed attachment as it passes: read it to the end (into a file),
/// then ask for the next part. Its first bytes were checked as the head of
/// an age file of exactly the stated length (protocol.md §3a); the rest is
/// checked by the counsellor's identity when it is decrypted.
pub struct AttachmentStream<'a> {
    /// The message that claimed it.
    pub message: MessageId,
    pub attachment: InboxAttachment,
    pub shape: AttachmentShape,
    /// SHA-256 of the head (header, MAC line, nonce): what the envelope's
    /// `head_sha256` must equal.
    pub head_sha256: [u8; 32],
    prefix: Vec<u8>,
    position: usize,
    rest: &'a mut (dyn EntryData + 'a),
}

impl AttachmentStream<'_> {
    /// The age file's length: exactly what reading it yields.
    pub fn len(&self) -> u64 {
        self.attachment.length
    }

    pub fn is_empty(&self) -> bool {
        self.attachment.length == 0
    }

    /// The head bytes that `head_sha256` covers.
    pub fn head(&self) -> &[u8] {
        &self.prefix[..self.shape.head_len]
    }

    /// Copies what is left of the attachment into `out` through one bounded
    /// buffer; returns the number of bytes copied.
    pub fn copy_to(&mut self, out: &mut dyn Write) -> Result<u64, CopyError> {
        let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
        let mut copied = 0;
        loop {
            let n = match self.read(&mut buffer) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(read_error(e))),
            };
            out.write_all(&buffer[..n]).map_err(CopyError::Write)?;
            copied += n as u64;
        }
    }
}

/// Why [`AttachmentStream::copy_to`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// The inbox: cut short, or a chunk that does not authenticate.
    Read(BundleError),
    /// Writing to the destination failed.
    Write(io::Error),
}

impl Read for AttachmentStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.position);
            buf[..n].copy_from_slice(&self.prefix[self.position..self.position + n]);
            self.position += n;
            return Ok(n);
        }
        self.rest.read_data(buf)
    }
}

/// A part read, before it is lent out as an [`InboxPart`].
enum Step {
    Message {
        item: InboxItem,
        file: AgeBlob,
    },
    Attachment {
        message: MessageId,
        attachment: InboxAttachment,
        shape: AttachmentShape,
        head_sha256: [u8; 32],
        prefix: Vec<u8>,
    },
}

/// What comes next in the archive: an item, or attachment `j` of item `i`.
#[derive(Clone, Copy)]
enum Expected {
    Item(usize),
    Attachment(usize, usize),
}

/// Reads an inbox tar as a stream: `manifest.json` first (checked on
/// construction), then every item and its attachments in manifest order,
/// nothing else. Memory stays bounded: the manifest (≤ 4 MiB), one message
/// file (≤ 64 MiB) and 64 KiB of an attachment at a time.
///
/// Nothing is final until [`next_part`](Self::next_part) returns `Ok(None)`:
/// only then have the end of the archive and age's last tag been read, so a
/// caller commits nothing before that.
pub struct InboxReader<R> {
    tar: TarStream<R>,
    manifest: InboxManifest,
    signer: Option<VerifyingKey>,
    plan: std::vec::IntoIter<Expected>,
    done: bool,
}

impl<R: Read> InboxReader<R> {
    /// Starts reading a decrypted inbox tar: reads and checks the manifest.
    pub fn new(tar: R) -> Result<Self, BundleError> {
        let mut tar = TarStream::new(tar);
        let (mut name, mut size) = tar
            .next_header()?
            .ok_or_else(|| malformed("manifest.json is missing"))?;
        let mut signature = None;
        if name == SIGNATURE {
            if size > MAX_INBOX_SIGNATURE_BYTES {
                return Err(malformed("manifest.sig is too large"));
            }
            signature = Some(parse_inbox_signature(&tar.read_entry(size, SIGNATURE)?)?);
            (name, size) = tar
                .next_header()?
                .ok_or_else(|| malformed("manifest.json is missing"))?;
        }
        if name != MANIFEST {
            return Err(malformed(format!(
                "the archive must start with manifest.json, not {name:?}"
            )));
        }
        if size > MAX_MANIFEST_BYTES as u64 {
            return Err(malformed("manifest.json is too large"));
        }
        let bytes = tar.read_entry(size, MANIFEST)?;
        let manifest: InboxManifest =
            serde_json::from_slice(&bytes).map_err(|e| malformed(format!("manifest.json: {e}")))?;
        check_inbox_manifest(&manifest)?;
        let mut plan = Vec::new();
        for (i, item) in manifest.items.iter().enumerate() {
            plan.push(Expected::Item(i));
            plan.extend((0..item.attachments.len()).map(|j| Expected::Attachment(i, j)));
        }
        let signer = match signature {
            None => None,
            Some((key, signature)) => {
                let mut signed = INBOX_SIGNATURE_CONTEXT.to_vec();
                signed.extend_from_slice(&bytes);
                key.verify_strict(&signed, &signature)
                    .map_err(|_| malformed("manifest.sig does not sign this manifest"))?;
                Some(key)
            }
        };
        Ok(InboxReader {
            tar,
            manifest,
            signer,
            plan: plan.into_iter(),
            done: false,
        })
    }

    pub fn manifest(&self) -> &InboxManifest {
        &self.manifest
    }

    /// The server key whose signature over the manifest was checked; `None`
    /// for an unsigned inbox (a server from before signing). Whether it is
    /// the server this laptop knows is the caller's to check.
    pub fn signer(&self) -> Option<&VerifyingKey> {
        self.signer.as_ref()
    }

    /// The next part in manifest order, or `None` once the whole archive,
    /// down to its last byte, has been read and found complete. An
    /// attachment not read to its end is read past (and still checked).
    pub fn next_part(&mut self) -> Result<Option<InboxPart<'_>>, BundleError> {
        if self.done {
            return Ok(None);
        }
        let step = self.advance().inspect_err(|_| {
            // A refused inbox stays refused.
            self.tar.broken = true;
        })?;
        Ok(step.map(|step| match step {
            Step::Message { item, file } => InboxPart::Message { item, file },
            Step::Attachment {
                message,
                attachment,
                shape,
                head_sha256,
                prefix,
            } => InboxPart::Attachment(AttachmentStream {
                message,
                attachment,
                shape,
                head_sha256,
                prefix,
                position: 0,
                rest: &mut self.tar,
            }),
        }))
    }

    fn advance(&mut self) -> Result<Option<Step>, BundleError> {
        let Some(expected) = self.plan.next() else {
            if let Some((name, _)) = self.tar.next_header()? {
                return Err(malformed(format!("{name:?} is not listed in the manifest")));
            }
            self.tar.read_trailer()?;
            self.done = true;
            return Ok(None);
        };
        let (file, limit) = match expected {
            Expected::Item(i) => (&self.manifest.items[i].file, MAX_BUNDLE_BYTES as u64),
            Expected::Attachment(i, j) => {
                let attachment = &self.manifest.items[i].attachments[j];
                (&attachment.file, attachment.length)
            }
        };
        let (name, size) = self
            .tar
            .next_header()?
            .ok_or_else(|| malformed(format!("{file} is listed but missing")))?;
        if &name != file {
            return Err(malformed(format!("expected {file}, found {name:?}")));
        }
        match expected {
            Expected::Item(i) => {
                if size > limit {
                    return Err(malformed(format!("{file} is too large")));
                }
                let item = &self.manifest.items[i];
                let body = self.tar.read_entry(size, file)?;
                if hex::encode(Sha256::digest(&body)) != item.sha256 {
                    return Err(malformed(format!("{file} does not match its hash")));
                }
                let file =
                    AgeBlob::parse_message(body).map_err(|e| malformed(format!("{file}: {e}")))?;
                Ok(Some(Step::Message {
                    item: item.clone(),
                    file,
                }))
            }
            Expected::Attachment(i, j) => {
                if size != limit {
                    return Err(malformed(format!(
                        "{file} is {size} bytes, not the {limit} the manifest states"
                    )));
                }
                let prefix_len = size.min(ATTACHMENT_PREFIX_BYTES as u64);
                let prefix = self.tar.read_entry(prefix_len, file)?;
                let shape = check_attachment(&prefix, size)
                    .map_err(|e| malformed(format!("{file}: {e}")))?;
                let item = &self.manifest.items[i];
                Ok(Some(Step::Attachment {
                    message: item.id,
                    attachment: item.attachments[j].clone(),
                    shape,
                    head_sha256: Sha256::digest(&prefix[..shape.head_len]).into(),
                    prefix,
                }))
            }
        }
    }

    /// The manifest, once the reader is no longer needed.
    pub fn into_manifest(self) -> InboxManifest {
        self.manifest
    }
}

/// The data of the current tar entry, read by an [`AttachmentStream`].
trait EntryData {
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// A strict, streaming ustar reader for what [`TarWriter`] writes: regular
/// files only, checksummed headers, zero padding, nothing kept in memory
/// but what the caller asks for. (The tar crate's own reader would read a
/// GNU long-name or PAX entry of any size into memory; its header parser is
/// used here.)
struct TarStream<R> {
    input: R,
    /// Data bytes of the current entry not yet read.
    data_left: u64,
    /// Zero bytes padding the current entry to a whole block.
    pad_left: usize,
    /// A read failed or the inbox was refused: nothing more is read.
    broken: bool,
    scratch: Vec<u8>,
}

impl<R: Read> TarStream<R> {
    fn new(input: R) -> Self {
        TarStream {
            input,
            data_left: 0,
            pad_left: 0,
            broken: false,
            scratch: Vec::new(),
        }
    }

    /// Reads exactly `buf.len()` bytes that are not entry data (headers,
    /// padding, the trailer).
    fn read_raw(&mut self, buf: &mut [u8]) -> Result<(), BundleError> {
        if self.broken {
            return Err(malformed("the inbox could not be read"));
        }
        self.input.read_exact(buf).map_err(|e| {
            self.broken = true;
            read_error(e)
        })
    }

    /// Reads past the rest of the current entry: data, then zero padding.
    fn skip_rest(&mut self) -> Result<(), BundleError> {
        if self.data_left > 0 {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.resize(COPY_BUFFER_BYTES, 0);
            while self.data_left > 0 {
                if let Err(e) = self.read_data(&mut scratch) {
                    return Err(read_error(e));
                }
            }
            self.scratch = scratch;
        }
        let mut padding = [0u8; BLOCK];
        let pad = std::mem::take(&mut self.pad_left);
        self.read_raw(&mut padding[..pad])?;
        if padding[..pad].iter().any(|&b| b != 0) {
            return Err(malformed("an entry's padding is not zero"));
        }
        Ok(())
    }

    /// The next entry's name and size, or `None` at the end-of-archive
    /// block. Reads past what is left of the current entry first.
    fn next_header(&mut self) -> Result<Option<(String, u64)>, BundleError> {
        self.skip_rest()?;
        let mut block = [0u8; BLOCK];
        self.read_raw(&mut block)?;
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let header = tar::Header::from_byte_slice(&block);
        // The checksum counts its own field as spaces.
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum::<u32>()
            + 8 * u32::from(b' ');
        if header.cksum().ok() != Some(sum) {
            return Err(malformed("not a tar archive: a header checksum is wrong"));
        }
        if header.entry_type() != tar::EntryType::Regular {
            return Err(malformed("only regular files may be in a bundle"));
        }
        let name = String::from_utf8(header.path_bytes().into_owned())
            .map_err(|_| malformed("an entry name is not UTF-8"))?;
        let size = header
            .entry_size()
            .map_err(|_| malformed("bad entry size"))?;
        self.data_left = size;
        self.pad_left = (BLOCK as u64 - size % BLOCK as u64) as usize % BLOCK;
        Ok(Some((name, size)))
    }

    /// Reads `len` bytes of the current entry's data into memory; the
    /// caller bounds `len`.
    fn read_entry(&mut self, len: u64, name: &str) -> Result<Vec<u8>, BundleError> {
        let len = usize::try_from(len).map_err(|_| malformed(format!("{name} is too large")))?;
        let mut body = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.read_data(&mut body[filled..]) {
                Ok(0) => return Err(malformed(format!("{name} is truncated"))),
                Ok(n) => filled += n,
                Err(e) => return Err(read_error(e)),
            }
        }
        Ok(body)
    }

    /// After the end-of-archive block: only zero bytes, to the end of the
    /// stream. Reading to the end is what makes age check its last tag.
    fn read_trailer(&mut self) -> Result<(), BundleError> {
        let mut rest = Vec::new();
        let read = (&mut self.input)
            .take(MAX_TRAILER_BYTES as u64 + 1)
            .read_to_end(&mut rest);
        if let Err(e) = read {
            self.broken = true;
            return Err(read_error(e));
        }
        if rest.len() > MAX_TRAILER_BYTES || rest.iter().any(|&b| b != 0) {
            return Err(malformed("data after the end of the archive"));
        }
        // The end-of-archive marker is two zero blocks (one read already).
        if rest.len() < BLOCK || rest.len() % BLOCK != 0 {
            return Err(malformed("the archive's end marker is malformed"));
        }
        Ok(())
    }
}

impl<R: Read> EntryData for TarStream<R> {
    /// Reads the current entry's data; an end of input before its last byte
    /// is an error, never a short entry.
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::Error::other("the inbox could not be read"));
        }
        if self.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
        loop {
            match self.input.read(&mut buf[..want]) {
                Ok(0) => {
                    self.broken = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the inbox is truncated",
                    ));
                }
                Ok(n) => {
                    self.data_left -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
    }
}

/// A read error from the inbox stream: the archive ends early, or age found
/// a chunk that does not authenticate.
fn read_error(e: io::Error) -> BundleError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        malformed("the inbox is truncated")
    } else {
        BundleError::Decrypt(e.to_string())
    }
}

/// Writes ustar entries one after another, each copied through one bounded
/// buffer, with the deterministic headers of [`entry_header`].
struct TarWriter<W> {
    out: W,
    buffer: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        TarWriter {
            out,
            buffer: vec![0; COPY_BUFFER_BYTES],
        }
    }

    /// One entry of exactly `size` bytes from `data`, which must hold exactly
    /// that many: a shorter or longer source is an error, never a silently
    /// wrong archive.
    fn entry(&mut self, name: &str, data: &mut dyn Read, size: u64) -> io::Result<()> {
        self.out.write_all(entry_header(name, size).as_bytes())?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name} is shorter than the {size} bytes recorded"),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.buffer[..n])?;
            left -= n as u64;
        }
        loop {
            match data.read(&mut self.buffer[..1]) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{name} is longer than the {size} bytes recorded"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) as usize % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// The end-of-archive marker: two zero blocks.
    fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
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
    // Where the last entry's data (padded to a block) ends: after it only
    // the end marker may follow, as the laptop's reader demands
    // (`TarStream::read_trailer`). `tar::Archive` stops at the first zero
    // block and would not see what comes after.
    let mut end = 0u64;
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
        end = entry.raw_file_position() + size.div_ceil(512) * 512;
        entries.insert(name, body);
    }
    let rest = usize::try_from(end)
        .ok()
        .and_then(|end| bytes.get(end..))
        .ok_or_else(|| malformed("not a tar archive"))?;
    if rest.len() > MAX_TRAILER_BYTES + 1024 || rest.iter().any(|&b| b != 0) {
        return Err(malformed("data after the end of the archive"));
    }
    if rest.len() < 1024 {
        return Err(malformed("the archive's end marker is malformed"));
    }
    Ok(entries)
}

/// A deterministic ustar header: mode 0600, time 0, no owner names, so a
/// bundle carries no trace of when or by whom it was made.
fn entry_header(name: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(name)
        .expect("bundle names are short and relative");
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

/// Writes a whole archive in memory (outboxes).
fn write_tar(entries: &[(String, &[u8])]) -> Vec<u8> {
    let mut tar = TarWriter::new(Vec::new());
    for (name, body) in entries {
        tar.entry(name, &mut &body[..], body.len() as u64)
            .expect("writing to memory cannot fail");
    }
    tar.finish().expect("writing to memory cannot fail")
}

/// `manifest.sig` of an inbox: the server's Ed25519 key and its signature,
/// each a line of standard base64.
fn parse_inbox_signature(bytes: &[u8]) -> Result<(VerifyingKey, Signature), BundleError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("manifest.sig is not text"))?;
    let mut lines = text.lines();
    let (Some(key), Some(signature), None) = (lines.next(), lines.next(), lines.next()) else {
        return Err(malformed(
            "manifest.sig must be two lines: key and signature",
        ));
    };
    let key: [u8; 32] = STANDARD
        .decode(key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| malformed("manifest.sig: the key is not base64 of 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| malformed("manifest.sig: the key is not an Ed25519 key"))?;
    let signature: [u8; 64] = STANDARD
        .decode(signature.trim())
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed("manifest.sig: the signature is not base64 of 64 bytes"))?;
    Ok((key, Signature::from_bytes(&signature)))
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

    /// The laptop's reader refuses anything after the end marker; the
    /// server's outbox reader must too (issue 14): a tar that `tar`
    /// stops reading at the first zero block could carry a second archive.
    #[test]
    fn an_outbox_with_data_after_its_end_marker_is_refused() {
        let key = key();
        let good = Outbox::build("vp-jansen", 1, 0, &[], &key);
        assert!(Outbox::parse(&good).is_ok());
        let mut hidden = good.clone();
        // A whole second entry after the end marker, block aligned.
        hidden.extend(write_tar(&[(MANIFEST.to_string(), b"{}".as_slice())]));
        let mut one_block = good.clone();
        one_block.extend([b'x'; 512]);
        let mut short_marker = good[..good.len() - 1024].to_vec();
        short_marker.extend([0u8; 512]);
        for (what, bytes) in [
            ("a second archive", hidden),
            ("a block of data", one_block),
            ("half an end marker", short_marker),
        ] {
            assert!(
                matches!(Outbox::parse(&bytes), Err(BundleError::Malformed(_))),
                "{what} was accepted"
            );
        }
        let mut zeros = good.clone();
        zeros.extend([0u8; 4096]);
        assert!(
            Outbox::parse(&zeros).is_ok(),
            "zero padding is a tar's right"
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
        let (manifest, parts) = sample_parts();
        for (field, value) in [
            ("author", "\u{1b}[2Jmelder"),
            ("kind", "report\u{1b}]0;x\u{7}"),
        ] {
            let mut hostile = manifest.clone();
            hostile["items"][0][field] = value.into();
            let tar = assemble(&hostile, &parts);
            let sealed = crate::format::encrypt(&[identity.to_public()], &tar).unwrap();
            assert!(matches!(
                Inbox::open(&sealed, &[&identity]),
                Err(BundleError::Malformed(_))
            ));
            // The server's writer refuses to make such an inbox at all.
            let mut entries = sample().0;
            if field == "author" {
                entries[0].author = value.into();
            } else {
                entries[0].kind = value.into();
            }
            let mut open = |_: &UploadId| -> io::Result<Box<dyn Read>> { unreachable!() };
            let refused = Inbox::seal_to(
                Vec::new(),
                "vp-jansen",
                1,
                &[],
                &entries,
                &identity.to_public(),
                &mut open,
            );
            assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn a_signed_inbox_names_its_key_and_a_bad_signature_is_refused() {
        let identity = age::x25519::Identity::generate();
        let key = SigningKey::from_bytes(&[5; 32]);
        let entry = InboxEntry {
            seq: 1,
            id: MessageId::random(),
            case: CaseId::random(),
            author: "melder".into(),
            kind: "report".into(),
            day: Day::today(),
            body: age_file(),
            attachments: Vec::new(),
        };
        let mut none = |_: &UploadId| -> io::Result<Box<dyn Read>> { unreachable!() };
        let sealed = Inbox::seal_signed_to(
            Vec::new(),
            Some(&key),
            "vp-jansen",
            1,
            &[],
            &[entry],
            &identity.to_public(),
            &mut none,
        )
        .unwrap();
        let tar = age::decrypt(&identity, &sealed).unwrap();
        let reader = InboxReader::new(&tar[..]).unwrap();
        assert_eq!(reader.signer(), Some(&key.verifying_key()));
        // The signature's text inside the archive, edited in place (a tar
        // header's checksum covers the header only).
        let signature = STANDARD.encode(
            key.sign(&[INBOX_SIGNATURE_CONTEXT, &inbox_manifest_of(&tar)[..]].concat())
                .to_bytes(),
        );
        let at = tar
            .windows(signature.len())
            .position(|w| w == signature.as_bytes())
            .expect("the signature is in the archive");
        let edited = |f: &dyn Fn(&mut [u8])| {
            let mut t = tar.clone();
            f(&mut t[at..at + signature.len()]);
            t
        };
        for (what, hostile) in [
            (
                "another signature",
                edited(&|s| s[3] = if s[3] == b'A' { b'B' } else { b'A' }),
            ),
            ("not base64", edited(&|s| s[0] = b'!')),
            ("no signature line", edited(&|s| s.fill(b' '))),
        ] {
            assert!(
                matches!(
                    InboxReader::new(&hostile[..]),
                    Err(BundleError::Malformed(_))
                ),
                "{what} was accepted"
            );
        }
        // An unsigned inbox names no key.
        let unsigned = Inbox::seal("vp-jansen", 1, vec![], &[], &identity.to_public()).unwrap();
        let tar = age::decrypt(&identity, &unsigned).unwrap();
        assert!(InboxReader::new(&tar[..]).unwrap().signer().is_none());
    }

    /// The bytes of manifest.json inside a decrypted inbox tar.
    fn inbox_manifest_of(tar: &[u8]) -> Vec<u8> {
        let mut stream = TarStream::new(tar);
        loop {
            let (name, size) = stream.next_header().unwrap().unwrap();
            let bytes = stream.read_entry(size, "x").unwrap();
            if name == MANIFEST {
                return bytes;
            }
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

    // ---- the streamed inbox (protocol.md §3a, §6) ----

    /// A streamed attachment's age file: `size` zero-padded bytes of `fill`.
    fn attachment_age(size: usize, fill: u8) -> Vec<u8> {
        let padded = crate::format::agefile::attachment_padded_length(size as u64) as usize;
        let mut plaintext = vec![fill; size];
        plaintext.resize(padded, 0);
        age::encrypt(&age::x25519::Identity::generate().to_public(), &plaintext).unwrap()
    }

    fn entry(author: &str, kind: &str, attachments: &[(UploadId, &Vec<u8>)]) -> InboxEntry {
        InboxEntry {
            seq: 1,
            id: MessageId::random(),
            case: CaseId::random(),
            author: author.into(),
            kind: kind.into(),
            day: Day::today(),
            body: age_file(),
            attachments: attachments
                .iter()
                .map(|(upload, bytes)| EntryAttachment {
                    upload: *upload,
                    length: bytes.len() as u64,
                })
                .collect(),
        }
    }

    /// Two reports, the first with two attachments (one larger than the
    /// 64 KiB the reader holds), the second with one; and their bytes.
    fn sample() -> (Vec<InboxEntry>, BTreeMap<UploadId, Vec<u8>>) {
        let files: Vec<(UploadId, Vec<u8>)> = [(5000, 1u8), (200_000, 2), (0, 3)]
            .into_iter()
            .map(|(size, fill)| (UploadId::random(), attachment_age(size, fill)))
            .collect();
        let entries = vec![
            entry(
                "melder",
                "report",
                &[(files[0].0, &files[0].1), (files[1].0, &files[1].1)],
            ),
            entry("melder", "follow-up", &[(files[2].0, &files[2].1)]),
        ];
        (entries, files.into_iter().collect())
    }

    /// The decrypted tar of a sealed inbox.
    fn plain_tar(
        entries: &[InboxEntry],
        attachments: &BTreeMap<UploadId, Vec<u8>>,
    ) -> (Vec<u8>, age::x25519::Identity) {
        let identity = age::x25519::Identity::generate();
        let sealed = Inbox::seal_with(
            "vp-jansen",
            1,
            &[],
            entries,
            attachments,
            &identity.to_public(),
        )
        .unwrap();
        (age::decrypt(&identity, &sealed).unwrap(), identity)
    }

    /// Every part, in order, with attachments read whole; the first error.
    fn drain(mut reader: InboxReader<impl Read>) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
        let mut parts = Vec::new();
        while let Some(part) = reader.next_part()? {
            match part {
                InboxPart::Message { item, file } => parts.push((item.file, file.into_bytes())),
                InboxPart::Attachment(mut stream) => {
                    let mut bytes = Vec::new();
                    stream.read_to_end(&mut bytes).map_err(read_error)?;
                    assert_eq!(bytes.len() as u64, stream.len());
                    parts.push((stream.attachment.file.clone(), bytes));
                }
            }
        }
        Ok(parts)
    }

    fn parse_stream(tar: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
        drain(InboxReader::new(tar)?)
    }

    /// A ustar entry with any name, any declared size and any body, and any
    /// type: what a hostile archive may hold.
    fn raw_entry(name: &[u8], kind: u8, declared: u64, body: &[u8]) -> Vec<u8> {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name);
        header[100..107].copy_from_slice(b"0000600");
        header[124..135].copy_from_slice(format!("{declared:011o}").as_bytes());
        header[156] = kind;
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = header.to_vec();
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    /// An archive's entries after the manifest: name and bytes.
    type Parts = Vec<(String, Vec<u8>)>;

    /// The manifest (as JSON to edit) and the files of a good sample inbox.
    fn sample_parts() -> (serde_json::Value, Parts) {
        let (entries, attachments) = sample();
        let (tar, _) = plain_tar(&entries, &attachments);
        let manifest = InboxReader::new(&tar[..]).unwrap().into_manifest();
        (
            serde_json::to_value(&manifest).unwrap(),
            parse_stream(&tar).unwrap(),
        )
    }

    fn assemble(manifest: &serde_json::Value, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
        let manifest = serde_json::to_vec(manifest).unwrap();
        let mut out = raw_entry(b"manifest.json", b'0', manifest.len() as u64, &manifest);
        for (name, body) in parts {
            out.extend(raw_entry(name.as_bytes(), b'0', body.len() as u64, body));
        }
        out.extend([0u8; 1024]);
        out
    }

    #[test]
    fn streamed_inbox_round_trip() {
        let (entries, attachments) = sample();
        let identity = age::x25519::Identity::generate();
        let mut opened = Vec::new();
        let mut open = |upload: &UploadId| -> io::Result<Box<dyn Read>> {
            opened.push(*upload);
            Ok(Box::new(Cursor::new(attachments[upload].clone())))
        };
        let applied = [MessageId::random()];
        let sealed = Inbox::seal_to(
            Vec::new(),
            "vp-jansen",
            7,
            &applied,
            &entries,
            &identity.to_public(),
            &mut open,
        )
        .unwrap();
        assert_eq!(opened.len(), 3);
        AgeBlob::parse(sealed.clone()).unwrap();

        let mut reader = Inbox::open_stream(&sealed[..], &[&identity]).unwrap();
        assert_eq!(reader.manifest().answers_counter, 7);
        assert_eq!(reader.manifest().applied, applied);
        let mut order = Vec::new();
        while let Some(part) = reader.next_part().unwrap() {
            match part {
                InboxPart::Message { item, file } => {
                    let entry = entries.iter().find(|e| e.id == item.id).unwrap();
                    assert_eq!(file.as_bytes(), entry.body);
                    order.push(item.file);
                }
                InboxPart::Attachment(mut stream) => {
                    let original = &attachments[&stream.attachment.upload];
                    let head = &original[..stream.shape.head_len];
                    assert_eq!(stream.head(), head);
                    assert_eq!(stream.head_sha256, <[u8; 32]>::from(Sha256::digest(head)));
                    let mut bytes = Vec::new();
                    stream.read_to_end(&mut bytes).unwrap();
                    assert_eq!(&bytes, original);
                    order.push(stream.attachment.file.clone());
                }
            }
        }
        let manifest = reader.manifest();
        let expected: Vec<&String> = manifest
            .items
            .iter()
            .flat_map(|i| std::iter::once(&i.file).chain(i.attachments.iter().map(|a| &a.file)))
            .collect();
        assert_eq!(order.iter().collect::<Vec<_>>(), expected);
        assert_eq!(order.len(), 5);
        assert!(order[1].starts_with("attachments/"));
        // Once done, it stays done.
        assert!(reader.next_part().unwrap().is_none());

        let inbox = Inbox::open(&sealed, &[&identity]).unwrap();
        assert_eq!(inbox.attachments, attachments);
        assert_eq!(inbox.files.len(), 2);
    }

    #[test]
    fn attachments_left_unread_are_still_read_and_checked() {
        let (entries, attachments) = sample();
        let (tar, _) = plain_tar(&entries, &attachments);
        let mut reader = InboxReader::new(&tar[..]).unwrap();
        let mut parts = 0;
        while let Some(part) = reader.next_part().unwrap() {
            if let InboxPart::Attachment(mut stream) = part {
                // Read a little, or nothing.
                let mut some = [0u8; 10];
                stream.read_exact(&mut some).unwrap();
            }
            parts += 1;
        }
        assert_eq!(parts, 5);
        // A damaged byte deep in an unread attachment is still noticed by
        // age: here in the tar's zero padding of the large one.
        let mut bad = tar.clone();
        let big = &attachments[&entries[0].attachments[1].upload];
        let at = find(&bad, &big[big.len() - 100..]).unwrap() + 100;
        assert_eq!(bad[at], 0);
        bad[at] = 1;
        let mut reader = InboxReader::new(&bad[..]).unwrap();
        let result = loop {
            match reader.next_part() {
                Ok(Some(_)) => continue,
                other => break other.map(|_| ()),
            }
        };
        assert!(result.is_err());
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn seal_to_refuses_sources_of_the_wrong_length_and_impossible_inboxes() {
        let (entries, attachments) = sample();
        let recipient = age::x25519::Identity::generate().to_public();
        let seal = |entries: &[InboxEntry], source: &dyn Fn(&UploadId) -> Vec<u8>| {
            let mut open = |u: &UploadId| -> io::Result<Box<dyn Read>> {
                Ok(Box::new(Cursor::new(source(u))))
            };
            Inbox::seal_to(
                Vec::new(),
                "vp-jansen",
                1,
                &[],
                entries,
                &recipient,
                &mut open,
            )
        };
        seal(&entries, &|u| attachments[u].clone()).unwrap();
        let short = seal(&entries, &|u| {
            let b = &attachments[u];
            b[..b.len() - 1].to_vec()
        });
        assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let long = seal(&entries, &|u| {
            let mut b = attachments[u].clone();
            b.push(0);
            b
        });
        assert_eq!(long.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut missing = |_: &UploadId| -> io::Result<Box<dyn Read>> {
            Err(io::Error::new(io::ErrorKind::NotFound, "gone"))
        };
        assert_eq!(
            Inbox::seal_to(
                Vec::new(),
                "vp-jansen",
                1,
                &[],
                &entries,
                &recipient,
                &mut missing
            )
            .unwrap_err()
            .kind(),
            io::ErrorKind::NotFound
        );
        // What the laptop would refuse is never written.
        let mut twice = sample().0;
        twice[1].attachments[0].upload = twice[0].attachments[0].upload;
        let refused = seal(&twice, &|_| Vec::new()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
        assert!(Inbox::check("vp-jansen", 1, &[], &twice).is_err());
        Inbox::check("vp-jansen", 1, &[], &entries).unwrap();
        let mut too_many = sample().0;
        too_many[0].attachments = (0..21)
            .map(|_| EntryAttachment {
                upload: UploadId::random(),
                length: 5000,
            })
            .collect();
        assert_eq!(
            seal(&too_many, &|_| Vec::new()).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_truncated_inbox_is_refused_wherever_it_is_cut() {
        let (entries, attachments) = sample();
        let (tar, identity) = plain_tar(&entries, &attachments);
        parse_stream(&tar).unwrap();
        for cut in (0..tar.len())
            .step_by(509)
            .chain(tar.len() - 1100..tar.len())
        {
            assert!(parse_stream(&tar[..cut]).is_err(), "plain tar cut at {cut}");
        }
        let sealed = Inbox::seal_with(
            "vp-jansen",
            1,
            &[],
            &entries,
            &attachments,
            &identity.to_public(),
        )
        .unwrap();
        // Every chunk boundary, and odd places in between.
        let payload_chunk = 64 * 1024 + 16;
        let boundaries = (1..sealed.len() / payload_chunk + 1)
            .map(|k| sealed.len() - (sealed.len() - k * payload_chunk) % payload_chunk)
            .collect::<Vec<_>>();
        for cut in (0..sealed.len())
            .step_by(4099)
            .chain(sealed.len() - 40..sealed.len())
            .chain(
                boundaries
                    .iter()
                    .flat_map(|&b| [b.saturating_sub(1), b, b + 1]),
            )
            .filter(|&cut| cut < sealed.len())
        {
            let result = Inbox::open_stream(&sealed[..cut], &[&identity]).and_then(drain);
            assert!(result.is_err(), "ciphertext cut at {cut}");
        }
        // A flipped byte in the ciphertext fails age's check.
        let mut flipped = sealed.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        assert!(matches!(
            Inbox::open_stream(&flipped[..], &[&identity]).and_then(drain),
            Err(BundleError::Decrypt(_))
        ));
    }

    #[test]
    fn hostile_inbox_archives_are_refused() {
        let (manifest, parts) = sample_parts();
        // The reassembled sample itself is fine.
        assert_eq!(parse_stream(&assemble(&manifest, &parts)).unwrap(), parts);
        let upload = |i: usize, j: usize| {
            manifest["items"][i]["attachments"][j]["upload"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut m = manifest.clone();
            f(&mut m);
            m
        };
        let with_parts = |f: &dyn Fn(&mut Parts)| {
            let mut p = parts.clone();
            f(&mut p);
            p
        };
        let stranger = UploadId::random();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "length one more than the entry",
                assemble(
                    &edit(&|m| {
                        let l = m["items"][0]["attachments"][0]["length"].as_u64().unwrap();
                        m["items"][0]["attachments"][0]["length"] = (l + 1).into();
                    }),
                    &parts,
                ),
            ),
            (
                "entry one byte shorter than the manifest states",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        p[1].1.pop();
                    }),
                ),
            ),
            (
                "an extra attachment at the end",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        p.push((attachment_file(&stranger), p[1].1.clone()));
                    }),
                ),
            ),
            (
                "an extra attachment between",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        p.insert(3, (attachment_file(&stranger), p[1].1.clone()));
                    }),
                ),
            ),
            (
                "a missing attachment",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        p.remove(2);
                    }),
                ),
            ),
            (
                "attachments swapped",
                assemble(&manifest, &with_parts(&|p| p.swap(1, 2))),
            ),
            (
                "an attachment before its message",
                assemble(&manifest, &with_parts(&|p| p.swap(0, 1))),
            ),
            (
                "a traversing name in the manifest",
                assemble(
                    &edit(&|m| {
                        m["items"][0]["attachments"][0]["file"] =
                            format!("attachments/../../{}.age", upload(0, 0)).into();
                    }),
                    &parts,
                ),
            ),
            (
                "an item's file under attachments/",
                assemble(
                    &edit(&|m| {
                        let id = m["items"][0]["id"].as_str().unwrap().to_string();
                        m["items"][0]["file"] = format!("attachments/{id}.age").into();
                    }),
                    &parts,
                ),
            ),
            (
                "an upper-case upload",
                assemble(
                    &edit(&|m| {
                        m["items"][0]["attachments"][0]["upload"] =
                            upload(0, 0).to_uppercase().into();
                    }),
                    &parts,
                ),
            ),
            (
                "a traversing name in the archive",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        p[1].0 = format!("attachments/../attachments/{}.age", upload(0, 0));
                    }),
                ),
            ),
            (
                "an absolute name in the archive",
                assemble(
                    &manifest,
                    &with_parts(&|p| p[1].0 = format!("/attachments/{}.age", upload(0, 0))),
                ),
            ),
            (
                "the same upload in two items",
                assemble(
                    &edit(&|m| {
                        m["items"][1]["attachments"][0] = m["items"][0]["attachments"][0].clone();
                    }),
                    &parts,
                ),
            ),
            (
                "the same upload twice in one item",
                assemble(
                    &edit(&|m| {
                        m["items"][0]["attachments"][1] = m["items"][0]["attachments"][0].clone();
                    }),
                    &with_parts(&|p| p[2] = p[1].clone()),
                ),
            ),
            (
                "a length beyond what the laptop accepts",
                assemble(
                    &edit(&|m| {
                        m["items"][0]["attachments"][0]["length"] = (u64::MAX / 2).into();
                    }),
                    &parts,
                ),
            ),
            (
                "an attachment that is not an age file",
                assemble(
                    &manifest,
                    &with_parts(&|p| p[1].1 = vec![b'x'; p[1].1.len()]),
                ),
            ),
            ("an attachment that is not padded", {
                let unpadded =
                    age::encrypt(&age::x25519::Identity::generate().to_public(), &[0u8; 5000])
                        .unwrap();
                assemble(
                    &edit(&|m| {
                        m["items"][0]["attachments"][0]["length"] = unpadded.len().into();
                    }),
                    &with_parts(&|p| p[1].1 = unpadded.clone()),
                )
            }),
            (
                "a message that does not match its hash",
                assemble(
                    &manifest,
                    &with_parts(&|p| {
                        let n = p[0].1.len();
                        p[0].1[n - 1] ^= 1;
                    }),
                ),
            ),
            ("the manifest not first", {
                let mut tar = raw_entry(
                    parts[0].0.as_bytes(),
                    b'0',
                    parts[0].1.len() as u64,
                    &parts[0].1,
                );
                tar.extend(assemble(&manifest, &parts[1..]));
                tar
            }),
            (
                "an unknown format",
                assemble(&edit(&|m| m["format"] = "meldkluis-outbox".into()), &parts),
            ),
            (
                "an unknown field",
                assemble(
                    &edit(&|m| m["items"][0]["attachments"][0]["x"] = 1.into()),
                    &parts,
                ),
            ),
        ];
        let good = assemble(&manifest, &parts);
        let manifest_len = 512 + serde_json::to_vec(&manifest).unwrap().len().div_ceil(512) * 512;
        // A symbolic link, a GNU long name and a PAX header, each declaring a
        // gigabyte that the reader must never try to hold.
        for kind in [b'2', b'L', b'x'] {
            let mut tar = good[..manifest_len].to_vec();
            tar.extend(raw_entry(parts[0].0.as_bytes(), kind, 1 << 30, b""));
            tar.extend_from_slice(&good[manifest_len..]);
            cases.push(("a non-regular entry", tar));
        }
        let mut huge_manifest = raw_entry(b"manifest.json", b'0', 5 << 20, b"{}");
        huge_manifest.extend([0u8; 1024]);
        cases.push(("a manifest declaring 5 MiB", huge_manifest));
        // A declared length of 7 GiB in the manifest and the archive, with the
        // stream ending long before: refused, quickly, without holding it.
        let seven = 7u64 << 30;
        let mut huge = assemble(
            &edit(&|m| m["items"][0]["attachments"][0]["length"] = seven.into()),
            &parts[..1],
        );
        huge.truncate(huge.len() - 1024);
        huge.extend(raw_entry(parts[1].0.as_bytes(), b'0', seven, &parts[1].1));
        huge.extend([0u8; 1024]);
        cases.push(("a huge declared length", huge));
        let mut bad_sum = good.clone();
        bad_sum[0] ^= 0x20;
        cases.push(("a header checksum that does not match", bad_sum));
        let mut garbage = good.clone();
        garbage.extend(b"trailing");
        cases.push(("data after the end", garbage));
        let mut padding = good.clone();
        let pad_at = manifest_len - 1;
        assert_eq!(padding[pad_at], 0);
        padding[pad_at] = b' ';
        cases.push(("padding that is not zero", padding));
        cases.push(("no end marker", good[..good.len() - 1024].to_vec()));

        for (what, tar) in cases {
            let started = std::time::Instant::now();
            assert!(
                matches!(parse_stream(&tar), Err(BundleError::Malformed(_))),
                "{what}: {:?}",
                parse_stream(&tar)
            );
            assert!(started.elapsed().as_secs() < 5, "{what} took too long");
        }
    }

    #[test]
    fn entry_limits_are_checked_on_the_manifest() {
        let (manifest, _) = sample_parts();
        let item = |attachments: usize| {
            let id = MessageId::random();
            let mut item = manifest["items"][0].clone();
            item["id"] = id.to_hex().into();
            item["file"] = item_file(&id).into();
            item["attachments"] = (0..attachments)
                .map(|_| {
                    let upload = UploadId::random();
                    serde_json::json!({"upload": upload, "file": attachment_file(&upload), "length": 5000})
                })
                .collect();
            item
        };
        let mut one_too_many = manifest.clone();
        one_too_many["items"] = vec![item(21)].into();
        // 500 items of 20 attachments each: 10,501 entries with the manifest.
        let mut too_many_entries = manifest.clone();
        too_many_entries["items"] = (0..500).map(|_| item(20)).collect();
        for m in [one_too_many, too_many_entries] {
            let err = InboxReader::new(&assemble(&m, &[])[..]).err().unwrap();
            assert!(matches!(err, BundleError::Malformed(_)), "{err}");
        }
    }
}
