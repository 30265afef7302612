//! Inboxes the laptop must refuse (protocol.md §6, "What the laptop
//! checks"), against a real server: the server signs every inbox with its
//! own key, the laptop pins that key at its first signed inbox, and from
//! then on refuses an inbox that is unsigned, signed by another key,
//! answers an outbox it never made or an older one than it read, lists
//! messages out of order, or confirms a message it never sent. Each refusal
//! leaves the vault exactly as it was: state, files, queue.
//!
//! The forger of the first cases holds what the USB stick and the public
//! card give: the plaintext outbox (ids, counter) and the age recipient.

mod common;

use common::{Melder, Server, make_vault, reopen, sync};
use ed25519_dalek::SigningKey;
use meldkluis::format::bundle::{Inbox, InboxEntry};
use meldkluis::format::card::server_key_fingerprint;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::review::error::InboxMismatch;
use meldkluis::review::{ReviewError, Vault, commands};
use meldkluis::server::inbox_key;

/// Everything about the vault that an import could change.
fn snapshot(vault: &Vault) -> (String, Vec<String>) {
    let state = format!("{:?}", vault.state);
    let mut files: Vec<String> = walk(vault.dir());
    files.sort();
    (state, files)
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            out.push(format!(
                "{} {}",
                entry.path().display(),
                hex::encode(sha256(&bytes))
            ));
        }
    }
    out
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A forged melder message in `case`, numbered `seq`.
fn forged_entry(vault: &Vault, case: CaseId, seq: u64, text: &str) -> InboxEntry {
    let body = Envelope::new(Kind::FollowUp, text)
        .seal(&[vault.recipient()])
        .unwrap();
    InboxEntry {
        seq,
        id: MessageId(rand::random()),
        case,
        author: "melder".into(),
        kind: "follow-up".into(),
        day: Day::today(),
        body,
        attachments: Vec::new(),
    }
}

fn seal(
    vault: &Vault,
    signer: Option<&SigningKey>,
    answers: u64,
    applied: &[MessageId],
    entries: &[InboxEntry],
) -> Vec<u8> {
    let mut none =
        |_: &meldkluis::format::ids::UploadId| -> std::io::Result<Box<dyn std::io::Read>> {
            unreachable!("no attachments")
        };
    Inbox::seal_signed_to(
        Vec::new(),
        signer,
        &vault.card.id,
        answers,
        applied,
        entries,
        &vault.recipient(),
        &mut none,
    )
    .unwrap()
}

fn refused(vault: &mut Vault, dir: &std::path::Path, inbox: &[u8]) -> InboxMismatch {
    let before = snapshot(vault);
    let error = commands::import(vault, inbox).expect_err("the inbox must be refused");
    assert_eq!(snapshot(vault), before, "a refused inbox changed the vault");
    // And on disk: a vault opened afresh is the same.
    assert_eq!(snapshot(&reopen(vault, dir)).0, before.0);
    match error {
        ReviewError::InboxMismatch(why) => why,
        other => panic!("refused for another reason: {other}"),
    }
}

#[test]
fn forged_replayed_and_gapped_inboxes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let today = Day::today();
    let melder = Melder::new();
    let report = melder.report_envelope("Er verdwijnt geld uit de kas.", &["vp-a"]);
    let request = melder.report_request(&report, &[vault.recipient()]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);

    // The first signed inbox pins the server's key; its fingerprint is the
    // one check-config shows from the key file.
    let first_outbox = commands::outbox(&mut vault).unwrap();
    let first_inbox = server.sync(&first_outbox).body;
    let summary = commands::import(&mut vault, &first_inbox).unwrap();
    let server_key = inbox_key::read(&server.data_dir().join(inbox_key::FILE_NAME))
        .unwrap()
        .expect("the server made its key at first start");
    let fingerprint = server_key_fingerprint(&server_key.verifying_key().to_bytes());
    assert_eq!(
        summary.server_key_pinned.as_deref(),
        Some(fingerprint.as_str())
    );
    assert_eq!(summary.new_cases, 1);
    let case = *vault.state.cases.keys().next().unwrap();

    // A reply waits in the queue; its outbox is on the stick, not delivered.
    commands::send(&mut vault, &case, "Ontvangen.", None, today).unwrap();
    let queued = vault.state.pending[0].id;
    let _undelivered = commands::outbox(&mut vault).unwrap();
    let made = vault.state.counter;

    // 1. The attack from the issue: an unsigned inbox that says the queued
    // reply arrived, shows a fake melder message, and jumps the numbering.
    let fake = forged_entry(&vault, case, 1 << 62, "Ik trek mijn melding in.");
    let forged = seal(&vault, None, made, &[queued], &[fake]);
    assert_eq!(
        refused(&mut vault, dir.path(), &forged),
        InboxMismatch::Unsigned
    );

    // 2. Signed, but by a key of the forger's own.
    let own = SigningKey::from_bytes(&[7; 32]);
    let next = vault.state.inbox_ack + 1;
    let forged = seal(
        &vault,
        Some(&own),
        made,
        &[queued],
        &[forged_entry(&vault, case, next, "x")],
    );
    assert!(matches!(
        refused(&mut vault, dir.path(), &forged),
        InboxMismatch::OtherServerKey { known, .. } if known == fingerprint
    ));

    // The checks behind the signature hold on their own too (an inbox
    // signed with the server's real key, as a stolen key would sign it):
    // 3. messages out of the server's order;
    let swapped = [
        forged_entry(&vault, case, next + 1, "a"),
        forged_entry(&vault, case, next, "b"),
    ];
    let swapped = seal(&vault, Some(&server_key), made, &[], &swapped);
    assert_eq!(
        refused(&mut vault, dir.path(), &swapped),
        InboxMismatch::OutOfOrder {
            after: next + 1,
            found: next
        }
    );
    // 4. an answer to an outbox never made;
    let unmade = seal(&vault, Some(&server_key), made + 5, &[], &[]);
    assert_eq!(
        refused(&mut vault, dir.path(), &unmade),
        InboxMismatch::AnswersUnmade {
            answers: made + 5,
            made
        }
    );
    // 5. a confirmation of a message never sent.
    let stranger = MessageId([9; 16]);
    let unknown = seal(&vault, Some(&server_key), made, &[stranger], &[]);
    assert_eq!(
        refused(&mut vault, dir.path(), &unknown),
        InboxMismatch::UnknownApplied(stranger.to_hex())
    );

    // The real courier round trip still works: the reply is confirmed.
    let summary = sync(&server, &mut vault);
    assert_eq!((summary.confirmed, summary.server_key_pinned), (1, None));
    assert!(vault.state.pending.is_empty());

    // 6. The first inbox again, replayed after a newer one was read.
    let answered = vault.state.inbox_answers;
    assert!(
        matches!(refused(&mut vault, dir.path(), &first_inbox), InboxMismatch::Older { answers: 1, read } if read == answered)
    );

    // The same inbox read twice is no replay: nothing new, nothing refused.
    let again = server.sync(&commands::outbox(&mut vault).unwrap()).body;
    commands::import(&mut vault, &again).unwrap();
    let summary = commands::import(&mut vault, &again).unwrap();
    assert_eq!((summary.new_messages, summary.confirmed), (0, 0));
}

#[test]
fn an_unsigned_inbox_is_read_until_a_server_key_is_known() {
    // A server from before signing: its inboxes are read as before, and no
    // key is pinned.
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let case = CaseId([3; 16]);
    let melder = Melder::new();
    let mut report = melder.report_envelope("Oude server.", &["vp-a"]);
    report.kind = Kind::Report;
    let entry = InboxEntry {
        body: report.seal(&[vault.recipient()]).unwrap(),
        kind: "report".into(),
        ..forged_entry(&vault, case, 1, "x")
    };
    let inbox = seal(&vault, None, 0, &[], &[entry]);
    let summary = commands::import(&mut vault, &inbox).unwrap();
    assert_eq!((summary.new_cases, summary.server_key_pinned), (1, None));
    assert_eq!(vault.state.server_key, None);
}
