//! Edit sets as values: stored once under the hash of their contents
//! (`POST /api/edit-sets`, `GET /api/edit-sets/{id}`), named by requests, and
//! read back and checked for the model a request runs on ([`resolve`]). The
//! routes that *make* edit sets (update, erase) are in [`super::edits`].

use super::{blocking, budget, parse, ApiFail, AppState};
use crate::engine::edit;
use crate::engine::Neuron;
use crate::store::{is_id, Store};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{clip, ActiveEdit, ApiError, EditSet};
use std::sync::Arc;

/// An edit set's id: a hash of its canonical JSON (which includes the
/// fingerprint of the model it was made for).
pub fn edit_set_id(set: &EditSet) -> String {
    let v = serde_json::to_value(set).unwrap_or_default();
    Store::id("edit-set", &set.model, &v)
}

/// How requests and the web app show an edit set.
pub fn describe(set: &EditSet) -> ActiveEdit {
    ActiveEdit {
        id: edit_set_id(set),
        model: set.model.clone(),
        description: set.description.clone(),
        neurons: set
            .slots
            .iter()
            .map(|s| Neuron {
                layer: s.layer,
                index: s.index,
            })
            .collect(),
    }
}

/// The `edits` of a request: not too many, each shaped like an id.
pub fn check_ids(st: &AppState, ids: &[String]) -> Result<(), ApiFail> {
    budget::at_most(
        "edit sets in one request",
        ids.len(),
        st.limits.max_edit_sets,
        "",
    )?;
    if let Some(bad) = ids.iter().find(|id| !is_id(id)) {
        return Err(ApiFail::new(
            StatusCode::BAD_REQUEST,
            "bad_edit_id",
            format!("`{}` is not an edit-set id (20 hex digits)", clip(bad)),
        ));
    }
    Ok(())
}

/// Read and check the edit sets `ids` for the model of worker `index`.
pub async fn resolve(
    st: &Arc<AppState>,
    index: usize,
    ids: &[String],
) -> Result<Vec<EditSet>, ApiFail> {
    check_ids(st, ids)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (store, ids) = (st.store.clone(), ids.to_vec());
    let worker = &st.models[index];
    let (fp, cfg) = (worker.fingerprint.clone(), worker.text.config.clone());
    blocking(move || {
        ids.iter()
            .map(|id| {
                let body = store.edit_set(id)?.ok_or_else(|| {
                    ApiFail::new(
                        StatusCode::NOT_FOUND,
                        "edit_set_not_found",
                        format!("no edit set has id {id}: upload its file again (POST /api/edit-sets); a full store drops the least recently used sets"),
                    )
                })?;
                let set: EditSet = serde_json::from_str(&body)
                    .map_err(|e| ApiFail::internal("store", format!("edit set {id}: {e}")))?;
                edit::check_set(&cfg, &fp, &set)
                    .map_err(|e| ApiFail::new(StatusCode::UNPROCESSABLE_ENTITY, "wrong_model", format!("edit set {id}: {e}")))?;
                Ok(set)
            })
            .collect()
    })
    .await
}

#[utoipa::path(post, path = "/api/edit-sets", request_body = EditSet, responses((status = 200, body = ActiveEdit, description = "stored (or already there); its id goes in requests' `edits`"), (status = 400, body = ApiError), (status = 413, body = ApiError), (status = 422, body = ApiError, description = "made for a model that is not loaded, or values out of range")))]
pub async fn upload_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ActiveEdit>, ApiFail> {
    let st2 = st.clone();
    let body = body.map_err(super::body_error)?;
    blocking(move || {
        let set: EditSet = parse(Ok(body))?;
        let worker = st2
            .models
            .iter()
            .find(|w| w.fingerprint == set.model)
            .ok_or_else(|| {
                ApiFail::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_model",
                    format!(
                        "this edit set was made for model `{}`, which is not loaded here (loaded: {})",
                        clip(&set.model),
                        st2.models
                            .iter()
                            .map(|w| format!("{} = {}", w.summary.name, w.fingerprint))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        edit::check_set(&worker.text.config, &worker.fingerprint, &set)?;
        let info = describe(&set);
        let text = serde_json::to_string(&set).map_err(|e| ApiFail::internal("internal", e))?;
        st2.store.put_edit_set(&info.id, &set.model, &text)?;
        Ok(Json(info))
    })
    .await
}

async fn find_set(st: &Arc<AppState>, id: &str) -> Result<String, ApiFail> {
    if !is_id(id) {
        return Err(ApiFail::new(
            StatusCode::BAD_REQUEST,
            "bad_edit_id",
            format!("`{}` is not an edit-set id (20 hex digits)", clip(id)),
        ));
    }
    let (store, key) = (st.store.clone(), id.to_string());
    blocking(move || store.edit_set(&key).map_err(ApiFail::from))
        .await?
        .ok_or_else(|| {
            ApiFail::new(
                StatusCode::NOT_FOUND,
                "edit_set_not_found",
                format!("no edit set has id {id}"),
            )
        })
}

#[utoipa::path(get, path = "/api/edit-sets/{id}", params(("id" = String, Path)), responses((status = 200, body = EditSet, description = "the edit set, to save and upload again"), (status = 404, body = ApiError)))]
pub async fn download_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    let body = find_set(&st, &id).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"edit-{id}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/edit-sets/{id}/summary", params(("id" = String, Path)), responses((status = 200, body = ActiveEdit), (status = 404, body = ApiError)))]
pub async fn summary_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ActiveEdit>, ApiFail> {
    let body = find_set(&st, &id).await?;
    blocking(move || {
        let set: EditSet = serde_json::from_str(&body)
            .map_err(|e| ApiFail::internal("store", format!("edit set: {e}")))?;
        Ok(Json(describe(&set)))
    })
    .await
}
