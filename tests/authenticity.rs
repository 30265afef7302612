//! Protocol v2 on the counsellor's side (protocol.md §10.4), through a real
//! server: a signed report pins the melder's key; the laptop answers with
//! signed replies the melder can check against the pinned card; and a
//! message an operator slips into the thread — unsigned, signed by another
//! key, naming another thread — is kept but marked "not from the melder",
//! changes nothing in the case and asks for no answer; a withheld message
//! shows as a gap, a repeated one as a replay.
//!
//! The operator's messages go in through the API here; a row written
//! straight into the database reaches the laptop as the same inbox item.

mod common;

use common::{Melder, Server, make_vault, sync};
use meldkluis::format::bundle::InboxEntry;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Envelope, Kind, Status};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::format::signed::message_hash;
use meldkluis::review::vault::Authenticity;
use meldkluis::review::views::{self, AuthorView};
use meldkluis::review::{Vault, commands};

fn post(server: &Server, request: &serde_json::Value) {
    let answer = server.post_json("/api/v1/thread/messages", request);
    assert!(answer.status < 300, "{}", answer.error());
}

/// A v2 report from `melder` to the vault's counsellor, imported.
fn reported(server: &Server, vault: &mut Vault, melder: &Melder) -> CaseId {
    let recipients = [vault.card.recipient().unwrap()];
    let report = melder.report_envelope_v2(
        "Er verdwijnt geld uit de kas.",
        std::slice::from_ref(&vault.card),
    );
    let answer = server.post_json(
        "/api/v1/reports",
        &melder.report_request_signed(&report, &recipients),
    );
    assert!(answer.status < 300, "{}", answer.error());
    let summary = sync(server, vault);
    assert_eq!((summary.new_cases, summary.not_genuine), (1, 0));
    *vault.state.cases.keys().next().unwrap()
}

#[test]
fn a_signed_conversation_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let case_id = reported(&server, &mut vault, &melder);
    let case = &vault.state.cases[&case_id];
    assert_eq!(
        case.thread.as_deref(),
        Some(melder.derived.thread().as_str())
    );
    assert_eq!(case.messages[0].authenticity, Some(Authenticity::Verified));

    commands::send(
        &mut vault,
        &case_id,
        "Uw melding is ontvangen.",
        Some(Status::Acknowledged),
        Day::today(),
    )
    .unwrap();
    sync(&server, &mut vault);
    let files = server.thread_files(&melder);
    assert_eq!(files.len(), 2);
    // What the melder's page checks (§10.4): signed by the pinned card,
    // in this thread, numbered 1, after the report, with its own day.
    let reply = melder.open(&files[1]);
    assert_eq!(reply.v, 2);
    assert!(reply.verify(&vault.card.verifying_key().unwrap()));
    assert!(!reply.verify(&melder.derived.melder_signing_key().verifying_key()));
    assert_eq!(
        reply.thread.as_deref(),
        Some(melder.derived.thread().as_str())
    );
    assert_eq!(reply.seq, Some(1));
    assert_eq!(reply.prev, Some(Some(message_hash(&files[0]))));
    assert_eq!(reply.day, Some(Day::today().to_string()));
    assert_eq!(reply.status, Some(Status::Acknowledged));
    // The report itself carries the card it was encrypted to.
    let report = melder.open(&files[0]);
    assert_eq!(report.cards, vec![vault.card.clone()]);

    // The melder answers after the reply; the laptop takes it as genuine.
    let recipients = [vault.card.recipient().unwrap()];
    let follow_up = melder.follow_up_v2("Het was in maart.", 2, &message_hash(&files[1]));
    post(
        &server,
        &melder.message_request_signed(
            &follow_up,
            &recipients,
            &melder.derived.melder_signing_key(),
        ),
    );
    let summary = sync(&server, &mut vault);
    assert_eq!((summary.new_messages, summary.not_genuine), (1, 0));
    let case = &vault.state.cases[&case_id];
    let last = case.messages.last().unwrap();
    assert_eq!(
        (last.authenticity, last.gap_before),
        (Some(Authenticity::Verified), false)
    );
    assert_eq!(case.melder_seq, 2);
    assert!(views::overview(&vault, Day::today())[0].awaiting_answer);

    // A second reply is numbered 2 and names the follow-up.
    commands::send(&mut vault, &case_id, "Dank u.", None, Day::today()).unwrap();
    sync(&server, &mut vault);
    let files = server.thread_files(&melder);
    let second = melder.open(files.last().unwrap());
    assert_eq!(second.seq, Some(2));
    assert_eq!(second.prev, Some(Some(message_hash(&files[2]))));
    assert!(second.verify(&vault.card.verifying_key().unwrap()));
}

#[test]
fn forged_withheld_and_replayed_melder_messages_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let case_id = reported(&server, &mut vault, &melder);
    commands::send(
        &mut vault,
        &case_id,
        "Ontvangen.",
        Some(Status::Acknowledged),
        Day::today(),
    )
    .unwrap();
    sync(&server, &mut vault);
    let recipients = [vault.card.recipient().unwrap()];
    let report_hash = vault.state.cases[&case_id].messages[0]
        .sha256
        .clone()
        .unwrap();
    let forger = Melder::new();
    let forger_key = forger.derived.melder_signing_key();

    // (a) The operator's unsigned "Ik trek mijn melding in".
    post(
        &server,
        &melder.follow_up_request("Ik trek mijn melding in.", &recipients),
    );
    // (b) Signed by the forger's key, claiming the melder's thread.
    let claimed = melder.follow_up_v2("Noem de afdeling maar niet.", 2, &report_hash);
    post(
        &server,
        &melder.message_request_signed(&claimed, &recipients, &forger_key),
    );
    // (c) An evaluation signed in the forger's own thread.
    let mut evaluation = forger.follow_up_v2("", 2, &report_hash);
    evaluation.kind = Kind::Evaluation;
    evaluation.evaluation = Some(meldkluis::format::envelope::Evaluation {
        process: 1,
        heard: 1,
    });
    post(
        &server,
        &melder.message_request_signed(&evaluation, &recipients, &forger_key),
    );
    let summary = sync(&server, &mut vault);
    assert_eq!((summary.new_messages, summary.not_genuine), (3, 3));
    let case = &vault.state.cases[&case_id];
    for m in &case.messages[2..] {
        assert_eq!(
            m.authenticity,
            Some(Authenticity::NotGenuine),
            "{:?}",
            m.kind
        );
    }
    // Nothing of them reached the case: no evaluation, still the melder's
    // first number, and nothing waits for an answer.
    assert_eq!((case.evaluation, case.melder_seq), (None, 1));
    assert!(!views::overview(&vault, Day::today())[0].awaiting_answer);
    let view = views::case(&vault, &case_id, Day::today()).unwrap();
    assert!(matches!(view.messages[2].author, AuthorView::NotMelder));
    assert!(matches!(view.messages[0].author, AuthorView::Melder));

    // (d) The melder's message 2 was withheld; message 3 arrives.
    let body = {
        let third = melder.follow_up_v2("Heeft u mijn vorige bericht gekregen?", 3, &report_hash);
        melder.message_request_signed(&third, &recipients, &melder.derived.melder_signing_key())
    };
    post(&server, &body);
    let summary = sync(&server, &mut vault);
    assert_eq!((summary.new_messages, summary.not_genuine), (1, 0));
    // (e) And the operator hands the very same message over again, as a new
    // one: the server would refuse the same bytes twice, so the operator
    // makes the inbox itself, signed with the server's own key.
    let third = vault.state.cases[&case_id].messages.last().unwrap().clone();
    let replay = InboxEntry {
        seq: vault.state.inbox_ack + 1,
        id: MessageId(rand::random()),
        case: case_id,
        author: "melder".into(),
        kind: "follow-up".into(),
        day: Day::today(),
        body: vault.read_message(&third.id).unwrap(),
        attachments: Vec::new(),
    };
    let inbox = server.operators_inbox(&vault, &[replay]);
    let summary = commands::import(&mut vault, &inbox).unwrap();
    assert_eq!((summary.new_messages, summary.not_genuine), (1, 1));
    let case = &vault.state.cases[&case_id];
    let n = case.messages.len();
    assert_eq!(
        (
            case.messages[n - 2].authenticity,
            case.messages[n - 2].gap_before
        ),
        (Some(Authenticity::Verified), true)
    );
    assert_eq!(
        case.messages[n - 1].authenticity,
        Some(Authenticity::Replayed)
    );
    assert_eq!(case.melder_seq, 3);

    // (f) A next message names one this laptop never saw.
    let fourth = melder.follow_up_v2(
        "Nog iets.",
        4,
        &message_hash(b"a message the server withheld"),
    );
    post(
        &server,
        &melder.message_request_signed(&fourth, &recipients, &melder.derived.melder_signing_key()),
    );
    sync(&server, &mut vault);
    let last = vault.state.cases[&case_id].messages.last().unwrap().clone();
    assert_eq!(
        (last.authenticity, last.gap_before),
        (Some(Authenticity::Verified), true)
    );

    // The marks survive a reopened vault, and the reply after them names
    // the last genuine message, not the replay.
    let vault = common::reopen(&vault, dir.path());
    let case = &vault.state.cases[&case_id];
    assert_eq!(
        case.messages[n - 1].authenticity,
        Some(Authenticity::Replayed)
    );
    let mut vault = vault;
    commands::send(
        &mut vault,
        &case_id,
        "Ik heb bericht 3 en 4.",
        None,
        Day::today(),
    )
    .unwrap();
    sync(&server, &mut vault);
    let files = server.thread_files(&melder);
    let reply = melder.open(files.last().unwrap());
    assert_eq!(reply.prev.clone().unwrap().unwrap(), last.sha256.unwrap());
}

#[test]
fn an_older_unsigned_case_still_works_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let recipients = [vault.card.recipient().unwrap()];
    let report = melder.report_envelope("Oud formaat.", &["vp-jansen"]);
    assert!(server.submit_report(&melder, &report, &recipients).status < 300);
    sync(&server, &mut vault);
    let case_id = *vault.state.cases.keys().next().unwrap();
    let case = &vault.state.cases[&case_id];
    assert_eq!(case.thread, None);
    assert_eq!(case.messages[0].authenticity, Some(Authenticity::Older));
    // An unsigned follow-up in an unsigned thread is what v1 is: older.
    post(
        &server,
        &melder.follow_up_request("Aanvulling.", &recipients),
    );
    let summary = sync(&server, &mut vault);
    assert_eq!(summary.not_genuine, 0);
    commands::send(&mut vault, &case_id, "Ontvangen.", None, Day::today()).unwrap();
    sync(&server, &mut vault);
    let files = server.thread_files(&melder);
    assert_eq!(melder.open(files.last().unwrap()).v, 1);
    // But a signed message in it cannot be checked against anything.
    let signed = melder.follow_up_v2("Ondertekend?", 2, &message_hash(&files[0]));
    post(
        &server,
        &melder.message_request_signed(&signed, &recipients, &melder.derived.melder_signing_key()),
    );
    assert_eq!(sync(&server, &mut vault).not_genuine, 1);
}

#[test]
fn rotated_keys_keep_signed_threads_genuine_unless_the_signing_key_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let case_id = reported(&server, &mut vault, &melder);
    let pinned = melder.open(&server.thread_files(&melder)[0]).cards[0].clone();
    let passphrase = || age::secrecy::SecretString::from("test passphrase".to_owned());

    // A routine rotation (e.g. to post-quantum keys): the signing key stays,
    // so a reply in the old thread still verifies with the pinned card.
    vault.rotate_keys(passphrase()).unwrap();
    assert_ne!(vault.card.age_recipient, pinned.age_recipient);
    assert_eq!(vault.card.signing_key, pinned.signing_key);
    commands::send(&mut vault, &case_id, "Nog steeds ik.", None, Day::today()).unwrap();
    let newest = vault.state.cases[&case_id].messages.last().unwrap().id;
    let reply = melder.open(&vault.read_message(&newest).unwrap());
    assert!(reply.verify(&pinned.verifying_key().unwrap()));

    // After a theft the signing key is replaced: the pinned card no longer
    // vouches for the counsellor's replies, as the manual warns.
    vault.replace_signing_key(passphrase()).unwrap();
    assert_ne!(vault.card.signing_key, pinned.signing_key);
    commands::send(&mut vault, &case_id, "Nieuwe sleutel.", None, Day::today()).unwrap();
    let newest = vault.state.cases[&case_id].messages.last().unwrap().id;
    let reply = melder.open(&vault.read_message(&newest).unwrap());
    assert!(!reply.verify(&pinned.verifying_key().unwrap()));
    assert!(reply.verify(&vault.card.verifying_key().unwrap()));
}

#[test]
fn a_reply_in_a_colleagues_name_is_marked_unless_their_pinned_key_signed_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(&dir.path().join("a"), "vp-a");
    let colleague = make_vault(&dir.path().join("b"), "vp-b");
    let server = Server::start_with_cards(&[
        ("vp-a", vault.card.to_json()),
        ("vp-b", colleague.card.to_json()),
    ]);
    let melder = Melder::new();
    let recipients = [
        vault.card.recipient().unwrap(),
        colleague.card.recipient().unwrap(),
    ];
    let report = melder.report_envelope_v2(
        "Aan u beiden.",
        &[vault.card.clone(), colleague.card.clone()],
    );
    assert!(
        server
            .post_json(
                "/api/v1/reports",
                &melder.report_request_signed(&report, &recipients)
            )
            .status
            < 300
    );
    sync(&server, &mut vault);
    let case_id = *vault.state.cases.keys().next().unwrap();
    assert_eq!(vault.state.cases[&case_id].pinned.len(), 2);

    // The operator writes "replies" this laptop can read: one in the
    // colleague's name signed with a forger's key, one in this counsellor's
    // own name, and one the colleague's pinned key really signed (as if the
    // colleague had encrypted it to this laptop too).
    let reply = |author: &Vault, text: &str, key: &ed25519_dalek::SigningKey, seq: u64| {
        let mut e = Envelope::new(Kind::Reply, text);
        e.v = 2;
        e.author = Some(meldkluis::format::envelope::Author {
            id: author.card.id.clone(),
            name: author.card.name.clone(),
        });
        e.thread = Some(melder.derived.thread());
        e.seq = Some(seq);
        e.prev = Some(Some(
            vault.state.cases[&case_id].messages[0]
                .sha256
                .clone()
                .unwrap(),
        ));
        e.day = Some(Day::today().to_string());
        e.seal_signed(&[vault.recipient()], key).unwrap()
    };
    let forger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let bodies = [
        (
            "vp-b",
            reply(&colleague, "Ik ben vp-b, echt waar.", &forger, 1),
        ),
        ("vp-a", reply(&vault, "Ik ben uzelf.", &forger, 1)),
        (
            "vp-b",
            reply(&colleague, "Echt van vp-b.", colleague.signing_key(), 5),
        ),
    ];
    let entries: Vec<InboxEntry> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, (author, body))| InboxEntry {
            seq: vault.state.inbox_ack + 1 + i as u64,
            id: MessageId(rand::random()),
            case: case_id,
            author: author.into(),
            kind: "reply".into(),
            day: Day::today(),
            body,
            attachments: Vec::new(),
        })
        .collect();
    let inbox = server.operators_inbox(&vault, &entries);
    commands::import(&mut vault, &inbox).unwrap();
    let view = views::case(&vault, &case_id, Day::today()).unwrap();
    let marks: Vec<_> = view.messages[1..].iter().map(|m| m.authenticity).collect();
    assert_eq!(
        marks,
        [
            Some(Authenticity::NotGenuine),
            Some(Authenticity::NotGenuine),
            Some(Authenticity::Verified)
        ]
    );
    assert!(matches!(view.messages[1].author, AuthorView::NotMelder));
    assert!(
        matches!(view.messages[2].author, AuthorView::NotMelder),
        "not shown as 'you'"
    );
    assert!(matches!(view.messages[3].author, AuthorView::Counsellor(_)));
    // A colleague's numbers are the colleague's: the melder's stay at 1.
    assert_eq!(vault.state.cases[&case_id].melder_seq, 1);
}

/// The last messages of a thread withheld from the melder cannot show on
/// the page (nothing after them names them), but the laptop sees it once
/// the melder writes again: their message names an earlier message than
/// the counsellor's latest reply.
#[test]
fn a_melder_message_written_before_seeing_a_reply_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let case_id = reported(&server, &mut vault, &melder);
    let today = Day::today();
    commands::send(
        &mut vault,
        &case_id,
        "Ontvangen.",
        Some(Status::Acknowledged),
        today,
    )
    .unwrap();
    commands::send(
        &mut vault,
        &case_id,
        "Kunt u iets meer vertellen?",
        None,
        today,
    )
    .unwrap();
    sync(&server, &mut vault);
    let files = server.thread_files(&melder);
    assert_eq!(files.len(), 3);
    let recipients = [vault.card.recipient().unwrap()];
    let key = melder.derived.melder_signing_key();
    // The server withheld both replies: the melder's page knew only the report.
    let blind = melder.follow_up_v2("Is mijn melding aangekomen?", 2, &message_hash(&files[0]));
    post(
        &server,
        &melder.message_request_signed(&blind, &recipients, &key),
    );
    sync(&server, &mut vault);
    // Then the melder saw everything and answered the last reply.
    let files = server.thread_files(&melder);
    let seen = melder.follow_up_v2("Het was in maart.", 3, &message_hash(&files[3]));
    post(
        &server,
        &melder.message_request_signed(&seen, &recipients, &key),
    );
    sync(&server, &mut vault);

    let view = views::case(&vault, &case_id, today).unwrap();
    let unseen: Vec<u32> = view.messages.iter().map(|m| m.unseen_replies).collect();
    assert_eq!(unseen, vec![0, 0, 0, 2, 0]);
    assert!(view.messages.iter().all(|m| !m.gap_before));
    assert_eq!(view.messages[3].authenticity, Some(Authenticity::Verified));
}

/// A conversation belongs to one case: the operator who copies its signed
/// report into a case of its own (an inbox it makes and signs with the
/// server's key) gets a case that holds a copy, marked as one, that pins
/// nothing and takes no answer; the real case is untouched.
#[test]
fn a_conversation_copied_into_another_case_is_marked_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let real = reported(&server, &mut vault, &melder);
    let before = serde_json::to_string(&vault.state.cases[&real]).unwrap();
    let report = vault.state.cases[&real].messages[0].clone();
    let copy = CaseId(rand::random());
    let entry = InboxEntry {
        seq: vault.state.inbox_ack + 1,
        id: MessageId(rand::random()),
        case: copy,
        author: "melder".into(),
        kind: "report".into(),
        day: Day::today(),
        body: vault.read_message(&report.id).unwrap(),
        attachments: Vec::new(),
    };
    let inbox = server.operators_inbox(&vault, &[entry]);
    let summary = commands::import(&mut vault, &inbox).unwrap();
    assert_eq!((summary.new_cases, summary.not_genuine), (1, 1));
    let copied = &vault.state.cases[&copy];
    assert_eq!(
        copied.messages[0].authenticity,
        Some(Authenticity::Replayed)
    );
    assert!(copied.thread.is_none() && copied.reply_recipient.is_none());
    assert!(matches!(
        commands::send(&mut vault, &copy, "Wie bent u?", None, Day::today()),
        Err(meldkluis::review::ReviewError::NoReplyRecipient(_))
    ));
    assert_eq!(
        serde_json::to_string(&vault.state.cases[&real]).unwrap(),
        before
    );
}

/// A message id names one message. The operator who first delivers a
/// forged text under an id in a throw-away case, then the real message
/// under the same id in the real case (so the kept forged file would be
/// shown under the real message's verdict), gets the second inbox refused
/// whole, and nothing changes.
#[test]
fn a_message_id_given_twice_refuses_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-jansen");
    let server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melder = Melder::new();
    let real = reported(&server, &mut vault, &melder);
    let files = server.thread_files(&melder);
    let recipients = [vault.card.recipient().unwrap()];
    let forged =
        melder.follow_up_request("FORGED: ik trek mijn melding in", &recipients)["message"]
            .as_str()
            .map(|m| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, m).unwrap())
            .unwrap();
    let genuine = melder
        .follow_up_v2("Het was in maart.", 2, &message_hash(&files[0]))
        .seal_signed(
            &[
                recipients[0].clone(),
                melder.derived.reply_recipient_for(&recipients),
            ],
            &melder.derived.melder_signing_key(),
        )
        .unwrap();
    let id = MessageId(rand::random());
    let entry = |case: CaseId, body: Vec<u8>, seq: u64| InboxEntry {
        seq,
        id,
        case,
        author: "melder".into(),
        kind: "follow-up".into(),
        day: Day::today(),
        body,
        attachments: Vec::new(),
    };
    let seq = vault.state.inbox_ack;
    let first = server.operators_inbox(
        &vault,
        &[entry(CaseId(rand::random()), forged.clone(), seq + 1)],
    );
    commands::import(&mut vault, &first).unwrap();
    let state = serde_json::to_string(&vault.state.cases).unwrap();
    for (case, body) in [(real, genuine), (real, forged)] {
        let second = server.operators_inbox(&vault, &[entry(case, body, seq + 2)]);
        let refused = commands::import(&mut vault, &second).unwrap_err();
        assert!(
            matches!(
                refused,
                meldkluis::review::ReviewError::InboxMismatch(
                    meldkluis::review::error::InboxMismatch::ReusedId(_)
                )
            ),
            "{refused}"
        );
        assert_eq!(serde_json::to_string(&vault.state.cases).unwrap(), state);
    }
}
