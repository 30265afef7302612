//! A database written by the first released schema (version 1), frozen in
//! `tests/fixtures/schema-v1/` by the version-1 programs themselves (see
//! `generate.sh` there), opened by the current server: the schema is
//! upgraded at start, inside one transaction, and every case and every
//! message is still served — to the melders, byte for byte and readable
//! with their reply keys, and to the counsellors, through the courier into
//! their version-1 vaults.
//!
//! Never regenerate the fixture with a newer Meldkluis: its worth is that
//! the old program wrote it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Server;
use meldkluis::format::envelope::Envelope;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v1");

#[derive(Deserialize)]
struct FixtureMelder {
    name: String,
    lookup_key: String,
    reply_identity: String,
    counsellors: Vec<String>,
    messages: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    author: String,
    kind: String,
    text: String,
}

fn melders() -> Vec<FixtureMelder> {
    serde_json::from_slice(&std::fs::read(Path::new(FIXTURE).join("melders.json")).unwrap())
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A site with the fixture's cards and its version-1 database.
fn version_1_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURE).join("keys"), &dir.path().join("keys"));
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let sql = std::fs::read_to_string(Path::new(FIXTURE).join("schema-v1.sql")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("data/meldkluis.sqlite")).unwrap();
    db.execute_batch(&sql).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "the fixture must stay a version-1 database");
    dir
}

/// The SHA-256 of every message body, read straight from a database.
fn bodies(db: &Path) -> BTreeSet<Vec<u8>> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut statement = db.prepare("SELECT body FROM messages").unwrap();
    statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|body| Sha256::digest(body.unwrap()).to_vec())
        .collect()
}

fn reviewer(vault: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_meldkluis-review"))
        .arg("--vault")
        .arg(vault)
        .arg("--passphrase-file")
        .arg(Path::new(FIXTURE).join("passphrase.txt"))
        .args(args)
        .env_remove("MELDKLUIS_VAULT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() || args[0] == "list",
        "meldkluis-review {args:?}: {text}"
    );
    text
}

/// Syncs a copy of a fixture vault with `server` and returns everything
/// its `show` prints for every case it then holds.
fn counsellor_reads(server: &Server, counsellor: &str, scratch: &Path) -> String {
    let vault = scratch.join(format!("vault-{counsellor}"));
    copy_dir(
        &Path::new(FIXTURE).join(format!("vault-{counsellor}")),
        &vault,
    );
    let outbox = scratch.join(format!("{counsellor}-outbox.tar"));
    reviewer(&vault, &["outbox", outbox.to_str().unwrap()]);
    let answer = server.sync(&std::fs::read(&outbox).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{counsellor}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let inbox = scratch.join(format!("{counsellor}-inbox.age"));
    std::fs::write(&inbox, &answer.body).unwrap();
    reviewer(&vault, &["import", inbox.to_str().unwrap()]);
    let list = reviewer(&vault, &["list"]);
    let cases: BTreeSet<String> = list
        .lines()
        .filter_map(|line| line.get(..8))
        .filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .map(str::to_string)
        .collect();
    assert!(!cases.is_empty(), "{counsellor} sees no cases: {list}");
    cases
        .iter()
        .map(|case| reviewer(&vault, &["show", case]))
        .collect()
}

#[test]
fn the_first_schema_is_upgraded_and_everything_is_still_served() {
    let site = version_1_site();
    let database: PathBuf = site.path().join("data/meldkluis.sqlite");
    let version_1_bodies = bodies(&database);
    let melders = melders();
    let expected_messages: usize = melders.iter().map(|m| m.messages.len()).sum();
    assert_eq!(version_1_bodies.len(), expected_messages);

    let server = Server::start_in(site);
    let upgraded: i64 = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(upgraded, meldkluis::server::store::SCHEMA_VERSION);

    // Every melder's thread, every message: the same bytes, readable.
    let mut served = BTreeSet::new();
    for melder in &melders {
        let answer = server.post_json("/api/v1/thread", &json!({"lookup_key": melder.lookup_key}));
        assert_eq!(answer.status, 200, "{}: {}", melder.name, answer.error());
        let thread = answer.json();
        let counsellors: Vec<String> = thread["counsellors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(counsellors, melder.counsellors, "{}", melder.name);
        let messages = thread["messages"].as_array().unwrap();
        assert_eq!(messages.len(), melder.messages.len(), "{}", melder.name);
        let identity: age::x25519::Identity = melder.reply_identity.parse().unwrap();
        for (message, expected) in messages.iter().zip(&melder.messages) {
            assert_eq!(
                message["author"],
                expected.author.as_str(),
                "{}",
                melder.name
            );
            assert_eq!(message["kind"], expected.kind.as_str(), "{}", melder.name);
            let bytes = STANDARD
                .decode(message["message"].as_str().unwrap())
                .unwrap();
            assert!(version_1_bodies.contains(&Sha256::digest(&bytes).to_vec()));
            served.insert(Sha256::digest(&bytes).to_vec());
            let envelope = Envelope::open(&bytes, &[&identity]).unwrap();
            assert_eq!(envelope.text.trim_end(), expected.text, "{}", melder.name);
        }
    }
    assert_eq!(served, version_1_bodies, "every stored message is served");

    // The melder carries on after the upgrade.
    let dina = melders.iter().find(|m| m.name == "dina").unwrap();
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(FIXTURE).join("keys/vp-een.json")).unwrap(),
    )
    .unwrap();
    let vp_een: age::x25519::Recipient = card["age_recipient"].as_str().unwrap().parse().unwrap();
    let dina_reply = dina
        .reply_identity
        .parse::<age::x25519::Identity>()
        .unwrap()
        .to_public();
    let follow_up = Envelope::new(
        meldkluis::format::envelope::Kind::FollowUp,
        "Na de upgrade: nog een aanvulling van Dina.",
    );
    let sealed = follow_up.seal(&[vp_een, dina_reply]).unwrap();
    let answer = server.post_json(
        "/api/v1/thread/messages",
        &json!({"lookup_key": dina.lookup_key, "message": STANDARD.encode(sealed)}),
    );
    assert_eq!(answer.status, 201, "{}", answer.error());

    // The counsellors' version-1 vaults sync and read every message: vp-een
    // never synced before the upgrade, vp-twee continues its counter.
    let scratch = tempfile::tempdir().unwrap();
    let een = counsellor_reads(&server, "vp-een", scratch.path());
    for needle in [
        "Melding van Anna",
        "Aanvulling van Anna",
        "Melding van Bram",
        "Melding van Dina",
        "Na de upgrade",
    ] {
        assert!(een.contains(needle), "vp-een misses {needle:?}:\n{een}");
    }
    let twee = counsellor_reads(&server, "vp-twee", scratch.path());
    for needle in [
        "Melding van Bram",
        "Melding van Cees",
        "Ik neem haar in behandeling",
        "Hier nog de namen",
    ] {
        assert!(twee.contains(needle), "vp-twee misses {needle:?}:\n{twee}");
    }
}
