//! The command line's arguments (clap). Help texts are English, like the
//! option names; everything the program says while it works follows
//! `--lang`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use meldkluis::review::i18n::Lang;

#[derive(Parser)]
#[command(
    name = "meldkluis-review",
    version,
    about = "Meldkluis offline reviewer (air-gapped laptop)"
)]
pub struct Cli {
    /// The vault directory (give it before the command).
    #[arg(long, env = "MELDKLUIS_VAULT", default_value = "meldkluis-vault")]
    pub vault: PathBuf,
    /// Read the passphrase from the first line of this file instead of the
    /// terminal (give it before the command).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Language of everything printed, and of the standard texts [default:
    /// from MELDKLUIS_LANG, LC_ALL, LC_MESSAGES or LANG; else nl].
    #[arg(long, value_enum, global = true)]
    pub lang: Option<Language>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Language {
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

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Internal,
    External,
}

/// Statuses a counsellor sets by hand (acknowledge and close have their own commands).
#[derive(Clone, Copy, ValueEnum)]
pub enum SetStatus {
    InProgress,
    FeedbackGiven,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Template {
    Acknowledgement,
    Closing,
    Reopening,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// The card file the operator installs must be named <id>.json.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Where to write the card: a file named <id>.json, or a folder to
        /// write <id>.json into (also kept in the vault as card.json).
        #[arg(long)]
        card_out: Option<PathBuf>,
        /// Make classical X25519 keys (protocol v1) instead of post-quantum
        /// hybrid ones: only to reproduce a vault of the old format.
        #[arg(long, hide = true)]
        classical_keys: bool,
    },
    /// Import an inbox brought from the courier machine.
    Import { inbox: PathBuf },
    /// List the cases, most urgent first.
    List,
    /// Print the open deadlines; exit status 1 when something is overdue.
    Deadlines,
    /// Read a case (give the first characters of its id); marks it read.
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
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a standard text (acknowledgement, closing, reopening), to edit.
    Template {
        #[arg(value_enum)]
        which: Template,
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
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Reopen a closed case with the standard text (or --file), e.g. to answer
    /// a follow-up that came after closure; the server keeps the case again.
    Reopen {
        case: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Add a colleague to a case (protocol v2): a signed message to the melder
    /// that shows the colleague's name and fingerprint, with the melder's
    /// messages forwarded to the colleague. Asks you to compare the
    /// fingerprint first, unless --yes.
    Introduce {
        case: String,
        /// The colleague's card (their <id>.json).
        #[arg(long)]
        card: PathBuf,
        /// Your own text instead of the standard introduction.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        yes: bool,
    },
    /// Take on a case a colleague introduced you to, once you compared the
    /// colleague's fingerprint (shown by `show`) with your organisation's
    /// list. Asks first, unless --yes.
    AcceptIntroduction {
        case: String,
        #[arg(long)]
        yes: bool,
    },
    /// Add a private note to a case (--file or standard input); it stays in the vault.
    Note {
        case: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write a case's attachments into a directory, under safe names, readable
    /// only by you; exit status 1 when an attachment is damaged (the others
    /// are written).
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
    /// Make a new identity; give the new card to the operator. The signing
    /// key stays (melders' pages pinned it) unless --new-signing-key.
    RotateKeys {
        #[arg(long)]
        card_out: Option<PathBuf>,
        /// Also replace the signing key: after the laptop or a backup was
        /// stolen. Replies in existing signed threads then show as not
        /// genuine to their melders.
        #[arg(long)]
        new_signing_key: bool,
    },
    /// Remove closed cases older than the retention period from this laptop.
    Purge {
        #[arg(long)]
        retention_days: i64,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Forget the server's inbox key this vault pinned, after the operator
    /// says the server has a new one (its old key file was lost); the next
    /// signed inbox pins the new key. Compare its fingerprint with the
    /// operator's `meldkluis check-config`.
    ForgetServerKey,
    /// Write the signed outbox to FILE (also when empty: that is the sync request).
    Outbox { file: PathBuf },
}
