//! The post-quantum hybrid recipient type (`mlkem768x25519`, src/format/pq.rs)
//! against vectors it did not make:
//! - the C2SP CCTV age vectors (tests/vectors/cctv-age/, provenance in its
//!   README.md): every `expect` outcome, payload hashes included;
//! - files made by the `age-encryption` npm package 0.3.1 in node
//!   (tests/vectors/age-pq-from-js.json, written by
//!   tests/js/make-js-pq-ciphertexts.mjs) decrypt here;
//! - files made here (tests/vectors/age-pq.json) are decrypted by
//!   tests/js/pq.test.mjs.
//!
//! `MELDKLUIS_WRITE_VECTORS=age-pq cargo test --test pq_vectors` rewrites
//! age-pq.json (new random ciphertexts, same identity).

use std::io::Read;
use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meldkluis::format::agefile::AgeBlob;
use meldkluis::format::pq::{HybridIdentity, HybridRecipient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

struct Cctv {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    file: Vec<u8>,
}

fn cctv_vectors() -> Vec<Cctv> {
    let dir = vectors_dir().join("cctv-age");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("hybrid"))
        .collect();
    names.sort();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        let header = std::str::from_utf8(&bytes[..split]).unwrap();
        let mut file = bytes[split + 2..].to_vec();
        let (mut expect, mut payload, mut identities) = (String::new(), None, Vec::new());
        for line in header.lines() {
            let (key, value) = line.split_once(": ").unwrap();
            match key {
                "expect" => expect = value.to_owned(),
                "payload" => payload = Some(value.to_owned()),
                "identity" => identities.push(value.to_owned()),
                "compressed" => {
                    assert_eq!(value, "zlib");
                    let mut inflated = Vec::new();
                    flate2::read::ZlibDecoder::new(&file[..])
                        .read_to_end(&mut inflated)
                        .unwrap();
                    file = inflated;
                }
                "armored" => panic!("{name}: armored vectors are not vendored"),
                _ => {}
            }
        }
        out.push(Cctv {
            name,
            expect,
            payload,
            identities,
            file,
        });
    }
    out
}

fn identity(s: &str) -> Box<dyn age::Identity> {
    if s.starts_with("AGE-SECRET-KEY-PQ-") {
        Box::new(s.parse::<HybridIdentity>().unwrap())
    } else {
        Box::new(s.parse::<age::x25519::Identity>().unwrap())
    }
}

/// Decrypts like a reader would, and names the outcome as the CCTV README does.
fn outcome(v: &Cctv) -> (String, Vec<u8>) {
    let decryptor = match age::Decryptor::new(&v.file[..]) {
        Ok(d) => d,
        Err(_) => return ("header failure".into(), vec![]),
    };
    let identities: Vec<Box<dyn age::Identity>> =
        v.identities.iter().map(|s| identity(s)).collect();
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i.as_ref())) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) => return ("no match".into(), vec![]),
        Err(age::DecryptError::InvalidMac) => return ("HMAC failure".into(), vec![]),
        Err(_) => return ("header failure".into(), vec![]),
    };
    let mut plaintext = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return ("success".into(), plaintext),
            Ok(n) => plaintext.extend_from_slice(&buf[..n]),
            Err(_) => return ("payload failure".into(), plaintext),
        }
    }
}

#[test]
fn cctv_hybrid_vectors() {
    let vectors = cctv_vectors();
    assert_eq!(vectors.len(), 18, "the vendored set is complete");
    // The copies are the ones the README's SHA256SUMS pins.
    let sums = std::fs::read_to_string(vectors_dir().join("cctv-age/SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(vectors_dir().join("cctv-age").join(name)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{name}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &vectors {
        let (got, plaintext) = outcome(v);
        assert_eq!(got, v.expect, "{}", v.name);
        if let Some(payload) = &v.payload {
            assert_eq!(
                &hex::encode(Sha256::digest(&plaintext)),
                payload,
                "{}",
                v.name
            );
        }
        seen.insert(v.expect.clone());
    }
    // Successes, mismatches and header failures are all exercised.
    for kind in ["success", "no match", "header failure"] {
        assert!(seen.contains(kind), "{kind}");
    }
}

#[test]
fn cctv_identity_matches_its_recipient_string() {
    // The CCTV identity's recipient round-trips through the string form.
    let id: HybridIdentity =
        "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG"
            .parse()
            .unwrap();
    let r = id.to_public().to_string();
    assert!(r.starts_with("age1pq1"));
    assert_eq!(r.parse::<HybridRecipient>().unwrap(), id.to_public());
    assert_eq!(
        id.to_string().expose_secret(),
        "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG"
    );
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors_dir().join(name)).unwrap()).unwrap()
}

/// Plaintexts for the Rust → JS direction: empty, text, a STREAM chunk
/// boundary crossed, and a padded envelope-sized body.
fn plaintexts() -> Vec<Vec<u8>> {
    let mut padded = br#"{"v":1,"kind":"follow-up","text":"Nog een aanvulling."}"#.to_vec();
    padded.resize(4096, b' ');
    vec![
        Vec::new(),
        "hallo uit Rust — ☃".as_bytes().to_vec(),
        vec![b'x'; 64 * 1024 + 1],
        padded,
    ]
}

#[test]
fn rust_to_js_vectors() {
    let path = vectors_dir().join("age-pq.json");
    if std::env::var("MELDKLUIS_WRITE_VECTORS").is_ok_and(|v| v == "age-pq" || v == "all") {
        let identity =
            HybridIdentity::from_seed(&Sha256::digest(b"meldkluis age-pq vector").into());
        let other = HybridIdentity::from_seed(&Sha256::digest(b"meldkluis age-pq other").into());
        let mut from_rust = Vec::new();
        for p in plaintexts() {
            let recipients = [identity.to_public(), other.to_public()];
            let ct = meldkluis::format::encrypt_any(
                &recipients
                    .iter()
                    .map(|r| r as &dyn age::Recipient)
                    .collect::<Vec<_>>(),
                &p,
            )
            .unwrap();
            from_rust.push(json!({"ciphertext_base64": STANDARD.encode(&ct), "plaintext_base64": STANDARD.encode(&p)}));
        }
        let value = json!({
            "comment": "made by src/format/pq.rs (tests/pq_vectors.rs) to two hybrid recipients; the JS side (tests/js/pq.test.mjs) decrypts with `identity`",
            "identity": identity.to_string().expose_secret(),
            "recipient": identity.to_public().to_string(),
            "from_rust": from_rust,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap() + "\n").unwrap();
    }
    let v = read_json("age-pq.json");
    let identity: HybridIdentity = v["identity"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        identity.to_public().to_string(),
        v["recipient"].as_str().unwrap()
    );
    let cases = v["from_rust"].as_array().unwrap();
    assert_eq!(cases.len(), plaintexts().len());
    for (case, expected) in cases.iter().zip(plaintexts()) {
        let ct = STANDARD
            .decode(case["ciphertext_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(age::decrypt(&identity, &ct).unwrap(), expected);
        assert_eq!(
            STANDARD
                .decode(case["plaintext_base64"].as_str().unwrap())
                .unwrap(),
            expected
        );
        // And the server's shape check takes it.
        AgeBlob::parse(ct).unwrap();
    }
}

#[test]
fn js_to_rust_vectors() {
    let v = read_json("age-pq-from-js.json");
    assert!(
        v["made_by"]
            .as_str()
            .unwrap()
            .contains("age-encryption 0.3.1")
    );
    let identity: HybridIdentity = v["identity"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        identity.to_public().to_string(),
        v["recipient"].as_str().unwrap()
    );
    let cases = v["from_js"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let ct = STANDARD
            .decode(case["ciphertext_base64"].as_str().unwrap())
            .unwrap();
        let expected = STANDARD
            .decode(case["plaintext_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(age::decrypt(&identity, &ct).unwrap(), expected);
        let blob = AgeBlob::parse(ct.clone()).unwrap();
        if case["is_message"].as_bool() == Some(true) {
            AgeBlob::parse_message(blob.into_bytes()).unwrap();
        }
        // A wrong identity finds no match rather than an error.
        assert!(matches!(
            age::decrypt(&HybridIdentity::generate(), &ct),
            Err(age::DecryptError::NoMatchingKeys)
        ));
    }
}
