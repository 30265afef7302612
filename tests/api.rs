//! The HTTP API against a real server process: the melder's endpoints, the
//! security headers on every answer, hostile input that must be refused with
//! a stable code and change nothing, and start-up refusal of bad cards.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault};
use serde_json::json;

fn server_with_counsellor() -> (Server, meldkluis::review::Vault, tempfile::TempDir) {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    (server, vault, vault_dir)
}

#[test]
fn report_thread_and_follow_up() {
    let (server, vault, _dir) = server_with_counsellor();
    let listed = server.get("/api/v1/counsellors").json();
    assert_eq!(listed["counsellors"][0]["id"], "vp-jansen");
    // The whole card, signing key too: the page computes the fingerprint
    // from it (protocol.md §10.1) and the card's own file gives the same.
    assert_eq!(
        listed["counsellors"][0]["signing_key"],
        vault.card.signing_key
    );

    let melder = Melder::new();
    let envelope = melder.report_envelope("Er verdwijnt geld uit de kas.", &["vp-jansen"]);
    let request = melder.report_request(&envelope, &[vault.recipient()]);
    let created = server.post_json("/api/v1/reports", &request);
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    // The same request again (a retry after a lost answer) is not a new case.
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 200);
    // A different report under the same code is refused.
    let other = melder.report_request(&envelope, &[vault.recipient()]);
    assert_eq!(
        server.post_json("/api/v1/reports", &other).error(),
        "code_in_use"
    );

    let follow = melder.follow_up_request("Aanvulling.", &[vault.recipient()]);
    assert_eq!(
        server.post_json("/api/v1/thread/messages", &follow).status,
        201
    );
    // A retried follow-up (same bytes) is stored once.
    assert_eq!(
        server.post_json("/api/v1/thread/messages", &follow).status,
        201
    );
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    assert_eq!(thread.status, 200);
    let thread = thread.json();
    assert_eq!(thread["counsellors"], json!(["vp-jansen"]));
    let texts: Vec<String> = melder
        .read_thread(&thread)
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(texts, ["Er verdwijnt geld uit de kas.", "Aanvulling."]);
    assert_eq!(thread["messages"][0]["author"], "melder");
    // Days, never times.
    let day = thread["messages"][0]["day"].as_str().unwrap();
    assert_eq!(day.len(), 10);
}

#[test]
fn every_answer_carries_the_security_headers_and_no_cookie() {
    let (server, _vault, _dir) = server_with_counsellor();
    let paths = [
        "/",
        "/melden",
        "/mijn-melding",
        "/koerier",
        "/en",
        "/en/report",
        "/en/my-report",
        "/en/courier",
        "/vendor/age.js",
        "/css/site.css",
        "/i18n/nl.json",
        "/api/v1/counsellors",
        "/does-not-exist",
        "/api/v1/nothing",
    ];
    for path in paths {
        let response = server.get(path);
        let csp = response
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(
            response.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
        assert!(response.header("set-cookie").is_none(), "{path}");
    }
    assert_eq!(server.get("/").status, 200);
    assert!(String::from_utf8_lossy(&server.get("/en").body).contains("lang=\"en\""));
    assert_eq!(server.get("/does-not-exist").status, 404);
    let not_found = server.get("/api/v1/nothing");
    assert_eq!(
        (not_found.status, not_found.error()),
        (404, "not_found".into())
    );
    let wrong_method = server.get("/api/v1/reports");
    assert_eq!(
        (wrong_method.status, wrong_method.error()),
        (405, "method_not_allowed".into())
    );
}

#[test]
fn hostile_input_is_refused_with_a_stable_code_and_changes_nothing() {
    let (server, vault, _dir) = server_with_counsellor();
    let melder = Melder::new();
    let envelope = melder.report_envelope("Eerste melding.", &["vp-jansen"]);
    assert_eq!(
        server
            .submit_report(&melder, &envelope, &[vault.recipient()])
            .status,
        201
    );
    let before = server.table_counts();

    let good = melder.report_request(
        &Melder::new().report_envelope("x", &["vp-jansen"]),
        &[vault.recipient()],
    );
    let fresh_key = Melder::new().derived.lookup_key.to_hex();
    let message = good["message"].as_str().unwrap().to_string();
    let raw = STANDARD.decode(&message).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut v = good.clone();
        v["lookup_key"] = json!(fresh_key);
        v[field] = value;
        v
    };
    let scrypt_file = age::encrypt(
        &age::scrypt::Recipient::new(age::secrecy::SecretString::from("pw".to_owned())),
        &[b' '; 4096],
    )
    .unwrap();
    let unpadded = age::encrypt(&vault.recipient(), b"{\"v\":1}").unwrap();
    let armoured = format!(
        "-----BEGIN AGE ENCRYPTED FILE-----\n{}\n-----END AGE ENCRYPTED FILE-----\n",
        STANDARD.encode(&raw)
    );

    let json_cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("/api/v1/reports", "application/json", b"{not json".to_vec(), 400, "bad_json"),
        ("/api/v1/reports", "application/json", b"[]".to_vec(), 400, "bad_json"),
        ("/api/v1/reports", "application/json", b"".to_vec(), 400, "bad_json"),
        ("/api/v1/reports", "application/json", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400, "bad_json"),
        ("/api/v1/reports", "application/json", with("extra", json!(1)).to_string().into_bytes(), 400, "bad_json"),
        ("/api/v1/reports", "text/plain", with("lookup_key", json!(fresh_key)).to_string().into_bytes(), 415, "unsupported_media_type"),
        ("/api/v1/reports", "application/json", with("lookup_key", json!("abc")).to_string().into_bytes(), 400, "bad_lookup_key"),
        ("/api/v1/reports", "application/json", with("lookup_key", json!(fresh_key.to_uppercase())).to_string().into_bytes(), 400, "bad_lookup_key"),
        ("/api/v1/reports", "application/json", with("counsellors", json!([])).to_string().into_bytes(), 400, "no_counsellor"),
        ("/api/v1/reports", "application/json", with("counsellors", json!(["vp-onbekend"])).to_string().into_bytes(), 400, "unknown_counsellor"),
        ("/api/v1/reports", "application/json", with("counsellors", json!(["../../etc/passwd"])).to_string().into_bytes(), 400, "unknown_counsellor"),
        ("/api/v1/reports", "application/json", with("message", json!("%%%not base64")).to_string().into_bytes(), 400, "bad_base64"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(b"hello, plain text report"))).to_string().into_bytes(), 400, "not_age"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(&raw[..raw.len() / 2]))).to_string().into_bytes(), 400, "not_padded"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(&raw[..100]))).to_string().into_bytes(), 400, "not_age"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(armoured))).to_string().into_bytes(), 400, "not_age"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(&scrypt_file))).to_string().into_bytes(), 400, "bad_recipient_type"),
        ("/api/v1/reports", "application/json", with("message", json!(STANDARD.encode(&unpadded))).to_string().into_bytes(), 400, "not_padded"),
        ("/api/v1/thread", "application/json", b"{\"lookup_key\":1}".to_vec(), 400, "bad_json"),
        ("/api/v1/thread", "application/json", json!({"lookup_key": "zz"}).to_string().into_bytes(), 400, "bad_lookup_key"),
        ("/api/v1/thread", "application/json", json!({"lookup_key": fresh_key}).to_string().into_bytes(), 404, "unknown_code"),
        ("/api/v1/thread/messages", "application/json", json!({"lookup_key": fresh_key, "message": message}).to_string().into_bytes(), 404, "unknown_code"),
        ("/api/v1/thread/messages", "application/json", json!({"lookup_key": melder.derived.lookup_key.to_hex(), "message": STANDARD.encode(b"plain")}).to_string().into_bytes(), 400, "not_age"),
        ("/api/v1/courier/sync", "application/octet-stream", b"not a tar".to_vec(), 400, "bad_bundle"),
        ("/api/v1/courier/sync", "application/json", b"{}".to_vec(), 415, "unsupported_media_type"),
    ];
    for (path, content_type, body, status, code) in json_cases {
        let response = server.request("POST", path, Some(content_type), &body);
        assert_eq!(
            (response.status, response.error().as_str()),
            (status, code),
            "{path} {}",
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
        assert!(
            response.json()["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Over the body limit (32 MiB by default).
    let huge = vec![b'a'; 33 * 1024 * 1024];
    let response = server.request("POST", "/api/v1/reports", Some("application/json"), &huge);
    assert_eq!(
        (response.status, response.error().as_str()),
        (413, "too_large")
    );

    assert_eq!(
        server.table_counts(),
        before,
        "a refused request changed the store"
    );
    // The earlier case is untouched and still readable.
    let thread = server
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    assert_eq!(melder.read_thread(&thread).len(), 1);
}

#[test]
fn organisations_keep_their_counsellors_apart() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::make_vault_in_org(dir_a.path(), "vp-a", Some("bzk"));
    let b = common::make_vault_in_org(dir_b.path(), "vp-b", Some("jenv"));
    let server =
        Server::start_with_cards(&[("vp-a", a.card.to_json()), ("vp-b", b.card.to_json())]);

    let orgs = server.get("/api/v1/organisations").json();
    assert_eq!(orgs["organisations"].as_array().unwrap().len(), 2);
    assert_eq!(
        server.get("/api/v1/counsellors").error(),
        "organisation_required"
    );
    assert_eq!(
        server.get("/api/v1/counsellors?org=nope").error(),
        "unknown_organisation"
    );
    let bzk = server.get("/api/v1/counsellors?org=bzk").json();
    let ids: Vec<&str> = bzk["counsellors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["vp-a"]);
    assert_eq!(bzk["organisation"]["id"], "bzk");

    let before = server.table_counts();
    let melder = Melder::new();
    let report = melder.report_envelope("x", &["vp-a", "vp-b"]);
    let mixed = server.submit_report(&melder, &report, &[a.recipient(), b.recipient()]);
    assert_eq!(
        (mixed.status, mixed.error().as_str()),
        (400, "mixed_organisations")
    );
    assert_eq!(server.table_counts(), before);

    let page = server.get("/o/bzk/melden");
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("href=\"/o/bzk/mijn-melding\""),
        "links stay under the organisation"
    );
    assert!(html.contains("src=\"/o/bzk/js/"));
    assert_eq!(server.get("/o/bzk/js/protocol.js").status, 200);
    assert_eq!(server.get("/o/bzk/en/report").status, 200);
    assert_eq!(server.get("/o/nope/melden").status, 404);
}

#[test]
fn security_txt_is_served_only_with_a_valid_contact() {
    let (server, _vault, _dir) = server_with_counsellor();
    assert_eq!(server.get("/.well-known/security.txt").status, 404);
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-jansen");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-jansen.json"), vault.card.to_json()).unwrap();
    let server = Server::start_in_with(dir, &["--security-contact", "mailto:cert@example.nl"]);
    let response = server.get("/.well-known/security.txt");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let text = String::from_utf8(response.body).unwrap();
    assert!(
        text.starts_with("Contact: mailto:cert@example.nl\nExpires: "),
        "{text}"
    );
    assert!(text.contains("Preferred-Languages: nl, en"));

    for bad in [
        "cert@example.nl",
        "mailto:a\nContact: evil",
        "http://example.nl",
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--keys",
                "/nonexistent",
                "--security-contact",
                bad,
            ])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("security contact"),
            "{bad}"
        );
    }
}

#[test]
fn onion_location_is_sent_when_configured() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-jansen");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-jansen.json"), vault.card.to_json()).unwrap();
    let onion = format!("http://{}.onion", "a".repeat(56));
    let server = Server::start_in_with(dir, &["--onion-location", &onion]);
    let page = server.get("/melden");
    assert_eq!(
        page.header("onion-location"),
        Some(format!("{onion}/melden").as_str())
    );
    let (plain, _vault, _dir) = server_with_counsellor();
    assert!(plain.get("/melden").header("onion-location").is_none());
}

#[test]
fn a_bad_card_stops_the_start_and_names_the_file() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-goed");
    for (name, content, expected) in [
        ("vp-kapot", "{ not json".to_string(), "vp-kapot.json"),
        (
            "vp-anders",
            vault.card.to_json(),
            "must be named vp-goed.json",
        ),
        (
            "vp-goed",
            vault.card.to_json().replace("age1", "age2"),
            "age_recipient",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys").join(format!("{name}.json")),
            &content,
        )
        .unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--keys")
            .arg(dir.path().join("keys"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "a refused start must not create the database"
        );
    }
}

#[test]
fn healthz_says_ok_and_nothing_else() {
    let (server, _vault, _dir) = server_with_counsellor();
    let answer = server.get("/healthz");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"ok\n");
    assert!(answer.header("content-security-policy").is_some());
    assert_eq!(server.request("POST", "/healthz", None, b"").status, 405);
}
