//! Reading the model: `POST /api/predict`, and a fact's analysis
//! (`POST /api/analyze`, or `POST /api/jobs/analyze` as a job).

use super::edit_sets;
use super::plan::{Outcome, Planned, Progress};
use super::run::run_now;
use super::{budget, parse, ApiFail, AppState};
use crate::cloze::cloze;
use crate::engine::analysis::analyze_with;
use crate::engine::selection::Thresholds;
use crate::models::Model;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{
    clip, AnalyzeRequest, AnalyzeResponse, ApiError, ComputeRequest, CostEstimate, JobStatus,
    NeuronCard, NeuronRequest, PredictRequest, PredictResponse, PromptActivation, TokenActivation,
};
use std::sync::Arc;

#[utoipa::path(post, path = "/api/predict", request_body = PredictRequest, responses((status = 200, body = PredictResponse), (status = 400, body = ApiError, description = "malformed body"), (status = 404, body = ApiError, description = "unknown model or edit set"), (status = 413, body = ApiError), (status = 422, body = ApiError, description = "a prompt or target the model cannot take, or a request over a limit"), (status = 429, body = ApiError, description = "queue full; see Retry-After")))]
pub async fn predict_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: PredictRequest = parse(body)?;
    let (index, worker) = st.worker(req.model.as_deref())?;
    budget::count("top_k", req.top_k, st.limits.max_top_k, "")?;
    let c = cloze(&worker.text, &req.prompt)?;
    if c.ids.len() > st.limits.max_tokens {
        return Err(ApiFail::limit(format!(
            "the prompt is {} tokens; this server takes at most {} tokens per prompt (kn serve --max-tokens)",
            c.ids.len(),
            st.limits.max_tokens
        )));
    }
    if let Some(t) = &req.target {
        // The answer's pieces (a multi-token answer adds its steps' tokens).
        budget::query(&st, worker, &req.prompt, t, "the prompt")?;
    }
    edit_sets::check_ids(&st, &req.edits)?;
    let sets = edit_sets::resolve(&st, index, &req.edits).await?;
    let resp = worker.predict(sets, req).await?;
    Ok(Json(resp).into_response())
}

/// Check an analysis request and plan it.
pub(super) fn plan(st: &AppState, mut req: AnalyzeRequest) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    edit_sets::check_ids(st, &req.edits)?;
    let queries = budget::queries(st, worker, &req.prompts, &req.target, req.answer_positions)?;
    if !queries.iter().any(|q| q.is_chain()) {
        // One-token answers: the positions change nothing, so one id.
        req.answer_positions = Default::default();
    }
    budget::steps(st, req.steps)?;
    let units = budget::work(st, worker, &queries, req.steps)?;
    // The controls: not the fact itself, each within the prompt budgets.
    crate::engine::specificity::check((&req.target, &req.prompts), &req.controls)?;
    budget::controls(st, worker, &req.controls, Default::default())?;
    Thresholds {
        t: req.t,
        p: req.p,
        min_prompts: req.min_prompts,
    }
    .validate()?;
    let request = ComputeRequest::Analyze(req.clone());
    req.model = Some(worker.summary.name.clone());
    let summary = worker.summary.clone();
    let total = req.prompts.len();
    let work = Box::new(move |m: &Model, progress: Progress| {
        Ok(Outcome::analysis(analyze_with(m, &req, summary, progress)?))
    });
    Ok(Planned::new(request, &worker.fingerprint, index, total, work)?.with_units(units))
}

/// `POST /api/estimate/analyze`: what an analysis would cost on this server,
/// checked as the analysis would be (a bad request gets the same 4xx), in
/// work units and, once a job has been timed here, in seconds.
#[utoipa::path(post, path = "/api/estimate/analyze", request_body = AnalyzeRequest, responses((status = 200, body = CostEstimate), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
pub async fn estimate_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CostEstimate>, ApiFail> {
    let planned = plan(&st, parse(body)?)?;
    let pace = *st.models[planned.worker]
        .pace
        .lock()
        .map_err(|_| ApiFail::internal("internal", "the pace lock is poisoned"))?;
    Ok(Json(CostEstimate {
        units: planned.units,
        seconds: pace.estimate(planned.units),
        timed_jobs: pace.jobs,
    }))
}

#[utoipa::path(post, path = "/api/analyze", request_body = AnalyzeRequest, responses((status = 200, body = AnalyzeResponse, description = "computed, or from the store"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn analyze_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan(&st, parse(body)?)?;
    let done = run_now(&st, planned).await?;
    let result = done
        .analysis()
        .cloned()
        .ok_or_else(|| ApiFail::internal("store", "an analysis id holds another kind of result"))?;
    Ok(Json(AnalyzeResponse {
        id: done.id,
        cached: done.cached,
        result,
    })
    .into_response())
}

/// `POST /api/jobs/analyze`: start an analysis as a job (202), or answer at once
/// (200) when the result is stored.
#[utoipa::path(post, path = "/api/jobs/analyze", request_body = AnalyzeRequest, responses((status = 202, body = JobStatus, description = "queued; follow /api/jobs/{id}/events"), (status = 200, body = JobStatus, description = "already stored: fetch /api/results/{id}"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn analyze_job_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan(&st, parse(body)?)?;
    super::jobs::launch(&st, planned).await
}

/// `POST /api/neuron`: one neuron of a stored analysis, on each of its prompts
/// (run on the analysis's model and edit sets), and the tokens its value slot
/// promotes and suppresses. Not stored: it costs one layer's attribution, and
/// its link is the analysis's permalink with `?neuron=L:I`.
#[utoipa::path(post, path = "/api/neuron", request_body = NeuronRequest, responses((status = 200, body = NeuronCard), (status = 400, body = ApiError), (status = 404, body = ApiError, description = "no stored analysis with that id"), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
pub async fn neuron_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: NeuronRequest = parse(body)?;
    if !crate::store::is_id(&req.analysis) {
        return Err(ApiFail::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!(
                "`{}` is not a result id (20 hex digits)",
                clip(&req.analysis)
            ),
        ));
    }
    let analysis = super::stored::stored(&st, &req.analysis)
        .await?
        .and_then(|found| found.analysis().cloned())
        .ok_or_else(|| {
            ApiFail::new(
                StatusCode::NOT_FOUND,
                "result_not_found",
                format!(
                    "no stored analysis has id {}: open the analysis first",
                    clip(&req.analysis)
                ),
            )
        })?;
    let a = &analysis.request;
    let (index, worker) = st.worker(a.model.as_deref())?;
    let neuron = crate::engine::Neuron {
        layer: req.layer,
        index: req.index,
    };
    crate::engine::intervene::validate(&worker.text.config, &[neuron])?;
    let queries = budget::queries(&st, worker, &a.prompts, &a.target, a.answer_positions)?;
    budget::steps(&st, a.steps)?;
    let sets = edit_sets::resolve(&st, index, &a.edits).await?;
    let opts = crate::engine::attribution::Options {
        steps: a.steps,
        riemann: a.riemann,
        ..Default::default()
    };
    let text_ids = match req.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => {
            let ids = worker.text.tokenizer.encode(text)?;
            budget::count(
                "the text's tokens",
                ids.len(),
                st.limits.max_tokens,
                "--max-tokens",
            )?;
            Some(ids)
        }
    };
    let relation_queries = relation_prompts(&st, worker, req.relation.as_deref())?;
    let max_scores: Vec<Option<f64>> = analysis.prompts.iter().map(|p| p.max_score).collect();
    let t = analysis.neurons.t;
    let (prompts, vocab) = worker
        .run(sets, move |m, cancel| {
            let on = crate::engine::neuron_card::on_prompts(
                m,
                &queries,
                &opts,
                neuron,
                &max_scores,
                t,
                &mut super::worker::until_cancelled(cancel),
            )?;
            let mean = on.iter().map(|p| p.activation).sum::<f64>() / on.len().max(1) as f64;
            let answer = queries.first().map(|q| q.target);
            let vocab = crate::engine::neuron_card::vocabulary(m, neuron, 10, mean, answer)?;
            let along = match &text_ids {
                Some(ids) => crate::engine::neuron_card::along_text(m, ids, neuron)?
                    .into_iter()
                    .zip(ids)
                    .map(|(activation, &id)| TokenActivation {
                        token: m.tokenizer.token_text(id),
                        activation,
                    })
                    .collect(),
                None => Vec::new(),
            };
            let across = crate::engine::neuron_card::at_blanks(m, &relation_queries, neuron)?
                .into_iter()
                .zip(&relation_queries)
                .map(|(activation, q)| PromptActivation {
                    prompt: q.prompt.clone(),
                    activation,
                })
                .collect();
            Ok((on, (mean, vocab, along, across)))
        })
        .await?;
    let (mean_activation, vocab, text_activations, relation_activations) = vocab;
    let is_in = |set: &[kn_shared::ScoredNeuron]| set.iter().any(|n| n.neuron() == neuron);
    let known = prompts.iter().filter(|p| p.passed.is_some()).count();
    let passed = prompts.iter().filter(|p| p.passed == Some(true)).count();
    Ok(Json(NeuronCard {
        analysis: req.analysis,
        layer: req.layer,
        index: req.index,
        target: a.target.clone(),
        t,
        passed,
        known,
        knowledge: is_in(&analysis.neurons.knowledge),
        baseline: is_in(&analysis.neurons.baseline),
        prompts,
        mean_activation,
        promotes: vocab.promotes,
        suppresses: vocab.suppresses,
        slot_promotes: vocab.slot_promotes,
        slot_suppresses: vocab.slot_suppresses,
        answer_rank: vocab.answer_rank,
        text_activations,
        relation_activations,
    })
    .into_response())
}

/// Facts a neuron card reads across: the first prompt of each of up to 50
/// seeded facts of `relation`, within the token budget.
fn relation_prompts(
    st: &AppState,
    worker: &super::ModelWorker,
    relation: Option<&str>,
) -> Result<Vec<crate::engine::Query>, ApiFail> {
    let Some(id) = relation.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let data = super::dataset::dataset(st)?;
    let rel = data
        .relation(id)
        .map_err(|e| ApiFail::new(StatusCode::NOT_FOUND, "unknown_relation", e.to_string()))?;
    let sample = crate::engine::relation::sample(&worker.text, rel, 50, 0)?;
    Ok(sample
        .into_iter()
        .filter_map(|qs| qs.into_iter().next())
        .filter(|q| q.cloze.ids.len() <= st.limits.max_tokens)
        .collect())
}
