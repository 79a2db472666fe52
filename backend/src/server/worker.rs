//! One thread per model. libtorch work must not block the async runtime, and a
//! model whose weights a job edits must run one job at a time; so each model
//! lives on its own thread behind a bounded queue. A handler sends a task and
//! awaits the reply; a full queue answers `429 Too Many Requests`.
//!
//! A task names the edit sets it runs on. The worker applies them before the
//! task and restores the base weights after it through a guard
//! ([`crate::engine::edit::Applied`]), so the restore happens on success,
//! error, cancellation and panic alike; no edit outlives its task.

use super::ApiFail;
use crate::engine::edit::Applied;
use crate::models::{Model, TextSide};
use axum::http::StatusCode;
use kn_shared::{EditSet, ModelSummary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Tasks waiting per model before the server answers 429.
pub const QUEUE_CAPACITY: usize = 8;

type Task = Box<dyn FnOnce(&Model) + Send>;

/// A model on its own thread.
pub struct ModelWorker {
    pub summary: ModelSummary,
    /// The base weights' fingerprint (part of every result's id).
    pub fingerprint: String,
    /// The tokenizer and shapes, for checking requests before queueing them.
    pub text: TextSide,
    tx: SyncSender<Task>,
}

/// What `GET /api/models` says of a model.
pub fn summary(model: &Model) -> ModelSummary {
    let cfg = model.config();
    ModelSummary {
        name: model.name.clone(),
        arch: serde_json::to_value(cfg.arch)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        masked: cfg.arch.is_masked(),
        n_layers: cfg.n_layers,
        d_model: cfg.d_model,
        d_ff: cfg.d_ff,
        vocab_size: cfg.vocab_size,
        max_positions: cfg.max_positions,
        device: crate::device::describe(model.net.device()),
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
        }
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
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiFail::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "worker_gone",
                    "the model worker has stopped",
                ))
            }
        }
        Ok(async move {
            match rx.await {
                Ok(Ok(Ok(r))) => Ok(r),
                Ok(Ok(Err(e))) => Err(e.into()),
                Ok(Err(panic)) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("unknown panic");
                    Err(ApiFail::internal(
                        "internal",
                        format!("model worker panicked: {msg}"),
                    ))
                }
                Err(_) => Err(ApiFail::internal(
                    "internal",
                    "the model worker dropped the request",
                )),
            }
        })
    }
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
