//! The HTTP server: a JSON API under `/api` and the built web client.
//!
//! libtorch work must not block the async runtime, and one model should run one
//! request at a time (its weights are shared mutable state once edits exist).
//! So each model lives on its own worker thread behind a bounded queue: a
//! request handler sends a closure and awaits the reply; a full queue answers
//! `429 Too Many Requests` with `Retry-After`. A panic inside libtorch is caught
//! on the worker and becomes a 500, and the worker keeps serving.

use crate::engine::analysis::{analyze, analyze_with};
use crate::engine::attribution::Options;
use crate::engine::edit::{self, UpdateOptions};
use crate::engine::intervene::{probabilities, prompt_effects};
use crate::engine::neurons::{attribute_fact_with, Thresholds};
use crate::engine::{Neuron, Query as Cloze};
use crate::experiment::db::RunDb;
use crate::models::Hooks;
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::predict::predict;
use crate::store::Store;
use crate::Error;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kn_shared::experiment::{ExperimentReport, ExperimentSummary};
use kn_shared::{
    ActiveEdit, EditResponse, EditSet, EraseRequest, EvalPrompt, PromptEffect, UpdateFactRequest,
};
use kn_shared::{
    AnalysisResult, AnalyzeRequest, AnalyzeResponse, ApiError, Health, JobStatus, ModelSummary,
    PredictRequest, PredictResponse,
};
use kn_shared::{EditMetrics, EraseRelationRequest, PerplexityChange};
use kn_shared::{FactEntry, RelationPage, RelationSummary};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use tower_http::services::{ServeDir, ServeFile};

/// Jobs waiting per model before the server answers 429.
pub const QUEUE_CAPACITY: usize = 8;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

type Job = Box<dyn FnOnce(&Model) + Send>;

/// A model on its own thread.
pub struct ModelWorker {
    pub summary: ModelSummary,
    /// Edits active on this model, oldest first.
    pub edits: Arc<std::sync::Mutex<Vec<(ActiveEdit, EditSet)>>>,
    /// The weights' fingerprint (part of every result's id).
    pub fingerprint: String,
    tx: SyncSender<Job>,
}

/// What `GET /api/models` says of a model.
pub fn summary(model: &Model) -> ModelSummary {
    let cfg = model.config();
    ModelSummary {
        name: model.name.clone(),
        arch: serde_json::to_value(cfg.arch)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        masked: cfg.arch.is_masked(),
        n_layers: cfg.n_layers,
        d_model: cfg.d_model,
        d_ff: cfg.d_ff,
        vocab_size: cfg.vocab_size,
        max_positions: cfg.max_positions,
        device: crate::device::describe(model.net.device()),
    }
}

impl ModelWorker {
    /// The identity of the weights as they are now: the base fingerprint and
    /// the active edits. Stored results are keyed by it.
    pub fn state_key(&self) -> String {
        let edits = self.edits.lock().unwrap_or_else(|p| p.into_inner());
        std::iter::once(self.fingerprint.clone())
            .chain(edits.iter().map(|(a, _)| a.id.clone()))
            .collect::<Vec<_>>()
            .join("+")
    }

    pub fn spawn(model: Model) -> Self {
        let summary = summary(&model);
        let fingerprint = crate::engine::edit::fingerprint(&model);
        let (tx, rx) = sync_channel::<Job>(QUEUE_CAPACITY);
        let name = model.name.clone();
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || {
                for job in rx {
                    job(&model);
                }
            })
            .expect("spawn model worker");
        ModelWorker {
            summary,
            edits: Default::default(),
            fingerprint,
            tx,
        }
    }

    /// Run `f` on the model's thread and wait for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Model) -> crate::Result<R> + Send + 'static,
    ) -> Result<R, ApiFail> {
        self.submit(f)?.await
    }

    /// Queue `f` on the model's thread (429 when the queue is full); the
    /// returned future resolves to its result.
    pub fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Model) -> crate::Result<R> + Send + 'static,
    ) -> Result<impl std::future::Future<Output = Result<R, ApiFail>>, ApiFail> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |m| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(m)));
            let _ = reply.send(r);
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiFail::busy()),
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiFail::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "worker_gone",
                    "the model worker has stopped",
                ))
            }
        }
        Ok(async move {
            match rx.await {
                Ok(Ok(Ok(r))) => Ok(r),
                Ok(Ok(Err(e))) => Err(e.into()),
                Ok(Err(panic)) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("unknown panic");
                    tracing::error!("model worker panicked: {msg}");
                    Err(ApiFail::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("the computation failed: {msg}"),
                    ))
                }
                Err(_) => Err(ApiFail::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the model worker dropped the request",
                )),
            }
        })
    }
}

/// Shared server state.
pub struct AppState {
    pub models: Vec<ModelWorker>,
    /// Jobs by id (the id of the result they produce).
    pub jobs: Jobs,
    pub store: Arc<Store>,
    /// ParaRel, when its data folder was found.
    pub dataset: Option<ParaRel>,
    /// The folder of `kn experiment` runs (one sub-folder each) for the
    /// Experiments page.
    pub experiments: Option<PathBuf>,
}

impl AppState {
    fn model(&self, name: Option<&str>) -> Result<&ModelWorker, ApiFail> {
        match name {
            None => self.models.first().ok_or_else(|| {
                ApiFail::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    "no model is loaded",
                )
            }),
            Some(n) => self
                .models
                .iter()
                .find(|m| m.summary.name == n)
                .ok_or_else(|| {
                    let known: Vec<&str> = self
                        .models
                        .iter()
                        .map(|m| m.summary.name.as_str())
                        .collect();
                    ApiFail::new(
                        StatusCode::NOT_FOUND,
                        "model_not_found",
                        format!("model `{n}` is not loaded; loaded: {}", known.join(", ")),
                    )
                }),
        }
    }
}

/// Long computations: each has a status channel and a cancel flag.
#[derive(Default)]
pub struct Jobs {
    map: std::sync::Mutex<std::collections::HashMap<String, Job2>>,
}

struct Job2 {
    status: tokio::sync::watch::Receiver<JobStatus>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Jobs {
    fn get(
        &self,
        id: &str,
    ) -> Option<(
        tokio::sync::watch::Receiver<JobStatus>,
        Arc<std::sync::atomic::AtomicBool>,
    )> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).map(|j| (j.status.clone(), j.cancel.clone()))
    }
}

/// An API error response.
#[derive(Debug)]
pub struct ApiFail {
    status: StatusCode,
    body: ApiError,
    retry_after: Option<u64>,
}

impl ApiFail {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiFail {
            status,
            body: ApiError::new(code, message),
            retry_after: None,
        }
    }

    fn busy() -> Self {
        ApiFail {
            retry_after: Some(2),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "the model's queue is full; retry shortly",
            )
        }
    }
}

impl From<Error> for ApiFail {
    fn from(e: Error) -> Self {
        let status = if e.is_user_error() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiFail::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiFail {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// A body that could not be read (too large, cut off) as our error shape.
fn body_error(e: BytesRejection) -> ApiFail {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "bad_body"
    };
    ApiFail::new(
        status,
        code,
        format!(
            "request body: {} (limit {MAX_BODY_BYTES} bytes)",
            e.body_text()
        ),
    )
}

/// Parse a JSON body ourselves so that every malformed request gets our error shape.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiFail> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_field"
        } else {
            "malformed_json"
        };
        ApiFail::new(StatusCode::BAD_REQUEST, code, format!("request body: {e}"))
    })
}

#[utoipa::path(get, path = "/api/health", responses((status = 200, body = Health)))]
async fn health(State(st): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        models: st.models.len(),
    })
}

#[utoipa::path(get, path = "/api/models", responses((status = 200, body = Vec<ModelSummary>)))]
async fn models(State(st): State<Arc<AppState>>) -> Json<Vec<ModelSummary>> {
    Json(st.models.iter().map(|m| m.summary.clone()).collect())
}

#[utoipa::path(post, path = "/api/predict", request_body = PredictRequest, responses((status = 200, body = PredictResponse), (status = 400, body = ApiError, description = "malformed body"), (status = 404, body = ApiError, description = "unknown model"), (status = 413, body = ApiError), (status = 422, body = ApiError, description = "a prompt or target the model cannot take"), (status = 429, body = ApiError, description = "queue full; see Retry-After")))]
async fn predict_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: PredictRequest = parse(&body.map_err(body_error)?)?;
    let worker = st.model(req.model.as_deref())?;
    let resp = worker.run(move |m| predict(m, &req)).await?;
    Ok(Json(resp).into_response())
}

#[utoipa::path(post, path = "/api/analyze", request_body = AnalyzeRequest, responses((status = 200, body = AnalyzeResponse, description = "computed, or from the store"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
async fn analyze_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let mut req: AnalyzeRequest = parse(&body.map_err(body_error)?)?;
    let (worker, canonical, id) = analysis_key(&st, &mut req)?;
    if let Some(found) = stored(&st.store, &id).await? {
        return Ok(Json(AnalyzeResponse {
            id,
            cached: true,
            result: found,
        })
        .into_response());
    }
    let summary = worker.summary.clone();
    let result = worker.run(move |m| analyze(m, &req, summary)).await?;
    save_analysis(st.store.clone(), id.clone(), canonical.to_string(), &result).await?;
    Ok(Json(AnalyzeResponse {
        id,
        cached: false,
        result,
    })
    .into_response())
}

/// Name the model in an analysis request and derive its result id: a content
/// hash of the model's current state and the request.
fn analysis_key<'a>(
    st: &'a AppState,
    req: &mut AnalyzeRequest,
) -> Result<(&'a ModelWorker, serde_json::Value, String), ApiFail> {
    let worker = st.model(req.model.as_deref())?;
    req.model = Some(worker.summary.name.clone());
    let canonical = serde_json::to_value(&*req).map_err(internal)?;
    let id = Store::id("analyze", &worker.state_key(), &canonical);
    Ok((worker, canonical, id))
}

/// Keep an analysis under its id (off the async runtime).
async fn save_analysis(
    store: Arc<Store>,
    id: String,
    request: String,
    result: &AnalysisResult,
) -> Result<(), ApiFail> {
    let text = serde_json::to_string(result).map_err(internal)?;
    let model = result.model.name.clone();
    tokio::task::spawn_blocking(move || store.put(&id, "analyze", &model, &request, &text))
        .await
        .map_err(internal)??;
    Ok(())
}

async fn stored(store: &Arc<Store>, id: &str) -> Result<Option<AnalysisResult>, ApiFail> {
    let (store, key) = (store.clone(), id.to_string());
    let text = tokio::task::spawn_blocking(move || store.get(&key))
        .await
        .map_err(internal)??;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            ApiFail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                format!("stored result {id} is unreadable: {e}"),
            )
        })
    })
    .transpose()
}

#[utoipa::path(get, path = "/api/results/{id}", params(("id" = String, Path, description = "20 hex digits")), responses((status = 200, body = AnalyzeResponse), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn result_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    if id.len() != 20 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiFail::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("`{id}` is not a result id (20 hex digits)"),
        ));
    }
    match stored(&st.store, &id).await? {
        Some(result) => Ok(Json(AnalyzeResponse {
            id,
            cached: true,
            result,
        })
        .into_response()),
        None => Err(ApiFail::new(
            StatusCode::NOT_FOUND,
            "result_not_found",
            format!("no stored result has id {id}"),
        )),
    }
}

fn relation_summary(r: &crate::pararel::Relation) -> RelationSummary {
    RelationSummary {
        id: r.id.clone(),
        label: r.label.clone(),
        kind: r.kind.clone(),
        templates: r.templates.len(),
        causal_templates: r.causal_templates().len(),
        facts: r.facts.len(),
    }
}

fn dataset(st: &AppState) -> Result<&ParaRel, ApiFail> {
    st.dataset.as_ref().ok_or_else(|| {
        ApiFail::new(StatusCode::NOT_FOUND, "no_dataset", "ParaRel is not loaded: start kn serve with --data DIR (../shared/data beside the checkout)")
    })
}

#[utoipa::path(get, path = "/api/dataset", responses((status = 200, body = Vec<RelationSummary>), (status = 404, body = ApiError)))]
async fn dataset_route(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<RelationSummary>>, ApiFail> {
    Ok(Json(
        dataset(&st)?
            .relations
            .iter()
            .map(relation_summary)
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

#[utoipa::path(get, path = "/api/dataset/{relation}", params(("relation" = String, Path), ("q" = Option<String>, Query), ("offset" = Option<usize>, Query), ("limit" = Option<usize>, Query)), responses((status = 200, body = RelationPage), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn relation_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<RelationPage>, ApiFail> {
    let Query(q) =
        query.map_err(|e| ApiFail::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let data = dataset(&st)?;
    let r = data
        .relation(&id)
        .map_err(|e| ApiFail::new(StatusCode::NOT_FOUND, "unknown_relation", e.to_string()))?;
    let needle = q.q.to_lowercase();
    let matching: Vec<FactEntry> = r
        .facts
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            needle.is_empty()
                || f.subject.to_lowercase().contains(&needle)
                || f.object.to_lowercase().contains(&needle)
        })
        .map(|(index, f)| FactEntry {
            index,
            subject: f.subject.clone(),
            object: f.object.clone(),
        })
        .collect();
    Ok(Json(RelationPage {
        relation: relation_summary(r),
        templates: r.templates.clone(),
        matching: matching.len(),
        facts: matching
            .into_iter()
            .skip(q.offset)
            .take(q.limit.min(500))
            .collect(),
    }))
}

fn internal(e: impl std::fmt::Display) -> ApiFail {
    ApiFail::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;
type Finish<R> = Box<
    dyn FnOnce(R) -> futures_util::future::BoxFuture<'static, Result<Option<EditResponse>, String>>
        + Send,
>;

/// Start `work` on the model's thread as job `id`: its progress and final state
/// go to a watch channel (read by `GET /api/jobs/{id}` and its events), and
/// `finish` handles the output (store it, or return an edit for the status).
fn start_job<R: Send + 'static>(
    st: &AppState,
    worker: &ModelWorker,
    id: String,
    total: usize,
    work: impl FnOnce(&Model, Progress) -> crate::Result<R> + Send + 'static,
    finish: Finish<R>,
) -> Result<JobStatus, ApiFail> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let queued = JobStatus {
        id: id.clone(),
        state: "queued".into(),
        done: 0,
        total,
        error: None,
        edit: None,
    };
    let (tx, rx) = tokio::sync::watch::channel(queued.clone());
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx2, cancel2, id2) = (tx.clone(), cancel.clone(), id.clone());
    let pending = worker.submit(move |m| {
        let mut progress = |done: usize, total: usize| {
            tx2.send_replace(JobStatus {
                id: id2.clone(),
                state: "running".into(),
                done,
                total,
                error: None,
                edit: None,
            });
            !cancel2.load(Ordering::Relaxed)
        };
        work(m, &mut progress)
    })?;
    st.jobs
        .map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), Job2 { status: rx, cancel });
    tokio::spawn(async move {
        let end = |state: &str, error: Option<ApiError>, edit: Option<EditResponse>| JobStatus {
            id: id.clone(),
            state: state.into(),
            done: if state == "done" {
                total
            } else {
                tx.borrow().done
            },
            total,
            error: error.map(|e| e.error),
            edit,
        };
        let status = match pending.await {
            Ok(out) => match finish(out).await {
                Ok(edit) => end("done", None, edit),
                Err(e) => end("failed", Some(ApiError::new("store", e)), None),
            },
            Err(fail) if fail.body.error.code == "cancelled" => {
                end("cancelled", Some(fail.body), None)
            }
            Err(fail) => end("failed", Some(fail.body), None),
        };
        tx.send_replace(status);
    });
    Ok(queued)
}

/// A fresh id for a job whose result is not stored (an edit): each submission
/// is a new job, even for the same request.
fn job_id(kind: &str, worker: &ModelWorker, request: &serde_json::Value) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Store::id(kind, &format!("{}{nonce}", worker.state_key()), request)
}

/// `POST /api/jobs/analyze`: start an analysis as a job (202), or answer at once
/// (200) when the result is stored.
#[utoipa::path(post, path = "/api/jobs/analyze", request_body = AnalyzeRequest, responses((status = 202, body = JobStatus, description = "queued; follow /api/jobs/{id}/events"), (status = 200, body = JobStatus, description = "already stored: fetch /api/results/{id}"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 429, body = ApiError)))]
async fn analyze_job_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let mut req: AnalyzeRequest = parse(&body.map_err(body_error)?)?;
    let (worker, canonical, id) = analysis_key(&st, &mut req)?;
    let total = req.prompts.len();
    if stored(&st.store, &id).await?.is_some() {
        let s = JobStatus {
            id,
            state: "done".into(),
            done: total,
            total,
            error: None,
            edit: None,
        };
        return Ok((StatusCode::OK, Json(s)).into_response());
    }
    if let Some((rx, _)) = st.jobs.get(&id) {
        let s = rx.borrow().clone();
        if !matches!(s.state.as_str(), "failed" | "cancelled") {
            return Ok((StatusCode::ACCEPTED, Json(s)).into_response());
        }
    }
    let summary = worker.summary.clone();
    let (store, request, id2) = (st.store.clone(), canonical.to_string(), id.clone());
    let finish: Finish<AnalysisResult> = Box::new(move |result| {
        Box::pin(async move {
            save_analysis(store, id2, request, &result)
                .await
                .map(|()| None)
                .map_err(|fail| fail.body.error.message)
        })
    });
    let queued = start_job(
        &st,
        worker,
        id,
        total,
        move |m, progress| analyze_with(m, &req, summary, progress),
        finish,
    )?;
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

/// `POST /api/jobs/erase-relation`: SPEC's relation erasure as a job. The final
/// status carries the edit (now active) and its effect.
#[utoipa::path(post, path = "/api/jobs/erase-relation", request_body = EraseRelationRequest, responses((status = 202, body = JobStatus, description = "queued; the final status carries the edit"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
async fn erase_relation_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: EraseRelationRequest = parse(&body.map_err(body_error)?)?;
    let worker = st.model(req.model.as_deref())?;
    let data = dataset(&st)?;
    let rel = data
        .relation(&req.relation)
        .map_err(|e| ApiFail::new(StatusCode::NOT_FOUND, "unknown_relation", e.to_string()))?
        .clone();
    let others: Vec<crate::pararel::Relation> = data
        .relations
        .iter()
        .filter(|r| r.id != rel.id)
        .cloned()
        .collect();
    if req.facts == 0 || req.facts > 200 || req.top == 0 {
        return Err(ApiFail::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "facts must be 1..=200 and top at least 1",
        ));
    }
    let with: edit::EraseWith = req.with.parse()?;
    let canonical = serde_json::to_value(&req).map_err(internal)?;
    let id = job_id("erase", worker, &canonical);
    let (edits, name) = (worker.edits.clone(), worker.summary.name.clone());
    let work = move |m: &Model, progress: Progress| -> crate::Result<EditResponse> {
        let (neurons, intra, inter) = crate::engine::relation::erase_plan(
            m,
            &rel,
            &others,
            req.facts,
            req.seed,
            req.top,
            &Options {
                steps: req.steps,
                ..Options::default()
            },
            progress,
        )?;
        let fp = edit::fingerprint(m);
        let es = edit::erase(
            m,
            &neurons,
            with,
            format!(
                "erase {} ({}): {} neurons from {} facts",
                rel.id,
                rel.label,
                neurons.len(),
                req.facts
            ),
        )?;
        let ppl = |qs: &[Cloze]| {
            if qs.is_empty() {
                Ok(f64::NAN)
            } else {
                edit::perplexity(m, qs)
            }
        };
        let acc = |qs: &[Cloze]| -> crate::Result<f64> {
            if qs.is_empty() {
                return Ok(f64::NAN);
            }
            let (_, top) = probabilities(m, qs, &Hooks::default())?;
            Ok(
                top.iter().zip(qs).filter(|(t, q)| **t == q.target).count() as f64
                    / qs.len() as f64,
            )
        };
        let (pi, pe, ai, ae) = (ppl(&intra)?, ppl(&inter)?, acc(&intra)?, acc(&inter)?);
        let before = probabilities(m, &intra, &Hooks::default())?;
        let active = activate(m, &edits, es, &fp, &name)?;
        let after = probabilities(m, &intra, &Hooks::default())?;
        let metrics = EditMetrics {
            // Share of the erased relation's prompts no longer answered correctly.
            change_rate: 1.0 - acc(&intra)?,
            success_rate: 0.0,
            perplexity: vec![
                PerplexityChange {
                    set: format!(
                        "{} (erased relation), accuracy {:.0}% -> {:.0}%",
                        rel.id,
                        100.0 * ai,
                        100.0 * acc(&intra)?
                    ),
                    prompts: intra.len(),
                    before: pi,
                    after: ppl(&intra)?,
                },
                PerplexityChange {
                    set: format!(
                        "other relations, accuracy {:.0}% -> {:.0}%",
                        100.0 * ae,
                        100.0 * acc(&inter)?
                    ),
                    prompts: inter.len(),
                    before: pe,
                    after: ppl(&inter)?,
                },
            ],
        };
        Ok(EditResponse {
            edit: active,
            metrics,
            random: None,
            predictions: effects(m, &intra, &before, &after),
        })
    };
    let finish: Finish<EditResponse> = Box::new(|r| Box::pin(async move { Ok(Some(r)) }));
    let queued = start_job(&st, worker, id, req.facts, work, finish)?;
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

fn job(
    st: &AppState,
    id: &str,
) -> Result<
    (
        tokio::sync::watch::Receiver<JobStatus>,
        Arc<std::sync::atomic::AtomicBool>,
    ),
    ApiFail,
> {
    st.jobs.get(id).ok_or_else(|| {
        ApiFail::new(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!("no job has id {id} (finished jobs' results are at /api/results/{id})"),
        )
    })
}

#[utoipa::path(get, path = "/api/jobs/{id}", params(("id" = String, Path)), responses((status = 200, body = JobStatus), (status = 404, body = ApiError)))]
async fn job_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiFail> {
    let (rx, _) = job(&st, &id)?;
    let s = rx.borrow().clone();
    Ok(Json(s))
}

#[utoipa::path(delete, path = "/api/jobs/{id}", params(("id" = String, Path)), responses((status = 202, body = JobStatus), (status = 404, body = ApiError)))]
async fn cancel_job_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    let (rx, cancel) = job(&st, &id)?;
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let s = rx.borrow().clone();
    Ok((StatusCode::ACCEPTED, Json(s)).into_response())
}

/// Server-sent events: one `status` event per change, ending with the final state.
#[utoipa::path(get, path = "/api/jobs/{id}/events", params(("id" = String, Path)), responses((status = 200, description = "text/event-stream of `status` events, each a JobStatus; ends with a terminal state"), (status = 404, body = ApiError)))]
async fn job_events_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (rx, _) = job(&st, &id)?;
    let stream =
        futures_util::stream::unfold((rx, false, true), |(mut rx, ended, first)| async move {
            if ended {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let s = rx.borrow_and_update().clone();
            let ev = Event::default()
                .event("status")
                .json_data(&s)
                .unwrap_or_default();
            let end = s.is_terminal();
            Some((Ok::<_, std::convert::Infallible>(ev), (rx, end, false)))
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn eval_queries(m: &Model, eval: &[EvalPrompt]) -> crate::Result<Vec<Cloze>> {
    eval.iter()
        .enumerate()
        .map(|(i, e)| {
            Cloze::new(m, &e.prompt, &e.target).map_err(|err| {
                crate::Error::InvalidArgument(format!("evaluation prompt {}: {err}", i + 1))
            })
        })
        .collect()
}

fn effects(
    m: &Model,
    queries: &[Cloze],
    before: &(Vec<f64>, Vec<u32>),
    after: &(Vec<f64>, Vec<u32>),
) -> Vec<PromptEffect> {
    prompt_effects(m, queries, (&before.0, &before.1), (&after.0, &after.1))
}

/// Apply `edit` for good, record it as active, and describe it.
fn activate(
    m: &Model,
    edits: &std::sync::Mutex<Vec<(ActiveEdit, EditSet)>>,
    edit: EditSet,
    fp: &str,
    name: &str,
) -> crate::Result<ActiveEdit> {
    edit::apply(m, &edit, fp)?;
    let text = serde_json::to_string(&edit).unwrap_or_default();
    let id = Store::id("edit", fp, &serde_json::Value::String(text));
    let active = ActiveEdit {
        id,
        model: name.to_string(),
        description: edit.description.clone(),
        neurons: edit
            .slots
            .iter()
            .map(|s| Neuron {
                layer: s.layer,
                index: s.index,
            })
            .collect(),
    };
    edits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((active.clone(), edit));
    Ok(active)
}

/// SPEC's fact update on the model's thread: attribution of the prompts
/// (reporting progress), the edit, its measured effect and the random control;
/// the edit stays active.
fn update_fact_work(
    m: &Model,
    req: &UpdateFactRequest,
    edits: &std::sync::Mutex<Vec<(ActiveEdit, EditSet)>>,
    name: &str,
    progress: Progress,
) -> crate::Result<EditResponse> {
    if req.prompts.is_empty() || req.prompts.len() > crate::engine::analysis::MAX_PROMPTS {
        return Err(crate::Error::InvalidArgument(
            "give between 1 and 50 prompts".into(),
        ));
    }
    let qs = req
        .prompts
        .iter()
        .map(|p| Cloze::new(m, p, &req.target))
        .collect::<crate::Result<Vec<_>>>()?;
    let eval = eval_queries(m, &req.eval)?;
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
    let before = probabilities(m, &qs, &Hooks::default())?;
    let active = activate(m, edits, plan.edit, &edit::fingerprint(m), name)?;
    let after = probabilities(m, &qs, &Hooks::default())?;
    Ok(EditResponse {
        edit: active,
        metrics: plan.metrics,
        random: Some(plan.random),
        predictions: effects(m, &qs, &before, &after),
    })
}

#[utoipa::path(post, path = "/api/edits/update", request_body = UpdateFactRequest, responses((status = 200, body = EditResponse, description = "the edit is now active"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 429, body = ApiError)))]
async fn update_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: UpdateFactRequest = parse(&body.map_err(body_error)?)?;
    let worker = st.model(req.model.as_deref())?;
    let (edits, name) = (worker.edits.clone(), worker.summary.name.clone());
    let resp = worker
        .run(move |m| update_fact_work(m, &req, &edits, &name, &mut |_, _| true))
        .await?;
    Ok(Json(resp).into_response())
}

/// `POST /api/jobs/update-fact`: the fact update as a job with progress; the
/// final status carries the edit.
#[utoipa::path(post, path = "/api/jobs/update-fact", request_body = UpdateFactRequest, responses((status = 202, body = JobStatus, description = "queued; the final status carries the edit"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 429, body = ApiError)))]
async fn update_job_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: UpdateFactRequest = parse(&body.map_err(body_error)?)?;
    let worker = st.model(req.model.as_deref())?;
    let (edits, name) = (worker.edits.clone(), worker.summary.name.clone());
    let canonical = serde_json::to_value(&req).map_err(internal)?;
    let id = job_id("update", worker, &canonical);
    let total = req.prompts.len();
    let finish: Finish<EditResponse> = Box::new(|r| Box::pin(async move { Ok(Some(r)) }));
    let queued = start_job(
        &st,
        worker,
        id,
        total,
        move |m, progress| update_fact_work(m, &req, &edits, &name, progress),
        finish,
    )?;
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

#[utoipa::path(post, path = "/api/edits/erase", request_body = EraseRequest, responses((status = 200, body = EditResponse, description = "the edit is now active"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn erase_route(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFail> {
    let req: EraseRequest = parse(&body.map_err(body_error)?)?;
    let worker = st.model(req.model.as_deref())?;
    let (edits, name) = (worker.edits.clone(), worker.summary.name.clone());
    let resp = worker
        .run(move |m| {
            let with: edit::EraseWith = req.with.parse()?;
            let eval = eval_queries(m, &req.eval)?;
            let fp = edit::fingerprint(m);
            let es = edit::erase(
                m,
                &req.neurons,
                with,
                format!("erase {} neurons ({})", req.neurons.len(), req.with),
            )?;
            let metrics = edit::measure(m, &es, &fp, &[], 0, None, &eval)?;
            let before = if eval.is_empty() {
                (vec![], vec![])
            } else {
                probabilities(m, &eval, &Hooks::default())?
            };
            let active = activate(m, &edits, es, &fp, &name)?;
            let after = if eval.is_empty() {
                (vec![], vec![])
            } else {
                probabilities(m, &eval, &Hooks::default())?
            };
            Ok(EditResponse {
                edit: active,
                metrics,
                random: None,
                predictions: effects(m, &eval, &before, &after),
            })
        })
        .await?;
    Ok(Json(resp).into_response())
}

#[utoipa::path(get, path = "/api/edits", responses((status = 200, body = Vec<ActiveEdit>)))]
async fn edits_route(State(st): State<Arc<AppState>>) -> Json<Vec<ActiveEdit>> {
    let mut out = Vec::new();
    for w in &st.models {
        out.extend(
            w.edits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(a, _)| a.clone()),
        );
    }
    Json(out)
}

fn find_edit(st: &AppState, id: &str) -> Result<(usize, EditSet), ApiFail> {
    for (i, w) in st.models.iter().enumerate() {
        if let Some((_, e)) = w
            .edits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(a, _)| a.id == id)
        {
            return Ok((i, e.clone()));
        }
    }
    Err(ApiFail::new(
        StatusCode::NOT_FOUND,
        "edit_not_found",
        format!("no active edit has id {id}"),
    ))
}

#[utoipa::path(get, path = "/api/edits/{id}", params(("id" = String, Path)), responses((status = 200, body = EditSet, description = "the edit set, to save and load"), (status = 404, body = ApiError)))]
async fn edit_download_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<EditSet>, ApiFail> {
    Ok(Json(find_edit(&st, &id)?.1))
}

#[utoipa::path(delete, path = "/api/edits/{id}", params(("id" = String, Path)), responses((status = 200, body = Vec<ActiveEdit>, description = "undone; the edits still active"), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn undo_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    let (i, es) = find_edit(&st, &id)?;
    let worker = &st.models[i];
    let edits = worker.edits.clone();
    worker
        .run(move |m| {
            edit::undo_checked(m, &es, &es.model)?;
            edits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(a, _)| a.id != id);
            Ok(())
        })
        .await?;
    Ok(edits_route(State(st)).await.into_response())
}

fn experiments_dir(st: &AppState) -> Result<PathBuf, ApiFail> {
    st.experiments.clone().ok_or_else(|| {
        ApiFail::new(
            StatusCode::NOT_FOUND,
            "no_experiments",
            "no experiments folder: start kn serve with --experiments DIR",
        )
    })
}

/// A run's file, if `name` is a plain folder name holding one.
fn run_file(dir: &std::path::Path, name: &str) -> Result<PathBuf, ApiFail> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let path = dir.join(name).join("run.sqlite");
    if !plain || !path.is_file() {
        return Err(ApiFail::new(
            StatusCode::NOT_FOUND,
            "unknown_experiment",
            format!("no experiment run `{name}` in {}", dir.display()),
        ));
    }
    Ok(path)
}

fn store_fail(e: crate::Error) -> ApiFail {
    ApiFail::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiFail> + Send + 'static,
) -> Result<T, ApiFail> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiFail::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

#[utoipa::path(get, path = "/api/experiments", responses((status = 200, body = Vec<ExperimentSummary>), (status = 404, body = ApiError)))]
async fn experiments_route(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<ExperimentSummary>>, ApiFail> {
    let dir = experiments_dir(&st)?;
    blocking(move || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("run.sqlite").is_file())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let Ok(path) = run_file(&dir, &name) else {
                continue;
            };
            // One unreadable run (a copy in progress, another version's
            // file) must not hide the others.
            let summary = (|| -> crate::Result<ExperimentSummary> {
                let db = RunDb::open_existing(&path)?;
                let (facts_done, relations) = db.done_counts()?;
                Ok(ExperimentSummary {
                    name: name.clone(),
                    model: db.settings()?.map(|s| s.model).unwrap_or_default(),
                    facts_done,
                    relations,
                    has_report: db.has_report()?,
                })
            })();
            match summary {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!("experiment run `{name}` left out of the list: {e}"),
            }
        }
        Ok(Json(out))
    })
    .await
}

#[utoipa::path(get, path = "/api/experiments/{name}", params(("name" = String, Path)), responses((status = 200, body = ExperimentReport), (status = 404, body = ApiError)))]
async fn experiment_route(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentReport>, ApiFail> {
    let dir = experiments_dir(&st)?;
    blocking(move || {
        let path = run_file(&dir, &name)?;
        let db = RunDb::open_existing(&path).map_err(store_fail)?;
        db.report().map_err(store_fail)?.map(Json).ok_or_else(|| {
            ApiFail::new(
                StatusCode::NOT_FOUND,
                "no_report",
                format!(
                    "run `{name}` has no report yet: run `kn experiment report {}`",
                    dir.join(&name).display()
                ),
            )
        })
    })
    .await
}

/// The OpenAPI document of this API, generated from the handlers and the
/// `kn-shared` types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Knowledge Neuron Studio API",
        description = "Find, test and edit the neurons where a transformer stores facts."
    ),
    paths(
        health,
        models,
        predict_route,
        analyze_route,
        analyze_job_route,
        erase_relation_route,
        update_job_route,
        job_route,
        cancel_job_route,
        job_events_route,
        result_route,
        dataset_route,
        relation_route,
        experiments_route,
        experiment_route
    )
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(ApiDoc::openapi())
}

async fn api_not_found() -> ApiFail {
    ApiFail::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// The application router: the API, and the web client from `static_dir`.
pub fn router(state: Arc<AppState>, static_dir: Option<PathBuf>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/health", get(health))
        .route("/models", get(models))
        .route("/predict", post(predict_route))
        .route("/analyze", post(analyze_route))
        .route("/results/{id}", get(result_route))
        .route("/jobs/analyze", post(analyze_job_route))
        .route("/jobs/erase-relation", post(erase_relation_route))
        .route("/jobs/update-fact", post(update_job_route))
        .route("/jobs/{id}", get(job_route).delete(cancel_job_route))
        .route("/jobs/{id}/events", get(job_events_route))
        .route("/edits", get(edits_route))
        .route("/edits/update", post(update_route))
        .route("/edits/erase", post(erase_route))
        .route("/edits/{id}", get(edit_download_route).delete(undo_route))
        .route("/dataset", get(dataset_route))
        .route("/dataset/{relation}", get(relation_route))
        .route("/experiments", get(experiments_route))
        .route("/experiments/{name}", get(experiment_route))
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let app = Router::new().nest("/api", api);
    match static_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            app.fallback_service(ServeDir::new(&dir).fallback(ServeFile::new(index)))
        }
        None => app,
    }
    .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serve until Ctrl-C.
pub async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    static_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    println!("Knowledge Neuron Studio is running at http://{local}/");
    axum::serve(listener, router(state, static_dir))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
