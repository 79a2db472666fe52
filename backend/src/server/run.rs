//! Running a plan while the client waits (the synchronous routes); the same
//! plan as a job is [`super::jobs::launch`].

use super::edit_sets;
use super::plan::Planned;
use super::stored::{save, stored};
use super::{ApiFail, AppState};
use kn_shared::StoredResult;
use std::sync::Arc;

/// The stored result if there is one, else compute it (cancelled if the
/// client goes away), store it and return it.
pub async fn run_now(st: &Arc<AppState>, planned: Planned) -> Result<StoredResult, ApiFail> {
    if let Some(mut found) = stored(st, &planned.id).await? {
        found.cached = true;
        return Ok(found);
    }
    let sets = edit_sets::resolve(st, planned.worker, planned.edits()).await?;
    let Planned {
        request,
        id,
        worker,
        units,
        work,
        ..
    } = planned;
    let w = &st.models[worker];
    let pace = w.pace.clone();
    let outcome = w
        .run(sets, move |m, cancel| {
            super::worker::Pace::timed(&pace, units, || {
                work(m, &mut super::worker::until_cancelled(cancel))
            })
        })
        .await?;
    let outcome = outcome.named(&id);
    let output = outcome.output.clone();
    save(st, &request, &id, &w.summary.name, outcome).await?;
    StoredResult::new(id, false, request, output).map_err(|e| ApiFail::internal("internal", e))
}
