//! `meldkluis-review`: the counsellor's offline reviewer for the air-gapped
//! laptop. It has no network code; it reads and writes files only.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use age::secrecy::SecretString;
use clap::{Parser, Subcommand, ValueEnum};
use meldkluis::format::card::CounsellorKind;
use meldkluis::review::vault::{NewCounsellor, write_atomic};
use meldkluis::review::{ReviewError, Vault, commands};

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

#[derive(Subcommand)]
enum Command {
    /// Create the vault: identity, signing key and the card for the operator.
    Init {
        #[arg(long)]
        name: String,
        #[arg(long)]
        organisation: String,
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
    /// List the cases.
    List,
    /// Read a case (give the first characters of its id).
    Show { case: String },
    /// Write a reply (from --file, or standard input) for the next outbox.
    Reply {
        case: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write the signed outbox to FILE (also when empty: that is the sync request).
    Outbox { file: PathBuf },
}

fn read_passphrase(file: Option<&Path>, confirm: bool) -> Result<SecretString, String> {
    if let Some(path) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
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

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(63).collect()
}

fn run(cli: Cli) -> Result<(), String> {
    let pass = cli.passphrase_file.as_deref();
    let open = || -> Result<Vault, String> {
        let passphrase = read_passphrase(pass, false)?;
        Vault::open(&cli.vault, passphrase).map_err(|e| e.to_string())
    };
    let text = |e: ReviewError| e.to_string();
    match cli.command {
        Command::Init {
            name,
            organisation,
            kind,
            id,
            description,
            card_out,
        } => {
            let passphrase = read_passphrase(pass, true)?;
            let id = id.unwrap_or_else(|| slug(&name));
            let kind = match kind {
                Kind::Internal => CounsellorKind::Internal,
                Kind::External => CounsellorKind::External,
            };
            let vault = Vault::init(
                &cli.vault,
                passphrase,
                NewCounsellor {
                    id,
                    name,
                    organisation,
                    kind,
                    description,
                },
            )
            .map_err(text)?;
            if let Some(out) = card_out {
                if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                write_atomic(&out, vault.card.to_json().as_bytes()).map_err(text)?;
            }
            println!("Vault gemaakt / created: {}", cli.vault.display());
            println!(
                "Geef de kaart aan de beheerder / give the card to the operator: {} (as {}.json in keys/)",
                vault.card_path().display(),
                vault.card.id
            );
        }
        Command::Import { inbox } => {
            let bytes = std::fs::read(&inbox).map_err(|e| format!("{}: {e}", inbox.display()))?;
            let mut vault = open()?;
            let summary = commands::import(&mut vault, &bytes).map_err(text)?;
            println!(
                "Geïmporteerd / imported: {} nieuwe zaken / new cases, {} nieuwe berichten / new messages, {} bevestigd / confirmed{}",
                summary.new_cases,
                summary.new_messages,
                summary.confirmed,
                if summary.unreadable > 0 {
                    format!(", {} onleesbaar / unreadable", summary.unreadable)
                } else {
                    String::new()
                }
            );
        }
        Command::List => print!("{}", commands::list(&open()?)),
        Command::Show { case } => {
            let vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            print!("{}", commands::show(&vault, &id).map_err(text)?);
        }
        Command::Reply { case, file } => {
            let body = match &file {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => {
                    let mut body = String::new();
                    std::io::stdin()
                        .read_to_string(&mut body)
                        .map_err(|e| e.to_string())?;
                    body
                }
            };
            let mut vault = open()?;
            let id = commands::resolve_case(&vault, &case).map_err(text)?;
            commands::reply(&mut vault, &id, &body).map_err(text)?;
            println!(
                "Antwoord klaargezet voor de volgende outbox / reply queued for the next outbox."
            );
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
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meldkluis-review: {message}");
            ExitCode::FAILURE
        }
    }
}
