//! `GET /api/v1/counsellors`: the public part of every card, for the report form.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::server::AppState;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let counsellors: Vec<Value> = state
        .cards
        .values()
        .map(|card| {
            json!({
                "id": card.id,
                "name": card.name,
                "organisation": card.organisation,
                "kind": card.kind,
                "description": card.description,
                "age_recipient": card.age_recipient,
            })
        })
        .collect();
    Json(json!({ "counsellors": counsellors }))
}
