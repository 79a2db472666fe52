//! The HTTP server: a JSON API under `/api` and the built web client.
//!
//! Three rules shape it:
//!
//! * **A link is true.** The server holds no per-user state. An edit set is a
//!   value, stored once under the hash of its contents; every request that
//!   reads the model names the edit sets it runs on (`edits: [id, …]`), and the
//!   model's worker applies them for that job only and restores the base
//!   weights afterwards, bit for bit, whatever happens ([`worker`]). A result's
//!   id is a hash of the model's fingerprint and the canonical request, computed
//!   from the request alone ([`results`]), so it cannot race with other work.
//! * **No request can break it.** Every cost has a budget checked in the
//!   handler before any work is queued ([`budget`]); libtorch work runs on one
//!   worker thread per model behind a bounded queue (429 when full); panics are
//!   caught there; long work is a cancellable job ([`jobs`]).
//! * **Local means local** ([`access`]): the `Host` must be ours, a
//!   state-changing request must be JSON from our own origin, and a server
//!   reachable from the network requires a token.
//!
//! Routes are grouped by concern: [`analysis`] (predict, analyze, a neuron),
//! [`methods_route`], [`edits`] (making edits), [`edit_sets`] (the sets as values),
//! [`dataset`], [`experiments`] and [`results`] (permalinks). A stored
//! computation is a [`plan::Planned`], run by [`run`] or [`jobs`] and kept by
//! [`stored`]; the graph between these files runs one way: routes → runners →
//! plan, and only [`results`] knows every route's planner.

pub mod access;
mod analysis;
pub mod budget;
mod dataset;
mod edit_sets;
mod edits;
mod experiments;
pub mod jobs;
mod methods_route;
mod plan;
mod results;
mod run;
mod stored;
pub mod worker;

pub use access::Access;
pub use jobs::Jobs;
pub use worker::{summary, ModelWorker};

use crate::pararel::ParaRel;
use crate::store::Store;
use crate::Error;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kn_shared::{ApiError, Health, Limits, ModelSummary};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;

/// Shared server state. Nothing in it belongs to a user: models, the store,
/// the dataset, and the jobs in flight (each keyed by the id of its result).
pub struct AppState {
    pub models: Vec<ModelWorker>,
    pub jobs: Jobs,
    pub store: Arc<Store>,
    /// ParaRel, when its data folder was found.
    pub dataset: Option<ParaRel>,
    /// The folder of `kn experiment` runs (one sub-folder each) for the
    /// Experiments page.
    pub experiments: Option<PathBuf>,
    /// Budgets every request is checked against.
    pub limits: Limits,
    /// Who may call.
    pub access: Access,
}

impl AppState {
    /// A state with the default limits and open access (for tests and
    /// embedding; `kn serve` sets both from its flags).
    pub fn new(models: Vec<ModelWorker>, store: Arc<Store>) -> Self {
        AppState {
            models,
            jobs: Jobs::default(),
            store,
            dataset: None,
            experiments: None,
            limits: budget::default_limits(),
            access: Access::default(),
        }
    }

    /// The worker of model `name` (the first model when absent), with its index.
    fn worker(&self, name: Option<&str>) -> Result<(usize, &ModelWorker), ApiFail> {
        match name {
            None => self.models.first().map(|w| (0, w)).ok_or_else(|| {
                ApiFail::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    "no model is loaded",
                )
            }),
            Some(n) => self
                .models
                .iter()
                .enumerate()
                .find(|(_, m)| m.summary.name == n)
                .ok_or_else(|| {
                    let known: Vec<&str> = self
                        .models
                        .iter()
                        .map(|m| m.summary.name.as_str())
                        .collect();
                    ApiFail::new(
                        StatusCode::NOT_FOUND,
                        "model_not_found",
                        format!(
                            "model `{}` is not loaded; loaded: {}",
                            kn_shared::clip(n),
                            known.join(", ")
                        ),
                    )
                }),
        }
    }
}

/// An API error response.
#[derive(Debug, Clone)]
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

    /// A request whose values cannot be taken (422 `invalid_argument`).
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            message,
        )
    }

    /// A request over one of the server's budgets.
    fn limit(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
    }

    /// A failure of ours: the details go to the log under an incident number,
    /// the client gets the number and no internals (paths, panic text).
    pub fn internal(code: &str, details: impl std::fmt::Display) -> Self {
        let incident = incident_id();
        tracing::error!(incident, code, "{details}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            format!("internal error; the server's log has the details under incident {incident}"),
        )
    }

    pub fn code(&self) -> &str {
        &self.body.error.code
    }
}

fn incident_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:x}-{}",
        t & 0xffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl From<Error> for ApiFail {
    fn from(e: Error) -> Self {
        if e.is_user_error() {
            ApiFail::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
        } else {
            ApiFail::internal(e.code(), e)
        }
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
    ApiFail::new(status, code, format!("request body: {}", e.body_text()))
}

/// Parse a JSON body ourselves so that every malformed request gets our error shape.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiFail> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_field"
        } else {
            "malformed_json"
        };
        ApiFail::new(StatusCode::BAD_REQUEST, code, format!("request body: {e}"))
    })
}

/// Run blocking work (SQLite, large JSON) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiFail> + Send + 'static,
) -> Result<T, ApiFail> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiFail::internal("internal", e))?
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

#[utoipa::path(get, path = "/api/limits", responses((status = 200, body = Limits, description = "the budgets every request is checked against before work starts")))]
async fn limits(State(st): State<Arc<AppState>>) -> Json<Limits> {
    Json(st.limits.clone())
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
        limits,
        analysis::predict_route,
        analysis::analyze_route,
        analysis::analyze_job_route,
        analysis::estimate_route,
        methods_route::methods_job_route,
        analysis::neuron_route,
        edit_sets::upload_route,
        edit_sets::download_route,
        edit_sets::summary_route,
        edits::update_route,
        edits::update_job_route,
        edits::erase_route,
        edits::erase_relation_route,
        jobs::job_route,
        jobs::cancel_job_route,
        jobs::job_events_route,
        results::result_route,
        dataset::dataset_route,
        dataset::relation_route,
        experiments::experiments_route,
        experiments::experiment_route
    )
)]
pub struct ApiDoc;

/// The document, with this server's budgets in its description.
async fn openapi(State(st): State<Arc<AppState>>) -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    let mut doc = ApiDoc::openapi();
    let l = &st.limits;
    doc.info.description = Some(format!(
        "Find, test and edit the neurons where a transformer stores facts.\n\n\
         Budgets of this server (GET /api/limits), checked before any work starts; a request \
         over one gets 422 `limit_exceeded` naming it: {} tokens per prompt, {} integration \
         steps, {} prompts, {} work units per request (Σ over prompts of (steps + 1) × tokens × \
         layers), {} eval prompts, {} neurons per erase or edit set, k ≤ {}, {} facts per \
         erase-relation, |λ| ≤ {}, {} edit sets per request, top_k ≤ {}, bodies of {} bytes \
         ({} for edit-set uploads).\n\n\
         State-changing requests need `Content-Type: application/json` and, from a browser, \
         this server's own origin. A server started with --token needs `Authorization: Bearer \
         <token>` on every route but /api/health.",
        l.max_tokens,
        l.max_steps,
        l.max_prompts,
        l.max_work,
        l.max_eval,
        l.max_neurons,
        l.max_k,
        l.max_facts,
        l.max_lambda,
        l.max_edit_sets,
        l.max_top_k,
        l.max_body_bytes,
        l.max_upload_bytes
    ));
    Json(doc)
}

async fn api_not_found() -> ApiFail {
    ApiFail::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// The web client's files: the `.br`/`.gz` twin the build wrote when the
/// browser accepts it (the WebAssembly is 1.8 MB, a third of that in brotli),
/// and `Cache-Control: no-cache`, so a browser keeps its copy and asks each
/// time whether it is still current (a 304 when it is: the names carry no
/// content hash, so a longer lifetime would keep an old app after an upgrade).
fn web_client(
    dir: &std::path::Path,
) -> SetResponseHeader<ServeDir<SetResponseHeader<ServeFile, HeaderValue>>, HeaderValue> {
    let no_cache = HeaderValue::from_static("no-cache");
    let index = ServeFile::new(dir.join("index.html"))
        .precompressed_br()
        .precompressed_gzip();
    let index = SetResponseHeader::overriding(index, header::CACHE_CONTROL, no_cache.clone());
    let files = ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(index);
    SetResponseHeader::if_not_present(files, header::CACHE_CONTROL, no_cache)
}

/// The application router: the API, and the web client from `static_dir`.
pub fn router(state: Arc<AppState>, static_dir: Option<PathBuf>) -> Router {
    let upload = Router::new()
        .route("/edit-sets", post(edit_sets::upload_route))
        .layer(DefaultBodyLimit::max(state.limits.max_upload_bytes));
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/health", get(health))
        .route("/models", get(models))
        .route("/limits", get(limits))
        .route("/predict", post(analysis::predict_route))
        .route("/analyze", post(analysis::analyze_route))
        .route("/results/{id}", get(results::result_route))
        .route("/jobs/analyze", post(analysis::analyze_job_route))
        .route("/estimate/analyze", post(analysis::estimate_route))
        .route("/jobs/methods", post(methods_route::methods_job_route))
        .route("/neuron", post(analysis::neuron_route))
        .route("/jobs/erase-relation", post(edits::erase_relation_route))
        .route("/jobs/update-fact", post(edits::update_job_route))
        .route(
            "/jobs/{id}",
            get(jobs::job_route).delete(jobs::cancel_job_route),
        )
        .route("/jobs/{id}/events", get(jobs::job_events_route))
        .route("/edit-sets/{id}", get(edit_sets::download_route))
        .route("/edit-sets/{id}/summary", get(edit_sets::summary_route))
        .route("/edits/update", post(edits::update_route))
        .route("/edits/erase", post(edits::erase_route))
        .route("/dataset", get(dataset::dataset_route))
        .route("/dataset/{relation}", get(dataset::relation_route))
        .route("/experiments", get(experiments::experiments_route))
        .route("/experiments/{name}", get(experiments::experiment_route))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .merge(upload)
        .fallback(api_not_found)
        .with_state(state.clone());
    let app = Router::new().nest("/api", api);
    let app = match static_dir {
        Some(dir) => app.fallback_service(web_client(&dir)),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(state, access::check))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serve until Ctrl-C or SIGTERM. Open connections (event streams) get a few
/// seconds to close; then the server stops anyway.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    static_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let server =
        axum::serve(listener, router(state, static_dir)).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|s| *s).await;
        });
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        } => tracing::warn!("connections still open 3 s after the stop signal; stopping anyway"),
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
