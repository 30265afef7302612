//! The courier round trip against a real server: outbox → sync → inbox →
//! import → reply → sync → the melder reads the reply; and every way an
//! outbox can be wrong (forged, replayed, malformed, foreign case), each
//! refused with its code and without changing anything.

mod common;

use common::{Melder, Server, make_vault, reopen};
use meldkluis::format::bundle::{Outbox, OutboxKind};
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::review::commands;

/// Everything readable in a case, as the views give it (raw text, for
/// assertions only; front ends print it through `Untrusted`).
fn case_text(vault: &meldkluis::review::Vault, case: &meldkluis::format::ids::CaseId) -> String {
    use meldkluis::review::views::{self, Content};
    let view = views::case(vault, case, Day::today()).unwrap();
    let mut text = String::new();
    for message in &view.messages {
        if let Content::Readable(r) = &message.content {
            text.push_str(r.text.raw());
            text.push('\n');
            if let Some(contact) = &r.contact {
                text.push_str(contact.raw());
                text.push('\n');
            }
        }
    }
    text
}

#[test]
fn full_round_trip_through_the_courier() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let mut report = melder.report_envelope("De directeur declareert privéreizen.", &["vp-jansen"]);
    report.contact = Some("bel mij na 18:00".into());
    assert_eq!(
        server
            .submit_report(&melder, &report, &[vault.recipient()])
            .status,
        201
    );

    // An empty outbox is the sync request; its answer is the inbox.
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        answer
            .header("content-disposition")
            .unwrap()
            .contains("meldkluis-inbox-vp-jansen-1.age")
    );
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!((summary.new_cases, summary.new_messages), (1, 1));
    // Importing the same inbox again changes nothing.
    assert_eq!(
        commands::import(&mut vault, &answer.body)
            .unwrap()
            .new_messages,
        0
    );

    let case = *vault.state.cases.keys().next().unwrap();
    let shown = case_text(&vault, &case);
    assert!(shown.contains("De directeur declareert privéreizen."));
    assert!(shown.contains("bel mij na 18:00"));
    assert!(
        meldkluis::review::views::overview(&vault, Day::today())
            .iter()
            .any(|c| c.id == case)
    );

    commands::send(
        &mut vault,
        &case,
        "Dank u, wij nemen dit in behandeling.",
        None,
        Day::today(),
    )
    .unwrap();
    let outbox = commands::outbox(&mut vault).unwrap();
    let answer = server.sync(&outbox);
    assert_eq!(answer.status, 200);
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(
        summary.confirmed, 1,
        "the server confirms it holds the reply"
    );
    assert!(vault.state.pending.is_empty());

    // The melder reads the reply with nothing but the code's derivations.
    let thread = server
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let envelopes = melder.read_thread(&thread);
    assert_eq!(envelopes.len(), 2);
    assert_eq!(envelopes[1].kind, Kind::Reply);
    assert_eq!(envelopes[1].text, "Dank u, wij nemen dit in behandeling.");
    assert_eq!(envelopes[1].author.as_ref().unwrap().id, "vp-jansen");
    assert_eq!(thread["messages"][1]["author"], "vp-jansen");

    // A follow-up arrives in the next inbox; the vault survives reopening.
    let follow = melder.follow_up_request("Er is meer: ook in 2025.", &[vault.recipient()]);
    assert_eq!(
        server.post_json("/api/v1/thread/messages", &follow).status,
        201
    );
    let mut vault = reopen(&vault, vault_dir.path());
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(
        summary.new_messages, 1,
        "only what is new since the acknowledged inbox"
    );
    assert!(case_text(&vault, &case).contains("Er is meer: ook in 2025."));
}

#[test]
fn a_lost_inbox_is_sent_again() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let report = melder.report_envelope("Melding.", &["vp-jansen"]);
    server.submit_report(&melder, &report, &[vault.recipient()]);
    let first = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(first.status, 200);
    // The USB stick with the first inbox is lost: the next sync brings it again.
    let second = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(
        commands::import(&mut vault, &second.body)
            .unwrap()
            .new_messages,
        1
    );
}

#[test]
fn hostile_outboxes_are_refused_and_change_nothing() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen");
    let other_dir = tempfile::tempdir().unwrap();
    let other = make_vault(other_dir.path(), "vp-ander");
    let server = Server::start_with_cards(&[
        ("vp-jansen", vault.card.to_json()),
        ("vp-ander", other.card.to_json()),
    ]);
    let melder = Melder::new();
    let report = melder.report_envelope("Melding.", &["vp-jansen"]);
    server.submit_report(&melder, &report, &[vault.recipient()]);
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    commands::import(&mut vault, &answer.body).unwrap();
    let case = *vault.state.cases.keys().next().unwrap();

    commands::send(&mut vault, &case, "Antwoord.", None, Day::today()).unwrap();
    let good = commands::outbox(&mut vault).unwrap();
    assert_eq!(server.sync(&good).status, 200);
    // The very same bundle again (a courier retry) is answered, not re-applied.
    let before = server.table_counts();
    let retry = server.sync(&good);
    assert_eq!(retry.status, 200);
    assert_eq!(server.table_counts(), before);

    let reply_body = age::encrypt(&vault.recipient(), &[b' '; 4096]).unwrap();
    let jansen_key = vault.signing_key().clone();
    let next = vault.state.counter + 1;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // signed with a key that is not on the card
        (
            "forged",
            Outbox::build("vp-jansen", next, 0, &[], other.signing_key()),
            401,
            "bad_signature",
        ),
        // a counsellor without a card
        (
            "unknown counsellor",
            Outbox::build("vp-niemand", next, 0, &[], &jansen_key),
            401,
            "bad_signature",
        ),
        // an old counter with other content
        (
            "replayed",
            Outbox::build("vp-jansen", 1, 0, &[], &jansen_key),
            409,
            "replayed_bundle",
        ),
        (
            "same counter, other content",
            Outbox::build("vp-jansen", next - 1, 5, &[], &jansen_key),
            409,
            "replayed_bundle",
        ),
        // a case that belongs to someone else (or to no one)
        (
            "foreign case",
            Outbox::build(
                "vp-jansen",
                next,
                0,
                &[(
                    MessageId::random(),
                    CaseId::random(),
                    OutboxKind::Reply,
                    reply_body.clone(),
                )],
                &jansen_key,
            ),
            409,
            "unknown_case",
        ),
        (
            "other counsellor's case",
            Outbox::build(
                "vp-ander",
                1,
                0,
                &[(
                    MessageId::random(),
                    case,
                    OutboxKind::Reply,
                    reply_body.clone(),
                )],
                other.signing_key(),
            ),
            409,
            "unknown_case",
        ),
        ("not a tar", b"garbage".to_vec(), 400, "bad_bundle"),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            400,
            "bad_bundle",
        ),
        ("empty", Vec::new(), 400, "bad_bundle"),
    ];
    for (what, body, status, code) in cases {
        let response = server.sync(&body);
        assert_eq!(
            (response.status, response.error().as_str()),
            (status, code),
            "{what}"
        );
    }
    assert_eq!(
        server.table_counts(),
        before,
        "a refused outbox changed the store"
    );

    // After all that, the genuine next outbox still works.
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(answer.status, 200);
    let thread = server
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let texts: Vec<String> = melder
        .read_thread(&thread)
        .into_iter()
        .map(|e: Envelope| e.text)
        .collect();
    assert_eq!(texts, ["Melding.", "Antwoord."]);
}

#[test]
fn reviewer_cli_neutralises_hostile_text() {
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let mut report = melder.report_envelope(
        "Kijk: \u{1b}]0;pwned\u{7}\u{1b}[2J en \u{202e}fdp.exe",
        &["vp-jansen"],
    );
    report.category = Some("fraud\n\u{1b}[31m".into());
    server.submit_report(&melder, &report, &[vault.recipient()]);
    let inbox = server.sync(&commands::outbox(&mut vault).unwrap()).body;
    let inbox_path = vault_dir.path().join("inbox.age");
    std::fs::write(&inbox_path, inbox).unwrap();
    let pass = vault_dir.path().join("pass.txt");
    std::fs::write(&pass, "test passphrase\n").unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis-review"))
            .arg("--vault")
            .arg(vault_dir.path())
            .arg("--passphrase-file")
            .arg(&pass)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    run(&["import", inbox_path.to_str().unwrap()]);
    let listed = run(&["list"]);
    let case = String::from_utf8_lossy(&listed)[..8].to_string();
    let shown = run(&["show", &case]);
    assert!(
        !shown.contains(&0x1b),
        "an escape byte reached the terminal"
    );
    assert!(!shown.contains(&0x07));
    let text = String::from_utf8(shown).unwrap();
    assert!(!text.contains('\u{202e}'));
    assert!(text.contains("\\u{001b}]0;pwned"));
    assert!(!String::from_utf8_lossy(&listed).contains('\u{1b}'));
}
