//! `meldkluis verify-site URL`: fetches every page and file a running site
//! serves and compares it byte for byte with what this build would serve, so
//! a counsellor or an auditor can check that an operator serves the genuine
//! code (DESIGN §7). Pages are compared as rendered, in both languages.
//! Each file is fetched three times, asking for identity, gzip and brotli,
//! and each answer is decoded before comparing: a browser gets the
//! compressed forms, so those must decode to this build's bytes too.

use sha2::{Digest, Sha256};

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
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks every path; the list is in path order.
pub fn verify_site(base: &str) -> Result<Vec<(String, Check)>, VerifyError> {
    let base = base.trim_end_matches('/');
    let local = base.starts_with("http://127.0.0.1")
        || base.starts_with("http://localhost")
        || base.starts_with("http://[::1]");
    if !base.starts_with("https://") && !local {
        return Err(VerifyError::BadUrl);
    }
    let site = Site::build()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut results = Vec::new();
    for (path, expected) in site.files() {
        let url = format!("{base}{path}");
        let check = ["identity", "gzip", "br"]
            .into_iter()
            .map(|asked| fetch_decoded(&agent, &url, expected, asked))
            .find(|check| *check != Check::Same)
            .unwrap_or(Check::Same);
        results.push((path.to_string(), check));
    }
    Ok(results)
}

/// One file, asked for in one coding, decoded as its `Content-Encoding`
/// says, compared with `expected`.
fn fetch_decoded(agent: &ureq::Agent, url: &str, expected: &[u8], asked: &'static str) -> Check {
    let mut response = match agent.get(url).header("accept-encoding", asked).call() {
        Ok(response) if response.status() == 200 => response,
        Ok(response) => return Check::Missing(format!("HTTP {} ({asked})", response.status())),
        Err(e) => return Check::Missing(format!("{e} ({asked})")),
    };
    let coding = match response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => Encoding::Identity,
        Some("gzip") => Encoding::Gzip,
        Some("br") => Encoding::Brotli,
        Some(other) => {
            return Check::Missing(format!("unknown content-encoding {other:?} ({asked})"));
        }
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
