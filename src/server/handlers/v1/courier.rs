//! `POST /api/v1/courier/sync`: a signed outbox in, the encrypted inbox out.
//! No password: the Ed25519 signature is the authentication and the counter
//! stops replays (protocol.md §6).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{body_bytes, require_octet_stream};
use crate::format::bundle::MAX_BUNDLE_BYTES;
use crate::format::bundle::{BundleError, Inbox, Outbox, OutboxKind};
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::{OutboxWrite, SyncOutcome};

/// Room left in an inbox for messages, below the laptop's bundle limit.
const INBOX_BUDGET_BYTES: usize = MAX_BUNDLE_BYTES - 4 * 1024 * 1024;

pub async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let bytes = body_bytes(body)?;
    require_octet_stream(&headers)?;
    let (counsellor, counter, inbox) =
        tokio::task::spawn_blocking(move || apply(&state, &bytes)).await??;
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
        inbox,
    )
        .into_response())
}

/// Checks, applies and answers; blocking (SQLite, age).
fn apply(state: &AppState, bytes: &[u8]) -> Result<(String, u64, Vec<u8>), AppError> {
    let mut outbox = Outbox::parse(bytes)?;
    let mut files = std::mem::take(&mut outbox.files);
    let manifest = &outbox.manifest;
    // An unknown counsellor gets the same answer as a forged signature, so the
    // endpoint does not confirm which ids exist.
    let card = state
        .cards
        .get(&manifest.counsellor)
        .ok_or(AppError::Bundle(BundleError::BadSignature))?;
    let key = card
        .verifying_key()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    outbox.verify(&key)?;
    // Parse made sure every item has its file; they move to the store.
    let writes: Vec<OutboxWrite> = manifest
        .items
        .iter()
        .filter_map(|item| {
            Some(OutboxWrite {
                id: item.id,
                case: item.case,
                body: files.remove(&item.id)?,
                closes: item.kind == OutboxKind::Close,
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
    let mut entries = state
        .store
        .inbox(&manifest.counsellor, manifest.inbox_ack)?;
    // Keep the inbox within what the laptop accepts; what does not fit comes
    // with the next sync, because the acknowledgement only moves on import.
    let mut total = 0;
    let fits = entries
        .iter()
        .take_while(|e| {
            total += e.body.len() + 1024;
            total <= INBOX_BUDGET_BYTES
        })
        .count();
    entries.truncate(fits.max(1));
    let recipient = card
        .recipient()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let inbox = Inbox::seal(
        &manifest.counsellor,
        manifest.counter,
        applied,
        &entries,
        &recipient,
    )
    .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((manifest.counsellor.clone(), manifest.counter, inbox))
}
