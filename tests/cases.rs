//! Case handling end to end against a real server: two counsellors of one
//! case, acknowledgement, statuses, closure, the melder's evaluation,
//! statistics, attachment export, key rotation and retention.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault, reopen, sync};
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Attachment, Envelope, Evaluation, Kind, Status};
use meldkluis::review::commands;
use meldkluis::review::deadlines::add_days;
use meldkluis::review::stats;
use meldkluis::review::vault::CaseRecord;
use rand::{Rng, SeedableRng};
use serde_json::json;

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
fn two_counsellors_statuses_closure_and_evaluation() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = make_vault(dir_a.path(), "vp-a");
    let mut b = make_vault(dir_b.path(), "vp-b");
    let server =
        Server::start_with_cards(&[("vp-a", a.card.to_json()), ("vp-b", b.card.to_json())]);
    let today = Day::today();

    let melder = Melder::new();
    let mut report = melder.report_envelope("Pesterijen op de afdeling.", &["vp-a", "vp-b"]);
    report.category = Some("undesirable-behaviour".into());
    let request = melder.report_request(&report, &[a.recipient(), b.recipient()]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);

    // Both receive and read the report.
    for vault in [&mut a, &mut b] {
        assert_eq!(sync(&server, vault).new_cases, 1);
        let case = *vault.state.cases.keys().next().unwrap();
        assert!(case_text(vault, &case).contains("Pesterijen op de afdeling."));
        assert_eq!(vault.state.cases[&case].counsellors, ["vp-a", "vp-b"]);
    }
    let case = *a.state.cases.keys().next().unwrap();
    let overview = meldkluis::review::views::overview(&a, today);
    assert_eq!(
        overview[0].status,
        meldkluis::review::views::CaseStatus::Received
    );

    // A acknowledges with the standard text, B replies.
    commands::send(
        &mut a,
        &case,
        commands::acknowledgement_template(commands::Lang::Nl),
        Some(Status::Acknowledged),
        today,
    )
    .unwrap();
    commands::send(
        &mut b,
        &case,
        "Kunt u zeggen wanneer dit gebeurde?",
        None,
        today,
    )
    .unwrap();
    sync(&server, &mut a);
    sync(&server, &mut b);
    assert_eq!(a.state.cases[&case].acknowledged, Some(today));
    assert_eq!(stats::current_status(&a.state.cases[&case]), "acknowledged");

    // The melder sees both, each with its author, status and day.
    let thread = server
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let messages = melder.read_thread(&thread);
    assert_eq!(messages.len(), 3);
    let ack = messages
        .iter()
        .find(|m| m.status == Some(Status::Acknowledged))
        .unwrap();
    assert_eq!(ack.author.as_ref().unwrap().id, "vp-a");
    assert!(
        messages
            .iter()
            .any(|m| m.author.as_ref().is_some_and(|au| au.id == "vp-b") && m.status.is_none())
    );
    assert!(
        thread["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["day"] == today.to_string())
    );

    // B's reply reaches A's inbox, unreadable to A (it is for the melder).
    let summary = sync(&server, &mut a);
    assert_eq!((summary.new_messages, summary.unreadable), (1, 1));
    assert!(
        meldkluis::review::views::case(&a, &case, today)
            .unwrap()
            .messages
            .iter()
            .any(|m| matches!(m.content, meldkluis::review::views::Content::ForMelderOnly))
    );

    // A gives feedback, then closes; the server learns only the closure.
    commands::send(
        &mut a,
        &case,
        "Wij hebben de leiding aangesproken.",
        Some(Status::FeedbackGiven),
        today,
    )
    .unwrap();
    commands::send(
        &mut a,
        &case,
        commands::closing_template(commands::Lang::Nl),
        Some(Status::Closed),
        today,
    )
    .unwrap();
    assert!(matches!(
        commands::send(&mut a, &case, "nog iets", None, today),
        Err(meldkluis::review::ReviewError::CaseClosed(_))
    ));
    sync(&server, &mut a);
    let record = &a.state.cases[&case];
    assert_eq!((record.feedback, record.closed), (Some(today), Some(today)));
    assert_eq!(stats::current_status(record), "closed");
    let store_day = {
        let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
        db.query_row("SELECT closed_day FROM cases", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap()
    };
    assert_eq!(store_day, Some(today.to_string()));

    // The melder evaluates, anonymously, and A reads the scores.
    let mut evaluation = Envelope::new(Kind::Evaluation, "Sneller terugkoppelen graag.");
    evaluation.evaluation = Some(Evaluation {
        process: 4,
        heard: 5,
    });
    let sealed = evaluation
        .seal(&[
            a.recipient(),
            b.recipient(),
            melder.derived.reply_recipient().into(),
        ])
        .unwrap();
    let posted = server.post_json(
        "/api/v1/thread/messages",
        &json!({"lookup_key": melder.derived.lookup_key.to_hex(), "message": STANDARD.encode(sealed)}),
    );
    assert_eq!(posted.status, 201);
    sync(&server, &mut a);
    let a = reopen(&a, dir_a.path());
    // An evaluation is not a message waiting for an answer.
    let summary = &meldkluis::review::views::overview(&a, today)[0];
    assert!(!summary.awaiting_answer, "an evaluation awaits no answer");
    assert_eq!(
        a.state.cases[&case].evaluation,
        Some(Evaluation {
            process: 4,
            heard: 5
        })
    );
    assert!(case_text(&a, &case).contains("Sneller terugkoppelen graag."));
    let figures = stats::compute(a.state.cases.values(), today);
    assert_eq!(
        (
            figures.evaluations,
            figures.process_score_sum,
            figures.heard_score_sum
        ),
        (1, 4, 5)
    );
    assert!(figures.csv().contains("evaluation,process_average,4.00"));
}

#[test]
fn retention_deletes_every_byte_of_a_closed_case() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let closed = Melder::new();
    let kept = Melder::new();
    let mut bodies = Vec::new();
    for melder in [&closed, &kept] {
        let report = melder.report_envelope("Melding.", &["vp-a"]);
        let request = melder.report_request(&report, &[vault.recipient()]);
        bodies.push(
            STANDARD
                .decode(request["message"].as_str().unwrap())
                .unwrap(),
        );
        assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    }
    sync(&server, &mut vault);
    // Find `closed`'s case through the id of its first message.
    let thread = server
        .post_json("/api/v1/thread", &closed.thread_request())
        .json();
    let closed_message_id = thread["messages"][0]["id"].as_str().unwrap().to_string();
    let case = *vault
        .state
        .cases
        .iter()
        .find(|(_, c)| {
            c.messages
                .iter()
                .any(|m| m.id.to_hex() == closed_message_id)
        })
        .unwrap()
        .0;
    commands::send(
        &mut vault,
        &case,
        "Afgesloten.",
        Some(Status::Closed),
        today,
    )
    .unwrap();
    sync(&server, &mut vault);
    let reply_body = {
        let thread = server
            .post_json("/api/v1/thread", &closed.thread_request())
            .json();
        STANDARD
            .decode(thread["messages"][1]["message"].as_str().unwrap())
            .unwrap()
    };
    let mut server = server;
    server.kill();
    let data = server.data_dir();

    // The purge runs on the store, on a fixed clock: 31 days after closure.
    let store = meldkluis::server::store::Store::open(&data.join("meldkluis.sqlite")).unwrap();
    assert_eq!(
        store.purge_closed(add_days(today, -1)).unwrap().cases,
        0,
        "not yet"
    );
    assert_eq!(store.purge_closed(today).unwrap().cases, 1);
    drop(store);
    let needles: Vec<&[u8]> = vec![
        &bodies[0][200..264],
        &reply_body[200..264],
        &bodies[0][bodies[0].len() - 64..],
    ];
    let files = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .inspect(|path| assert!(path.is_file(), "only the database's files: {path:?}"));
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == *needle),
                "ciphertext of the closed case left in {}",
                path.display()
            );
        }
    }
    // The other case is untouched.
    let server = Server::start_in(tempdir_with(&data, &vault));
    let thread = server.post_json("/api/v1/thread", &kept.thread_request());
    assert_eq!(thread.status, 200);
    assert_eq!(
        server
            .post_json("/api/v1/thread", &closed.thread_request())
            .error(),
        "unknown_code"
    );
    let kept_bytes = STANDARD
        .decode(thread.json()["messages"][0]["message"].as_str().unwrap())
        .unwrap();
    assert_eq!(kept_bytes, bodies[1]);
}

/// A fresh server directory holding a copy of `data` and the vault's card.
fn tempdir_with(data: &std::path::Path, vault: &meldkluis::review::Vault) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-a.json"), vault.card.to_json()).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // uploads/: no attachments in these tests
        }
        std::fs::copy(
            &path,
            dir.path().join("data").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

#[test]
fn stats_on_a_thousand_generated_cases_match_an_independent_count() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let today = Day::parse("2026-11-22").unwrap();
    let categories = [
        "fraud-or-abuse-of-power",
        "undesirable-behaviour",
        "conflict-of-interest",
        "other",
    ];
    let mut cases = Vec::new();
    for _ in 0..1000 {
        let received = add_days(today, -rng.gen_range(0..400));
        let mut case = CaseRecord::new(received);
        case.category =
            (rng.gen_range(0..5) > 0).then(|| categories[rng.gen_range(0..4)].to_string());
        if rng.gen_bool(0.8) {
            case.acknowledged = Some(add_days(received, rng.gen_range(0..12)).min(today));
            if rng.gen_bool(0.6) {
                case.feedback = Some(add_days(received, rng.gen_range(10..120)).min(today));
                if rng.gen_bool(0.5) {
                    case.closed = case.feedback;
                    if rng.gen_bool(0.5) {
                        case.evaluation = Some(Evaluation {
                            process: rng.gen_range(1..=5),
                            heard: rng.gen_range(1..=5),
                        });
                    }
                }
            }
        }
        cases.push(case);
    }
    let figures = stats::compute(&cases, today);
    let csv: BTreeMap<String, String> = figures
        .csv()
        .lines()
        .skip(1)
        .map(|line| {
            let (key, value) = line.rsplit_once(',').unwrap();
            (key.to_string(), value.to_string())
        })
        .collect();

    // Independent counts, straight from the generated records.
    assert_eq!(csv["total,cases"], "1000");
    for category in categories {
        let n = cases
            .iter()
            .filter(|c| c.category.as_deref() == Some(category))
            .count();
        assert_eq!(csv[&format!("category,{category}")], n.to_string());
    }
    let uncategorised = cases.iter().filter(|c| c.category.is_none()).count();
    assert_eq!(csv["category,-"], uncategorised.to_string());
    let mut months: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        *months
            .entry(format!(
                "{:04}-{:02}",
                case.received.0.year(),
                case.received.0.month() as u8
            ))
            .or_default() += 1;
    }
    for (month, n) in months {
        assert_eq!(csv[&format!("month,{month}")], n.to_string(), "{month}");
    }
    let closed = cases.iter().filter(|c| c.closed.is_some()).count();
    let received = cases.iter().filter(|c| c.acknowledged.is_none()).count();
    assert_eq!(csv["status,closed"], closed.to_string());
    assert_eq!(csv["status,received"], received.to_string());
    assert_eq!(
        csv["status,acknowledged"],
        (1000 - closed - received).to_string()
    );
    let ack_on_time = cases
        .iter()
        .filter(|c| {
            c.acknowledged
                .is_some_and(|a| (a.0 - c.received.0).whole_days() <= 7)
        })
        .count();
    let ack_due = cases
        .iter()
        .filter(|c| c.acknowledged.is_some() || (today.0 - c.received.0).whole_days() > 7)
        .count();
    assert_eq!(
        csv["deadline,acknowledged_in_time"],
        ack_on_time.to_string()
    );
    assert_eq!(csv["deadline,acknowledgement_due"], ack_due.to_string());
    let evaluations: Vec<&Evaluation> =
        cases.iter().filter_map(|c| c.evaluation.as_ref()).collect();
    assert_eq!(csv["evaluation,count"], evaluations.len().to_string());
    let mean = evaluations
        .iter()
        .map(|e| f64::from(e.process))
        .sum::<f64>()
        / evaluations.len() as f64;
    assert_eq!(csv["evaluation,process_average"], format!("{mean:.2}"));
    // The feedback share counts a case once its feedback is given or due;
    // the deadline itself comes from deadlines(), tested on a fixed clock.
    let feedback_by = |c: &CaseRecord| {
        meldkluis::review::deadlines::deadlines(c.received, c.acknowledged).feedback_by
    };
    let feedback_due = cases
        .iter()
        .filter(|c| c.feedback.is_some() || today > feedback_by(c))
        .count();
    let feedback_on_time = cases
        .iter()
        .filter(|c| c.feedback.is_some_and(|f| f <= feedback_by(c)))
        .count();
    assert_eq!(csv["deadline,feedback_due"], feedback_due.to_string());
    assert_eq!(
        csv["deadline,feedback_in_time"],
        feedback_on_time.to_string()
    );
}

#[test]
fn export_writes_attachments_under_safe_names_only_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let melder = Melder::new();
    let mut report = melder.report_envelope("Zie bijlagen.", &["vp-a"]);
    for name in [
        "../../.bashrc",
        "CON",
        "a\nb\0c.txt",
        "\u{1b}[2Jscan.pdf",
        "scan.pdf",
        "scan.pdf",
    ] {
        report.attachments.push(Attachment::inline(
            name,
            "application/octet-stream",
            name.as_bytes(),
        ));
    }
    assert_eq!(
        server
            .submit_report(&melder, &report, &[vault.recipient()])
            .status,
        201
    );
    sync(&server, &mut vault);
    let case = *vault.state.cases.keys().next().unwrap();
    let out = dir.path().join("export");
    let written = commands::export(&vault, &case, &out).unwrap().written;
    assert_eq!(written.len(), 6);
    // Decrypted files are the counsellor's alone: 0600 in a new 0700 folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), 0o700);
        for path in &written {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "01-_CON",
            "01-__2Jscan.pdf",
            "01-a_b_c.txt",
            "01-bashrc",
            "01-scan (2).pdf",
            "01-scan.pdf"
        ]
    );
    for path in &written {
        assert_eq!(path.parent().unwrap(), out);
    }
    // Exporting again never overwrites.
    let again = commands::export(&vault, &case, &out).unwrap().written;
    assert!(again.iter().all(|p| !written.contains(p)));
    assert!(!dir.path().join(".bashrc").exists());
}

#[test]
fn rotated_keys_keep_old_cases_readable_and_the_new_card_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let melder = Melder::new();
    let report = melder.report_envelope("Oude melding.", &["vp-a"]);
    server.submit_report(&melder, &report, &[vault.recipient()]);
    sync(&server, &mut vault);
    let case = *vault.state.cases.keys().next().unwrap();
    let old_card = vault.card.clone();

    vault
        .rotate_keys(age::secrecy::SecretString::from(
            "test passphrase".to_owned(),
        ))
        .unwrap();
    assert_ne!(vault.card.age_recipient, old_card.age_recipient);
    assert_eq!(vault.card.id, old_card.id);
    let vault_dir = dir.path();
    let mut vault = reopen(&vault, vault_dir);
    assert!(
        case_text(&vault, &case).contains("Oude melding."),
        "old key still opens old messages"
    );

    // The operator installs the new card (same id) and restarts: nothing is lost.
    let mut old_server = server;
    old_server.kill();
    let data = old_server.data_dir();
    let server = Server::start_in(tempdir_with(&data, &vault));
    commands::send(&mut vault, &case, "Antwoord na sleutelwissel.", None, today).unwrap();
    sync(&server, &mut vault);
    let second = Melder::new();
    let report = second.report_envelope("Nieuwe melding.", &["vp-a"]);
    server.submit_report(&second, &report, &[vault.recipient()]);
    assert_eq!(sync(&server, &mut vault).new_cases, 1);
    let thread = server
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    assert_eq!(
        melder.read_thread(&thread)[1].text,
        "Antwoord na sleutelwissel."
    );
}

#[test]
fn a_follow_up_after_closure_reopens_the_case_and_is_answered() {
    use meldkluis::review::views::{self, AuthorView, CaseStatus, Content};
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let melder = Melder::new();
    let report = melder.report_envelope("Er verdwijnt geld uit de kas.", &["vp-a"]);
    let request = melder.report_request(&report, &[vault.recipient()]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    sync(&server, &mut vault);
    let case = *vault.state.cases.keys().next().unwrap();
    let overview = views::overview(&vault, today);
    assert_eq!(overview[0].subject.raw(), "Er verdwijnt geld uit de kas.");
    assert_eq!((overview[0].unread, overview[0].awaiting_answer), (1, true));
    views::mark_seen(&mut vault, &case).unwrap();
    assert_eq!(views::overview(&vault, today)[0].unread, 0);

    commands::send(
        &mut vault,
        &case,
        commands::closing_template(commands::Lang::Nl),
        Some(Status::Closed),
        today,
    )
    .unwrap();
    sync(&server, &mut vault);
    let closed_day = |server: &Server| -> Option<String> {
        let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
        db.query_row("SELECT closed_day FROM cases", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(closed_day(&server), Some(today.to_string()));

    // The melder writes after closure: the case shows it, unread and waiting.
    let follow_up = melder.follow_up_request("Het gaat gewoon door.", &[vault.recipient()]);
    assert_eq!(
        server
            .post_json("/api/v1/thread/messages", &follow_up)
            .status,
        201
    );
    sync(&server, &mut vault);
    let summary = &views::overview(&vault, today)[0];
    assert_eq!(summary.status, CaseStatus::Closed);
    assert_eq!((summary.unread, summary.awaiting_answer), (1, true));
    let view = views::case(&vault, &case, today).unwrap();
    let last = view.messages.last().unwrap();
    assert_eq!((last.number, &last.author), (3, &AuthorView::Melder));
    assert!(
        matches!(&last.content, Content::Readable(r) if r.text.raw() == "Het gaat gewoon door.")
    );

    // A plain reply is refused; reopening answers and the server keeps the case.
    assert!(matches!(
        commands::send(&mut vault, &case, "nog iets", None, today),
        Err(meldkluis::review::ReviewError::CaseClosed(_))
    ));
    assert!(matches!(
        commands::reopen(&mut vault, &case, "ok", today).map(|_| ()),
        Ok(())
    ));
    assert!(matches!(
        commands::reopen(&mut vault, &case, "twice", today),
        Err(meldkluis::review::ReviewError::CaseOpen(_))
    ));
    let summary = sync(&server, &mut vault);
    assert_eq!(summary.confirmed, 1);
    assert!(vault.state.pending.is_empty());
    assert_eq!(closed_day(&server), None);
    assert_eq!(
        views::overview(&vault, today)[0].status,
        CaseStatus::InProgress
    );
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    let texts: Vec<String> = melder
        .read_thread(&thread.json())
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(texts.last().map(String::as_str), Some("ok"));
}
