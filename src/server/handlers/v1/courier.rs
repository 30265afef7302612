//! `POST /api/v1/courier/sync`: a signed outbox in, the encrypted inbox out.
//! No password: the Ed25519 signature is the authentication and the counter
//! stops replays (protocol.md §6).

use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{body_bytes, require_octet_stream};
use crate::format::bundle::{BundleError, Inbox, InboxEntry, Outbox};
use crate::format::bundle::{MAX_BUNDLE_BYTES, MAX_ENTRIES};
use crate::format::ids::{MessageId, UploadId};
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::{OutboxWrite, SyncOutcome};

/// Room left in an inbox for message files, which are read into memory;
/// below the laptop's limit for them.
const INBOX_BUDGET_BYTES: usize = MAX_BUNDLE_BYTES - 4 * 1024 * 1024;

/// Room in one inbox for streamed attachments, which are never in memory:
/// what does not fit comes with the next sync, so one download stays a
/// size a courier can carry on a stick in a reasonable time.
const INBOX_ATTACHMENT_BUDGET_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Bytes gathered before they go to the HTTP body.
const BODY_PIECE_BYTES: usize = 256 * 1024;

pub async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let bytes = body_bytes(body)?;
    require_octet_stream(&headers)?;
    // The outbox is checked and applied first; only then do the answer's
    // headers go out and the inbox stream into the body, written on a
    // blocking thread as it is encrypted.
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let (pieces, body) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let prepared = match apply(&state, &bytes) {
            Ok(prepared) => prepared,
            Err(refusal) => {
                let _ = ready.send(Err(refusal));
                return;
            }
        };
        let _ = ready.send(Ok((prepared.counsellor.clone(), prepared.counter)));
        let writer = BodyWriter {
            pieces: pieces.clone(),
            pending: Vec::with_capacity(BODY_PIECE_BYTES),
        };
        if let Err(e) = write_inbox(&state, prepared, writer) {
            // The body ends with an error, so the courier sees a broken
            // download, never a short inbox that looks whole.
            tracing::error!("courier: the inbox stream stopped: {e}");
            let _ = pieces.blocking_send(Err(e));
        }
    });
    let (counsellor, counter) = is_ready
        .await
        .map_err(|_| AppError::Internal("the courier task ended early".into()))??;
    let disposition =
        format!("attachment; filename=\"meldkluis-inbox-{counsellor}-{counter}.age\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
            ),
        ],
        Body::new(InboxBody(body)),
    )
        .into_response())
}

/// An applied outbox and what its answer carries.
struct Prepared {
    counsellor: String,
    counter: u64,
    applied: Vec<MessageId>,
    entries: Vec<InboxEntry>,
    recipient: crate::format::keys::Recipient,
}

/// Checks and applies the outbox, and picks the inbox entries; blocking
/// (SQLite, signature).
fn apply(state: &AppState, bytes: &[u8]) -> Result<Prepared, AppError> {
    let mut outbox = Outbox::parse(bytes)?;
    let mut files = std::mem::take(&mut outbox.files);
    let manifest = &outbox.manifest;
    // An unknown counsellor gets the same answer as a forged signature, so the
    // endpoint does not confirm which ids exist.
    let cards = state.cards();
    let card = cards
        .get(&manifest.counsellor)
        .ok_or(AppError::Bundle(BundleError::BadSignature))?;
    let key = card
        .verifying_key()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    outbox.verify(&key)?;
    // A counsellor introduced to a case (protocol.md §10.5) must have a card
    // here, of the introducer's organisation, as the counsellors of a report.
    let org = card.org_id();
    for id in manifest.items.iter().flat_map(|item| &item.introduce) {
        match cards.get(id) {
            None => return Err(AppError::UnknownCounsellor),
            Some(newcomer) if newcomer.org_id() != org => {
                return Err(AppError::MixedOrganisations);
            }
            Some(_) => {}
        }
    }
    // Parse made sure every item has its file; they move to the store.
    let writes: Vec<OutboxWrite> = manifest
        .items
        .iter()
        .filter_map(|item| {
            Some(OutboxWrite {
                id: item.id,
                case: item.case,
                body: files.remove(&item.id)?,
                kind: item.kind,
                introduce: item.introduce.clone(),
            })
        })
        .collect();
    let applied = match state.store.apply_outbox(
        &manifest.counsellor,
        manifest.counter,
        &outbox.manifest_hash,
        manifest.inbox_ack,
        writes,
    )? {
        SyncOutcome::Applied(ids) | SyncOutcome::Retried(ids) => ids,
        SyncOutcome::Replayed => return Err(AppError::ReplayedBundle),
        SyncOutcome::UnknownCase(_) => return Err(AppError::UnknownCase),
    };
    // Messages that arrived since the last sync get their numbers now
    // (protocol.md §7a), then the inbox is read up to its budgets; what
    // does not fit comes with the next sync, because the acknowledgement
    // only moves on import.
    state.store.assign_deliveries(&manifest.counsellor)?;
    let mut in_memory = 0;
    let mut streamed = 0;
    // The manifest is one archive entry; each message one more, and one per
    // attachment.
    let mut archive_entries = 1;
    let entries = state
        .store
        .inbox(&manifest.counsellor, manifest.inbox_ack, |e| {
            in_memory += e.body.len() + 1024;
            streamed += e.attachments.iter().map(|a| a.length).sum::<u64>();
            archive_entries += 1 + e.attachments.len();
            in_memory <= INBOX_BUDGET_BYTES
                && streamed <= INBOX_ATTACHMENT_BUDGET_BYTES
                && archive_entries <= MAX_ENTRIES
        })?;
    // Everything the laptop checks, before the first byte goes out: a stream
    // cannot take back what it has sent.
    Inbox::check(&manifest.counsellor, manifest.counter, &applied, &entries).map_err(|e| {
        AppError::Internal(format!("courier: an inbox the laptop would refuse: {e}"))
    })?;
    let recipient = card
        .recipient()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Prepared {
        counsellor: manifest.counsellor.clone(),
        counter: manifest.counter,
        applied,
        entries,
        recipient,
    })
}

/// Encrypts the inbox into the body, reading attachments from disk as it
/// goes; blocking.
fn write_inbox(state: &AppState, prepared: Prepared, writer: BodyWriter) -> std::io::Result<()> {
    let mut open = |upload: &UploadId| -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(state.uploads.open_file(state.clone(), upload)?))
    };
    let mut writer = Inbox::seal_signed_to(
        writer,
        Some(&state.inbox_key),
        &prepared.counsellor,
        prepared.counter,
        &prepared.applied,
        &prepared.entries,
        &prepared.recipient,
        &mut open,
    )?;
    writer.flush()
}

/// A `Write` into the response body: pieces of `BODY_PIECE_BYTES` through a
/// channel of four, so at most about a megabyte waits for a slow courier.
struct BodyWriter {
    pieces: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    pending: Vec<u8>,
}

impl BodyWriter {
    fn send_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(BODY_PIECE_BYTES));
        self.pieces
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the courier left"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = BODY_PIECE_BYTES - self.pending.len();
        let n = bytes.len().min(room);
        self.pending.extend_from_slice(&bytes[..n]);
        if self.pending.len() == BODY_PIECE_BYTES {
            self.send_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_pending()
    }
}

/// The receiving end as an HTTP body.
struct InboxBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for InboxBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|result| result.map(hyper::body::Frame::data)))
    }
}
