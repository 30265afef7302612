//! `meldkluis-review`: the counsellor's offline reviewer for the air-gapped
//! laptop. It has no network code; it reads and writes files only.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use age::secrecy::SecretString;
use clap::{Parser, Subcommand, ValueEnum};
use meldkluis::format::card::{CounsellorKind, slugify};
use meldkluis::format::day::Day;
use meldkluis::format::envelope::Status;
use meldkluis::review::commands::{self, Lang};
use meldkluis::review::text_file::{decode_text, read_text_file};
use meldkluis::review::vault::{NewCounsellor, write_atomic};
use meldkluis::review::{ReviewError, Vault, stats};

#[derive(Parser)]
#[command(
    name = "meldkluis-review",
    version,
    about = "Meldkluis offline reviewer (air-gapped laptop)"
)]
struct Cli {
    /// The vault directory.
    #[arg(
        long,
        env = "MELDKLUIS_VAULT",
        default_value = "meldkluis-vault",
        global = true
    )]
    vault: PathBuf,
    /// Read the passphrase from the first line of this file instead of the terminal.
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Internal,
    External,
}

#[derive(Clone, Copy, ValueEnum)]
enum Language {
    Nl,
    En,
}

impl From<Language> for Lang {
    fn from(l: Language) -> Lang {
        match l {
            Language::Nl => Lang::Nl,
            Language::En => Lang::En,
        }
    }
}

/// Statuses a counsellor sets by hand (acknowledge and close have their own commands).
#[derive(Clone, Copy, ValueEnum)]
enum SetStatus {
    InProgress,
    FeedbackGiven,
}

#[derive(Subcommand)]
enum Command {
    /// Create the vault: identity, signing key and the card for the operator.
    Init {
        #[arg(long)]
        name: String,
        #[arg(long)]
        organisation: String,
        /// Short id of the organisation (page path /o/<org>/); default from --organisation.
        #[arg(long)]
        org: Option<String>,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Short id on the server (lower-case letters, digits, dashes); default from the name.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Where to write the card (also kept in the vault as card.json).
        #[arg(long)]
        card_out: Option<PathBuf>,
    },
    /// Import an inbox brought from the courier machine.
    Import { inbox: PathBuf },
    /// List the cases, most urgent first.
    List,
    /// Print the open deadlines; exit status 1 when something is overdue.
    Deadlines,
    /// Read a case (give the first characters of its id).
    Show { case: String },
    /// Write a reply (from --file, or standard input) for the next outbox.
    Reply {
        case: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Acknowledge receipt with the standard text (or your edited --file).
    Acknowledge {
        case: String,
        #[arg(long, value_enum, default_value = "nl")]
        lang: Language,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print the standard acknowledgement or closing text, to edit.
    Template {
        #[arg(value_parser = ["acknowledgement", "closing"])]
        which: String,
        #[arg(long, value_enum, default_value = "nl")]
        lang: Language,
    },
    /// Set a status, with a message to the melder (--file or standard input).
    Status {
        case: String,
        #[arg(value_enum)]
        status: SetStatus,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Close a case with the standard closing text (or --file); the melder is
    /// then invited to evaluate.
    Close {
        case: String,
        #[arg(long, value_enum, default_value = "nl")]
        lang: Language,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Add a private note to a case (--file or standard input); it stays in the vault.
    Note {
        case: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write a case's attachments into a directory, under safe names; exit
    /// status 1 when an attachment is damaged (the others are written).
    Export {
        case: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Figures for the annual report: counts, deadline adherence, evaluations.
    Stats {
        #[arg(long)]
        csv: bool,
    },
    /// Make a new identity and signing key; give the new card to the operator.
    RotateKeys {
        #[arg(long)]
        card_out: Option<PathBuf>,
    },
    /// Remove closed cases older than the retention period from this laptop.
    Purge {
        #[arg(long)]
        retention_days: i64,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Write the signed outbox to FILE (also when empty: that is the sync request).
    Outbox { file: PathBuf },
}

fn read_passphrase(file: Option<&Path>, confirm: bool) -> Result<SecretString, String> {
    if let Some(path) = file {
        // Decoded as Windows editors write it too (BOM, UTF-16, CR LF).
        let text = read_text_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").to_owned();
        if line.is_empty() {
            return Err(format!("{}: the first line is empty", path.display()));
        }
        return Ok(SecretString::from(line));
    }
    let first =
        rpassword::prompt_password("Wachtwoordzin / passphrase: ").map_err(|e| e.to_string())?;
    if confirm {
        if first.chars().count() < 12 {
            return Err("use a passphrase of at least 12 characters (several words)".into());
        }
        let again = rpassword::prompt_password("Nogmaals / again: ").map_err(|e| e.to_string())?;
        if again != first {
            return Err("the passphrases differ".into());
        }
    }
    Ok(SecretString::from(first))
}

/// A message body from --file, or standard input, with Windows line ends
/// and encodings decoded (`text_file`).
fn body(file: Option<&Path>) -> Result<String, String> {
    match file {
        Some(path) => read_text_file(path)
            .map(|text| text.to_string())
            .map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| e.to_string())?;
            // `echo … |` in cmd.exe ends the line with CR LF.
            decode_text(&body)
                .map(|text| text.to_string())
                .map_err(|e| e.to_string())
        }
    }
}

fn write_card(out: &Path, vault: &Vault) -> Result<(), String> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    write_atomic(out, vault.card.to_json().as_bytes()).map_err(|e| e.to_string())
}

/// Runs a command; `Ok(false)` means "ran, but report failure" (overdue).
fn run(cli: Cli) -> Result<bool, String> {
    let pass = cli.passphrase_file.as_deref();
    let open = || -> Result<Vault, String> {
        let passphrase = read_passphrase(pass, false)?;
        Vault::open(&cli.vault, passphrase).map_err(|e| e.to_string())
    };
    let text = |e: ReviewError| e.to_string();
    let today = Day::today();
    let queued = "Klaargezet voor de volgende outbox / queued for the next outbox.";
    match cli.command {
        Command::Init {
            name,
            organisation,
            org,
            kind,
            id,
            description,
            card_out,
        } => {
            let passphrase = read_passphrase(pass, true)?;
            let id = id.unwrap_or_else(|| slugify(&name));
            let kind = match kind {
                Kind::Internal => CounsellorKind::Internal,
                Kind::External => CounsellorKind::External,
            };
            let who = NewCounsellor {
                id,
                name,
                organisation,
                org,
                kind,
                description,
            };
            let vault = Vault::init(&cli.vault, passphrase, who).map_err(text)?;
            if let Some(out) = card_out {
                write_card(&out, &vault)?;
            }
            println!("Vault gemaakt / created: {}", cli.vault.display());
            println!(
                "Geef de kaart aan de beheerder / give the card to the operator: {} (as {}.json in keys/)",
                vault.card_path().display(),
                vault.card.id
            );
        }
        Command::Import { inbox } => {
            // Read as a stream: an inbox with attachments may be gigabytes.
            let file =
                std::fs::File::open(&inbox).map_err(|e| format!("{}: {e}", inbox.display()))?;
            let mut vault = open()?;
            let summary = commands::import_from(&mut vault, file).map_err(text)?;
            println!(
                "Geïmporteerd / imported: {} nieuwe zaken / new cases, {} nieuwe berichten / new messages, {} bevestigd / confirmed{}{}",
                summary.new_cases,
                summary.new_messages,
                summary.confirmed,
                if summary.attachments > 0 {
                    format!(", {} bijlage(n) / attachment(s)", summary.attachments)
                } else {
                    String::new()
                },
                if summary.unreadable > 0 {
                    format!(
                        ", {} niet voor u leesbaar / not readable for you",
                        summary.unreadable
                    )
                } else {
                    String::new()
                }
            );
            if summary.damaged_attachments > 0 {
                eprintln!(
                    "Let op / note: {} bijlage(n) beschadigd; `show` zegt welke / attachment(s) damaged; `show` says which",
                    summary.damaged_attachments
                );
            }
        }
        Command::List => print!("{}", commands::list(&open()?, today)),
        Command::Deadlines => {
            let (report, overdue) = commands::deadlines_report(&open()?, today);
            print!("{report}");
            return Ok(!overdue);
        }
        Command::Show { case } => {
            let vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            print!("{}", commands::show(&vault, &id, today).map_err(text)?);
        }
        Command::Reply { case, file } => {
            let message = body(file.as_deref())?;
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::send(&mut vault, &id, &message, None, today).map_err(text)?;
            println!("{queued}");
        }
        Command::Acknowledge { case, lang, file } => {
            let message = match file {
                Some(path) => body(Some(&path))?,
                None => commands::acknowledgement_template(lang.into()).to_string(),
            };
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::send(&mut vault, &id, &message, Some(Status::Acknowledged), today)
                .map_err(text)?;
            println!("{queued}");
        }
        Command::Template { which, lang } => {
            let template = if which == "closing" {
                commands::closing_template(lang.into())
            } else {
                commands::acknowledgement_template(lang.into())
            };
            print!("{template}");
        }
        Command::Status { case, status, file } => {
            let message = body(file.as_deref())?;
            let status = match status {
                SetStatus::InProgress => Status::InProgress,
                SetStatus::FeedbackGiven => Status::FeedbackGiven,
            };
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::send(&mut vault, &id, &message, Some(status), today).map_err(text)?;
            println!("{queued}");
        }
        Command::Close { case, lang, file } => {
            let message = match file {
                Some(path) => body(Some(&path))?,
                None => commands::closing_template(lang.into()).to_string(),
            };
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::send(&mut vault, &id, &message, Some(Status::Closed), today).map_err(text)?;
            println!("{queued}");
        }
        Command::Note { case, file } => {
            let note = body(file.as_deref())?;
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::note(&mut vault, &id, &note, today).map_err(text)?;
            println!("Notitie bewaard in de kluis / note kept in the vault.");
        }
        Command::Export { case, to } => {
            let vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            let report = commands::export(&vault, &id, &to).map_err(text)?;
            let clean_line = meldkluis::review::terminal::clean_line;
            for path in &report.written {
                println!("{}", clean_line(&path.display().to_string()));
            }
            for refused in &report.refused {
                eprintln!(
                    "BESCHADIGD, niet geëxporteerd / DAMAGED, not exported: {}: {}",
                    clean_line(&refused.name),
                    refused.damage
                );
            }
            println!("{} bestand(en) / file(s)", report.written.len());
            if !report.refused.is_empty() {
                eprintln!(
                    "{} bijlage(n) beschadigd; de andere zijn geëxporteerd / attachment(s) damaged; the others were exported",
                    report.refused.len()
                );
                return Ok(false);
            }
        }
        Command::Stats { csv } => {
            let vault = open()?;
            let figures = stats::compute(vault.state.cases.values(), today);
            print!("{}", if csv { figures.csv() } else { figures.table() });
        }
        Command::RotateKeys { card_out } => {
            let mut vault = open()?;
            let passphrase = read_passphrase(pass, false)?;
            vault.rotate_keys(passphrase).map_err(text)?;
            if let Some(out) = &card_out {
                write_card(out, &vault)?;
            }
            println!(
                "Nieuwe sleutels gemaakt / new keys made. Geef de nieuwe kaart aan de beheerder vóór de volgende synchronisatie / give the new card to the operator before the next sync: {}",
                card_out.unwrap_or_else(|| vault.card_path()).display()
            );
        }
        Command::Purge {
            retention_days,
            yes,
        } => {
            let mut vault = open()?;
            let doomed = commands::purge_candidates(&vault, today, retention_days);
            if doomed.is_empty() {
                println!("Niets te verwijderen / nothing to remove.");
                return Ok(true);
            }
            for id in &doomed {
                println!("{}", &id.to_hex()[..8]);
            }
            if !yes {
                println!(
                    "Deze {} gesloten zaken definitief verwijderen? Typ JA / Remove these closed cases for good? Type YES:",
                    doomed.len()
                );
                let mut answer = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut answer)
                    .map_err(|e| e.to_string())?;
                if !matches!(answer.trim(), "JA" | "YES") {
                    println!("Niets verwijderd / nothing removed.");
                    return Ok(true);
                }
            }
            let removed = commands::purge(&mut vault, &doomed).map_err(text)?;
            println!("{removed} zaken verwijderd / cases removed.");
        }
        Command::Outbox { file } => {
            let mut vault = open()?;
            let bytes = commands::outbox(&mut vault).map_err(text)?;
            write_atomic(&file, &bytes).map_err(text)?;
            println!(
                "Outbox {} geschreven / written: {} ({} bericht(en) / item(s))",
                vault.state.counter,
                file.display(),
                vault.state.pending.len()
            );
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("meldkluis-review: {message}");
            ExitCode::from(2)
        }
    }
}
