//! Does a fact's knowledge-neuron set carry *this* fact? Suppressing it (×0)
//! on the fact's prompts and on control facts' (one of the same relation, one
//! of another), each with a 95% bootstrap interval over the prompts. On
//! SmolLM2 the set found for Paris cuts a same-relation fact (Germany → Berlin)
//! as much as Paris itself: it carries the relation, and the page says so
//! ("not fact-specific") instead of leaving the two numbers to be compared by
//! eye.

use super::intervene::{intervene, relative_change};
use super::{Neuron, Query};
use crate::models::Model;
use crate::{Error, Result};
use kn_shared::{ControlFact, InterventionEffect, Specificity, SpecificityRow};

/// The factor the specificity rows suppress with (SPEC's suppression).
pub const FACTOR: f64 = 0.0;

/// Most control facts of one analysis.
pub const MAX_CONTROLS: usize = 4;

/// The controls' prompts as queries, refusing a control that is the fact
/// itself (its answer and one of its prompts): a control equal to the fact
/// would make any set look specific.
pub fn control_queries(
    model: &impl crate::models::Vocab,
    fact: (&str, &[String]),
    controls: &[ControlFact],
) -> Result<Vec<Vec<Query>>> {
    check(fact, controls)?;
    controls
        .iter()
        .map(|c| {
            c.prompts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Query::new(model, p, &c.target).map_err(|e| {
                        Error::InvalidArgument(format!("{} control, prompt {}: {e}", c.kind, i + 1))
                    })
                })
                .collect()
        })
        .collect()
}

/// What [`control_queries`] checks before it reads a prompt: at most
/// [`MAX_CONTROLS`], each with prompts, none the fact itself (a server plan
/// checks this, then reads the prompts within its own budgets).
pub fn check(fact: (&str, &[String]), controls: &[ControlFact]) -> Result<()> {
    if controls.len() > MAX_CONTROLS {
        return Err(Error::InvalidArgument(format!(
            "at most {MAX_CONTROLS} control facts (got {})",
            controls.len()
        )));
    }
    for c in controls {
        if c.prompts.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the {} control has no prompts",
                c.kind
            )));
        }
        let same_answer = c.target.trim() == fact.0.trim();
        if same_answer && c.prompts.iter().any(|p| fact.1.contains(p)) {
            return Err(Error::InvalidArgument(format!(
                "the {} control is the fact itself (answer {:?} and one of its prompts): a control must be another fact",
                c.kind, c.target
            )));
        }
    }
    Ok(())
}

/// The knowledge set suppressed on each control, beside its effect on the fact
/// (`on_fact`, already measured by the analysis at [`FACTOR`]).
pub fn specificity(
    model: &Model,
    knowledge: &[Neuron],
    on_fact: &InterventionEffect,
    target: &str,
    controls: &[(&ControlFact, Vec<Query>)],
) -> Result<Specificity> {
    let mut rows = vec![row("this fact", target, on_fact)];
    for (c, qs) in controls {
        let effect = intervene(model, qs, knowledge, FACTOR)?;
        rows.push(row(&c.kind, &c.target, &effect));
    }
    Ok(judge(rows))
}

/// The verdict on rows whose first is the fact's: fact-specific when every
/// control's interval is apart from the fact's.
pub fn judge(rows: Vec<SpecificityRow>) -> Specificity {
    let fact = &rows[0];
    let apart = |r: &SpecificityRow| r.hi < fact.lo || r.lo > fact.hi;
    let fact_specific = rows[1..].iter().all(apart);
    Specificity {
        rows,
        fact_specific,
    }
}

/// One set of prompts: each prompt's relative change, and the relative change
/// of the mean with its bootstrap interval (prompts resampled, seed 0).
fn row(set: &str, target: &str, e: &InterventionEffect) -> SpecificityRow {
    let before: Vec<f64> = e.prompts.iter().map(|p| p.p_before).collect();
    let after: Vec<f64> = e.prompts.iter().map(|p| p.p_after).collect();
    row_of(set, target, &before, &after)
}

/// A row from each prompt's P(answer) before and after.
pub fn row_of(set: &str, target: &str, before: &[f64], after: &[f64]) -> SpecificityRow {
    let per_prompt = before
        .iter()
        .zip(after)
        .map(|(b, a)| if *b > 0.0 { (a - b) / b } else { 0.0 })
        .collect();
    let pick = |ix: &[usize], v: &[f64]| ix.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let ci = crate::stats::estimate_with(before.len(), 0, |ix| {
        Some(relative_change(&pick(ix, before), &pick(ix, after)))
    });
    let change = relative_change(before, after);
    SpecificityRow {
        set: set.to_string(),
        target: target.to_string(),
        per_prompt,
        change,
        lo: ci.as_ref().map_or(change, |c| c.lo),
        hi: ci.as_ref().map_or(change, |c| c.hi),
    }
}
