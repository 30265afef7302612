//! TLS to PostgreSQL (docs/postgresql.md, "TLS"): a node on a verified
//! link takes and returns a report, and PostgreSQL says the link is TLS; a
//! server certificate of another CA, or for another name, is refused with
//! the reason; `require` against a server that offers no TLS is refused; a
//! bogus `sslmode` is refused before any connection. Needs the PostgreSQL
//! of tests/postgres.sh (ssl=on, its CA in `MELDKLUIS_TEST_POSTGRES_CA`);
//! without it each test that needs it says so and passes, unless
//! `MELDKLUIS_REQUIRE_POSTGRES=1` (tests/run-all.sh).

mod common;

use std::time::{Duration, Instant};

use common::{Melder, PgDatabase, Server, make_vault};
use meldkluis::server::store::Store;

/// The test PostgreSQL, a new database on it (dropped at the end), and its
/// certificates.
struct Tls {
    db: PgDatabase,
    /// host:port of its TCP listener.
    server: String,
    password_file: String,
    ca: String,
    other_ca: String,
    socket_dir: String,
}

impl Tls {
    fn create() -> Option<Tls> {
        let db = PgDatabase::create("tls")?;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: tests/postgres.sh of this tree sets it")
            })
        };
        let server = db
            .admin
            .rsplit_once('@')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Some(Tls {
            password_file: var("MELDKLUIS_TEST_POSTGRES_PASSWORD_FILE"),
            ca: var("MELDKLUIS_TEST_POSTGRES_CA"),
            other_ca: var("MELDKLUIS_TEST_POSTGRES_OTHER_CA"),
            socket_dir: var("MELDKLUIS_TEST_POSTGRES_SOCKET_DIR"),
            db,
            server,
        })
    }

    /// The database's URL without a password, with these options.
    fn url(&self, options: &str) -> String {
        format!(
            "postgres://meldkluis@{}/{}?{options}",
            self.server, self.db.name
        )
    }

    fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file)
            .unwrap()
            .trim()
            .to_string()
    }

    /// The store on `url`, or its error in words.
    fn open(&self, url: &str) -> Result<Store, String> {
        Store::open_postgres(url, Some(&self.password())).map_err(|e| e.to_string())
    }

    /// Connections to this database by whether they are TLS, as
    /// PostgreSQL counts them (`pg_stat_ssl`).
    fn links(&self) -> (i64, i64) {
        let row = self
            .db
            .admin_client()
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
                   FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
                  WHERE a.datname = $1",
                &[&self.db.name],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }
}

fn check_config(dir: &std::path::Path, url: &str, password_file: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["check-config", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .env("MELDKLUIS_DATABASE_URL", url)
        .env("MELDKLUIS_DATABASE_PASSWORD_FILE", password_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn a_node_on_a_verified_tls_link_takes_and_returns_a_report() {
    let Some(pg) = Tls::create() else {
        return;
    };
    let url = pg.url(&format!("sslmode=verify-full&sslrootcert={}", pg.ca));
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-test");
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-test.json"), vault.card.to_json()).unwrap();

    // check-config says what PostgreSQL itself reports of the link.
    let (ok, text) = check_config(dir.path(), &url, &pg.password_file);
    assert!(ok, "{text}");
    assert!(
        text.contains("link encrypted, the server's certificate checked against")
            && text.contains("sslmode=verify-full")
            && text.contains("PostgreSQL reports TLS: TLSv1."),
        "{text}"
    );
    assert!(!text.contains("not on this machine"), "{text}");

    let node = Server::start_in_env(
        dir,
        &[],
        &[
            ("MELDKLUIS_DATABASE_URL", &url),
            ("MELDKLUIS_DATABASE_PASSWORD_FILE", &pg.password_file),
        ],
    );
    let melder = Melder::new();
    let envelope = melder.report_envelope("Het geld van de kas is weg.", &["vp-test"]);
    let created = node.submit_report(&melder, &envelope, &[vault.recipient()]);
    assert_eq!(created.status, 201, "{}", created.error());
    let thread = node
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let messages = melder.read_thread(&thread);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "Het geld van de kas is weg.");

    // Every connection of the node to this database is TLS.
    let (tls, plain) = pg.links();
    assert!(tls >= 1 && plain == 0, "{tls} TLS, {plain} plain");
    assert!(
        node.log_text().contains("database link: encrypted"),
        "{}",
        node.log_text()
    );

    // The password exchange is bound to this TLS channel (SCRAM-SHA-256-PLUS):
    // with channel_binding=require the client accepts nothing less.
    pg.open(&format!("{url}&channel_binding=require"))
        .expect("channel binding over the verified link");
}

#[test]
fn a_certificate_of_another_ca_or_for_another_name_is_refused_with_the_reason() {
    let Some(pg) = Tls::create() else {
        return;
    };
    let error = pg
        .open(&pg.url(&format!("sslmode=verify-full&sslrootcert={}", pg.other_ca)))
        .err()
        .expect("a certificate of another CA is refused");
    assert!(
        error.contains("UnknownIssuer") && error.contains("not signed by the CA in sslrootcert"),
        "{error}"
    );
    // `require` with a CA file checks the CA too (as libpq does).
    let error = pg
        .open(&pg.url(&format!("sslmode=require&sslrootcert={}", pg.other_ca)))
        .err()
        .expect("require with sslrootcert checks the CA");
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The right CA, a name the certificate does not hold (its address is
    // 127.0.0.1 through hostaddr): refused by verify-full…
    let (_, port) = pg.server.rsplit_once(':').unwrap();
    let elsewhere = format!(
        "postgres://meldkluis@db.example.invalid:{port}/{}?hostaddr=127.0.0.1&sslrootcert={}",
        pg.db.name, pg.ca
    );
    let error = pg
        .open(&format!("{elsewhere}&sslmode=verify-full"))
        .err()
        .expect("a certificate for other names is refused");
    assert!(
        error.contains("not valid for name \"db.example.invalid\"")
            && error.contains("does not name the host"),
        "{error}"
    );
    // …and without sslmode, which is verify-full for a host elsewhere.
    let error = pg.open(&elsewhere).err().expect("verify-full by default");
    assert!(error.contains("does not name the host"), "{error}");
    // …taken by verify-ca, which checks the CA only; check-config warns.
    let verify_ca = format!("{elsewhere}&sslmode=verify-ca");
    pg.open(&verify_ca).expect("verify-ca takes another name");
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-test");
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-test.json"), vault.card.to_json()).unwrap();
    let (_, text) = check_config(dir.path(), &verify_ca, &pg.password_file);
    assert!(
        text.contains("db.example.invalid is not on this machine")
            && text.contains("use sslmode=verify-full"),
        "{text}"
    );
}

#[test]
fn require_against_a_server_that_offers_no_tls_is_refused() {
    let Some(pg) = Tls::create() else {
        return;
    };
    // PostgreSQL offers no TLS on its Unix socket: a server without it.
    let socket = pg.socket_dir.replace('/', "%2F");
    let (_, port) = pg.server.rsplit_once(':').unwrap();
    let url = |mode: &str| {
        format!(
            "postgres://meldkluis@{socket}:{port}/{}?sslmode={mode}",
            pg.db.name
        )
    };
    pg.open(&url("disable")).expect("the socket answers");
    let error = pg
        .open(&url("require"))
        .err()
        .expect("require is refused by a server without TLS");
    assert!(error.contains("server does not support TLS"), "{error}");
}

#[test]
fn a_bogus_sslmode_or_a_missing_ca_is_refused_before_any_connection() {
    // 192.0.2.1 (TEST-NET-1) never answers: a connection attempt would
    // take the 10 s connect timeout, so a quick refusal made none.
    let url = |options: &str| format!("postgres://meldkluis@192.0.2.1:5432/meldkluis?{options}");
    let ca_dir = tempfile::tempdir().unwrap();
    let not_pem = ca_dir.path().join("ca.pem");
    std::fs::write(&not_pem, "geen certificaat\n").unwrap();
    for (options, expected) in [
        (
            "sslmode=verify-fool",
            "sslmode \"verify-fool\" is not one meldkluis knows",
        ),
        ("sslmode=prefer", "sslmode=prefer is not supported"),
        ("sslmode=allow", "sslmode=allow is not supported"),
        (
            "sslmode=verify-full",
            "sslmode=verify-full needs sslrootcert",
        ),
        ("", "sslmode=verify-full needs sslrootcert"),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "sslrootcert /nonexistent/ca.pem",
        ),
        ("sslmode=verify-full&sslrootcert=ca.pem", "absolute path"),
        (
            "sslmode=verify-full&sslrootcert=system",
            "sslrootcert=system is not supported",
        ),
        ("sslcert=/client.pem", "sslcert is not supported"),
        (
            &format!("sslmode=verify-full&sslrootcert={}", not_pem.display()),
            "holds no certificate",
        ),
    ] {
        let started = Instant::now();
        let error = Store::open_postgres(&url(options), Some("x"))
            .err()
            .unwrap_or_else(|| panic!("{options} is refused"))
            .to_string();
        assert!(error.starts_with("database_url: "), "{options}: {error}");
        assert!(error.contains(expected), "{options}: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{options}: it tried to connect"
        );
    }

    // The configuration refuses it at load, before anything else.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let password = dir.path().join("password");
    std::fs::write(&password, "x\n").unwrap();
    let (ok, text) = check_config(
        dir.path(),
        &url("sslmode=verify-fool"),
        password.to_str().unwrap(),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("sslmode \"verify-fool\" is not one meldkluis knows"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{text}");
}
