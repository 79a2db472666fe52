//! Calls to the `kn serve` JSON API. Errors come back as the server's message.

use gloo_net::http::{Request, Response};
use kn_shared::{ApiError, ModelSummary, PredictRequest, PredictResponse};
use serde::de::DeserializeOwned;

async fn read<T: DeserializeOwned>(resp: Result<Response, gloo_net::Error>) -> Result<T, String> {
    let resp = resp.map_err(|e| format!("the server did not answer ({e})"))?;
    if resp.ok() {
        return resp
            .json::<T>()
            .await
            .map_err(|e| format!("unexpected response: {e}"));
    }
    let status = resp.status();
    match resp.json::<ApiError>().await {
        Ok(e) => Err(e.error.message),
        Err(_) => Err(format!("the server answered {status}")),
    }
}

pub async fn models() -> Result<Vec<ModelSummary>, String> {
    read(Request::get("/api/models").send().await).await
}

pub async fn predict(req: &PredictRequest) -> Result<PredictResponse, String> {
    let r = Request::post("/api/predict")
        .json(req)
        .map_err(|e| e.to_string())?;
    read(r.send().await).await
}

/// A stored result. If the store evicted it, the server recomputes it from its
/// stored request (202 and a job): follow the job, then read it again.
pub async fn result(
    id: &str,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Result<kn_shared::StoredResult, String> {
    let url = format!("/api/results/{id}");
    let resp = Request::get(&url).send().await;
    if let Ok(r) = &resp {
        if r.status() == 202 {
            let status: kn_shared::JobStatus = r
                .json()
                .await
                .map_err(|e| format!("unexpected response: {e}"))?;
            on_status(status.clone());
            succeeded(follow(&status.id, &on_status).await?)?;
            return read(Request::get(&url).send().await).await;
        }
    }
    read(resp).await
}

/// A stored analysis, as the analysis view shows it.
pub fn as_analysis(r: kn_shared::StoredResult) -> Result<kn_shared::AnalyzeResponse, String> {
    match r.result {
        Some(result) => Ok(kn_shared::AnalyzeResponse {
            id: r.id,
            cached: r.cached,
            result,
        }),
        None => Err(format!("result {} is a {}, not an analysis", r.id, r.kind)),
    }
}

pub async fn dataset() -> Result<Vec<kn_shared::RelationSummary>, String> {
    read(Request::get("/api/dataset").send().await).await
}

pub async fn relation(id: &str, q: &str) -> Result<kn_shared::RelationPage, String> {
    let q = String::from(js_sys::encode_uri_component(q));
    read(
        Request::get(&format!("/api/dataset/{id}?q={q}&limit=50"))
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
) -> Result<kn_shared::AnalyzeResponse, String> {
    let r = Request::post("/api/jobs/analyze")
        .json(req)
        .map_err(|e| e.to_string())?;
    let status: kn_shared::JobStatus = read(r.send().await).await?;
    on_status(status.clone());
    let computed = status.state != "done";
    if computed {
        succeeded(follow(&status.id, &on_status).await?)?;
    }
    let mut r = as_analysis(result(&status.id, &on_status).await?)?;
    // The result route always reads from the store; say whether this job computed it.
    r.cached = !computed;
    Ok(r)
}

/// Follow a job's server-sent events until it ends; returns the final status.
async fn follow(
    id: &str,
    on_status: &impl Fn(kn_shared::JobStatus),
) -> Result<kn_shared::JobStatus, String> {
    use futures_util::StreamExt;
    let mut es =
        gloo_net::eventsource::futures::EventSource::new(&format!("/api/jobs/{id}/events"))
            .map_err(|e| format!("cannot follow the job: {e:?}"))?;
    let mut stream = es
        .subscribe("status")
        .map_err(|e| format!("cannot follow the job: {e:?}"))?;
    while let Some(ev) = stream.next().await {
        // (Dropping the EventSource on an early return closes it.)
        let (_, msg) = ev.map_err(|e| format!("lost the job's progress stream: {e:?}"))?;
        let s: kn_shared::JobStatus =
            serde_json::from_str(&msg.data().as_string().unwrap_or_default())
                .map_err(|e| format!("bad progress event: {e}"))?;
        on_status(s.clone());
        if s.is_terminal() {
            es.close();
            return Ok(s);
        }
    }
    Err("the job's progress stream ended early".into())
}

/// A final status, or its error in words.
fn succeeded(s: kn_shared::JobStatus) -> Result<kn_shared::JobStatus, String> {
    if s.state == "done" {
        Ok(s)
    } else {
        Err(s
            .error
            .map(|e| e.message)
            .unwrap_or_else(|| format!("the job was {}", s.state)))
    }
}

pub async fn cancel_job(id: &str) -> Result<kn_shared::JobStatus, String> {
    read(Request::delete(&format!("/api/jobs/{id}")).send().await).await
}

pub async fn erase(req: &kn_shared::EraseRequest) -> Result<kn_shared::EditResponse, String> {
    let r = Request::post("/api/edits/erase")
        .json(req)
        .map_err(|e| e.to_string())?;
    read(r.send().await).await
}

/// What an edit set does (for the page's list of active edits).
pub async fn edit_summary(id: &str) -> Result<kn_shared::ActiveEdit, String> {
    let id = String::from(js_sys::encode_uri_component(id));
    read(
        Request::get(&format!("/api/edit-sets/{id}/summary"))
            .send()
            .await,
    )
    .await
}

/// Upload a saved edit set (the JSON file's text); the answer names it.
pub async fn upload_edit_set(json: String) -> Result<kn_shared::ActiveEdit, String> {
    let r = Request::post("/api/edit-sets")
        .header("content-type", "application/json")
        .body(json)
        .map_err(|e| e.to_string())?;
    read(r.send().await).await
}

/// Erase a relation as a server job; the final status carries the edit.
pub async fn erase_relation_job(
    req: &kn_shared::EraseRelationRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Result<kn_shared::EditResponse, String> {
    let r = Request::post("/api/jobs/erase-relation")
        .json(req)
        .map_err(|e| e.to_string())?;
    edit_job(r, on_status).await
}

/// Update a fact as a server job; the final status carries the edit.
pub async fn update_fact_job(
    req: &kn_shared::UpdateFactRequest,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Result<kn_shared::EditResponse, String> {
    let r = Request::post("/api/jobs/update-fact")
        .json(req)
        .map_err(|e| e.to_string())?;
    edit_job(r, on_status).await
}

/// Submit an edit job and follow it to the end; the final status carries the edit.
async fn edit_job(
    r: gloo_net::http::Request,
    on_status: impl Fn(kn_shared::JobStatus),
) -> Result<kn_shared::EditResponse, String> {
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
            .edit
            .ok_or_else(|| "the finished job carries no edit".to_string()),
    }
}

pub async fn experiments() -> Result<Vec<kn_shared::experiment::ExperimentSummary>, String> {
    read(Request::get("/api/experiments").send().await).await
}

pub async fn experiment(name: &str) -> Result<kn_shared::experiment::ExperimentReport, String> {
    let n = String::from(js_sys::encode_uri_component(name));
    read(Request::get(&format!("/api/experiments/{n}")).send().await).await
}
