//! `meldkluis verify-site URL`: fetches every page and file a running site
//! serves and compares it byte for byte with what this build would serve, so
//! a counsellor or an auditor can check that an operator serves the genuine
//! code (DESIGN §7). Pages are compared as rendered, in both languages.

use sha2::{Digest, Sha256};

use super::handlers::pages::Site;

/// The outcome for one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Same,
    /// Served, but different bytes: the SHA-256 of this build and of the site.
    Differs {
        expected: String,
        served: String,
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
        let check = match agent.get(&url).call() {
            Ok(mut response) if response.status() == 200 => {
                match response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_vec()
                {
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
                    },
                    Err(e) => Check::Missing(e.to_string()),
                }
            }
            Ok(response) => Check::Missing(format!("HTTP {}", response.status())),
            Err(e) => Check::Missing(e.to_string()),
        };
        results.push((path.to_string(), check));
    }
    Ok(results)
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
