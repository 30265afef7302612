//! The web pages and static files, embedded in the binary so one file
//! deploys. Pages are templates in `web/pages/` with `{{t.key}}` texts from
//! `web/i18n/<lang>.json`, rendered once at start for every language.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::server::AppState;
use crate::server::error::AppError;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
#[include = "css/*"]
#[include = "js/*"]
#[include = "vendor/*"]
#[include = "i18n/*"]
#[include = "pages/*"]
#[include = "img/*"]
struct Web;

pub const LANGUAGES: [&str; 2] = ["nl", "en"];

/// (template, Dutch path, English path)
const PAGES: [(&str, &str, &str); 17] = [
    ("index", "/", "/en"),
    ("report", "/melden", "/en/report"),
    ("thread", "/mijn-melding", "/en/my-report"),
    ("courier", "/koerier", "/en/courier"),
    ("privacy", "/privacy", "/en/privacy"),
    ("accessibility", "/toegankelijkheid", "/en/accessibility"),
    ("noscript", "/zonder-javascript", "/en/without-javascript"),
    // The route finder (wegwijzer): a question per page, each answer a plain
    // link, so it works without JavaScript and stores no answer anywhere.
    ("route", "/wegwijzer", "/en/route"),
    (
        "route-integrity",
        "/wegwijzer/integriteit",
        "/en/route/integrity",
    ),
    (
        "route-reprisals",
        "/wegwijzer/melden",
        "/en/route/reporting",
    ),
    ("route-sector", "/wegwijzer/toezicht", "/en/route/sector"),
    (
        "route-advice",
        "/wegwijzer/vraag-stellen",
        "/en/route/ask-a-question",
    ),
    (
        "route-here",
        "/wegwijzer/hier-melden",
        "/en/route/report-here",
    ),
    (
        "route-coordinator",
        "/wegwijzer/integriteitscoordinator",
        "/en/route/integrity-coordinator",
    ),
    (
        "route-hvk",
        "/wegwijzer/huis-voor-klokkenluiders",
        "/en/route/whistleblowers-authority",
    ),
    (
        "route-authority",
        "/wegwijzer/toezichthouder",
        "/en/route/supervisory-authority",
    ),
    ("route-raba", "/wegwijzer/raba", "/en/route/raba"),
];

/// The part of the privacy statement filled in per organisation when it is
/// served (its controller and data-protection officer); `verify-site`
/// compares everything outside it.
const ORGANISATION_START: &str = "<!--organisation-->";
const ORGANISATION_END: &str = "<!--/organisation-->";

/// Everything the server serves outside `/api`, by path.
pub struct Site {
    files: BTreeMap<String, (&'static str, Vec<u8>)>,
    /// Per language, the privacy statement's part for one organisation and
    /// the one for several, rendered; filled in when served.
    organisation_parts: BTreeMap<&'static str, (String, String)>,
}

/// A template that does not render: a missing text or an unknown placeholder.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("web/{file}: {problem}")]
    Template { file: String, problem: String },
}

fn messages(lang: &str) -> Result<BTreeMap<String, String>, SiteError> {
    let file = format!("i18n/{lang}.json");
    let bytes = Web::get(&file).ok_or_else(|| SiteError::Template {
        file: file.clone(),
        problem: "missing".into(),
    })?;
    serde_json::from_slice(&bytes.data).map_err(|e| SiteError::Template {
        file,
        problem: e.to_string(),
    })
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn href(page: &str, lang: &str) -> Option<&'static str> {
    PAGES
        .iter()
        .find(|(name, _, _)| *name == page)
        .map(|(_, nl, en)| if lang == "nl" { *nl } else { *en })
}

fn render(
    name: &str,
    template: &str,
    lang: &str,
    texts: &BTreeMap<String, String>,
) -> Result<String, SiteError> {
    render_at(name, template, lang, texts, 0)
}

/// Substitutes the placeholders of one template; `depth` 1 is inside a
/// partial (`{{include.header}}` reads `pages/_header.html`).
fn render_at(
    name: &str,
    template: &str,
    lang: &str,
    texts: &BTreeMap<String, String>,
    depth: usize,
) -> Result<String, SiteError> {
    let error = |problem: String| SiteError::Template {
        file: format!("pages/{name}.html"),
        problem,
    };
    let other = if lang == "nl" { "en" } else { "nl" };
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| error("an unclosed {{".into()))?;
        let key = rest[start + 2..start + end].trim();
        let value = if let Some(partial) = key.strip_prefix("include.") {
            if depth > 0 {
                return Err(error(format!("{key:?}: a partial cannot include another")));
            }
            let file = format!("pages/_{partial}.html");
            let body = Web::get(&file).ok_or_else(|| error(format!("no partial {file}")))?;
            let body = String::from_utf8_lossy(&body.data).into_owned();
            render_at(name, body.trim_end(), lang, texts, depth + 1)?
        } else if let Some(page) = key.strip_prefix("current.") {
            href(page, lang).ok_or_else(|| error(format!("unknown page {page:?}")))?;
            if page == name {
                " aria-current=\"page\"".to_string()
            } else {
                String::new()
            }
        } else if key == "lang" {
            lang.to_string()
        } else if key == "other_lang_href" {
            href(name, other)
                .expect("every page has both languages")
                .to_string()
        } else if let Some(page) = key.strip_prefix("href.") {
            href(page, lang)
                .ok_or_else(|| error(format!("unknown page {page:?}")))?
                .to_string()
        } else if let Some(text) = key.strip_prefix("t.") {
            escape_html(
                texts
                    .get(text)
                    .ok_or_else(|| error(format!("no text {text:?} in i18n/{lang}.json")))?,
            )
        } else {
            return Err(error(format!("unknown placeholder {key:?}")));
        };
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `sha384-…` of a file, as Subresource Integrity wants it.
fn subresource_integrity(body: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha384::digest(body);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Adds Subresource Integrity to every script and stylesheet a page loads,
/// and a `modulepreload` with integrity for every module, so the modules a
/// script imports are checked too (a plain `import` carries no integrity).
fn with_integrity(html: &str, integrity: &BTreeMap<String, String>) -> String {
    let mut out = html.to_string();
    for (path, hash) in integrity {
        for (before, after) in [
            (
                format!("<script type=\"module\" src=\"{path}\">"),
                format!("<script type=\"module\" src=\"{path}\" integrity=\"{hash}\">"),
            ),
            (
                format!("<link rel=\"stylesheet\" href=\"{path}\">"),
                format!("<link rel=\"stylesheet\" href=\"{path}\" integrity=\"{hash}\">"),
            ),
        ] {
            out = out.replace(&before, &after);
        }
    }
    if out.contains("<script type=\"module\"") {
        let preloads: String = integrity
            .iter()
            .filter(|(path, _)| path.ends_with(".js"))
            .map(|(path, hash)| {
                format!("  <link rel=\"modulepreload\" href=\"{path}\" integrity=\"{hash}\">\n")
            })
            .collect();
        out = out.replacen("</head>", &format!("{preloads}</head>"), 1);
    }
    out
}

/// Names the integrity of the page's message table in a `<meta>`, so the
/// scripts fetch `/i18n/<lang>.json` with it (a `fetch` carries no integrity
/// of its own, and a swapped table could tell the melder anything).
fn with_messages_integrity(html: &str, hash: &str) -> String {
    if !html.contains("<script type=\"module\"") {
        return html.to_string();
    }
    html.replacen(
        "</head>",
        &format!("  <meta name=\"i18n-integrity\" content=\"{hash}\">\n</head>"),
        1,
    )
}

impl Site {
    /// Renders every page in every language and indexes the static files.
    pub fn build() -> Result<Self, SiteError> {
        let mut files = BTreeMap::new();
        let mut organisation_parts = BTreeMap::new();
        for file in Web::iter() {
            if file.starts_with("pages/") {
                continue;
            }
            let data = Web::get(&file)
                .expect("listed files exist")
                .data
                .into_owned();
            files.insert(format!("/{file}"), (content_type(&file), data));
        }
        let integrity: BTreeMap<String, String> = files
            .iter()
            .map(|(path, (_, body))| (path.clone(), subresource_integrity(body)))
            .collect();
        for lang in LANGUAGES {
            let texts = messages(lang)?;
            for (name, nl, en) in PAGES {
                let file = format!("pages/{name}.html");
                let template = Web::get(&file).ok_or_else(|| SiteError::Template {
                    file: file.clone(),
                    problem: "missing".into(),
                })?;
                let template = String::from_utf8_lossy(&template.data).into_owned();
                let html = with_integrity(&render(name, &template, lang, &texts)?, &integrity);
                let html =
                    with_messages_integrity(&html, &integrity[&format!("/i18n/{lang}.json")]);
                let path = if lang == "nl" { nl } else { en };
                files.insert(
                    path.to_string(),
                    ("text/html; charset=utf-8", html.into_bytes()),
                );
            }
            let partial = |name: &str| -> Result<String, SiteError> {
                let file = format!("pages/_{name}.html");
                let body = Web::get(&file).ok_or_else(|| SiteError::Template {
                    file: file.clone(),
                    problem: "missing".into(),
                })?;
                render_at(
                    "privacy",
                    String::from_utf8_lossy(&body.data).trim_end(),
                    lang,
                    &texts,
                    1,
                )
            };
            organisation_parts.insert(lang, (partial("organisation")?, partial("organisations")?));
        }
        Ok(Site {
            files,
            organisation_parts,
        })
    }

    /// Every served path with its bytes (for tests and site verification).
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .map(|(path, (_, body))| (path.as_str(), body.as_slice()))
    }
}

/// `body` without the per-organisation part of the privacy statement (the
/// markers stay), so `verify-site` compares the rest byte for byte.
pub fn without_organisation_part(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    match (text.find(ORGANISATION_START), text.find(ORGANISATION_END)) {
        (Some(start), Some(end)) if start < end => {
            let mut out = text[..start + ORGANISATION_START.len()].to_string();
            out.push_str(&text[end..]);
            out.into_bytes()
        }
        _ => body.to_vec(),
    }
}

/// Replaces the content of the element marked `data-slot="{slot}"` (up to
/// its closing tag) with `inner`, which must already be escaped.
fn fill_slot(html: &str, slot: &str, inner: &str) -> String {
    let marker = format!("data-slot=\"{slot}\">");
    let Some(at) = html.find(&marker) else {
        return html.to_string();
    };
    let from = at + marker.len();
    let to = html[from..].find("</").map_or(from, |n| from + n);
    format!("{}{inner}{}", &html[..from], &html[to..])
}

/// The privacy statement's per-organisation part: the controller and the
/// data-protection officer of `org` (`pages/_organisation.html`), or, with
/// no organisation known (the root page of a server for several), links to
/// each one's statement (`pages/_organisations.html`). Everything
/// configured is escaped text.
fn organisation_part(state: &AppState, lang: &str, org: Option<&str>) -> String {
    let names = super::v1::counsellors::organisations(state);
    let org =
        org.or_else(|| (names.len() == 1).then(|| names.keys().next().map(String::as_str))?);
    let parts = &state.site.organisation_parts[lang];
    let Some(org) = org else {
        let privacy = href("privacy", lang).unwrap_or("/privacy");
        let links: String = names
            .iter()
            .map(|(id, name)| {
                format!(
                    "<li><a href=\"/o/{id}{privacy}\">{}</a></li>",
                    escape_html(name)
                )
            })
            .collect();
        return fill_slot(&parts.1, "list", &links);
    };
    let settings = state.organisations.get(org).cloned().unwrap_or_default();
    let name = names.get(org).cloned().unwrap_or_else(|| org.to_string());
    let mut html = parts.0.replace("{name}", &escape_html(&name));
    for (slot, value) in [("controller", settings.controller), ("dpo", settings.dpo)] {
        if let Some(value) = value {
            html = fill_slot(&html, slot, &escape_html(&value));
        }
    }
    html
}

/// `/.well-known/security.txt` (RFC 9116), when a contact is configured. It
/// expires a year from today, so a served file is never stale.
pub async fn security_txt(State(state): State<AppState>) -> Response {
    let Some(contact) = &state.security_contact else {
        return AppError::NotFound.into_response();
    };
    let expires =
        crate::format::day::Day(crate::format::day::Day::today().0 + time::Duration::days(365));
    let body = format!(
        "Contact: {contact}\nExpires: {expires}T00:00:00.000Z\nPreferred-Languages: nl, en\n"
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Serves a page or static file; anything else is a 404.
pub async fn serve(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if path.starts_with("/api/") || path == "/api" {
        return AppError::NotFound.into_response();
    }
    // `/o/<org>/…` serves the same pages for one organisation, with every
    // site-relative link kept under that prefix; the page scripts read the
    // organisation from the path.
    let (path, prefix) = match path.strip_prefix("/o/") {
        Some(rest) => {
            let (org, page) = rest.split_once('/').map_or((rest, "/"), |(o, p)| (o, p));
            if !super::v1::counsellors::organisations(&state).contains_key(org) {
                return AppError::NotFound.into_response();
            }
            let page = if page.starts_with('/') {
                page.to_string()
            } else {
                format!("/{page}")
            };
            (page, Some(format!("/o/{org}/")))
        }
        None => (path.to_string(), None),
    };
    let Some((content_type, body)) = state.site.files.get(&path) else {
        return AppError::NotFound.into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        return AppError::MethodNotAllowed.into_response();
    }
    let privacy = PAGES
        .iter()
        .find(|(name, nl, en)| *name == "privacy" && (path == *nl || path == *en))
        .map(|(_, nl, _)| if path == *nl { "nl" } else { "en" });
    let org = prefix
        .as_deref()
        .and_then(|p| p.strip_prefix("/o/"))
        .map(|p| p.trim_end_matches('/'));
    let filled;
    let body = match privacy {
        Some(lang) => {
            let text = String::from_utf8_lossy(body);
            filled = match (text.find(ORGANISATION_START), text.find(ORGANISATION_END)) {
                (Some(start), Some(end)) if start < end => format!(
                    "{}{}{}",
                    &text[..start + ORGANISATION_START.len()],
                    organisation_part(&state, lang, org),
                    &text[end..]
                )
                .into_bytes(),
                _ => body.clone(),
            };
            &filled
        }
        None => body,
    };
    let body = match prefix {
        Some(prefix) if content_type.starts_with("text/html") => String::from_utf8_lossy(body)
            .replace("=\"/", &format!("=\"{prefix}"))
            // security.txt lives at the root only (RFC 9116).
            .replace(&format!("=\"{prefix}.well-known/"), "=\"/.well-known/")
            .into_bytes(),
        _ => body.clone(),
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_in_every_language() {
        let site = Site::build().unwrap();
        for (_, nl, en) in PAGES {
            for path in [nl, en] {
                let (_, body) = &site.files[path];
                let html = String::from_utf8_lossy(body);
                assert!(!html.contains("{{"), "{path} has an unrendered placeholder");
            }
        }
        assert!(site.files.contains_key("/vendor/age.js"));
    }

    #[test]
    fn scripts_and_styles_carry_their_integrity() {
        let site = Site::build().unwrap();
        let html = String::from_utf8_lossy(&site.files["/melden"].1).into_owned();
        let script = &site.files["/js/report.js"].1;
        assert!(html.contains(&format!(
            "src=\"/js/report.js\" integrity=\"{}\"",
            subresource_integrity(script)
        )));
        assert!(html.contains(&format!(
            "<link rel=\"modulepreload\" href=\"/vendor/age.js\" integrity=\"{}\">",
            subresource_integrity(&site.files["/vendor/age.js"].1)
        )));
        assert!(
            html.contains("<link rel=\"stylesheet\" href=\"/css/site.css\" integrity=\"sha384-")
        );
        assert!(
            !html.contains("src=\"/js/report.js\">"),
            "a script without integrity"
        );
        assert!(html.contains(&format!(
            "<meta name=\"i18n-integrity\" content=\"{}\">",
            subresource_integrity(&site.files["/i18n/nl.json"].1)
        )));
    }

    #[test]
    fn verify_site_skips_only_the_organisation_part() {
        let site = Site::build().unwrap();
        let built = &site.files["/privacy"].1;
        let text = String::from_utf8_lossy(built);
        assert!(text.contains(ORGANISATION_START) && text.contains(ORGANISATION_END));
        let filled = text.replacen(
            &format!("{ORGANISATION_START}<p>"),
            &format!("{ORGANISATION_START}<dl><dd>Minister</dd></dl><p>"),
            1,
        );
        assert_ne!(filled.as_bytes(), built.as_slice());
        assert_eq!(
            without_organisation_part(filled.as_bytes()),
            without_organisation_part(built)
        );
        let changed_outside = filled.replacen("<h2", "<h2 data-x", 1);
        assert_ne!(
            without_organisation_part(changed_outside.as_bytes()),
            without_organisation_part(built)
        );
        // Markers out of order or missing leave the bytes as they are.
        assert_eq!(
            without_organisation_part(b"a<!--/organisation-->b<!--organisation-->c"),
            b"a<!--/organisation-->b<!--organisation-->c".to_vec()
        );
    }

    #[test]
    fn slots_are_filled_with_escaped_text_only() {
        let html = "<dd data-slot=\"controller\">unset</dd><dd data-slot=\"dpo\">unset</dd>";
        let filled = fill_slot(html, "controller", &escape_html("<script>x</script>"));
        assert_eq!(
            filled,
            "<dd data-slot=\"controller\">&lt;script&gt;x&lt;/script&gt;</dd><dd data-slot=\"dpo\">unset</dd>"
        );
        assert_eq!(fill_slot(html, "nope", "x"), html);
    }

    #[test]
    fn message_files_have_the_same_keys() {
        let nl: Vec<String> = messages("nl").unwrap().into_keys().collect();
        let en: Vec<String> = messages("en").unwrap().into_keys().collect();
        assert_eq!(nl, en);
    }

    #[test]
    fn templates_refuse_unknown_keys() {
        let texts = BTreeMap::from([("a".to_string(), "<b>".to_string())]);
        assert_eq!(
            render("index", "{{t.a}}", "nl", &texts).unwrap(),
            "&lt;b&gt;"
        );
        assert!(render("index", "{{t.b}}", "nl", &texts).is_err());
        assert!(render("index", "{{evil}}", "nl", &texts).is_err());
        assert!(render("index", "{{t.a", "nl", &texts).is_err());
        assert_eq!(
            render("report", "<a{{current.report}}>", "nl", &texts).unwrap(),
            "<a aria-current=\"page\">"
        );
        assert_eq!(
            render("index", "<a{{current.report}}>", "nl", &texts).unwrap(),
            "<a>"
        );
        assert!(render("index", "{{include.nope}}", "nl", &texts).is_err());
    }
}
