//! The command line's errors: the library's, wrapped through `From`, and
//! the few of its own (the terminal, files it reads). Each is shown in the
//! chosen language, never with an internal detail the counsellor cannot act on.

use std::path::{Path, PathBuf};

use meldkluis::review::ReviewError;
use meldkluis::review::i18n::Lang;
use meldkluis::review::untrusted::Untrusted;

use crate::text::{self, fill};

#[derive(Debug)]
pub enum CliError {
    /// The library refused or failed.
    Review(ReviewError),
    /// No terminal to ask the passphrase on (a script, a service, `setsid`).
    NoTerminal,
    /// The terminal was there but asking failed.
    Terminal(std::io::Error),
    /// `--passphrase-file` could not be read.
    PassphraseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `--passphrase-file` has an empty first line.
    PassphraseFileEmpty(PathBuf),
    /// A new passphrase from `--passphrase-file` is shorter than the minimum.
    PassphraseFileTooShort(PathBuf),
    /// The counsellor gave up (or kept mistyping) choosing a new passphrase.
    NoPassphraseChosen,
    /// A `--file` could not be read.
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Standard input could not be read.
    ReadStdin(std::io::Error),
    /// A message or note without text.
    EmptyText,
    /// An id the server would refuse.
    InvalidId(String),
    /// `--card-out` names a file the server would refuse for this id.
    CardNameMismatch { id: String, stem: String },
}

impl From<ReviewError> for CliError {
    fn from(e: ReviewError) -> Self {
        CliError::Review(e)
    }
}

impl CliError {
    /// The error in words, in `lang`.
    pub fn show(&self, lang: Lang) -> String {
        let t = &text::of(lang).errors;
        let words = lang.words();
        match self {
            CliError::Review(ReviewError::Io { path, source }) => {
                format!("{}: {}", shown_path(path), io_words(lang, source))
            }
            CliError::Review(e) => words.error(e),
            CliError::NoTerminal => t.no_terminal.into(),
            CliError::Terminal(e) => fill(t.terminal, &[&io_words(lang, e)]),
            CliError::PassphraseFile { path, source } => fill(
                t.passphrase_file,
                &[&shown_path(path), &io_words(lang, source)],
            ),
            CliError::PassphraseFileEmpty(path) => {
                fill(t.passphrase_file_empty, &[&shown_path(path)])
            }
            CliError::PassphraseFileTooShort(path) => {
                fill(t.passphrase_file_too_short, &[&shown_path(path)])
            }
            CliError::NoPassphraseChosen => t.no_passphrase_chosen.into(),
            CliError::ReadFile { path, source } => {
                fill(t.read_file, &[&shown_path(path), &io_words(lang, source)])
            }
            CliError::ReadStdin(e) => fill(t.read_stdin, &[&io_words(lang, e)]),
            CliError::EmptyText => t.empty_text.into(),
            CliError::InvalidId(id) => fill(t.invalid_id, &[&Untrusted::new(id.clone())]),
            CliError::CardNameMismatch { id, stem } => fill(
                t.card_name_mismatch,
                &[&Untrusted::new(id.clone()), &Untrusted::new(stem.clone())],
            ),
        }
    }
}

/// A path as typed or built: shown neutralised, it may hold any byte.
pub fn shown_path(path: &Path) -> Untrusted {
    Untrusted::new(path.display().to_string())
}

/// What went wrong with a file, in words; the system's own (English) text
/// only for the rare kinds without words of ours.
pub fn io_words(lang: Lang, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let t = &text::of(lang).errors;
    match e.kind() {
        NotFound => t.io_not_found.into(),
        PermissionDenied => t.io_permission.into(),
        AlreadyExists => t.io_exists.into(),
        ReadOnlyFilesystem => t.io_read_only.into(),
        StorageFull => t.io_full.into(),
        IsADirectory => t.io_is_directory.into(),
        NotADirectory => t.io_not_directory.into(),
        _ => fill(t.io_other, &[&e]),
    }
}
