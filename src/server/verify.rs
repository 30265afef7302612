//! `meldkluis verify-site URL`: fetches every page and file a running site
//! serves and compares it byte for byte with what this build would serve, so
//! a counsellor or an auditor can check that an operator serves the genuine
//! code (DESIGN §7). Pages are compared as rendered, in both languages.
//! Each file is fetched three times, asking for identity, gzip and brotli,
//! and each answer is decoded before comparing: a browser gets the
//! compressed forms, so those must decode to this build's bytes too.
//! With `--cards`, it also compares every organisation's served counsellor
//! cards with the cards the organisation published (protocol.md §10.1).
//! Every request carries the headers Firefox ESR (Tor Browser's engine)
//! sends, so an operator cannot single out the check and serve it alone
//! the genuine files.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::format::card::Card;

use super::handlers::pages::{Encoding, Site};

/// The largest file the check reads or decodes (the site's largest is the
/// age bundle, about 300 KB).
const LIMIT: u64 = 64 * 1024 * 1024;

/// The outcome for one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Same,
    /// Served, but different bytes (after decoding): the SHA-256 of this
    /// build and of the site, and what the check asked for (`identity`,
    /// `gzip`, `br`).
    Differs {
        expected: String,
        served: String,
        asked: &'static str,
    },
    /// Not served (status or error).
    Missing(String),
}

/// Why the check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the URL must start with https:// (or http://127.0.0.1 / http://localhost for a local check)"
    )]
    BadUrl,
    #[error("the embedded web pages are broken: {0}")]
    Site(#[from] super::handlers::pages::SiteError),
    /// The published card file could not be read.
    #[error("the published cards in {0}: {1}")]
    Published(String, String),
    /// The site's list of organisations could not be read.
    #[error("the site's list of organisations ({0}): {1}")]
    Organisations(String, String),
}

/// What Firefox ESR 153 on Windows sends, the same string Tor Browser
/// shows on every platform: the check must not stand out from melders'
/// browsers (update it with each ESR).
pub const USER_AGENT: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:153.0) Gecko/20100101 Firefox/153.0";
const ACCEPT_LANGUAGE: &str = "en-US,en;q=0.5";
/// Firefox's own `Accept-Encoding`; the server answers it with brotli.
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";

/// What a browser asks for a path: `Accept` and the `Sec-Fetch-*` headers
/// of a page navigation, a module script, a style sheet, an image or a
/// script's `fetch`.
fn browser_headers(path: &str) -> [(&'static str, &'static str); 4] {
    let extension = path.rsplit('/').next().unwrap_or("").rsplit_once('.');
    match extension.map(|(_, e)| e) {
        Some("js") | Some("mjs") => [
            ("accept", "*/*"),
            ("sec-fetch-dest", "script"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some("css") => [
            ("accept", "text/css,*/*;q=0.1"),
            ("sec-fetch-dest", "style"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some("svg") | Some("png") | Some("ico") => [
            (
                "accept",
                "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
            ),
            ("sec-fetch-dest", "image"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some("json") | Some("txt") => [
            ("accept", "*/*"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-site", "same-origin"),
        ],
        _ if path.starts_with("/api/") => [
            ("accept", "*/*"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-site", "same-origin"),
        ],
        _ => [
            (
                "accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("sec-fetch-dest", "document"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-site", "none"),
        ],
    }
}

/// A GET for `path` under `base` that looks like Firefox's.
fn browser_get(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    encodings: &str,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let mut request = agent
        .get(format!("{base}{path}"))
        .header("user-agent", USER_AGENT)
        .header("accept-language", ACCEPT_LANGUAGE)
        .header("accept-encoding", encodings);
    for (name, value) in browser_headers(path) {
        request = request.header(name, value);
    }
    request.call()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        // No ureq/… product token: every request names the browser's.
        .user_agent(USER_AGENT)
        .build()
        .into()
}

/// The site's base URL without a trailing slash, when it may be checked.
fn checked_base(base: &str) -> Result<&str, VerifyError> {
    let base = base.trim_end_matches('/');
    let local = base.starts_with("http://127.0.0.1")
        || base.starts_with("http://localhost")
        || base.starts_with("http://[::1]");
    if !base.starts_with("https://") && !local {
        return Err(VerifyError::BadUrl);
    }
    Ok(base)
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks every path; the list is in path order.
pub fn verify_site(base: &str) -> Result<Vec<(String, Check)>, VerifyError> {
    let base = checked_base(base)?;
    let site = Site::build()?;
    let agent = agent();
    let check = |path: &str, expected: &[u8]| {
        ["identity", "gzip", "br"]
            .into_iter()
            .map(|asked| fetch_decoded(&agent, base, path, expected, asked))
            .find(|check| *check != Check::Same)
            .unwrap_or(Check::Same)
    };
    let mut results = Vec::new();
    for (path, expected) in site.files() {
        results.push((path.to_string(), check(path, expected)));
    }
    // Every page and file again under each organisation's own prefix: a
    // melder of that organisation loads those, not the root's.
    match organisation_ids(&agent, base) {
        Ok(organisations) => {
            for org in organisations {
                if !crate::format::card::valid_id(&org) {
                    results.push((
                        format!("/o/{org}/"),
                        Check::Missing("the site names an organisation id that is not one".into()),
                    ));
                    continue;
                }
                for (path, expected) in site.files_under(&org) {
                    let outcome = check(&path, &expected);
                    results.push((path, outcome));
                }
            }
        }
        Err(why) => results.push(("/api/v1/organisations".into(), Check::Missing(why))),
    }
    Ok(results)
}

/// The organisation ids the site serves (`GET /api/v1/organisations`).
fn organisation_ids(agent: &ureq::Agent, base: &str) -> Result<Vec<String>, String> {
    let answer = get_json(agent, base, "/api/v1/organisations")?;
    answer["organisations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|o| o["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .ok_or_else(|| "no list of organisations".to_string())
}

/// One file, asked for in one coding, decoded as its `Content-Encoding`
/// says, compared with `expected`.
fn fetch_decoded(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    expected: &[u8],
    asked: &'static str,
) -> Check {
    // "br" is asked for as Firefox asks: whatever the server picks for a
    // browser is what must decode to this build's bytes.
    let encodings = match asked {
        "br" => BROWSER_ENCODINGS,
        "gzip" => "gzip, deflate",
        other => other,
    };
    let mut response = match browser_get(agent, base, path, encodings) {
        Ok(response) if response.status() == 200 => response,
        Ok(response) => return Check::Missing(format!("HTTP {} ({asked})", response.status())),
        Err(e) => return Check::Missing(format!("{e} ({asked})")),
    };
    let coding = match content_coding(&response) {
        Ok(coding) => coding,
        Err(e) => return Check::Missing(format!("{e} ({asked})")),
    };
    let raw = match response.body_mut().with_config().limit(LIMIT).read_to_vec() {
        Ok(raw) => raw,
        Err(e) => return Check::Missing(format!("{e} ({asked})")),
    };
    match coding.decode(&raw, LIMIT) {
        // The privacy statement's organisation part is filled in when
        // served (controller, DPO): everything outside it must be identical.
        Ok(served)
            if served == expected
                || super::handlers::pages::without_organisation_part(&served)
                    == super::handlers::pages::without_organisation_part(expected) =>
        {
            Check::Same
        }
        Ok(served) => Check::Differs {
            expected: hex_sha256(expected),
            served: hex_sha256(&served),
            asked,
        },
        Err(e) => Check::Missing(format!("does not decode as {coding:?}: {e} ({asked})")),
    }
}

/// The SHA-256 of every file this build serves, one `hash  path` line each
/// (the format of `sha256sum`), for publishing next to a release.
pub fn manifest() -> Result<String, VerifyError> {
    let site = Site::build()?;
    Ok(site
        .files()
        .map(|(path, body)| format!("{}  {path}\n", hex_sha256(body)))
        .collect())
}

/// The outcome for one counsellor card of `verify-site --cards`.
#[derive(Debug, PartialEq, Eq)]
pub enum CardCheck {
    /// Served exactly as published: the same fingerprint.
    Same {
        org: String,
        id: String,
        fingerprint: String,
    },
    /// Served with other contents than published: the fields that differ
    /// (protocol.md §10.1 names them) and both fingerprints.
    Differs {
        org: String,
        id: String,
        fields: Vec<&'static str>,
        published: String,
        served: String,
    },
    /// Published, but no organisation of the site serves it.
    Missing {
        org: String,
        id: String,
        fingerprint: String,
    },
    /// Served, but not published.
    Unpublished {
        org: String,
        id: String,
        fingerprint: String,
    },
    /// The site's list for an organisation could not be read or holds a
    /// card that is not a valid card.
    Unreadable { org: String, why: String },
}

impl CardCheck {
    pub fn is_same(&self) -> bool {
        matches!(self, CardCheck::Same { .. })
    }
}

/// The published cards: a JSON array of cards (protocol.md §5), or a
/// directory of `<id>.json` cards as in `keys/`. Every card must be valid
/// and every id appear once.
pub fn load_published(path: &Path) -> Result<BTreeMap<String, Card>, VerifyError> {
    let shown = path.display().to_string();
    let problem = |why: String| VerifyError::Published(shown.clone(), why);
    if path.is_dir() {
        return super::config::load_cards(path).map_err(|e| problem(e.to_string()));
    }
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    let list: Vec<Value> = serde_json::from_slice(&bytes)
        .map_err(|e| problem(format!("not a JSON array of cards: {e}")))?;
    let mut cards = BTreeMap::new();
    for (i, value) in list.iter().enumerate() {
        let card = Card::parse(value.to_string().as_bytes())
            .map_err(|e| problem(format!("card {} of the list: {e}", i + 1)))?;
        if cards.contains_key(&card.id) {
            return Err(problem(format!("the id {:?} appears twice", card.id)));
        }
        cards.insert(card.id.clone(), card);
    }
    if cards.is_empty() {
        return Err(problem("no card in it".into()));
    }
    Ok(cards)
}

/// The coding a response's `Content-Encoding` names, or why it is none we read.
fn content_coding(response: &ureq::http::Response<ureq::Body>) -> Result<Encoding, String> {
    match response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => Ok(Encoding::Identity),
        Some("gzip") => Ok(Encoding::Gzip),
        Some("br") => Ok(Encoding::Brotli),
        Some(other) => Err(format!("unknown content-encoding {other:?}")),
    }
}

/// GETs a JSON answer of the site's API, as the report page's script would.
fn get_json(agent: &ureq::Agent, base: &str, path: &str) -> Result<Value, String> {
    let mut response =
        browser_get(agent, base, path, BROWSER_ENCODINGS).map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("HTTP {}", response.status()));
    }
    let coding = content_coding(&response)?;
    let raw = response
        .body_mut()
        .with_config()
        .limit(LIMIT)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    let body = coding.decode(&raw, LIMIT).map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// A counsellor as `GET /api/v1/counsellors` serves it, read back as a card
/// (the served `org` is the effective one, `lang` null when absent).
fn served_card(value: &Value) -> Result<Card, String> {
    let mut object = value
        .as_object()
        .cloned()
        .ok_or("a counsellor that is not an object")?;
    object.remove("post_quantum");
    if object.get("lang").is_some_and(Value::is_null) {
        object.remove("lang");
    }
    object.insert("format".into(), "meldkluis-card".into());
    object.insert("v".into(), 1.into());
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    Card::parse(Value::Object(object).to_string().as_bytes())
        .map_err(|e| format!("the served card {id:?} is not a valid card: {e}"))
}

/// Fetches every organisation's counsellors from the site and compares them
/// with `published`, by id and then by fingerprint; the list is in
/// organisation, then id order.
pub fn verify_cards(
    base: &str,
    published: &BTreeMap<String, Card>,
) -> Result<Vec<CardCheck>, VerifyError> {
    let base = checked_base(base)?;
    let agent = agent();
    let organisations = organisation_ids(&agent, base)
        .map_err(|e| VerifyError::Organisations(base.to_string(), e))?;
    let mut results = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for org in organisations {
        // Ids are `[a-z0-9-]` (protocol.md §5): anything else is named, not sent.
        if !crate::format::card::valid_id(&org) {
            results.push(CardCheck::Unreadable {
                org: org.clone(),
                why: "the site names an organisation id that is not one".into(),
            });
            continue;
        }
        let served = match get_json(&agent, base, &format!("/api/v1/counsellors?org={org}")) {
            Ok(answer) => answer,
            Err(why) => {
                results.push(CardCheck::Unreadable { org, why });
                continue;
            }
        };
        let Some(list) = served["counsellors"].as_array() else {
            results.push(CardCheck::Unreadable {
                org,
                why: "the answer has no list of counsellors".into(),
            });
            continue;
        };
        let mut checks = Vec::new();
        for value in list {
            let card = match served_card(value) {
                Ok(card) => card,
                Err(why) => {
                    checks.push(CardCheck::Unreadable {
                        org: org.clone(),
                        why,
                    });
                    continue;
                }
            };
            seen.insert(card.id.clone());
            let id = card.id.clone();
            checks.push(match published.get(&id) {
                None => CardCheck::Unpublished {
                    org: org.clone(),
                    id,
                    fingerprint: card.fingerprint(),
                },
                Some(genuine) if genuine.fingerprint() == card.fingerprint() => CardCheck::Same {
                    org: org.clone(),
                    id,
                    fingerprint: card.fingerprint(),
                },
                Some(genuine) => CardCheck::Differs {
                    org: org.clone(),
                    id,
                    fields: genuine.differing_fields(&card),
                    published: genuine.fingerprint(),
                    served: card.fingerprint(),
                },
            });
        }
        results.extend(checks);
    }
    for (id, card) in published {
        if !seen.contains(id) {
            results.push(CardCheck::Missing {
                org: card.org_id(),
                id: id.clone(),
                fingerprint: card.fingerprint(),
            });
        }
    }
    Ok(results)
}
