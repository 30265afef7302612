//! `POST /api/v1/thread` (read a thread) and `POST /api/v1/thread/messages`
//! (a melder's follow-up), both by lookup key in the body, never in the URL.
//!
//! Every answer of both leaves at a fixed time after the request reached
//! the handler (a floor), whatever the key: a known key's work (reading and
//! encoding the thread; committing the follow-up durably) fits inside it,
//! so the time of an answer does not say whether the key has a case
//! (docs/security.md §4, tests/uniform.rs).

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{json_body, lookup_hash, message};
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::{FollowUp, Thread};

/// No thread answer leaves earlier than this. Reading and encoding a
/// thread of twenty 4 KiB messages takes 0.4 ms at the median on the
/// 2-core development machine and stays under 20 ms at p99 with that
/// machine fully loaded (docs/security.md §4); a melder, whose browser
/// decrypts the thread next, cannot notice 25 ms. A thread that takes
/// longer (megabytes of inline attachments) is answered late, when ready:
/// its answer is megabytes long, which says more than its timing.
/// Capacity: a connection waits out the floor, so 1,024 connections carry
/// at most 40,000 look-ups/s, far above what the CPU serves.
pub const THREAD_FLOOR: Duration = Duration::from_millis(25);

/// No follow-up answer leaves earlier than this. It must cover a durable
/// commit: one fsync (4 ms at p99 on the development machine's disk), or
/// two when the follow-up waits for the group commit before it, plus an
/// occasional WAL checkpoint; slower server disks (network block storage,
/// spinning disks) take tens of milliseconds. An unknown key's 404 must not
/// come back sooner than that. 100 ms is below what a person notices after
/// pressing "send", and follow-ups are rare.
pub const FOLLOW_UP_FLOOR: Duration = Duration::from_millis(100);

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

/// Runs `work` and lets its answer, already whole (serialised), leave no
/// earlier than `floor` from now. The wait is a timer, not a busy loop: a
/// waiting answer costs no CPU. The timer is set before the work starts
/// (`biased` polls the sleep first), so timers are set in the order
/// requests arrive: tokio wakes the timers of one tick in the order they
/// were set, and one set after the work would let a known key's answer
/// leave ahead of an unknown one that arrived with it (tests/uniform.rs
/// saw that as 0.1–0.2 ms). Refusals wait too: one rule for every answer.
async fn at_floor(floor: Duration, work: impl Future<Output = Response>) -> Response {
    let ((), answer) = tokio::join!(biased; tokio::time::sleep(floor), work);
    answer
}

pub async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    at_floor(THREAD_FLOOR, async {
        read_thread(state, headers, body).await.into_response()
    })
    .await
}

async fn read_thread(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let request: ThreadRequest = json_body(&headers, body)?;
    let lookup = lookup_hash(&request.lookup_key)?;
    // The read and the whole answer (JSON and base64 included) are made on
    // the read pool (read_pool.rs), not on this worker: work done here
    // would hold up the other requests this worker has not yet started, and
    // so would set their floors later when a known key arrives with them
    // (tests/uniform.rs saw 65 µs). None of it is left for after the floor.
    let json = state
        .read(move |state| state.store.thread(&lookup)?.map(encode).transpose())
        .await??
        .ok_or(AppError::UnknownCode)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

/// The JSON answer for a thread (docs/api.md): `{"counsellors": [...],
/// "messages": [{"id", "author", "kind", "day", "message"}, ...]}`, each
/// message the standard base64 of its age file. Written straight into one
/// buffer of the right size: base64 needs no JSON escaping, and running
/// kilobytes of it through the escaper and a growing buffer was a tenth of
/// a look-up's work.
fn encode(thread: Thread) -> Result<Vec<u8>, AppError> {
    let size: usize = thread
        .messages
        .iter()
        .map(|m| {
            base64::encoded_len(m.body.len(), true).map_or(usize::MAX, |n| n.saturating_add(160))
        })
        .fold(64, usize::saturating_add);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"{\"counsellors\":");
    write_json(&mut out, &thread.counsellors)?;
    out.extend_from_slice(b",\"messages\":[");
    for (i, m) in thread.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        write_json(&mut out, &m.id)?;
        out.extend_from_slice(b",\"author\":");
        write_json(&mut out, &m.author)?;
        out.extend_from_slice(b",\"kind\":");
        write_json(&mut out, &m.kind)?;
        out.extend_from_slice(b",\"day\":");
        write_json(&mut out, &m.day)?;
        out.extend_from_slice(b",\"message\":\"");
        let start = out.len();
        out.resize(
            start + base64::encoded_len(m.body.len(), true).unwrap_or(0),
            0,
        );
        STANDARD
            .encode_slice(&m.body, &mut out[start..])
            .map_err(|e| AppError::Internal(e.to_string()))?;
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Appends `value` as JSON.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), AppError> {
    serde_json::to_writer(out, value).map_err(|e| AppError::Internal(e.to_string()))
}

pub async fn follow_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    at_floor(FOLLOW_UP_FLOOR, async {
        store_follow_up(state, headers, body).await.into_response()
    })
    .await
}

async fn store_follow_up(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    // Parsing and checking the message (JSON, base64, the age shape) is
    // CPU work on up to the body limit: on the blocking thread with the
    // store call, so a worker never holds up the requests behind it.
    let day = match tokio::task::spawn_blocking(move || {
        let request: FollowUpRequest = json_body(&headers, body)?;
        let lookup = lookup_hash(&request.lookup_key)?;
        let message = message(&request.message)?;
        let uploads = super::uploads::named_uploads(request.uploads)?;
        Ok::<_, AppError>(state.store.add_follow_up(lookup, message, uploads)?)
    })
    .await??
    {
        FollowUp::Stored(day) => day,
        FollowUp::UnknownCode => return Err(AppError::UnknownCode),
        FollowUp::UnknownUpload => return Err(AppError::UnknownUpload),
        FollowUp::CaseFull => return Err(AppError::CaseFull),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "stored": true, "day": day })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::day::Day;
    use crate::format::ids::MessageId;
    use crate::server::store::StoredMessage;

    #[test]
    fn the_thread_answer_is_the_json_the_api_documents() {
        let message = |byte: u8, len: usize, author: &str| StoredMessage {
            id: MessageId([byte; 16]),
            author: author.into(),
            kind: "reply".into(),
            day: Day::today(),
            body: (0..len).map(|i| (i as u8).wrapping_mul(byte)).collect(),
        };
        let messages = vec![
            message(1, 0, "melder"),
            message(2, 1, "vp-a"),
            message(3, 4099, "vp-\"b"),
        ];
        let expected = json!({
            "counsellors": ["vp-a", "vp-\"b"],
            "messages": messages.iter().map(|m| json!({
                "id": m.id,
                "author": m.author,
                "kind": m.kind,
                "day": m.day,
                "message": STANDARD.encode(&m.body),
            })).collect::<Vec<_>>(),
        });
        let encoded = encode(Thread {
            counsellors: vec!["vp-a".into(), "vp-\"b".into()],
            messages,
        })
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(parsed, expected);
        let empty = encode(Thread {
            counsellors: vec![],
            messages: vec![],
        })
        .unwrap();
        assert_eq!(empty, br#"{"counsellors":[],"messages":[]}"#);
    }
}
