//! Calls to the `kn serve` JSON API. Errors come back as the server's code and
//! message ([`Failure`]): the page shows the message under the field the code
//! points at.

use gloo_net::http::{Request, Response};
use kn_shared::{ApiError, ModelSummary, PredictRequest, PredictResponse};
use serde::de::DeserializeOwned;

/// A failed call: the server's error code (or `client` for one of ours) and
/// its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            code: "client".into(),
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_string())
    }
}

impl From<kn_shared::ErrorBody> for Failure {
    fn from(e: kn_shared::ErrorBody) -> Self {
        Failure {
            code: e.code,
            message: e.message,
        }
    }
}

type Res<T> = Result<T, Failure>;

async fn read<T: DeserializeOwned>(resp: Result<Response, gloo_net::Error>) -> Res<T> {
    let resp = resp.map_err(|e| format!("the server did not answer ({e})"))?;
    if resp.ok() {
        return Ok(resp
            .json::<T>()
            .await
            .map_err(|e| format!("unexpected response: {e}"))?);
    }
    let status = resp.status();
    match resp.json::<ApiError>().await {
        Ok(e) => Err(e.error.into()),
        Err(_) => Err(format!("the server answered {status}").into()),
    }
}

pub async fn models() -> Res<Vec<ModelSummary>> {
    read(Request::get("/api/models").send().await).await
}

pub async fn predict(req: &PredictRequest) -> Res<PredictResponse> {
    let r = Request::post("/api/predict")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    read(r.send().await).await
}

/// What an analysis would cost on this server (`POST /api/estimate/analyze`).
pub async fn estimate_analysis(req: &kn_shared::AnalyzeRequest) -> Res<kn_shared::CostEstimate> {
    let r = Request::post("/api/estimate/analyze")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    read(r.send().await).await
}

/// A stored result. If the store evicted it, the server recomputes it from its
/// stored request (202 and a job): follow the job, then read it again.
pub async fn result(
    id: &str,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<kn_shared::StoredResult> {
    let url = format!("/api/results/{id}");
    let resp = Request::get(&url).send().await;
    if let Ok(r) = &resp {
        if r.status() == 202 {
            let status: kn_shared::JobStatus = r
                .json()
                .await
                .map_err(|e| Failure::from(format!("unexpected response: {e}")))?;
            on_status(status.clone());
            succeeded(follow(&status.id, &on_status).await?)?;
            return read(Request::get(&url).send().await).await;
        }
    }
    read(resp).await
}

/// A stored analysis, as the analysis view shows it.
pub fn as_analysis(r: kn_shared::StoredResult) -> Res<kn_shared::AnalyzeResponse> {
    let (id, cached, kind) = (r.id.clone(), r.cached, r.kind());
    match r.into_parts().1 {
        kn_shared::ComputeOutput::Analysis(result) => Ok(kn_shared::AnalyzeResponse {
            id,
            cached,
            result: *result,
        }),
        _ => Err(format!("result {id} is a {kind}, not an analysis").into()),
    }
}

pub async fn dataset() -> Res<Vec<kn_shared::RelationSummary>> {
    read(Request::get("/api/dataset").send().await).await
}

pub async fn relation(id: &str, q: &str) -> Res<kn_shared::RelationPage> {
    relation_page(id, q, 0).await
}

/// Facts this many per page of the dataset browser.
pub const PAGE: usize = 50;

/// The facts of a relation matching `q`, [`PAGE`] from `offset`.
pub async fn relation_page(id: &str, q: &str, offset: usize) -> Res<kn_shared::RelationPage> {
    let q = String::from(js_sys::encode_uri_component(q));
    read(
        Request::get(&format!(
            "/api/dataset/{id}?q={q}&offset={offset}&limit={PAGE}"
        ))
        .send()
        .await,
    )
    .await
}

/// Run an analysis as a server job: submit it, follow its progress over
/// server-sent events (`on_status` sees each update), then fetch the result.
pub async fn analyze_job(
    req: &kn_shared::AnalyzeRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<kn_shared::AnalyzeResponse> {
    let r = Request::post("/api/jobs/analyze")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    let status: kn_shared::JobStatus = read(r.send().await).await?;
    on_status(status.clone());
    let computed = status.state != kn_shared::JobState::Done;
    if computed {
        succeeded(follow(&status.id, &on_status).await?)?;
    }
    let mut r = as_analysis(result(&status.id, &on_status).await?)?;
    // The result route always reads from the store; say whether this job computed it.
    r.cached = !computed;
    Ok(r)
}

/// Compare attribution methods as a server job: submit, follow, fetch.
/// Returns the result's id (its permalink) and the report.
pub async fn methods_job(
    req: &kn_shared::methods::MethodsRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<(String, kn_shared::methods::MethodsReport)> {
    let r = Request::post("/api/jobs/methods")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    let status: kn_shared::JobStatus = read(r.send().await).await?;
    on_status(status.clone());
    if status.state != kn_shared::JobState::Done {
        succeeded(follow(&status.id, &on_status).await?)?;
    }
    let stored = result(&status.id, &on_status).await?;
    let (id, kind) = (stored.id.clone(), stored.kind());
    match stored.into_parts().1 {
        kn_shared::ComputeOutput::Methods(m) => Ok((id, *m)),
        _ => Err(format!("result {id} is a {kind}, not a comparison").into()),
    }
}

/// Follow a job's server-sent events until it ends; returns the final status.
async fn follow(id: &str, on_status: &impl Fn(kn_shared::JobStatus)) -> Res<kn_shared::JobStatus> {
    use futures_util::StreamExt;
    let mut es =
        gloo_net::eventsource::futures::EventSource::new(&format!("/api/jobs/{id}/events"))
            .map_err(|e| Failure::from(format!("cannot follow the job: {e:?}")))?;
    let mut stream = es
        .subscribe("status")
        .map_err(|e| Failure::from(format!("cannot follow the job: {e:?}")))?;
    while let Some(ev) = stream.next().await {
        // (Dropping the EventSource on an early return closes it.)
        let (_, msg) =
            ev.map_err(|e| Failure::from(format!("lost the job's progress stream: {e:?}")))?;
        let s: kn_shared::JobStatus =
            serde_json::from_str(&msg.data().as_string().unwrap_or_default())
                .map_err(|e| Failure::from(format!("bad progress event: {e}")))?;
        on_status(s.clone());
        if s.is_terminal() {
            es.close();
            return Ok(s);
        }
    }
    Err(Failure::from("the job's progress stream ended early"))
}

/// A final status, or its error in words.
fn succeeded(s: kn_shared::JobStatus) -> Res<kn_shared::JobStatus> {
    if s.state == kn_shared::JobState::Done {
        Ok(s)
    } else {
        Err(s
            .error
            .map(Failure::from)
            .unwrap_or_else(|| Failure::from(format!("the job was {}", s.state))))
    }
}

pub async fn cancel_job(id: &str) -> Res<kn_shared::JobStatus> {
    read(Request::delete(&format!("/api/jobs/{id}")).send().await).await
}

pub async fn erase(req: &kn_shared::EraseRequest) -> Res<kn_shared::EditResponse> {
    let r = Request::post("/api/edits/erase")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    read(r.send().await).await
}

/// What an edit set does (for the page's list of active edits).
pub async fn edit_summary(id: &str) -> Res<kn_shared::ActiveEdit> {
    let id = String::from(js_sys::encode_uri_component(id));
    read(
        Request::get(&format!("/api/edit-sets/{id}/summary"))
            .send()
            .await,
    )
    .await
}

/// Upload a saved edit set (the JSON file's text); the answer names it.
pub async fn upload_edit_set(json: String) -> Res<kn_shared::ActiveEdit> {
    let r = Request::post("/api/edit-sets")
        .header("content-type", "application/json")
        .body(json)
        .map_err(|e| Failure::from(e.to_string()))?;
    read(r.send().await).await
}

/// Erase a relation as a server job; the final status carries the edit.
pub async fn erase_relation_job(
    req: &kn_shared::EraseRelationRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<kn_shared::EditResponse> {
    let r = Request::post("/api/jobs/erase-relation")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    edit_job(r, on_status).await
}

/// Update a fact as a server job; the final status carries the edit.
pub async fn update_fact_job(
    req: &kn_shared::UpdateFactRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<kn_shared::EditResponse> {
    let r = Request::post("/api/jobs/update-fact")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    edit_job(r, on_status).await
}

/// Submit an edit job and follow it to the end; the final status carries the edit.
async fn edit_job(
    r: gloo_net::http::Request,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Res<kn_shared::EditResponse> {
    let status: kn_shared::JobStatus = read(r.send().await).await?;
    on_status(status.clone());
    let done = if status.is_terminal() {
        status
    } else {
        follow(&status.id, &on_status).await?
    };
    let done = succeeded(done)?;
    match done.edit {
        Some(e) => Ok(e),
        // Already stored: the outcome is in the store.
        None => result(&done.id, &on_status)
            .await?
            .edit()
            .cloned()
            .ok_or_else(|| Failure::from("the finished job carries no edit")),
    }
}

pub async fn experiments() -> Res<Vec<kn_shared::experiment::ExperimentSummary>> {
    read(Request::get("/api/experiments").send().await).await
}

pub async fn experiment(name: &str) -> Res<kn_shared::experiment::ExperimentReport> {
    let n = String::from(js_sys::encode_uri_component(name));
    read(Request::get(&format!("/api/experiments/{n}")).send().await).await
}

/// A neuron's card (computed by the server on the analysis's model and edits).
pub async fn neuron(req: &kn_shared::NeuronRequest) -> Res<kn_shared::NeuronCard> {
    let r = Request::post("/api/neuron")
        .json(req)
        .map_err(|e| Failure::from(e.to_string()))?;
    read(r.send().await).await
}
