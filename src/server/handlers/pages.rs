//! The web pages and static files, embedded in the binary so one file
//! deploys. Pages are templates in `web/pages/` with `{{t.key}}` texts from
//! `web/i18n/<lang>.json`, rendered once at start for every language.
//! Text files are served compressed in the coding the browser accepts
//! (brotli or gzip), each made once, on first use, and kept in memory; the
//! hashes a page names (Subresource Integrity) and `verify-site` are of the
//! decoded bytes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
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
    files: BTreeMap<String, Served>,
    /// Whether to answer in a compressed coding at all (not in the
    /// benchmark's baseline).
    compress: bool,
    /// Per language, the privacy statement's part for one organisation and
    /// the one for several, rendered; filled in when served.
    organisation_parts: BTreeMap<&'static str, (String, String)>,
}

/// One file as served: its bytes and, for text, the same bytes compressed,
/// each coding made on first use (`None` where it would not be smaller).
struct Served {
    content_type: &'static str,
    body: Vec<u8>,
    gzip: std::sync::OnceLock<Option<Vec<u8>>>,
    brotli: std::sync::OnceLock<Option<Vec<u8>>>,
}

impl Served {
    fn cell(&self, encoding: Encoding) -> Option<&std::sync::OnceLock<Option<Vec<u8>>>> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(&self.gzip),
            Encoding::Brotli => Some(&self.brotli),
        }
    }

    /// Whether `coded(encoding)` would answer without compressing.
    fn is_ready(&self, encoding: Encoding) -> bool {
        self.cell(encoding).is_none_or(|cell| cell.get().is_some())
    }

    /// The file in `encoding`, compressed the first time it is asked for
    /// (a second caller meanwhile waits for the first); `None` for identity
    /// and where the coding is not smaller.
    fn coded(&self, encoding: Encoding) -> Option<&[u8]> {
        self.cell(encoding)?
            .get_or_init(|| {
                let coded = encoding.encode(&self.body, true);
                (coded.len() < self.body.len()).then_some(coded)
            })
            .as_deref()
    }
}

/// A content coding the server can answer in (RFC 9110 §8.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` value; `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }

    /// The best coding an `Accept-Encoding` header allows: the highest
    /// q-value among brotli and gzip (brotli on a tie, it is smaller), else
    /// identity. `q=0` refuses a coding; `*` stands for any coding not named.
    pub fn negotiate(accept: Option<&str>) -> Encoding {
        let Some(accept) = accept else {
            return Encoding::Identity;
        };
        let (mut brotli, mut gzip, mut any) = (None, None, None);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for parameter in parts {
                if let Some((key, value)) = parameter.split_once('=')
                    && key.trim().eq_ignore_ascii_case("q")
                {
                    // An unreadable weight refuses the coding rather than guess.
                    q = value.trim().parse().unwrap_or(0.0);
                }
            }
            match name.as_str() {
                "br" => brotli = Some(q),
                "gzip" | "x-gzip" => gzip = Some(q),
                "*" => any = Some(q),
                _ => {}
            }
        }
        let brotli = brotli.or(any).unwrap_or(0.0);
        let gzip = gzip.or(any).unwrap_or(0.0);
        if brotli > 0.0 && brotli >= gzip {
            Encoding::Brotli
        } else if gzip > 0.0 {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }

    /// `body` in this coding. `best` spends the time for the smallest
    /// result (once per file at start); otherwise it is quick enough to do
    /// per request (a page under an organisation's prefix).
    pub fn encode(self, body: &[u8], best: bool) -> Vec<u8> {
        use std::io::Write;
        match self {
            Encoding::Identity => body.to_vec(),
            Encoding::Gzip => {
                let level = if best {
                    flate2::Compression::best()
                } else {
                    flate2::Compression::default()
                };
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
                encoder.write_all(body).expect("writing to memory");
                encoder.finish().expect("writing to memory")
            }
            Encoding::Brotli => {
                // 9, not 11: level 11 takes about ten times as long for
                // 4 % fewer bytes on age.js (59.4 KB against about 57 KB),
                // paid on the first visit after every start.
                let params = brotli::enc::BrotliEncoderParams {
                    quality: if best { 9 } else { 5 },
                    lgwin: 22,
                    ..Default::default()
                };
                let mut out = Vec::new();
                brotli::BrotliCompress(&mut &body[..], &mut out, &params)
                    .expect("writing to memory");
                out
            }
        }
    }

    /// Decodes what a server sent in this coding (verify-site, tests), at
    /// most `limit` bytes.
    pub fn decode(self, body: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        match self {
            Encoding::Identity => out.extend_from_slice(body),
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(body)
                    .take(limit + 1)
                    .read_to_end(&mut out)?;
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(body, 4096)
                    .take(limit + 1)
                    .read_to_end(&mut out)?;
            }
        }
        if out.len() as u64 > limit {
            return Err(std::io::Error::other("decodes to more than the limit"));
        }
        Ok(out)
    }
}

/// Text worth compressing; images that are compressed already are not.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg+xml")
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

pub(crate) fn escape_html(text: &str) -> String {
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

/// The modules a module imports statically (`import … from "./x.js"`,
/// `import "./x.js"`), as site paths. Only relative specifiers count: the
/// site's modules import nothing else.
fn static_imports(path: &str, source: &str) -> Vec<String> {
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let mut found = Vec::new();
    for keyword in ["from \"", "import \""] {
        let mut rest = source;
        while let Some(at) = rest.find(keyword) {
            rest = &rest[at + keyword.len()..];
            let Some(end) = rest.find('"') else { break };
            let specifier = &rest[..end];
            if specifier.starts_with("./") || specifier.starts_with("../") {
                found.push(resolve(dir, specifier));
            }
        }
    }
    found
}

/// `dir` (ending in `/`) joined with a relative specifier.
fn resolve(dir: &str, specifier: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in specifier.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Every module a page's entry modules load, directly or through imports.
fn module_graph(entries: &[String], sources: &BTreeMap<String, String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = entries.to_vec();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if let Some(source) = sources.get(&path) {
            todo.extend(static_imports(&path, source));
        }
    }
    seen.into_iter().collect()
}

/// Which modules a page preloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Preload {
    /// Those its scripts import, directly or not.
    Used,
    /// Every module of the site (the behaviour before issue 15, kept as the
    /// benchmark's baseline).
    All,
}

/// Adds Subresource Integrity to every script and stylesheet a page loads,
/// and a `modulepreload` with integrity for every module it imports, so
/// the imported modules are checked too (a plain `import` carries no
/// integrity) and fetched at once rather than one import level per round
/// trip.
fn with_integrity(
    html: &str,
    integrity: &BTreeMap<String, String>,
    sources: &BTreeMap<String, String>,
    preload: Preload,
) -> String {
    let entries: Vec<String> = integrity
        .keys()
        .filter(|path| html.contains(&format!("<script type=\"module\" src=\"{path}\">")))
        .cloned()
        .collect();
    let used = module_graph(&entries, sources);
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
            .filter(|(path, _)| preload == Preload::All || used.contains(path))
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
    /// Renders every page in every language and indexes the static files,
    /// uncompressed (what `verify-site` and the manifest compare).
    pub fn build() -> Result<Self, SiteError> {
        Self::render_all(Preload::Used)
    }

    /// The site as served: every text file also offered compressed.
    ///
    /// When the compressed forms are made: once per file and coding, on the
    /// first request that asks for it, then kept in memory — not in a build
    /// script, and not all at start. The pages only exist after rendering
    /// (templates × languages × integrity hashes), which happens here at
    /// start, so a build script could only have compressed the scripts, and
    /// would have put generated copies beside the readable bundle that can
    /// drift from it; compressing here keeps one source of truth and
    /// compresses the very bytes that are hashed. Not all at start: that
    /// cost every start (tests start a server dozens of times, most never
    /// ask for a page) a second or more of brotli; on first use a file is
    /// compressed once (age.js: tens of milliseconds in a release build)
    /// and a file nobody asks for never is.
    pub fn build_served() -> Result<Self, SiteError> {
        Ok(Site {
            compress: true,
            ..Self::build()?
        })
    }

    /// The site as served before issue 15 (no compression, every module
    /// preloaded on every page with a script): the benchmark's baseline,
    /// chosen with `MELDKLUIS_BENCH_BASELINE=1` (benches/tor.mjs).
    pub fn build_baseline() -> Result<Self, SiteError> {
        Self::render_all(Preload::All)
    }

    fn render_all(preload: Preload) -> Result<Self, SiteError> {
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
        let sources: BTreeMap<String, String> = files
            .iter()
            .filter(|(path, _)| path.ends_with(".js"))
            .map(|(path, (_, body))| (path.clone(), String::from_utf8_lossy(body).into_owned()))
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
                let html = with_integrity(
                    &render(name, &template, lang, &texts)?,
                    &integrity,
                    &sources,
                    preload,
                );
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
        let files = files
            .into_iter()
            .map(|(path, (content_type, body))| {
                let served = Served {
                    content_type,
                    body,
                    gzip: Default::default(),
                    brotli: Default::default(),
                };
                (path, served)
            })
            .collect();
        Ok(Site {
            files,
            compress: false,
            organisation_parts,
        })
    }

    /// Every file as served under organisation `org`'s prefix: its path
    /// there (`/o/<org>/…`) and its bytes, a page's links under the prefix
    /// (`verify-site` checks every page of every organisation).
    pub fn files_under<'a>(&'a self, org: &'a str) -> impl Iterator<Item = (String, Vec<u8>)> + 'a {
        let prefix = format!("/o/{org}/");
        self.files.iter().map(move |(path, served)| {
            let body = if served.content_type.starts_with("text/html") {
                under_prefix(&served.body, &prefix)
            } else {
                served.body.clone()
            };
            (format!("/o/{org}{path}"), body)
        })
    }

    /// Every served path with its bytes (for tests and site verification).
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .map(|(path, served)| (path.as_str(), served.body.as_slice()))
    }
}

/// A page as served under an organisation's prefix (`/o/<org>/`): every
/// site-relative link kept under that prefix.
pub fn under_prefix(page: &[u8], prefix: &str) -> Vec<u8> {
    String::from_utf8_lossy(page)
        .replace("=\"/", &format!("=\"{prefix}"))
        // security.txt lives at the root only (RFC 9116).
        .replace(&format!("=\"{prefix}.well-known/"), "=\"/.well-known/")
        .into_bytes()
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
pub async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
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
    let Some(served) = state.site.files.get(&path) else {
        return AppError::NotFound.into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        return AppError::MethodNotAllowed.into_response();
    }
    let content_type = served.content_type;
    let wanted = if state.site.compress && compressible(content_type) {
        Encoding::negotiate(
            headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        )
    } else {
        Encoding::Identity
    };
    let privacy = PAGES
        .iter()
        .find(|(name, nl, en)| *name == "privacy" && (path == *nl || path == *en))
        .map(|(_, nl, _)| if path == *nl { "nl" } else { "en" });
    let org = prefix
        .as_deref()
        .and_then(|p| p.strip_prefix("/o/"))
        .map(|p| p.trim_end_matches('/'));
    // The privacy statement names the organisation's controller and DPO,
    // filled in now: like every page under a prefix it differs per
    // organisation, so it is compressed per request, quickly.
    let filled = privacy.map(|lang| {
        let text = String::from_utf8_lossy(&served.body);
        match (text.find(ORGANISATION_START), text.find(ORGANISATION_END)) {
            (Some(start), Some(end)) if start < end => format!(
                "{}{}{}",
                &text[..start + ORGANISATION_START.len()],
                organisation_part(&state, lang, org),
                &text[end..]
            )
            .into_bytes(),
            _ => served.body.clone(),
        }
    });
    let html_prefix = prefix.filter(|_| content_type.starts_with("text/html"));
    let (encoding, body) = match (html_prefix, filled) {
        (None, None) => {
            if !served.is_ready(wanted) {
                // The first ask compresses (milliseconds to a second): off
                // the async workers.
                let (state, path) = (state.clone(), path.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    state.site.files[&path].coded(wanted);
                })
                .await;
            }
            match served.coded(wanted) {
                Some(coded) => (wanted, coded.to_vec()),
                None => (Encoding::Identity, served.body.clone()),
            }
        }
        (html_prefix, filled) => {
            let mut page = filled.unwrap_or_else(|| served.body.clone());
            if let Some(prefix) = html_prefix {
                page = under_prefix(&page, &prefix);
            }
            (wanted, wanted.encode(&page, false))
        }
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    if compressible(content_type) {
        // Caches (none should keep these: no-store) and anything in between
        // must not hand one coding to a browser that asked for another.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(coding) = encoding.header() {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_in_every_language() {
        let site = Site::build().unwrap();
        for (_, nl, en) in PAGES {
            for path in [nl, en] {
                let body = &site.files[path].body;
                let html = String::from_utf8_lossy(body);
                assert!(!html.contains("{{"), "{path} has an unrendered placeholder");
            }
        }
        assert!(site.files.contains_key("/vendor/age.js"));
    }

    #[test]
    fn scripts_and_styles_carry_their_integrity() {
        let site = Site::build().unwrap();
        let html = String::from_utf8_lossy(&site.files["/melden"].body).into_owned();
        let script = &site.files["/js/report.js"].body;
        assert!(html.contains(&format!(
            "src=\"/js/report.js\" integrity=\"{}\"",
            subresource_integrity(script)
        )));
        assert!(html.contains(&format!(
            "<link rel=\"modulepreload\" href=\"/vendor/age.js\" integrity=\"{}\">",
            subresource_integrity(&site.files["/vendor/age.js"].body)
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
            subresource_integrity(&site.files["/i18n/nl.json"].body)
        )));
    }

    #[test]
    fn pages_preload_only_the_modules_they_use() {
        let site = Site::build().unwrap();
        let page = |path: &str| String::from_utf8_lossy(&site.files[path].body).into_owned();
        let preloads = |html: &str| -> Vec<String> {
            html.split("<link rel=\"modulepreload\" href=\"")
                .skip(1)
                .map(|rest| rest[..rest.find('"').unwrap()].to_string())
                .collect()
        };
        let report = preloads(&page("/melden"));
        for module in [
            "/js/report.js",
            "/js/protocol.js",
            "/vendor/age.js",
            "/js/upload.js",
            "/js/pow.js",
            "/js/fingerprint.js",
        ] {
            assert!(
                report.contains(&module.to_string()),
                "{module} in {report:?}"
            );
        }
        assert!(
            !report.contains(&"/js/courier.js".to_string()),
            "{report:?}"
        );
        assert!(!report.contains(&"/js/thread.js".to_string()), "{report:?}");
        let courier = preloads(&page("/koerier"));
        assert!(
            !courier.contains(&"/vendor/age.js".to_string()),
            "{courier:?}"
        );
        assert!(courier.contains(&"/js/api.js".to_string()), "{courier:?}");
        assert!(preloads(&page("/")).is_empty());
        // Every preload carries its integrity.
        assert_eq!(
            page("/melden")
                .matches("rel=\"modulepreload\" href=")
                .count(),
            page("/melden")
                .matches("rel=\"modulepreload\" href=\"/")
                .count()
        );
        let baseline = Site::build_baseline().unwrap();
        let all = preloads(&String::from_utf8_lossy(&baseline.files["/koerier"].body));
        assert!(all.contains(&"/vendor/age.js".to_string()));
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        use Encoding::*;
        for (header, expected) in [
            (None, Identity),
            (Some(""), Identity),
            (Some("gzip, deflate, br, zstd"), Brotli),
            (Some("gzip"), Gzip),
            (Some("GZIP;Q=0.5"), Gzip),
            (Some("br;q=0, gzip"), Gzip),
            (Some("br;q=0.2, gzip;q=0.8"), Gzip),
            (Some("gzip;q=0, br;q=0"), Identity),
            (Some("*"), Brotli),
            (Some("*;q=0"), Identity),
            (Some("gzip;q=nonsense"), Identity),
            (Some("identity"), Identity),
            (Some(";;;,,,=q"), Identity),
        ] {
            assert_eq!(Encoding::negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn compressed_files_decode_to_the_hashed_bytes() {
        let site = Site::build_served().unwrap();
        let age = &site.files["/vendor/age.js"];
        assert!(!age.is_ready(Encoding::Brotli), "made on first use");
        for encoding in [Encoding::Brotli, Encoding::Gzip] {
            let coded = age.coded(encoding).unwrap();
            assert!(
                coded.len() < age.body.len() / 3,
                "{encoding:?}: {}",
                coded.len()
            );
            let decoded = encoding.decode(coded, 1 << 20).unwrap();
            assert_eq!(
                subresource_integrity(&decoded),
                subresource_integrity(&age.body)
            );
        }
        // Every text file larger than a kilobyte has both.
        for (path, served) in &site.files {
            if compressible(served.content_type) && served.body.len() > 1000 {
                assert!(served.coded(Encoding::Brotli).is_some(), "{path}");
                assert!(served.coded(Encoding::Gzip).is_some(), "{path}");
            }
        }
        // A decoder refuses more than its limit (a bomb in verify-site).
        let bomb = Encoding::Gzip.encode(&vec![0u8; 1 << 20], false);
        assert!(Encoding::Gzip.decode(&bomb, 1000).is_err());
        assert!(Encoding::Brotli.decode(b"not brotli at all", 1000).is_err());
    }

    #[test]
    fn verify_site_skips_only_the_organisation_part() {
        let site = Site::build().unwrap();
        let built = &site.files["/privacy"].body;
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
