//! Runs every committed seed (seeds/<target>/*) — and, when present, the
//! corpus a local `cargo fuzz run` grew (corpus/<target>/*) and any crash
//! it saved (artifacts/<target>/*) — through the same checks the fuzz
//! binaries run, without libFuzzer:
//!
//!   cargo test --manifest-path fuzz/Cargo.toml --no-default-features
//!
//! `write_seeds` (ignored) regenerates seeds/ from the shared test vectors.

use std::path::{Path, PathBuf};

/// A target's name (its seeds/ folder) and its checks.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("code", meldkluis_fuzz::code),
    ("envelope", meldkluis_fuzz::envelope),
    ("outbox", meldkluis_fuzz::outbox),
    ("inbox", meldkluis_fuzz::inbox),
    ("age_header", meldkluis_fuzz::age_header),
    ("card", meldkluis_fuzz::card),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn replay_seeds_and_local_corpus() {
    for (target, check) in TARGETS {
        let seeds = files(&root().join("seeds").join(target));
        assert!(seeds.len() >= 3, "{target}: too few seeds");
        let mut total = 0;
        for dir in ["seeds", "corpus", "artifacts"] {
            for file in files(&root().join(dir).join(target)) {
                let data = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{} fails its check", file.display());
                total += 1;
            }
        }
        println!("{target}: {total} inputs replayed");
    }
}

/// The seeds must reach the accepting paths, or the fuzzer would start
/// from nothing but refusals.
#[test]
fn seeds_include_accepted_inputs() {
    use meldkluis::format::{agefile, bundle, card, code, envelope};
    let accepted = |target: &str, ok: &dyn Fn(&[u8]) -> bool| {
        let n = files(&root().join("seeds").join(target))
            .iter()
            .filter(|f| ok(&std::fs::read(f).unwrap()))
            .count();
        println!("{target}: {n} seeds accepted");
        assert!(n >= 2, "{target}: only {n} seeds are accepted");
    };
    accepted("code", &|d| {
        code::RetrievalCode::parse(&String::from_utf8_lossy(d)).is_ok()
    });
    accepted("envelope", &|d| envelope::Envelope::from_padded(d).is_ok());
    accepted("outbox", &|d| {
        bundle::Outbox::parse(&manifest_mode(d, true)).is_ok()
    });
    accepted("inbox", &|d| {
        bundle::Inbox::parse(&manifest_mode(d, false)).is_ok()
    });
    accepted("age_header", &|d| {
        agefile::AgeBlob::parse_message(d.to_vec()).is_ok()
    });
    accepted("card", &|d| card::Card::parse(d).is_ok());
}

/// Mirrors the harness's input modes (src/lib.rs, `bundle_bytes`).
fn manifest_mode(data: &[u8], signature: bool) -> Vec<u8> {
    let Some((&mode, manifest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 0x80 == 0 {
        return data.to_vec();
    }
    let sig = "A".repeat(86) + "==";
    let mut entries: Vec<(String, &[u8])> = vec![("manifest.json".into(), manifest)];
    if signature && mode & 1 != 0 {
        entries.push(("manifest.sig".into(), sig.as_bytes()));
    }
    for (bit, id) in [
        (2, meldkluis_fuzz::FIXTURE_IDS[0]),
        (4, meldkluis_fuzz::FIXTURE_IDS[1]),
    ] {
        if mode & bit != 0 {
            entries.push((format!("items/{id}.age"), meldkluis_fuzz::FIXTURE_AGE));
        }
        if bit == 2 && mode & 8 != 0 {
            entries.push((
                format!("attachments/{}.age", meldkluis_fuzz::FIXTURE_UPLOAD),
                meldkluis_fuzz::FIXTURE_AGE,
            ));
        }
    }
    meldkluis_fuzz::tar(&entries)
}

#[test]
#[ignore = "regenerates seeds/; run by hand after a format change"]
fn write_seeds() {
    use meldkluis::format::bundle::{EntryAttachment, Inbox, InboxEntry, Outbox, OutboxKind};
    use meldkluis::format::card::{Card, CounsellorKind};
    use meldkluis::format::code::RetrievalCode;
    use meldkluis::format::day::Day;
    use meldkluis::format::envelope::Envelope;
    use meldkluis::format::ids::{CaseId, MessageId, UploadId};
    use serde_json::Value;

    let vectors = root().join("../tests/vectors");
    let read_json = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(vectors.join(name)).unwrap()).unwrap()
    };
    let seeds = root().join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let identity: age::x25519::Identity = meldkluis_fuzz::TEST_IDENTITY.parse().unwrap();
    let recipient = identity.to_public();

    // code: every input of tests/vectors/code.json.
    let codes = read_json("code.json");
    for (group, key) in [
        ("valid", "display"),
        ("typed", "input"),
        ("invalid", "input"),
    ] {
        for (i, case) in codes[group].as_array().unwrap().iter().enumerate() {
            write(
                "code",
                &format!("{group}-{i}"),
                case[key].as_str().unwrap().as_bytes(),
            );
        }
    }
    write(
        "code",
        "generated",
        RetrievalCode::generate().display().as_bytes(),
    );

    // envelope: the vector envelopes (valid and invalid), unpadded and padded.
    let envelopes = read_json("envelope.json");
    for (group, list) in [
        ("valid", &envelopes["cases"]),
        ("invalid", &envelopes["invalid"]),
    ] {
        for (i, case) in list.as_array().unwrap().iter().enumerate() {
            let json = serde_json::to_vec(&case["envelope"]).unwrap();
            write("envelope", &format!("{group}-{i}"), &json);
        }
    }
    let first: Envelope =
        serde_json::from_value(envelopes["cases"][0]["envelope"].clone()).unwrap();
    write("envelope", "padded-0", &first.to_padded().unwrap());

    // age_header: files from Rust and from the JS bundle, the fixture,
    // a passphrase file, armour, a truncated file.
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    };
    for (name, field, list) in [
        (
            "rust",
            "ciphertext_base64",
            read_json("age.json")["from_rust"].clone(),
        ),
        (
            "js",
            "ciphertext_base64",
            read_json("age-from-js.json")["from_js"].clone(),
        ),
    ] {
        for (i, case) in list.as_array().unwrap().iter().enumerate() {
            if let Some(text) = case[field].as_str() {
                write("age_header", &format!("{name}-{i}"), &b64(text));
            }
        }
    }
    write("age_header", "fixture-message", meldkluis_fuzz::FIXTURE_AGE);
    let message = first.seal(std::slice::from_ref(&recipient)).unwrap();
    write("age_header", "sealed-envelope", &message);
    write("age_header", "truncated", &message[..message.len() - 100]);
    let scrypt = age::encrypt(
        &age::scrypt::Recipient::new(age::secrecy::SecretString::from("x".to_owned())),
        b"x",
    )
    .unwrap();
    write("age_header", "scrypt", &scrypt);
    write(
        "age_header",
        "armour",
        b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
    );

    // card: a good card, one with org, and refusals.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let card = Card {
        format: "meldkluis-card".into(),
        v: 1,
        id: "vp-jansen".into(),
        name: "Mr. A. Jansen".into(),
        organisation: "Ministerie van Voorbeeldzaken".into(),
        org: None,
        kind: CounsellorKind::External,
        description: "Externe vertrouwenspersoon.".into(),
        lang: None,
        age_recipient: recipient.to_string(),
        signing_key: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().as_bytes())
        },
    };
    write("card", "good", card.to_json().as_bytes());
    let mut with_org = card.clone();
    with_org.org = Some("bzk".into());
    with_org.kind = CounsellorKind::Internal;
    write("card", "with-org", with_org.to_json().as_bytes());
    let mut bad = card.clone();
    bad.id = "../keys".into();
    write("card", "bad-id", bad.to_json().as_bytes());
    write(
        "card",
        "extra-field",
        card.to_json().replacen('{', "{\"x\":1,", 1).as_bytes(),
    );

    // outbox: real bundles signed by a key the harness does not use, and
    // manifest-mode inputs around the fixture items.
    let fixture = meldkluis_fuzz::FIXTURE_AGE.to_vec();
    let ids = meldkluis_fuzz::FIXTURE_IDS.map(|s| MessageId::parse(s).unwrap());
    let case = CaseId::parse("0123456789abcdef0123456789abcdef").unwrap();
    write(
        "outbox",
        "empty",
        &Outbox::build("vp-jansen", 1, 0, &[], &signing),
    );
    write(
        "outbox",
        "one-reply",
        &Outbox::build(
            "vp-jansen",
            2,
            5,
            &[(ids[0], case, OutboxKind::Reply, fixture.clone())],
            &signing,
        ),
    );
    write(
        "outbox",
        "reply-and-close",
        &Outbox::build(
            "vp-jansen",
            3,
            7,
            &[
                (ids[0], case, OutboxKind::Reply, fixture.clone()),
                (ids[1], case, OutboxKind::Close, fixture.clone()),
            ],
            &signing,
        ),
    );
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&fixture))
    };
    let outbox_manifest = |items: &[(&str, &str)]| {
        let items: Vec<String> = items
            .iter()
            .map(|(id, kind)| {
                format!(r#"{{"id":"{id}","case":"{case}","kind":"{kind}","file":"items/{id}.age","sha256":"{sha}"}}"#)
            })
            .collect();
        format!(
            r#"{{"format":"meldkluis-outbox","v":1,"counsellor":"vp-jansen","counter":4,"inbox_ack":0,"items":[{}]}}"#,
            items.join(",")
        )
    };
    let put = |target: &str, name: &str, mode: u8, manifest: String| {
        let mut bytes = vec![mode];
        bytes.extend_from_slice(manifest.as_bytes());
        write(target, name, &bytes);
    };
    put("outbox", "manifest-empty", 0x81, outbox_manifest(&[]));
    put(
        "outbox",
        "manifest-one",
        0x83,
        outbox_manifest(&[(FIXTURE_A, "reply")]),
    );
    put(
        "outbox",
        "manifest-two",
        0x87,
        outbox_manifest(&[(FIXTURE_A, "reply"), (FIXTURE_B, "close")]),
    );
    put(
        "outbox",
        "manifest-missing-item",
        0x81,
        outbox_manifest(&[(FIXTURE_A, "reply")]),
    );

    // inbox: the tar inside real sealed inboxes, and manifest-mode inputs.
    let day = Day::parse("2026-11-22").unwrap();
    let entry = |id: MessageId, seq: u64, author: &str, kind: &str| InboxEntry {
        seq,
        id,
        case,
        author: author.into(),
        kind: kind.into(),
        day,
        body: fixture.clone(),
        attachments: Vec::new(),
    };
    let upload = UploadId::parse(meldkluis_fuzz::FIXTURE_UPLOAD).unwrap();
    let mut with_attachment = entry(ids[0], 1, "melder", "report");
    with_attachment.attachments.push(EntryAttachment {
        upload,
        length: fixture.len() as u64,
    });
    let sealed = Inbox::seal_with(
        "vp-jansen",
        3,
        &[],
        &[with_attachment],
        &[(upload, fixture.clone())].into_iter().collect(),
        &recipient,
    )
    .unwrap();
    write(
        "inbox",
        "report-with-attachment",
        &age::decrypt(&identity, &sealed).unwrap(),
    );
    for (name, entries, applied) in [
        ("empty", vec![], vec![]),
        (
            "one-report",
            vec![entry(ids[0], 1, "melder", "report")],
            vec![ids[1]],
        ),
        (
            "report-and-reply",
            vec![
                entry(ids[0], 1, "melder", "report"),
                entry(ids[1], 2, "vp-bakker", "reply"),
            ],
            vec![],
        ),
    ] {
        let sealed = Inbox::seal("vp-jansen", 3, applied, &entries, &recipient).unwrap();
        let tar = age::decrypt(&identity, &sealed).unwrap();
        write("inbox", name, &tar);
    }
    let inbox_manifest = |items: &[(&str, u64)]| {
        let items: Vec<String> = items
            .iter()
            .map(|(id, seq)| {
                format!(r#"{{"seq":{seq},"id":"{id}","case":"{case}","author":"melder","kind":"report","day":"2026-11-22","file":"items/{id}.age","sha256":"{sha}"}}"#)
            })
            .collect();
        format!(
            r#"{{"format":"meldkluis-inbox","v":1,"counsellor":"vp-jansen","answers_counter":1,"day":"2026-11-22","applied":[],"items":[{}]}}"#,
            items.join(",")
        )
    };
    put("inbox", "manifest-empty", 0x80, inbox_manifest(&[]));
    put(
        "inbox",
        "manifest-one",
        0x82,
        inbox_manifest(&[(FIXTURE_A, 1)]),
    );
    put(
        "inbox",
        "manifest-two",
        0x86,
        inbox_manifest(&[(FIXTURE_A, 1), (FIXTURE_B, 2)]),
    );
    let attachment = format!(
        r#"[{{"upload":"{u}","file":"attachments/{u}.age","length":{}}}]"#,
        fixture.len(),
        u = meldkluis_fuzz::FIXTURE_UPLOAD
    );
    put(
        "inbox",
        "manifest-attachment",
        0x8e,
        inbox_manifest(&[(FIXTURE_A, 1), (FIXTURE_B, 2)]).replacen(
            r#""sha256""#,
            &format!(r#""attachments":{attachment},"sha256""#),
            1,
        ),
    );
}

const FIXTURE_A: &str = meldkluis_fuzz::FIXTURE_IDS[0];
const FIXTURE_B: &str = meldkluis_fuzz::FIXTURE_IDS[1];
