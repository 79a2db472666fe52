//! Long computations as jobs: queued on the model's worker, followed through a
//! status channel (`GET /api/jobs/{id}` and its server-sent events), cancelled
//! with `DELETE /api/jobs/{id}`. A job's id is the id of the result it stores,
//! so asking twice for the same computation joins the job in flight, and a
//! finished job is answered from the store. Finished jobs leave the map after
//! [`JOB_TTL`]; the map never holds more than [`MAX_JOBS`].

use super::edit_sets;
use super::plan::Planned;
use super::stored::{finished, save};
use super::worker::Pace;
use super::{ApiFail, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kn_shared::{ApiError, ComputeOutput, EditSet, JobState, JobStatus};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a finished job's status stays in memory (its result stays in the store).
pub const JOB_TTL: Duration = Duration::from_secs(600);
/// Most jobs remembered at once.
pub const MAX_JOBS: usize = 1000;

/// Jobs by id.
#[derive(Default)]
pub struct Jobs {
    map: std::sync::Mutex<HashMap<String, Entry>>,
}

struct Entry {
    status: watch::Receiver<JobStatus>,
    cancel: Arc<AtomicBool>,
    created: Instant,
}

impl Jobs {
    fn get(&self, id: &str) -> Option<(watch::Receiver<JobStatus>, Arc<AtomicBool>)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).map(|j| (j.status.clone(), j.cancel.clone()))
    }

    fn insert(&self, id: String, entry: Entry) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, e| !(e.status.borrow().is_terminal() && now - e.created > JOB_TTL));
        if map.len() >= MAX_JOBS {
            // Forget the oldest finished jobs first.
            let mut done: Vec<(Instant, String)> = map
                .iter()
                .filter(|(_, e)| e.status.borrow().is_terminal())
                .map(|(k, e)| (e.created, k.clone()))
                .collect();
            done.sort();
            for (_, k) in done.into_iter().take(map.len() + 1 - MAX_JOBS) {
                map.remove(&k);
            }
        }
        map.insert(id, entry);
    }

    /// Jobs remembered now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn status(id: &str, state: JobState, done: usize, total: usize) -> JobStatus {
    JobStatus {
        id: id.to_string(),
        state,
        done,
        total,
        error: None,
        edit: None,
    }
}

/// Start `planned` as a job (202), join the same job in flight (202), or
/// answer from the store (200, `done`).
pub async fn launch(st: &Arc<AppState>, planned: Planned) -> Result<Response, ApiFail> {
    if let Some(done) = finished(st, &planned.id).await? {
        return Ok((StatusCode::OK, Json(done)).into_response());
    }
    if let Some((rx, _)) = st.jobs.get(&planned.id) {
        let s = rx.borrow().clone();
        match s.state {
            JobState::Queued | JobState::Running | JobState::Done => {
                return Ok((StatusCode::ACCEPTED, Json(s)).into_response())
            }
            // Ended without a result: run it again.
            JobState::Failed | JobState::Cancelled => {}
        }
    }
    let sets = edit_sets::resolve(st, planned.worker, planned.edits()).await?;
    let queued = start(st, planned, sets)?;
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

/// Queue the job on its model's worker; its progress and end go to a watch
/// channel, its result to the store.
fn start(st: &Arc<AppState>, planned: Planned, sets: Vec<EditSet>) -> Result<JobStatus, ApiFail> {
    let Planned {
        request,
        id,
        worker,
        total,
        units,
        work,
    } = planned;
    let pace = st.models[worker].pace.clone();
    let queued = status(&id, JobState::Queued, 0, total);
    let (tx, rx) = watch::channel(queued.clone());
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx2, id2) = (tx.clone(), id.clone());
    let pending = st.models[worker].submit(sets, cancel.clone(), move |m, cancel| {
        let mut progress = |done: usize, total: usize| {
            tx2.send_if_modified(|s| {
                let changed = s.state != JobState::Running || s.done != done || s.total != total;
                *s = status(&id2, JobState::Running, done, total);
                changed
            });
            !cancel.load(Ordering::Relaxed)
        };
        Pace::timed(&pace, units, || work(m, &mut progress))
    })?;
    st.jobs.insert(
        id.clone(),
        Entry {
            status: rx,
            cancel,
            created: Instant::now(),
        },
    );
    let st = st.clone();
    let model = st.models[worker].summary.name.clone();
    tokio::spawn(async move {
        let end = |state: JobState, error: Option<ApiError>| JobStatus {
            done: if state == JobState::Done {
                total
            } else {
                tx.borrow().done
            },
            error: error.map(|e| e.error),
            ..status(&id, state, 0, total)
        };
        let final_status = match pending.await {
            Ok(outcome) => {
                let outcome = outcome.named(&id);
                let edit = match &outcome.output {
                    ComputeOutput::Edit(response) => Some((**response).clone()),
                    ComputeOutput::Analysis(_) | ComputeOutput::Methods(_) => None,
                };
                match save(&st, &request, &id, &model, outcome).await {
                    Ok(()) => JobStatus {
                        edit,
                        ..end(JobState::Done, None)
                    },
                    Err(fail) => end(JobState::Failed, Some(fail.body)),
                }
            }
            Err(fail) if fail.code() == "cancelled" => end(JobState::Cancelled, Some(fail.body)),
            Err(fail) => end(JobState::Failed, Some(fail.body)),
        };
        tx.send_replace(final_status);
    });
    Ok(queued)
}

/// A job's status channel, or its final status from the store.
async fn find(
    st: &Arc<AppState>,
    id: &str,
) -> Result<(watch::Receiver<JobStatus>, Option<Arc<AtomicBool>>), ApiFail> {
    if let Some((rx, cancel)) = st.jobs.get(id) {
        return Ok((rx, Some(cancel)));
    }
    if let Some(done) = finished(st, id).await? {
        return Ok((watch::channel(done).1, None));
    }
    Err(ApiFail::new(
        StatusCode::NOT_FOUND,
        "job_not_found",
        format!("no job has id {id}"),
    ))
}

#[utoipa::path(get, path = "/api/jobs/{id}", params(("id" = String, Path)), responses((status = 200, body = JobStatus), (status = 404, body = ApiError)))]
pub async fn job_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiFail> {
    let (rx, _) = find(&st, &id).await?;
    let s = rx.borrow().clone();
    Ok(Json(s))
}

#[utoipa::path(delete, path = "/api/jobs/{id}", params(("id" = String, Path)), responses((status = 202, body = JobStatus), (status = 404, body = ApiError)))]
pub async fn cancel_job_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    let (rx, cancel) = find(&st, &id).await?;
    if let Some(c) = cancel {
        c.store(true, Ordering::Relaxed);
    }
    let s = rx.borrow().clone();
    Ok((StatusCode::ACCEPTED, Json(s)).into_response())
}

/// Server-sent events: one `status` event per change, ending with the final state.
#[utoipa::path(get, path = "/api/jobs/{id}/events", params(("id" = String, Path)), responses((status = 200, description = "text/event-stream of `status` events, each a JobStatus; ends with a terminal state"), (status = 404, body = ApiError)))]
pub async fn job_events_route(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiFail> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (rx, _) = find(&st, &id).await?;
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
