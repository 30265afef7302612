//! `POST /api/v1/reports`: a new case with its first, encrypted message.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::uploads::named_uploads;
use super::{json_body, lookup_hash, message};
use crate::format::ids::UploadId;
use crate::server::AppState;
use crate::server::error::AppError;
use crate::server::store::NewCase;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReport {
    counsellors: Vec<String>,
    lookup_key: String,
    message: String,
    #[serde(default)]
    uploads: Option<Vec<UploadId>>,
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let request: NewReport = json_body(&headers, body)?;
    let lookup = lookup_hash(&request.lookup_key)?;
    let mut counsellors = request.counsellors;
    counsellors.sort();
    counsellors.dedup();
    if counsellors.is_empty() {
        return Err(AppError::NoCounsellor);
    }
    let cards = state.cards();
    if counsellors.iter().any(|id| !cards.contains_key(id)) {
        return Err(AppError::UnknownCounsellor);
    }
    let org = cards[&counsellors[0]].org_id();
    if counsellors.iter().any(|id| cards[id].org_id() != org) {
        return Err(AppError::MixedOrganisations);
    }
    let report = message(&request.message)?;
    let uploads = named_uploads(request.uploads)?;
    let store = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        store
            .store
            .create_case(lookup, counsellors, report, uploads)
    })
    .await??;
    match outcome {
        NewCase::Created(day) => Ok((
            StatusCode::CREATED,
            Json(json!({ "stored": true, "day": day })),
        )),
        NewCase::AlreadyStored(day) => {
            Ok((StatusCode::OK, Json(json!({ "stored": true, "day": day }))))
        }
        NewCase::CodeInUse => Err(AppError::CodeInUse),
        NewCase::UnknownUpload => Err(AppError::UnknownUpload),
    }
}
