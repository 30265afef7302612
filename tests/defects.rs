//! The defects an outside test found (issue 14), each reproduced against a
//! real server on 127.0.0.1 as the outside test did it, and each refused
//! (or survived) as docs/api.md says.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Melder, Server, make_vault, seal_attachment};
use serde_json::json;

fn server() -> (Server, meldkluis::review::Vault, tempfile::TempDir) {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    (server, vault, vault_dir)
}

/// Every answer, ours or the HTTP library's, carries the security headers.
fn assert_security_headers(answer: &common::Response, what: &str) {
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "cache-control",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
        "cross-origin-embedder-policy",
        "x-frame-options",
    ] {
        assert!(answer.header(name).is_some(), "{what}: no {name}");
    }
}

#[test]
fn cross_origin_embedder_policy_is_sent() {
    let (server, _vault, _v) = server();
    for path in ["/", "/melden", "/api/v1/counsellors", "/nope"] {
        let answer = server.get(path);
        assert_eq!(
            answer.header("cross-origin-embedder-policy"),
            Some("require-corp"),
            "{path}"
        );
    }
}

#[test]
fn a_header_over_64_kib_is_refused() {
    let (server, _vault, _v) = server();
    let big = "a".repeat(100_000);
    let answer = server.request_with("GET", "/api/v1/counsellors", &[("X-Big", &big)], b"");
    assert_eq!(answer.status, 431, "a 100 KB header");
    assert_security_headers(&answer, "431");
    // Many small headers adding up to more are refused the same way.
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-H{i}"), "b".repeat(2000)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        server
            .request_with("GET", "/api/v1/counsellors", &many, b"")
            .status,
        431
    );
    // Below the limit is fine.
    let fine = "a".repeat(30_000);
    assert_eq!(
        server
            .request_with("GET", "/api/v1/counsellors", &[("X-Fine", &fine)], b"")
            .status,
        200
    );
}

#[test]
fn http_1_0_is_refused() {
    let (server, _vault, _v) = server();
    let answer = server.raw(b"GET /api/v1/counsellors HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 505);
    assert_eq!(answer.error(), "http_version");
    assert_security_headers(&answer, "505");
    let answer = server.raw(
        b"POST /api/v1/uploads HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 15\r\n\r\n{\"length\": 100}",
    );
    assert_eq!(answer.status, 505, "and changes nothing");
    assert_eq!(server.upload_files(), Vec::<String>::new());
}

#[test]
fn the_http_librarys_own_refusals_carry_the_security_headers() {
    let (server, _vault, _v) = server();
    for (what, request) in [
        ("a broken request line", b"GARBAGE\r\n\r\n".to_vec()),
        (
            "a header without a colon",
            b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n".to_vec(),
        ),
        (
            "two content lengths",
            b"POST /api/v1/thread HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
        ),
    ] {
        let answer = server.raw(&request);
        assert_eq!(answer.status, 400, "{what}");
        assert_security_headers(&answer, what);
    }
}

#[test]
fn a_repeated_org_gets_our_json_error() {
    let (server, _vault, _v) = server();
    let answer = server.get("/api/v1/counsellors?org=a&org=b");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error(), "bad_query");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let answer = server.get("/api/v1/counsellors?org=%ZZ");
    assert_eq!(answer.error(), "bad_query");
}

#[test]
fn two_upload_offset_headers_are_refused() {
    let (server, vault, _v) = server();
    let (file, _) = seal_attachment(&[7u8; 5000], &[vault.recipient()]);
    let id = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    let ct = ("Content-Type", "application/octet-stream");
    let answer = server.request_with(
        "POST",
        "/api/v1/uploads/chunk",
        &[
            ct,
            ("Upload-Id", &id),
            ("Upload-Offset", "0"),
            ("Upload-Offset", "100"),
        ],
        &file[..100],
    );
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (400, "bad_upload")
    );
    let answer = server.request_with(
        "POST",
        "/api/v1/uploads/chunk",
        &[
            ct,
            ("Upload-Id", &id),
            ("Upload-Id", &id),
            ("Upload-Offset", "0"),
        ],
        &file[..100],
    );
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (400, "bad_upload")
    );
    assert_eq!(
        server
            .post_json("/api/v1/uploads/status", &json!({ "upload": id }))
            .json()["received"],
        0
    );
}

#[test]
fn a_chunk_refused_with_400_keeps_none_of_its_bytes() {
    let (server, vault, _v) = server();
    let (file, _) = seal_attachment(&vec![7u8; 3 << 20], &[vault.recipient()]);
    let id = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    let mut longer = file.clone();
    longer.extend([0u8; 1000]);
    // Past the declared length, megabytes in: the first megabytes were
    // already stored when the refusal came.
    let answer = server.send_chunk(&id, 0, &longer[..file.len() + 1]);
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (400, "bad_upload")
    );
    let status = server.post_json("/api/v1/uploads/status", &json!({ "upload": id }));
    assert_eq!(status.json()["received"], 0);
    assert_eq!(server.stored_upload(&id), Vec::<u8>::new());
    // And the whole file then goes through.
    assert_eq!(server.send_chunk(&id, 0, &file).json()["complete"], true);
    assert_eq!(server.stored_upload(&id), file);
}

/// Sends a chunk's head and part of its body, runs `meanwhile`, sends the
/// rest and returns the answer.
fn chunk_interrupted(
    server: &Server,
    id: &str,
    offset: usize,
    bytes: &[u8],
    meanwhile: impl FnOnce(),
) -> common::Response {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/v1/uploads/chunk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nUpload-Id: {id}\r\n\
         Upload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    meanwhile();
    std::thread::sleep(Duration::from_millis(100));
    let _ = stream.write_all(&bytes[bytes.len() / 2..]);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    common::Response {
        status,
        headers: vec![],
        body: body.into_bytes(),
    }
}

#[test]
fn cancelling_while_a_chunk_arrives_answers_unknown_upload_never_500_or_200() {
    let (server, vault, _v) = server();
    let (file, _) = seal_attachment(&vec![3u8; 200_000], &[vault.recipient()]);
    let new_upload = || {
        server.create_upload(file.len()).json()["upload"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cancel = |id: &str| {
        let answer = server.post_json("/api/v1/uploads/cancel", &json!({ "upload": id }));
        assert_eq!(answer.json()["cancelled"], true);
    };
    // The last chunk: cancelled while its bytes arrive.
    let id = new_upload();
    assert_eq!(server.send_chunk(&id, 0, &file[..100_000]).status, 200);
    let answer = chunk_interrupted(&server, &id, 100_000, &file[100_000..], || cancel(&id));
    assert_eq!(
        answer.status,
        404,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error(), "unknown_upload");
    // A middle chunk: no 200 {"complete": false} for an upload that is gone.
    let id = new_upload();
    let answer = chunk_interrupted(&server, &id, 0, &file[..100_000], || cancel(&id));
    assert_eq!(
        answer.status,
        404,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(server.upload_files(), Vec::<String>::new());
    assert_eq!(server.table_counts()[5], ("upload_chunks".to_string(), 0));
}

#[test]
fn an_outbox_counter_of_2_64_minus_1_is_stored_as_itself() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    vault.state.counter = u64::MAX - 1;
    let outbox = meldkluis::review::commands::outbox(&mut vault).unwrap();
    assert_eq!(server.sync(&outbox).status, 200);
    let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
    let stored: String = db
        .query_row("SELECT hex(counter) FROM counsellor_sync", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "FFFFFFFFFFFFFFFF");
    // And it is the highest: the same bundle again is a retry, never newer.
    assert_eq!(server.sync(&outbox).status, 200);
    let _ = Melder::new();
}

/// Started by hand with the common umask 022 (no systemd unit around it),
/// the server still makes its directory and files for its own user only.
#[test]
fn the_servers_files_are_its_own_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-a");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-a.json"), vault.card.to_json()).unwrap();
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let server = Server::start_in(dir);
    rustix::process::umask(old);
    let melder = Melder::new();
    let envelope = melder.report_envelope("Melding.", &["vp-a"]);
    assert_eq!(
        server
            .submit_report(&melder, &envelope, &[vault.recipient()])
            .status,
        201
    );
    let backups = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["backup", "--data"])
        .arg(server.data_dir())
        .arg(backups.path().join("b.sqlite"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut checked = 0;
    for path in std::fs::read_dir(server.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain([server.data_dir(), backups.path().join("b.sqlite")])
    {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{} is {mode:o}", path.display());
        checked += 1;
    }
    assert!(checked >= 4);
}

fn counsellor_ids(server: &Server) -> Vec<String> {
    let answer = server.get("/api/v1/counsellors");
    assert_eq!(answer.status, 200, "{}", answer.error());
    answer.json()["counsellors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for_log(server: &Server, text: &str) {
    for _ in 0..100 {
        if server.log_text().contains(text) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the log never said {text:?}: {}", server.log_text());
}

/// One bad card does not take the channel down: the server starts with the
/// others and names the bad one; `check-config` still fails on it. SIGHUP
/// reloads `keys/`: a new good card is served, a new bad one is refused
/// with a clear message and the running set stays.
#[test]
fn a_bad_card_is_left_out_at_start_and_refused_at_reload() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = make_vault(dirs[0].path(), "vp-a");
    let b = make_vault(dirs[1].path(), "vp-b");
    let c = make_vault(dirs[2].path(), "vp-c");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("vp-a.json"), a.card.to_json()).unwrap();
    std::fs::write(keys.join("vp-kapot.json"), "{ not json").unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .args(["check-config", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--keys")
            .arg(&keys)
            .output()
            .unwrap()
    };
    let checked = check();
    assert!(!checked.status.success(), "check-config must fail on it");
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains("vp-kapot.json")
            || String::from_utf8_lossy(&checked.stderr).contains("vp-kapot.json")
    );
    let keys_path = keys.clone();
    let server = Server::start_in(dir);
    assert_eq!(counsellor_ids(&server), ["vp-a"]);
    assert!(
        server.log_text().contains("vp-kapot.json"),
        "{}",
        server.log_text()
    );

    // Fixed and a new card added: SIGHUP serves both.
    std::fs::remove_file(keys_path.join("vp-kapot.json")).unwrap();
    std::fs::write(keys_path.join("vp-b.json"), b.card.to_json()).unwrap();
    server.signal("HUP");
    wait_for_log(&server, "serving 2 card(s)");
    assert_eq!(counsellor_ids(&server), ["vp-a", "vp-b"]);

    // A new bad card: refused, the running set stays, the log says why.
    std::fs::write(
        keys_path.join("vp-c.json"),
        c.card.to_json().replace("age1", "age2"),
    )
    .unwrap();
    server.signal("HUP");
    wait_for_log(&server, "cards: not reloaded");
    assert!(server.log_text().contains("vp-c.json"));
    assert_eq!(counsellor_ids(&server), ["vp-a", "vp-b"]);
    // A report to the card served still goes through.
    let melder = Melder::new();
    let envelope = melder.report_envelope("Melding.", &["vp-b"]);
    assert_eq!(
        server
            .submit_report(&melder, &envelope, &[b.recipient()])
            .status,
        201
    );
}
