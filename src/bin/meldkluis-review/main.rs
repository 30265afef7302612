//! `meldkluis-review`: the counsellor's offline reviewer for the air-gapped
//! laptop, on the command line. It has no network code; it reads and writes
//! files only. A thin presentation of `meldkluis::review`: `cli` parses,
//! the library works, `render` turns its views into text in one language
//! (`text`), `error` says what went wrong in that language, `input` reads
//! what the counsellor types.

mod cli;
mod error;
#[cfg(test)]
mod golden;
mod input;
mod render;
mod text;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use meldkluis::format::card::{CounsellorKind, slugify, valid_id};
use meldkluis::format::day::Day;
use meldkluis::format::envelope::Status;
use meldkluis::review::i18n::Lang;
use meldkluis::review::vault::{KeyKind, NewCounsellor, write_atomic};
use meldkluis::review::{ReviewError, Vault, commands, stats, views};

use cli::{Cli, Command, Kind, SetStatus, Template};
use error::{CliError, shown_path};
use input::{message, new_passphrase, passphrase};
use text::{Text, fill};

/// How a command ended when it did not fail.
enum Outcome {
    Done,
    /// Ran, but something needs attention (overdue, damaged): exit status 1.
    Attention,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let lang = cli.lang.map(Lang::from).unwrap_or_else(Lang::from_env);
    match run(cli, lang) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Attention) => ExitCode::from(1),
        Err(e) => {
            eprintln!("meldkluis-review: {}", e.show(lang));
            ExitCode::from(2)
        }
    }
}

/// Opens the vault; says there is none before asking for a passphrase.
fn open_vault(cli: &Cli, label: &str) -> Result<Vault, CliError> {
    if !Vault::exists(&cli.vault) {
        return Err(ReviewError::NoVault(cli.vault.clone()).into());
    }
    let passphrase = passphrase(cli.passphrase_file.as_deref(), label)?;
    Ok(Vault::open(&cli.vault, passphrase)?)
}

/// Where the card goes: `<id>.json` inside a folder, or a file that must
/// be named `<id>.json` — the name the server requires in `keys/`.
fn card_destination(card_out: &Path, id: &str) -> Result<PathBuf, CliError> {
    if card_out.is_dir() {
        return Ok(card_out.join(format!("{id}.json")));
    }
    let stem = card_out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_json = card_out.extension().is_some_and(|e| e == "json");
    if stem != id || !is_json {
        return Err(CliError::CardNameMismatch {
            id: id.to_string(),
            stem,
        });
    }
    Ok(card_out.to_path_buf())
}

fn write_card(out: &Path, vault: &Vault) -> Result<(), CliError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(ReviewError::io(parent))?;
    }
    Ok(write_atomic(out, vault.card.to_json().as_bytes())?)
}

/// What to tell the counsellor about a card to hand over.
fn print_card(t: &Text, path: &Path, vault: &Vault) {
    println!("{}", fill(t.hand_over_card, &[&shown_path(path)]));
    println!("{}", fill(t.card_file_name, &[&vault.card.id]));
    // The whole-card fingerprint (protocol.md §10.1), as check-config, the
    // report form and the organisation's sheet show it.
    println!("{}", fill(t.compare_card, &[&vault.card.fingerprint()]));
}

fn run(cli: Cli, lang: Lang) -> Result<Outcome, CliError> {
    let t = text::of(lang);
    let today = Day::today();
    let pass = cli.passphrase_file.as_deref();
    let ask = t.prompt_passphrase;
    match &cli.command {
        Command::Init {
            name,
            organisation,
            org,
            kind,
            id,
            description,
            card_out,
            classical_keys,
        } => {
            // Everything that can be refused is refused before the
            // passphrase is asked for.
            let id = id.clone().unwrap_or_else(|| slugify(name));
            if !valid_id(&id) {
                return Err(CliError::InvalidId(id));
            }
            let card_out = card_out
                .as_deref()
                .map(|out| card_destination(out, &id))
                .transpose()?;
            let who = NewCounsellor {
                id,
                name: name.clone(),
                organisation: organisation.clone(),
                org: org.clone(),
                kind: match kind {
                    Kind::Internal => CounsellorKind::Internal,
                    Kind::External => CounsellorKind::External,
                },
                description: description.clone(),
            };
            who.validate()?;
            if Vault::exists(&cli.vault) {
                return Err(ReviewError::VaultExists(cli.vault.clone()).into());
            }
            let passphrase = new_passphrase(pass, t)?;
            let keys = if *classical_keys {
                KeyKind::Classical
            } else {
                KeyKind::Hybrid
            };
            let vault = Vault::init_with_keys(&cli.vault, passphrase, who, keys)?;
            let card = match card_out {
                Some(out) => {
                    write_card(&out, &vault)?;
                    out
                }
                None => vault.card_path(),
            };
            println!("{}", fill(t.vault_created, &[&shown_path(&cli.vault)]));
            print_card(t, &card, &vault);
        }
        Command::Import { inbox } => {
            // Read as a stream: an inbox with attachments may be gigabytes.
            let file = std::fs::File::open(inbox).map_err(ReviewError::io(inbox))?;
            let mut vault = open_vault(&cli, ask)?;
            let summary = commands::import_from(&mut vault, file)?;
            let (line, warning) = render::import_summary(&summary, lang);
            println!("{line}");
            if let Some(warning) = warning {
                eprintln!("{warning}");
            }
        }
        Command::List => {
            let vault = open_vault(&cli, ask)?;
            let cases = views::overview(&vault, today);
            print!("{}", render::list(&cases, vault.state.pending.len(), lang));
        }
        Command::ForgetServerKey => {
            let mut vault = open_vault(&cli, ask)?;
            let t = text::of(lang);
            match vault.state.server_key.take() {
                None => println!("{}", t.no_server_key),
                Some(key) => {
                    vault.save()?;
                    let bytes: [u8; 32] =
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key)
                            .ok()
                            .and_then(|k| k.try_into().ok())
                            .unwrap_or_default();
                    println!(
                        "{}",
                        fill(
                            t.server_key_forgotten,
                            &[&meldkluis::format::card::server_key_fingerprint(&bytes)]
                        )
                    );
                }
            }
        }
        Command::Deadlines => {
            let vault = open_vault(&cli, ask)?;
            let open = views::open_deadlines(&vault, today);
            print!("{}", render::deadlines(&open, lang));
            if open.iter().any(|c| c.urgency.is_overdue()) {
                return Ok(Outcome::Attention);
            }
        }
        Command::Show { case } => {
            let mut vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let view = views::case(&vault, &id, today)?;
            print!("{}", render::case(&view, lang));
            views::mark_seen(&mut vault, &id)?;
        }
        Command::Reply { case, file } => {
            write(&cli, t, case, file.as_deref(), None, None)?;
        }
        Command::Acknowledge { case, file } => {
            let standard = commands::acknowledgement_template(lang);
            write(
                &cli,
                t,
                case,
                file.as_deref(),
                Some(standard),
                Some(Status::Acknowledged),
            )?;
        }
        Command::Status { case, status, file } => {
            let status = match status {
                SetStatus::InProgress => Status::InProgress,
                SetStatus::FeedbackGiven => Status::FeedbackGiven,
            };
            write(&cli, t, case, file.as_deref(), None, Some(status))?;
        }
        Command::Close { case, file } => {
            let standard = commands::closing_template(lang);
            write(
                &cli,
                t,
                case,
                file.as_deref(),
                Some(standard),
                Some(Status::Closed),
            )?;
        }
        Command::Reopen { case, file } => {
            let mut vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let text = match file {
                Some(path) => message(Some(path), t)?,
                None => commands::reopening_template(lang).to_string(),
            };
            commands::reopen(&mut vault, &id, &text, today)?;
            println!("{}", t.queued);
        }
        Command::Introduce {
            case,
            card,
            file,
            yes,
        } => {
            let bytes = std::fs::read(card).map_err(|source| CliError::ReadFile {
                path: card.clone(),
                source,
            })?;
            let colleague = meldkluis::format::card::Card::parse(&bytes)
                .map_err(|e| CliError::Review(e.into()))?;
            let mut vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let text = match file {
                Some(path) => message(Some(path), t)?,
                None => commands::introduction_template(lang).to_string(),
            };
            let name = meldkluis::review::untrusted::Untrusted::new(colleague.name.clone());
            let organisation =
                meldkluis::review::untrusted::Untrusted::new(colleague.organisation.clone());
            println!(
                "{}",
                fill(
                    t.introduce_card,
                    &[&name.line(), &organisation.line(), &colleague.fingerprint()]
                )
            );
            if !yes && !confirmed(&fill(t.confirm_introduce, &[&t.confirm_word]))? {
                println!("{}", t.nothing_introduced);
                return Ok(Outcome::Done);
            }
            commands::introduce(&mut vault, &id, &colleague, &text, today)?;
            println!("{}", t.queued);
        }
        Command::AcceptIntroduction { case, yes } => {
            let mut vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let view = views::case(&vault, &id, today)?;
            let Some(introducer) = view.pending_introduction else {
                return Err(CliError::Review(ReviewError::NoIntroduction(id.to_hex())));
            };
            println!(
                "{}",
                fill(
                    t.introduce_card,
                    &[
                        &introducer.name.line(),
                        &introducer.organisation.line(),
                        &introducer.fingerprint
                    ]
                )
            );
            if !yes && !confirmed(&fill(t.confirm_accept, &[&t.confirm_word]))? {
                println!("{}", t.nothing_changed);
                return Ok(Outcome::Done);
            }
            commands::accept_introduction(&mut vault, &id)?;
            println!("{}", t.introduction_accepted);
        }
        Command::Template { which } => {
            print!(
                "{}",
                match which {
                    Template::Acknowledgement => commands::acknowledgement_template(lang),
                    Template::Closing => commands::closing_template(lang),
                    Template::Reopening => commands::reopening_template(lang),
                }
            );
        }
        Command::Note { case, file } => {
            let mut vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let note = message(file.as_deref(), t)?;
            commands::note(&mut vault, &id, &note, today)?;
            println!("{}", t.note_kept);
        }
        Command::Export { case, to } => {
            let vault = open_vault(&cli, ask)?;
            let id = commands::resolve_case(&vault, case)?;
            let report = commands::export(&vault, &id, to)?;
            for path in &report.written {
                println!("{}", shown_path(path));
            }
            for refused in &report.refused {
                eprintln!(
                    "{}",
                    fill(
                        t.export_refused,
                        &[
                            &shown_path(Path::new(&refused.name)),
                            &lang.words().damage(&refused.damage)
                        ]
                    )
                );
            }
            println!("{}", fill(t.export_written, &[&report.written.len()]));
            if !report.refused.is_empty() {
                eprintln!(
                    "{}",
                    fill(t.export_damaged_summary, &[&report.refused.len()])
                );
                return Ok(Outcome::Attention);
            }
        }
        Command::Stats { csv } => {
            let vault = open_vault(&cli, ask)?;
            let figures = stats::compute(vault.state.cases.values(), today);
            if *csv {
                print!("{}", figures.csv());
            } else {
                print!("{}", render::stats(&figures, lang));
            }
        }
        Command::RotateKeys {
            card_out,
            new_signing_key,
        } => {
            let mut vault = open_vault(&cli, t.prompt_current_passphrase)?;
            let card_out = card_out
                .as_deref()
                .map(|out| card_destination(out, &vault.card.id))
                .transpose()?;
            let passphrase = new_passphrase(pass, t)?;
            vault.rotate_keys(passphrase.clone())?;
            if *new_signing_key {
                vault.replace_signing_key(passphrase)?;
            }
            let card = match card_out {
                Some(out) => {
                    write_card(&out, &vault)?;
                    out
                }
                None => vault.card_path(),
            };
            println!("{}", fill(t.keys_rotated, &[&shown_path(&card)]));
            print_card(t, &card, &vault);
        }
        Command::Purge {
            retention_days,
            yes,
        } => {
            let mut vault = open_vault(&cli, ask)?;
            let doomed = commands::purge_candidates(&vault, today, *retention_days);
            if doomed.is_empty() {
                println!("{}", t.nothing_to_purge);
                return Ok(Outcome::Done);
            }
            for id in &doomed {
                println!("{}", &id.to_hex()[..8]);
            }
            if !yes && !confirmed(&fill(t.confirm_purge, &[&doomed.len(), &t.confirm_word]))? {
                println!("{}", t.nothing_purged);
                return Ok(Outcome::Done);
            }
            let removed = commands::purge(&mut vault, &doomed)?;
            println!("{}", fill(t.purged, &[&removed]));
        }
        Command::Outbox { file } => {
            let mut vault = open_vault(&cli, ask)?;
            let counter = commands::write_outbox(&mut vault, file)?;
            println!(
                "{}",
                fill(
                    t.outbox_written,
                    &[&counter, &shown_path(file), &vault.state.pending.len()]
                )
            );
        }
    }
    Ok(Outcome::Done)
}

/// A message to the melder for the next outbox: from `--file`, else the
/// standard text when there is one, else standard input.
fn write(
    cli: &Cli,
    t: &Text,
    case: &str,
    file: Option<&Path>,
    standard: Option<&str>,
    status: Option<Status>,
) -> Result<(), CliError> {
    let mut vault = open_vault(cli, t.prompt_passphrase)?;
    let id = commands::resolve_case(&vault, case)?;
    let text = match (file, standard) {
        (None, Some(standard)) => standard.to_string(),
        _ => message(file, t)?,
    };
    commands::send(&mut vault, &id, &text, status, Day::today())?;
    println!("{}", t.queued);
    Ok(())
}

/// Asks `question` and reads one line: true only for the confirming word.
fn confirmed(question: &str) -> Result<bool, CliError> {
    println!("{question}");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::ReadStdin)?;
    Ok(matches!(answer.trim(), "JA" | "YES"))
}
