//! Configuration against real `meldkluis` processes: hostile and garbage
//! config files are refused with a plain reason (never a panic, never a
//! half-started server), every problem is named in one run, the file,
//! environment, `_FILE` variables and flags combine in the documented order,
//! and a good configuration passes `check-config` and serves.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::make_vault;

/// `meldkluis ARGS` with only the given environment (nothing inherited
/// from the test runner), in `cwd`.
fn meldkluis(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meldkluis"));
    command.current_dir(cwd).args(args).env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A directory with `keys/` holding one valid card.
struct Site {
    dir: tempfile::TempDir,
    card_json: String,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let vault_dir = tempfile::tempdir().unwrap();
        let vault = make_vault(vault_dir.path(), "vp-config");
        let card_json = vault.card.to_json();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/vp-config.json"), &card_json).unwrap();
        Site { dir, card_json }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Every file below the site directory, to prove a refusal changed nothing.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path.clone());
                }
                out.push(path);
            }
        }
        out.sort();
        out
    }
}

/// Refused by `check-config` and by `serve`, with `expected` in the words,
/// no panic, and nothing created.
fn assert_refused(site: &Site, config: &str, env: &[(&str, &str)], expected: &str) {
    let before = site.files();
    let check = meldkluis(site.path(), &["--config", config, "check-config"], env);
    let words = text(&check);
    assert_eq!(check.status.code(), Some(1), "{config}: {words}");
    assert!(
        words.contains(expected),
        "{config}: expected {expected:?} in:\n{words}"
    );
    assert!(words.contains("PROBLEM"), "{words}");
    let serve = meldkluis(
        site.path(),
        &["--config", config, "serve", "--listen", "127.0.0.1:0"],
        env,
    );
    let words = text(&serve);
    assert_eq!(serve.status.code(), Some(1), "{config}: {words}");
    assert!(
        words.contains(expected),
        "{config}: expected {expected:?} in:\n{words}"
    );
    assert!(!words.contains("listening"), "{words}");
    for output in [&check, &serve] {
        let all = text(output);
        assert!(!all.contains("panicked"), "{all}");
        assert!(
            !all.contains('\x1b'),
            "a raw escape reached the terminal: {all:?}"
        );
    }
    assert_eq!(
        site.files(),
        before,
        "{config}: a refusal must change nothing"
    );
}

#[test]
fn hostile_and_garbage_config_files_are_refused_with_a_plain_reason() {
    let site = Site::new();
    let mut random = vec![0u8; 4096];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
    random[0] = 0xff; // never valid UTF-8
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random.toml", random, "not UTF-8 text"),
        ("huge.toml", vec![b'#'; 2 * 1024 * 1024], "larger than"),
        (
            "unclosed.toml",
            b"listen = \"127.0.0.1:8080\n".to_vec(),
            "not valid TOML",
        ),
        (
            "escape.toml",
            b"a = \"\x1b[31mred\n".to_vec(),
            "not valid TOML",
        ),
        (
            "number.toml",
            b"listen = 8080\n".to_vec(),
            "expected text in quotes, found a number",
        ),
        (
            "table.toml",
            b"[listen]\nport = 1\n".to_vec(),
            "found a table",
        ),
        (
            "host.toml",
            b"listen = \"localhost:8080\"\n".to_vec(),
            "host names are not accepted",
        ),
        (
            "negative.toml",
            b"max_body_bytes = -5\n".to_vec(),
            "expected a whole number",
        ),
        (
            "overflow.toml",
            b"max_body_bytes = 99999999999999999999\n".to_vec(),
            "not valid TOML",
        ),
        (
            "float.toml",
            b"retention_days = 1e9\n".to_vec(),
            "found a decimal number",
        ),
        (
            "typo.toml",
            b"lisen = \"127.0.0.1:8080\"\n".to_vec(),
            "did you mean listen?",
        ),
        (
            "organisation-escape.toml",
            b"[organisations.mvz]\ncontroller = \"\\u001b[2Jwiped\"\n".to_vec(),
            "control character U+001B",
        ),
        (
            "organisation-bidi.toml",
            b"[organisations.mvz]\ndpo = \"fg@\\u202Eexample\"\n".to_vec(),
            "U+202E",
        ),
        (
            "organisation-file-name.toml",
            b"[organisations.mvz]\ncode_file_name = \"../../etc/passwd.txt\"\n".to_vec(),
            "code_file_name",
        ),
        (
            "organisation-telling-name.toml",
            b"[organisations.mvz]\ncode_file_name = \"meldkluis-ophaalcode.txt\"\n".to_vec(),
            "tells anyone",
        ),
        (
            "organisation-id.toml",
            b"[organisations.\"../x\"]\nname = \"x\"\n".to_vec(),
            "lower-case letters",
        ),
        (
            "organisation-unknown-key.toml",
            b"[organisations.mvz]\ncontroler = \"x\"\n".to_vec(),
            "did you mean controller?",
        ),
        (
            "duplicate.toml",
            b"listen = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n".to_vec(),
            "not valid TOML",
        ),
        (
            "contact.toml",
            b"security_contact = \"mailto:a@example.nl\\r\\nContact: mailto:evil@example.org\"\n"
                .to_vec(),
            "security contact",
        ),
        (
            "onion.toml",
            format!(
                "onion_location = \"http://{}.onion\\r\\nSet-Cookie: a=b\"\n",
                "a".repeat(56)
            )
            .into_bytes(),
            "onion_location",
        ),
        ("nul.toml", b"data_dir = \"da\\u0000ta\"\n".to_vec(), "NUL"),
        (
            "zero.toml",
            b"retention_days = 0\n".to_vec(),
            "retention_days 0",
        ),
        ("tiny.toml", b"max_body_bytes = 10\n".to_vec(), "too small"),
        (
            "deep.toml",
            format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "not valid TOML",
        ),
        (
            "dotted.toml",
            format!("[{}]\n", vec!["a"; 5000].join(".")).into_bytes(),
            "not valid TOML",
        ),
    ];
    for (name, content, expected) in cases {
        site.write(name, content);
        assert_refused(&site, name, &[], expected);
        std::fs::remove_file(site.path().join(name)).unwrap();
    }
    // Not files at all.
    assert_refused(&site, "keys", &[], "is a directory");
    assert_refused(&site, "missing.toml", &[], "does not exist");
    #[cfg(unix)]
    assert_refused(&site, "/dev/zero", &[], "larger than");
}

#[test]
fn every_problem_is_named_in_one_run() {
    let site = Site::new();
    // Settings: three problems from three places.
    site.write("many.toml", "listen = 8080\nretention_days = \"long\"\n");
    let output = meldkluis(
        site.path(),
        &["--config", "many.toml", "check-config"],
        &[("MELDKLUIS_MAX_BODY_BYTES", "32 MiB")],
    );
    let words = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(words.matches("PROBLEM").count(), 3, "{words}");
    for expected in [
        "listen (from many.toml)",
        "retention_days",
        "MELDKLUIS_MAX_BODY_BYTES",
    ] {
        assert!(words.contains(expected), "{expected}: {words}");
    }

    // Files and directories: every bad card, a data "directory" that is a
    // file, a card anyone may change, and a limit that is too large.
    let keys = site.path().join("keys");
    std::fs::write(keys.join("vp-kapot.json"), "{ not json").unwrap();
    std::fs::write(keys.join("vp-anders.json"), &site.card_json).unwrap();
    site.write("not-a-dir", "x");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            keys.join("vp-config.json"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
    }
    let output = meldkluis(
        site.path(),
        &[
            "check-config",
            "--data",
            "not-a-dir",
            "--max-body-bytes",
            "99999999999",
        ],
        &[],
    );
    let words = text(&output);
    assert_eq!(output.status.code(), Some(1), "{words}");
    for expected in [
        "vp-kapot.json",
        "must be named vp-config.json",
        "not a directory",
        "more than 4 GiB",
        #[cfg(unix)]
        "can be changed by any user",
    ] {
        assert!(words.contains(expected), "{expected}: {words}");
    }
    // The inbox key is not a problem of its own: the data directory that
    // would hold it already is.
    #[cfg(unix)]
    assert_eq!(words.matches("PROBLEM").count(), 5, "{words}");

    // The server refuses the same, and says so.
    let output = meldkluis(
        site.path(),
        &["serve", "--listen", "127.0.0.1:0", "--data", "data"],
        &[],
    );
    let words = text(&output);
    assert_eq!(output.status.code(), Some(1), "{words}");
    assert!(words.contains("vp-kapot.json"), "{words}");
    assert!(!site.path().join("data").exists());
}

#[test]
fn file_environment_file_variables_and_flags_combine_in_order() {
    let site = Site::new();
    site.write(
        "meldkluis.toml",
        "listen = \"127.0.0.1:0\"\nsecurity_contact = \"mailto:file@example.nl\"\n",
    );
    let secret = site.write("contact.txt", "mailto:from-file-variable@example.nl\n");
    let secret = secret.to_str().unwrap();

    // The environment beats the file; MELDKLUIS_CONFIG names the file.
    let server = start(
        site.path(),
        &["serve"],
        &[
            ("MELDKLUIS_CONFIG", "meldkluis.toml"),
            ("MELDKLUIS_SECURITY_CONTACT_FILE", secret),
        ],
    );
    assert!(
        server
            .security_txt()
            .contains("Contact: mailto:from-file-variable@example.nl")
    );
    drop(server);

    // A flag beats both.
    let server = start(
        site.path(),
        &[
            "--config",
            "meldkluis.toml",
            "serve",
            "--security-contact",
            "mailto:flag@example.nl",
        ],
        &[("MELDKLUIS_SECURITY_CONTACT_FILE", secret)],
    );
    assert!(
        server
            .security_txt()
            .contains("Contact: mailto:flag@example.nl")
    );
    drop(server);

    // Two sources for one setting, or an unreadable _FILE: refused.
    assert_refused(
        &site,
        "meldkluis.toml",
        &[
            ("MELDKLUIS_SECURITY_CONTACT_FILE", secret),
            ("MELDKLUIS_SECURITY_CONTACT", "mailto:x@example.nl"),
        ],
        "set only one",
    );
    assert_refused(
        &site,
        "meldkluis.toml",
        &[("MELDKLUIS_SECURITY_CONTACT_FILE", "/nonexistent/contact")],
        "MELDKLUIS_SECURITY_CONTACT_FILE",
    );
    let two_lines = site.write(
        "two-lines.txt",
        "mailto:a@example.nl\nmailto:b@example.nl\n",
    );
    assert_refused(
        &site,
        "meldkluis.toml",
        &[(
            "MELDKLUIS_SECURITY_CONTACT_FILE",
            two_lines.to_str().unwrap(),
        )],
        "more than one line",
    );
    assert_refused(
        &site,
        "meldkluis.toml",
        &[("MELDKLUIS_RETENTION_DAYS", "dertig")],
        "MELDKLUIS_RETENTION_DAYS",
    );

    // A misspelt variable is pointed out but does not stop anything.
    let output = meldkluis(
        site.path(),
        &["--config", "meldkluis.toml", "check-config"],
        &[("MELDKLUIS_SECURITY_CONTCT", "mailto:x@example.nl")],
    );
    let words = text(&output);
    assert_eq!(output.status.code(), Some(0), "{words}");
    assert!(
        words.contains("did you mean MELDKLUIS_SECURITY_CONTACT?"),
        "{words}"
    );
}

#[test]
fn a_good_configuration_passes_and_serves() {
    let site = Site::new();
    // Relative paths in the file are relative to the file, not to where
    // the command runs.
    std::fs::create_dir_all(site.path().join("etc")).unwrap();
    std::fs::rename(site.path().join("keys"), site.path().join("etc/keys")).unwrap();
    let onion = format!("http://{}.onion", "b".repeat(56));
    site.write(
        "etc/meldkluis.toml",
        format!(
            "# Meldkluis\nlisten = \"127.0.0.1:0\"\ndata_dir = \"../state\"\nkeys_dir = \"keys\"\n\
             max_body_bytes = 1048576\nsecurity_contact = \"https://example.nl/.well-known/contact\"\n\
             onion_location = \"{onion}\"\nretention_days = 60\n"
        ),
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let config = site.path().join("etc/meldkluis.toml");
    let config = config.to_str().unwrap();
    let output = meldkluis(elsewhere.path(), &["--config", config, "check-config"], &[]);
    let words = text(&output);
    assert_eq!(output.status.code(), Some(0), "{words}");
    assert!(words.contains("OK: the server can start"), "{words}");
    assert!(words.contains("1 card(s): vp-config"), "{words}");
    // The card's v2 fingerprint, as the counsellor's program shows it.
    let card = meldkluis::format::card::Card::parse(site.card_json.as_bytes()).unwrap();
    assert!(
        words.contains(&format!("vp-config: fingerprint {}", card.fingerprint())),
        "{words}"
    );
    assert!(words.contains(&onion), "{words}");
    assert!(!words.contains("PROBLEM"), "{words}");
    assert!(
        !site.path().join("state").exists(),
        "check-config must not create anything"
    );

    let server = start(elsewhere.path(), &["--config", config, "serve"], &[]);
    assert!(
        server
            .security_txt()
            .contains("https://example.nl/.well-known/contact")
    );
    assert!(site.path().join("state/meldkluis.sqlite").exists());
    // The body limit from the file holds.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let answer = server.raw_post("/api/v1/reports", &big);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    drop(server);

    // With a database in place, check-config describes it.
    let output = meldkluis(elsewhere.path(), &["--config", config, "check-config"], &[]);
    let words = text(&output);
    assert_eq!(output.status.code(), Some(0), "{words}");
    assert!(words.contains("schema version"), "{words}");
}

#[test]
fn listen_and_database_problems_are_explained() {
    let site = Site::new();
    // An address this machine does not have (TEST-NET-1, RFC 5737).
    let output = meldkluis(
        site.path(),
        &["check-config", "--listen", "192.0.2.1:8080"],
        &[],
    );
    let words = text(&output);
    assert_eq!(output.status.code(), Some(1), "{words}");
    assert!(words.contains("no such address"), "{words}");

    // An address in use is only a warning: it may be this server.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let output = meldkluis(site.path(), &["check-config", "--listen", &address], &[]);
    let words = text(&output);
    assert_eq!(output.status.code(), Some(0), "{words}");
    assert!(words.contains("is in use"), "{words}");

    // A database file that is not Meldkluis's.
    std::fs::create_dir_all(site.path().join("data")).unwrap();
    std::fs::write(
        site.path().join("data/meldkluis.sqlite"),
        b"SQLite format 3\0garbage",
    )
    .unwrap();
    let output = meldkluis(site.path(), &["check-config"], &[]);
    let words = text(&output);
    assert_eq!(output.status.code(), Some(1), "{words}");
    assert!(words.contains("meldkluis.sqlite cannot be used"), "{words}");
}

/// A `meldkluis serve` started by a test with its own arguments.
struct Running {
    child: std::process::Child,
    port: u16,
}

fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meldkluis"));
    command
        .current_dir(cwd)
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("server did not start: {line:?}"));
    Running { child, port }
}

impl Running {
    fn raw(&self, request: &str, body: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn security_txt(&self) -> String {
        self.raw(
            "GET /.well-known/security.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"",
        )
    }

    fn raw_post(&self, path: &str, body: &[u8]) -> String {
        let pow = if common::needs_pow("POST", path) {
            format!(
                "Meldkluis-Pow: {}\r\n",
                common::pow_for_port(self.port).unwrap()
            )
        } else {
            String::new()
        };
        self.raw(
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{pow}Content-Length: {}\r\n\r\n",
                body.len()
            ),
            body,
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
