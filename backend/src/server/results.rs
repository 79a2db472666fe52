//! Stored results and their permalinks.
//!
//! Every computation the server keeps (an analysis, a fact update, an erase, a
//! relation erasure) is first *planned* from the request alone: checked
//! against the budgets, its id derived as a hash of the model's fingerprint and
//! the canonical request (which names the edit sets it runs on). Nothing that
//! can change between the request and the work enters the id, so a result can
//! never be stored under another computation's id. The plan then runs as a
//! synchronous request or as a job; its outcome is stored under the id, and
//! `GET /api/results/{id}` reopens it, or recomputes it from its stored
//! request if the store evicted it.

use super::{blocking, ApiFail, AppState};
use crate::models::Model;
use crate::store::{is_id, Store};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{AnalysisResult, ApiError, EditResponse, EditSet, JobStatus, StoredResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// A progress callback: `(done, total)`; `false` asks the work to stop.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;

/// The work of a plan, run on the model's thread.
pub type Work = Box<dyn FnOnce(&Model, Progress) -> crate::Result<Outcome> + Send>;

/// What a computation produces.
pub enum Outcome {
    Analysis(Box<AnalysisResult>),
    Methods(Box<kn_shared::methods::MethodsReport>),
    /// A new edit set (stored beside the outcome) and its measured effect.
    Edit {
        response: Box<EditResponse>,
        set: Box<EditSet>,
    },
}

/// A computation ready to run: where, on what, and under which id.
pub struct Planned {
    /// `analyze`, `update`, `erase`, `erase-relation` or `methods`.
    pub kind: &'static str,
    pub id: String,
    /// Index of the model's worker.
    pub worker: usize,
    /// The canonical request (model name left out: the fingerprint names the
    /// weights).
    pub request: serde_json::Value,
    /// Edit sets it runs on, in order.
    pub edits: Vec<String>,
    /// Units of progress (prompts or facts).
    pub total: usize,
    pub work: Work,
}

/// The canonical form and id of a request for `kind` on the model with
/// `fingerprint`. `request` must already have its model name removed.
pub fn identify<T: Serialize>(
    kind: &str,
    fingerprint: &str,
    request: &T,
) -> Result<(serde_json::Value, String), ApiFail> {
    let canonical = serde_json::to_value(request).map_err(|e| ApiFail::internal("internal", e))?;
    let id = Store::id(kind, fingerprint, &canonical);
    Ok((canonical, id))
}

/// `text` read back as `T`: a stored result that cannot be read back (a NaN
/// written as `null`) must never be stored.
fn reads_back<T: DeserializeOwned>(text: &str) -> Result<T, ApiFail> {
    serde_json::from_str(text).map_err(|e| {
        ApiFail::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "non_finite",
            format!("the computation produced numbers that are not finite (NaN or infinity), so nothing was stored ({e}); the edit sets or settings drive the model out of range"),
        )
    })
}

/// Store an outcome under `id` (and its new edit set under its own id).
pub async fn save(
    st: &Arc<AppState>,
    kind: &str,
    id: &str,
    model: &str,
    request: &serde_json::Value,
    outcome: Outcome,
) -> Result<(), ApiFail> {
    let store = st.store.clone();
    let (kind, id, model, request) = (
        kind.to_string(),
        id.to_string(),
        model.to_string(),
        request.to_string(),
    );
    blocking(move || {
        let text = match &outcome {
            Outcome::Analysis(r) => {
                let text = to_text(r)?;
                reads_back::<AnalysisResult>(&text)?;
                text
            }
            Outcome::Methods(r) => {
                let text = to_text(r)?;
                reads_back::<kn_shared::methods::MethodsReport>(&text)?;
                text
            }
            Outcome::Edit { response, set } => {
                let text = to_text(response)?;
                reads_back::<EditResponse>(&text)?;
                let body = to_text(set)?;
                reads_back::<EditSet>(&body)?;
                store
                    .put_edit_set(&response.edit.id, &set.model, &body)
                    .map_err(ApiFail::from)?;
                text
            }
        };
        store
            .put(&id, &kind, &model, &request, &text)
            .map_err(ApiFail::from)
    })
    .await
}

fn to_text<T: Serialize>(x: &T) -> Result<String, ApiFail> {
    serde_json::to_string(x).map_err(|e| ApiFail::internal("internal", e))
}

/// Read a stored result (off the async runtime).
pub async fn lookup(st: &Arc<AppState>, id: &str) -> Result<Option<crate::store::Stored>, ApiFail> {
    let (store, id) = (st.store.clone(), id.to_string());
    blocking(move || store.lookup(&id).map_err(ApiFail::from)).await
}

/// A stored result in its shared form, or `None` when absent or evicted.
pub async fn stored(st: &Arc<AppState>, id: &str) -> Result<Option<StoredResult>, ApiFail> {
    match lookup(st, id).await? {
        Some(s) => match &s.result {
            Some(_) => Ok(Some(shape(id, &s)?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// The final status of a job whose result is stored.
pub async fn finished(st: &Arc<AppState>, id: &str) -> Result<Option<JobStatus>, ApiFail> {
    Ok(stored(st, id).await?.map(|s| {
        let total = s
            .request
            .get("prompts")
            .and_then(|p| p.as_array())
            .map(Vec::len)
            .or_else(|| {
                s.request
                    .get("facts")
                    .and_then(|f| f.as_u64())
                    .map(|f| f as usize)
            })
            .unwrap_or(1);
        JobStatus {
            id: id.to_string(),
            state: "done".into(),
            done: total,
            total,
            error: None,
            edit: s.edit,
        }
    }))
}

fn shape(id: &str, s: &crate::store::Stored) -> Result<StoredResult, ApiFail> {
    let text = s.result.as_deref().unwrap_or_default();
    let unreadable = |e: serde_json::Error| {
        ApiFail::internal("store", format!("stored result {id} is unreadable: {e}"))
    };
    let request = serde_json::from_str(&s.request).map_err(unreadable)?;
    let mut out = StoredResult {
        id: id.to_string(),
        kind: s.kind.clone(),
        cached: true,
        request,
        result: None,
        edit: None,
        methods: None,
    };
    match s.kind.as_str() {
        "analyze" => out.result = Some(serde_json::from_str(text).map_err(unreadable)?),
        "methods" => out.methods = Some(serde_json::from_str(text).map_err(unreadable)?),
        _ => out.edit = Some(serde_json::from_str(text).map_err(unreadable)?),
    }
    Ok(out)
}

/// Run a plan synchronously: the stored result if there is one, else compute
/// (cancelled if the client goes away), store and return it.
pub async fn run_now(st: &Arc<AppState>, planned: Planned) -> Result<StoredResult, ApiFail> {
    if let Some(mut found) = stored(st, &planned.id).await? {
        found.cached = true;
        return Ok(found);
    }
    let sets = super::edits::resolve(st, planned.worker, &planned.edits).await?;
    let Planned {
        kind,
        id,
        worker,
        request,
        work,
        ..
    } = planned;
    let w = &st.models[worker];
    let outcome = w
        .run(sets, move |m, cancel| {
            work(m, &mut super::worker::until_cancelled(cancel))
        })
        .await?;
    let mut out = StoredResult {
        id: id.clone(),
        kind: kind.to_string(),
        cached: false,
        request: request.clone(),
        result: None,
        edit: None,
        methods: None,
    };
    match &outcome {
        Outcome::Analysis(r) => out.result = Some((**r).clone()),
        Outcome::Methods(r) => out.methods = Some((**r).clone()),
        Outcome::Edit { response, .. } => out.edit = Some((**response).clone()),
    }
    save(st, kind, &id, &w.summary.name, &request, outcome).await?;
    Ok(out)
}

#[utoipa::path(get, path = "/api/results/{id}", params(("id" = String, Path, description = "20 hex digits")), responses((status = 200, body = StoredResult), (status = 202, body = JobStatus, description = "the result was evicted from the store and is being recomputed from its request: follow /api/jobs/{id}/events, then fetch it again"), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
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
    let request: serde_json::Value = serde_json::from_str(&found.request)
        .map_err(|e| ApiFail::internal("store", format!("stored request {id}: {e}")))?;
    match replan(&st, &found.kind, &request, &id)? {
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

/// Plan a stored request again on the loaded model it was made for (the one
/// whose plan has the same id).
fn replan(
    st: &Arc<AppState>,
    kind: &str,
    request: &serde_json::Value,
    id: &str,
) -> Result<Option<Planned>, ApiFail> {
    fn parse<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiFail> {
        serde_json::from_value(v).map_err(|e| ApiFail::internal("store", e))
    }
    for w in &st.models {
        let mut r = request.clone();
        if let Some(obj) = r.as_object_mut() {
            obj.insert("model".into(), w.summary.name.clone().into());
        }
        let planned = match kind {
            "analyze" => super::analysis::plan(st, parse(r)?)?,
            "update" => super::edits::plan_update(st, parse(r)?)?,
            "erase" => super::edits::plan_erase(st, parse(r)?)?,
            "erase-relation" => super::edits::plan_erase_relation(st, parse(r)?)?,
            "methods" => super::methods::plan(st, parse(r)?)?,
            other => {
                return Err(ApiFail::internal(
                    "store",
                    format!("stored result {id} has unknown kind `{other}`"),
                ))
            }
        };
        if planned.id == id {
            return Ok(Some(planned));
        }
    }
    Ok(None)
}

/// At most 40 characters of user input, for error messages.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN is written as `null`, which cannot be read back: such an outcome
    /// is refused (422 `non_finite`) instead of stored.
    #[test]
    fn outcomes_with_non_finite_numbers_are_refused() {
        let response = EditResponse {
            id: "0123456789abcdef0123".into(),
            edit: kn_shared::ActiveEdit {
                id: "0123456789abcdef0123".into(),
                model: "m".into(),
                description: "d".into(),
                neurons: vec![],
            },
            metrics: kn_shared::EditMetrics {
                change_rate: 0.5,
                success_rate: 0.0,
                perplexity: vec![kn_shared::PerplexityChange {
                    set: "eval".into(),
                    prompts: 1,
                    before: 3.0,
                    after: f64::NAN,
                }],
                change_rate_known: None,
                prompts: 0,
                known_prompts: 0,
            },
            random: None,
            predictions: vec![],
        };
        let text = to_text(&response).unwrap();
        let fail = reads_back::<EditResponse>(&text).unwrap_err();
        assert_eq!(fail.code(), "non_finite");
        let mut fine = response;
        fine.metrics.perplexity[0].after = 4.0;
        assert!(reads_back::<EditResponse>(&to_text(&fine).unwrap()).is_ok());
    }
}
