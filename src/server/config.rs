//! Server settings and the counsellor cards in `keys/`.
//!
//! A setting comes from, later winning: its default, the TOML file
//! (`--config`), the environment (`MELDKLUIS_<KEY>`, or `MELDKLUIS_<KEY>_FILE`
//! naming a file that holds the value), then a command-line flag. `check`
//! explains every problem in plain words; the server refuses to start on any.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::format::card::Card;

/// Default request body limit: a 16 MiB message is ~22 MiB as base64 JSON.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Loopback: the server speaks plain HTTP and belongs behind a TLS proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Closed cases leave the server this many days after closure.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The smallest body limit that still takes a report of the smallest bucket.
pub const MIN_MAX_BODY_BYTES: usize = 64 * 1024;
/// Above this the limit is almost certainly a typo (whole bodies are held in memory).
pub const MAX_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Ten years: "keep records no longer than necessary" (EU 2019/1937 Art. 18).
pub const MAX_RETENTION_DAYS: u32 = 3650;
/// Default largest attachment a melder may upload: 500 MiB, as SecureDrop.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 500 * 1024 * 1024;
/// The smallest sensible attachment limit (a phone photo).
pub const MIN_MAX_ATTACHMENT_BYTES: u64 = 1024 * 1024;
/// Above this an attachment limit is almost certainly a typo.
pub const MAX_MAX_ATTACHMENT_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Default room for all attachments and pending uploads together.
pub const DEFAULT_UPLOAD_QUOTA_BYTES: u64 = 50 * 1024 * 1024 * 1024;
/// Default free space an upload must leave on the data directory's disk,
/// so the database can always still commit.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1024 * 1024 * 1024;
/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "meldkluis.sqlite";
/// The attachment files inside the data directory.
pub const UPLOADS_DIR: &str = "uploads";

/// Largest config file and `_FILE` value read: a guard against pointing
/// them at a device or a huge file by mistake.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
const MAX_VALUE_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The value of the `Onion-Location` header: the site's `.onion` address.
    pub onion_location: Option<String>,
    /// Closed cases are deleted from the server this many days after closure.
    pub retention_days: u32,
    /// The largest attachment file (plaintext) a melder may upload.
    pub max_attachment_bytes: u64,
    /// All stored attachments and pending uploads together.
    pub upload_quota_bytes: u64,
    /// Free disk space an upload must leave.
    pub min_free_bytes: u64,
    /// How far the proof of work's difficulty may rise under load, as a
    /// multiple of the quiet difficulty (pow.rs).
    pub pow_max_factor: u64,
    /// What each organisation tells its melders, by organisation id (the
    /// `org` of its cards): `[organisations.<id>]` in the file only.
    pub organisations: BTreeMap<String, Organisation>,
    /// `postgres://…`: the store is PostgreSQL there, shared by every node
    /// (docs/postgresql.md); unset: SQLite in `data_dir`.
    pub database_url: Option<SecretText>,
    /// The PostgreSQL password, kept out of the URL (usually
    /// `MELDKLUIS_DATABASE_PASSWORD_FILE`); it replaces one in the URL.
    pub database_password: Option<SecretText>,
    /// The proof of work's HMAC key, 64 hex digits, the same on every node
    /// behind one proxy (usually `MELDKLUIS_POW_KEY_FILE`); unset, each
    /// process makes its own at start.
    pub pow_key: Option<SecretText>,
    /// The inbox-signing key's seed, base64 of 32 bytes, the same on every
    /// node (usually `MELDKLUIS_INBOX_KEY_FILE`, pointing at a copy of the
    /// first node's `inbox-signing.key`); unset, the key in the data
    /// directory, made at first start (inbox_key.rs).
    pub inbox_key: Option<SecretText>,
}

/// A setting that may hold a secret (a password, a URL with one): never
/// shown by `Debug`, wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: String) -> Self {
        SecretText(text)
    }

    /// The text itself, for the one place that needs it (connecting).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The 32 bytes of a checked `pow_key` (64 hex digits).
    pub fn key_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        // Checked when the setting was read (`apply`).
        let _ = hex::decode_to_slice(&self.0, &mut key);
        key
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// One organisation's own words for its melders: who is responsible for the
/// data (AVG art. 13), where to find aftercare and support, and a neutral
/// name for the saved code. Everything is plain text, shown escaped, never
/// as markup or a link the server makes.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Organisation {
    /// The name melders see; without it, the name on the cards.
    pub name: Option<String>,
    /// The controller (verwerkingsverantwoordelijke) and how to reach it.
    pub controller: Option<String>,
    /// The data-protection officer (functionaris gegevensbescherming).
    pub dpo: Option<String>,
    /// Where to go after a case is closed (company social work, an
    /// occupational physician, a union's helpline), one line each.
    pub aftercare: Vec<String>,
    /// Support while a case runs, one line each.
    pub support: Vec<String>,
    /// The default file name for a downloaded retrieval code.
    pub code_file_name: Option<String>,
    /// Days this organisation's closed cases stay on the server; without
    /// it, the server's `retention_days`.
    pub retention_days: Option<u32>,
}

/// The keys of `[organisations.<id>]`.
pub const ORGANISATION_KEYS: [&str; 7] = [
    "name",
    "controller",
    "dpo",
    "aftercare",
    "support",
    "code_file_name",
    "retention_days",
];
/// At most this many organisations, contact lines per list, characters per text.
const MAX_ORGANISATIONS: usize = 1000;
const MAX_CONTACT_LINES: usize = 10;
const MAX_NAME_CHARS: usize = 200;
const MAX_TEXT_CHARS: usize = 500;
/// Words a downloaded code's file name must not hold: they tell whoever
/// looks at the downloads folder what the file is.
const TELLING_WORDS: [&str; 9] = [
    "meldkluis",
    "meld",
    "ophaal",
    "code",
    "report",
    "klokkenlui",
    "whistle",
    "integrit",
    "secret",
];

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            data_dir: PathBuf::from("data"),
            keys_dir: PathBuf::from("keys"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            security_contact: None,
            onion_location: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            upload_quota_bytes: DEFAULT_UPLOAD_QUOTA_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            pow_max_factor: crate::server::pow::MAX_FACTOR,
            organisations: BTreeMap::new(),
            database_url: None,
            database_password: None,
            pow_key: None,
            inbox_key: None,
        }
    }
}

/// Every setting by its key in the file. Its environment variable is
/// `MELDKLUIS_` and the key in capitals; `…_FILE` reads the value from a file.
pub const SETTINGS: [&str; 15] = [
    "listen",
    "data_dir",
    "keys_dir",
    "max_body_bytes",
    "security_contact",
    "onion_location",
    "retention_days",
    "max_attachment_bytes",
    "upload_quota_bytes",
    "min_free_bytes",
    "pow_max_factor",
    "database_url",
    "database_password",
    "pow_key",
    "inbox_key",
];

/// Environment names of the first version, still read.
const OLD_ENV_NAMES: [(&str, &str); 2] = [
    ("data_dir", "MELDKLUIS_DATA"),
    ("keys_dir", "MELDKLUIS_KEYS"),
];

/// `MELDKLUIS_*` variables that belong to other Meldkluis programs or to
/// the config loader itself, not to a setting.
const OTHER_ENV_NAMES: [&str; 2] = ["MELDKLUIS_CONFIG", "MELDKLUIS_VAULT"];

/// Why the server will not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The keys directory cannot be listed.
    #[error("cannot read the keys directory {path}: {source}")]
    KeysDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One card file is unreadable, malformed or misnamed.
    #[error("counsellor card {path}: {problem}")]
    BadCard { path: PathBuf, problem: String },
    /// Two card files carry the same id.
    #[error("counsellor cards {first} and {second} both use the id {id:?}")]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// No card at all: melders could not choose anyone.
    #[error("no counsellor cards in {0}: add at least one (made by `meldkluis-review init`)")]
    NoCards(PathBuf),
    /// The keys directory or a card can be changed by other users.
    #[error(
        "{0} can be changed by any user of this machine: whoever changes a card reads the \
         reports sent to it (run: chmod go-w {0})"
    )]
    KeysWritable(PathBuf),
    #[error("the security contact {0:?} must be one mailto: or https: URI")]
    BadSecurityContact(String),
    #[error(
        "onion_location {0:?} must be the site's onion address and nothing more, like \
         http://<56 letters and digits>.onion"
    )]
    BadOnionLocation(String),
    #[error(
        "max_body_bytes {0} is too small: a report needs at least {MIN_MAX_BODY_BYTES} bytes \
         (the default is {DEFAULT_MAX_BODY_BYTES}, 32 MiB)"
    )]
    BodyLimitTooSmall(usize),
    #[error(
        "max_body_bytes {0} is more than 4 GiB: the server holds a whole request in memory \
         (the default is {DEFAULT_MAX_BODY_BYTES}, 32 MiB)"
    )]
    BodyLimitTooLarge(usize),
    #[error(
        "retention_days 0 would delete a closed case at once, before the melder can read the \
         last answer: use at least 1 (the default is {DEFAULT_RETENTION_DAYS})"
    )]
    RetentionZero,
    #[error(
        "retention_days {0} is more than {MAX_RETENTION_DAYS} (ten years): reports must not be \
         kept longer than necessary"
    )]
    RetentionTooLong(u32),
    #[error(
        "max_attachment_bytes {0} is outside 1 MiB to 16 GiB (the default is \
         {DEFAULT_MAX_ATTACHMENT_BYTES}, 500 MiB)"
    )]
    AttachmentLimit(u64),
    #[error(
        "upload_quota_bytes {quota} is smaller than max_attachment_bytes {max}: not even one \
         attachment of the largest size would fit"
    )]
    QuotaTooSmall { quota: u64, max: u64 },
    #[error(
        "pow_max_factor {0} is outside 1 to {max} (the default): the proof of work's \
         difficulty rises at most that many times its quiet value",
        max = crate::server::pow::MAX_FACTOR
    )]
    PowFactor(u64),
    /// One organisation's settings break a rule.
    #[error("organisations.{id}: {problem}")]
    Organisation { id: String, problem: String },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data directory exists but this user cannot write in it.
    #[error("cannot write in the data directory {path}: {problem}")]
    DataDirNotWritable { path: PathBuf, problem: String },
    /// The configuration file cannot be read or parsed.
    #[error("configuration file {path}: {problem}")]
    File { path: PathBuf, problem: String },
    /// A key in the file that is no setting (a typo, most likely).
    #[error("configuration file {path}: unknown setting {key:?}{hint}")]
    UnknownSetting {
        path: PathBuf,
        key: String,
        hint: String,
    },
    /// A value of the wrong kind or form.
    #[error("{setting} (from {origin}): {problem}")]
    BadValue {
        setting: &'static str,
        origin: Source,
        problem: String,
    },
    /// Both a variable and its `_FILE` (or old) name are set.
    #[error("{first} and {second} are both set: set only one")]
    Ambiguous { first: String, second: String },
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {problem}")]
    Listen {
        address: SocketAddr,
        problem: String,
    },
    /// The database in the data directory is not one this server can use.
    #[error("the database {path} {problem}")]
    Database { path: PathBuf, problem: String },
}

/// Where a value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    EnvFile { variable: String, path: PathBuf },
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(variable) => write!(f, "{variable}"),
            Source::EnvFile { variable, path } => write!(f, "{variable}={}", path.display()),
            Source::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

/// Several problems at once, one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<ConfigError>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Command-line flags, already typed by the argument parser; they win.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub keys_dir: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub security_contact: Option<String>,
    pub onion_location: Option<String>,
    pub retention_days: Option<u32>,
}

/// The `MELDKLUIS_*` part of an environment.
#[derive(Debug, Default, Clone)]
pub struct Environment(BTreeMap<String, OsString>);

impl Environment {
    /// This process's environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))))
    }

    pub fn from_pairs<K: Into<String>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(k, _)| k.starts_with("MELDKLUIS_"))
                .collect(),
        )
    }
}

/// A loaded configuration, with where each setting came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    pub sources: BTreeMap<&'static str, Source>,
    /// Things that are allowed but probably not meant (a misspelt variable).
    pub warnings: Vec<String>,
}

/// A value before it is typed: from the file, or text from elsewhere.
enum Raw {
    Toml(toml::Value),
    Text(String),
}

impl Raw {
    fn text(&self) -> Result<&str, String> {
        match self {
            Raw::Text(text) => Ok(text),
            Raw::Toml(toml::Value::String(text)) => Ok(text),
            Raw::Toml(other) => Err(format!("expected text in quotes, found {}", kind(other))),
        }
    }

    fn whole_number(&self, example: &str) -> Result<u64, String> {
        let wrong = || format!("expected a whole number, like {example}");
        match self {
            Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).map_err(|_| wrong()),
            Raw::Toml(other) => Err(format!("{}, found {}", wrong(), kind(other))),
            Raw::Text(text) => {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{}, found {text:?}", wrong()));
                }
                text.parse().map_err(|_| format!("{text} is far too large"))
            }
        }
    }
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "text",
        toml::Value::Integer(_) => "a number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Collects settings and their problems.
struct Builder {
    config: Config,
    sources: BTreeMap<&'static str, Source>,
    problems: Vec<ConfigError>,
    /// Directory of the config file: relative paths there are relative to it.
    file_dir: Option<PathBuf>,
}

impl Builder {
    fn set(&mut self, key: &'static str, raw: Raw, source: Source) {
        let relative_to = match &source {
            Source::File(_) => self.file_dir.clone(),
            _ => None,
        };
        let result = apply(&mut self.config, key, &raw, relative_to.as_deref());
        match result {
            Ok(()) => {
                self.sources.insert(key, source);
            }
            Err(problem) => self.problems.push(ConfigError::BadValue {
                setting: key,
                origin: source,
                problem,
            }),
        }
    }
}

/// Types one value into its place in `config`.
fn apply(
    config: &mut Config,
    key: &str,
    raw: &Raw,
    relative_to: Option<&Path>,
) -> Result<(), String> {
    let optional_text = |raw: &Raw| -> Result<Option<String>, String> {
        let text = raw.text()?;
        Ok((!text.is_empty()).then(|| text.to_string()))
    };
    let path = |raw: &Raw| -> Result<PathBuf, String> {
        let text = raw.text()?;
        if text.is_empty() {
            return Err("expected a directory, found nothing".into());
        }
        if text.contains('\0') {
            return Err("a path cannot hold a NUL character".into());
        }
        let path = PathBuf::from(text);
        Ok(match relative_to {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        })
    };
    match key {
        "listen" => {
            let text = raw.text()?;
            config.listen = text.parse().map_err(|_| {
                format!(
                    "{text:?} is not an IP address with a port, like 127.0.0.1:8080 or [::1]:8080 \
                     (host names are not accepted)"
                )
            })?;
        }
        "data_dir" => config.data_dir = path(raw)?,
        "keys_dir" => config.keys_dir = path(raw)?,
        "max_body_bytes" => {
            let n = raw.whole_number("33554432 (32 MiB)")?;
            config.max_body_bytes =
                usize::try_from(n).map_err(|_| format!("{n} is far too large"))?;
        }
        "security_contact" => config.security_contact = optional_text(raw)?,
        "onion_location" => config.onion_location = optional_text(raw)?,
        "retention_days" => {
            let n = raw.whole_number("30")?;
            config.retention_days =
                u32::try_from(n).map_err(|_| format!("{n} is far too large"))?;
        }
        "max_attachment_bytes" => {
            config.max_attachment_bytes = raw.whole_number("524288000 (500 MiB)")?;
        }
        "upload_quota_bytes" => {
            config.upload_quota_bytes = raw.whole_number("53687091200 (50 GiB)")?;
        }
        "min_free_bytes" => config.min_free_bytes = raw.whole_number("1073741824 (1 GiB)")?,
        "pow_max_factor" => config.pow_max_factor = raw.whole_number("64")?,
        "database_url" => {
            let text = raw.text()?;
            config.database_url = if text.is_empty() {
                None
            } else {
                check_database_url(text)?;
                Some(SecretText::new(text.to_string()))
            };
        }
        "database_password" => {
            config.database_password = optional_text(raw)?.map(SecretText::new);
        }
        "pow_key" => {
            let text = raw.text()?;
            config.pow_key = if text.is_empty() {
                None
            } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(SecretText::new(text.to_ascii_lowercase()))
            } else {
                // Never repeated: it is a secret.
                return Err("expected 64 hexadecimal digits (make one with: \
                            openssl rand -hex 32)"
                    .into());
            };
        }
        "inbox_key" => {
            let text = raw.text()?;
            config.inbox_key = if text.is_empty() {
                None
            } else if crate::server::inbox_key::parse(text).is_some() {
                Some(SecretText::new(text.trim().to_string()))
            } else {
                // Never repeated: it is a secret.
                return Err("expected base64 of 32 bytes: the contents of a node's \
                            inbox-signing.key"
                    .into());
            };
        }
        _ => unreachable!("every key in SETTINGS is handled"),
    }
    Ok(())
}

/// The `[organisations.<id>]` tables, typed; their rules are checked by
/// `Config::problems`, so settings made in code meet them too.
fn read_organisations(
    value: toml::Value,
) -> Result<BTreeMap<String, Organisation>, Vec<ConfigError>> {
    let problem = |id: &str, problem: String| ConfigError::Organisation {
        id: tidy(&id.chars().take(80).collect::<String>()),
        problem,
    };
    let toml::Value::Table(table) = value else {
        return Err(vec![ConfigError::BadValue {
            setting: "organisations",
            origin: Source::Default,
            problem: format!(
                "expected tables like [organisations.ministerie-van-voorbeeldzaken], found {}",
                kind(&value)
            ),
        }]);
    };
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for (id, settings) in table {
        let toml::Value::Table(settings) = settings else {
            problems.push(problem(
                &id,
                format!(
                    "expected a table [organisations.{}] with name, controller, dpo, …; found {}",
                    tidy(&id),
                    kind(&settings)
                ),
            ));
            continue;
        };
        let mut organisation = Organisation::default();
        for (key, value) in settings {
            let text = |value: &toml::Value| match value {
                toml::Value::String(text) => Ok(text.clone()),
                other => Err(format!(
                    "{key}: expected text in quotes, found {}",
                    kind(other)
                )),
            };
            let result = match key.as_str() {
                "name" => text(&value).map(|t| organisation.name = Some(t)),
                "controller" => text(&value).map(|t| organisation.controller = Some(t)),
                "dpo" => text(&value).map(|t| organisation.dpo = Some(t)),
                "code_file_name" => text(&value).map(|t| organisation.code_file_name = Some(t)),
                "retention_days" => match &value {
                    toml::Value::Integer(n) => u32::try_from(*n)
                        .map(|n| organisation.retention_days = Some(n))
                        .map_err(|_| format!("retention_days {n} is not a number of days")),
                    other => Err(format!(
                        "retention_days: expected a whole number, like 30, found {}",
                        kind(other)
                    )),
                },
                "aftercare" | "support" => match &value {
                    toml::Value::Array(items) => items
                        .iter()
                        .map(text)
                        .collect::<Result<Vec<_>, _>>()
                        .map(|lines| {
                            if key == "aftercare" {
                                organisation.aftercare = lines;
                            } else {
                                organisation.support = lines;
                            }
                        }),
                    other => Err(format!(
                        "{key}: expected a list of lines, like [\"Bedrijfsmaatschappelijk werk: 070 …\"], \
                         found {}",
                        kind(other)
                    )),
                },
                _ => Err(format!(
                    "unknown setting {:?}{}",
                    tidy(&key.chars().take(80).collect::<String>()),
                    did_you_mean(&key, ORGANISATION_KEYS.iter().copied())
                )),
            };
            if let Err(message) = result {
                problems.push(problem(&id, message));
            }
        }
        out.insert(id, organisation);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Why a text an organisation shows its melders is refused, if it is.
fn text_problem(text: &str, max: usize) -> Option<String> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Some("is empty: leave it out instead".into());
    }
    if chars > max {
        return Some(format!("is {chars} characters long; at most {max}"));
    }
    if let Some(c) = text.chars().find(|c| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        return Some(format!(
            "holds the invisible or control character U+{:04X}: write it on one line, without \
             direction overrides",
            u32::from(c)
        ));
    }
    None
}

/// Every rule one organisation's settings break.
fn organisation_problems(id: &str, organisation: &Organisation) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    let mut push = |problem: String| {
        problems.push(ConfigError::Organisation {
            id: tidy(&id.chars().take(80).collect::<String>()),
            problem,
        })
    };
    if !crate::format::card::valid_id(id) {
        push(
            "the id must be the organisation's id on its cards: 2-63 lower-case letters, digits \
             or dashes, like ministerie-van-voorbeeldzaken"
                .into(),
        );
    }
    for (key, value, max) in [
        ("name", &organisation.name, MAX_NAME_CHARS),
        ("controller", &organisation.controller, MAX_TEXT_CHARS),
        ("dpo", &organisation.dpo, MAX_TEXT_CHARS),
    ] {
        if let Some(problem) = value.as_deref().and_then(|v| text_problem(v, max)) {
            push(format!("{key} {problem}"));
        }
    }
    for (key, lines) in [
        ("aftercare", &organisation.aftercare),
        ("support", &organisation.support),
    ] {
        if lines.len() > MAX_CONTACT_LINES {
            push(format!(
                "{key} has {} lines; at most {MAX_CONTACT_LINES}",
                lines.len()
            ));
        }
        for (n, line) in lines.iter().enumerate() {
            if let Some(problem) = text_problem(line, MAX_TEXT_CHARS) {
                push(format!("{key} line {}: {problem}", n + 1));
            }
        }
    }
    if let Some(name) = &organisation.code_file_name
        && let Some(problem) = code_file_name_problem(name)
    {
        push(format!("code_file_name {problem}"));
    }
    if let Some(days) = organisation.retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&days)
    {
        push(format!(
            "retention_days {days} is outside 1 to {MAX_RETENTION_DAYS}: 0 would delete a closed \
             case before the melder reads the last answer, and reports must not be kept longer \
             than necessary"
        ));
    }
    problems
}

/// Why a file name for the downloaded code is refused, if it is: it must be
/// a plain `.txt` name that does not say what the file holds.
fn code_file_name_problem(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".txt").unwrap_or("");
    let plain = (1..=60).contains(&stem.len())
        && !stem.starts_with(['.', '-'])
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        return Some(format!(
            "{:?} must be 1-60 letters, digits, dashes, dots or underscores before .txt, like \
             notities.txt",
            tidy(&name.chars().take(80).collect::<String>())
        ));
    }
    let lower = stem.to_ascii_lowercase();
    TELLING_WORDS
        .iter()
        .find(|word| lower.contains(*word))
        .map(|word| {
            format!(
                "{name:?} holds {word:?}, which tells anyone who sees the downloads folder what \
                 the file is: choose a dull name, like notities.txt"
            )
        })
}

/// A PostgreSQL URL this build can use. The message never repeats the
/// URL: it may hold a password.
fn check_database_url(text: &str) -> Result<(), String> {
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err("expected a PostgreSQL URL starting with postgres:// (like \
             postgres://meldkluis@db.example/meldkluis); leave it unset for SQLite"
            .into());
    }
    #[cfg(feature = "postgres")]
    {
        // Its TLS settings too (`sslmode`, `sslrootcert`): a value meldkluis
        // does not take is refused here, at load, before any connection.
        crate::server::store::postgres::tls::parse_url(text)?;
        Ok(())
    }
    #[cfg(not(feature = "postgres"))]
    Err("this build of meldkluis has no PostgreSQL support (feature `postgres`)".into())
}

/// Reads at most `limit` bytes of a text file, or says why not.
fn read_text_file(path: &Path, limit: u64) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|e| plain_io(&e))?;
    if metadata.is_dir() {
        return Err("this is a directory, not a file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| plain_io(&e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| plain_io(&e))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "larger than {limit} bytes; is this the right file?"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text; is this the right file?".into())
}

/// A parser's message about a hostile file, safe to print: control
/// characters shown as escapes, each line cut to a readable length.
fn tidy(message: &str) -> String {
    const MAX_LINE: usize = 160;
    let lines: Vec<String> = message
        .trim_end()
        .lines()
        .map(|line| {
            let mut out = String::new();
            for c in line.chars().take(MAX_LINE) {
                if c.is_control() {
                    out.extend(c.escape_unicode());
                } else {
                    out.push(c);
                }
            }
            if line.chars().count() > MAX_LINE {
                out.push('…');
            }
            out
        })
        .collect();
    lines.join("\n")
}

/// An I/O error in words, without the "(os error 2)" tail.
pub(crate) fn plain_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        _ => error.to_string(),
    }
}

/// Loads the configuration: defaults, `file`, environment, flags.
pub fn load(file: Option<&Path>, env: &Environment, flags: &Overrides) -> Result<Loaded, Problems> {
    let mut builder = Builder {
        config: Config::default(),
        sources: SETTINGS.iter().map(|key| (*key, Source::Default)).collect(),
        problems: Vec::new(),
        file_dir: None,
    };
    let mut warnings = Vec::new();

    if let Some(path) = file {
        builder.file_dir = Some(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        );
        let file_problem = |problem: String| ConfigError::File {
            path: path.to_path_buf(),
            problem,
        };
        match read_text_file(path, MAX_CONFIG_FILE_BYTES) {
            Err(problem) => builder.problems.push(file_problem(problem)),
            Ok(text) => match text.parse::<toml::Table>() {
                Err(e) => builder.problems.push(file_problem(format!(
                    "not valid TOML: {}",
                    tidy(&e.to_string())
                ))),
                Ok(table) => {
                    for (key, value) in table {
                        if key == "organisations" {
                            match read_organisations(value) {
                                Ok(organisations) => {
                                    builder.config.organisations = organisations;
                                }
                                Err(problems) => builder.problems.extend(problems),
                            }
                            continue;
                        }
                        match SETTINGS.iter().find(|k| **k == key) {
                            Some(known) => builder.set(
                                known,
                                Raw::Toml(value),
                                Source::File(path.to_path_buf()),
                            ),
                            None => builder.problems.push(ConfigError::UnknownSetting {
                                path: path.to_path_buf(),
                                hint: did_you_mean(&key, SETTINGS.iter().copied()),
                                key: key.chars().take(80).collect(),
                            }),
                        }
                    }
                }
            },
        }
    }

    for key in SETTINGS {
        let variable = env_name(key);
        let file_variable = format!("{variable}_FILE");
        let old = OLD_ENV_NAMES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, name)| name.to_string());
        let present: Vec<String> = [Some(variable.clone()), Some(file_variable.clone()), old]
            .into_iter()
            .flatten()
            .filter(|name| env.0.contains_key(name))
            .collect();
        if present.len() > 1 {
            builder.problems.push(ConfigError::Ambiguous {
                first: present[0].clone(),
                second: present[1].clone(),
            });
            continue;
        }
        let Some(name) = present.into_iter().next() else {
            continue;
        };
        let value = &env.0[&name];
        if name == file_variable {
            let path = PathBuf::from(value);
            let source = Source::EnvFile {
                variable: name,
                path: path.clone(),
            };
            match read_text_file(&path, MAX_VALUE_FILE_BYTES).and_then(one_line) {
                Ok(text) => builder.set(key, Raw::Text(text), source),
                Err(problem) => builder.problems.push(ConfigError::BadValue {
                    setting: key,
                    origin: source,
                    problem: format!("cannot use the file: {problem}"),
                }),
            }
        } else {
            match value.to_str() {
                Some(text) => builder.set(key, Raw::Text(text.to_string()), Source::Env(name)),
                None => builder.problems.push(ConfigError::BadValue {
                    setting: key,
                    origin: Source::Env(name),
                    problem: "not valid UTF-8 text".into(),
                }),
            }
        }
    }

    let known_env: Vec<String> = SETTINGS
        .iter()
        .flat_map(|k| [env_name(k), format!("{}_FILE", env_name(k))])
        .chain(OLD_ENV_NAMES.iter().map(|(_, n)| n.to_string()))
        .chain(OTHER_ENV_NAMES.iter().map(|n| n.to_string()))
        .collect();
    for name in env.0.keys().filter(|n| !known_env.contains(n)) {
        let hint = did_you_mean(name, known_env.iter().map(String::as_str));
        if !hint.is_empty() {
            warnings.push(format!("the environment variable {name} is not read{hint}"));
        }
    }

    let flag_sets: [(&'static str, &'static str, Option<Raw>); 7] = [
        (
            "listen",
            "--listen",
            flags.listen.map(|v| Raw::Text(v.to_string())),
        ),
        (
            "data_dir",
            "--data",
            flags
                .data_dir
                .as_ref()
                .map(|v| Raw::Text(v.to_string_lossy().into_owned())),
        ),
        (
            "keys_dir",
            "--keys",
            flags
                .keys_dir
                .as_ref()
                .map(|v| Raw::Text(v.to_string_lossy().into_owned())),
        ),
        (
            "max_body_bytes",
            "--max-body-bytes",
            flags.max_body_bytes.map(|v| Raw::Text(v.to_string())),
        ),
        (
            "security_contact",
            "--security-contact",
            flags.security_contact.clone().map(Raw::Text),
        ),
        (
            "onion_location",
            "--onion-location",
            flags.onion_location.clone().map(Raw::Text),
        ),
        (
            "retention_days",
            "--retention-days",
            flags.retention_days.map(|v| Raw::Text(v.to_string())),
        ),
    ];
    for (key, flag, raw) in flag_sets {
        if let Some(raw) = raw {
            builder.set(key, raw, Source::Flag(flag));
        }
    }
    // Paths given as flags keep their exact bytes (not only valid UTF-8).
    if let Some(dir) = &flags.data_dir {
        builder.config.data_dir = dir.clone();
    }
    if let Some(dir) = &flags.keys_dir {
        builder.config.keys_dir = dir.clone();
    }

    if !builder.problems.is_empty() {
        return Err(Problems(builder.problems));
    }
    Ok(Loaded {
        config: builder.config,
        file: file.map(Path::to_path_buf),
        sources: builder.sources,
        warnings,
    })
}

/// The environment variable of a setting.
pub fn env_name(key: &str) -> String {
    format!("MELDKLUIS_{}", key.to_ascii_uppercase())
}

/// A `_FILE` value is the file's one line (a final newline is allowed).
fn one_line(text: String) -> Result<String, String> {
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if line.contains('\n') || line.contains('\r') {
        return Err("it holds more than one line".into());
    }
    Ok(line.to_string())
}

/// ", did you mean X?" for a near miss, else "".
fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// The directory of attachment files (`<upload>.part`, `<upload>.age`).
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join(UPLOADS_DIR)
    }

    /// Checks the settings that are not files; the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem with the settings that are not files.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if let Some(contact) = &self.security_contact {
            let scheme_ok = contact.starts_with("mailto:") || contact.starts_with("https://");
            if !scheme_ok
                || contact.len() > 500
                || contact.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                problems.push(ConfigError::BadSecurityContact(contact.clone()));
            }
        }
        if let Some(onion) = &self.onion_location
            && !valid_onion_location(onion)
        {
            problems.push(ConfigError::BadOnionLocation(onion.clone()));
        }
        if self.max_body_bytes < MIN_MAX_BODY_BYTES {
            problems.push(ConfigError::BodyLimitTooSmall(self.max_body_bytes));
        } else if self.max_body_bytes as u64 > MAX_MAX_BODY_BYTES {
            problems.push(ConfigError::BodyLimitTooLarge(self.max_body_bytes));
        }
        if self.retention_days == 0 {
            problems.push(ConfigError::RetentionZero);
        } else if self.retention_days > MAX_RETENTION_DAYS {
            problems.push(ConfigError::RetentionTooLong(self.retention_days));
        }
        if !(MIN_MAX_ATTACHMENT_BYTES..=MAX_MAX_ATTACHMENT_BYTES)
            .contains(&self.max_attachment_bytes)
        {
            problems.push(ConfigError::AttachmentLimit(self.max_attachment_bytes));
        } else if self.upload_quota_bytes < self.max_attachment_bytes {
            problems.push(ConfigError::QuotaTooSmall {
                quota: self.upload_quota_bytes,
                max: self.max_attachment_bytes,
            });
        }
        if !(1..=crate::server::pow::MAX_FACTOR).contains(&self.pow_max_factor) {
            problems.push(ConfigError::PowFactor(self.pow_max_factor));
        }
        if self.organisations.len() > MAX_ORGANISATIONS {
            problems.push(ConfigError::Organisation {
                id: "*".into(),
                problem: format!(
                    "{} organisations; at most {MAX_ORGANISATIONS}",
                    self.organisations.len()
                ),
            });
        }
        for (id, organisation) in &self.organisations {
            problems.extend(organisation_problems(id, organisation));
        }
        problems
    }
}

/// `http://` or `https://` and a v3 onion host (56 base32 characters),
/// nothing more: nothing that could break a header.
fn valid_onion_location(value: &str) -> bool {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some(name) = host.strip_suffix(".onion") else {
        return false;
    };
    let label = name.rsplit('.').next().unwrap_or_default();
    label.len() == 56
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        // The server adds the page's path to it, so it is an origin only.
        && (path.is_empty() || path == "/")
}

/// How bad a finding of `check` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The server would not start, or would run unsafely.
    Problem,
    /// Allowed, but probably not what is wanted.
    Warning,
}

#[derive(Debug)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

/// What `check` found out besides problems, for the operator's summary.
#[derive(Debug, Default)]
pub struct Facts {
    pub card_ids: Vec<String>,
    /// Each usable card's id and fingerprint (protocol.md §10.1), what
    /// `check-config` prints for the operator to compare with the
    /// counsellor's own program and the published sheet.
    pub card_fingerprints: Vec<(String, String)>,
    pub database: Option<String>,
}

/// What `check` may do besides reading.
#[derive(Debug, Clone, Copy)]
pub struct CheckMode {
    /// Try to bind the listen address (not when the server binds it next).
    pub probe_listen: bool,
    /// Open an existing database read-only and check it (a full read).
    pub inspect_database: bool,
    /// The server is starting: a bad card is a warning as long as another
    /// card loads (it is left out; one card must not take the channel
    /// down). `check-config` keeps it a problem.
    pub serving: bool,
}

/// Checks everything the server needs, without changing anything: the
/// settings, every card, the directories, the listen address. A problem
/// stops the server; a warning does not.
pub fn check(config: &Config, mode: CheckMode) -> (Vec<Finding>, Facts) {
    let mut findings: Vec<Finding> = config
        .problems()
        .into_iter()
        .map(|p| problem(p.to_string()))
        .collect();
    let mut facts = Facts::default();

    match check_cards(&config.keys_dir) {
        Ok((cards, card_problems)) => {
            let skippable = mode.serving && !cards.is_empty();
            facts.card_ids = cards.keys().cloned().collect();
            facts.card_fingerprints = cards
                .values()
                .map(|card| (card.id.clone(), card.fingerprint()))
                .collect();
            findings.extend(organisation_findings(config, &cards));
            findings.extend(card_problems.into_iter().map(|p| {
                if skippable {
                    warning(format!(
                        "{p} — this card is left out; the others are served"
                    ))
                } else {
                    problem(p.to_string())
                }
            }));
        }
        Err(e) => findings.push(problem(e.to_string())),
    }
    findings.extend(keys_permissions(&config.keys_dir));
    findings.extend(data_dir_findings(&config.data_dir));
    if config.data_dir == config.keys_dir {
        findings.push(warning(
            "data_dir and keys_dir are the same directory: the server can write there, so a \
             break-in could add a card. Keep the cards in a directory the server can only read."
                .into(),
        ));
    }

    if mode.probe_listen {
        match std::net::TcpListener::bind(config.listen) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => findings.push(warning(format!(
                "{} is in use: fine if Meldkluis is running there now, otherwise another program \
                 holds it",
                config.listen
            ))),
            Err(e) => findings.push(problem(
                ConfigError::Listen {
                    address: config.listen,
                    problem: match e.kind() {
                        std::io::ErrorKind::PermissionDenied => {
                            "permission denied (ports below 1024 need privileges; use a port \
                             such as 8080 behind the reverse proxy)"
                                .into()
                        }
                        std::io::ErrorKind::AddrNotAvailable => {
                            "this machine has no such address".into()
                        }
                        _ => e.to_string(),
                    },
                }
                .to_string(),
            )),
        }
    }
    if running_as_root() {
        findings.push(warning(
            "running as root: the server should run as its own unprivileged user \
             (deploy/meldkluis.service), and a check as root sees other rights than that \
             user has (check with: sudo -u meldkluis meldkluis check-config …)"
                .into(),
        ));
    }
    if !config.listen.ip().is_loopback() {
        findings.push(warning(format!(
            "listen {} is not a loopback address: the server speaks plain HTTP, so only a TLS \
             reverse proxy or an onion service should reach it (fine inside a container)",
            config.listen
        )));
    }
    if config.security_contact.is_none() {
        findings.push(warning(
            "security_contact is not set, so /.well-known/security.txt is not served; audits \
             (BIO, the Dutch government's web guidelines) expect one"
                .into(),
        ));
    }
    if config.retention_days < 7 && config.retention_days > 0 {
        findings.push(warning(format!(
            "retention_days {} is short: a melder who looks once a week may miss the last answer",
            config.retention_days
        )));
    }
    findings.extend(database_setting_findings(config));
    if mode.inspect_database {
        facts.database = match &config.database_url {
            None => describe_database(&config.database_path(), &mut findings),
            Some(_) => describe_postgres(config, &mut findings),
        };
    }
    findings.sort_by_key(|f| f.severity);
    (findings, facts)
}

/// Warnings about organisation settings next to the cards: settings no
/// card's organisation uses (a typo in the id, most likely), and an
/// organisation whose privacy statement names no controller or DPO.
fn organisation_findings(config: &Config, cards: &BTreeMap<String, Card>) -> Vec<Finding> {
    let served: std::collections::BTreeSet<String> = cards.values().map(Card::org_id).collect();
    let mut findings = Vec::new();
    for id in config
        .organisations
        .keys()
        .filter(|id| !served.contains(*id))
    {
        findings.push(warning(format!(
            "organisations.{}: no counsellor card has this organisation, so melders never see \
             these settings{}",
            tidy(id),
            did_you_mean(id, served.iter().map(String::as_str))
        )));
    }
    for id in &served {
        let settings = config.organisations.get(id);
        if settings.is_none_or(|o| o.controller.is_none() || o.dpo.is_none()) {
            findings.push(warning(format!(
                "organisations.{id}: no controller or no dpo set, so the privacy statement \
                 cannot name them as AVG article 13 requires"
            )));
        }
    }
    findings
}

/// The effective user is root (Linux: the owner of `/proc/self`).
fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    false
}

fn problem(message: String) -> Finding {
    Finding {
        severity: Severity::Problem,
        message,
    }
}

fn warning(message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        message,
    }
}

fn data_dir_findings(dir: &Path) -> Vec<Finding> {
    let not_writable = |problem: String| {
        vec![self::problem(
            ConfigError::DataDirNotWritable {
                path: dir.to_path_buf(),
                problem,
            }
            .to_string(),
        )]
    };
    match std::fs::metadata(dir) {
        Ok(metadata) if !metadata.is_dir() => not_writable("it is not a directory".into()),
        Ok(_) => match probe_writable(dir) {
            Ok(()) => Vec::new(),
            Err(e) => not_writable(plain_io(&e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The server creates it: the nearest existing parent must be writable.
            let parent = dir
                .ancestors()
                .skip(1)
                .find(|p| p.as_os_str().is_empty() || p.exists())
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .unwrap_or(Path::new("."));
            match probe_writable(parent) {
                Ok(()) => Vec::new(),
                Err(e) => vec![self::problem(
                    ConfigError::DataDir {
                        path: dir.to_path_buf(),
                        source: std::io::Error::new(
                            e.kind(),
                            format!(
                                "it does not exist, and no directory can be made in {} ({})",
                                parent.display(),
                                match e.kind() {
                                    std::io::ErrorKind::NotFound => e.to_string(),
                                    _ => plain_io(&e),
                                }
                            ),
                        ),
                    }
                    .to_string(),
                )],
            }
        }
        Err(e) => not_writable(plain_io(&e)),
    }
}

/// Creates and removes a file in `dir`.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let mut tag = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
    let probe = dir.join(format!(".meldkluis-check-{}", hex::encode(tag)));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(unix)]
fn keys_permissions(dir: &Path) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let mut findings = Vec::new();
    let mut paths = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        paths.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    for path in paths {
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if mode & 0o002 != 0 {
            findings.push(problem(ConfigError::KeysWritable(path).to_string()));
        } else if mode & 0o020 != 0 {
            findings.push(warning(format!(
                "{} can be changed by its group: make sure only administrators are in it",
                path.display()
            )));
        }
    }
    findings
}

#[cfg(not(unix))]
fn keys_permissions(_dir: &Path) -> Vec<Finding> {
    Vec::new()
}

/// A line about the database if there is one; a problem if it is not usable.
fn describe_database(path: &Path, findings: &mut Vec<Finding>) -> Option<String> {
    if !path.exists() {
        return Some(format!(
            "{} (not there yet; made at the first start)",
            path.display()
        ));
    }
    match super::backup::inspect(path) {
        Ok(info) => Some(format!("{} ({info})", path.display())),
        Err(e) => {
            findings.push(problem(
                ConfigError::Database {
                    path: path.to_path_buf(),
                    problem: format!("cannot be used: {e}"),
                }
                .to_string(),
            ));
            None
        }
    }
}

/// How the PostgreSQL settings are given (no connection needed).
fn database_setting_findings(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    match &config.database_url {
        None if config.database_password.is_some() => findings.push(warning(
            "database_password is set but database_url is not: the store is SQLite and the \
             password is not used"
                .into(),
        )),
        Some(url) if config.database_password.is_none() && url_has_password(url.expose()) => {
            findings.push(warning(
                "database_url holds a password: it shows in the process environment or the \
                 config file; put it in a file named by MELDKLUIS_DATABASE_PASSWORD_FILE instead"
                    .into(),
            ))
        }
        _ => {}
    }
    // A database elsewhere reached without checking whom (no connection
    // needed to say so): anyone on the path could read or change reports.
    #[cfg(feature = "postgres")]
    if let Some(url) = &config.database_url
        && let Ok((_, link)) = crate::server::store::postgres::tls::parse_url(url.expose())
        && let Some(text) = link.warning()
    {
        findings.push(warning(text));
    }
    findings
}

/// The URL with any password in it replaced by `***`, to show.
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    // Query options may carry a password too (`?password=`).
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `postgres://user:password@…` (a password in the URL's user part).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(user, _)| user.contains(':'))
}

/// Connects to PostgreSQL (creating the schema there if it has none, as the
/// server would at its start), and warns about server settings that would
/// log a melder's metadata.
fn describe_postgres(config: &Config, findings: &mut Vec<Finding>) -> Option<String> {
    #[cfg(feature = "postgres")]
    {
        let url = config.database_url.as_ref()?;
        let password = config.database_password.as_ref().map(SecretText::expose);
        let store =
            match crate::server::store::postgres::PostgresStore::open(url.expose(), password) {
                Ok(store) => store,
                // Its TLS settings or CA file: says "database_url: …" itself.
                Err(e @ crate::server::store::StoreError::DatabaseUrl(_)) => {
                    findings.push(problem(e.to_string()));
                    return None;
                }
                Err(e) => {
                    findings.push(problem(format!(
                        "database_url: cannot use the PostgreSQL database: {e}"
                    )));
                    return None;
                }
            };
        match store.metadata_findings() {
            Ok(found) => findings.extend(found.into_iter().map(warning)),
            Err(e) => findings.push(warning(format!(
                "cannot read PostgreSQL's logging settings: {e}"
            ))),
        }
        // What the server says of the connection, not only what was asked.
        let link = match store.encryption() {
            Ok(Some(tls)) => format!("{}; PostgreSQL reports TLS: {tls}", store.link()),
            Ok(None) => format!("{}; PostgreSQL reports no TLS", store.link()),
            Err(e) => format!("{}; cannot read pg_stat_ssl: {e}", store.link()),
        };
        Some(format!(
            "PostgreSQL (schema version {}), link {link}",
            crate::server::store::postgres::SCHEMA_VERSION
        ))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = config;
        findings.push(problem(
            "database_url: this build of meldkluis has no PostgreSQL support".into(),
        ));
        None
    }
}

/// Loads every `*.json` in `dir` as a card, keyed by id; the first problem
/// stops. The file name must be `<id>.json`, so an operator can see at a
/// glance which card is which.
pub fn load_cards(dir: &Path) -> Result<BTreeMap<String, Card>, ConfigError> {
    let (cards, problems) = check_cards(dir)?;
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(cards),
    }
}

/// The cards a server serves: every card that loads, as long as one does
/// (the others' problems are returned to be logged); `Err` when none does.
pub fn serving_cards(
    dir: &Path,
) -> Result<(BTreeMap<String, Card>, Vec<ConfigError>), ConfigError> {
    let (cards, problems) = check_cards(dir)?;
    if cards.is_empty() {
        return Err(problems
            .into_iter()
            .next()
            .unwrap_or_else(|| ConfigError::NoCards(dir.to_path_buf())));
    }
    Ok((cards, problems))
}

/// Loads every card it can and reports every problem, for `check-config`.
pub fn check_cards(dir: &Path) -> Result<(BTreeMap<String, Card>, Vec<ConfigError>), ConfigError> {
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
    let mut problems = Vec::new();
    let mut cards: BTreeMap<String, (Card, PathBuf)> = BTreeMap::new();
    for path in paths {
        let card = match load_card(&path) {
            Ok(card) => card,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if let Some((_, first)) = cards.get(&card.id) {
            problems.push(ConfigError::DuplicateId {
                id: card.id.clone(),
                first: first.clone(),
                second: path.clone(),
            });
            continue;
        }
        cards.insert(card.id.clone(), (card, path));
    }
    if cards.is_empty() && problems.is_empty() {
        problems.push(ConfigError::NoCards(dir.to_path_buf()));
    }
    Ok((
        cards
            .into_iter()
            .map(|(id, (card, _))| (id, card))
            .collect(),
        problems,
    ))
}

fn load_card(path: &Path) -> Result<Card, ConfigError> {
    let bad = |problem: String| ConfigError::BadCard {
        path: path.to_path_buf(),
        problem,
    };
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(bad("this is a directory, not a card file".into()));
    }
    // A card is a few hundred bytes; `Card::parse` refuses anything large,
    // so read only a little more than it accepts.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(1024 * 1024).read_to_end(&mut bytes))
        .map_err(|e| bad(plain_io(&e)))?;
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
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn load_text(text: &str, pairs: &[(&str, &str)]) -> Result<Loaded, Problems> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meldkluis.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path), &env(pairs), &Overrides::default())
    }

    #[test]
    fn defaults_are_safe() {
        let loaded = load(None, &env(&[]), &Overrides::default()).unwrap();
        assert!(loaded.config.listen.ip().is_loopback());
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.config.problems().is_empty());
    }

    #[test]
    fn file_then_env_then_flags() {
        let text = "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 100000\nretention_days = 60\n\
                    data_dir = \"state\"\n";
        let loaded = load_text(text, &[("MELDKLUIS_LISTEN", "127.0.0.1:9001")]).unwrap();
        assert_eq!(loaded.config.listen.port(), 9001);
        assert_eq!(loaded.config.max_body_bytes, 100000);
        assert_eq!(loaded.config.retention_days, 60);
        // Relative paths in the file are relative to the file.
        assert!(loaded.config.data_dir.ends_with("state"));
        assert!(loaded.config.data_dir.is_absolute());
        assert_eq!(
            loaded.sources["listen"],
            Source::Env("MELDKLUIS_LISTEN".into())
        );

        let flags = Overrides {
            listen: Some("127.0.0.1:9002".parse().unwrap()),
            ..Overrides::default()
        };
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_LISTEN", "127.0.0.1:9001")]),
            &flags,
        )
        .unwrap();
        assert_eq!(loaded.config.listen.port(), 9002);
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "listen = 8080\nmax_body_bytes = \"big\"\nlistn = \"x\"\n";
        let problems = load_text(text, &[("MELDKLUIS_RETENTION_DAYS", "-1")]).unwrap_err();
        let text = problems.to_string();
        assert_eq!(problems.0.len(), 4, "{text}");
        assert!(text.contains("listen"), "{text}");
        assert!(text.contains("did you mean listen?"), "{text}");
        assert!(text.contains("MELDKLUIS_RETENTION_DAYS"), "{text}");
    }

    #[test]
    fn file_variants_read_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contact");
        std::fs::write(&path, "mailto:security@example.nl\n").unwrap();
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_SECURITY_CONTACT_FILE", path.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            loaded.config.security_contact.as_deref(),
            Some("mailto:security@example.nl")
        );
        std::fs::write(&path, "mailto:a@example.nl\nmailto:b@example.nl\n").unwrap();
        let problems = load(
            None,
            &env(&[("MELDKLUIS_SECURITY_CONTACT_FILE", path.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(problems.to_string().contains("more than one line"));
        let problems = load(
            None,
            &env(&[
                ("MELDKLUIS_SECURITY_CONTACT_FILE", path.to_str().unwrap()),
                ("MELDKLUIS_SECURITY_CONTACT", "mailto:c@example.nl"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(problems.to_string().contains("set only one"));
    }

    #[test]
    fn old_environment_names_still_work() {
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_DATA", "/srv/x")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.config.data_dir, PathBuf::from("/srv/x"));
    }

    #[test]
    fn misspelt_variables_are_warned_about() {
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_LISTN", "x")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("MELDKLUIS_LISTEN"));
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_CHROMIUM", "x")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn limits() {
        let mut config = Config {
            max_body_bytes: 10,
            retention_days: 0,
            ..Config::default()
        };
        assert_eq!(config.problems().len(), 2);
        config.max_body_bytes = usize::MAX;
        config.retention_days = 100_000;
        assert_eq!(config.problems().len(), 2);
    }

    #[test]
    fn organisation_settings_are_read_from_the_file() {
        let text = "[organisations.ministerie-van-voorbeeldzaken]\nname = \"Ministerie\"\n\
                    controller = \"De minister, Postbus 1\"\ndpo = \"FG, fg@example.nl\"\n\
                    aftercare = [\"Bedrijfsmaatschappelijk werk: 070 000 0000\"]\n\
                    support = []\ncode_file_name = \"notities.txt\"\n";
        let loaded = load_text(text, &[]).unwrap();
        let org = &loaded.config.organisations["ministerie-van-voorbeeldzaken"];
        assert_eq!(org.name.as_deref(), Some("Ministerie"));
        assert_eq!(org.aftercare.len(), 1);
        assert_eq!(org.code_file_name.as_deref(), Some("notities.txt"));
    }

    #[test]
    fn hostile_organisation_settings_are_refused_with_their_reason() {
        let cases: &[(&str, &str)] = &[
            ("organisations = 3", "expected tables"),
            ("[organisations]\nx = 1", "expected a table"),
            ("[organisations.BAD_ID]\nname = \"x\"", "lower-case"),
            ("[organisations.org]\nnmae = \"x\"", "did you mean name?"),
            ("[organisations.org]\nname = 5", "expected text"),
            ("[organisations.org]\nname = \"\"", "is empty"),
            ("[organisations.org]\nname = \"a\\u202Eb\"", "U+202E"),
            ("[organisations.org]\ncontroller = \"a\\nb\"", "U+000A"),
            (
                "[organisations.org]\naftercare = \"one\"",
                "a list of lines",
            ),
            ("[organisations.org]\naftercare = [1]", "expected text"),
            (
                "[organisations.org]\nsupport = [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]",
                "at most 10",
            ),
            (
                "[organisations.org]\ncode_file_name = \"../x.txt\"",
                "before .txt",
            ),
            (
                "[organisations.org]\ncode_file_name = \"notes.exe\"",
                "before .txt",
            ),
            (
                "[organisations.org]\ncode_file_name = \"Meldkluis-code.txt\"",
                "tells anyone",
            ),
            (
                "[organisations.org]\ncode_file_name = \".txt\"",
                "before .txt",
            ),
            (
                "[organisations.org]\nretention_days = 0",
                "outside 1 to 3650",
            ),
            (
                "[organisations.org]\nretention_days = 99999",
                "outside 1 to 3650",
            ),
            (
                "[organisations.org]\nretention_days = -3",
                "not a number of days",
            ),
            (
                "[organisations.org]\nretention_days = \"30\"",
                "expected a whole number",
            ),
        ];
        for (text, expected) in cases {
            let problems = match load_text(text, &[]) {
                Err(problems) => problems.0,
                Ok(loaded) => loaded.config.problems(),
            };
            let words: Vec<String> = problems.iter().map(ToString::to_string).collect();
            assert!(
                words.iter().any(|w| w.contains(expected)),
                "{text}: expected {expected:?} in {words:?}"
            );
            assert!(
                words.iter().all(|w| !w.chars().any(|c| c.is_control())),
                "{words:?}"
            );
        }
        let long = format!("[organisations.org]\ndpo = \"{}\"", "x".repeat(501));
        let problems = load_text(&long, &[]).unwrap().config.problems();
        assert!(
            problems[0].to_string().contains("at most 500"),
            "{problems:?}"
        );
    }

    #[test]
    fn onion_locations() {
        let host = "a".repeat(56);
        for good in [
            format!("http://{host}.onion"),
            format!("https://{host}.onion/"),
        ] {
            assert!(valid_onion_location(&good), "{good}");
        }
        for bad in [
            "http://example.nl".to_string(),
            format!("ftp://{host}.onion"),
            format!("http://{}.onion", "a".repeat(16)),
            format!("http://{host}.onion/\r\nX-Evil: 1"),
            format!("http://{}.onion", "1".repeat(56)),
            format!("http://{host}.onion/melden"),
        ] {
            assert!(!valid_onion_location(&bad), "{bad}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("data", "keys"), 4);
    }

    #[test]
    fn a_database_url_is_checked_and_its_password_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("db-password");
        std::fs::write(&password, "geheim-wachtwoord\n").unwrap();
        let loaded = load(
            None,
            &env(&[
                (
                    "MELDKLUIS_DATABASE_URL",
                    "postgres://meldkluis@db.internal:5432/meldkluis",
                ),
                (
                    "MELDKLUIS_DATABASE_PASSWORD_FILE",
                    password.to_str().unwrap(),
                ),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let config = &loaded.config;
        assert_eq!(
            config.database_password.as_ref().unwrap().expose(),
            "geheim-wachtwoord"
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("geheim") && !shown.contains("db.internal"),
            "{shown}"
        );
        assert!(database_setting_findings(config).is_empty());

        // A wrong scheme, or garbage, is refused without repeating the value.
        for bad in [
            "mysql://u:hunter2@h/db",
            "postgres://u:hunter2@h:notaport/db",
        ] {
            let problems = load(
                None,
                &env(&[("MELDKLUIS_DATABASE_URL", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(problems.contains("database_url"), "{problems}");
            assert!(!problems.contains("hunter2"), "{problems}");
        }
        // A password in the URL works, with a warning; shown as ***.
        let loaded = load_text(
            "database_url = \"postgres://meldkluis:hunter2@db/meldkluis?sslmode=disable\"",
            &[],
        )
        .unwrap();
        let findings = database_setting_findings(&loaded.config);
        assert!(
            findings[0]
                .message
                .contains("MELDKLUIS_DATABASE_PASSWORD_FILE")
        );
        assert_eq!(
            url_without_password(loaded.config.database_url.as_ref().unwrap().expose()),
            "postgres://meldkluis:***@db/meldkluis?…"
        );
        // Empty means SQLite.
        let loaded = load_text("database_url = \"\"", &[]).unwrap();
        assert!(loaded.config.database_url.is_none());
    }

    #[test]
    fn a_pow_key_is_64_hex_digits_and_never_repeated() {
        let key = "ab".repeat(32);
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_POW_KEY", &key)]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            loaded.config.pow_key.as_ref().unwrap().key_bytes(),
            [0xab; 32]
        );
        assert!(!format!("{:?}", loaded.config).contains(&key));
        for bad in ["abc", &"zz".repeat(32), &"ab".repeat(33)] {
            let problems = load(
                None,
                &env(&[("MELDKLUIS_POW_KEY", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(problems.contains("pow_key") && problems.contains("64 hexadecimal"));
            assert!(!problems.contains(bad), "{problems}");
        }
    }

    #[test]
    fn an_inbox_key_is_base64_of_32_bytes_and_never_repeated() {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let loaded = load(
            None,
            &env(&[("MELDKLUIS_INBOX_KEY", &key)]),
            &Overrides::default(),
        )
        .unwrap();
        let signing = crate::server::inbox_key::for_config(&loaded.config).unwrap();
        assert_eq!(signing.to_bytes(), [7; 32]);
        assert!(!format!("{:?}", loaded.config).contains(&key));
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        for bad in ["not base64!", short.as_str(), "QUFB"] {
            let problems = load(
                None,
                &env(&[("MELDKLUIS_INBOX_KEY", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(problems.contains("inbox_key") && problems.contains("32 bytes"));
            assert!(!problems.contains(bad), "{problems}");
        }
    }
}
