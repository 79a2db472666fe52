//! A computation, planned: what every stored kind of work is before it runs.
//!
//! A route checks its request against the budgets and turns it into a
//! [`Planned`]: the canonical request (its kind is the variant), the id
//! derived from it and the model's fingerprint alone, the model's worker, and
//! the work as a closure. [`super::run`] runs a plan while the client waits,
//! [`super::jobs`] as a job; either stores its [`Outcome`] under the id
//! ([`super::stored`]). Nothing here knows the routes, so the routes, the
//! runners and re-planning ([`super::results`]) all depend on this file and
//! not on each other.

use super::ApiFail;
use crate::models::Model;
use crate::store::Store;
use kn_shared::methods::MethodsReport;
use kn_shared::{AnalysisResult, ComputeOutput, ComputeRequest, EditResponse, EditSet};

/// A progress callback: `(done, total)`; `false` asks the work to stop.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;

/// The work of a plan, run on the model's thread.
pub type Work = Box<dyn FnOnce(&Model, Progress) -> crate::Result<Outcome> + Send>;

/// What a computation produces: its output, and the edit set it made (stored
/// beside the output under its own id) when it is an edit.
pub struct Outcome {
    pub output: ComputeOutput,
    pub new_set: Option<Box<EditSet>>,
}

impl Outcome {
    pub fn analysis(a: AnalysisResult) -> Self {
        Outcome {
            output: ComputeOutput::Analysis(Box::new(a)),
            new_set: None,
        }
    }

    pub fn methods(m: MethodsReport) -> Self {
        Outcome {
            output: ComputeOutput::Methods(Box::new(m)),
            new_set: None,
        }
    }

    pub fn edit(response: EditResponse, set: EditSet) -> Self {
        Outcome {
            output: ComputeOutput::Edit(Box::new(response)),
            new_set: Some(Box::new(set)),
        }
    }

    /// The outcome of the plan with `id`: an edit's response carries its
    /// permalink id.
    pub fn named(mut self, id: &str) -> Self {
        if let ComputeOutput::Edit(r) = &mut self.output {
            r.id = id.to_string();
        }
        self
    }
}

/// A computation ready to run: where, on what, and under which id.
pub struct Planned {
    /// The canonical request: model name left out (the fingerprint in the id
    /// names the weights); its `edits` are the edit sets it runs on, in order.
    pub request: ComputeRequest,
    pub id: String,
    /// Index of the model's worker.
    pub worker: usize,
    /// Units of progress (prompts, facts or methods).
    pub total: usize,
    /// Work units the budget counted (0 where it counts none): what a job's
    /// time is measured against for later estimates.
    pub units: u64,
    pub work: Work,
}

impl Planned {
    /// Plan `request` (any model name in it is left out of the canonical
    /// form) on the worker `worker` whose weights have `fingerprint`.
    pub fn new(
        mut request: ComputeRequest,
        fingerprint: &str,
        worker: usize,
        total: usize,
        work: Work,
    ) -> Result<Planned, ApiFail> {
        *request.model_mut() = None;
        let id = identify(&request, fingerprint)?;
        Ok(Planned {
            request,
            id,
            worker,
            total,
            units: 0,
            work,
        })
    }

    /// The plan, with the work units its budget counted.
    pub fn with_units(self, units: u64) -> Planned {
        Planned { units, ..self }
    }

    pub fn edits(&self) -> &[String] {
        self.request.edits()
    }
}

/// The id of a canonical request on the model with `fingerprint`: a hash of
/// the kind, the fingerprint and the request's JSON.
pub fn identify(request: &ComputeRequest, fingerprint: &str) -> Result<String, ApiFail> {
    let canonical = request
        .to_json()
        .map_err(|e| ApiFail::internal("internal", e))?;
    Ok(Store::id(request.kind().name(), fingerprint, &canonical))
}
