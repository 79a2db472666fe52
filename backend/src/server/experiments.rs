//! The Experiments page's data: `kn experiment` runs in the `--experiments`
//! folder and their reports. Run files are opened read-only: the server never
//! writes to, or changes the schema of, a run another process may be writing.

use super::{blocking, ApiFail, AppState};
use crate::experiment::db::RunDb;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kn_shared::experiment::{ExperimentReport, ExperimentSummary};
use kn_shared::ApiError;
use std::path::PathBuf;
use std::sync::Arc;

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
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let path = dir.join(name).join("run.sqlite");
    if !plain || !path.is_file() {
        return Err(ApiFail::new(
            StatusCode::NOT_FOUND,
            "unknown_experiment",
            format!(
                "no experiment run `{}` in the experiments folder",
                kn_shared::clip(name)
            ),
        ));
    }
    Ok(path)
}

#[utoipa::path(get, path = "/api/experiments", responses((status = 200, body = Vec<ExperimentSummary>), (status = 404, body = ApiError)))]
pub async fn experiments_route(
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
                let db = RunDb::open_read_only(&path)?;
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
pub async fn experiment_route(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentReport>, ApiFail> {
    let dir = experiments_dir(&st)?;
    blocking(move || {
        let path = run_file(&dir, &name)?;
        let db = RunDb::open_read_only(&path).map_err(|e| ApiFail::internal("store", e))?;
        db.report()
            .map_err(|e| ApiFail::internal("store", e))?
            .map(Json)
            .ok_or_else(|| {
                ApiFail::new(
                    StatusCode::NOT_FOUND,
                    "no_report",
                    format!(
                        "run `{name}` has no report yet: run `kn experiment report` on its folder"
                    ),
                )
            })
    })
    .await
}
