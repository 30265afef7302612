//! The server's inbox-signing key (protocol.md §6): an Ed25519 key made at
//! first start in the data directory. Every inbox manifest is signed with
//! it, so the counsellor's laptop, which pins the key at its first signed
//! sync, refuses an inbox that anyone else made — a courier or whoever holds
//! the USB stick, who has the plaintext outbox and the public card but not
//! this key. Several nodes share one key: copy the file (docs/deploy.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

/// Its file name inside the data directory.
pub const FILE_NAME: &str = "inbox-signing.key";

#[derive(Debug, thiserror::Error)]
pub enum InboxKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not an inbox-signing key (one line: base64 of 32 bytes)")]
    Malformed(PathBuf),
}

/// Reads the key, or makes it (mode 0600, never overwriting) when there is
/// none yet.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, InboxKeyError> {
    let path = data_dir.join(FILE_NAME);
    match read(&path)? {
        Some(key) => Ok(key),
        None => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.to_bytes())));
            let io = |source| InboxKeyError::Io {
                path: path.clone(),
                source,
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    file.write_all(text.as_bytes()).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    Ok(key)
                }
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read(&path)?.ok_or(InboxKeyError::Malformed(path))
                }
                Err(e) => Err(io(e)),
            }
        }
    }
}

/// The key in the file, `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<SigningKey>, InboxKeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(InboxKeyError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| InboxKeyError::Malformed(path.into()))?,
    );
    let seed: &[u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| InboxKeyError::Malformed(path.into()))?;
    Ok(Some(SigningKey::from_bytes(seed)))
}

pub use crate::format::card::server_key_fingerprint as fingerprint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_read_back_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(made.to_bytes(), again.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(FILE_NAME), "not a key\n").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(InboxKeyError::Malformed(_))
        ));
    }

    #[test]
    fn fingerprint_vector() {
        // The key of seed 0x01 × 32 (public iojj3XQJ…QPb1w=); checked with
        // Python's `cryptography` and `hashlib` (protocol.md §6).
        let key = SigningKey::from_bytes(&[1; 32]);
        assert_eq!(
            STANDARD.encode(key.verifying_key().to_bytes()),
            "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="
        );
        assert_eq!(
            fingerprint(&key.verifying_key().to_bytes()),
            "90409 01009 85163 50341 51899 70227"
        );
    }
}
