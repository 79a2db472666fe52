//! One thread per model. libtorch work must not block the async runtime, and a
//! model whose weights a job edits must run one job at a time; so each model
//! lives on its own thread behind a bounded queue. A handler sends a task and
//! awaits the reply; a full queue answers `429 Too Many Requests`.
//!
//! A task names the edit sets it runs on. The worker applies them before the
//! task and restores the base weights after it through a guard
//! ([`crate::engine::edit::Applied`]), so the restore happens on success,
//! error, cancellation and panic alike; no edit outlives its task.
//!
//! Predictions are small and many (the web page asks one per keystroke pause,
//! a class of students asks at once), so they do not take a queue slot each:
//! they wait in the model's [`Predictions`] list, and one drain task answers up
//! to [`PREDICT_BATCH`] of those that run on the same edit sets with one
//! forward pass ([`crate::predict::predict_many`]). The drain task takes its
//! turn in the queue like any task, so predictions neither starve a queued
//! analysis nor wait behind more than one batch of each other.

use super::ApiFail;
use crate::engine::edit::Applied;
use crate::models::{Model, TextSide};
use axum::http::StatusCode;
use kn_shared::{EditSet, ModelSummary, PredictRequest, PredictResponse};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Tasks waiting per model before the server answers 429.
pub const QUEUE_CAPACITY: usize = 8;

/// Predictions waiting per model before the server answers 429.
pub const MAX_PENDING_PREDICTS: usize = 256;

/// Most predictions answered by one forward pass. The server's token budget
/// bounds each prompt, so a batch is at most this many × `--max-tokens` rows
/// of activations.
pub const PREDICT_BATCH: usize = 32;

type Task = Box<dyn FnOnce(&Model) + Send>;

/// A model on its own thread.
pub struct ModelWorker {
    pub summary: ModelSummary,
    /// The base weights' fingerprint (part of every result's id).
    pub fingerprint: String,
    /// The tokenizer and shapes, for checking requests before queueing them.
    pub text: TextSide,
    tx: SyncSender<Task>,
    predictions: Arc<Mutex<Predictions>>,
    /// Seconds per work unit, as this server's jobs ran (for estimates).
    pub pace: Arc<Mutex<Pace>>,
}

/// How fast this model's jobs have run: seconds per work unit, a running
/// mean over the jobs timed (work units are what the budget counts).
#[derive(Debug, Default, Clone, Copy)]
pub struct Pace {
    seconds: f64,
    units: f64,
    pub jobs: usize,
}

impl Pace {
    pub fn record(&mut self, units: u64, seconds: f64) {
        if units > 0 && seconds.is_finite() {
            self.seconds += seconds;
            self.units += units as f64;
            self.jobs += 1;
        }
    }

    /// Run `work`, and if it succeeds, record its time against `units` in `pace`.
    pub fn timed<T, E>(
        pace: &Mutex<Pace>,
        units: u64,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let started = std::time::Instant::now();
        let done = work();
        if let (Ok(_), Ok(mut p)) = (&done, pace.lock()) {
            p.record(units, started.elapsed().as_secs_f64());
        }
        done
    }

    /// Seconds `units` would take at the pace so far; `None` before any job.
    pub fn estimate(&self, units: u64) -> Option<f64> {
        (self.jobs > 0 && self.units > 0.0).then(|| units as f64 * self.seconds / self.units)
    }
}

/// A prediction waiting for its batch.
struct PendingPredict {
    req: PredictRequest,
    sets: Vec<EditSet>,
    reply: oneshot::Sender<Result<PredictResponse, ApiFail>>,
}

/// A model's waiting predictions. Invariant: while `pending` is not empty, a
/// drain task is queued or running (`scheduled`).
#[derive(Default)]
struct Predictions {
    pending: VecDeque<PendingPredict>,
    scheduled: bool,
}

fn lock(q: &Mutex<Predictions>) -> MutexGuard<'_, Predictions> {
    // A panic never happens while the lock is held (only queue moves do), but
    // a poisoned list is still a valid list.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// Take the oldest waiting prediction and up to `PREDICT_BATCH - 1` more that
/// name the same edit sets, keeping the others' order. Predictions whose
/// client went away are dropped here.
fn take_batch(q: &mut Predictions) -> Vec<PendingPredict> {
    q.pending.retain(|p| !p.reply.is_closed());
    let Some(first) = q.pending.pop_front() else {
        return vec![];
    };
    let mut batch = vec![first];
    let mut rest = VecDeque::with_capacity(q.pending.len());
    while let Some(p) = q.pending.pop_front() {
        if batch.len() < PREDICT_BATCH && p.req.edits == batch[0].req.edits {
            batch.push(p);
        } else {
            rest.push_back(p);
        }
    }
    q.pending = rest;
    batch
}

/// Answer one batch: its edit sets applied for the pass only (restored by the
/// guard on every way out), one forward pass, one reply each.
fn answer(m: &Model, batch: Vec<PendingPredict>) {
    if batch.is_empty() {
        return;
    }
    let reqs: Vec<PredictRequest> = batch.iter().map(|p| p.req.clone()).collect();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _applied = Applied::new(m, &batch[0].sets)?;
        Ok::<_, crate::Error>(crate::predict::predict_many(m, &reqs))
    }));
    match r {
        Ok(Ok(answers)) => {
            for (p, a) in batch.into_iter().zip(answers) {
                let _ = p.reply.send(a.map_err(ApiFail::from));
            }
        }
        Ok(Err(e)) => {
            let fail = ApiFail::from(e);
            for p in batch {
                let _ = p.reply.send(Err(fail.clone()));
            }
        }
        Err(panic) => {
            let fail = ApiFail::internal(
                "internal",
                format!("model worker panicked: {}", panic_text(&*panic)),
            );
            for p in batch {
                let _ = p.reply.send(Err(fail.clone()));
            }
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// The task that answers waiting predictions: one batch, then back in the
/// queue behind whatever arrived meanwhile if more are waiting (or, when the
/// queue is full, the next batch at once, so none is left unscheduled).
fn drain_task(q: Arc<Mutex<Predictions>>, tx: SyncSender<Task>) -> Task {
    Box::new(move |m| loop {
        let batch = take_batch(&mut lock(&q));
        answer(m, batch);
        let mut g = lock(&q);
        if g.pending.is_empty() {
            g.scheduled = false;
            return;
        }
        match tx.try_send(drain_task(q.clone(), tx.clone())) {
            Ok(()) => return,
            Err(_) => continue,
        }
    })
}

/// What `GET /api/models` says of a model.
pub fn summary(model: &Model) -> ModelSummary {
    let cfg = model.config();
    ModelSummary {
        name: model.name.clone(),
        arch: cfg.arch,
        masked: cfg.arch.is_masked(),
        n_layers: cfg.n_layers,
        d_model: cfg.d_model,
        d_ff: cfg.d_ff,
        vocab_size: cfg.vocab_size,
        max_positions: cfg.max_positions,
        device: crate::device::describe(model.net.device()),
        storage: crate::models::precision::name(model.held.storage).into(),
        compute: crate::models::precision::name(model.dtype).into(),
    }
}

/// Sets a cancel flag when dropped unless disarmed: a synchronous request whose
/// client went away (axum drops its handler) cancels its task.
pub struct CancelOnDrop {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl CancelOnDrop {
    pub fn new() -> Self {
        CancelOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            armed: true,
        }
    }

    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

impl ModelWorker {
    pub fn spawn(model: Model) -> Self {
        let summary = summary(&model);
        let fingerprint = model.fingerprint.clone();
        let text = model.vocab();
        let (tx, rx) = sync_channel::<Task>(QUEUE_CAPACITY);
        let name = model.name.clone();
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || {
                for task in rx {
                    task(&model);
                }
            })
            .expect("spawn model worker");
        ModelWorker {
            summary,
            fingerprint,
            text,
            tx,
            predictions: Arc::default(),
            pace: Arc::default(),
        }
    }

    /// Predictions waiting for their batch (for `GET /api/health` and tests).
    pub fn waiting_predictions(&self) -> usize {
        lock(&self.predictions).pending.len()
    }

    /// Answer a prediction on `sets` (the resolved `req.edits`), batched with
    /// the others waiting for this model. 429 when too many wait.
    pub async fn predict(
        &self,
        sets: Vec<EditSet>,
        req: PredictRequest,
    ) -> Result<PredictResponse, ApiFail> {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = lock(&self.predictions);
            if q.pending.len() >= MAX_PENDING_PREDICTS {
                return Err(ApiFail::busy());
            }
            q.pending.push_back(PendingPredict { req, sets, reply });
            if !q.scheduled {
                match self
                    .tx
                    .try_send(drain_task(self.predictions.clone(), self.tx.clone()))
                {
                    Ok(()) => q.scheduled = true,
                    Err(e) => {
                        q.pending.pop_back();
                        return Err(match e {
                            TrySendError::Full(_) => ApiFail::busy(),
                            TrySendError::Disconnected(_) => gone(),
                        });
                    }
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiFail::internal(
                "internal",
                "the model worker dropped the request",
            ))
        })
    }

    /// Run `f` on the model with `edits` applied, and wait for its result. If
    /// this future is dropped (the client went away), the task is cancelled:
    /// `f` sees it through the flag it is given.
    pub async fn run<R: Send + 'static>(
        &self,
        edits: Vec<EditSet>,
        f: impl FnOnce(&Model, &AtomicBool) -> crate::Result<R> + Send + 'static,
    ) -> Result<R, ApiFail> {
        let guard = CancelOnDrop::new();
        let pending = self.submit(edits, guard.flag(), f)?;
        let r = pending.await;
        guard.disarm();
        r
    }

    /// Queue `f` (429 when the queue is full); the returned future resolves to
    /// its result. A task cancelled before it starts does not run.
    pub fn submit<R: Send + 'static>(
        &self,
        edits: Vec<EditSet>,
        cancel: Arc<AtomicBool>,
        f: impl FnOnce(&Model, &AtomicBool) -> crate::Result<R> + Send + 'static,
    ) -> Result<impl std::future::Future<Output = Result<R, ApiFail>>, ApiFail> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move |m| {
            if cancel.load(Ordering::Relaxed) {
                let _ = reply.send(Ok(Err(crate::Error::Cancelled)));
                return;
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // Dropped on every way out of this closure, unwinding included.
                let _applied = Applied::new(m, &edits)?;
                f(m, &cancel)
            }));
            let _ = reply.send(r);
        });
        match self.tx.try_send(task) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiFail::busy()),
            Err(TrySendError::Disconnected(_)) => return Err(gone()),
        }
        Ok(async move {
            match rx.await {
                Ok(Ok(Ok(r))) => Ok(r),
                Ok(Ok(Err(e))) => Err(e.into()),
                Ok(Err(panic)) => Err(ApiFail::internal(
                    "internal",
                    format!("model worker panicked: {}", panic_text(&*panic)),
                )),
                Err(_) => Err(ApiFail::internal(
                    "internal",
                    "the model worker dropped the request",
                )),
            }
        })
    }
}

fn gone() -> ApiFail {
    ApiFail::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "worker_gone",
        "the model worker has stopped",
    )
}

impl Default for CancelOnDrop {
    fn default() -> Self {
        Self::new()
    }
}

/// A progress callback for engine calls that only checks for cancellation.
pub fn until_cancelled(cancel: &AtomicBool) -> impl FnMut(usize, usize) -> bool + '_ {
    move |_, _| !cancel.load(Ordering::Relaxed)
}
