//! One fact, end to end, as the web app's attribution and comparison views show
//! it: attribution of every prompt, refined knowledge and baseline neurons, and
//! suppressing and amplifying each set (and random neurons) on the fact's prompts.

use super::attribution::{rows, Options};
use super::intervene::{intervene, random_like};
use super::selection::{
    attribute_fact_with, fact_neurons, mean_activations, mean_scores, Thresholds,
};
use super::{specificity, Neuron, Query};
use crate::models::Model;
use crate::{Error, Result};
use kn_shared::{AnalysisResult, AnalyzeRequest, InterventionReport, ModelSummary, PromptOverview};

/// Most prompts in one analysis.
pub const MAX_PROMPTS: usize = 50;

pub fn analyze(
    model: &Model,
    req: &AnalyzeRequest,
    summary: ModelSummary,
) -> Result<AnalysisResult> {
    analyze_with(model, req, summary, &mut |_, _| true)
}

/// [`analyze`] with progress `(prompts attributed, prompts)`; return `false` to cancel.
pub fn analyze_with(
    model: &Model,
    req: &AnalyzeRequest,
    summary: ModelSummary,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<AnalysisResult> {
    let started = std::time::Instant::now();
    if req.prompts.is_empty() || req.prompts.len() > MAX_PROMPTS {
        return Err(Error::InvalidArgument(format!(
            "give between 1 and {MAX_PROMPTS} prompts (got {})",
            req.prompts.len()
        )));
    }
    let queries = req
        .prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Query::new(model, p, &req.target)
                .map(|q| q.with_positions(req.answer_positions))
                .map_err(|e| Error::InvalidArgument(format!("prompt {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = Options {
        steps: req.steps,
        riemann: req.riemann,
        ..Options::default()
    };
    let th = Thresholds {
        t: req.t,
        p: req.p,
        min_prompts: req.min_prompts,
    };
    th.validate()?;
    // Controls are checked before the attribution is paid for.
    let controls = specificity::control_queries(model, (&req.target, &req.prompts), &req.controls)?;
    let fact = attribute_fact_with(model, queries.clone(), &opts, progress)?;
    let neurons = fact_neurons(model, &fact, &req.target, &th)?;
    let prompts = queries
        .iter()
        .zip(&fact.attributions)
        .map(|(q, a)| PromptOverview {
            prompt: q.prompt.clone(),
            tokens: q.tokens(model),
            blank_index: q.cloze.blank,
            p_target: a.p_target,
            max_abs_residual: a.residual.iter().map(|r| r.abs()).fold(0.0, f64::max),
            max_score: Some(a.scores.max().double_value(&[])),
        })
        .collect();
    let kn_set: Vec<Neuron> = neurons.knowledge.iter().map(|n| n.neuron()).collect();
    let base: Vec<Neuron> = neurons.baseline.iter().map(|n| n.neuron()).collect();
    let report = |factor: f64| -> Result<Option<InterventionReport>> {
        if kn_set.is_empty() {
            return Ok(None);
        }
        let random = random_like(model.config(), &kn_set, 0);
        Ok(Some(InterventionReport {
            factor,
            knowledge: intervene(model, &queries, &kn_set, factor)?,
            baseline: if base.is_empty() {
                None
            } else {
                Some(intervene(model, &queries, &base, factor)?)
            },
            random: Some(intervene(model, &queries, &random, factor)?),
            unrelated: None,
        }))
    };
    let suppress = report(specificity::FACTOR)?;
    let specificity = match &suppress {
        Some(r) if !controls.is_empty() => {
            let named: Vec<_> = req.controls.iter().zip(controls).collect();
            Some(specificity::specificity(
                model,
                &kn_set,
                &r.knowledge,
                &req.target,
                &named,
            )?)
        }
        _ => None,
    };
    Ok(AnalysisResult {
        request: req.clone(),
        model: summary,
        mean_scores: rows(&mean_scores(&fact))?,
        mean_activations: rows(&mean_activations(&fact))?,
        prompts,
        suppress,
        amplify: report(2.0)?,
        specificity,
        neurons,
        seconds: started.elapsed().as_secs_f64(),
    })
}
