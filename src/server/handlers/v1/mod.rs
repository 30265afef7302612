//! The JSON API under `/api/v1` (docs/api.md): one module per resource.

pub mod counsellors;
pub mod courier;
pub mod reports;
pub mod thread;
pub mod uploads;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use crate::format::agefile::AgeBlob;
use crate::format::derive::{LookupHash, LookupKey};
use crate::server::error::AppError;

/// The body as bytes, with an over-limit body reported as `too_large`.
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, AppError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::BadJson
        }
    })
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Reads a JSON body strictly: right Content-Type, right shape, no extra fields.
pub(crate) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, AppError> {
    let bytes = body_bytes(body)?;
    if !content_type_is(headers, "application/json") {
        return Err(AppError::UnsupportedMediaType);
    }
    serde_json::from_slice(&bytes).map_err(|_| AppError::BadJson)
}

pub(crate) fn require_octet_stream(headers: &HeaderMap) -> Result<(), AppError> {
    if content_type_is(headers, "application/octet-stream") {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType)
    }
}

pub(crate) fn lookup_hash(hex: &str) -> Result<LookupHash, AppError> {
    Ok(LookupKey::from_hex(hex)
        .map_err(|_| AppError::BadLookupKey)?
        .hash())
}

/// Decodes and checks a message: base64 of a padded binary age file.
pub(crate) fn message(base64: &str) -> Result<AgeBlob, AppError> {
    let bytes = STANDARD.decode(base64).map_err(|_| AppError::BadBase64)?;
    Ok(AgeBlob::parse_message(bytes)?)
}
