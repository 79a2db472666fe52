//! Results in the store: writing an outcome under its id, reading it back in
//! its shared form ([`StoredResult`]), and a stored job's final status.
//!
//! A stored row holds its kind's name, the canonical request and the output's
//! JSON; every read goes through [`ResultKind`], so a row is read as exactly
//! one kind or refused.

use super::plan::Outcome;
use super::{blocking, ApiFail, AppState};
use crate::store::Stored;
use axum::http::StatusCode;
use kn_shared::methods::MethodsReport;
use kn_shared::{
    AnalysisResult, ComputeOutput, ComputeRequest, EditResponse, EditSet, JobState, JobStatus,
    ResultKind, StoredResult,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

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

fn to_text<T: Serialize>(x: &T) -> Result<String, ApiFail> {
    serde_json::to_string(x).map_err(|e| ApiFail::internal("internal", e))
}

/// An output's JSON as the store keeps it, checked to read back.
fn output_text(output: &ComputeOutput) -> Result<String, ApiFail> {
    let text = match output {
        ComputeOutput::Analysis(r) => to_text(r)?,
        ComputeOutput::Edit(r) => to_text(r)?,
        ComputeOutput::Methods(r) => to_text(r)?,
    };
    match output {
        ComputeOutput::Analysis(_) => reads_back::<AnalysisResult>(&text).map(drop)?,
        ComputeOutput::Edit(_) => reads_back::<EditResponse>(&text).map(drop)?,
        ComputeOutput::Methods(_) => reads_back::<MethodsReport>(&text).map(drop)?,
    }
    Ok(text)
}

/// Store an outcome of `request` under `id` (and its new edit set under its
/// own id).
pub async fn save(
    st: &Arc<AppState>,
    request: &ComputeRequest,
    id: &str,
    model: &str,
    outcome: Outcome,
) -> Result<(), ApiFail> {
    if !outcome.output.fits(request.kind()) {
        return Err(ApiFail::internal(
            "internal",
            format!(
                "a {} computation produced another kind's output",
                request.kind()
            ),
        ));
    }
    let store = st.store.clone();
    let kind = request.kind();
    let request = request
        .to_json()
        .map_err(|e| ApiFail::internal("internal", e))?
        .to_string();
    let (id, model) = (id.to_string(), model.to_string());
    blocking(move || {
        let text = output_text(&outcome.output)?;
        if let (Some(set), ComputeOutput::Edit(response)) = (&outcome.new_set, &outcome.output) {
            let body = to_text(set)?;
            reads_back::<EditSet>(&body)?;
            store
                .put_edit_set(&response.edit.id, &set.model, &body)
                .map_err(ApiFail::from)?;
        }
        store
            .put(&id, kind.name(), &model, &request, &text)
            .map_err(ApiFail::from)
    })
    .await
}

/// Read a stored row (off the async runtime).
pub async fn lookup(st: &Arc<AppState>, id: &str) -> Result<Option<Stored>, ApiFail> {
    let (store, id) = (st.store.clone(), id.to_string());
    blocking(move || store.lookup(&id).map_err(ApiFail::from)).await
}

/// A stored result in its shared form, or `None` when absent or evicted.
pub async fn stored(st: &Arc<AppState>, id: &str) -> Result<Option<StoredResult>, ApiFail> {
    match lookup(st, id).await? {
        Some(s) if s.result.is_some() => Ok(Some(shape(id, &s)?)),
        _ => Ok(None),
    }
}

/// The final status of a job whose result is stored.
pub async fn finished(st: &Arc<AppState>, id: &str) -> Result<Option<JobStatus>, ApiFail> {
    Ok(stored(st, id).await?.map(|s| {
        let total = s.request().progress_units();
        JobStatus {
            id: id.to_string(),
            state: JobState::Done,
            done: total,
            total,
            error: None,
            edit: s.edit().cloned(),
        }
    }))
}

fn unreadable(id: &str, what: impl std::fmt::Display) -> ApiFail {
    ApiFail::internal("store", format!("stored result {id} is unreadable: {what}"))
}

/// A stored row's kind and request.
pub fn request_of(id: &str, s: &Stored) -> Result<ComputeRequest, ApiFail> {
    let kind: ResultKind = s.kind.parse().map_err(|e| unreadable(id, e))?;
    let json = serde_json::from_str(&s.request).map_err(|e| unreadable(id, e))?;
    ComputeRequest::from_json(kind, json).map_err(|e| unreadable(id, e))
}

/// A stored row (with its output) as a [`StoredResult`].
pub fn shape(id: &str, s: &Stored) -> Result<StoredResult, ApiFail> {
    let request = request_of(id, s)?;
    let text = s.result.as_deref().unwrap_or_default();
    let parse = |e: serde_json::Error| unreadable(id, e);
    let output = match request.kind() {
        ResultKind::Analyze => ComputeOutput::Analysis(serde_json::from_str(text).map_err(parse)?),
        ResultKind::Methods => ComputeOutput::Methods(serde_json::from_str(text).map_err(parse)?),
        ResultKind::Update | ResultKind::Erase | ResultKind::EraseRelation => {
            ComputeOutput::Edit(serde_json::from_str(text).map_err(parse)?)
        }
    };
    StoredResult::new(id.to_string(), true, request, output).map_err(|e| unreadable(id, e))
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
            side_effects: vec![],
            erase: None,
            strength: None,
        };
        let output = ComputeOutput::Edit(Box::new(response.clone()));
        let fail = output_text(&output).unwrap_err();
        assert_eq!(fail.code(), "non_finite");
        let mut fine = response;
        fine.metrics.perplexity[0].after = 4.0;
        assert!(output_text(&ComputeOutput::Edit(Box::new(fine))).is_ok());
    }
}
