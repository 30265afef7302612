//! Reading a streamed attachment out of the vault (protocol.md §3a). The
//! envelope names the file by upload id and by the SHA-256 of its head;
//! age checks every 64 KiB chunk and the end; the plaintext must be exactly
//! the padded length of the stated size, zeros after the file. Only then
//! are the first `size` bytes the melder's file. Decryption is a stream:
//! memory stays bounded whatever the file weighs.

use std::io::{BufReader, Read, Seek, Write};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::format::agefile::{AgeFileError, attachment_padded_length, check_attachment};
use crate::format::envelope::StreamedFile;

use super::vault::Vault;

const BUFFER_BYTES: usize = 64 * 1024;

/// Why a streamed attachment is refused as damaged. Nothing of it is
/// exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The vault has no file for this upload: the inbox that should have
    /// brought it did not (or it was removed).
    #[error(
        "ontbreekt in de kluis; importeer de inbox opnieuw / missing from the vault; import the inbox again"
    )]
    Missing,
    /// The stored file cannot be read.
    #[error("kan niet worden gelezen / cannot be read: {0}")]
    Unreadable(String),
    /// Not a well-formed age file of a padded attachment.
    #[error("is geen geldig age-bestand / is not a valid age file: {0}")]
    NotAge(AgeFileError),
    /// The head hash differs from the envelope's: another file than the one
    /// the melder sent (swapped, or replaced on the server).
    #[error("is niet het bestand dat de melder verstuurde / is not the file the melder sent")]
    WrongFile,
    /// The plaintext length is not the padded length of the stated size.
    #[error(
        "heeft niet de lengte die de melder opgaf / does not have the length the melder stated"
    )]
    WrongLength,
    /// age refused it: not for this identity, a chunk that does not
    /// authenticate, or cut short.
    #[error(
        "kan niet worden ontsleuteld: beschadigd of afgekapt / cannot be decrypted: damaged or cut short ({0})"
    )]
    Undecryptable(String),
    /// A byte after the file's end is not zero.
    #[error("de opvulling na het bestand is niet leeg / the padding after the file is not empty")]
    Padding,
}

/// Why [`decrypt`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The attachment is damaged; what was written must be discarded.
    #[error("{0}")]
    Damaged(#[from] Damage),
    /// Writing the plaintext failed (disk full, …).
    #[error("{0}")]
    Write(std::io::Error),
}

/// The checks that need no key: the stored file is there, is an age file of
/// a padded attachment, has the head the envelope names and the length its
/// size implies. Reads at most 64 KiB.
pub fn check_stored(vault: &Vault, file: &StreamedFile) -> Result<(), Damage> {
    open_checked(vault, file).map(|_| ())
}

fn open_checked(vault: &Vault, file: &StreamedFile) -> Result<std::fs::File, Damage> {
    let (mut source, len) = vault.open_attachment(&file.upload).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Damage::Missing
        } else {
            Damage::Unreadable(e.to_string())
        }
    })?;
    let mut prefix = vec![0u8; len.min(BUFFER_BYTES as u64) as usize];
    source
        .read_exact(&mut prefix)
        .map_err(|e| Damage::Unreadable(e.to_string()))?;
    let shape = check_attachment(&prefix, len).map_err(Damage::NotAge)?;
    if Sha256::digest(&prefix[..shape.head_len]).as_slice() != file.head_sha256 {
        return Err(Damage::WrongFile);
    }
    if shape.plaintext_len != attachment_padded_length(file.size) {
        return Err(Damage::WrongLength);
    }
    source
        .rewind()
        .map_err(|e| Damage::Unreadable(e.to_string()))?;
    Ok(source)
}

/// Decrypts a streamed attachment from the vault into `out` as a stream,
/// checking everything protocol.md §3a asks; writes only the first `size`
/// bytes. On an error, `out` holds a partial file the caller must remove.
pub fn decrypt(
    vault: &Vault,
    file: &StreamedFile,
    out: &mut dyn Write,
) -> Result<(), DecryptError> {
    let source = open_checked(vault, file)?;
    let undecryptable = |e: &dyn std::fmt::Display| Damage::Undecryptable(e.to_string());
    let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(BUFFER_BYTES, source))
        .map_err(|e| undecryptable(&e))?;
    let mut plaintext = decryptor
        .decrypt(vault.identities().into_iter())
        .map_err(|e| undecryptable(&e))?;
    // The buffer holds the melder's plaintext: wipe it when done.
    let mut buffer = Zeroizing::new(vec![0u8; BUFFER_BYTES]);
    let mut file_left = file.size;
    let mut padding_left = attachment_padded_length(file.size) - file.size;
    loop {
        let n = match plaintext.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(undecryptable(&e).into()),
        };
        if n == 0 {
            // The end, which age has authenticated.
            return if file_left == 0 && padding_left == 0 {
                Ok(())
            } else {
                Err(Damage::WrongLength.into())
            };
        }
        let data = &buffer[..n];
        let to_file = data
            .len()
            .min(usize::try_from(file_left).unwrap_or(usize::MAX));
        out.write_all(&data[..to_file])
            .map_err(DecryptError::Write)?;
        file_left -= to_file as u64;
        let padding = &data[to_file..];
        if padding.len() as u64 > padding_left {
            return Err(Damage::WrongLength.into());
        }
        if padding.iter().any(|&b| b != 0) {
            return Err(Damage::Padding.into());
        }
        padding_left -= padding.len() as u64;
    }
}
