//! The `meldkluis-review` command line as a counsellor meets it: the real
//! binary, with and without a terminal (a pseudo-terminal from
//! tests/support/terminal.py, `setsid` for none), in both languages. Each test
//! here failed before the defect it names was fixed (issue 12).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use age::secrecy::SecretString;
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Author, Envelope, Kind, Status};
use meldkluis::format::ids::{CaseId, MessageId};
use meldkluis::review::vault::{CaseRecord, MessageRecord, NewCounsellor, Vault};

const BIN: &str = env!("CARGO_BIN_EXE_meldkluis-review");
const PASSPHRASE: &str = "test passphrase";

/// The reviewer with a clean environment: Dutch unless `args` says
/// otherwise, no vault from the environment.
fn review(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("MELDKLUIS_VAULT")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("MELDKLUIS_LANG", "nl")
        .current_dir(dir)
        .stdin(Stdio::null());
    command
}

/// The same without a controlling terminal, like a script run by cron or
/// a service (`setsid` starts a new session with none).
fn review_without_terminal(dir: &Path, args: &[&str]) -> Output {
    Command::new("setsid")
        .arg("--wait")
        .arg(BIN)
        .args(args)
        .env_remove("MELDKLUIS_VAULT")
        .env("MELDKLUIS_LANG", "nl")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs the reviewer on a pseudo-terminal, answering prompts: `steps` are
/// (text to wait for, text to type). Returns what the terminal showed and
/// whether the command succeeded.
fn review_on_terminal(dir: &Path, args: &[&str], steps: &[(&str, &str)]) -> (String, bool) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/terminal.py");
    let steps = serde_json::to_string(steps).unwrap();
    let output = Command::new("python3")
        .arg(script)
        .arg(steps)
        .arg(BIN)
        .args(args)
        .env_remove("MELDKLUIS_VAULT")
        .env("MELDKLUIS_LANG", "nl")
        .current_dir(dir)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_ne!(output.status.code(), Some(99), "{shown}");
    (shown, output.status.success())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn passphrase_file(dir: &Path, passphrase: &str) -> PathBuf {
    let path = dir.join("pass.txt");
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

fn init_args<'a>(vault: &'a str, pass: &'a str) -> Vec<&'a str> {
    vec![
        "--vault",
        vault,
        "--passphrase-file",
        pass,
        "init",
        "--name",
        "A. Jansen",
        "--organisation",
        "Ministerie van Testzaken",
        "--kind",
        "external",
        "--id",
        "vp-jansen",
    ]
}

/// A vault with one case: a report (unread, the melder waits), or closed.
fn vault_with_case(dir: &Path, closed: bool) -> (PathBuf, CaseId) {
    let path = dir.join("vault");
    let mut vault = Vault::init(
        &path,
        SecretString::from(PASSPHRASE.to_owned()),
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
    let melder = age::x25519::Identity::generate().to_public();
    let today = Day::today();
    let mut record = CaseRecord::new(today);
    record.reply_recipient = Some(melder.to_string());
    let mut messages = Vec::new();
    let mut report = Envelope::new(Kind::Report, "Er verdwijnt geld uit de kas.");
    report.reply_recipient = Some(melder.to_string());
    report.counsellors = vec!["vp-jansen".into()];
    messages.push(("melder", Kind::Report, report, false));
    if closed {
        let mut closing = Envelope::new(Kind::Reply, "Ik sluit uw melding af.");
        closing.author = Some(Author {
            id: "vp-jansen".into(),
            name: "A. Jansen".into(),
        });
        closing.status = Some(Status::Closed);
        messages.push(("vp-jansen", Kind::Reply, closing, true));
        record.acknowledged = Some(today);
        record.feedback = Some(today);
        record.closed = Some(today);
        record.status = Some((Status::Closed, today));
    }
    for (author, kind, envelope, seen) in messages {
        let id = MessageId::random();
        let sealed = envelope
            .seal(&{
                let m: meldkluis::format::keys::Recipient = melder.clone().into();
                [vault.own_recipient_beside(&m).unwrap(), m]
            })
            .unwrap();
        vault.store_message(&id, &sealed).unwrap();
        record.messages.push(MessageRecord {
            id,
            author: author.into(),
            kind: kind.as_str().into(),
            day: today,
            seq: None,
            attachments: Vec::new(),
            seen,
            sha256: None,
            authenticity: None,
            gap_before: false,
            forwarded_in: None,
            unseen_replies: 0,
        });
    }
    let case = CaseId::random();
    vault.state.cases.insert(case, record);
    vault.save().unwrap();
    (path, case)
}

#[test]
fn a_failed_outbox_does_not_use_up_a_counter() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), PASSPHRASE);
    let (vault, _) = vault_with_case(dir.path(), false);
    let run = |target: &Path| {
        review(dir.path())
            .arg("--vault")
            .arg(&vault)
            .arg("--passphrase-file")
            .arg(&pass)
            .arg("outbox")
            .arg(target)
            .output()
            .unwrap()
    };
    let failed = run(&dir.path().join("no-such-stick/outbox.tar"));
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert!(text(&failed).contains("bestaat niet"), "{}", text(&failed));
    assert!(!dir.path().join("no-such-stick").exists());
    let written = run(&dir.path().join("outbox.tar"));
    assert!(written.status.success(), "{}", text(&written));
    assert!(
        text(&written).starts_with("Outbox 1 geschreven"),
        "{}",
        text(&written)
    );
    assert!(!dir.path().join("outbox.tar.part").exists());
}

#[test]
fn init_names_the_card_file_it_wrote_and_refuses_a_name_the_server_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "correct horse battery");
    let vault = dir.path().join("vault");
    let stick = dir.path().join("stick");

    // A card name that is not <id>.json: refused before anything is made.
    let mut args = init_args(vault.to_str().unwrap(), pass.to_str().unwrap());
    let wrong = stick.join("kaart.json");
    args.extend(["--card-out", wrong.to_str().unwrap()]);
    let refused = review(dir.path()).args(&args).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused).contains("vp-jansen.json"),
        "{}",
        text(&refused)
    );
    assert!(!vault.exists() && !stick.exists());

    // The right name: init tells the counsellor to hand over that file.
    let mut args = init_args(vault.to_str().unwrap(), pass.to_str().unwrap());
    let card = stick.join("vp-jansen.json");
    args.extend(["--card-out", card.to_str().unwrap()]);
    let made = review(dir.path()).args(&args).output().unwrap();
    let said = text(&made);
    assert!(made.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "Geef deze kaart aan de beheerder: {}",
            card.display()
        )),
        "{said}"
    );
    assert!(!said.contains("card.json"), "{said}");
    assert!(card.exists());
    // The fingerprint to read aloud is the whole card's (protocol.md §10.1).
    let written = meldkluis::format::card::Card::parse(&std::fs::read(&card).unwrap()).unwrap();
    assert!(
        said.contains(&format!("check-config): {}", written.fingerprint())),
        "{said}"
    );

    // A folder: the card lands in it under <id>.json.
    let other = dir.path().join("other");
    let folder = dir.path().join("usb");
    std::fs::create_dir(&folder).unwrap();
    let mut args = init_args(other.to_str().unwrap(), pass.to_str().unwrap());
    args.extend(["--card-out", folder.to_str().unwrap()]);
    let made = review(dir.path()).args(&args).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    assert!(folder.join("vp-jansen.json").exists());
}

#[test]
fn without_a_vault_it_says_so_before_asking_for_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    for args in [["list"], ["deadlines"], ["stats"]] {
        let output = review_without_terminal(
            dir.path(),
            &[&["--vault", "nowhere"][..], &args[..]].concat(),
        );
        let said = text(&output);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert!(said.contains("In nowhere staat geen kluis"), "{said}");
        assert!(!said.contains("passphrase-file"), "{said}");
    }
    let output = review(dir.path())
        .args(["--lang", "en", "--vault", "nowhere", "list"])
        .output()
        .unwrap();
    assert!(
        text(&output).contains("There is no vault in nowhere"),
        "{}",
        text(&output)
    );
}

#[test]
fn without_a_terminal_it_says_to_use_a_passphrase_file() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, _) = vault_with_case(dir.path(), false);
    let output = review_without_terminal(dir.path(), &["--vault", vault.to_str().unwrap(), "list"]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("--passphrase-file"), "{said}");
    assert!(!said.contains("No such device"), "{said}");
    let output = review_without_terminal(
        dir.path(),
        &[
            "--vault",
            "new-vault",
            "--lang",
            "en",
            "init",
            "--name",
            "Xavier Test",
            "--organisation",
            "Testorganisatie",
            "--kind",
            "internal",
        ],
    );
    let said = text(&output);
    assert!(
        said.contains("There is no terminal") && said.contains("--passphrase-file"),
        "{said}"
    );
    assert!(!dir.path().join("new-vault").exists());
}

#[test]
fn init_asks_again_for_a_short_or_mistyped_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (shown, ok) = review_on_terminal(
        dir.path(),
        &[
            "--vault",
            "vault",
            "init",
            "--name",
            "A. Jansen",
            "--organisation",
            "Test",
            "--kind",
            "external",
            "--id",
            "vp-jansen",
        ],
        &[
            ("Nieuwe wachtwoordzin", "kort\n"),
            ("korter dan 12 tekens", ""),
            ("Nieuwe wachtwoordzin", "lantaarn vijver kompas\n"),
            ("Nogmaals", "lantaarn vijver kompaz\n"),
            ("verschillen", ""),
            ("Nieuwe wachtwoordzin", "lantaarn vijver kompas\n"),
            ("Nogmaals", "lantaarn vijver kompas\n"),
        ],
    );
    assert!(ok, "{shown}");
    assert!(shown.contains("Kluis gemaakt"), "{shown}");
    // The passphrase typed last opens the vault.
    let pass = passphrase_file(dir.path(), "lantaarn vijver kompas");
    let listed = review(dir.path())
        .args([
            "--vault",
            "vault",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "list",
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(text(&listed).contains("Geen zaken."));
}

#[test]
fn a_short_passphrase_file_is_refused_at_init() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "kort");
    let output = review(dir.path())
        .args(init_args("vault", pass.to_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("korter dan 12 tekens"),
        "{}",
        text(&output)
    );
    assert!(!dir.path().join("vault").exists());
}

#[test]
fn rotate_keys_asks_for_the_new_passphrase_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, _) = vault_with_case(dir.path(), false);
    let vault = vault.to_str().unwrap();
    let (shown, ok) = review_on_terminal(
        dir.path(),
        &["--vault", vault, "rotate-keys"],
        &[
            ("Huidige wachtwoordzin", &format!("{PASSPHRASE}\n")),
            ("Nieuwe wachtwoordzin", "nieuwe lange zin een\n"),
            ("Nogmaals", "nieuwe lange zin twee\n"),
            ("verschillen", ""),
            ("Nieuwe wachtwoordzin", "nieuwe lange zin een\n"),
            ("Nogmaals", "nieuwe lange zin een\n"),
        ],
    );
    assert!(ok, "{shown}");
    assert!(shown.contains("Nieuwe sleutels gemaakt"), "{shown}");
    let pass = passphrase_file(dir.path(), "nieuwe lange zin een");
    let listed = review(dir.path())
        .args([
            "--vault",
            vault,
            "--passphrase-file",
            pass.to_str().unwrap(),
            "list",
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
}

#[test]
fn reply_on_a_terminal_says_what_to_type_and_how_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, case) = vault_with_case(dir.path(), false);
    let pass = passphrase_file(dir.path(), PASSPHRASE);
    let short = &case.to_hex()[..8];
    let (shown, ok) = review_on_terminal(
        dir.path(),
        &[
            "--vault",
            vault.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "reply",
            short,
        ],
        &[("Ctrl-D", "Dank voor uw melding.\n\x04")],
    );
    assert!(ok, "{shown}");
    assert!(shown.contains("Typ de tekst"), "{shown}");
    assert!(
        shown.contains("Klaargezet voor de volgende outbox."),
        "{shown}"
    );
    // Nothing typed: nothing queued, and it says so.
    let (shown, ok) = review_on_terminal(
        dir.path(),
        &[
            "--vault",
            vault.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "reply",
            short,
        ],
        &[("Ctrl-D", "\x04")],
    );
    assert!(!ok, "{shown}");
    assert!(shown.contains("De tekst is leeg"), "{shown}");
}

#[test]
fn template_help_does_not_ask_for_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let help = review(dir.path())
        .args(["template", "--help"])
        .output()
        .unwrap();
    let said = text(&help);
    assert!(help.status.success(), "{said}");
    assert!(
        !said.contains("--vault") && !said.contains("--passphrase-file"),
        "{said}"
    );
    // And it runs without one.
    for (lang, first) in [("nl", "Geachte melder,"), ("en", "Dear reporter,")] {
        let out = review(dir.path())
            .args(["template", "reopening", "--lang", lang])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(text(&out).starts_with(first), "{}", text(&out));
    }
}

#[test]
fn list_marks_unread_and_awaiting_apart_and_show_marks_read() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, case) = vault_with_case(dir.path(), false);
    let pass = passphrase_file(dir.path(), PASSPHRASE);
    let run = |args: &[&str]| {
        let output = review(dir.path())
            .args([
                "--vault",
                vault.to_str().unwrap(),
                "--passphrase-file",
                pass.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    let short = &case.to_hex()[..8];
    let listed = run(&["list"]);
    assert!(listed.starts_with(short), "{listed}");
    assert!(
        listed.contains("· ongelezen · wacht op uw antwoord"),
        "{listed}"
    );
    assert!(
        listed.contains("│ Er verdwijnt geld uit de kas."),
        "{listed}"
    );
    let shown = run(&["show", short]);
    assert!(
        shown.contains("  │ Er verdwijnt geld uit de kas."),
        "{shown}"
    );
    assert!(
        shown.contains("── Bericht 1 · melding · melder ·"),
        "{shown}"
    );
    let listed = run(&["list"]);
    assert!(!listed.contains("ongelezen"), "{listed}");
    assert!(listed.contains("wacht op uw antwoord"), "{listed}");
    let english = run(&["--lang", "en", "list"]);
    assert!(english.contains("awaiting your answer"), "{english}");
    assert!(!english.contains("wacht op"), "{english}");
    let english = review(dir.path())
        .env("MELDKLUIS_LANG", "en")
        .args([
            "--vault",
            vault.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "deadlines",
        ])
        .output()
        .unwrap();
    assert!(
        text(&english).contains("acknowledge receipt by"),
        "{}",
        text(&english)
    );
}

#[test]
fn reopen_answers_a_closed_case_with_the_standard_text() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, case) = vault_with_case(dir.path(), true);
    let pass = passphrase_file(dir.path(), PASSPHRASE);
    let run = |args: &[&str]| {
        review(dir.path())
            .args([
                "--vault",
                vault.to_str().unwrap(),
                "--passphrase-file",
                pass.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let short = &case.to_hex()[..8];
    let refused = run(&["reply", short, "--file", "/dev/null"]);
    assert_eq!(refused.status.code(), Some(2));
    let reopened = run(&["reopen", short]);
    assert!(reopened.status.success(), "{}", text(&reopened));
    let again = run(&["reopen", short]);
    assert!(
        text(&again).contains("is niet gesloten"),
        "{}",
        text(&again)
    );
    let shown = text(&run(&["show", short]));
    assert!(shown.contains("Status wordt: in behandeling"), "{shown}");
    assert!(shown.contains("weer geopend"), "{shown}");
}

/// Following the counsellor manual's `init` and the operator manual's
/// install step literally gives a card the server accepts.
#[test]
fn the_manuals_and_init_agree_on_the_card_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for lang in ["nl", "en"] {
        let dir = tempfile::tempdir().unwrap();
        let manual =
            std::fs::read_to_string(root.join(format!("docs/counsellor-manual.{lang}.md")))
                .unwrap();
        // The first shell block that runs `init`, joined over its `\` lines.
        let block = manual
            .split("```sh\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .find(|b| b.contains(" init "))
            .expect("an init example");
        let command = block.replace("\\\n", " ");
        let home = dir.path().join("home");
        let stick = dir.path().join("media/usb");
        std::fs::create_dir_all(&stick).unwrap();
        let command = command
            .replace("~/", &format!("{}/", home.display()))
            .replace("/media/usb", stick.to_str().unwrap());
        let pass = passphrase_file(dir.path(), "lantaarn vijver kompas mosterd");
        let command = command.replacen(
            "meldkluis-review",
            &format!("{BIN} --passphrase-file {}", pass.display()),
            1,
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(command.trim())
            .env("MELDKLUIS_LANG", lang)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{lang}: {command}\n{}",
            text(&output)
        );
        // The operator manual: install the card under the same file name.
        let cards: Vec<PathBuf> = std::fs::read_dir(&stick)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(cards.len(), 1, "{cards:?}");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::copy(&cards[0], keys.join(cards[0].file_name().unwrap())).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .args(["check-config", "--listen", "127.0.0.1:0", "--keys"])
            .arg(&keys)
            .arg("--data")
            .arg(dir.path().join("data"))
            .env_remove("MELDKLUIS_CONFIG")
            .output()
            .unwrap();
        assert!(check.status.success(), "{lang}: {}", text(&check));
    }
}
