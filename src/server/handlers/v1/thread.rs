//! `POST /api/v1/thread` (read a thread) and `POST /api/v1/thread/messages`
//! (a melder's follow-up), both by lookup key in the body, never in the URL.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{json_body, lookup_hash, message};
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::FollowUp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadRequest {
    lookup_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUpRequest {
    lookup_key: String,
    message: String,
    #[serde(default)]
    uploads: Option<Vec<crate::format::ids::UploadId>>,
}

pub async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ThreadAnswer>, AppError> {
    let request: ThreadRequest = json_body(&headers, body)?;
    let lookup = lookup_hash(&request.lookup_key)?;
    // The answer is built on the blocking thread too: base64 of the bodies
    // is the bulk of a look-up's work.
    let answer = tokio::task::spawn_blocking(move || {
        state.store.thread(&lookup).map(|thread| {
            thread.map(|thread| ThreadAnswer {
                counsellors: thread.counsellors,
                messages: thread
                    .messages
                    .into_iter()
                    .map(|m| MessageAnswer {
                        message: STANDARD.encode(&m.body),
                        id: m.id,
                        author: m.author,
                        kind: m.kind,
                        day: m.day,
                    })
                    .collect(),
            })
        })
    })
    .await??
    .ok_or(AppError::UnknownCode)?;
    Ok(Json(answer))
}

/// The answer to a thread look-up (docs/api.md).
#[derive(Serialize)]
pub struct ThreadAnswer {
    counsellors: Vec<String>,
    messages: Vec<MessageAnswer>,
}

#[derive(Serialize)]
pub struct MessageAnswer {
    id: crate::format::ids::MessageId,
    author: String,
    kind: String,
    day: crate::format::day::Day,
    /// Standard base64 of the age file.
    message: String,
}

pub async fn follow_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let request: FollowUpRequest = json_body(&headers, body)?;
    let lookup = lookup_hash(&request.lookup_key)?;
    let message = message(&request.message)?;
    let uploads = super::uploads::named_uploads(request.uploads)?;
    let day = match tokio::task::spawn_blocking(move || {
        state.store.add_follow_up(lookup, message, uploads)
    })
    .await??
    {
        FollowUp::Stored(day) => day,
        FollowUp::UnknownCode => return Err(AppError::UnknownCode),
        FollowUp::UnknownUpload => return Err(AppError::UnknownUpload),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "stored": true, "day": day })),
    ))
}
