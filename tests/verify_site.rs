//! `meldkluis verify-site` against a real server: the genuine site passes;
//! a site whose operator changed one byte of one script fails, naming it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use common::{Server, make_vault};

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
                let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                server
                    .write_all(
                        format!(
                            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .unwrap();
                let mut response = Vec::new();
                server.read_to_end(&mut response).unwrap();
                if path == "/js/report.js" {
                    let body_start =
                        response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let at = body_start + (response.len() - body_start) / 2;
                    response[at] ^= 0x01;
                }
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
