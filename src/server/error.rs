//! The one error type of the HTTP layer. Every refusal is a JSON body with a
//! stable `error` code (docs/api.md); a 500 says nothing about its cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::format::agefile::AgeFileError;
use crate::format::bundle::BundleError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not JSON of the expected shape.
    #[error("The request body is not valid JSON of the expected shape.")]
    BadJson,
    /// A lookup key that is not 64 lower-case hex characters.
    #[error("The lookup key must be 64 lower-case hexadecimal characters.")]
    BadLookupKey,
    /// `message` is not standard base64.
    #[error("The message is not valid base64.")]
    BadBase64,
    /// The message failed the age shape check.
    #[error("{0}")]
    Age(#[from] AgeFileError),
    /// A report without counsellors.
    #[error("Choose at least one counsellor.")]
    NoCounsellor,
    /// A counsellor id without a card on this server.
    #[error("There is no counsellor with that id.")]
    UnknownCounsellor,
    /// An outbox that is malformed or does not verify.
    #[error("{0}")]
    Bundle(#[from] BundleError),
    /// A report to counsellors of more than one organisation.
    #[error("All chosen counsellors must belong to one organisation.")]
    MixedOrganisations,
    /// An organisation id without cards on this server.
    #[error("There is no organisation with that id.")]
    UnknownOrganisation,
    /// More than one organisation is served; say which.
    #[error("This server serves several organisations; choose one.")]
    OrganisationRequired,
    /// No case for this lookup key.
    #[error("No report was found for this code.")]
    UnknownCode,
    /// A different report holds this lookup key.
    #[error("This code is already in use.")]
    CodeInUse,
    /// An outbox counter at or below the last applied one.
    #[error("This outbox was already used; make a new one.")]
    ReplayedBundle,
    /// An outbox item for a case that is not this counsellor's.
    #[error("The outbox names a case that is not yours.")]
    UnknownCase,
    /// The body is larger than the configured limit.
    #[error("The request is too large.")]
    TooLarge,
    /// The Content-Type is not the one the endpoint takes.
    #[error("Wrong Content-Type for this endpoint.")]
    UnsupportedMediaType,
    /// No such page or endpoint.
    #[error("Not found.")]
    NotFound,
    /// Wrong HTTP method.
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// An upload id, offset or length that is malformed, or a chunk that
    /// would run past the declared length.
    #[error("The upload request is malformed.")]
    BadUpload,
    /// No such upload (or, for a message, none that is complete and free).
    #[error("No such upload, or it is not complete.")]
    UnknownUpload,
    /// A chunk that does not start where the received bytes end.
    #[error("The upload offset does not match the bytes received; ask for the status.")]
    WrongOffset,
    /// The quota or the disk cannot hold an upload; nothing was written.
    #[error("There is not enough storage space for this file on the server right now.")]
    StorageFull,
    /// The case holds as many messages (or bytes) as one case may.
    #[error(
        "This report has reached its limit of messages; the counsellor can still reply, or you \
         can start a new report."
    )]
    CaseFull,
    /// A query string that is not what the endpoint takes (a repeated or
    /// unknown parameter, bad percent-encoding).
    #[error("The query string is not valid for this endpoint.")]
    BadQuery,
    /// Another HTTP version than 1.1.
    #[error("Only HTTP/1.1 is supported.")]
    HttpVersion,
    /// More than 64 KiB of request headers.
    #[error("The request headers are too large.")]
    HeadersTooLarge,
    /// A report, follow-up or upload without a proof of work.
    #[error("This request needs a proof of work: GET /api/v1/pow (docs/api.md).")]
    PowRequired,
    /// A proof of work that is malformed, wrong, expired or used before.
    #[error("The proof of work is not valid (wrong, expired or used before); solve a new one.")]
    PowInvalid,
    /// Anything that failed inside the server; logged, never shown.
    #[error("Something went wrong on the server.")]
    Internal(String),
}

impl AppError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadJson => (StatusCode::BAD_REQUEST, "bad_json"),
            AppError::BadLookupKey => (StatusCode::BAD_REQUEST, "bad_lookup_key"),
            AppError::BadBase64 => (StatusCode::BAD_REQUEST, "bad_base64"),
            AppError::Age(e) => (StatusCode::BAD_REQUEST, e.code()),
            AppError::NoCounsellor => (StatusCode::BAD_REQUEST, "no_counsellor"),
            AppError::UnknownCounsellor => (StatusCode::BAD_REQUEST, "unknown_counsellor"),
            AppError::Bundle(BundleError::BadSignature) => {
                (StatusCode::UNAUTHORIZED, "bad_signature")
            }
            AppError::Bundle(_) => (StatusCode::BAD_REQUEST, "bad_bundle"),
            AppError::MixedOrganisations => (StatusCode::BAD_REQUEST, "mixed_organisations"),
            AppError::UnknownOrganisation => (StatusCode::NOT_FOUND, "unknown_organisation"),
            AppError::OrganisationRequired => (StatusCode::BAD_REQUEST, "organisation_required"),
            AppError::UnknownCode => (StatusCode::NOT_FOUND, "unknown_code"),
            AppError::CodeInUse => (StatusCode::CONFLICT, "code_in_use"),
            AppError::ReplayedBundle => (StatusCode::CONFLICT, "replayed_bundle"),
            AppError::UnknownCase => (StatusCode::CONFLICT, "unknown_case"),
            AppError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::BadUpload => (StatusCode::BAD_REQUEST, "bad_upload"),
            AppError::UnknownUpload => (StatusCode::NOT_FOUND, "unknown_upload"),
            AppError::WrongOffset => (StatusCode::CONFLICT, "wrong_offset"),
            AppError::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            AppError::CaseFull => (StatusCode::PAYLOAD_TOO_LARGE, "case_full"),
            AppError::BadQuery => (StatusCode::BAD_REQUEST, "bad_query"),
            AppError::PowRequired => (StatusCode::FORBIDDEN, "pow_required"),
            AppError::PowInvalid => (StatusCode::FORBIDDEN, "pow_invalid"),
            AppError::HttpVersion => (StatusCode::HTTP_VERSION_NOT_SUPPORTED, "http_version"),
            AppError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<super::store::StoreError> for AppError {
    fn from(e: super::store::StoreError) -> Self {
        if e.is_disk_full() {
            // Nothing was committed; the melder may try again later.
            return AppError::StorageFull;
        }
        AppError::Internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(detail) = &self {
            // The detail names no request: no address, no key, no time.
            tracing::error!("internal error: {detail}");
        }
        (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response()
    }
}
