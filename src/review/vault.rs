//! The counsellor's vault: a directory on the air-gapped laptop.
//!
//! - `identity.age`: the age identity, passphrase-encrypted in age's scrypt
//!   format, so `age -d -i identity.age file.age` also works;
//! - `signing-key.age`: the Ed25519 outbox key, encrypted to the identity;
//! - `card.json`: the public card to hand to the operator;
//! - `state.age`: cases, counters and queued items, encrypted to the identity;
//! - `messages/<id>.age`: every message as it arrived (or was written),
//!   still encrypted;
//! - `attachments/<upload>.age`: every streamed attachment as it arrived,
//!   still encrypted (protocol.md §3a); written as `<upload>.age.part`, then
//!   renamed, so a crash never leaves half of one under its real name.
//!
//! Nothing decrypted is ever written here.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use super::error::ReviewError;
pub use super::records::{Authenticity, CaseRecord, MessageRecord, Note, Pending, State};
use crate::format::bundle::{AttachmentStream, CopyError};
use crate::format::card::{Card, CounsellorKind};
use crate::format::ids::{MessageId, UploadId};
use crate::format::keys::{Identity, Recipient, looks_like_identity};

/// What [`Vault::store_message`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredMessage {
    /// Written now.
    Created,
    /// There already, with these very bytes (an inbox read again).
    Same,
    /// There already with other bytes: kept, and the new ones refused.
    Different,
}

/// Which kind of age key a new vault (or a key rotation) makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Post-quantum hybrid, `mlkem768x25519` (protocol v2): the default.
    Hybrid,
    /// Classical X25519 (protocol v1): only to make vaults of the old
    /// format, e.g. in tests of what existing counsellors have.
    Classical,
}

impl KeyKind {
    fn generate(self) -> Identity {
        match self {
            KeyKind::Hybrid => Identity::generate_hybrid(),
            KeyKind::Classical => Identity::X25519(age::x25519::Identity::generate()),
        }
    }
}

/// The highest scrypt work factor (log2 N) an identity file may ask for.
const MAX_VAULT_WORK_FACTOR: u8 = 22;

const IDENTITY: &str = "identity.age";
const SIGNING_KEY: &str = "signing-key.age";
const CARD: &str = "card.json";
const STATE: &str = "state.age";
const MESSAGES: &str = "messages";
const ATTACHMENTS: &str = "attachments";
const PARTIAL: &str = "part";

/// What `init` needs to make a card.
#[derive(Debug, Clone)]
pub struct NewCounsellor {
    pub id: String,
    pub name: String,
    pub organisation: String,
    /// The organisation's short id; derived from `organisation` when absent.
    pub org: Option<String>,
    pub kind: CounsellorKind,
    pub description: String,
}

impl NewCounsellor {
    fn card(self, identity: &Identity, signing: &SigningKey) -> Card {
        Card {
            format: "meldkluis-card".into(),
            v: 1,
            id: self.id,
            name: self.name,
            organisation: self.organisation,
            org: self.org,
            kind: self.kind,
            description: self.description,
            lang: Some("nl".into()), // Dutch first, as the program's texts
            age_recipient: identity.to_public().to_string(),
            signing_key: STANDARD.encode(signing.verifying_key().as_bytes()),
        }
    }

    /// Checks the card fields as [`Vault::init`] will, so a front end can
    /// refuse them before it asks for a passphrase.
    pub fn validate(&self) -> Result<(), ReviewError> {
        let identity = Identity::generate_hybrid();
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(self.clone().card(&identity, &signing).validate()?)
    }
}

/// An open vault. The identities and signing key zeroize themselves on drop.
pub struct Vault {
    dir: PathBuf,
    /// The current identity first, then older ones kept for older messages
    /// (and, in a hybrid vault, a classical one for the counsellor's own
    /// copy of replies to melders whose reply key is classical).
    identities: Vec<Identity>,
    signing: SigningKey,
    pub card: Card,
    pub state: State,
}

impl Vault {
    /// Whether `dir` holds a vault: a front end asks this before it asks
    /// for a passphrase.
    pub fn exists(dir: &Path) -> bool {
        dir.join(IDENTITY).exists()
    }

    /// The vault's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes a new vault in `dir` (created if needed, must not hold one),
    /// with post-quantum hybrid keys.
    pub fn init(
        dir: &Path,
        passphrase: SecretString,
        who: NewCounsellor,
    ) -> Result<Vault, ReviewError> {
        Vault::init_with_keys(dir, passphrase, who, KeyKind::Hybrid)
    }

    /// Makes a new vault with keys of the given kind. A hybrid vault also
    /// gets a classical identity that is on no card: the age format cannot
    /// put a classical and a post-quantum recipient in one file, so a reply
    /// to a melder whose reply key is classical keeps the counsellor's own
    /// copy readable with it (protocol.md §3, "Recipients").
    pub fn init_with_keys(
        dir: &Path,
        passphrase: SecretString,
        who: NewCounsellor,
        kind: KeyKind,
    ) -> Result<Vault, ReviewError> {
        if dir.join(IDENTITY).exists() {
            return Err(ReviewError::VaultExists(dir.to_path_buf()));
        }
        let identity = kind.generate();
        let mut identities = vec![identity.clone()];
        if kind == KeyKind::Hybrid {
            identities.push(KeyKind::Classical.generate());
        }
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let card = who.card(&identity, &signing);
        card.validate()?;
        create_private_dir(dir)?;
        create_private_dir(&dir.join(MESSAGES))?;
        create_private_dir(&dir.join(ATTACHMENTS))?;
        let vault = Vault {
            dir: dir.to_path_buf(),
            identities,
            signing,
            card,
            state: State::default(),
        };
        vault.write_keys(passphrase)?;
        vault.save()?;
        Ok(vault)
    }

    /// Replaces the identity with a new one. Older identities stay in
    /// `identity.age`, so messages encrypted to them still open; the card
    /// gets the new key and must replace the old one on the server.
    ///
    /// The signing key stays: melders' pages have pinned it in every
    /// protocol v2 thread (protocol.md §10.4), and a reply signed with a new
    /// one would show there as not genuine. After a theft, replace it too
    /// with [`Vault::replace_signing_key`].
    ///
    /// The new identity is post-quantum hybrid: this is how a counsellor of
    /// the classical format moves to it. Messages already encrypted to the
    /// classical identity keep opening with it, and it keeps the
    /// counsellor's own copy of replies to classical melders readable.
    pub fn rotate_keys(&mut self, passphrase: SecretString) -> Result<(), ReviewError> {
        self.rotate_keys_to(passphrase, KeyKind::Hybrid)
    }

    /// [`Vault::rotate_keys`] to a key of the given kind.
    pub fn rotate_keys_to(
        &mut self,
        passphrase: SecretString,
        kind: KeyKind,
    ) -> Result<(), ReviewError> {
        let identity = kind.generate();
        self.card.age_recipient = identity.to_public().to_string();
        self.identities.insert(0, identity);
        self.write_keys(passphrase)?;
        self.save()
    }

    /// Replaces the Ed25519 signing key (after the laptop or a backup was
    /// stolen: whoever has the old key and the passphrase could sign
    /// outboxes). The card gets the new key. Melders' pages pinned the old
    /// one, so they show replies in existing signed threads as not genuine
    /// from now on: the counsellor must tell them another way (threat
    /// model, "A thief of the counsellor's laptop").
    pub fn replace_signing_key(&mut self, passphrase: SecretString) -> Result<(), ReviewError> {
        self.signing = SigningKey::generate(&mut rand::rngs::OsRng);
        self.card.signing_key = STANDARD.encode(self.signing.verifying_key().as_bytes());
        self.write_keys(passphrase)?;
        self.save()
    }

    /// Writes identity.age (all identities, passphrase-encrypted),
    /// signing-key.age (to the current identity) and card.json.
    fn write_keys(&self, passphrase: SecretString) -> Result<(), ReviewError> {
        // A standard age identity file, encrypted with the passphrase
        // (scrypt), readable by `age -d -i identity.age`.
        let mut identity_file = Zeroizing::new(format!(
            "# Meldkluis counsellor identity of {}\n# current public key: {}\n# (older keys follow the current one; keep them for older messages)\n",
            self.card.id, self.card.age_recipient,
        ));
        for identity in &self.identities {
            identity_file.push_str(identity.to_string().expose_secret());
            identity_file.push('\n');
        }
        let path = self.dir.join(IDENTITY);
        let encryptor = age::Encryptor::with_user_passphrase(passphrase);
        let mut out = Vec::new();
        let mut writer = encryptor
            .wrap_output(&mut out)
            .map_err(ReviewError::io(&path))?;
        writer
            .write_all(identity_file.as_bytes())
            .and_then(|_| writer.finish().map(|_| ()))
            .map_err(ReviewError::io(&path))?;
        write_atomic(&path, &out)?;

        let seed = Zeroizing::new(STANDARD.encode(self.signing.to_bytes()));
        let sealed = encrypt_to(&self.recipient(), seed.as_bytes());
        write_atomic(&self.dir.join(SIGNING_KEY), &sealed)?;
        write_atomic(&self.dir.join(CARD), self.card.to_json().as_bytes())
    }

    /// Opens the vault in `dir` with the passphrase.
    pub fn open(dir: &Path, passphrase: SecretString) -> Result<Vault, ReviewError> {
        let identity_path = dir.join(IDENTITY);
        if !identity_path.exists() {
            return Err(ReviewError::NoVault(dir.to_path_buf()));
        }
        let bytes = std::fs::read(&identity_path).map_err(ReviewError::io(&identity_path))?;
        let decryptor = age::Decryptor::new(&bytes[..]).map_err(|e| damaged(&identity_path, e))?;
        if !decryptor.is_scrypt() {
            return Err(damaged(&identity_path, "not passphrase-encrypted"));
        }
        let mut scrypt = age::scrypt::Identity::new(passphrase);
        // age's default ceiling is "this machine's one-second work factor
        // plus four", measured now: on a busy laptop that can fall below the
        // factor the vault was made with, and the right passphrase would be
        // refused. The vault is the counsellor's own file; allow up to 2^22
        // (4 GiB of memory), far above what `init` ever picks.
        scrypt.set_max_work_factor(MAX_VAULT_WORK_FACTOR);
        let mut reader = decryptor
            .decrypt(std::iter::once(&scrypt as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::ExcessiveWork { .. } => damaged(
                    &identity_path,
                    "its passphrase protection asks for more work than this program allows",
                ),
                _ => ReviewError::WrongPassphrase,
            })?;
        let mut text = Zeroizing::new(String::new());
        reader
            .read_to_string(&mut text)
            .map_err(|e| damaged(&identity_path, e))?;
        let identities: Vec<Identity> = text
            .lines()
            .map(str::trim)
            .filter(|line| looks_like_identity(line))
            .map(|line| {
                Identity::parse(line).map_err(|_| damaged(&identity_path, "a malformed identity"))
            })
            .collect::<Result<_, _>>()?;
        if identities.is_empty() {
            return Err(damaged(&identity_path, "no age identity inside"));
        }

        let signing_path = dir.join(SIGNING_KEY);
        let seed = decrypt_file(&identities, &signing_path)?;
        let seed: Zeroizing<Vec<u8>> = Zeroizing::new(
            STANDARD
                .decode(seed.trim_ascii())
                .map_err(|e| damaged(&signing_path, e))?,
        );
        let seed: &[u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| damaged(&signing_path, "not a 32-byte key"))?;
        let signing = SigningKey::from_bytes(seed);

        let card_path = dir.join(CARD);
        let card = Card::parse(&std::fs::read(&card_path).map_err(ReviewError::io(&card_path))?)
            .map_err(|e| damaged(&card_path, e))?;
        if card.age_recipient != identities[0].to_public().to_string()
            || card.verifying_key().ok() != Some(signing.verifying_key())
        {
            return Err(damaged(&card_path, "it does not match the vault's keys"));
        }
        let state_path = dir.join(STATE);
        let state_json = decrypt_file(&identities, &state_path)?;
        let state: State =
            serde_json::from_slice(&state_json).map_err(|e| damaged(&state_path, e))?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            identities,
            signing,
            card,
            state,
        })
    }

    /// Writes the state, encrypted, atomically.
    pub fn save(&self) -> Result<(), ReviewError> {
        let json = Zeroizing::new(serde_json::to_vec(&self.state).expect("state serialises"));
        write_atomic(&self.dir.join(STATE), &encrypt_to(&self.recipient(), &json))
    }

    /// Every identity, current first: what decrypts a message.
    pub fn identities(&self) -> Vec<&dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i as &dyn age::Identity)
            .collect()
    }

    /// The current recipient: the one on the card.
    pub fn recipient(&self) -> Recipient {
        self.identities[0].to_public()
    }

    /// The counsellor's own recipient to put beside `other` in one file:
    /// the current one when it is of the same kind (post-quantum or not),
    /// else the newest identity of `other`'s kind, since age cannot mix the
    /// two. `None` when the vault has no identity of that kind.
    pub fn own_recipient_beside(&self, other: &Recipient) -> Option<Recipient> {
        self.identities
            .iter()
            .map(Identity::to_public)
            .find(|r| r.is_post_quantum() == other.is_post_quantum())
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    fn message_path(&self, id: &MessageId) -> PathBuf {
        self.dir.join(MESSAGES).join(format!("{id}.age"))
    }

    /// Stores a message's age file (still encrypted) unless it is there;
    /// `true` when this call wrote it.
    pub fn store_message(&self, id: &MessageId, body: &[u8]) -> Result<StoredMessage, ReviewError> {
        let path = self.message_path(id);
        if path.exists() {
            let kept = std::fs::read(&path).map_err(ReviewError::io(&path))?;
            return Ok(match kept == body {
                true => StoredMessage::Same,
                false => StoredMessage::Different,
            });
        }
        // A vault copied with a tool that drops empty folders (git, some
        // archivers) has no messages/ yet.
        create_private_dir(&self.dir.join(MESSAGES))?;
        write_atomic(&path, body)?;
        Ok(StoredMessage::Created)
    }

    pub fn read_message(&self, id: &MessageId) -> Result<Vec<u8>, ReviewError> {
        let path = self.message_path(id);
        std::fs::read(&path).map_err(ReviewError::io(path))
    }

    /// Removes a stored message (for `purge`); a missing file is fine.
    pub fn remove_message(&self, id: &MessageId) -> Result<(), ReviewError> {
        remove_if_there(&self.message_path(id))
    }

    pub fn card_path(&self) -> PathBuf {
        self.dir.join(CARD)
    }

    pub fn attachment_path(&self, upload: &UploadId) -> PathBuf {
        self.dir.join(ATTACHMENTS).join(format!("{upload}.age"))
    }

    /// Stores a streamed attachment's age file as it passes, still
    /// encrypted, through a bounded buffer: to `<upload>.age.part`, fsync,
    /// rename. A file already there with the same length and head is kept
    /// (the stream is still read, so the inbox is checked to its end).
    pub fn store_attachment(
        &self,
        stream: &mut AttachmentStream<'_>,
    ) -> Result<StoredAttachment, ReviewError> {
        let path = self.attachment_path(&stream.attachment.upload);
        let existed = path.exists();
        if existed && self.holds_attachment(&path, stream.len(), stream.head()) {
            stream
                .copy_to(&mut std::io::sink())
                .map_err(copy_error(&path))?;
            return Ok(StoredAttachment::Kept);
        }
        create_private_dir(&self.dir.join(ATTACHMENTS))?;
        let partial = path.with_extension(format!("age.{PARTIAL}"));
        let written = (|| {
            let mut file = std::fs::File::create(&partial).map_err(ReviewError::io(&partial))?;
            stream.copy_to(&mut file).map_err(copy_error(&partial))?;
            file.sync_all().map_err(ReviewError::io(&partial))?;
            drop(file);
            rename_over(&partial, &path).map_err(ReviewError::io(&path))?;
            sync_dir(&path);
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        Ok(if existed {
            StoredAttachment::Replaced
        } else {
            StoredAttachment::Created
        })
    }

    /// Whether `path` holds an attachment of `len` bytes starting with `head`.
    fn holds_attachment(&self, path: &Path, len: u64, head: &[u8]) -> bool {
        let Ok(mut file) = std::fs::File::open(path) else {
            return false;
        };
        let mut start = vec![0u8; head.len()];
        file.metadata().is_ok_and(|m| m.len() == len)
            && file.read_exact(&mut start).is_ok()
            && start == head
    }

    /// Opens a stored attachment's age file, with its length.
    pub fn open_attachment(&self, upload: &UploadId) -> std::io::Result<(std::fs::File, u64)> {
        let mut file = std::fs::File::open(self.attachment_path(upload))?;
        let len = file.seek(std::io::SeekFrom::End(0))?;
        file.rewind()?;
        Ok((file, len))
    }

    /// Removes a stored attachment (import clean-up, `purge`); a missing
    /// file is fine.
    pub fn remove_attachment(&self, upload: &UploadId) -> Result<(), ReviewError> {
        remove_if_there(&self.attachment_path(upload))
    }

    /// Removes `.part` files a crash left in `attachments/`.
    pub fn remove_partial_attachments(&self) -> Result<(), ReviewError> {
        let dir = self.dir.join(ATTACHMENTS);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries {
            let path = entry.map_err(ReviewError::io(&dir))?.path();
            if path.extension().is_some_and(|e| e == PARTIAL) {
                remove_if_there(&path)?;
            }
        }
        Ok(())
    }
}

/// What [`Vault::store_attachment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAttachment {
    /// A new file.
    Created,
    /// A file of the same length and head was already there.
    Kept,
    /// A different file was there (from a damaged or forged inbox) and was
    /// replaced by this one.
    Replaced,
}

fn copy_error(path: &Path) -> impl FnOnce(CopyError) -> ReviewError + '_ {
    move |e| match e {
        CopyError::Read(e) => ReviewError::Inbox(e),
        CopyError::Write(e) => ReviewError::io(path)(e),
    }
}

fn remove_if_there(path: &Path) -> Result<(), ReviewError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ReviewError::io(path)(e)),
        _ => Ok(()),
    }
}

/// Makes a rename in `path`'s directory durable; some platforms cannot open
/// a directory, which only weakens durability, not correctness.
fn sync_dir(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

fn damaged(file: &Path, problem: impl std::fmt::Display) -> ReviewError {
    ReviewError::Damaged {
        file: file.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn encrypt_to(recipient: &Recipient, plaintext: &[u8]) -> Vec<u8> {
    age::encrypt(recipient, plaintext).expect("encrypting to one recipient cannot fail")
}

fn decrypt_file(identities: &[Identity], path: &Path) -> Result<Zeroizing<Vec<u8>>, ReviewError> {
    let bytes = std::fs::read(path).map_err(ReviewError::io(path))?;
    let decryptor = age::Decryptor::new(&bytes[..]).map_err(|e| damaged(path, e))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| damaged(path, e))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| damaged(path, e))?;
    Ok(plaintext)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), ReviewError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(ReviewError::io(dir))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), ReviewError> {
    std::fs::create_dir_all(dir).map_err(ReviewError::io(dir))
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new
/// file, never half of one: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReviewError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(ReviewError::io(&tmp))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(ReviewError::io(&tmp))?;
    drop(file);
    rename_over(&tmp, path).map_err(ReviewError::io(path))?;
    sync_dir(path);
    Ok(())
}

/// Renames `from` to `to`, replacing `to`. On Windows a virus scanner or
/// the search indexer may hold a file it just saw being written, and the
/// rename then fails with "access denied" or a sharing violation for a
/// moment; it is tried again for about two seconds before giving up.
pub fn rename_over(from: &Path, to: &Path) -> std::io::Result<()> {
    const WAITS_MS: [u64; 9] = [10, 20, 40, 80, 160, 320, 500, 500, 500];
    let waits = WAITS_MS.map(std::time::Duration::from_millis);
    retry_while(
        || std::fs::rename(from, to),
        held_by_another_program,
        &waits,
    )
}

/// Runs `op` until it succeeds or fails otherwise than `transient` says,
/// waiting each of `waits` in turn between tries; then gives up.
fn retry_while<T>(
    mut op: impl FnMut() -> std::io::Result<T>,
    transient: impl Fn(&std::io::Error) -> bool,
    waits: &[std::time::Duration],
) -> std::io::Result<T> {
    for wait in waits {
        match op() {
            Err(e) if transient(&e) => std::thread::sleep(*wait),
            done => return done,
        }
    }
    op()
}

/// Whether a rename failed only because another program holds the file:
/// ERROR_ACCESS_DENIED (5) or ERROR_SHARING_VIOLATION (32) on Windows. On
/// other systems these errors are permanent.
fn held_by_another_program(e: &std::io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn who() -> NewCounsellor {
        NewCounsellor {
            id: "vp-test".into(),
            name: "Test".into(),
            organisation: "Org".into(),
            org: None,
            kind: CounsellorKind::Internal,
            description: String::new(),
        }
    }

    #[test]
    fn renames_replace_and_retry_only_transient_failures() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.age");
        write_atomic(&target, b"old").unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!dir.path().join("state.tmp").exists());

        let waits = [std::time::Duration::from_millis(1); 3];
        let busy = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let is_busy = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
        let mut tries = 0;
        let result = retry_while(
            || {
                tries += 1;
                if tries < 3 { Err(busy()) } else { Ok(tries) }
            },
            is_busy,
            &waits,
        );
        assert_eq!(result.unwrap(), 3);
        let mut tries = 0;
        let result: std::io::Result<()> = retry_while(
            || {
                tries += 1;
                Err(busy())
            },
            is_busy,
            &waits,
        );
        assert!(result.is_err());
        assert_eq!(tries, 4, "gives up when the waits are used up");
        let mut tries = 0;
        let result: std::io::Result<()> = retry_while(
            || {
                tries += 1;
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            },
            is_busy,
            &waits,
        );
        assert!(result.is_err());
        assert_eq!(tries, 1, "a lasting error is not retried");
    }

    #[test]
    fn init_open_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pass = || SecretString::from("correct horse".to_owned());
        let made = Vault::init(dir.path(), pass(), who()).unwrap();
        let opened = Vault::open(dir.path(), pass()).unwrap();
        assert_eq!(made.card, opened.card);
        assert!(matches!(
            Vault::open(dir.path(), SecretString::from("wrong".to_owned())),
            Err(ReviewError::WrongPassphrase)
        ));
        assert!(matches!(
            Vault::init(dir.path(), pass(), who()),
            Err(ReviewError::VaultExists(_))
        ));
        // A copy without the empty messages/ folder still takes messages.
        std::fs::remove_dir(dir.path().join(MESSAGES)).unwrap();
        let id = MessageId::random();
        opened.store_message(&id, b"x").unwrap();
        assert_eq!(opened.read_message(&id).unwrap(), b"x");
        // The identity file is a plain age passphrase file.
        let bytes = std::fs::read(dir.path().join(IDENTITY)).unwrap();
        assert!(age::Decryptor::new(&bytes[..]).unwrap().is_scrypt());
    }
}
