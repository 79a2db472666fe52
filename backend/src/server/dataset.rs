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

/// How well `needle` (lower case) matches the best of `fields`: 0 a whole
/// field, 1 the start of a word, 2 anywhere; `None` no match. An empty
/// needle matches everything equally.
fn match_rank(needle: &str, fields: &[&str]) -> Option<u8> {
    if needle.is_empty() {
        return Some(0);
    }
    fields
        .iter()
        .filter_map(|f| {
            let f = f.to_lowercase();
            if f == needle {
                Some(0)
            } else if f
                .match_indices(needle)
                .any(|(i, _)| i == 0 || !f[..i].ends_with(char::is_alphanumeric))
            {
                Some(1)
            } else {
                f.contains(needle).then_some(2)
            }
        })
        .min()
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
    let needle = q.q.trim().to_lowercase();
    let mut matching: Vec<(u8, FactEntry)> = r
        .facts
        .iter()
        .enumerate()
        .filter_map(|(index, f)| {
            let rank = match_rank(&needle, &[&f.subject, &f.object])?;
            Some((
                rank,
                FactEntry {
                    index,
                    subject: f.subject.clone(),
                    object: f.object.clone(),
                },
            ))
        })
        .collect();
    // Best matches first ("Italy → Rome" before "Kingdom of Italy →
    // Florence"), the dataset's order among equals.
    matching.sort_by_key(|(rank, _)| *rank);
    let matching: Vec<FactEntry> = matching.into_iter().map(|(_, f)| f).collect();
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
