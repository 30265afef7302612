//! Streamed attachment uploads (docs/api.md "Uploads"): create, send chunks,
//! ask the status, cancel. The upload id travels in a header or the body,
//! never in the URL.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{json_body, require_octet_stream};
use crate::format::envelope::MAX_ATTACHMENTS;
use crate::format::ids::UploadId;
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::UploadState;
use crate::server::uploads::{CHUNK_BYTES, PIECE_BYTES};

/// `GET /api/v1/limits`: what the page needs to refuse a file before it
/// spends minutes encrypting it.
pub async fn limits(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "max_attachment_bytes": state.uploads.max_attachment_bytes(),
        "max_attachments": MAX_ATTACHMENTS,
        "chunk_bytes": CHUNK_BYTES,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUpload {
    length: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRef {
    upload: UploadId,
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let request: NewUpload = json_body(&headers, body)?;
    let id =
        tokio::task::spawn_blocking(move || state.uploads.create(&state.store, request.length))
            .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "upload": id, "received": 0, "chunk_bytes": CHUNK_BYTES })),
    ))
}

/// The id in the `Upload-Id` header and the offset in `Upload-Offset`,
/// each exactly once: with two, which one counts would be a guess.
fn chunk_headers(headers: &HeaderMap) -> Result<(UploadId, u64), AppError> {
    let text = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    let id = text("upload-id")
        .and_then(UploadId::parse)
        .ok_or(AppError::BadUpload)?;
    let offset = text("upload-offset")
        .filter(|t| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or(AppError::BadUpload)?;
    Ok((id, offset))
}

pub async fn chunk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    require_octet_stream(&headers)?;
    let (id, offset) = chunk_headers(&headers)?;
    let _busy = state.uploads.claim(id).ok_or(AppError::WrongOffset)?;
    let row = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.store.upload(&id)).await??
    }
    .filter(|row| row.state == UploadState::Pending)
    .ok_or(AppError::UnknownUpload)?;
    if row.received != offset {
        return Err(AppError::WrongOffset);
    }
    // Pieces are stored as they arrive; a cut connection keeps what came.
    let received = match receive(&state, id, body, offset, row.length).await {
        Ok(received) => received,
        Err(Stop::Refused(refusal)) => {
            // Nothing of a refused chunk stays.
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.uploads.cut(&state.store, id, offset))
                .await??;
            return Err(refusal);
        }
        Err(Stop::Cut(error)) => return Err(error),
    };
    let complete = received == row.length;
    if complete {
        tokio::task::spawn_blocking(move || state.uploads.finish(&state.store, id, row.length))
            .await??;
    }
    Ok(Json(json!({ "received": received, "complete": complete })))
}

/// Why a chunk stopped early.
enum Stop {
    /// Refused: the chunk's bytes must not stay.
    Refused(AppError),
    /// The connection was cut, the upload is gone, or the disk failed:
    /// what was stored stays.
    Cut(AppError),
}

/// Stores the body's bytes in pieces of `PIECE_BYTES` as they arrive and
/// returns the bytes the upload now holds. A connection cut mid-chunk keeps
/// what arrived (the melder resumes from there). Refuses a chunk beyond
/// `CHUNK_BYTES` or past `length`; the caller then cuts it back. The last
/// store (even of nothing) confirms the upload still exists.
async fn receive(
    state: &AppState,
    id: UploadId,
    mut body: Body,
    offset: u64,
    length: u64,
) -> Result<u64, Stop> {
    let store = |start: u64, piece: Vec<u8>| {
        let state = state.clone();
        async move {
            match tokio::task::spawn_blocking(move || {
                state.uploads.append(&state.store, id, start, piece)
            })
            .await
            {
                Ok(Ok(received)) => Ok(received),
                // No room: this chunk goes, the upload can go on later.
                Ok(Err(full @ AppError::StorageFull)) => Err(Stop::Refused(full)),
                Ok(Err(other)) => Err(Stop::Cut(other)),
                Err(join) => Err(Stop::Cut(join.into())),
            }
        }
    };
    let mut stored = offset;
    let mut pending = Vec::with_capacity(PIECE_BYTES);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client went away: keep what arrived, answer no one.
            store(stored, pending).await?;
            return Err(Stop::Cut(AppError::BadUpload));
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let arrived = stored + (pending.len() + data.len()) as u64;
        if arrived - offset > CHUNK_BYTES {
            return Err(Stop::Refused(AppError::TooLarge));
        }
        if arrived > length {
            return Err(Stop::Refused(AppError::BadUpload));
        }
        while !data.is_empty() {
            let take = data.len().min(PIECE_BYTES - pending.len());
            pending.extend_from_slice(&data.split_to(take));
            if pending.len() == PIECE_BYTES {
                let piece = std::mem::replace(&mut pending, Vec::with_capacity(PIECE_BYTES));
                stored = store(stored, piece).await?;
            }
        }
    }
    store(stored, pending).await
}

pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let UploadRef { upload } = json_body(&headers, body)?;
    tokio::task::spawn_blocking(move || {
        let row = state
            .store
            .upload(&upload)?
            .ok_or(AppError::UnknownUpload)?;
        let mut complete = row.state != UploadState::Pending;
        let received = row.received;
        if !complete && received == row.length {
            // Every byte came but the last step failed (a full disk, a
            // restart): finish it now, unless a chunk request is at it.
            if let Some(_busy) = state.uploads.claim(upload) {
                match state.uploads.finish(&state.store, upload, row.length) {
                    Ok(()) => complete = true,
                    // Still no room: the status says so, the next ask retries.
                    Err(AppError::StorageFull) => {}
                    Err(refusal) => return Err(refusal),
                }
            }
        }
        Ok(Json(json!({
            "length": row.length,
            "received": received,
            "complete": complete,
        })))
    })
    .await?
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let UploadRef { upload } = json_body(&headers, body)?;
    let cancelled =
        tokio::task::spawn_blocking(move || state.uploads.cancel(&state.store, upload)).await??;
    if !cancelled {
        return Err(AppError::UnknownUpload);
    }
    Ok(Json(json!({ "cancelled": true })))
}

/// The `uploads` of a report or follow-up: at most 20, no repeats.
pub(crate) fn named_uploads(uploads: Option<Vec<UploadId>>) -> Result<Vec<UploadId>, AppError> {
    let uploads = uploads.unwrap_or_default();
    let mut sorted = uploads.clone();
    sorted.sort();
    sorted.dedup();
    if uploads.len() > MAX_ATTACHMENTS || sorted.len() != uploads.len() {
        return Err(AppError::BadUpload);
    }
    Ok(uploads)
}
