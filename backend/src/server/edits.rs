//! Edits as values. An edit set (the exact before/after contents of the value
//! slots it changes) is stored once under the hash of its contents; requests
//! name the edit sets they run on. Making an edit (update a fact, erase
//! neurons, erase a relation) stores the new set and its measured outcome and
//! changes nothing for anyone else: the caller adds the new id to the `edits`
//! of its later requests (the web app keeps that list in the page's URL).

use super::results::{identify, run_now, Outcome, Planned};
use super::{blocking, budget, parse, ApiFail, AppState};
use crate::engine::attribution::Options;
use crate::engine::edit::{self, Applied, UpdateOptions};
use crate::engine::intervene::{probabilities, probabilities_and_ranks, prompt_effects};
use crate::engine::neurons::{attribute_fact_with, Thresholds};
use crate::engine::{relation, Neuron, Query};
use crate::models::{Hooks, Model};
use crate::store::{is_id, Store};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{
    ActiveEdit, AnswerChange, ApiError, EditMetrics, EditResponse, EditSet, EraseRelationRequest,
    EraseRequest, JobStatus, PerplexityChange, PromptEffect, UpdateFactRequest,
};
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
            format!(
                "`{}` is not an edit-set id (20 hex digits)",
                super::results::clip(bad)
            ),
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
                        super::results::clip(&set.model),
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
            format!(
                "`{}` is not an edit-set id (20 hex digits)",
                super::results::clip(id)
            ),
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

/// Per prompt, before and after applying `set` on top of the model as it is:
/// `P(answer)`, its rank and the top-1; with `new`, the same for a fact
/// update's new answer (one id per prompt).
fn before_after(
    m: &Model,
    set: &EditSet,
    qs: &[Query],
    new: Option<(&str, &[u32])>,
) -> crate::Result<Vec<PromptEffect>> {
    if qs.is_empty() {
        return Ok(Vec::new());
    }
    let targets: Vec<u32> = qs.iter().map(|q| q.target).collect();
    let lists: Vec<&[u32]> = std::iter::once(targets.as_slice())
        .chain(new.map(|(_, ids)| ids))
        .collect();
    // Ranks are read where the answer starts: a multi-token answer's first
    // step (P is the whole answer's, from `probabilities`).
    let firsts: Vec<Query> = qs.iter().map(|q| q.steps().swap_remove(0)).collect();
    let measure = |m: &Model| -> crate::Result<_> {
        Ok((
            probabilities(m, qs, &Hooks::default())?,
            probabilities_and_ranks(m, &firsts, &lists)?,
        ))
    };
    let (before, ranks_before) = measure(m)?;
    let applied = Applied::new(m, std::slice::from_ref(set))?;
    let (after, ranks_after) = measure(m)?;
    drop(applied);
    let mut effects = prompt_effects(m, qs, (&before.0, &before.1), (&after.0, &after.1));
    for (i, e) in effects.iter_mut().enumerate() {
        e.rank_before = Some(ranks_before[0][i].1);
        e.rank_after = Some(ranks_after[0][i].1);
        e.new_answer = new.map(|(token, _)| AnswerChange {
            token: token.to_string(),
            p_before: ranks_before[1][i].0,
            p_after: ranks_after[1][i].0,
            rank_before: ranks_before[1][i].1,
            rank_after: ranks_after[1][i].1,
        });
    }
    Ok(effects)
}

fn edit_outcome(
    id: String,
    set: EditSet,
    metrics: EditMetrics,
    random: Option<EditMetrics>,
    predictions: Vec<PromptEffect>,
) -> Outcome {
    Outcome::Edit {
        response: Box::new(EditResponse {
            id,
            edit: describe(&set),
            metrics,
            random,
            predictions,
        }),
        set: Box::new(set),
    }
}

/// Check a fact update and plan it.
pub(super) fn plan_update(st: &AppState, mut req: UpdateFactRequest) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    check_ids(st, &req.edits)?;
    let qs = budget::queries(st, worker, &req.prompts, &req.target, Default::default())?;
    // The old and the new answer must be one token (on every prompt).
    crate::engine::edit::one_token(&worker.text, &qs)?;
    let new_ids = qs
        .iter()
        .map(|q| crate::predict::target_id(&worker.text, &q.cloze, &req.new_target))
        .collect::<crate::Result<Vec<u32>>>()?;
    let eval = budget::eval_queries(st, worker, &req.eval)?;
    budget::steps(st, req.steps)?;
    budget::work(st, worker, &qs, req.steps)?;
    budget::count("k", req.k, st.limits.max_k, "")?;
    budget::finite("λ1", req.lambda1, st.limits.max_lambda)?;
    budget::finite("λ2", req.lambda2, st.limits.max_lambda)?;
    req.model = None;
    let (canonical, id) = identify("update", &worker.fingerprint, &req)?;
    let id2 = id.clone();
    Ok(Planned {
        kind: "update",
        id,
        worker: index,
        request: canonical,
        edits: req.edits.clone(),
        total: req.prompts.len(),
        work: Box::new(move |m, progress| {
            let opts = Options {
                steps: req.steps,
                ..Options::default()
            };
            let fact = attribute_fact_with(m, qs.clone(), &opts, progress)?;
            let uo = UpdateOptions {
                k: req.k,
                lambda1: req.lambda1,
                lambda2: req.lambda2,
                norm_scaled: req.norm_scaled,
            };
            let desc = format!(
                "update {:?} -> {:?} (k = {}, λ1 = {}, λ2 = {}{})",
                req.target,
                req.new_target,
                req.k,
                req.lambda1,
                req.lambda2,
                if req.norm_scaled { ", norm-scaled" } else { "" }
            );
            let plan = edit::plan_update(
                m,
                &fact,
                &req.target,
                &req.new_target,
                &Thresholds::default(),
                &[],
                &uo,
                &eval,
                desc,
            )?;
            let new = (req.new_target.trim(), new_ids.as_slice());
            let predictions = before_after(m, &plan.edit, &qs, Some(new))?;
            Ok(edit_outcome(
                id2,
                plan.edit,
                plan.metrics,
                Some(plan.random),
                predictions,
            ))
        }),
    })
}

#[utoipa::path(post, path = "/api/edits/update", request_body = UpdateFactRequest, responses((status = 200, body = EditResponse, description = "the new edit set (stored; name it in later requests' `edits`) and its effect"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn update_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan_update(&st, parse(body)?)?;
    edit_response(run_now(&st, planned).await?)
}

fn edit_response(done: kn_shared::StoredResult) -> Result<Response, ApiFail> {
    let edit = done
        .edit
        .ok_or_else(|| ApiFail::internal("store", "an edit's id holds another kind of result"))?;
    Ok(Json(edit).into_response())
}

/// `POST /api/jobs/update-fact`: the fact update as a job with progress; the
/// final status carries the edit.
#[utoipa::path(post, path = "/api/jobs/update-fact", request_body = UpdateFactRequest, responses((status = 202, body = JobStatus, description = "queued; the final status carries the edit"), (status = 200, body = JobStatus, description = "already stored"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn update_job_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan_update(&st, parse(body)?)?;
    super::jobs::launch(&st, planned).await
}

/// Check an erase and plan it.
pub(super) fn plan_erase(st: &AppState, mut req: EraseRequest) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    check_ids(st, &req.edits)?;
    budget::count(
        "the number of neurons",
        req.neurons.len(),
        st.limits.max_neurons,
        "",
    )?;
    crate::engine::intervene::validate(&worker.text.config, &req.neurons)?;
    let with: edit::EraseWith = req.with.parse()?;
    let eval = budget::eval_queries(st, worker, &req.eval)?;
    req.model = None;
    let (canonical, id) = identify("erase", &worker.fingerprint, &req)?;
    let id2 = id.clone();
    Ok(Planned {
        kind: "erase",
        id,
        worker: index,
        request: canonical,
        edits: req.edits.clone(),
        total: 1,
        work: Box::new(move |m, _| {
            let fp = edit::fingerprint(m);
            let es = edit::erase(
                m,
                &req.neurons,
                with,
                format!("erase {} neurons ({})", req.neurons.len(), req.with),
            )?;
            let metrics = edit::measure(m, &es, &fp, &[], None, &eval)?;
            let predictions = before_after(m, &es, &eval, None)?;
            Ok(edit_outcome(id2, es, metrics, None, predictions))
        }),
    })
}

#[utoipa::path(post, path = "/api/edits/erase", request_body = EraseRequest, responses((status = 200, body = EditResponse, description = "the new edit set (stored; name it in later requests' `edits`) and its effect"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn erase_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan_erase(&st, parse(body)?)?;
    edit_response(run_now(&st, planned).await?)
}

/// Check a relation erasure and plan it: the sampled facts' prompts and the
/// side-effect prompts are built here, so the whole cost is known up front.
pub(super) fn plan_erase_relation(
    st: &AppState,
    mut req: EraseRelationRequest,
) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    check_ids(st, &req.edits)?;
    let data = super::dataset::dataset(st)?;
    let rel = data
        .relation(&req.relation)
        .map_err(|e| ApiFail::new(StatusCode::NOT_FOUND, "unknown_relation", e.to_string()))?;
    budget::count("facts", req.facts, st.limits.max_facts, "")?;
    budget::count("top (neurons erased)", req.top, st.limits.max_neurons, "")?;
    budget::steps(st, req.steps)?;
    let with: edit::EraseWith = req.with.parse()?;
    let sample = relation::sample(&worker.text, rel, req.facts, req.seed)?;
    let prompts: Vec<Query> = sample.iter().flatten().cloned().collect();
    if let Some(q) = prompts
        .iter()
        .find(|q| q.cloze.ids.len() > st.limits.max_tokens)
    {
        return Err(ApiFail::limit(format!(
            "the prompt `{}` is {} tokens; this server takes at most {} tokens per prompt (kn serve --max-tokens)",
            q.prompt,
            q.cloze.ids.len(),
            st.limits.max_tokens
        )));
    }
    budget::work(st, worker, &prompts, req.steps)?;
    let side = relation::side_prompts(
        &worker.text,
        data.relations.iter().filter(|r| r.id != rel.id),
    );
    let (rel_id, rel_label) = (rel.id.clone(), rel.label.clone());
    req.model = None;
    let (canonical, id) = identify("erase-relation", &worker.fingerprint, &req)?;
    let id2 = id.clone();
    let total = sample.len();
    Ok(Planned {
        kind: "erase-relation",
        id,
        worker: index,
        request: canonical,
        edits: req.edits.clone(),
        total,
        work: Box::new(move |m, progress| {
            let opts = Options {
                steps: req.steps,
                ..Options::default()
            };
            let neurons = relation::erase_neurons(m, &sample, req.top, &opts, progress)?;
            let es = edit::erase(
                m,
                &neurons,
                with,
                format!(
                    "erase {rel_id} ({rel_label}): {} neurons from {} facts",
                    neurons.len(),
                    sample.len()
                ),
            )?;
            let acc = |qs: &[Query]| -> crate::Result<f64> {
                let (_, top) = probabilities(m, qs, &Hooks::default())?;
                Ok(
                    top.iter().zip(qs).filter(|(t, q)| **t == q.target).count() as f64
                        / qs.len() as f64,
                )
            };
            // (accuracy, perplexity) on each set, before and after.
            let mut sets = vec![(format!("{rel_id} (erased relation)"), &prompts)];
            if !side.is_empty() {
                sets.push(("other relations".to_string(), &side));
            }
            let mut before = Vec::new();
            for (_, qs) in &sets {
                before.push((acc(qs)?, edit::perplexity(m, qs)?));
            }
            let applied = Applied::new(m, std::slice::from_ref(&es))?;
            let mut after = Vec::new();
            for (_, qs) in &sets {
                after.push((acc(qs)?, edit::perplexity(m, qs)?));
            }
            drop(applied);
            let metrics = EditMetrics {
                // Share of the erased relation's prompts no longer answered correctly.
                change_rate: 1.0 - after[0].0,
                success_rate: 0.0,
                change_rate_known: None,
                prompts: prompts.len(),
                known_prompts: (before[0].0 * prompts.len() as f64).round() as usize,
                perplexity: sets
                    .iter()
                    .zip(before.iter().zip(&after))
                    .map(|((name, qs), (b, a))| PerplexityChange {
                        set: format!(
                            "{name}, accuracy {:.0}% -> {:.0}%",
                            100.0 * b.0,
                            100.0 * a.0
                        ),
                        prompts: qs.len(),
                        before: b.1,
                        after: a.1,
                    })
                    .collect(),
            };
            let predictions = before_after(m, &es, &prompts, None)?;
            Ok(edit_outcome(id2, es, metrics, None, predictions))
        }),
    })
}

/// `POST /api/jobs/erase-relation`: SPEC's relation erasure as a job. The final
/// status carries the new edit set and its effect.
#[utoipa::path(post, path = "/api/jobs/erase-relation", request_body = EraseRelationRequest, responses((status = 202, body = JobStatus, description = "queued; the final status carries the edit"), (status = 200, body = JobStatus, description = "already stored"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn erase_relation_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan_erase_relation(&st, parse(body)?)?;
    super::jobs::launch(&st, planned).await
}
