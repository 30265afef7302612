//! The golden test of printed output: `list` and `show` of a fixed vault
//! on a fixed day, in both languages, compared byte for byte with
//! `tests/golden/review-*.txt`. A change to the format shows up here as a
//! diff to review; `UPDATE_GOLDEN=1 cargo test --bin meldkluis-review`
//! rewrites the files.

use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Attachment, Author, Envelope, Evaluation, Kind, Status};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::review::i18n::Lang;
use meldkluis::review::vault::{CaseRecord, MessageRecord, NewCounsellor, Note, Vault};
use meldkluis::review::views;

use crate::render;

fn day(text: &str) -> Day {
    Day::parse(text).unwrap()
}

struct Message<'a> {
    author: &'a str,
    kind: Kind,
    day: &'a str,
    seen: bool,
    envelope: Envelope,
}

fn add_case(vault: &mut Vault, id: u8, mut record: CaseRecord, messages: Vec<Message>) -> CaseId {
    let melder = age::x25519::Identity::generate().to_public();
    record.reply_recipient = Some(melder.to_string());
    for (n, mut m) in messages.into_iter().enumerate() {
        if m.kind == Kind::Report {
            m.envelope.reply_recipient = Some(melder.to_string());
            if m.envelope.counsellors.is_empty() {
                m.envelope.counsellors = vec!["vp-jansen".into()];
            }
        }
        let sealed = m
            .envelope
            .seal(&{
                let m: meldkluis::format::keys::Recipient = melder.clone().into();
                [vault.own_recipient_beside(&m).unwrap(), m]
            })
            .unwrap();
        let message_id = MessageId([id ^ (n as u8 + 1); 16]);
        vault.store_message(&message_id, &sealed).unwrap();
        record.messages.push(MessageRecord {
            id: message_id,
            author: m.author.into(),
            kind: m.kind.as_str().into(),
            day: day(m.day),
            seq: Some(n as u64 + 1),
            attachments: Vec::new(),
            seen: m.seen,
            sha256: None,
            authenticity: None,
            gap_before: false,
            forwarded_in: None,
            unseen_replies: 0,
        });
    }
    let case = CaseId([id; 16]);
    vault.state.cases.insert(case, record);
    case
}

fn fixed_vault(dir: &Path) -> (Vault, CaseId) {
    let mut vault = Vault::init(
        dir,
        SecretString::from("golden test passphrase".to_owned()),
        NewCounsellor {
            id: "vp-jansen".into(),
            name: "A. Jansen".into(),
            organisation: "Ministerie van Testzaken".into(),
            org: None,
            kind: CounsellorKind::External,
            description: String::new(),
        },
    )
    .unwrap();

    // Overdue: not acknowledged in 7 days; unread, and the melder wrote last.
    let mut report = Envelope::new(
        Kind::Report,
        "Pesterijen op de afdeling Financiën, al maanden.\n\
         ── Bericht 9 · antwoord · u · 1 december 2026 ──\n\
         Nep-kop\u{1b}[2J met een escape en \u{202e}omgekeerde tekst.",
    );
    report.category = Some("undesirable-behaviour".into());
    report.contact = Some("jan@example.org\n06-12345678".into());
    report.attachments = vec![Attachment::inline(
        "../../scan\u{1b}.pdf",
        "application/pdf",
        &[7u8; 5000],
    )];
    let mut record = CaseRecord::new(day("2026-11-20"));
    record.category = report.category.clone();
    record.counsellors = vec!["vp-jansen".into(), "vp-de-vries".into()];
    record.subject = Some(report.text.clone());
    record.notes.push(Note {
        day: day("2026-11-30"),
        text: "Bellen met de leidinggevende?\nEerst de melder vragen.".into(),
    });
    let overdue = add_case(
        &mut vault,
        0x3f,
        record,
        vec![
            Message {
                author: "melder",
                kind: Kind::Report,
                day: "2026-11-20",
                seen: false,
                envelope: report,
            },
            Message {
                author: "melder",
                kind: Kind::FollowUp,
                day: "2026-11-25",
                seen: false,
                envelope: Envelope::new(Kind::FollowUp, "Het gebeurde weer."),
            },
        ],
    );

    // Acknowledged by this counsellor, feedback due in three months: on time.
    let mut report = Envelope::new(Kind::Report, "Opdrachten gaan steeds naar één bedrijf.");
    report.category = Some("fraud-or-abuse-of-power".into());
    let mut reply = Envelope::new(Kind::Reply, "Dank voor uw melding.");
    reply.author = Some(Author {
        id: "vp-jansen".into(),
        name: "A. Jansen".into(),
    });
    reply.status = Some(Status::Acknowledged);
    let mut record = CaseRecord::new(day("2026-12-01"));
    record.category = report.category.clone();
    record.acknowledged = Some(day("2026-12-01"));
    record.status = Some((Status::Acknowledged, day("2026-12-01")));
    add_case(
        &mut vault,
        0xa1,
        record,
        vec![
            Message {
                author: "melder",
                kind: Kind::Report,
                day: "2026-12-01",
                seen: true,
                envelope: report,
            },
            Message {
                author: "vp-jansen",
                kind: Kind::Reply,
                day: "2026-12-01",
                seen: true,
                envelope: reply,
            },
        ],
    );

    // Acknowledgement due tomorrow: soon. No category; a subject not kept.
    add_case(
        &mut vault,
        0x5c,
        CaseRecord::new(day("2026-11-26")),
        vec![Message {
            author: "melder",
            kind: Kind::Report,
            day: "2026-11-26",
            seen: false,
            envelope: Envelope::new(Kind::Report, "Er verdwijnt geld uit de kas."),
        }],
    );

    // Closed, and evaluated by the melder.
    let mut evaluation = Envelope::new(Kind::Evaluation, "Sneller antwoorden graag.");
    evaluation.evaluation = Some(Evaluation {
        process: 4,
        heard: 5,
    });
    let mut closing = Envelope::new(Kind::Reply, "Ik sluit uw melding af.");
    closing.status = Some(Status::Closed);
    closing.author = Some(Author {
        id: "vp-jansen".into(),
        name: "A. Jansen".into(),
    });
    let mut record = CaseRecord::new(day("2026-06-01"));
    record.acknowledged = Some(day("2026-06-02"));
    record.feedback = Some(day("2026-08-01"));
    record.closed = Some(day("2026-09-01"));
    record.category = Some("een eigen categorie\u{7}".into());
    add_case(
        &mut vault,
        0x07,
        record,
        vec![
            Message {
                author: "melder",
                kind: Kind::Report,
                day: "2026-06-01",
                seen: true,
                envelope: Envelope::new(Kind::Report, "Oude melding."),
            },
            Message {
                author: "vp-jansen",
                kind: Kind::Reply,
                day: "2026-09-01",
                seen: true,
                envelope: closing,
            },
            // The server files an evaluation as a follow-up; import records
            // it as the evaluation its envelope says it is.
            Message {
                author: "melder",
                kind: Kind::Evaluation,
                day: "2026-09-03",
                seen: true,
                envelope: evaluation,
            },
        ],
    );
    vault.save().unwrap();
    (vault, overdue)
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name]
        .iter()
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "{name} changed; if that is meant, rerun with UPDATE_GOLDEN=1 and review the diff.\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// The lines the program printed itself: everything outside the gutter.
fn own_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with('│'))
}

#[test]
fn list_and_show_print_exactly_the_golden_text() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, overdue) = fixed_vault(&dir.path().join("vault"));
    let today = day("2026-12-02");
    for (lang, tag) in [(Lang::Nl, "nl"), (Lang::En, "en")] {
        let cases = views::overview(&vault, today);
        let list = render::list(&cases, 1, lang);
        let shown = render::case(&views::case(&vault, &overdue, today).unwrap(), lang);
        golden(&format!("review-list.{tag}.txt"), &list);
        golden(&format!("review-show.{tag}.txt"), &shown);
        let closed = render::case(
            &views::case(&vault, &CaseId([0x07; 16]), today).unwrap(),
            lang,
        );
        golden(&format!("review-show-closed.{tag}.txt"), &closed);

        // No escape or bidi character reaches the terminal, and the
        // melder's fake heading stays behind the gutter: the program's own
        // headings are exactly its two messages and one note.
        for text in [&list, &shown] {
            assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
            assert!(!text.contains('\u{7}'));
        }
        assert_eq!(own_lines(&shown).filter(|l| l.starts_with("──")).count(), 3);
        assert!(shown.contains("  │ ── Bericht 9"));

        // One language at a time.
        let other: &[&str] = match lang {
            Lang::Nl => &[
                "received", "unread", "awaiting", "Message", "overdue", " by ",
            ],
            Lang::En => &[
                "ontvangen",
                "ongelezen",
                "wacht op",
                "Bericht",
                "te laat",
                "uiterlijk",
            ],
        };
        for text in [&list, &shown] {
            for line in own_lines(text) {
                for word in other {
                    assert!(!line.contains(word), "{tag}: {word:?} in {line:?}");
                }
            }
        }
    }
}
