//! ParaRel, browsable: relations, their templates, and pages of facts.

use super::{ApiFail, AppState};
use crate::pararel::ParaRel;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kn_shared::{ApiError, FactEntry, RelationPage, RelationSummary};
use std::sync::Arc;

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

pub(super) fn dataset(st: &AppState) -> Result<&ParaRel, ApiFail> {
    st.dataset.as_ref().ok_or_else(|| {
        ApiFail::new(
            StatusCode::NOT_FOUND,
            "no_dataset",
            "ParaRel is not loaded: start kn serve with --data DIR",
        )
    })
}

#[utoipa::path(get, path = "/api/dataset", responses((status = 200, body = Vec<RelationSummary>), (status = 404, body = ApiError)))]
pub async fn dataset_route(
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
pub struct PageQuery {
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

#[utoipa::path(get, path = "/api/dataset/{relation}", params(("relation" = String, Path), ("q" = Option<String>, Query), ("offset" = Option<usize>, Query), ("limit" = Option<usize>, Query, description = "at most 500")), responses((status = 200, body = RelationPage), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub async fn relation_route(
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
