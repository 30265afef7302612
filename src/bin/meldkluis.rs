//! `meldkluis`: the server and the operator's commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use meldkluis::server::config::{
    self, CheckMode, Config, Environment, Loaded, Overrides, SETTINGS, Severity,
};
use meldkluis::server::{self, AppState, backup};

#[derive(Parser)]
#[command(
    name = "meldkluis",
    version,
    about = "Meldkluis server: stores encrypted reports it cannot read"
)]
struct Cli {
    /// Configuration file (TOML). Environment variables MELDKLUIS_<SETTING>
    /// and the flags below override it; see docs/deploy.md.
    #[arg(long, env = "MELDKLUIS_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The settings as flags; each overrides the file and the environment.
#[derive(Args)]
struct SettingFlags {
    /// Address to listen on (put a TLS reverse proxy in front) [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the database [default: data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Directory with the counsellor cards (`<id>.json`) [default: keys].
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Largest request body in bytes [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Contact for /.well-known/security.txt (mailto: or https: URI).
    #[arg(long, value_name = "URI")]
    security_contact: Option<String>,
    /// The site's .onion address, sent as the Onion-Location header.
    #[arg(long, value_name = "URL")]
    onion_location: Option<String>,
    /// Days a closed case stays on the server [default: 30].
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
}

impl SettingFlags {
    fn overrides(self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data,
            keys_dir: self.keys,
            max_body_bytes: self.max_body_bytes,
            security_contact: self.security_contact,
            onion_location: self.onion_location,
            retention_days: self.retention_days,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        settings: SettingFlags,
    },
    /// Check the configuration, the cards, the directories and the listen
    /// address, and explain every problem. Exits non-zero on any problem.
    CheckConfig {
        #[command(flatten)]
        settings: SettingFlags,
    },
    /// Copy the database to FILE while the server runs (FILE may be a
    /// directory: the copy is then named after the time).
    Backup {
        file: PathBuf,
        /// Directory of the database [default: from the configuration].
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// After the copy, delete the dated backups in FILE (a directory)
        /// taken more than DAYS days ago, so a deleted case leaves every
        /// copy within that period.
        #[arg(long, value_name = "DAYS")]
        keep_days: Option<u32>,
    },
    /// Put the backup FILE in place as the database. Stop the server first.
    Restore {
        file: PathBuf,
        /// Directory of the database [default: from the configuration].
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Replace an existing database (it is kept beside, renamed).
        #[arg(long)]
        force: bool,
    },
    /// Copy the store between SQLite and PostgreSQL, proven by row counts
    /// and hashes. Stop the server (every node) first.
    ///
    /// --to URL copies the SQLite store of the data directory (with its
    /// attachments) into an empty PostgreSQL database. --from URL copies
    /// back, for a rollback: the PostgreSQL store into a new SQLite store
    /// in the data directory (there must be none, or an empty file), put in
    /// place only once every table agrees. The password comes from
    /// database_password (MELDKLUIS_DATABASE_PASSWORD_FILE), or the URL.
    #[command(group(clap::ArgGroup::new("direction").required(true).args(["to", "from"])))]
    MigrateStore {
        /// Copy into this PostgreSQL database, postgres://user@host:port/database
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Copy from this PostgreSQL database back into SQLite.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Directory of the SQLite database [default: from the configuration].
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Try Meldkluis locally with a throwaway, INSECURE counsellor key.
    Demo {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Check that a running site serves exactly this build's pages and
    /// scripts (and, with --cards, exactly the published counsellor cards);
    /// exits non-zero on any difference.
    VerifySite {
        /// The site, e.g. https://meldpunt.example.nl
        url: String,
        /// The cards the organisation published: a JSON array of cards, or
        /// a directory of `<id>.json` cards (like keys/). Every
        /// organisation's served counsellors must be exactly these.
        #[arg(long, value_name = "FILE")]
        cards: Option<PathBuf>,
    },
    /// Write a printable page with every counsellor's card fingerprint, for
    /// the organisation to publish out of band (intranet, poster), so staff
    /// can compare it with the report form.
    FingerprintSheet {
        /// Where to write the page (HTML, self-contained).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only this organisation (its id, as in /o/<org>/) [default: all].
        #[arg(long, value_name = "ID")]
        org: Option<String>,
        /// The sheet's language: nl or en.
        #[arg(long, default_value = "nl", value_parser = ["nl", "en"])]
        lang: String,
        /// Directory with the counsellor cards [default: from the configuration].
        #[arg(long, value_name = "DIR")]
        keys: Option<PathBuf>,
    },
    /// Print the SHA-256 of every file this build serves (sha256sum format).
    SiteManifest,
}

fn verify_site(url: &str, cards: Option<&Path>) -> Result<(), String> {
    use server::verify::{CardCheck, Check};
    // The published cards are read first: a bad file stops before any request.
    let published = match cards {
        Some(path) => Some(server::verify::load_published(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let results = server::verify::verify_site(url).map_err(|e| e.to_string())?;
    let mut bad = 0;
    for (path, check) in &results {
        match check {
            Check::Same => println!("ok       {path}"),
            Check::Differs {
                expected,
                served,
                asked,
            } => {
                bad += 1;
                println!(
                    "DIFFERS  {path}  (this build {expected}, served {served}, asked for {asked})"
                );
            }
            Check::Missing(why) => {
                bad += 1;
                println!("MISSING  {path}  ({why})");
            }
        }
    }
    let mut problems = Vec::new();
    if bad == 0 {
        println!("{} files: all identical to this build.", results.len());
    } else {
        problems.push(format!(
            "{bad} of {} files differ from this build",
            results.len()
        ));
    }
    if let Some(published) = published {
        let checks = server::verify::verify_cards(url, &published).map_err(|e| e.to_string())?;
        for check in &checks {
            match check {
                CardCheck::Same {
                    org,
                    id,
                    fingerprint,
                } => println!("ok       card {id} ({org})  {fingerprint}"),
                CardCheck::Differs {
                    org,
                    id,
                    fields,
                    published,
                    served,
                } => println!(
                    "DIFFERS  card {id} ({org}): {} differs from the published card \
                     (published {published}, served {served})",
                    fields.join(", ")
                ),
                CardCheck::Missing {
                    org,
                    id,
                    fingerprint,
                } => println!("MISSING  card {id} ({org}): published ({fingerprint}), not served"),
                CardCheck::Unpublished {
                    org,
                    id,
                    fingerprint,
                } => println!("EXTRA    card {id} ({org}): served ({fingerprint}), not published"),
                CardCheck::Unreadable { org, why } => {
                    println!("BROKEN   counsellors of {org}: {why}")
                }
            }
        }
        let differing = checks.iter().filter(|c| !c.is_same()).count();
        if differing == 0 {
            println!(
                "{} card(s): every organisation serves exactly the published cards.",
                checks.len()
            );
        } else {
            problems.push(format!(
                "{differing} counsellor card(s) differ from the published ones"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn fingerprint_sheet(
    config: &Config,
    out: &Path,
    org: Option<&str>,
    lang: &str,
) -> Result<(), String> {
    use meldkluis::server::sheet;
    let cards = config::load_cards(&config.keys_dir).map_err(|e| e.to_string())?;
    let names = config
        .organisations
        .iter()
        .filter_map(|(id, o)| o.name.clone().map(|name| (id.clone(), name)))
        .collect();
    let texts = if lang == "en" { &sheet::EN } else { &sheet::NL };
    let day = time::OffsetDateTime::now_utc().date().to_string();
    let html = sheet::render(&cards, &names, org, texts, &day).map_err(|e| e.to_string())?;
    std::fs::write(out, html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let printed: Vec<&meldkluis::format::card::Card> = cards
        .values()
        .filter(|card| org.is_none_or(|org| card.org_id() == org))
        .collect();
    for card in &printed {
        println!(
            "{:<24} {:<24} {}",
            card.org_id(),
            card.id,
            card.fingerprint()
        );
    }
    println!(
        "Wrote {} ({} counsellor(s)). Publish it where staff can see it without this server \
         (intranet, poster), and check it with each counsellor's own program first.",
        out.display(),
        printed.len()
    );
    Ok(())
}

fn init_logging() {
    // No timestamps and no request lines: a log line must never tell when a
    // melder did something (DESIGN §1). Only start-up and internal errors.
    tracing_subscriber::fmt()
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // Whatever this program creates (the database and its log, backups,
    // the data directory) is for its own user only, also outside the
    // systemd unit that sets the same umask.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    init_logging();
    let file = cli.config.as_deref();
    let result = match cli.command {
        Command::Serve { settings } => load(file, settings.overrides()).and_then(serve),
        Command::CheckConfig { settings } => return check_config(file, settings.overrides()),
        Command::Backup {
            file: target,
            data,
            force,
            keep_days,
        } => load(file, data_only(data))
            .and_then(|loaded| run_backup(&loaded.config, &target, force, keep_days)),
        Command::Restore {
            file: source,
            data,
            force,
        } => load(file, data_only(data))
            .and_then(|loaded| run_restore(&loaded.config, &source, force)),
        Command::MigrateStore { to, from, data } => {
            load(file, data_only(data)).and_then(|loaded| match (to, from) {
                (Some(to), _) => migrate_store(&loaded.config, &to),
                (None, Some(from)) => migrate_store_back(&loaded.config, &from),
                (None, None) => Err("migrate-store needs --to URL or --from URL".into()),
            })
        }
        Command::VerifySite { url, cards } => verify_site(&url, cards.as_deref()),
        Command::FingerprintSheet {
            out,
            org,
            lang,
            keys,
        } => load(
            file,
            Overrides {
                keys_dir: keys,
                ..Overrides::default()
            },
        )
        .and_then(|loaded| fingerprint_sheet(&loaded.config, &out, org.as_deref(), &lang)),
        Command::SiteManifest => server::verify::manifest()
            .map(|text| print!("{text}"))
            .map_err(|e| e.to_string()),
        Command::Demo { listen } => runtime().and_then(|runtime| {
            runtime
                .block_on(server::demo::run(listen))
                .map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meldkluis: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "postgres")]
fn migrate_store(config: &Config, to: &str) -> Result<(), String> {
    use meldkluis::server::store::{migrate, postgres::PostgresStore};
    let source = config.database_path();
    if !source.exists() {
        return Err(format!("there is no database at {}", source.display()));
    }
    let password = config.database_password.as_ref().map(|p| p.expose());
    let shown = config::url_without_password(to);
    let target = PostgresStore::open(to, password)
        .map_err(|e| format!("cannot use the PostgreSQL database {shown}: {e}"))?;
    let copies = migrate::sqlite_to_postgres(&source, &target).map_err(|e| e.to_string())?;
    println!("Copied {} into {shown}:", source.display());
    print_copies(&copies);
    println!(
        "Set database_url on every node to use it. The SQLite file stays as it was (a rollback)."
    );
    Ok(())
}

/// Each table migrate-store copied: rows and the hash both sides agreed on.
#[cfg(feature = "postgres")]
fn print_copies(copies: &[meldkluis::server::store::migrate::TableCopy]) {
    for copy in copies {
        println!(
            "  {:<18} {:>9} row(s)  sha256 {}  (the same on both sides)",
            copy.table,
            copy.rows,
            hex::encode(copy.sha256)
        );
    }
}

#[cfg(not(feature = "postgres"))]
fn migrate_store(_config: &Config, _to: &str) -> Result<(), String> {
    Err("this build of meldkluis has no PostgreSQL support (feature `postgres`)".into())
}

#[cfg(feature = "postgres")]
fn migrate_store_back(config: &Config, from: &str) -> Result<(), String> {
    use meldkluis::server::store::{migrate, postgres::PostgresStore};
    let target = config.database_path();
    let password = config.database_password.as_ref().map(|p| p.expose());
    let shown = config::url_without_password(from);
    let source = PostgresStore::open(from, password)
        .map_err(|e| format!("cannot use the PostgreSQL database {shown}: {e}"))?;
    let copies = migrate::postgres_to_sqlite(&source, &target)
        .map_err(|e| format!("{e} (nothing was written to {})", target.display()))?;
    println!("Copied {shown} into {}:", target.display());
    print_copies(&copies);
    println!("Remove database_url to use it. The PostgreSQL database stays as it was.");
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn migrate_store_back(_config: &Config, _from: &str) -> Result<(), String> {
    Err("this build of meldkluis has no PostgreSQL support (feature `postgres`)".into())
}

fn data_only(data: Option<PathBuf>) -> Overrides {
    Overrides {
        data_dir: data,
        ..Overrides::default()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Loads the configuration; warnings go to the log.
fn load(file: Option<&Path>, flags: Overrides) -> Result<Loaded, String> {
    let loaded = config::load(file, &Environment::from_process(), &flags).map_err(|problems| {
        format!("the configuration has problems; nothing was done.\n{problems}")
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}

fn serve(loaded: Loaded) -> Result<(), String> {
    let config = loaded.config;
    let (findings, _) = config::check(
        &config,
        CheckMode {
            probe_listen: false,
            inspect_database: false,
            serving: true,
        },
    );
    let mut problems = Vec::new();
    for finding in findings {
        match finding.severity {
            Severity::Problem => problems.push(finding.message),
            Severity::Warning => tracing::warn!("{}", finding.message),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "not starting; `meldkluis check-config` explains more.\n{}",
            problems.join("\n")
        ));
    }
    let runtime = runtime()?;
    // Opened outside the runtime: the store's clients block (PostgreSQL's
    // runs its own small runtime, which cannot start inside another).
    let state = AppState::open(&config).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let shutdown = server::shutdown_signal();
        println!("Meldkluis listening on http://{address}");
        tracing::info!("serving {} counsellor card(s)", state.cards().len());
        server::serve(listener, state, &config, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

fn check_config(file: Option<&Path>, flags: Overrides) -> ExitCode {
    let env = Environment::from_process();
    let loaded = match config::load(file, &env, &flags) {
        Ok(loaded) => loaded,
        Err(problems) => {
            for problem in &problems.0 {
                println!("PROBLEM: {problem}");
            }
            println!(
                "\n{} problem(s) in the settings: the server will not start until they are fixed.",
                problems.0.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let config = &loaded.config;
    let (findings, facts) = config::check(
        config,
        CheckMode {
            probe_listen: true,
            inspect_database: true,
            serving: false,
        },
    );
    match &loaded.file {
        Some(path) => println!("Meldkluis configuration from {}", path.display()),
        None => println!("Meldkluis configuration (no file: defaults, environment and flags)"),
    }
    for key in SETTINGS {
        let value = match key {
            "listen" => config.listen.to_string(),
            "data_dir" => config.data_dir.display().to_string(),
            "keys_dir" => match facts.card_ids.len() {
                0 => format!("{} (no usable card)", config.keys_dir.display()),
                n => format!(
                    "{} ({n} card(s): {})",
                    config.keys_dir.display(),
                    facts.card_ids.join(", ")
                ),
            },
            "max_body_bytes" => mib(config.max_body_bytes as u64),
            "security_contact" => config
                .security_contact
                .clone()
                .unwrap_or("(not set)".into()),
            "onion_location" => config.onion_location.clone().unwrap_or("(not set)".into()),
            "retention_days" => config.retention_days.to_string(),
            "max_attachment_bytes" => mib(config.max_attachment_bytes),
            "upload_quota_bytes" => mib(config.upload_quota_bytes),
            "min_free_bytes" => mib(config.min_free_bytes),
            "pow_max_factor" => format!("{} × the quiet difficulty", config.pow_max_factor),
            "database_url" => match &config.database_url {
                Some(url) => config::url_without_password(url.expose()),
                None => "(not set: SQLite in data_dir)".into(),
            },
            "inbox_key" => match &config.inbox_key {
                Some(text) => match meldkluis::server::inbox_key::parse(text.expose()) {
                    Some(key) => format!(
                        "{} (set: the same on every node)",
                        meldkluis::server::inbox_key::fingerprint(&key.verifying_key().to_bytes())
                    ),
                    None => "(malformed)".into(),
                },
                None => continue,
            },
            "pow_key" => match &config.pow_key {
                Some(_) => "(set, not shown: the same on every node)".into(),
                None => "(not set: made at each start)".into(),
            },
            "database_password" => match &config.database_password {
                Some(_) => "(set, not shown)".into(),
                None => "(not set)".into(),
            },
            _ => continue,
        };
        println!("  {key:<20} {value}   [{}]", loaded.sources[key]);
    }
    // What the counsellor's program shows and the organisation's sheet
    // prints (`meldkluis fingerprint-sheet`), to compare out of band.
    for (id, fingerprint) in &facts.card_fingerprints {
        println!("  {:<20} {id}: fingerprint {fingerprint}", "card");
    }
    if let Some(database) = &facts.database {
        println!("  {:<20} {database}", "database");
    }
    for (id, organisation) in &config.organisations {
        let set: Vec<&str> = config::ORGANISATION_KEYS
            .iter()
            .copied()
            .filter(|key| match *key {
                "name" => organisation.name.is_some(),
                "controller" => organisation.controller.is_some(),
                "dpo" => organisation.dpo.is_some(),
                "aftercare" => !organisation.aftercare.is_empty(),
                "support" => !organisation.support.is_empty(),
                "retention_days" => organisation.retention_days.is_some(),
                _ => organisation.code_file_name.is_some(),
            })
            .collect();
        println!("  {:<20} {id}: {}", "organisation", set.join(", "));
    }
    // What counsellors compare when their laptop first pins this server.
    let key_file = config
        .data_dir
        .join(meldkluis::server::inbox_key::FILE_NAME);
    let key_problem = match meldkluis::server::inbox_key::read(&key_file) {
        Err(e) => Some(e.to_string()),
        Ok(_) => None,
    };
    match meldkluis::server::inbox_key::read(&key_file) {
        Ok(Some(key)) => println!(
            "  {:<20} {} ({})",
            "inbox_key",
            meldkluis::server::inbox_key::fingerprint(&key.verifying_key().to_bytes()),
            key_file.display()
        ),
        Ok(None) => println!(
            "  {:<20} (made at first start in {})",
            "inbox_key",
            key_file.display()
        ),
        Err(_) => println!("  {:<20} (see the problem below)", "inbox_key"),
    }
    let warnings: Vec<&String> = loaded
        .warnings
        .iter()
        .chain(
            findings
                .iter()
                .filter(|f| f.severity == Severity::Warning)
                .map(|f| &f.message),
        )
        .collect();
    let problems: Vec<&String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .map(|f| &f.message)
        .chain(key_problem.as_ref())
        .collect();
    if !problems.is_empty() || !warnings.is_empty() {
        println!();
    }
    for problem in &problems {
        println!("PROBLEM: {problem}");
    }
    for warning in &warnings {
        println!("warning: {warning}");
    }
    if problems.is_empty() {
        println!("\nOK: the server can start with this configuration.");
        ExitCode::SUCCESS
    } else {
        println!(
            "\n{} problem(s): the server will not start until they are fixed.",
            problems.len()
        );
        ExitCode::FAILURE
    }
}

fn run_backup(
    config: &Config,
    target: &Path,
    force: bool,
    keep_days: Option<u32>,
) -> Result<(), String> {
    if keep_days.is_some() && !target.is_dir() {
        return Err(format!(
            "--keep-days needs a directory of dated backups, and {} is not a directory",
            target.display()
        ));
    }
    let (path, info) =
        backup::backup(&config.database_path(), target, force).map_err(|e| e.to_string())?;
    println!("Backup written: {} ({info})", path.display());
    println!("It holds ciphertext and metadata: keep it as confidential as the server.");
    println!(
        "The inbox-signing key ({}) is not in it: keep a copy with the server's secrets; \
         counsellors' laptops refuse inboxes signed with another key.",
        config
            .data_dir
            .join(meldkluis::server::inbox_key::FILE_NAME)
            .display()
    );
    if let Some(days) = keep_days {
        let deleted = backup::rotate(target, days, time::OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())?;
        println!(
            "Deleted {} backup(s) older than {days} day(s).",
            deleted
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
                .count()
        );
    }
    Ok(())
}

fn run_restore(config: &Config, source: &Path, force: bool) -> Result<(), String> {
    let restored =
        backup::restore(source, &config.database_path(), force).map_err(|e| e.to_string())?;
    println!(
        "Restored {} into {} ({})",
        source.display(),
        config.database_path().display(),
        restored.info
    );
    if let Some(previous) = restored.previous {
        println!(
            "The database that was there is kept as {}; delete it once the restored server works.",
            previous.display()
        );
    }
    Ok(())
}

/// A byte count with its size in MiB, for `check-config`.
fn mib(bytes: u64) -> String {
    format!("{bytes} ({:.1} MiB)", bytes as f64 / (1024.0 * 1024.0))
}
