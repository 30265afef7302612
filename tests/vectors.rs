//! The shared test vectors in tests/vectors/*.json, read by this test and by
//! tests/js/*.test.mjs, so the Rust and JavaScript sides cannot drift apart.
//!
//! The vectors are frozen: regenerate them (MELDKLUIS_WRITE_VECTORS=1 cargo
//! test --test vectors) only when the protocol version changes.

use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meldkluis::format::code::RetrievalCode;
use meldkluis::format::derive::Derived;
use meldkluis::format::envelope::{Envelope, padded_length};
use serde_json::{Value, json};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// `MELDKLUIS_WRITE_VECTORS=envelope` rewrites envelope.json only; `all`
/// rewrites every file (the age files get new random ciphertexts).
fn writing(name: &str) -> bool {
    std::env::var("MELDKLUIS_WRITE_VECTORS").is_ok_and(|v| v == "all" || v == name)
}

fn write(name: &str, value: &Value) {
    std::fs::write(
        path(name),
        serde_json::to_string_pretty(value).unwrap() + "\n",
    )
    .unwrap();
}

/// Fixed "random" inputs: all zeros, all ones, a counting pattern, high bits
/// set (they must be masked away), and two arbitrary ones.
const RANDOM_INPUTS: [&str; 6] = [
    "00000000000000000000000000000000000000000000",
    "ffffffffffffffffffffffffffffffffffffffffffff",
    "000102030405060708090a0b0c0d0e0f101112131415",
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5",
    "5b1c9a0e77d2f3a8c41e6d09b2f7e3c5a8d4f1e2b3c4",
    "9f3e7a2c18d45b6e0f71a3c2d9e8b4f6a1c3e5d7f9b2",
];

fn code_from_hex(hex_bytes: &str) -> RetrievalCode {
    let bytes: [u8; 22] = hex::decode(hex_bytes).unwrap().try_into().unwrap();
    RetrievalCode::from_random_bytes(&bytes)
}

#[test]
fn code_vectors() {
    if writing("code") {
        let valid: Vec<Value> = RANDOM_INPUTS
            .iter()
            .map(|r| {
                let code = code_from_hex(r);
                json!({"random_bytes_hex": r, "canonical": code.canonical(), "display": code.display()})
            })
            .collect();
        let c = code_from_hex(RANDOM_INPUTS[4]);
        let d = c.display();
        let swapped = {
            let mut s: Vec<char> = c.canonical().chars().collect();
            let i = (0..23).find(|&i| s[i] != s[i + 1]).unwrap();
            s.swap(i, i + 1);
            s.into_iter().collect::<String>()
        };
        let substituted = {
            let mut s: Vec<char> = c.canonical().chars().collect();
            s[5] = if s[5] == 'A' { 'B' } else { 'A' };
            s.into_iter().collect::<String>()
        };
        let typed = vec![
            json!({"input": d.to_lowercase(), "canonical": c.canonical()}),
            json!({"input": d.replace('-', " "), "canonical": c.canonical()}),
            json!({"input": format!("  {}\n", c.canonical()), "canonical": c.canonical()}),
            json!({"input": d.replace('0', "o").replace('1', "l"), "canonical": c.canonical()}),
        ];
        let invalid = vec![
            json!({"input": "", "error": "wrong_length"}),
            json!({"input": &d[..d.len() - 1], "error": "wrong_length"}),
            json!({"input": format!("{d}A"), "error": "wrong_length"}),
            json!({"input": d.replacen(&d[..1], "U", 1), "error": "invalid_character"}),
            json!({"input": format!("{}\u{0}", &d[..4]), "error": "invalid_character"}),
            json!({"input": format!("Ａ{}", &d[1..]), "error": "invalid_character"}),
            json!({"input": d.replacen('-', "_", 1), "error": "invalid_character"}),
            json!({"input": swapped, "error": "check_failed"}),
            json!({"input": substituted, "error": "check_failed"}),
        ];
        write(
            "code.json",
            &json!({"valid": valid, "typed": typed, "invalid": invalid}),
        );
    }
    let vectors = read("code.json");
    for v in vectors["valid"].as_array().unwrap() {
        let code = code_from_hex(v["random_bytes_hex"].as_str().unwrap());
        assert_eq!(code.canonical(), v["canonical"].as_str().unwrap());
        assert_eq!(code.display(), v["display"].as_str().unwrap());
        assert_eq!(
            RetrievalCode::parse(v["display"].as_str().unwrap()).unwrap(),
            code
        );
    }
    for v in vectors["typed"].as_array().unwrap() {
        let code = RetrievalCode::parse(v["input"].as_str().unwrap()).unwrap();
        assert_eq!(code.canonical(), v["canonical"].as_str().unwrap());
    }
    for v in vectors["invalid"].as_array().unwrap() {
        let error = RetrievalCode::parse(v["input"].as_str().unwrap()).unwrap_err();
        assert_eq!(error.code(), v["error"].as_str().unwrap(), "{v}");
    }
}

#[test]
fn derive_vectors() {
    if writing("derive") {
        let cases: Vec<Value> = RANDOM_INPUTS
            .iter()
            .map(|r| {
                let code = code_from_hex(r);
                let derived = Derived::from_code(&code);
                json!({
                    "canonical": code.canonical(),
                    "lookup_key_hex": derived.lookup_key.to_hex(),
                    "lookup_hash_hex": derived.lookup_key.hash().to_hex(),
                    "reply_identity": derived.reply_identity.expose_secret(),
                    "reply_recipient": derived.reply_recipient().to_string(),
                })
            })
            .collect();
        write("derive.json", &json!({"cases": cases}));
    }
    for v in read("derive.json")["cases"].as_array().unwrap() {
        let code = RetrievalCode::parse(v["canonical"].as_str().unwrap()).unwrap();
        let derived = Derived::from_code(&code);
        assert_eq!(
            derived.lookup_key.to_hex(),
            v["lookup_key_hex"].as_str().unwrap()
        );
        assert_eq!(
            derived.lookup_key.hash().to_hex(),
            v["lookup_hash_hex"].as_str().unwrap()
        );
        assert_eq!(
            derived.reply_identity.expose_secret(),
            v["reply_identity"].as_str().unwrap()
        );
        assert_eq!(
            derived.reply_recipient().to_string(),
            v["reply_recipient"].as_str().unwrap()
        );
    }
}

fn sample_report() -> Value {
    let recipient = Derived::from_code(&code_from_hex(RANDOM_INPUTS[0])).reply_recipient();
    json!({
        "v": 1, "kind": "report", "text": "Mijn leidinggevende laat facturen dubbel betalen.",
        "category": "fraud", "contact": null, "reply_recipient": recipient.to_string(),
        "counsellors": ["vp-jansen"], "author": null, "attachments": []
    })
}

#[test]
fn envelope_vectors() {
    if writing("envelope") {
        let report = sample_report();
        let mut with_attachment = report.clone();
        with_attachment["attachments"] = json!([{"name": "scan.pdf", "type": "application/pdf", "data": STANDARD.encode(b"%PDF-1.4 demo")}]);
        let follow_up = json!({"v": 1, "kind": "follow-up", "text": "Nog een aanvulling: het gebeurde ook in maart."});
        let reply = json!({"v": 1, "kind": "reply", "text": "Dank voor uw melding.", "author": {"id": "vp-jansen", "name": "A. Jansen"}});
        let long = {
            let mut r = report.clone();
            r["text"] = json!("x".repeat(5000));
            r
        };
        let acknowledgement = json!({"v": 1, "kind": "reply", "text": "Uw melding is ontvangen.", "author": {"id": "vp-jansen", "name": "A. Jansen"}, "status": "acknowledged"});
        let closing = json!({"v": 1, "kind": "reply", "text": "Wij sluiten de zaak.", "author": {"id": "vp-jansen", "name": "A. Jansen"}, "status": "closed"});
        let evaluation = json!({"v": 1, "kind": "evaluation", "text": "", "evaluation": {"process": 4, "heard": 5}});
        // The language of the text (optional; absent above, as in older messages).
        let reply_nl = json!({"v": 1, "kind": "reply", "text": "Dank voor uw melding.", "lang": "nl", "author": {"id": "vp-jansen", "name": "A. Jansen"}});
        let follow_up_en = json!({"v": 1, "kind": "follow-up", "text": "One more thing: it happened in March too.", "lang": "en-GB"});
        // An advice question: a report's shape, another kind.
        let mut question = report.clone();
        question["kind"] = json!("question");
        question["text"] = json!("Mag mijn leidinggevende vragen waarom ik ziek was?");
        question["category"] = json!(null);
        let cases: Vec<Value> = [report.clone(), with_attachment, follow_up, reply.clone(), long, acknowledgement, closing, evaluation.clone(), reply_nl, follow_up_en, question.clone()]
            .into_iter()
            .map(|envelope| {
                let parsed: Envelope = serde_json::from_value(envelope.clone()).unwrap();
                let json_length = serde_json::to_vec(&parsed).unwrap().len();
                json!({"envelope": envelope, "json_length": json_length, "padded_length": parsed.to_padded().unwrap().len()})
            })
            .collect();
        let buckets: Vec<Value> = [
            0usize,
            1,
            4096,
            4097,
            8192,
            8193,
            65536,
            1 << 20,
            (1 << 20) + 1,
            16 << 20,
        ]
        .iter()
        .map(|&n| json!({"length": n, "padded": padded_length(n)}))
        .chain(std::iter::once(
            json!({"length": (16 << 20) + 1, "padded": null}),
        ))
        .collect();
        let mut invalid = Vec::new();
        let mut add = |mutate: &dyn Fn(&mut Value), reason: &str| {
            let mut e = report.clone();
            mutate(&mut e);
            invalid.push(json!({"envelope": e, "reason": reason}));
        };
        add(&|e| e["v"] = json!(2), "unsupported version");
        add(&|e| e["kind"] = json!("confession"), "unknown kind");
        add(
            &|e| e["reply_recipient"] = json!(null),
            "a report needs a reply recipient",
        );
        add(
            &|e| e["reply_recipient"] = json!("age1notarecipient"),
            "bad reply recipient",
        );
        add(&|e| e["counsellors"] = json!([]), "no counsellors");
        add(
            &|e| e["counsellors"] = json!(["../etc"]),
            "malformed counsellor id",
        );
        add(
            &|e| e["text"] = json!("   "),
            "empty text without attachments",
        );
        add(&|e| e["extra"] = json!(1), "unknown field");
        add(
            &|e| e["kind"] = json!("reply"),
            "a reply has no reply recipient and needs an author",
        );
        add(
            &|e| e["category"] = json!("c".repeat(201)),
            "category too long",
        );
        add(
            &|e| e["status"] = json!("acknowledged"),
            "only a reply sets a status",
        );
        add(
            &|e| e["lang"] = json!("Nederlands"),
            "lang is not a language tag",
        );
        add(&|e| e["lang"] = json!(""), "lang is not a language tag");
        add(
            &|e| e["lang"] = json!("nl\"><script>"),
            "lang is not a language tag",
        );
        add(&|e| e["lang"] = json!(31), "lang is not a language tag");
        let mut bad =
            |value: Value, reason: &str| invalid.push(json!({"envelope": value, "reason": reason}));
        let mut r = reply.clone();
        r["status"] = json!("lost");
        bad(r, "unknown status");
        let mut q = question.clone();
        q["reply_recipient"] = json!(null);
        bad(q, "a question needs a reply recipient");
        let mut q = question.clone();
        q["counsellors"] = json!([]);
        bad(q, "a question names one to ten counsellors");
        let mut q = question;
        q["author"] = json!({"id": "vp-jansen", "name": "A. Jansen"});
        bad(q, "only a reply has an author");
        for scores in [
            json!({"process": 0, "heard": 3}),
            json!({"process": 3, "heard": 6}),
            json!({"process": 3}),
            json!(null),
        ] {
            let mut e = evaluation.clone();
            e["evaluation"] = scores;
            bad(e, "an evaluation has two scores from 1 to 5");
        }
        let mut r = reply.clone();
        r["evaluation"] = json!({"process": 3, "heard": 3});
        bad(r, "only an evaluation has scores");
        write(
            "envelope.json",
            &json!({"cases": cases, "bucket_cases": buckets, "invalid": invalid}),
        );
    }
    let vectors = read("envelope.json");
    for v in vectors["cases"].as_array().unwrap() {
        let envelope: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
        envelope.validate().unwrap();
        let padded = envelope.to_padded().unwrap();
        assert_eq!(padded.len() as u64, v["padded_length"].as_u64().unwrap());
        assert_eq!(
            padded_length(v["json_length"].as_u64().unwrap() as usize),
            Some(padded.len())
        );
        assert_eq!(Envelope::from_padded(&padded).unwrap(), envelope);
    }
    for v in vectors["bucket_cases"].as_array().unwrap() {
        let expected = v["padded"].as_u64().map(|n| n as usize);
        assert_eq!(
            padded_length(v["length"].as_u64().unwrap() as usize),
            expected
        );
    }
    for v in vectors["invalid"].as_array().unwrap() {
        let parsed: Result<Envelope, _> = serde_json::from_value(v["envelope"].clone());
        assert!(
            parsed.map(|e| e.validate().is_err()).unwrap_or(true),
            "{}",
            v["reason"]
        );
    }
}

#[test]
fn age_vectors_cross_implementation() {
    let derived = Derived::from_code(&code_from_hex(RANDOM_INPUTS[1]));
    if writing("age") {
        let from_rust: Vec<Value> = ["Antwoord van de vertrouwenspersoon.", "ünïcödé ✓ — 漢字"]
            .iter()
            .map(|text| {
                let ciphertext = age::encrypt(&derived.reply_recipient(), text.as_bytes()).unwrap();
                json!({"ciphertext_base64": STANDARD.encode(ciphertext), "plaintext_utf8": text})
            })
            .collect();
        write(
            "age.json",
            &json!({
                "identity": derived.reply_identity.expose_secret(),
                "recipient": derived.reply_recipient().to_string(),
                "from_rust": from_rust,
            }),
        );
    }
    let vectors = read("age.json");
    assert_eq!(
        vectors["identity"].as_str().unwrap(),
        derived.reply_identity.expose_secret()
    );
    let identity = derived.reply_identity();
    for v in vectors["from_rust"].as_array().unwrap() {
        let ciphertext = STANDARD
            .decode(v["ciphertext_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            age::decrypt(&identity, &ciphertext).unwrap(),
            v["plaintext_utf8"].as_str().unwrap().as_bytes()
        );
    }
    // Made by web/vendor/age.js (tests/js/make-js-ciphertexts.mjs) to the same recipient.
    let from_js = read("age-from-js.json");
    let items = from_js["from_js"].as_array().unwrap();
    assert!(!items.is_empty());
    for v in items {
        let ciphertext = STANDARD
            .decode(v["ciphertext_base64"].as_str().unwrap())
            .unwrap();
        let plaintext = age::decrypt(&identity, &ciphertext).unwrap();
        assert_eq!(plaintext, v["plaintext_utf8"].as_str().unwrap().as_bytes());
        if let Some(true) = v["is_message"].as_bool() {
            meldkluis::format::agefile::AgeBlob::parse_message(ciphertext.clone()).unwrap();
            Envelope::from_padded(&plaintext).unwrap();
        }
    }
}
