//! What the counsellor types: passphrases (on the terminal, without echo,
//! or from `--passphrase-file`) and message texts (from `--file` or
//! standard input).

use std::io::{IsTerminal, Read};
use std::path::Path;

use age::secrecy::SecretString;
use meldkluis::review::text_file::{decode_text, read_text_file};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::text::Text;

/// The shortest passphrase `init` and `rotate-keys` accept.
const MIN_PASSPHRASE_CHARS: usize = 12;
/// How often a new passphrase may be tried before giving up.
const PASSPHRASE_ATTEMPTS: usize = 3;

/// Asks on the terminal, without echo. Without a terminal (a script, a
/// service) it says to use --passphrase-file instead of failing with the
/// system's "No such device or address".
fn prompt(label: &str) -> Result<Zeroizing<String>, CliError> {
    #[cfg(unix)]
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err()
    {
        return Err(CliError::NoTerminal);
    }
    rpassword::prompt_password(label)
        .map(Zeroizing::new)
        .map_err(|e| {
            // ENXIO on unix, ERROR_INVALID_HANDLE on Windows: no console.
            if e.raw_os_error() == Some(6) {
                CliError::NoTerminal
            } else {
                CliError::Terminal(e)
            }
        })
}

/// The first line of `--passphrase-file`.
fn passphrase_from_file(path: &Path) -> Result<SecretString, CliError> {
    // Decoded as Windows editors write it too (BOM, UTF-16, CR LF).
    let text = read_text_file(path).map_err(|source| CliError::PassphraseFile {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(CliError::PassphraseFileEmpty(path.to_path_buf()));
    }
    Ok(SecretString::from(line.to_owned()))
}

/// The passphrase of an existing vault.
pub fn passphrase(file: Option<&Path>, label: &str) -> Result<SecretString, CliError> {
    match file {
        Some(path) => passphrase_from_file(path),
        None => Ok(SecretString::from(prompt(label)?.to_string())),
    }
}

/// A new passphrase: at least 12 characters, typed twice; a short or
/// mistyped one is asked again. From a file it must be long enough too.
pub fn new_passphrase(file: Option<&Path>, t: &Text) -> Result<SecretString, CliError> {
    use age::secrecy::ExposeSecret;
    if let Some(path) = file {
        let passphrase = passphrase_from_file(path)?;
        if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(CliError::PassphraseFileTooShort(path.to_path_buf()));
        }
        return Ok(passphrase);
    }
    for _ in 0..PASSPHRASE_ATTEMPTS {
        let first = prompt(t.prompt_new_passphrase)?;
        if first.chars().count() < MIN_PASSPHRASE_CHARS {
            eprintln!("{}", t.passphrase_too_short_again);
            continue;
        }
        let again = prompt(t.prompt_again)?;
        if *again != *first {
            eprintln!("{}", t.passphrases_differ_again);
            continue;
        }
        return Ok(SecretString::from(first.to_string()));
    }
    Err(CliError::NoPassphraseChosen)
}

/// A message or note from `--file`, or standard input; on a terminal it
/// first says what to type and how to finish.
pub fn message(file: Option<&Path>, t: &Text) -> Result<String, CliError> {
    let text = match file {
        Some(path) => read_text_file(path)
            .map_err(|source| CliError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?
            .to_string(),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("{}", t.type_message);
            }
            let mut bytes = Vec::new();
            stdin
                .lock()
                .read_to_end(&mut bytes)
                .map_err(CliError::ReadStdin)?;
            // `echo … |` in cmd.exe ends the line with CR LF.
            decode_text(&bytes)
                .map_err(CliError::ReadStdin)?
                .to_string()
        }
    };
    if text.trim().is_empty() {
        return Err(CliError::EmptyText);
    }
    Ok(text)
}
