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
use crate::server::uploads::{CHUNK_BYTES, write_frame};

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

/// The id in the `Upload-Id` header and the offset in `Upload-Offset`.
fn chunk_headers(headers: &HeaderMap) -> Result<(UploadId, u64), AppError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
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
    .ok_or(AppError::UnknownUpload)?;
    if row.state != UploadState::Pending {
        return Err(AppError::UnknownUpload);
    }
    let file = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.uploads.append_at(&id, offset)).await??
    };
    // Frames are written as they arrive; a cut connection keeps what came.
    let received = match receive(file, body, offset, row.length).await {
        Ok(received) => received,
        Err(Stop::Refused(refusal)) => {
            // Nothing of a refused chunk stays.
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.uploads.truncate(&id, offset)).await?;
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
    /// The connection was cut (or the disk failed): what arrived stays.
    Cut(AppError),
}

/// Bytes gathered before one write: few system calls, little memory.
const WRITE_BYTES: usize = 256 * 1024;

/// Appends the body's frames to `file` as they arrive and returns the bytes
/// the upload now holds. A connection cut mid-chunk keeps what arrived (the
/// melder resumes from there). Refuses a chunk beyond `CHUNK_BYTES` or past
/// `length`; the caller then cuts the file back.
async fn receive(
    file: std::fs::File,
    mut body: Body,
    offset: u64,
    length: u64,
) -> Result<u64, Stop> {
    let file = std::sync::Arc::new(std::sync::Mutex::new(file));
    let flush = |pending: Vec<u8>| {
        let file = file.clone();
        async move {
            match tokio::task::spawn_blocking(move || {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                write_frame(&mut file, &pending)
            })
            .await
            {
                Ok(Ok(())) => Ok(()),
                // A full disk: this chunk goes, the upload can go on later.
                Ok(Err(full @ AppError::StorageFull)) => Err(Stop::Refused(full)),
                Ok(Err(other)) => Err(Stop::Cut(other)),
                Err(join) => Err(Stop::Cut(join.into())),
            }
        }
    };
    let mut received = offset;
    let mut pending = Vec::with_capacity(WRITE_BYTES);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client went away: keep what arrived, answer no one.
            flush(pending).await?;
            return Err(Stop::Cut(AppError::BadUpload));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if received + data.len() as u64 - offset > CHUNK_BYTES {
            return Err(Stop::Refused(AppError::TooLarge));
        }
        if received + data.len() as u64 > length {
            return Err(Stop::Refused(AppError::BadUpload));
        }
        received += data.len() as u64;
        pending.extend_from_slice(&data);
        if pending.len() >= WRITE_BYTES {
            flush(std::mem::replace(
                &mut pending,
                Vec::with_capacity(WRITE_BYTES),
            ))
            .await?;
        }
    }
    flush(pending).await?;
    Ok(received)
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
        let received = match row.state {
            UploadState::Pending => state
                .uploads
                .received(&upload)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            UploadState::Complete | UploadState::Claimed => row.length,
        };
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
