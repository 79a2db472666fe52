//! The methods lab over HTTP: `POST /api/jobs/methods` compares attribution
//! methods on one fact (engine::methods_lab) as a job whose result is stored under
//! a permalink like an analysis.
//!
//! Its cost is bounded before it is queued in the same work units as an
//! analysis (`budget::work`): IG's units, and every other method's scaled by
//! its FLOPs against IG's on the same prompt, so that `logprob-increase` (a
//! head evaluation per neuron, 13× IG on SmolLM2) counts for what it costs.

use super::edit_sets;
use super::plan::{Outcome, Planned, Progress};
use super::{budget, parse, ApiFail, AppState};
use crate::engine::attribution::Options;
use crate::engine::methods_lab::{compare, Comparison, Control, Method};
use crate::engine::selection::Thresholds;
use crate::engine::Query;
use crate::models::{Model, Vocab};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;
use kn_shared::methods::MethodsRequest;
use kn_shared::{ApiError, ComputeRequest, JobStatus};
use std::sync::Arc;

/// Most values of `k` in one request.
pub const MAX_KS: usize = 10;

/// Check a methods request against the budgets and plan it.
pub(super) fn plan(st: &AppState, mut req: MethodsRequest) -> Result<Planned, ApiFail> {
    let (index, worker) = st.worker(req.model.as_deref())?;
    edit_sets::check_ids(st, &req.edits)?;
    let methods = methods_of(&req)?;
    budget::count("the number of k values", req.ks.len(), MAX_KS, "")?;
    for &k in &req.ks {
        budget::count("k", k, st.limits.max_neurons, "")?;
    }
    let positions = req.answer_positions;
    let queries = budget::queries(st, worker, &req.prompts, &req.target, positions)?;
    let unrelated = unrelated_queries(st, worker, &req)?;
    let controls = control_queries(st, worker, &req)?;
    if !queries.iter().chain(&unrelated).any(|q| q.is_chain()) {
        // One-token answers: the positions change nothing, so one id.
        req.answer_positions = Default::default();
    }
    budget::steps(st, req.steps)?;
    let th = Thresholds {
        t: req.t,
        p: req.p,
        min_prompts: req.min_prompts,
    };
    th.validate()?;
    work(
        st,
        worker,
        &queries,
        &methods,
        &Options::with_steps(req.steps),
    )?;
    let request = ComputeRequest::Methods(req.clone());
    req.model = Some(worker.summary.name.clone());
    let total = methods.len();
    let work = Box::new(move |m: &Model, progress: Progress| {
        // The device's batch budgets (memory and speed, not numbers).
        let opts = Options {
            steps: req.steps,
            ..Options::for_device(m.net.device())
        };
        let c = Comparison {
            methods: &methods,
            target: &req.target,
            queries: &queries,
            unrelated: &unrelated,
            unrelated_target: req.unrelated_target.as_deref().unwrap_or_default(),
            controls: &controls,
            ks: &req.ks,
            opts: &opts,
            thresholds: th,
            seed: req.seed,
        };
        let mut r = compare(m, &c, &mut |i| progress(i, total))?;
        progress(total, total);
        r.request = Some(req);
        Ok(Outcome::methods(r))
    });
    Planned::new(request, &worker.fingerprint, index, total, work)
}

/// The request's methods, each known and named once.
fn methods_of(req: &MethodsRequest) -> Result<Vec<Method>, ApiFail> {
    budget::count(
        "the number of methods",
        req.methods.len(),
        Method::ALL.len(),
        "",
    )?;
    let methods = req
        .methods
        .iter()
        .map(|m| m.parse::<Method>().map_err(ApiFail::from))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(m) = methods
        .iter()
        .enumerate()
        .find_map(|(i, m)| methods[..i].contains(m).then_some(m))
    {
        return Err(ApiFail::invalid(format!("method `{m}` is named twice")));
    }
    Ok(methods)
}

/// The unrelated fact's prompts (specificity), none, or an error when only
/// half of it is given.
fn unrelated_queries(
    st: &AppState,
    worker: &super::ModelWorker,
    req: &MethodsRequest,
) -> Result<Vec<Query>, ApiFail> {
    match (&req.unrelated_target, req.unrelated_prompts.is_empty()) {
        (Some(t), false) => {
            budget::at_most(
                "unrelated prompts",
                req.unrelated_prompts.len(),
                st.limits.max_prompts,
                "",
            )?;
            req.unrelated_prompts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    budget::query(st, worker, p, t, &format!("unrelated prompt {}", i + 1))
                        .map(|q| q.with_positions(req.answer_positions))
                })
                .collect()
        }
        (None, true) => Ok(vec![]),
        _ => Err(ApiFail::invalid(
            "unrelated_prompts and unrelated_target go together",
        )),
    }
}

/// The control facts (specificity): not the fact itself, each within the
/// prompt budgets.
fn control_queries(
    st: &AppState,
    worker: &super::ModelWorker,
    req: &MethodsRequest,
) -> Result<Vec<Control>, ApiFail> {
    crate::engine::specificity::check((&req.target, &req.prompts), &req.controls)?;
    let queries = budget::controls(st, worker, &req.controls, req.answer_positions)?;
    Ok(req
        .controls
        .iter()
        .zip(queries)
        .map(|(c, queries)| Control {
            kind: c.kind.clone(),
            target: c.target.clone(),
            queries,
        })
        .collect())
}

/// The request's work units: IG's formula for `ig`, and for every other method
/// IG's units on the prompt scaled by the ratio of their FLOPs.
fn work(
    st: &AppState,
    worker: &super::ModelWorker,
    queries: &[Query],
    methods: &[Method],
    opts: &Options,
) -> Result<u64, ApiFail> {
    let cfg = Vocab::config(&worker.text);
    let mut units = 0f64;
    for q in queries {
        let ig_units = ((opts.steps + 1) * q.attributed_tokens() * cfg.n_layers) as f64;
        let ig_flops = Method::Ig.query_flops(cfg, opts, q);
        for m in methods {
            units += ig_units * m.query_flops(cfg, opts, q) / ig_flops;
        }
    }
    let units = units.ceil() as u64;
    if units > st.limits.max_work {
        return Err(ApiFail::limit(format!(
            "this comparison needs {units} work units (IG's (steps + 1) × tokens × layers per prompt, other methods by their FLOPs against IG's); this server allows {} per request (kn serve --max-work): use fewer prompts or methods",
            st.limits.max_work
        )));
    }
    Ok(units)
}

/// `POST /api/jobs/methods`: start a comparison as a job (202), or answer at
/// once (200) when the result is stored.
#[utoipa::path(post, path = "/api/jobs/methods", request_body = MethodsRequest, responses((status = 202, body = JobStatus, description = "queued; follow /api/jobs/{id}/events, then fetch /api/results/{id}"), (status = 200, body = JobStatus, description = "already stored: fetch /api/results/{id}"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError, description = "an unknown method, a bad prompt, or a request over a limit"), (status = 429, body = ApiError)))]
pub async fn methods_job_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let planned = plan(&st, parse(body)?)?;
    super::jobs::launch(&st, planned).await
}
