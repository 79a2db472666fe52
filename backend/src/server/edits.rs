//! Making edits: update a fact, erase neurons, erase a relation. Each stores
//! the new edit set (see [`super::edit_sets`]) and its measured outcome and
//! changes nothing for anyone else: the caller adds the new id to the `edits`
//! of its later requests (the web app keeps that list in the page's URL).

use super::edit_sets::{check_ids, describe};
use super::plan::{Outcome, Planned};
use super::run::run_now;
use super::{budget, parse, ApiFail, AppState};
use crate::engine::attribution::Options;
use crate::engine::edit::{self, Applied, UpdateOptions};
use crate::engine::edit_strength;
use crate::engine::intervene::relative_change;
use crate::engine::readout::{probabilities, probabilities_and_ranks, prompt_effects};
use crate::engine::selection::{attribute_fact_with, Thresholds};
use crate::engine::{relation, Query};
use crate::models::{Hooks, Model};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{
    AnswerChange, ApiError, ComputeRequest, EditMetrics, EditResponse, EditSet, EraseOutcome,
    EraseRelationRequest, EraseRequest, JobStatus, PerplexityChange, PromptEffect,
    UpdateFactRequest,
};
use std::sync::Arc;

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

/// An edit's outcome (its permalink id is filled in when it is stored).
fn response(
    set: &EditSet,
    metrics: EditMetrics,
    random: Option<EditMetrics>,
    predictions: Vec<PromptEffect>,
) -> EditResponse {
    EditResponse {
        id: String::new(),
        edit: describe(set),
        metrics,
        random,
        predictions,
        side_effects: Vec::new(),
        erase: None,
        strength: None,
    }
}

/// Check a fact update and plan it.
pub(super) fn plan_update(st: &AppState, req: UpdateFactRequest) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    check_ids(st, &req.edits)?;
    let qs = budget::queries(st, worker, &req.prompts, &req.target, Default::default())?;
    // The old and the new answer must be one token (on every prompt).
    crate::engine::one_token(&worker.text, &qs)?;
    let new_ids = qs
        .iter()
        .map(|q| crate::cloze::target_id(&worker.text, &q.cloze, &req.new_target))
        .collect::<crate::Result<Vec<u32>>>()?;
    let eval = budget::eval_queries(st, worker, &req.eval)?;
    budget::steps(st, req.steps)?;
    budget::work(st, worker, &qs, req.steps)?;
    budget::count("k", req.k, st.limits.max_k, "")?;
    budget::finite("λ1", req.lambda1, st.limits.max_lambda)?;
    budget::finite("λ2", req.lambda2, st.limits.max_lambda)?;
    let side = if req.search {
        Some(strength_side(st, worker, &eval)?)
    } else {
        None
    };
    let request = ComputeRequest::Update(req.clone());
    let total = req.prompts.len();
    let work = Box::new(move |m: &Model, progress: super::plan::Progress| {
        let fact = attribute_fact_with(m, qs.clone(), &Options::with_steps(req.steps), progress)?;
        let mut req = req.clone();
        let strength = match &side {
            Some((name, side)) => {
                let s = search_strength(m, &fact, &req, &new_ids, (name, side))?;
                // The searched edit is the smallest λ2 that works, or the form's.
                req.lambda2 = s.chosen.unwrap_or(req.lambda2);
                Some(s)
            }
            None => None,
        };
        let update = edit::FactUpdate {
            target: &req.target,
            new_target: &req.new_target,
            thresholds: Thresholds::default(),
            exclude: &[],
            opts: update_options(&req),
            eval: &eval,
            description: update_description(&req),
        };
        let plan = edit::plan_update(m, &fact, &update)?;
        let new = (req.new_target.trim(), new_ids.as_slice());
        let predictions = before_after(m, &plan.edit, &qs, Some(new))?;
        let r = EditResponse {
            strength,
            ..response(&plan.edit, plan.metrics, Some(plan.random), predictions)
        };
        Ok(Outcome::edit(r, plan.edit))
    });
    Planned::new(request, &worker.fingerprint, index, total, work)
}

/// The prompts an edit-strength search measures perplexity on: the request's
/// side-effect prompts, or one ParaRel prompt from each of up to 20 relations.
fn strength_side(
    st: &AppState,
    worker: &super::ModelWorker,
    eval: &[Query],
) -> Result<(String, Vec<Query>), ApiFail> {
    if !eval.is_empty() {
        return Ok(("the side-effect prompts given".into(), eval.to_vec()));
    }
    let data = super::dataset::dataset(st)?;
    let side = relation::side_prompts(&worker.text, data.relations.iter());
    if side.is_empty() {
        return Err(ApiFail::invalid(
            "an edit-strength search needs side-effect prompts: give some (prompt | answer)",
        ));
    }
    let name = format!("one ParaRel prompt from each of {} relations", side.len());
    Ok((name, side))
}

/// [`edit_strength::search`] over the grid, within the server's `λ` budget.
fn search_strength(
    m: &Model,
    fact: &crate::engine::selection::FactAttribution,
    req: &UpdateFactRequest,
    new_ids: &[u32],
    (name, side): (&str, &[Query]),
) -> crate::Result<kn_shared::StrengthSearch> {
    let neurons = edit::update_neurons(m, fact, &req.target, &Thresholds::default(), &[])?;
    let search = edit_strength::Search {
        neurons: &neurons,
        prompts: &fact.queries,
        new_ids,
        opts: update_options(req),
        side,
        side_name: name.to_string(),
    };
    edit_strength::search(m, &search, &kn_shared::STRENGTH_GRID)
}

fn update_options(req: &UpdateFactRequest) -> UpdateOptions {
    UpdateOptions {
        k: req.k,
        lambda1: req.lambda1,
        lambda2: req.lambda2,
        norm_scaled: req.norm_scaled,
    }
}

/// How the edit set describes itself.
fn update_description(req: &UpdateFactRequest) -> String {
    format!(
        "update {:?} -> {:?} (k = {}, λ1 = {}, λ2 = {}{})",
        req.target,
        req.new_target,
        req.k,
        req.lambda1,
        req.lambda2,
        if req.norm_scaled { ", norm-scaled" } else { "" }
    )
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
        .edit()
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
pub(super) fn plan_erase(st: &AppState, req: EraseRequest) -> Result<Planned, ApiFail> {
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
    let fact = erased_fact(st, worker, &req)?;
    let eval = budget::eval_queries(st, worker, &req.eval)?;
    let request = ComputeRequest::Erase(req.clone());
    let work = Box::new(move |m: &Model, _: super::plan::Progress| {
        let fp = edit::fingerprint(m);
        let es = edit::erase(m, &req.neurons, with, erase_description(&req))?;
        let metrics = edit::measure(m, &es, &fp, &fact, None, &eval)?;
        let predictions = before_after(m, &es, &fact, None)?;
        let side_effects = before_after(m, &es, &eval, None)?;
        let outcome = erase_outcome(&req.target, &metrics, &predictions, &side_effects);
        // An erase that names no fact keeps its side effects where erases
        // always had them (a stored request recomputes to the same outcome).
        let (predictions, side_effects) = if fact.is_empty() {
            (side_effects, Vec::new())
        } else {
            (predictions, side_effects)
        };
        let r = EditResponse {
            side_effects,
            erase: Some(outcome),
            ..response(&es, metrics, None, predictions)
        };
        Ok(Outcome::edit(r, es))
    });
    Planned::new(request, &worker.fingerprint, index, 1, work)
}

/// The fact an erase is for (its answer and prompts: both or neither).
fn erased_fact(
    st: &AppState,
    worker: &super::ModelWorker,
    req: &EraseRequest,
) -> Result<Vec<Query>, ApiFail> {
    match (req.target.trim().is_empty(), req.prompts.is_empty()) {
        (true, true) => Ok(Vec::new()),
        (false, false) => {
            budget::queries(st, worker, &req.prompts, &req.target, Default::default())
        }
        (true, false) => Err(ApiFail::invalid(
            "the erased fact's prompts are given without its answer: give `target` too",
        )),
        (false, true) => Err(ApiFail::invalid(
            "the erased fact's answer is given without its prompts: give `prompts` too",
        )),
    }
}

fn erase_description(req: &EraseRequest) -> String {
    let of = if req.target.trim().is_empty() {
        String::new()
    } else {
        format!(" of {:?}", req.target.trim())
    };
    format!("erase {} neurons{of} ({})", req.neurons.len(), req.with)
}

/// An erase in its own terms, from what [`before_after`] measured.
fn erase_outcome(
    target: &str,
    m: &EditMetrics,
    fact: &[PromptEffect],
    side: &[PromptEffect],
) -> EraseOutcome {
    let (before, after): (Vec<f64>, Vec<f64>) =
        fact.iter().map(|p| (p.p_before, p.p_after)).unzip();
    EraseOutcome {
        erased: format!("the fact {:?}", target.trim()),
        prompts: fact.len(),
        known: m.known_prompts,
        forgotten: (m.change_rate_known.unwrap_or(0.0) * m.known_prompts as f64).round() as usize,
        p_change: (!fact.is_empty()).then(|| relative_change(&before, &after)),
        side_prompts: side.len(),
        side_changed: side
            .iter()
            .filter(|p| p.top1_before != p.top1_after)
            .count(),
    }
}

#[utoipa::path(post, path = "/api/edits/erase", request_body = EraseRequest, responses((status = 200, body = EditResponse, description = "the new edit set (stored; name it in later requests' `edits`) and its effect"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn erase_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan_erase(&st, parse(body)?)?;
    edit_response(run_now(&st, planned).await?)
}

/// A relation erasure's inputs, all built while planning.
struct RelationErasure {
    rel_id: String,
    rel_label: String,
    /// The sampled facts' prompts, per fact.
    sample: Vec<Vec<Query>>,
    /// The same, flat: the erased relation's prompts.
    prompts: Vec<Query>,
    /// Prompts of the other relations (the side effects).
    side: Vec<Query>,
    with: edit::EraseWith,
}

/// Check a relation erasure and plan it: the sampled facts' prompts and the
/// side-effect prompts are built here, so the whole cost is known up front.
pub(super) fn plan_erase_relation(
    st: &AppState,
    req: EraseRelationRequest,
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
    let erasure = RelationErasure {
        rel_id: rel.id.clone(),
        rel_label: rel.label.clone(),
        sample,
        prompts,
        side,
        with,
    };
    let total = erasure.sample.len();
    let request = ComputeRequest::EraseRelation(req.clone());
    let work = Box::new(move |m: &Model, progress: super::plan::Progress| {
        erase_relation(m, &req, &erasure, progress)
    });
    Planned::new(request, &worker.fingerprint, index, total, work)
}

/// A relation erasure: its facts' most frequent knowledge neurons erased, and
/// the accuracy and perplexity of the relation and of the others before and
/// after.
fn erase_relation(
    m: &Model,
    req: &EraseRelationRequest,
    e: &RelationErasure,
    progress: super::plan::Progress,
) -> crate::Result<Outcome> {
    let neurons = relation::erase_neurons(
        m,
        &e.sample,
        req.top,
        &Options::with_steps(req.steps),
        progress,
    )?;
    let es = edit::erase(
        m,
        &neurons,
        e.with,
        format!(
            "erase {} ({}): {} neurons from {} facts",
            e.rel_id,
            e.rel_label,
            neurons.len(),
            e.sample.len()
        ),
    )?;
    // P(answer) and top-1 on each set, before and after.
    let mut sets = vec![(format!("{} (erased relation)", e.rel_id), &e.prompts)];
    if !e.side.is_empty() {
        sets.push(("other relations".to_string(), &e.side));
    }
    let measure = |m: &Model| -> crate::Result<Vec<(Vec<f64>, Vec<u32>)>> {
        sets.iter()
            .map(|(_, qs)| probabilities(m, qs, &Hooks::default()))
            .collect()
    };
    let before = measure(m)?;
    let applied = Applied::new(m, std::slice::from_ref(&es))?;
    let after = measure(m)?;
    drop(applied);
    let accuracy = |(_, top): &(Vec<f64>, Vec<u32>), qs: &[Query]| {
        top.iter().zip(qs).filter(|(t, q)| **t == q.target).count() as f64 / qs.len() as f64
    };
    let (acc_before, acc_after) = (
        accuracy(&before[0], &e.prompts),
        accuracy(&after[0], &e.prompts),
    );
    let metrics = EditMetrics {
        // Share of the erased relation's prompts no longer answered correctly.
        change_rate: 1.0 - acc_after,
        success_rate: 0.0,
        change_rate_known: None,
        prompts: e.prompts.len(),
        known_prompts: (acc_before * e.prompts.len() as f64).round() as usize,
        perplexity: sets
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((name, qs), (b, a))| PerplexityChange {
                set: format!(
                    "{name}, accuracy {:.0}% -> {:.0}%",
                    100.0 * accuracy(b, qs),
                    100.0 * accuracy(a, qs)
                ),
                prompts: qs.len(),
                before: edit::perplexity_of(&b.0),
                after: edit::perplexity_of(&a.0),
            })
            .collect(),
    };
    let known_then_lost = (0..e.prompts.len())
        .filter(|&i| before[0].1[i] == e.prompts[i].target && after[0].1[i] != e.prompts[i].target)
        .count();
    let side = before.get(1).zip(after.get(1));
    let outcome = EraseOutcome {
        erased: format!("relation {} ({})", e.rel_id, e.rel_label),
        prompts: e.prompts.len(),
        known: metrics.known_prompts,
        forgotten: known_then_lost,
        p_change: Some(relative_change(&before[0].0, &after[0].0)),
        side_prompts: e.side.len(),
        side_changed: side.map_or(0, |(b, a)| {
            b.1.iter().zip(&a.1).filter(|(x, y)| x != y).count()
        }),
    };
    let predictions = before_after(m, &es, &e.prompts, None)?;
    let r = EditResponse {
        erase: Some(outcome),
        ..response(&es, metrics, None, predictions)
    };
    Ok(Outcome::edit(r, es))
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
