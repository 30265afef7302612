//! The formats the browser, the server and the reviewer share, exactly as
//! specified in docs/protocol.md. Nothing here does I/O or touches a network.

pub mod agefile;
pub mod bundle;
pub mod card;
pub mod code;
pub mod day;
pub mod derive;
pub mod envelope;
pub mod ids;
pub mod keys;
pub mod pq;
pub mod signed;

/// Encrypts `plaintext` to every recipient as one binary age file.
pub fn encrypt<R: age::Recipient>(recipients: &[R], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    encrypt_any(
        &recipients
            .iter()
            .map(|r| r as &dyn age::Recipient)
            .collect::<Vec<_>>(),
        plaintext,
    )
}

/// Encrypts `plaintext` to recipients of any age type. The `age` crate
/// refuses to mix post-quantum and classical recipients in one file.
pub fn encrypt_any(
    recipients: &[&dyn age::Recipient],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().copied()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(plaintext.len() + 1024);
    let mut writer = encryptor.wrap_output(&mut out).map_err(|e| e.to_string())?;
    writer
        .write_all(plaintext)
        .and_then(|_| writer.finish().map(|_| ()))
        .map_err(|e| e.to_string())?;
    Ok(out)
}
