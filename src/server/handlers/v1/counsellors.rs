//! `GET /api/v1/organisations` and `GET /api/v1/counsellors?org=…`: the
//! public part of the cards, for the report form. A melder of one
//! organisation never gets another's counsellors.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::AppState;
use crate::server::error::AppError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    org: Option<String>,
}

/// Every parameter at most once, and every `%` followed by two hex digits.
fn plain_query(query: &str) -> bool {
    let mut names = std::collections::BTreeSet::new();
    query.split('&').filter(|p| !p.is_empty()).all(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let escapes_ok = pair
            .split('%')
            .skip(1)
            .all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
        escapes_ok && names.insert(name)
    })
}

/// Organisation id → display name: the configured one, else the cards'.
pub fn organisations(state: &AppState) -> BTreeMap<String, String> {
    state
        .cards()
        .values()
        .map(|card| {
            let id = card.org_id();
            let name = state
                .organisations
                .get(&id)
                .and_then(|o| o.name.clone())
                .unwrap_or_else(|| card.organisation.clone());
            (id, name)
        })
        .collect()
}

/// What the pages show of one organisation (docs/api.md): its name, the
/// configured settings, and the server's retention period.
fn organisation_json(state: &AppState, id: &str, name: &str) -> Value {
    let settings = state.organisations.get(id).cloned().unwrap_or_default();
    json!({
        "id": id,
        "name": name,
        "controller": settings.controller,
        "dpo": settings.dpo,
        "aftercare": settings.aftercare,
        "support": settings.support,
        "code_file_name": settings.code_file_name,
        "retention_days": settings.retention_days.unwrap_or(state.retention_days),
    })
}

pub async fn list_organisations(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = organisations(&state)
        .iter()
        .map(|(id, name)| organisation_json(&state, id, name))
        .collect();
    Json(json!({ "organisations": list }))
}

/// The counsellors of one organisation: `org` may be left out only when the
/// server serves a single organisation.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    which: Result<Query<Which>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    // axum's own refusal is text/plain, and a repeated `org` would be
    // decided by whichever came last: both are our JSON refusal instead.
    if raw.as_deref().is_some_and(|q| !plain_query(q)) {
        return Err(AppError::BadQuery);
    }
    let Query(which) = which.map_err(|_| AppError::BadQuery)?;
    let organisations = organisations(&state);
    let org = match which.org {
        Some(org) if organisations.contains_key(&org) => org,
        Some(_) => return Err(AppError::UnknownOrganisation),
        None if organisations.len() == 1 => {
            organisations.keys().next().cloned().unwrap_or_default()
        }
        None => return Err(AppError::OrganisationRequired),
    };
    let counsellors: Vec<Value> = state
        .cards()
        .values()
        .filter(|card| card.org_id() == org)
        .map(|card| {
            json!({
                "id": card.id,
                "name": card.name,
                "organisation": card.organisation,
                "org": card.org_id(),
                "kind": card.kind,
                "description": card.description,
                "lang": card.lang,
                "age_recipient": card.age_recipient,
                // The page computes the card's fingerprint from every field
                // (protocol.md §10.1) and verifies signed replies with it.
                "signing_key": card.signing_key,
                // Protocol v2: the page shows it, and keeps classical
                // and post-quantum counsellors out of one report.
                "post_quantum": card.is_post_quantum(),
            })
        })
        .collect();
    Ok(Json(json!({
        "organisation": organisation_json(&state, &org, &organisations[&org]),
        "counsellors": counsellors,
    })))
}
