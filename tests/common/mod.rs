//! Helpers for the integration tests: a real `meldkluis serve` process on
//! 127.0.0.1 port 0 with its own data and keys directories, and a minimal
//! HTTP/1.1 client so the tests speak real HTTP without extra dependencies.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::code::RetrievalCode;
use meldkluis::format::derive::Derived;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::format::keys::Recipient;
use meldkluis::review::Vault;
use meldkluis::review::vault::NewCounsellor;
use serde_json::{Value, json};

pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Everything the server wrote to stdout and stderr.
    pub log: Arc<Mutex<Vec<u8>>>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The stable error code of a refusal.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A counsellor vault made directly with the library (fast, no prompts).
pub fn make_vault(dir: &Path, id: &str) -> Vault {
    make_vault_in_org(dir, id, None)
}

/// The same, for a named organisation id.
///
/// These are vaults of the classical (protocol v1) format that counsellors
/// made before post-quantum keys, so the suites built on them keep proving
/// that format works; tests/pq_keys.rs covers hybrid vaults and rotation.
pub fn make_vault_in_org(dir: &Path, id: &str, org: Option<&str>) -> Vault {
    Vault::init_with_keys(
        dir,
        SecretString::from("test passphrase".to_owned()),
        NewCounsellor {
            id: id.into(),
            name: format!("Counsellor {id}"),
            organisation: "Ministerie van Testzaken".into(),
            org: org.map(str::to_string),
            kind: CounsellorKind::External,
            description: String::new(),
        },
        meldkluis::review::vault::KeyKind::Classical,
    )
    .unwrap()
}

pub fn reopen(vault: &Vault, dir: &Path) -> Vault {
    let _ = vault;
    Vault::open(dir, SecretString::from("test passphrase".to_owned())).unwrap()
}

impl Server {
    /// Starts a server whose keys/ holds the given cards (as written).
    pub fn start_with_cards(cards: &[(&str, String)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for (id, json) in cards {
            std::fs::write(keys.join(format!("{id}.json")), json).unwrap();
        }
        Self::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> Server {
        Self::start_in_with(dir, &[])
    }

    /// Starts with extra `serve` arguments.
    pub fn start_in_with(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Self::start_in_env(dir, extra, &[])
    }

    /// Starts with extra `serve` arguments and `MELDKLUIS_*` settings.
    pub fn start_in_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meldkluis"));
        command
            .args(Self::serve_args(&dir, extra))
            .envs(env.iter().copied());
        Self::spawn(command, dir)
    }

    /// The arguments of `meldkluis serve` on port 0 in `dir`.
    fn serve_args(dir: &tempfile::TempDir, extra: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["serve".into()];
        args.extend(extra.iter().map(Into::into));
        args.extend(["--listen".into(), "127.0.0.1:0".into(), "--data".into()]);
        args.push(dir.path().join("data").into());
        args.push("--keys".into());
        args.push(dir.path().join("keys").into());
        args
    }

    /// Runs `command` (a `meldkluis serve`) and waits for its "listening"
    /// line.
    fn spawn(mut command: Command, dir: tempfile::TempDir) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        log.lock().unwrap().extend_from_slice(first.as_bytes());
        let stderr = child.stderr.take().unwrap();
        for mut stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
        let base = first
            .trim()
            .strip_prefix("Meldkluis listening on ")
            .unwrap_or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                panic!(
                    "server did not start: {first}{}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                )
            })
            .to_string();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server {
            child,
            base,
            port,
            dir,
            log,
        }
    }

    /// Sends the server process a signal (`kill -SIGNAL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The server process's peak resident memory so far, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Resets the peak that `peak_rss_kib` reports to the current size.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        self.request_with(method, path, &headers, body)
    }

    /// A request with extra headers.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let solved;
        let mut headers = headers.to_vec();
        if needs_pow(method, path)
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("meldkluis-pow"))
        {
            solved = self.pow();
            headers.push(("Meldkluis-Pow", &solved));
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) before reading a large body.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    /// A solved proof of work for one request (`Meldkluis-Pow` header).
    pub fn pow(&self) -> String {
        let answer = self.get("/api/v1/pow");
        assert_eq!(answer.status, 200);
        let challenge: meldkluis::server::pow::Challenge =
            serde_json::from_slice(&answer.body).unwrap();
        meldkluis::server::pow::solve(&challenge).unwrap()
    }

    /// Sends `bytes` as they are and reads the answer until the server
    /// closes (for requests no HTTP client would make).
    pub fn raw(&self, bytes: &[u8]) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    /// Starts an upload of `length` bytes; the answer.
    pub fn create_upload(&self, length: usize) -> Response {
        self.post_json("/api/v1/uploads", &json!({ "length": length }))
    }

    /// Sends one chunk of an upload.
    pub fn send_chunk(&self, upload: &str, offset: usize, bytes: &[u8]) -> Response {
        self.request_with(
            "POST",
            "/api/v1/uploads/chunk",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Upload-Id", upload),
                ("Upload-Offset", &offset.to_string()),
            ],
            bytes,
        )
    }

    /// Uploads a whole age file in chunks of `chunk` bytes; its id.
    pub fn upload(&self, file: &[u8], chunk: usize) -> String {
        let created = self.create_upload(file.len());
        assert_eq!(
            created.status,
            201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        let id = created.json()["upload"].as_str().unwrap().to_string();
        for (i, piece) in file.chunks(chunk).enumerate() {
            let answer = self.send_chunk(&id, i * chunk, piece);
            assert_eq!(
                answer.status,
                200,
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        id
    }

    /// The files in the data directory's `uploads/`, sorted.
    /// The uploads the database holds, named as version 3 named their
    /// files: `<id>.part` while pending, `<id>.age` once complete.
    pub fn upload_files(&self) -> Vec<String> {
        let db = rusqlite::Connection::open(self.data_dir().join("meldkluis.sqlite")).unwrap();
        let mut names: Vec<String> = db
            .prepare("SELECT id, state FROM uploads")
            .unwrap()
            .query_map([], |row| {
                let id: Vec<u8> = row.get(0)?;
                let state: String = row.get(1)?;
                let suffix = if state == "pending" { "part" } else { "age" };
                Ok(format!("{}.{suffix}", hex::encode(id)))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names.sort();
        names
    }

    /// The bytes the database holds of upload `id`, in order.
    pub fn stored_upload(&self, id: &str) -> Vec<u8> {
        let db = rusqlite::Connection::open(self.data_dir().join("meldkluis.sqlite")).unwrap();
        let pieces: Vec<(i64, Vec<u8>)> = db
            .prepare("SELECT start, data FROM upload_chunks WHERE upload_id = ?1 ORDER BY start")
            .unwrap()
            .query_map([hex::decode(id).unwrap()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut bytes = Vec::new();
        for (start, data) in pieces {
            assert_eq!(start as usize, bytes.len(), "pieces leave no gap");
            bytes.extend_from_slice(&data);
        }
        bytes
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None, b"")
    }

    pub fn post_json(&self, path: &str, value: &Value) -> Response {
        self.request(
            "POST",
            path,
            Some("application/json"),
            value.to_string().as_bytes(),
        )
    }

    /// Sends a report as the browser does (`Melder::report_request`).
    pub fn submit_report(
        &self,
        melder: &Melder,
        envelope: &Envelope,
        recipients: &[Recipient],
    ) -> Response {
        self.post_json(
            "/api/v1/reports",
            &melder.report_request(envelope, recipients),
        )
    }

    /// The thread as the melder's page fetches it: each message's age file.
    pub fn thread_files(&self, melder: &Melder) -> Vec<Vec<u8>> {
        let answer = self.post_json("/api/v1/thread", &melder.thread_request());
        assert_eq!(answer.status, 200);
        answer.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| STANDARD.decode(m["message"].as_str().unwrap()).unwrap())
            .collect()
    }

    /// An inbox the operator makes itself, with the server's own signing
    /// key: what a hostile operator can hand the laptop besides what the
    /// API stores.
    pub fn operators_inbox(
        &self,
        vault: &Vault,
        entries: &[meldkluis::format::bundle::InboxEntry],
    ) -> Vec<u8> {
        use meldkluis::server::inbox_key;
        let server_key = inbox_key::read(&self.data_dir().join(inbox_key::FILE_NAME))
            .unwrap()
            .unwrap();
        let mut none = |_: &meldkluis::format::ids::UploadId| -> std::io::Result<Box<dyn Read>> {
            unreachable!()
        };
        meldkluis::format::bundle::Inbox::seal_signed_to(
            Vec::new(),
            Some(&server_key),
            &vault.card.id,
            vault.state.inbox_answers,
            &[],
            entries,
            &vault.recipient(),
            &mut none,
        )
        .unwrap()
    }

    pub fn sync(&self, outbox: &[u8]) -> Response {
        self.request(
            "POST",
            "/api/v1/courier/sync",
            Some("application/octet-stream"),
            outbox,
        )
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Row counts of every table: "changes nothing" means these stay equal.
    pub fn table_counts(&self) -> Vec<(String, i64)> {
        let db = rusqlite::Connection::open(self.data_dir().join("meldkluis.sqlite")).unwrap();
        [
            "cases",
            "case_counsellors",
            "messages",
            "counsellor_sync",
            "uploads",
            "upload_chunks",
            "deliveries",
        ]
            .iter()
            .map(|t| {
                let n: i64 = db.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).unwrap();
                (t.to_string(), n)
            })
            .chain(std::iter::once({
                let sync: String = db
                    .query_row("SELECT coalesce(group_concat(counsellor || ':' || hex(counter)), '') || '/' || (SELECT coalesce(sum(received), 0) FROM uploads) FROM counsellor_sync", [], |r| r.get(0))
                    .unwrap();
                (sync, 0)
            }))
            .collect()
    }

    /// Stops the process but keeps its directory (until `self` is dropped).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        self.log_text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A solved proof of work from the server on `port`; `None` when it does
/// not answer (it may be dying, in the crash tests).
pub fn pow_for_port(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /api/v1/pow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let challenge: meldkluis::server::pow::Challenge =
        serde_json::from_slice(&raw[split + 4..]).ok()?;
    meldkluis::server::pow::solve(&challenge)
}

/// The requests that need a proof of work (docs/api.md).
pub fn needs_pow(method: &str, path: &str) -> bool {
    method == "POST"
        && matches!(
            path,
            "/api/v1/reports" | "/api/v1/thread/messages" | "/api/v1/uploads"
        )
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// One courier round: the vault's outbox to the server, its inbox imported.
pub fn sync(server: &Server, vault: &mut Vault) -> meldkluis::review::commands::ImportSummary {
    use meldkluis::review::commands;
    let answer = server.sync(&commands::outbox(vault).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    commands::import(vault, &answer.body).unwrap()
}

/// A melder as the browser would be: a code, its derivations, and helpers
/// that build the API requests.
pub struct Melder {
    pub code: RetrievalCode,
    pub derived: Derived,
}

impl Melder {
    pub fn new() -> Melder {
        let code = RetrievalCode::generate();
        let derived = Derived::from_code(&code);
        Melder { code, derived }
    }

    pub fn report_envelope(&self, text: &str, counsellors: &[&str]) -> Envelope {
        let mut envelope = Envelope::new(Kind::Report, text);
        envelope.reply_recipient = Some(self.derived.reply_recipient().to_string());
        envelope.counsellors = counsellors.iter().map(|s| s.to_string()).collect();
        envelope
    }

    pub fn report_request(&self, envelope: &Envelope, recipients: &[Recipient]) -> Value {
        // As the page does: the reply recipient of the counsellors' kind
        // (post-quantum only when all of them are), also inside the report.
        let reply = self.derived.reply_recipient_for(recipients);
        let mut envelope = envelope.clone();
        if envelope.reply_recipient.is_some() {
            envelope.reply_recipient = Some(reply.to_string());
        }
        let mut all = recipients.to_vec();
        all.push(reply);
        json!({
            "counsellors": envelope.counsellors,
            "lookup_key": self.derived.lookup_key.to_hex(),
            "message": STANDARD.encode(envelope.seal(&all).unwrap()),
        })
    }

    pub fn follow_up_request(&self, text: &str, recipients: &[Recipient]) -> Value {
        let mut all = recipients.to_vec();
        all.push(self.derived.reply_recipient_for(recipients));
        json!({
            "lookup_key": self.derived.lookup_key.to_hex(),
            "message": STANDARD.encode(Envelope::new(Kind::FollowUp, text).seal(&all).unwrap()),
        })
    }

    /// A protocol v2 report (§10.2) to `cards`: pinned, numbered 1, signed
    /// by `report_request_signed`.
    pub fn report_envelope_v2(
        &self,
        text: &str,
        cards: &[meldkluis::format::card::Card],
    ) -> Envelope {
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        let mut envelope = self.report_envelope(text, &ids);
        envelope.v = 2;
        envelope.cards = cards.to_vec();
        envelope.thread = Some(self.derived.thread());
        envelope.seq = Some(1);
        envelope.prev = Some(None);
        envelope
    }

    /// A v2 follow-up numbered `seq` after the message whose age file
    /// hashes to `prev`.
    pub fn follow_up_v2(&self, text: &str, seq: u64, prev: &str) -> Envelope {
        let mut envelope = Envelope::new(Kind::FollowUp, text);
        envelope.v = 2;
        envelope.thread = Some(self.derived.thread());
        envelope.seq = Some(seq);
        envelope.prev = Some(Some(prev.into()));
        envelope
    }

    /// `report_request` for a v2 report, signed with the melder's key.
    pub fn report_request_signed(&self, envelope: &Envelope, recipients: &[Recipient]) -> Value {
        let reply = self.derived.reply_recipient_for(recipients);
        let mut envelope = envelope.clone();
        envelope.reply_recipient = Some(reply.to_string());
        let mut all = recipients.to_vec();
        all.push(reply);
        json!({
            "counsellors": envelope.counsellors,
            "lookup_key": self.derived.lookup_key.to_hex(),
            "message": STANDARD.encode(
                envelope.seal_signed(&all, &self.derived.melder_signing_key()).unwrap()
            ),
        })
    }

    /// A follow-up request for `envelope` signed with `key` (the melder's
    /// own, or a forger's).
    pub fn message_request_signed(
        &self,
        envelope: &Envelope,
        recipients: &[Recipient],
        key: &ed25519_dalek::SigningKey,
    ) -> Value {
        let mut all = recipients.to_vec();
        all.push(self.derived.reply_recipient_for(recipients));
        json!({
            "lookup_key": self.derived.lookup_key.to_hex(),
            "message": STANDARD.encode(envelope.seal_signed(&all, key).unwrap()),
        })
    }

    pub fn thread_request(&self) -> Value {
        json!({"lookup_key": self.derived.lookup_key.to_hex()})
    }

    /// Decrypts every message of a thread answer with the reply identity.
    /// Opens one message of the thread with the reply identities.
    pub fn open(&self, file: &[u8]) -> Envelope {
        let [pq, classical] = self.derived.reply_identities();
        Envelope::open(file, &[&pq, &classical]).unwrap()
    }

    pub fn read_thread(&self, answer: &Value) -> Vec<Envelope> {
        let [pq, classical] = self.derived.reply_identities();
        answer["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let bytes = STANDARD.decode(m["message"].as_str().unwrap()).unwrap();
                Envelope::open(&bytes, &[&pq, &classical]).unwrap()
            })
            .collect()
    }
}

/// A streamed attachment (protocol.md §3a) of `plaintext`, encrypted to
/// `recipients`: the age file and the envelope entry's description.
pub fn seal_attachment(
    plaintext: &[u8],
    recipients: &[Recipient],
) -> (Vec<u8>, meldkluis::format::envelope::StreamedFile) {
    use meldkluis::format::agefile;
    use sha2::Digest;
    let mut padded = plaintext.to_vec();
    padded.resize(
        agefile::attachment_padded_length(plaintext.len() as u64) as usize,
        0,
    );
    let file = meldkluis::format::encrypt(recipients, &padded).unwrap();
    let shape =
        agefile::check_attachment(&file[..file.len().min(70_000)], file.len() as u64).unwrap();
    let head_sha256 = sha2::Sha256::digest(&file[..shape.head_len]).into();
    (
        file,
        meldkluis::format::envelope::StreamedFile {
            size: plaintext.len() as u64,
            upload: meldkluis::format::ids::UploadId([0; 16]),
            head_sha256,
        },
    )
}

/// A new database on the test PostgreSQL of tests/postgres.sh, dropped at
/// the end; `None` (the test skips, saying so) when there is none, unless
/// `MELDKLUIS_REQUIRE_POSTGRES=1`.
pub struct PgDatabase {
    /// The administrator's URL (with password) of the test cluster.
    pub admin: String,
    pub name: String,
}

impl PgDatabase {
    pub fn create(prefix: &str) -> Option<PgDatabase> {
        let Ok(admin) = std::env::var("MELDKLUIS_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("MELDKLUIS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MELDKLUIS_REQUIRE_POSTGRES=1 but no test PostgreSQL: run through tests/postgres.sh"
            );
            eprintln!("skipped: MELDKLUIS_TEST_POSTGRES_URL is not set (tests/postgres.sh)");
            return None;
        };
        let name = format!("{prefix}_{}", hex::encode(rand::random::<[u8; 8]>()));
        postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        Some(PgDatabase { admin, name })
    }

    /// The administrator, connected to the cluster (not to this database).
    pub fn admin_client(&self) -> postgres::Client {
        postgres::Client::connect(&self.admin, postgres::NoTls).unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}
