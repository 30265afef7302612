//! Post-quantum hybrid keys (protocol v2 draft) on a real server and vault:
//! - a vault of the current classical format with a case, rotated to hybrid
//!   keys: the old case still opens, new reports are hybrid (their stanzas are
//!   `mlkem768x25519` only), replies to the old case stay classical and the
//!   melder reads both;
//! - `init` makes hybrid keys by default, the card and the counsellor list
//!   say so;
//! - a report to one classical and one hybrid counsellor is refused: age
//!   cannot mix the two, and the server refuses a file that tries.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault, reopen};
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::Kind;
use meldkluis::format::keys::Recipient;
use meldkluis::review::commands;
use meldkluis::review::vault::{NewCounsellor, Vault};
use meldkluis::review::views::{self, Content};
use serde_json::json;

fn stanza_tags(file: &[u8]) -> Vec<String> {
    let head = String::from_utf8_lossy(&file[..file.len().min(20_000)]).into_owned();
    head.lines()
        .take_while(|l| !l.starts_with("--- "))
        .filter_map(|l| l.strip_prefix("-> "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .filter(|t| !t.ends_with("-grease"))
        .collect()
}

fn texts(vault: &Vault, case: &meldkluis::format::ids::CaseId) -> Vec<String> {
    views::case(vault, case, Day::today())
        .unwrap()
        .messages
        .iter()
        .map(|m| match &m.content {
            Content::Readable(r) => r.text.raw().to_owned(),
            _ => "<unreadable>".to_owned(),
        })
        .collect()
}

#[test]
fn rotating_a_classical_vault_to_hybrid_keeps_old_cases_and_makes_new_ones_hybrid() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen"); // classical, as today
    assert!(!vault.recipient().is_post_quantum());
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);

    // A case of the current format: classical report, imported, answered.
    let old_melder = Melder::new();
    let report = old_melder.report_envelope("Oude melding, klassiek versleuteld.", &["vp-jansen"]);
    assert_eq!(
        server
            .submit_report(&old_melder, &report, &[vault.recipient()])
            .status,
        201
    );
    let inbox = server.sync(&commands::outbox(&mut vault).unwrap()).body;
    commands::import(&mut vault, &inbox).unwrap();
    let old_case = *vault.state.cases.keys().next().unwrap();
    let old_file = vault
        .read_message(&vault.state.cases[&old_case].messages[0].id)
        .unwrap();
    assert_eq!(stanza_tags(&old_file), ["X25519", "X25519"]);

    // Rotate: the new card is hybrid; the vault keeps the old identity.
    vault
        .rotate_keys("test passphrase".to_owned().into())
        .unwrap();
    assert!(vault.recipient().is_post_quantum());
    assert!(vault.card.age_recipient.starts_with("age1pq1"));
    assert!(vault.card.is_post_quantum());
    let mut vault = reopen(&vault, vault_dir.path());
    assert_eq!(
        texts(&vault, &old_case),
        ["Oude melding, klassiek versleuteld."]
    );

    // The operator installs the new card; the server says it is post-quantum.
    std::fs::write(
        server.dir.path().join("keys/vp-jansen.json"),
        vault.card.to_json(),
    )
    .unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.get("/api/v1/counsellors").json()["counsellors"][0]["post_quantum"] != json!(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new card was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // A reply to the old case goes to the melder's classical key and the
    // counsellor's own classical key (age cannot mix), and the melder reads it.
    commands::send(
        &mut vault,
        &old_case,
        "Antwoord op de oude zaak.",
        None,
        Day::today(),
    )
    .unwrap();
    let reply_id = vault.state.cases[&old_case].messages.last().unwrap().id;
    assert_eq!(
        stanza_tags(&vault.read_message(&reply_id).unwrap()),
        ["X25519", "X25519"]
    );

    // A new report, as the page makes it for a post-quantum counsellor.
    let new_melder = Melder::new();
    let report = new_melder.report_envelope("Nieuwe melding, post-kwantum.", &["vp-jansen"]);
    assert_eq!(
        server
            .submit_report(&new_melder, &report, &[vault.recipient()])
            .status,
        201
    );
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!((summary.new_cases, summary.confirmed), (1, 1));
    let new_case = *vault.state.cases.keys().find(|c| **c != old_case).unwrap();
    let new_file = vault
        .read_message(&vault.state.cases[&new_case].messages[0].id)
        .unwrap();
    assert_eq!(stanza_tags(&new_file), ["mlkem768x25519", "mlkem768x25519"]);
    let reply_recipient = vault.state.cases[&new_case]
        .reply_recipient
        .clone()
        .unwrap();
    assert!(reply_recipient.starts_with("age1pq1"), "{reply_recipient}");
    assert_eq!(texts(&vault, &new_case), ["Nieuwe melding, post-kwantum."]);

    // Its reply is hybrid end to end, and the melder reads it.
    commands::send(
        &mut vault,
        &new_case,
        "Ontvangen, post-kwantum.",
        None,
        Day::today(),
    )
    .unwrap();
    let reply_id = vault.state.cases[&new_case].messages.last().unwrap().id;
    assert_eq!(
        stanza_tags(&vault.read_message(&reply_id).unwrap()),
        ["mlkem768x25519", "mlkem768x25519"]
    );
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    commands::import(&mut vault, &answer.body).unwrap();
    for (melder, text) in [
        (&old_melder, "Antwoord op de oude zaak."),
        (&new_melder, "Ontvangen, post-kwantum."),
    ] {
        let thread = server
            .post_json("/api/v1/thread", &melder.thread_request())
            .json();
        let envelopes = melder.read_thread(&thread);
        assert_eq!(envelopes.len(), 2);
        assert_eq!(
            (envelopes[1].kind, envelopes[1].text.as_str()),
            (Kind::Reply, text)
        );
    }
    // And the old case still opens after all of it.
    let vault = reopen(&vault, vault_dir.path());
    assert_eq!(
        texts(&vault, &old_case)[0],
        "Oude melding, klassiek versleuteld."
    );
}

#[test]
fn init_makes_hybrid_keys_and_mixed_reports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hybrid = Vault::init(
        &dir.path().join("hybrid"),
        "test passphrase".to_owned().into(),
        NewCounsellor {
            id: "vp-nieuw".into(),
            name: "Nieuwe Vertrouwenspersoon".into(),
            organisation: "Ministerie van Testzaken".into(),
            org: None,
            kind: CounsellorKind::Internal,
            description: String::new(),
        },
    )
    .unwrap();
    assert!(hybrid.card.age_recipient.starts_with("age1pq1"));
    // The identity file is a standard age identity file with the hybrid key.
    let classical = make_vault(&dir.path().join("classical"), "vp-oud");
    let server = Server::start_with_cards(&[
        ("vp-nieuw", hybrid.card.to_json()),
        ("vp-oud", classical.card.to_json()),
    ]);
    let list = server.get("/api/v1/counsellors").json();
    let pq: Vec<(String, bool)> = list["counsellors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["post_quantum"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(pq.contains(&("vp-nieuw".into(), true)) && pq.contains(&("vp-oud".into(), false)));

    // The age crate refuses to make the mixed file at all.
    let recipients: Vec<Recipient> = vec![hybrid.recipient(), classical.recipient()];
    let melder = Melder::new();
    let envelope = melder.report_envelope("Aan allebei.", &["vp-nieuw", "vp-oud"]);
    assert!(envelope.seal(&recipients).is_err());

    // A hand-made mixed file (stanzas spliced together) is refused by the
    // server's shape check, and nothing is stored.
    let a = envelope.seal(&[hybrid.recipient()]).unwrap();
    let b = envelope.seal(&[classical.recipient()]).unwrap();
    let (ha, hb) = (
        String::from_utf8_lossy(&a).into_owned(),
        String::from_utf8_lossy(&b).into_owned(),
    );
    let x_start = hb.find("-> X25519 ").unwrap();
    let x_line = x_start + hb[x_start..].find('\n').unwrap();
    let x_end = x_line + 1 + hb[x_line + 1..].find('\n').unwrap() + 1;
    let at = ha.find("-> mlkem768x25519 ").unwrap();
    let mut mixed = a[..at].to_vec();
    mixed.extend_from_slice(&b[x_start..x_end]);
    mixed.extend_from_slice(&a[at..]);
    let request = json!({
        "counsellors": ["vp-nieuw", "vp-oud"],
        "lookup_key": melder.derived.lookup_key.to_hex(),
        "message": STANDARD.encode(&mixed),
    });
    let answer = server.post_json("/api/v1/reports", &request);
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["error"], "not_age");
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    assert_eq!(thread.status, 404);

    // Each counsellor alone works, with the reply key of its kind.
    for (vault, id) in [(&hybrid, "vp-nieuw"), (&classical, "vp-oud")] {
        let melder = Melder::new();
        let report = melder.report_envelope("Alleen aan één.", &[id]);
        assert_eq!(
            server
                .submit_report(&melder, &report, &[vault.recipient()])
                .status,
            201
        );
    }
}
