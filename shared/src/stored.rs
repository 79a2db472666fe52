//! The kinds of stored computation, as types.
//!
//! Every result the server keeps under a permalink is one of a few kinds (an
//! analysis, a fact update, an erase, a relation erasure, a methods
//! comparison). Each kind has one request type and one output type, and the
//! pairing lives here once: [`ComputeRequest`] has a variant per kind,
//! [`ComputeOutput`] one per output shape, and a [`StoredResult`] can only be
//! built (or read from JSON) with a request and an output of the same kind. A
//! new kind is a new variant, and every `match` that must handle it (planning
//! it again, its id, its job's size, the web page's restore) stops compiling
//! until it does.
//!
//! The JSON is unchanged from when these were strings: `kind` is
//! `analyze`, `update`, `erase`, `erase-relation` or `methods`; the stored
//! request sits under `request`; the output under `result` (an analysis),
//! `edit` (the three edits) or `methods`.

use crate::methods::{MethodsReport, MethodsRequest};
use crate::{
    AnalysisResult, AnalyzeRequest, EditResponse, EraseRelationRequest, EraseRequest,
    UpdateFactRequest,
};
use serde::{Deserialize, Serialize};

/// What a stored result is the outcome of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ResultKind {
    Analyze,
    Update,
    Erase,
    EraseRelation,
    Methods,
}

impl ResultKind {
    pub const ALL: [ResultKind; 5] = [
        ResultKind::Analyze,
        ResultKind::Update,
        ResultKind::Erase,
        ResultKind::EraseRelation,
        ResultKind::Methods,
    ];

    /// The name in JSON, in the store's `kind` column and in result ids.
    pub fn name(self) -> &'static str {
        match self {
            ResultKind::Analyze => "analyze",
            ResultKind::Update => "update",
            ResultKind::Erase => "erase",
            ResultKind::EraseRelation => "erase-relation",
            ResultKind::Methods => "methods",
        }
    }

    /// Whether its output is an edit set with its measured effect.
    pub fn is_edit(self) -> bool {
        match self {
            ResultKind::Update | ResultKind::Erase | ResultKind::EraseRelation => true,
            ResultKind::Analyze | ResultKind::Methods => false,
        }
    }
}

impl std::fmt::Display for ResultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ResultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ResultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown result kind `{s}`"))
    }
}

/// A stored computation's request, one variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ComputeRequest {
    Analyze(AnalyzeRequest),
    Update(UpdateFactRequest),
    Erase(EraseRequest),
    EraseRelation(EraseRelationRequest),
    Methods(MethodsRequest),
}

impl ComputeRequest {
    pub fn kind(&self) -> ResultKind {
        match self {
            ComputeRequest::Analyze(_) => ResultKind::Analyze,
            ComputeRequest::Update(_) => ResultKind::Update,
            ComputeRequest::Erase(_) => ResultKind::Erase,
            ComputeRequest::EraseRelation(_) => ResultKind::EraseRelation,
            ComputeRequest::Methods(_) => ResultKind::Methods,
        }
    }

    /// A request of `kind` from its JSON (a stored request, or a body).
    pub fn from_json(kind: ResultKind, json: serde_json::Value) -> serde_json::Result<Self> {
        use serde_json::from_value;
        Ok(match kind {
            ResultKind::Analyze => ComputeRequest::Analyze(from_value(json)?),
            ResultKind::Update => ComputeRequest::Update(from_value(json)?),
            ResultKind::Erase => ComputeRequest::Erase(from_value(json)?),
            ResultKind::EraseRelation => ComputeRequest::EraseRelation(from_value(json)?),
            ResultKind::Methods => ComputeRequest::Methods(from_value(json)?),
        })
    }

    /// Its JSON, as stored and as hashed into the result's id.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        use serde_json::to_value;
        match self {
            ComputeRequest::Analyze(r) => to_value(r),
            ComputeRequest::Update(r) => to_value(r),
            ComputeRequest::Erase(r) => to_value(r),
            ComputeRequest::EraseRelation(r) => to_value(r),
            ComputeRequest::Methods(r) => to_value(r),
        }
    }

    /// The model it names (`None`: the server's first; stored requests leave
    /// it out, the fingerprint in the id names the weights).
    pub fn model_mut(&mut self) -> &mut Option<String> {
        match self {
            ComputeRequest::Analyze(r) => &mut r.model,
            ComputeRequest::Update(r) => &mut r.model,
            ComputeRequest::Erase(r) => &mut r.model,
            ComputeRequest::EraseRelation(r) => &mut r.model,
            ComputeRequest::Methods(r) => &mut r.model,
        }
    }

    /// The edit sets it runs on, in order.
    pub fn edits(&self) -> &[String] {
        match self {
            ComputeRequest::Analyze(r) => &r.edits,
            ComputeRequest::Update(r) => &r.edits,
            ComputeRequest::Erase(r) => &r.edits,
            ComputeRequest::EraseRelation(r) => &r.edits,
            ComputeRequest::Methods(r) => &r.edits,
        }
    }

    /// Units of a job's progress, from the request alone: prompts attributed
    /// (an analysis, an update), methods run, facts sampled (a relation
    /// erasure: the relation may hold fewer), or one step (an erase).
    pub fn progress_units(&self) -> usize {
        match self {
            ComputeRequest::Analyze(r) => r.prompts.len(),
            ComputeRequest::Update(r) => r.prompts.len(),
            ComputeRequest::Erase(_) => 1,
            ComputeRequest::EraseRelation(r) => r.facts,
            ComputeRequest::Methods(r) => r.methods.len(),
        }
    }
}

/// What a computation produced, one variant per output shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ComputeOutput {
    /// Of an analysis.
    Analysis(Box<AnalysisResult>),
    /// Of an update, an erase or a relation erasure: the edit set made and its effect.
    Edit(Box<EditResponse>),
    /// Of a methods comparison.
    Methods(Box<MethodsReport>),
}

impl ComputeOutput {
    /// Whether it is what a computation of `kind` produces.
    pub fn fits(&self, kind: ResultKind) -> bool {
        match self {
            ComputeOutput::Analysis(_) => kind == ResultKind::Analyze,
            ComputeOutput::Edit(_) => kind.is_edit(),
            ComputeOutput::Methods(_) => kind == ResultKind::Methods,
        }
    }
}

/// `GET /api/results/{id}`: any stored result, with the request that made it.
///
/// Its request and output are of the same kind: [`StoredResult::new`] and
/// reading it from JSON refuse a mismatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredResultJson", into = "StoredResultJson")]
pub struct StoredResult {
    pub id: String,
    pub cached: bool,
    /// The canonical request (model left out; its `edits` name the edit sets
    /// it ran on).
    request: ComputeRequest,
    output: ComputeOutput,
}

/// A request and an output of different kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindMismatch {
    pub kind: ResultKind,
}

impl std::fmt::Display for KindMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a result of kind `{}` holds another kind's output",
            self.kind
        )
    }
}

impl std::error::Error for KindMismatch {}

impl StoredResult {
    pub fn new(
        id: String,
        cached: bool,
        request: ComputeRequest,
        output: ComputeOutput,
    ) -> Result<Self, KindMismatch> {
        if !output.fits(request.kind()) {
            return Err(KindMismatch {
                kind: request.kind(),
            });
        }
        Ok(StoredResult {
            id,
            cached,
            request,
            output,
        })
    }

    pub fn kind(&self) -> ResultKind {
        self.request.kind()
    }

    pub fn request(&self) -> &ComputeRequest {
        &self.request
    }

    pub fn output(&self) -> &ComputeOutput {
        &self.output
    }

    pub fn into_parts(self) -> (ComputeRequest, ComputeOutput) {
        (self.request, self.output)
    }

    /// The analysis, when it is one.
    pub fn analysis(&self) -> Option<&AnalysisResult> {
        match &self.output {
            ComputeOutput::Analysis(a) => Some(a),
            _ => None,
        }
    }

    /// The edit made and its effect, when it is an edit.
    pub fn edit(&self) -> Option<&EditResponse> {
        match &self.output {
            ComputeOutput::Edit(e) => Some(e),
            _ => None,
        }
    }

    /// The comparison, when it is one.
    pub fn methods(&self) -> Option<&MethodsReport> {
        match &self.output {
            ComputeOutput::Methods(m) => Some(m),
            _ => None,
        }
    }
}

/// [`StoredResult`] as JSON: the shape the API has always had.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StoredResult))]
pub struct StoredResultJson {
    pub id: String,
    pub kind: ResultKind,
    pub cached: bool,
    /// The canonical request (its `edits` name the edit sets it ran on).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request: serde_json::Value,
    /// When `kind` is `analyze`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AnalysisResult>,
    /// When `kind` is an edit: the edit set made and its effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<EditResponse>,
    /// When `kind` is `methods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<MethodsReport>,
}

impl TryFrom<StoredResultJson> for StoredResult {
    type Error = String;

    fn try_from(j: StoredResultJson) -> Result<Self, String> {
        let request = ComputeRequest::from_json(j.kind, j.request)
            .map_err(|e| format!("the {} request: {e}", j.kind))?;
        let output = match (j.result, j.edit, j.methods) {
            (Some(a), None, None) => ComputeOutput::Analysis(Box::new(a)),
            (None, Some(e), None) => ComputeOutput::Edit(Box::new(e)),
            (None, None, Some(m)) => ComputeOutput::Methods(Box::new(m)),
            _ => {
                return Err(
                    "a stored result holds exactly one of `result`, `edit` and `methods`".into(),
                )
            }
        };
        StoredResult::new(j.id, j.cached, request, output).map_err(|e| e.to_string())
    }
}

impl From<StoredResult> for StoredResultJson {
    fn from(s: StoredResult) -> Self {
        let kind = s.kind();
        // A request always serialises (plain data, no maps with non-string keys).
        let request = s.request.to_json().unwrap_or_default();
        let (mut result, mut edit, mut methods) = (None, None, None);
        match s.output {
            ComputeOutput::Analysis(a) => result = Some(*a),
            ComputeOutput::Edit(e) => edit = Some(*e),
            ComputeOutput::Methods(m) => methods = Some(*m),
        }
        StoredResultJson {
            id: s.id,
            kind,
            cached: s.cached,
            request,
            result,
            edit,
            methods,
        }
    }
}
