//! Permalinks: `GET /api/results/{id}` reopens a stored result, or plans the
//! same computation again from its stored request when the store evicted its
//! numbers.
//!
//! Every computation the server keeps is first *planned* from the request
//! alone ([`super::plan`]): checked against the budgets, its id derived as a
//! hash of the model's fingerprint and the canonical request (which names the
//! edit sets it runs on). Nothing that can change between the request and the
//! work enters the id, so a result can never be stored under another
//! computation's id, and planning a stored request again gives its id back.
//! This file is the one place that knows every kind's planner.

use super::plan::Planned;
use super::stored::{lookup, request_of, shape};
use super::{ApiFail, AppState};
use crate::store::is_id;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{clip, ApiError, ComputeRequest, JobStatus, StoredResultJson};
use std::sync::Arc;

#[utoipa::path(get, path = "/api/results/{id}", params(("id" = String, Path, description = "20 hex digits")), responses((status = 200, body = StoredResultJson), (status = 202, body = JobStatus, description = "the result was evicted from the store and is being recomputed from its request: follow /api/jobs/{id}/events, then fetch it again"), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub async fn result_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    if !is_id(&id) {
        return Err(ApiFail::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("`{}` is not a result id (20 hex digits)", clip(&id)),
        ));
    }
    let found = lookup(&st, &id).await?.ok_or_else(|| {
        ApiFail::new(
            StatusCode::NOT_FOUND,
            "result_not_found",
            format!("no stored result has id {id}"),
        )
    })?;
    if found.result.is_some() {
        return Ok(Json(shape(&id, &found)?).into_response());
    }
    // Evicted: plan the same computation again from its request.
    match replan(&st, request_of(&id, &found)?, &id)? {
        Some(planned) => super::jobs::launch(&st, planned).await,
        // The request means another computation here (its model is not
        // loaded): say so rather than compute something else.
        None => Err(ApiFail::new(
            StatusCode::GONE,
            "result_gone",
            format!("result {id} was evicted and its model is not loaded here, so it cannot be recomputed"),
        )),
    }
}

/// Plan a request of any kind.
pub(super) fn plan(st: &AppState, request: ComputeRequest) -> Result<Planned, ApiFail> {
    match request {
        ComputeRequest::Analyze(r) => super::analysis::plan(st, r),
        ComputeRequest::Update(r) => super::edits::plan_update(st, r),
        ComputeRequest::Erase(r) => super::edits::plan_erase(st, r),
        ComputeRequest::EraseRelation(r) => super::edits::plan_erase_relation(st, r),
        ComputeRequest::Methods(r) => super::methods_route::plan(st, r),
    }
}

/// Plan a stored request again on the loaded model it was made for (the one
/// whose plan has the same id).
fn replan(st: &AppState, request: ComputeRequest, id: &str) -> Result<Option<Planned>, ApiFail> {
    for w in &st.models {
        let mut r = request.clone();
        *r.model_mut() = Some(w.summary.name.clone());
        let planned = plan(st, r)?;
        if planned.id == id {
            return Ok(Some(planned));
        }
    }
    Ok(None)
}
