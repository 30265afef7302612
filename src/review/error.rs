//! The reviewer's errors: each one tells the counsellor what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// `init` on a directory that already holds a vault.
    #[error("{0} already holds a vault; choose another directory")]
    VaultExists(PathBuf),
    /// No vault where one was expected.
    #[error("no vault in {0}; run `meldkluis-review init` first or pass --vault")]
    NoVault(PathBuf),
    /// The passphrase does not open the identity.
    #[error("the passphrase is wrong (or identity.age is damaged)")]
    WrongPassphrase,
    /// A file in the vault is damaged.
    #[error("the vault file {file} is damaged: {problem}")]
    Damaged { file: PathBuf, problem: String },
    /// The inbox could not be read.
    #[error("cannot import this inbox: {0}")]
    Inbox(#[from] crate::format::bundle::BundleError),
    /// An inbox made for someone else.
    #[error("this inbox is for counsellor {0:?}, not for this vault")]
    NotMyInbox(String),
    /// An inbox that does not fit what this vault sent and read: a replayed,
    /// forged or damaged answer. Nothing is changed.
    #[error("this inbox does not fit this vault ({0}); nothing was changed")]
    InboxMismatch(#[from] InboxMismatch),
    /// No case matches.
    #[error("no case starts with {0:?}; `list` shows the cases")]
    NoSuchCase(String),
    /// More than one case matches.
    #[error("more than one case starts with {0:?}; type more characters")]
    AmbiguousCase(String),
    /// The case has no reply recipient (its report could not be read).
    #[error("case {0} has no readable report, so a reply cannot be encrypted to the melder")]
    NoReplyRecipient(String),
    /// A closed case takes no more messages.
    #[error("case {0} is closed; reopen it to write")]
    CaseClosed(String),
    /// Only a closed case can be reopened.
    #[error("case {0} is not closed")]
    CaseOpen(String),
    /// A colleague cannot be introduced to this case (protocol.md §10.5).
    #[error("cannot introduce {colleague} to case {case}: {why}")]
    CannotIntroduce {
        case: String,
        colleague: String,
        why: IntroduceRefusal,
    },
    /// No introduction waits in this case for confirmation.
    #[error("no introduction waits in case {0}")]
    NoIntroduction(String),
    /// A reply that breaks the envelope rules.
    #[error("{0}")]
    Envelope(#[from] crate::format::envelope::EnvelopeError),
    /// Card fields given to `init` are invalid.
    #[error("{0}")]
    Card(#[from] crate::format::card::CardError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReviewError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ReviewError::Io { path, source }
    }
}

/// Why a colleague cannot be introduced to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntroduceRefusal {
    /// A case of the older format pins nothing, so it has no introductions.
    OlderFormat,
    /// The colleague is on the case already.
    AlreadyOnCase,
    /// That card is this vault's own.
    OwnCard,
    /// This counsellor was introduced, not chosen by the melder: only a
    /// counsellor of the melder's opening can introduce (§10.5).
    NotChosen,
    /// The colleague's key and the melder's are of different kinds
    /// (classical and post-quantum): one message cannot go to both.
    KeyKindDiffers,
}

impl std::fmt::Display for IntroduceRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IntroduceRefusal::OlderFormat => "the case is of the older, unsigned format",
            IntroduceRefusal::AlreadyOnCase => "they are on the case already",
            IntroduceRefusal::OwnCard => "that is your own card",
            IntroduceRefusal::NotChosen => {
                "you were introduced yourself; ask a counsellor the melder chose"
            }
            IntroduceRefusal::KeyKindDiffers => {
                "their key and the melder's are of different kinds (classical, post-quantum)"
            }
        })
    }
}

/// How an inbox fails to fit the vault (protocol.md §6, "What the laptop
/// checks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxMismatch {
    /// It answers an outbox this vault never made.
    AnswersUnmade { answers: u64, made: u64 },
    /// It answers an older outbox than an inbox already read.
    Older { answers: u64, read: u64 },
    /// Its messages are not in the server's order.
    OutOfOrder { after: u64, found: u64 },
    /// It says the server holds a message this vault never sent.
    UnknownApplied(String),
    /// It gives a message id this vault keeps in another case, or with other
    /// bytes: an attempt to change what an already judged message shows.
    ReusedId(String),
    /// It is not signed, but this vault knows the server's key.
    Unsigned,
    /// It is signed by another key than the server's this vault knows
    /// (both fingerprints).
    OtherServerKey { known: String, found: String },
}

impl std::fmt::Display for InboxMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InboxMismatch::AnswersUnmade { answers, made } => write!(
                f,
                "it answers outbox {answers}, but the last outbox made is {made}"
            ),
            InboxMismatch::Older { answers, read } => write!(
                f,
                "it answers outbox {answers}, older than outbox {read} whose inbox was read"
            ),
            InboxMismatch::OutOfOrder { after, found } => {
                write!(f, "message {found} comes after message {after}")
            }
            InboxMismatch::UnknownApplied(id) => {
                write!(f, "it confirms message {id}, which this vault never sent")
            }
            InboxMismatch::ReusedId(id) => write!(
                f,
                "it gives message {id} other contents or another case than this vault keeps"
            ),
            InboxMismatch::Unsigned => write!(f, "it is not signed by the server"),
            InboxMismatch::OtherServerKey { known, found } => write!(
                f,
                "it is signed by key {found}, not by the server's key {known}"
            ),
        }
    }
}

impl std::error::Error for InboxMismatch {}
