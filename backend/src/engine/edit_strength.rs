//! Finding an edit strength that works on the loaded model.
//!
//! The paper's `λ2 = 8` was chosen on BERT-base. On a small causal model the
//! same setting can move every prompt to one token (SmolLM2: Paris → London
//! answers " the" everywhere, perplexity ×10¹⁰), and a user who tries the
//! default learns nothing but that it failed. So the update form can ask for
//! the smallest `λ2` on a stated grid ([`kn_shared::STRENGTH_GRID`]) that
//! *works*: the new answer becomes the top-1 on the edit prompt (the fact's
//! first) while the perplexity of the side-effect prompts at most doubles. When
//! none does, that is the answer, said before anything is applied.
//!
//! Each try is one edit set applied and two forward passes (the fact's prompts,
//! the side prompts); the attribution that chose the neurons is shared.

use super::edit::{perplexity, update_fact, Applied, UpdateOptions};
use super::readout::{probabilities, probabilities_and_ranks};
use super::{Neuron, Query};
use crate::models::{Hooks, Model};
use crate::{Error, Result};
use kn_shared::{StrengthSearch, StrengthTry};

/// Perplexity may grow by at most this factor for a setting to work.
pub const MAX_PERPLEXITY_RATIO: f64 = 2.0;

/// What a search edits and measures.
pub struct Search<'a> {
    /// The fact's knowledge neurons, strongest first (the first `k` are edited).
    pub neurons: &'a [Neuron],
    /// The fact's prompts (the first is the edit prompt), old answer as target.
    pub prompts: &'a [Query],
    /// The new answer's token id on each prompt.
    pub new_ids: &'a [u32],
    /// `k`, `λ1` and the norm scaling; `λ2` comes from the grid.
    pub opts: UpdateOptions,
    /// Side-effect prompts (with their gold answers), and what they are.
    pub side: &'a [Query],
    pub side_name: String,
}

/// Try every `λ2` of `grid` (ascending); the chosen one is the smallest that
/// works. The model is left as it was.
pub fn search(model: &Model, s: &Search, grid: &[f64]) -> Result<StrengthSearch> {
    let first = s
        .prompts
        .first()
        .ok_or_else(|| Error::InvalidArgument("a fact needs at least one prompt".into()))?;
    if s.side.is_empty() {
        return Err(Error::InvalidArgument(
            "an edit-strength search needs side-effect prompts to measure perplexity on".into(),
        ));
    }
    if s.new_ids.len() != s.prompts.len() {
        return Err(Error::InvalidArgument(
            "one new answer id per prompt is needed".into(),
        ));
    }
    let ppl_before = perplexity(model, s.side)?;
    let tried = grid
        .iter()
        .map(|&lambda2| try_one(model, s, lambda2, ppl_before))
        .collect::<Result<Vec<_>>>()?;
    let chosen = tried.iter().find(|t| t.works).map(|t| t.lambda2);
    Ok(StrengthSearch {
        tried,
        chosen,
        prompt: first.prompt.clone(),
        side: s.side_name.clone(),
        side_prompts: s.side.len(),
    })
}

/// One setting: apply its edit, read the fact's prompts and the side prompts.
fn try_one(model: &Model, s: &Search, lambda2: f64, ppl_before: f64) -> Result<StrengthTry> {
    let opts = UpdateOptions { lambda2, ..s.opts };
    let first = &s.prompts[0];
    let set = update_fact(
        model,
        s.neurons,
        first.target,
        s.new_ids[0],
        &opts,
        format!("λ2 = {lambda2} (search)"),
    )?;
    let applied = Applied::new(model, std::slice::from_ref(&set))?;
    let (_, top) = probabilities(model, s.prompts, &Hooks::default())?;
    let ranks = probabilities_and_ranks(model, s.prompts, &[s.new_ids])?;
    let ppl_after = perplexity(model, s.side)?;
    drop(applied);
    let hits = ranks[0].iter().filter(|(_, rank)| *rank == 1).count();
    let (p_new, rank) = ranks[0][0];
    let works = rank == 1 && ppl_after <= MAX_PERPLEXITY_RATIO * ppl_before;
    Ok(StrengthTry {
        lambda2,
        top1: model.tokenizer.token_text(top[0]),
        p_new,
        success_rate: hits as f64 / s.prompts.len() as f64,
        perplexity_before: ppl_before,
        perplexity_after: ppl_after,
        works,
    })
}
