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

pub async fn analyze(
    req: &kn_shared::AnalyzeRequest,
) -> Result<kn_shared::AnalyzeResponse, String> {
    let r = Request::post("/api/analyze")
        .json(req)
        .map_err(|e| e.to_string())?;
    read(r.send().await).await
}

pub async fn result(id: &str) -> Result<kn_shared::AnalyzeResponse, String> {
    read(Request::get(&format!("/api/results/{id}")).send().await).await
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
