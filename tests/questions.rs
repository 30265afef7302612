//! Advice questions end to end against a real server (protocol.md §3): a
//! melder asks a counsellor something without reporting, the counsellor
//! answers without statutory terms running, the melder turns the question
//! into a report in the same thread, and the figures count the two apart.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault, sync};
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::review::deadlines::{Urgency, add_days};
use meldkluis::review::views::{self, AuthorView, Content};
use meldkluis::review::{Vault, commands, stats};
use serde_json::json;

/// A later message of the thread with whatever envelope the melder's page
/// (or a modified one) sends.
fn post_in_thread(server: &Server, melder: &Melder, envelope: &Envelope, vault: &Vault) {
    let recipients = [vault.recipient(), melder.derived.reply_recipient().into()];
    let request = json!({
        "lookup_key": melder.derived.lookup_key.to_hex(),
        "message": STANDARD.encode(envelope.seal(&recipients).unwrap()),
    });
    let answer = server.post_json("/api/v1/thread/messages", &request);
    assert_eq!(answer.status, 201, "{}", answer.error());
}

fn question(melder: &Melder, text: &str) -> Envelope {
    let mut envelope = melder.report_envelope(text, &["vp-a"]);
    envelope.kind = Kind::Question;
    envelope
}

#[test]
fn a_question_is_answered_without_terms_then_becomes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let melder = Melder::new();

    // The question travels exactly like a report: the server cannot tell.
    let asked = question(&melder, "Mag mijn leidinggevende dit van mij vragen?");
    let request = melder.report_request(&asked, &[vault.recipient()]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    sync(&server, &mut vault);
    let case = *vault.state.cases.keys().next().unwrap();
    let summary = &views::overview(&vault, today)[0];
    assert!(summary.question);
    assert_eq!(summary.asked, Some(today));
    assert_eq!(summary.urgency, Urgency::Question);
    assert_eq!(
        summary.subject.raw(),
        "Mag mijn leidinggevende dit van mij vragen?"
    );
    // No statutory terms: not in the open deadlines, not overdue a year on.
    assert!(views::open_deadlines(&vault, today).is_empty());
    let next_year = add_days(today, 400);
    assert_eq!(
        views::overview(&vault, next_year)[0].urgency,
        Urgency::Question
    );
    let view = views::case(&vault, &case, today).unwrap();
    assert_eq!(view.messages[0].kind, Some(Kind::Question));
    let figures = stats::compute(vault.state.cases.values(), next_year);
    assert_eq!((figures.cases, figures.questions), (0, 1));
    assert_eq!(figures.acknowledged_in_time, (0, 0));
    let nl = meldkluis::review::i18n::Lang::Nl.words();
    assert_eq!(nl.urgency_word(&summary.urgency), "adviesvraag");

    // The counsellor answers; the melder reads the answer.
    commands::send(
        &mut vault,
        &case,
        "Nee, dat hoeft u niet te zeggen.",
        None,
        today,
    )
    .unwrap();
    sync(&server, &mut vault);
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    let read = melder.read_thread(&thread.json());
    assert_eq!(read[0].kind, Kind::Question);
    assert_eq!(read[1].text, "Nee, dat hoeft u niet te zeggen.");

    // A question sent later in the thread changes nothing: it is a message.
    let mut late_question = question(&melder, "Nog een vraag.");
    late_question.kind = Kind::Question;
    post_in_thread(&server, &melder, &late_question, &vault);

    // The melder turns the question into a report, in the same thread.
    let later = add_days(today, 3);
    let mut report = melder.report_envelope("Ik meld het nu: het gebeurt elke week.", &["vp-a"]);
    report.category = Some("undesirable-behaviour".into());
    post_in_thread(&server, &melder, &report, &vault);
    sync(&server, &mut vault);
    let record = &vault.state.cases[&case];
    assert!(!record.question, "the report ends the question");
    assert_eq!(record.asked, Some(today));
    // The answer to the question does not acknowledge the report.
    assert_eq!(record.acknowledged, None);
    assert_eq!(record.category.as_deref(), Some("undesirable-behaviour"));
    let summary = &views::overview(&vault, later)[0];
    assert!(!summary.question);
    assert!(matches!(
        summary.urgency,
        Urgency::Pending { .. } | Urgency::Soon { .. }
    ));
    assert_eq!(
        summary.subject.raw(),
        "Ik meld het nu: het gebeurt elke week."
    );
    assert_eq!(views::open_deadlines(&vault, later).len(), 1);
    let view = views::case(&vault, &case, later).unwrap();
    let kinds: Vec<Option<Kind>> = view.messages.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            Some(Kind::Question),
            Some(Kind::Reply),
            Some(Kind::Question),
            Some(Kind::Report)
        ]
    );
    assert!(
        view.messages
            .iter()
            .all(|m| matches!(m.content, Content::Readable(_)))
    );
    assert_eq!(view.messages[3].author, AuthorView::Melder);
    let figures = stats::compute(vault.state.cases.values(), later);
    assert_eq!(
        (
            figures.cases,
            figures.questions,
            figures.questions_turned_into_reports
        ),
        (1, 0, 1)
    );
    let csv = figures.csv();
    assert!(csv.contains("total,advice_questions,0\n"), "{csv}");
    assert!(
        csv.contains("total,reports_that_began_as_questions,1\n"),
        "{csv}"
    );

    // From now on the statutory terms run: the next message acknowledges.
    commands::send(&mut vault, &case, "Ontvangen.", None, later).unwrap();
    assert_eq!(vault.state.cases[&case].acknowledged, Some(later));
}

#[test]
fn a_report_sent_again_in_a_report_thread_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let melder = Melder::new();
    let report = melder.report_envelope("Eerste melding.", &["vp-a"]);
    let request = melder.report_request(&report, &[vault.recipient()]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    sync(&server, &mut vault);
    let case = *vault.state.cases.keys().next().unwrap();
    commands::send(&mut vault, &case, "Ontvangen.", None, today).unwrap();
    sync(&server, &mut vault);
    let before = vault.state.cases[&case].clone();

    // A modified page sends a second report and a question into the thread:
    // both are shown as the melder's messages; the case and its terms stay.
    post_in_thread(
        &server,
        &melder,
        &melder.report_envelope("Tweede.", &["vp-a"]),
        &vault,
    );
    post_in_thread(&server, &melder, &question(&melder, "Vraag?"), &vault);
    sync(&server, &mut vault);
    let after = &vault.state.cases[&case];
    assert_eq!(after.received, before.received);
    assert_eq!(after.acknowledged, before.acknowledged);
    assert_eq!(after.subject, before.subject);
    assert!(!after.question && after.asked.is_none());
    assert_eq!(after.messages.len(), before.messages.len() + 2);
}

#[test]
fn a_question_without_a_reply_recipient_or_counsellors_is_refused() {
    let melder = Melder::new();
    let mut envelope = question(&melder, "Vraag");
    envelope.reply_recipient = None;
    assert!(envelope.to_padded().is_err());
    let mut envelope = question(&melder, "Vraag");
    envelope.counsellors.clear();
    assert!(envelope.to_padded().is_err());
    let mut envelope = question(&melder, "Vraag");
    envelope.status = Some(meldkluis::format::envelope::Status::Closed);
    assert!(envelope.to_padded().is_err());
    assert!(question(&melder, "Vraag").to_padded().is_ok());
}
