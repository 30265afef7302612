//! What the vault remembers, inside `state.age`: cases, their messages,
//! notes and queued items. Plain data with serde; the vault (vault.rs)
//! reads and writes it, the importer (import.rs) and the commands fill it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::bundle::OutboxKind;
use crate::format::day::Day;
use crate::format::envelope::{Evaluation, Status};
use crate::format::ids::{CaseId, MessageId, UploadId};
/// One message of a case, as the vault remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    /// `melder`, or the id of the counsellor who wrote it.
    pub author: String,
    /// `report`, `follow-up` or `reply`.
    pub kind: String,
    pub day: Day,
    /// The server's sequence number, for messages that came in an inbox.
    pub seq: Option<u64>,
    /// The streamed attachments that came with it, kept in `attachments/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<UploadId>,
    /// Whether the counsellor has opened it. Messages from before this
    /// field existed count as seen.
    #[serde(default = "seen_before_tracking")]
    pub seen: bool,
    /// SHA-256 (hex) of its age file: what a v2 message's `prev` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What its signature showed (protocol.md §10.4); `None` for messages
    /// this vault cannot read or read before v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticity: Option<Authenticity>,
    /// A message is missing before this one: its `seq` skipped a number, or
    /// its `prev` names a message this vault never saw.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gap_before: bool,
    /// A melder's message this vault cannot decrypt (it came before this
    /// counsellor was introduced), forwarded, as the melder signed it, in
    /// the introduction with this id (protocol.md §10.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_in: Option<MessageId>,
    /// A melder's message: how many of this counsellor's replies came after
    /// the message its `prev` names — replies the melder had not seen when
    /// writing it (still on their way, or withheld by the server).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unseen_replies: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether a message is what it says it is (protocol.md §10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Authenticity {
    /// v1: signed by nobody, shown as "older format, not verified".
    Older,
    /// Signed by the key this case pinned.
    Verified,
    /// Not signed by the key this case pinned (or unsigned in a signed
    /// thread): never the melder's words, never counted for a deadline.
    NotGenuine,
    /// Signed, but with a number already seen: an old message again.
    Replayed,
}

fn seen_before_tracking() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecord {
    pub received: Day,
    /// The melder's reply recipient, from the report.
    pub reply_recipient: Option<String>,
    pub category: Option<String>,
    pub messages: Vec<MessageRecord>,
    /// The counsellors the melder chose, from the report.
    #[serde(default)]
    pub counsellors: Vec<String>,
    /// Day of this counsellor's first message: the acknowledgement of receipt.
    #[serde(default)]
    pub acknowledged: Option<Day>,
    /// Day feedback was first given (a reply marked feedback-given, or closing).
    #[serde(default)]
    pub feedback: Option<Day>,
    #[serde(default)]
    pub closed: Option<Day>,
    /// The latest status this counsellor set, with its day.
    #[serde(default)]
    pub status: Option<(Status, Day)>,
    /// The melder's evaluation, when one arrived.
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
    /// Private notes: only in this vault, never sent.
    #[serde(default)]
    pub notes: Vec<Note>,
    /// The report's first words, kept (encrypted, like all state) so the
    /// overview needs no decryption; absent in vaults made before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The day the thread began as an advice question, kept after the
    /// melder turned it into a report (then `received` is the report's day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<Day>,
    /// Still an advice question: no statutory terms run (protocol.md §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub question: bool,
    /// Protocol v2: the melder's public signing key (base64), pinned from
    /// the report; `None` for a case of the older, unsigned format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// v2: the highest number of the melder's messages seen here.
    #[serde(default)]
    pub melder_seq: u64,
    /// v2: the number of this counsellor's last reply in this case.
    #[serde(default)]
    pub my_seq: u64,
    /// v2: the signing key (base64) of each counsellor the report was
    /// encrypted to, by id, from its pinned `cards`: what a colleague's
    /// reply this vault can read must be signed with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pinned: BTreeMap<String, String>,
    /// v2: the number of the last reply seen of each colleague whose
    /// replies this vault can read: a lower one again is a replay.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub colleague_seq: BTreeMap<String, u64>,
    /// An introduction of this counsellor that holds up, waiting for the
    /// counsellor to compare the introducer's fingerprint (protocol.md
    /// §10.5); the melder's messages that come meanwhile wait with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_introduction: Option<MessageId>,
}

impl CaseRecord {
    pub fn new(received: Day) -> Self {
        CaseRecord {
            received,
            reply_recipient: None,
            category: None,
            messages: Vec::new(),
            counsellors: Vec::new(),
            acknowledged: None,
            feedback: None,
            closed: None,
            status: None,
            evaluation: None,
            notes: Vec::new(),
            subject: None,
            asked: None,
            question: false,
            thread: None,
            melder_seq: 0,
            my_seq: 0,
            pinned: BTreeMap::new(),
            colleague_seq: BTreeMap::new(),
            pending_introduction: None,
        }
    }
}

/// A counsellor's private note on a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub day: Day,
    pub text: String,
}

/// An item waiting for the next outbox; it stays queued (and is sent again)
/// until an inbox confirms the server holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub id: MessageId,
    pub case: CaseId,
    pub kind: OutboxKind,
    /// The colleagues this reply introduces to the case (§10.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introduce: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The counter of the last outbox this vault made.
    pub counter: u64,
    pub inbox_ack: u64,
    /// The highest `answers_counter` of an inbox read: an inbox answering
    /// an older outbox is a replay (absent in vaults made before it).
    #[serde(default)]
    pub inbox_answers: u64,
    /// The server's inbox-signing key (base64), pinned at the first signed
    /// inbox; from then on every inbox must be signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
    pub cases: BTreeMap<CaseId, CaseRecord>,
    pub pending: Vec<Pending>,
    /// Colleagues' cards whose fingerprints this counsellor compared when
    /// confirming an introduction by them, by id: a later introduction
    /// signed by the same card is taken on without asking again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub colleagues: BTreeMap<String, crate::format::card::Card>,
}
