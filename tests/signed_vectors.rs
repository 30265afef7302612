//! Protocol v2's signed envelopes (protocol.md §10): tests/vectors/signed.json,
//! read by this test and by tests/js/signed.test.mjs, so the Rust and the
//! JavaScript sides sign, read and refuse alike.
//!
//! Everything here is deterministic (Ed25519 signs deterministically, no
//! encryption is involved), so the file is compared, not only read:
//! `MELDKLUIS_WRITE_VECTORS=signed cargo test --test signed_vectors`
//! rewrites it, and only a protocol change may change it.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use meldkluis::format::card::{Card, CounsellorKind};
use meldkluis::format::code::RetrievalCode;
use meldkluis::format::derive::Derived;
use meldkluis::format::envelope::{Author, Envelope, Kind, Status};
use meldkluis::format::signed::{Forwarded, LABEL, message_hash, verifying_key};
use serde_json::{Value, json};

const FILE: &str = "signed.json";

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(FILE)
}

/// The codes of derive.json, whose melder keys this file pins.
const CODES: [&str; 3] = [
    "000000000000000000000000",
    "ZZZZZZZZZZZZZZZZZZZZZZNR",
    "0123456789ABCDEFGHJKMNEZ",
];

fn derived(canonical: &str) -> Derived {
    Derived::from_code(&RetrievalCode::parse(canonical).unwrap())
}

/// A counsellor whose keys are fixed: its age recipient is a reply
/// recipient of derive.json (any valid recipient will do), its signing key
/// the seed 07 × 32.
fn counsellor() -> (Card, SigningKey) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let card = Card {
        format: "meldkluis-card".into(),
        v: 1,
        id: "vp-jansen".into(),
        name: "Mr. A. Jansen".into(),
        organisation: "Ministerie van Voorbeeldzaken".into(),
        org: None,
        kind: CounsellorKind::External,
        description: "Externe vertrouwenspersoon.".into(),
        lang: Some("nl".into()),
        age_recipient: derived(CODES[1]).reply_recipient().to_string(),
        signing_key: STANDARD.encode(key.verifying_key().as_bytes()),
    };
    (card, key)
}

/// A second counsellor, to be introduced: signing seed 08 × 32.
fn colleague() -> (Card, SigningKey) {
    let key = SigningKey::from_bytes(&[8; 32]);
    let (card, _) = counsellor();
    let card = Card {
        id: "vp-bakker".into(),
        name: "Mw. B. Bakker".into(),
        signing_key: STANDARD.encode(key.verifying_key().as_bytes()),
        ..card
    };
    (card, key)
}

/// The unpadded outer JSON of `envelope` signed by `key`.
fn signed_text(envelope: &Envelope, key: &SigningKey) -> String {
    let padded = envelope.to_padded_signed(key).unwrap();
    String::from_utf8(padded).unwrap().trim_end().to_string()
}

fn report(melder: &Derived, card: &Card) -> Envelope {
    let mut e = Envelope::new(
        Kind::Report,
        "Mijn leidinggevende laat facturen dubbel betalen.",
    );
    e.v = 2;
    e.lang = Some("nl".into());
    e.reply_recipient = Some(melder.reply_recipient().to_string());
    e.counsellors = vec![card.id.clone()];
    e.cards = vec![card.clone()];
    e.thread = Some(melder.thread());
    e.seq = Some(1);
    e.prev = Some(None);
    e
}

fn follow_up(melder: &Derived, prev: &str) -> Envelope {
    let mut e = Envelope::new(
        Kind::FollowUp,
        "Het gebeurde ook in maart — één keer of vaker.",
    );
    e.v = 2;
    e.lang = Some("nl".into());
    e.thread = Some(melder.thread());
    e.seq = Some(2);
    e.prev = Some(Some(prev.into()));
    e
}

fn reply(melder: &Derived, card: &Card, prev: &str) -> Envelope {
    let mut e = Envelope::new(Kind::Reply, "Uw melding is ontvangen.");
    e.v = 2;
    e.lang = Some("nl".into());
    e.author = Some(Author {
        id: card.id.clone(),
        name: card.name.clone(),
    });
    e.status = Some(Status::Acknowledged);
    e.thread = Some(melder.thread());
    e.seq = Some(1);
    e.prev = Some(Some(prev.into()));
    e.day = Some("2026-12-02".into());
    e
}

/// A reply that introduces `colleague` (§10.5), forwarding the report.
fn introduction(melder: &Derived, card: &Card, colleague: &Card, report: Forwarded) -> Envelope {
    let mut e = Envelope::new(Kind::Reply, "Mijn collega leest mee.");
    e.v = 2;
    e.lang = Some("nl".into());
    e.author = Some(Author {
        id: card.id.clone(),
        name: card.name.clone(),
    });
    e.thread = Some(melder.thread());
    e.seq = Some(2);
    e.prev = Some(Some(report.sha256.clone()));
    e.day = Some("2026-12-02".into());
    e.introduces = vec![colleague.clone()];
    e.forwarded = vec![report];
    e
}

/// Rewrites one field of the signed inner text and keeps the signature:
/// what a forger who edits a message gets.
fn tampered(outer: &str, from: &str, to: &str) -> String {
    let mut value: Value = serde_json::from_str(outer).unwrap();
    let inner = value["signed"].as_str().unwrap().replace(from, to);
    assert_ne!(
        inner,
        value["signed"].as_str().unwrap(),
        "{from} is in the message"
    );
    value["signed"] = json!(inner);
    value.to_string()
}

fn with_outer(outer: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(outer).unwrap();
    edit(&mut value);
    value.to_string()
}

/// An envelope that breaks a v2 rule, signed anyway (the signature is
/// fine; the content is refused).
fn signed_raw(inner: &Value, key: &SigningKey) -> String {
    let signed = inner.to_string();
    let sig = key.sign(&[LABEL, signed.as_bytes()].concat());
    json!({"v": 2, "signed": signed, "sig": STANDARD.encode(sig.to_bytes())}).to_string()
}

fn generate() -> Value {
    let (card, counsellor_key) = counsellor();
    let melder = derived(CODES[0]);
    let melder_key = melder.melder_signing_key();
    let counsellor_b64 = card.signing_key.clone();
    let melder_b64 = melder.thread();
    // Stand-ins for the age files the chain names (any bytes hash alike).
    let report_hash = message_hash(b"the report's age file");
    let reply_hash = message_hash(b"the acknowledgement's age file");

    let report_text = signed_text(&report(&melder, &card), &melder_key);
    let follow_up_text = signed_text(&follow_up(&melder, &reply_hash), &melder_key);
    let reply_text = signed_text(&reply(&melder, &card, &report_hash), &counsellor_key);
    let report_value: Value = serde_json::from_str(&report_text).unwrap();
    let (colleague, _) = colleague();
    let forwarded_report = Forwarded {
        sha256: report_hash.clone(),
        message: serde_json::from_str(&report_text).unwrap(),
    };
    let introduction_text = signed_text(
        &introduction(&melder, &card, &colleague, forwarded_report),
        &counsellor_key,
    );
    let inner = |text: &str| -> Value {
        let outer: Value = serde_json::from_str(text).unwrap();
        serde_json::from_str(outer["signed"].as_str().unwrap()).unwrap()
    };

    let valid = |name: &str, text: &str, key: &str| {
        json!({"name": name, "plaintext": text, "key_b64": key, "valid": true,
               "reason": "", "inner": inner(text)})
    };
    let invalid = |name: &str, text: &str, key: &str, reason: &str| json!({"name": name, "plaintext": text, "key_b64": key, "valid": false, "reason": reason});
    let report_inner = inner(&report_text);
    let mut no_cards = report_inner.clone();
    no_cards.as_object_mut().unwrap().remove("cards");
    let mut follow_up_first = inner(&follow_up_text);
    follow_up_first["prev"] = Value::Null;
    let mut reply_no_day = inner(&reply_text);
    reply_no_day.as_object_mut().unwrap().remove("day");
    let mut upper_prev = inner(&follow_up_text);
    upper_prev["prev"] = json!(reply_hash.to_uppercase());
    let mut wrong_thread = inner(&follow_up_text);
    wrong_thread["thread"] = json!("AAAA");
    let mut seq_zero = inner(&reply_text);
    seq_zero["seq"] = json!(0);
    let mut forwarded_alone = inner(&introduction_text);
    forwarded_alone
        .as_object_mut()
        .unwrap()
        .remove("introduces");
    let mut forwarded_follow_up = inner(&follow_up_text);
    forwarded_follow_up["forwarded"] = inner(&introduction_text)["forwarded"].clone();

    let messages = vec![
        valid("report, signed by the melder", &report_text, &melder_b64),
        valid(
            "follow-up, signed by the melder",
            &follow_up_text,
            &melder_b64,
        ),
        valid(
            "acknowledgement, signed by the counsellor",
            &reply_text,
            &counsellor_b64,
        ),
        valid(
            "an introduction of a colleague, forwarding the report, signed by the counsellor",
            &introduction_text,
            &counsellor_b64,
        ),
        invalid(
            "a reply checked against the melder's key",
            &reply_text,
            &melder_b64,
            "signature",
        ),
        invalid(
            "a follow-up checked against the counsellor's key",
            &follow_up_text,
            &counsellor_b64,
            "signature",
        ),
        invalid(
            "a reply whose text was changed after signing",
            &tampered(&reply_text, "ontvangen", "afgewezen"),
            &counsellor_b64,
            "signature",
        ),
        invalid(
            "a reply whose author was changed after signing",
            &tampered(&reply_text, "Mr. A. Jansen", "Mr. B. Bakker"),
            &counsellor_b64,
            "signature",
        ),
        invalid(
            "a reply whose day was moved after signing",
            &tampered(&reply_text, "2026-12-02", "2026-11-02"),
            &counsellor_b64,
            "signature",
        ),
        invalid(
            "a signature of 63 bytes",
            &with_outer(&reply_text, |v| {
                v["sig"] = json!(STANDARD.encode([0u8; 63]));
            }),
            &counsellor_b64,
            "malformed",
        ),
        invalid(
            "an unknown field in the outer object",
            &with_outer(&reply_text, |v| v["note"] = json!("x")),
            &counsellor_b64,
            "malformed",
        ),
        invalid(
            "an unknown field in the inner envelope",
            &signed_raw(
                &{
                    let mut i = inner(&reply_text);
                    i["note"] = json!("x");
                    i
                },
                &counsellor_key,
            ),
            &counsellor_b64,
            "malformed",
        ),
        invalid(
            "a v1 envelope inside a v2 outer object",
            &signed_raw(
                &json!({"v": 1, "kind": "follow-up", "text": "Oud formaat, nieuw jasje."}),
                &melder_key,
            ),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "a v1 envelope carrying a v2 field",
            &json!({"v": 1, "kind": "follow-up", "text": "x", "seq": 2}).to_string(),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "a report without its cards",
            &signed_raw(&no_cards, &melder_key),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "a follow-up with prev null",
            &signed_raw(&follow_up_first, &melder_key),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "a reply without its day",
            &signed_raw(&reply_no_day, &counsellor_key),
            &counsellor_b64,
            "malformed",
        ),
        invalid(
            "prev in upper-case hex",
            &signed_raw(&upper_prev, &melder_key),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "a thread that is no key",
            &signed_raw(&wrong_thread, &melder_key),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "forwarded messages without an introduction",
            &signed_raw(&forwarded_alone, &counsellor_key),
            &counsellor_b64,
            "malformed",
        ),
        invalid(
            "forwarded messages in a follow-up",
            &signed_raw(&forwarded_follow_up, &melder_key),
            &melder_b64,
            "malformed",
        ),
        invalid(
            "seq 0",
            &signed_raw(&seq_zero, &counsellor_key),
            &counsellor_b64,
            "malformed",
        ),
    ];

    let melder_keys: Vec<Value> = CODES
        .iter()
        .map(|code| {
            let d = derived(code);
            json!({"canonical": code, "seed_hex": hex::encode(d.melder_signing_key().to_bytes()),
                   "public_b64": d.thread()})
        })
        .collect();
    let signing: Vec<Value> = [
        (&report_value, &melder_key),
        (
            &serde_json::from_str::<Value>(&reply_text).unwrap(),
            &counsellor_key,
        ),
    ]
    .iter()
    .map(|(outer, key)| {
        json!({"seed_hex": hex::encode(key.to_bytes()), "signed": outer["signed"],
                   "sig_b64": outer["sig"]})
    })
    .collect();
    json!({
        "about": "protocol.md §10: melder signing keys (§10.3), signed envelopes (§10.2) and what a reader must refuse. A message is valid when it parses, follows every rule, and its signature verifies with key_b64.",
        "label": String::from_utf8(LABEL.to_vec()).unwrap(),
        "counsellor_card": serde_json::to_value(&card).unwrap(),
        "melder_keys": melder_keys,
        "messages": messages,
        "signing": signing,
    })
}

/// What a reader decides for one vector: `""` (genuine), `"malformed"` or
/// `"signature"`.
fn judge(plaintext: &str, key_b64: &str) -> &'static str {
    match Envelope::from_padded(plaintext.as_bytes()) {
        Err(_) => "malformed",
        Ok(envelope) if envelope.v != 2 => "malformed",
        Ok(envelope) => {
            let key = verifying_key(key_b64).unwrap();
            if envelope.verify(&key) {
                ""
            } else {
                "signature"
            }
        }
    }
}

#[test]
fn signed_vectors() {
    let generated = generate();
    if std::env::var("MELDKLUIS_WRITE_VECTORS").is_ok_and(|v| v == "all" || v == "signed") {
        std::fs::write(
            path(),
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "signed.json differs from what this version makes"
    );

    for m in stored["melder_keys"].as_array().unwrap() {
        let d = derived(m["canonical"].as_str().unwrap());
        assert_eq!(
            hex::encode(d.melder_signing_key().to_bytes()),
            m["seed_hex"]
        );
        assert_eq!(d.thread(), m["public_b64"]);
    }
    for m in stored["messages"].as_array().unwrap() {
        let verdict = judge(
            m["plaintext"].as_str().unwrap(),
            m["key_b64"].as_str().unwrap(),
        );
        let expected = if m["valid"].as_bool().unwrap() {
            ""
        } else {
            m["reason"].as_str().unwrap()
        };
        assert_eq!(verdict, expected, "{}", m["name"]);
        if m["valid"].as_bool().unwrap() {
            let envelope =
                Envelope::from_padded(m["plaintext"].as_str().unwrap().as_bytes()).unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&envelope.signature.unwrap().signed).unwrap(),
                m["inner"]
            );
        }
    }
    for s in stored["signing"].as_array().unwrap() {
        let seed: [u8; 32] = hex::decode(s["seed_hex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = SigningKey::from_bytes(&seed)
            .sign(&[LABEL, s["signed"].as_str().unwrap().as_bytes()].concat());
        assert_eq!(STANDARD.encode(sig.to_bytes()), s["sig_b64"]);
    }
}

#[test]
fn a_padded_signed_envelope_round_trips() {
    let (card, key) = counsellor();
    let melder = derived(CODES[2]);
    let envelope = reply(&melder, &card, &message_hash(b"x"));
    let padded = envelope.to_padded_signed(&key).unwrap();
    assert_eq!(padded.len() % 4096, 0);
    let read = Envelope::from_padded(&padded).unwrap();
    assert!(read.verify(&card.verifying_key().unwrap()));
    assert!(!read.verify(&melder.melder_signing_key().verifying_key()));
    let mut unsigned = read.clone();
    unsigned.signature = None;
    assert_eq!(unsigned, envelope);
    // A v2 envelope is never written unsigned, a v1 never signed.
    assert!(envelope.to_padded().is_err());
    let mut v1 = Envelope::new(Kind::FollowUp, "x");
    assert!(v1.to_padded_signed(&key).is_err());
    v1.v = 1;
    assert!(v1.to_padded().is_ok());
}

/// The server's inbox signature (protocol.md §6), pinned for every
/// implementation: tests/vectors/inbox-signature.json, also read by
/// tests/js/inbox-signature.test.mjs.
#[test]
fn inbox_signature_vector() {
    use meldkluis::format::bundle::inbox_signature;
    use meldkluis::format::card::server_key_fingerprint;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/inbox-signature.json");
    let key = SigningKey::from_bytes(&[1; 32]);
    let manifest = r#"{"format":"meldkluis-inbox","v":1,"counsellor":"vp-jansen","answers_counter":7,"day":"2026-11-22","applied":[],"items":[]}"#;
    let sig = inbox_signature(&key, manifest.as_bytes());
    let generated = json!({
        "about": "protocol.md §6: manifest.sig = base64(server public key) \\n base64(Ed25519 over label || manifest) \\n; the fingerprint as six groups of five digits",
        "label": "meldkluis-inbox-v1\n",
        "seed_hex": hex::encode(key.to_bytes()),
        "public_b64": STANDARD.encode(key.verifying_key().to_bytes()),
        "fingerprint": server_key_fingerprint(&key.verifying_key().to_bytes()),
        "manifest": manifest,
        "manifest_sig": sig,
    });
    if std::env::var("MELDKLUIS_WRITE_VECTORS").is_ok_and(|v| v == "all" || v == "inbox-signature")
    {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored, generated);
    // protocol.md §6 gives this key's fingerprint as its worked example.
    assert_eq!(stored["fingerprint"], "90409 01009 85163 50341 51899 70227");
    // A manifest changed by one byte no longer verifies.
    let lines: Vec<&str> = sig.lines().collect();
    let signature =
        ed25519_dalek::Signature::from_slice(&STANDARD.decode(lines[1]).unwrap()).unwrap();
    let public = verifying_key(lines[0]).unwrap();
    let input = |m: &str| [b"meldkluis-inbox-v1\n".as_slice(), m.as_bytes()].concat();
    assert!(public.verify_strict(&input(manifest), &signature).is_ok());
    let changed = manifest.replace("\"answers_counter\":7", "\"answers_counter\":8");
    assert!(public.verify_strict(&input(&changed), &signature).is_err());
}
