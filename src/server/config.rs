//! Server settings and the counsellor cards in `keys/`. Everything is checked
//! at start; a bad card stops the start with the file and the problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::format::card::Card;

/// Default request body limit: a 16 MiB message is ~22 MiB as base64 JSON.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Holds `meldkluis.sqlite` and its WAL.
    pub data_dir: PathBuf,
    /// Holds the counsellor cards, `*.json`.
    pub keys_dir: PathBuf,
    pub max_body_bytes: usize,
    /// The `Contact:` of `/.well-known/security.txt` (RFC 9116), a `mailto:`
    /// or `https:` URI; without it the file is not served.
    pub security_contact: Option<String>,
}

/// Why the server will not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the keys directory {path}: {source}")]
    KeysDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("counsellor card {path}: {problem}")]
    BadCard { path: PathBuf, problem: String },
    #[error("counsellor cards {first} and {second} both use the id {id:?}")]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("no counsellor cards in {0}: add at least one (made by `meldkluis-review init`)")]
    NoCards(PathBuf),
    #[error("the security contact {0:?} must be one mailto: or https: URI")]
    BadSecurityContact(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// Checks the settings that are not files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(contact) = &self.security_contact {
            let scheme_ok = contact.starts_with("mailto:") || contact.starts_with("https://");
            if !scheme_ok
                || contact.len() > 500
                || contact.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(ConfigError::BadSecurityContact(contact.clone()));
            }
        }
        Ok(())
    }
}

/// Loads every `*.json` in `dir` as a card, keyed by id. The file name must be
/// `<id>.json`, so an operator can see at a glance which card is which.
pub fn load_cards(dir: &Path) -> Result<BTreeMap<String, Card>, ConfigError> {
    let keys_error = |source| ConfigError::KeysDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(keys_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(keys_error)?
        .into_iter()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut cards: BTreeMap<String, (Card, PathBuf)> = BTreeMap::new();
    for path in paths {
        let bad = |problem: String| ConfigError::BadCard {
            path: path.clone(),
            problem,
        };
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let card = Card::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != card.id {
            return Err(bad(format!(
                "the file must be named {}.json after the card's id",
                card.id
            )));
        }
        if let Some((_, first)) = cards.get(&card.id) {
            return Err(ConfigError::DuplicateId {
                id: card.id.clone(),
                first: first.clone(),
                second: path.clone(),
            });
        }
        cards.insert(card.id.clone(), (card, path));
    }
    if cards.is_empty() {
        return Err(ConfigError::NoCards(dir.to_path_buf()));
    }
    Ok(cards
        .into_iter()
        .map(|(id, (card, _))| (id, card))
        .collect())
}
