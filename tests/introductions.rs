//! A colleague joins a signed case (protocol.md §10.5), through a real
//! server: the counsellor the melder chose introduces a colleague; the
//! server adds the colleague to the case; the colleague's laptop takes the
//! case on from the introduction alone (the melder's key, reply key and
//! report as the melder signed them); the melder's next message reaches
//! both, and the colleague's reply verifies with the card the introduction
//! pinned. An introduction the server or a courier makes, or replays, is
//! refused or marked and changes nothing; so is an outbox that introduces
//! a counsellor the server does not know.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault, sync};
use meldkluis::format::bundle::InboxEntry;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Author, Envelope, Kind};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::format::signed::{Forwarded, message_hash};
use meldkluis::review::error::IntroduceRefusal;
use meldkluis::review::vault::Authenticity;
use meldkluis::review::views::{self, AuthorView, Content};
use meldkluis::review::{ReviewError, Vault, commands};

/// Two counsellors of one organisation on one server; the melder reports
/// to the first only, who imports it.
struct Setup {
    _dirs: [tempfile::TempDir; 2],
    a: Vault,
    b: Vault,
    server: Server,
    melder: Melder,
    case: CaseId,
}

fn setup() -> Setup {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut a = make_vault(dirs[0].path(), "vp-a");
    let b = make_vault(dirs[1].path(), "vp-b");
    let server =
        Server::start_with_cards(&[("vp-a", a.card.to_json()), ("vp-b", b.card.to_json())]);
    let melder = Melder::new();
    let report = melder.report_envelope_v2(
        "Er verdwijnt geld uit de kas.",
        std::slice::from_ref(&a.card),
    );
    let answer = server.post_json(
        "/api/v1/reports",
        &melder.report_request_signed(&report, &[a.card.recipient().unwrap()]),
    );
    assert!(answer.status < 300, "{}", answer.error());
    sync(&server, &mut a);
    let case = *a.state.cases.keys().next().unwrap();
    Setup {
        _dirs: dirs,
        a,
        b,
        server,
        melder,
        case,
    }
}

#[test]
fn an_introduced_colleague_reads_the_case_and_answers_genuinely() {
    let Setup {
        mut a,
        mut b,
        server,
        melder,
        case,
        _dirs,
    } = setup();
    let today = Day::today();
    // A follow-up before the introduction: forwarded too.
    let files = server.thread_files(&melder);
    let early = melder.follow_up_v2(
        "Het gaat om de kas van afdeling 3.",
        2,
        &message_hash(&files[0]),
    );
    let answer = server.post_json(
        "/api/v1/thread/messages",
        &melder.message_request_signed(
            &early,
            &[a.card.recipient().unwrap()],
            &melder.derived.melder_signing_key(),
        ),
    );
    assert!(answer.status < 300, "{}", answer.error());
    sync(&server, &mut a);

    let text = commands::introduction_template(commands::Lang::Nl);
    commands::introduce(&mut a, &case, &b.card, text, today).unwrap();
    assert!(a.state.cases[&case].pinned.contains_key("vp-b"));
    let summary = sync(&server, &mut a);
    assert_eq!(summary.confirmed, 1);

    // The melder's page sees the introduction: signed by the pinned card,
    // naming vp-b's card, its forwarded messages the melder's own.
    let files = server.thread_files(&melder);
    assert_eq!(files.len(), 3);
    let introduction = melder.open(&files[2]);
    assert!(introduction.verify(&a.card.verifying_key().unwrap()));
    assert_eq!(introduction.introduces, vec![b.card.clone()]);
    assert_eq!(introduction.forwarded.len(), 2);
    assert_eq!(introduction.forwarded[0].sha256, message_hash(&files[0]));

    // The colleague's first sync brings the whole case; the introduction
    // waits until the colleague compared the introducer's fingerprint, then
    // makes it readable.
    let summary = sync(&server, &mut b);
    assert_eq!(
        (summary.new_cases, summary.new_messages, summary.not_genuine),
        (1, 3, 0)
    );
    let waiting = views::case(&b, &case, today).unwrap();
    assert!(
        waiting
            .messages
            .iter()
            .all(|m| !matches!(m.content, Content::Readable(_))),
        "nothing of the case shows before the colleague confirms"
    );
    let introducer = waiting
        .pending_introduction
        .expect("waits for the colleague");
    assert_eq!(introducer.fingerprint, a.card.fingerprint());
    assert!(b.state.cases[&case].reply_recipient.is_none());
    commands::accept_introduction(&mut b, &case).unwrap();
    assert_eq!(b.state.colleagues["vp-a"], a.card);
    let record = &b.state.cases[&case];
    assert_eq!(
        record.thread.as_deref(),
        Some(melder.derived.thread().as_str())
    );
    assert_eq!(record.reply_recipient, a.state.cases[&case].reply_recipient);
    assert_eq!(record.melder_seq, 2);
    assert_eq!(record.pinned.len(), 2);
    let view = views::case(&b, &case, today).unwrap();
    let texts: Vec<String> = view
        .messages
        .iter()
        .map(|m| match &m.content {
            Content::Readable(r) => r.text.line(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(texts[0], "Er verdwijnt geld uit de kas.");
    assert_eq!(texts[1], "Het gaat om de kas van afdeling 3.");
    assert!(view.messages[0].forwarded && view.messages[1].forwarded);
    assert_eq!(view.messages[0].author, AuthorView::Melder);
    assert_eq!(view.messages[0].authenticity, Some(Authenticity::Verified));
    assert_eq!(view.messages[2].authenticity, Some(Authenticity::Verified));
    match &view.messages[2].content {
        Content::Readable(r) => {
            assert_eq!(r.introduces.len(), 1);
            assert_eq!(r.introduces[0].fingerprint, b.card.fingerprint());
        }
        other => panic!("the introduction is readable: {other:?}"),
    }

    // The melder writes again, to the cards now pinned: both read it as
    // the melder's, with nothing missing.
    let follow_up = melder.follow_up_v2("Ik heb nog een foto.", 3, &message_hash(&files[2]));
    let answer = server.post_json(
        "/api/v1/thread/messages",
        &melder.message_request_signed(
            &follow_up,
            &[a.card.recipient().unwrap(), b.card.recipient().unwrap()],
            &melder.derived.melder_signing_key(),
        ),
    );
    assert!(answer.status < 300, "{}", answer.error());
    for vault in [&mut a, &mut b] {
        let summary = sync(&server, vault);
        assert_eq!((summary.new_messages, summary.not_genuine), (1, 0));
        let last = vault.state.cases[&case].messages.last().unwrap().clone();
        assert_eq!(last.authenticity, Some(Authenticity::Verified));
        assert!(!last.gap_before);
    }

    // The colleague answers: signed with their card, which the melder
    // pinned from the introduction.
    commands::send(&mut b, &case, "Ik lees mee.", None, today).unwrap();
    sync(&server, &mut b);
    let files = server.thread_files(&melder);
    let reply = melder.open(files.last().unwrap());
    assert_eq!(reply.author.as_ref().unwrap().id, "vp-b");
    assert!(reply.verify(&b.card.verifying_key().unwrap()));
    assert_eq!(reply.seq, Some(1));
    assert_eq!(reply.prev, Some(Some(message_hash(&files[3]))));
}

#[test]
fn refused_introductions_change_nothing() {
    let Setup {
        mut a,
        b,
        server,
        case,
        _dirs,
        ..
    } = setup();
    let today = Day::today();
    let state = |v: &Vault| serde_json::to_string(&v.state.cases).unwrap();
    let before = state(&a);
    let refusal = |result: Result<MessageId, ReviewError>| match result {
        Err(ReviewError::CannotIntroduce { why, .. }) => why,
        other => panic!("refused: {other:?}"),
    };
    let own = a.card.clone();
    assert_eq!(
        refusal(commands::introduce(&mut a, &case, &own, "x", today)),
        IntroduceRefusal::OwnCard
    );
    // A card with a post-quantum key for a melder with a classical one.
    let dir = tempfile::tempdir().unwrap();
    let hybrid = meldkluis::review::Vault::init(
        dir.path(),
        age::secrecy::SecretString::from("another passphrase".to_owned()),
        meldkluis::review::vault::NewCounsellor {
            id: "vp-c".into(),
            name: "C".into(),
            organisation: "Ministerie van Testzaken".into(),
            org: None,
            kind: meldkluis::format::card::CounsellorKind::External,
            description: String::new(),
        },
    )
    .unwrap();
    assert_eq!(
        refusal(commands::introduce(&mut a, &case, &hybrid.card, "x", today)),
        IntroduceRefusal::KeyKindDiffers
    );
    let mut broken = b.card.clone();
    broken.signing_key = "not a key".into();
    assert!(matches!(
        commands::introduce(&mut a, &case, &broken, "x", today),
        Err(ReviewError::Card(_))
    ));
    assert_eq!(state(&a), before);
    assert!(a.state.pending.is_empty());

    // A counsellor the server has no card for: the laptop cannot know that,
    // so it queues the introduction (a second one is refused) …
    let dir = tempfile::tempdir().unwrap();
    let stranger = make_vault(dir.path(), "vp-x");
    commands::introduce(&mut a, &case, &stranger.card, "x", today).unwrap();
    assert_eq!(
        refusal(commands::introduce(
            &mut a,
            &case,
            &stranger.card,
            "x",
            today
        )),
        IntroduceRefusal::AlreadyOnCase
    );
    // … and the server refuses the outbox whole: the database is as it was.
    let tables = server.table_counts();
    let answer = server.sync(&commands::outbox(&mut a).unwrap());
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(String::from_utf8_lossy(&answer.body).contains("unknown_counsellor"));
    assert_eq!(server.table_counts(), tables);
}

/// An "introduction" of `colleague` in vp-a's name, forwarding one
/// message, signed with `key` (a forger's), encrypted to the colleague.
fn introduction_by(
    key: &ed25519_dalek::SigningKey,
    thread: String,
    colleague: &meldkluis::format::card::Card,
    forwarded: Forwarded,
    day: Day,
) -> Vec<u8> {
    let mut introduction = Envelope::new(Kind::Reply, "Mijn collega leest mee.");
    introduction.v = 2;
    introduction.author = Some(Author {
        id: "vp-a".into(),
        name: "Counsellor vp-a".into(),
    });
    introduction.thread = Some(thread);
    introduction.seq = Some(1);
    introduction.prev = Some(Some(forwarded.sha256.clone()));
    introduction.day = Some(day.to_string());
    introduction.introduces = vec![colleague.clone()];
    introduction.forwarded = vec![forwarded];
    introduction
        .seal_signed(&[colleague.recipient().unwrap()], key)
        .unwrap()
}

#[test]
fn a_forged_or_replayed_introduction_is_not_taken_on() {
    let Setup {
        mut a,
        mut b,
        server,
        melder,
        case,
        _dirs,
    } = setup();
    let today = Day::today();
    let files = server.thread_files(&melder);
    let report = melder.open(&files[0]);
    let forwarded = Forwarded::of(&report, &message_hash(&files[0])).unwrap();

    // The operator writes an "introduction" of vp-b in vp-a's name, with
    // the melder's real report forwarded, signed with a key of its own.
    let operator = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let sealed = introduction_by(
        &operator,
        melder.derived.thread(),
        &b.card,
        forwarded,
        today,
    );
    let entry = |id: MessageId, author: &str, body: &[u8], seq: u64| InboxEntry {
        seq,
        id,
        case,
        author: author.into(),
        kind: "reply".into(),
        day: today,
        body: body.to_vec(),
        attachments: Vec::new(),
    };
    let inbox = server.operators_inbox(
        &b,
        &[
            entry(MessageId::random(), "melder", &files[0], 1),
            entry(MessageId::random(), "vp-a", &sealed, 2),
        ],
    );
    let summary = commands::import(&mut b, &inbox).unwrap();
    assert_eq!(summary.not_genuine, 1);
    let record = &b.state.cases[&case];
    assert!(record.thread.is_none() && record.reply_recipient.is_none());
    assert_eq!(
        record.messages[1].authenticity,
        Some(Authenticity::NotGenuine)
    );
    assert!(matches!(
        commands::send(&mut b, &case, "x", None, today),
        Err(ReviewError::NoReplyRecipient(_))
    ));

    // The real introduction, then the same again under a new id: taken
    // on once, the repeat marked as a replay.
    commands::introduce(&mut a, &case, &b.card, "Mijn collega leest mee.", today).unwrap();
    sync(&server, &mut a);
    let files = server.thread_files(&melder);
    let real = files.last().unwrap().clone();
    b.state.cases.clear();
    let inbox = server.operators_inbox(
        &b,
        &[
            entry(MessageId::random(), "melder", &files[0], 3),
            entry(MessageId::random(), "vp-a", &real, 4),
            entry(MessageId::random(), "vp-a", &real, 5),
        ],
    );
    let summary = commands::import(&mut b, &inbox).unwrap();
    assert_eq!(summary.not_genuine, 0);
    assert!(
        b.state.cases[&case].thread.is_none(),
        "nothing before the colleague confirms"
    );
    commands::accept_introduction(&mut b, &case).unwrap();
    let record = &b.state.cases[&case];
    assert_eq!(
        record.thread.as_deref(),
        Some(melder.derived.thread().as_str())
    );
    let marks: Vec<_> = record.messages.iter().map(|m| m.authenticity).collect();
    assert_eq!(
        marks,
        vec![
            Some(Authenticity::Verified),
            Some(Authenticity::Verified),
            Some(Authenticity::Replayed)
        ]
    );

    // The same introduction in a case of the operator's own, now that the
    // introducer's card is a confirmed colleague: a copy, not taken on.
    let elsewhere = CaseId::random();
    let moved: Vec<InboxEntry> = [
        entry(MessageId::random(), "melder", &files[0], 6),
        entry(MessageId::random(), "vp-a", &real, 7),
    ]
    .into_iter()
    .map(|e| InboxEntry {
        case: elsewhere,
        ..e
    })
    .collect();
    let inbox = server.operators_inbox(&b, &moved);
    commands::import(&mut b, &inbox).unwrap();
    let copy = &b.state.cases[&elsewhere];
    assert!(copy.thread.is_none() && copy.reply_recipient.is_none());
    assert_eq!(copy.messages[1].authenticity, Some(Authenticity::Replayed));
}

/// Anyone can write a report, the operator too, and name any card in it:
/// an introduction is only as good as the introducer's card, so the
/// colleague compares that card's fingerprint before anything is taken on,
/// and no introduction takes over a case the laptop already reads.
#[test]
fn an_introduction_takes_over_nothing_and_a_made_up_one_shows_another_fingerprint() {
    let Setup {
        a,
        mut b,
        server,
        _dirs,
        ..
    } = setup();
    let today = Day::today();
    // vp-b's own case, of the older format, read and answerable.
    let honest = Melder::new();
    let report = honest.report_envelope("Een melding van het oude formaat.", &["vp-b"]);
    let answer = server.post_json(
        "/api/v1/reports",
        &honest.report_request(&report, &[b.card.recipient().unwrap()]),
    );
    assert!(answer.status < 300, "{}", answer.error());
    sync(&server, &mut b);
    let (own, own_before) = b
        .state
        .cases
        .iter()
        .find(|(_, c)| c.reply_recipient.is_some())
        .map(|(id, c)| (*id, c.clone()))
        .unwrap();

    // The operator, as a melder of its own, writes an opening that names a
    // "vp-a" card with its own signing key, and signs an introduction of
    // vp-b with that key, forwarding its opening.
    let operator = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let fake_a = meldkluis::format::card::Card {
        signing_key: STANDARD.encode(operator.verifying_key().as_bytes()),
        ..a.card.clone()
    };
    let fake = Melder::new();
    let opening = fake.report_envelope_v2("Verzonnen melding.", std::slice::from_ref(&fake_a));
    let request = fake.report_request_signed(&opening, &[fake_a.recipient().unwrap()]);
    let opening_file = STANDARD
        .decode(request["message"].as_str().unwrap())
        .unwrap();
    let [pq, classical] = fake.derived.reply_identities();
    let signed = Envelope::open(&opening_file, &[&pq, &classical]).unwrap();
    let forwarded = Forwarded::of(&signed, &message_hash(&opening_file)).unwrap();
    let sealed = introduction_by(&operator, fake.derived.thread(), &b.card, forwarded, today);
    let entry = |case: CaseId, author: &str, kind: &str, body: &[u8], seq: u64| InboxEntry {
        seq,
        id: MessageId::random(),
        case,
        author: author.into(),
        kind: kind.into(),
        day: today,
        body: body.to_vec(),
        attachments: Vec::new(),
    };
    let made_up = CaseId::random();
    let seq = b.state.inbox_ack;
    let inbox = server.operators_inbox(
        &b,
        &[
            entry(own, "vp-a", "reply", &sealed, seq + 1),
            entry(made_up, "melder", "report", &opening_file, seq + 2),
            entry(made_up, "vp-a", "reply", &sealed, seq + 3),
        ],
    );
    commands::import(&mut b, &inbox).unwrap();

    // vp-b's own case: the melder's reply key and everything else as before.
    let kept = &b.state.cases[&own];
    assert_eq!(kept.reply_recipient, own_before.reply_recipient);
    assert!(kept.thread.is_none() && kept.pending_introduction.is_none());
    // The made-up case waits, showing the card the operator made: its
    // fingerprint is not the one the organisation publishes for vp-a.
    let view = views::case(&b, &made_up, today).unwrap();
    let shown = view
        .pending_introduction
        .expect("it holds up as far as the laptop can see");
    assert_ne!(shown.fingerprint, a.card.fingerprint());
    assert_eq!(shown.fingerprint, fake_a.fingerprint());
    assert!(matches!(
        commands::send(&mut b, &made_up, "x", None, today),
        Err(ReviewError::NoReplyRecipient(_))
    ));
    assert!(b.state.colleagues.is_empty());
}
