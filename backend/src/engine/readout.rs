//! Reading answers at the blank: P(answer), the top-1 token and ranks of
//! prompts (one-token or chains of steps) under given hooks, in one forward
//! pass and one device read per list. Attribution, interventions, edits and
//! the report all read their numbers through here.

use super::{Chains, Query};
use crate::models::{Batch, Hooks, Model};
use crate::{Error, Result};
use kn_shared::PromptEffect;
use tch::{Kind, Tensor};

/// `P(target)` and the top-1 token of every query, with `hooks` applied.
///
/// A multi-token answer's P is the product over its steps, with the hooks
/// acting at the steps its [`Query::positions`] name (every step, or the
/// first); its top-1 is the first step's. Hooks must then hold one operation
/// for all rows (`[d_ff]`), as [`super::intervene::scale_hooks`] makes.
pub fn probabilities(
    model: &Model,
    queries: &[Query],
    hooks: &Hooks,
) -> Result<(Vec<f64>, Vec<u32>)> {
    let a = answers(model, queries, hooks)?;
    Ok(a.into_iter().map(|a| (a.p, a.top1)).unzip())
}

/// What [`answers`] reads of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// P(answer): the product of its pieces' probabilities.
    pub p: f64,
    /// The top-1 token at the first step's blank.
    pub top1: u32,
    /// Whether the top-1 of every step is that step's piece: the model's
    /// greedy answer is the whole answer.
    pub greedy: bool,
}

/// [`probabilities`], with whether the model's greedy answer is the answer.
pub fn answers(model: &Model, queries: &[Query], hooks: &Hooks) -> Result<Vec<Answer>> {
    if queries.is_empty() {
        return Err(Error::InvalidArgument("no prompts".into()));
    }
    if !queries.iter().any(Query::is_chain) {
        let (p, top) = step_probabilities(model, queries, hooks)?;
        return Ok(p
            .into_iter()
            .zip(top)
            .zip(queries)
            .map(|((p, top1), q)| Answer {
                p,
                top1,
                greedy: top1 == q.target,
            })
            .collect());
    }
    let chains = Chains::new(queries);
    let hooks = hooks.for_rows(&chains.acted, model.config())?;
    let (p, top) = step_probabilities(model, &chains.steps, &hooks)?;
    let greedy = chains.all(|s| top[s] == chains.steps[s].target);
    Ok(chains
        .product(&p)
        .into_iter()
        .zip(&chains.of)
        .zip(greedy)
        .map(|((p, r), greedy)| Answer {
            p,
            top1: top[r.start],
            greedy,
        })
        .collect())
}

/// `P(target)` and the top-1 token at each one-token query's blank.
fn step_probabilities(
    model: &Model,
    queries: &[Query],
    hooks: &Hooks,
) -> Result<(Vec<f64>, Vec<u32>)> {
    let seqs: Vec<Vec<u32>> = queries.iter().map(|q| q.cloze.ids.clone()).collect();
    let blanks: Vec<usize> = queries.iter().map(|q| q.cloze.blank).collect();
    let batch = Batch::new(&seqs, &blanks, model.net.device())?;
    hooks.validate(model.config(), queries.len())?;
    let logits = tch::no_grad(|| model.net.forward(&batch, hooks).logits);
    let targets: Vec<u32> = queries.iter().map(|q| q.target).collect();
    read_targets(&logits, &targets)
}

/// From `[n, vocab]` logits (one row per blank): each row's probability of its
/// target and its top-1 token, in one read per list.
pub(crate) fn read_targets(logits: &Tensor, targets: &[u32]) -> Result<(Vec<f64>, Vec<u32>)> {
    let both = super::host::to_host(&targets_and_top(logits, targets.iter().copied()));
    let both: Vec<f64> = Vec::try_from(both.view(-1))?;
    Ok(both.chunks(2).map(|r| (r[0], r[1] as u32)).unzip())
}

/// `[n, 2]` f64, on the logits' device: each row's P(target) and its top-1
/// token (exact in f64), for a caller to read when it has all it needs.
pub(crate) fn targets_and_top(logits: &Tensor, targets: impl Iterator<Item = u32>) -> Tensor {
    let probs = logits.softmax(-1, Kind::Float);
    let t: Vec<i64> = targets.map(i64::from).collect();
    let t = Tensor::from_slice(&t).to(probs.device()).unsqueeze(1);
    let p = probs.gather(1, &t, false).to_kind(Kind::Double);
    let top = probs.argmax(1, true).to_kind(Kind::Double);
    Tensor::cat(&[p, top], 1)
}

/// Per query: `P(target)` and top-1 before and after a change, from two
/// [`probabilities`] results.
pub fn prompt_effects(
    model: &Model,
    queries: &[Query],
    before: (&[f64], &[u32]),
    after: (&[f64], &[u32]),
) -> Vec<PromptEffect> {
    let tok = |id: u32| model.tokenizer.token_text(id);
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| PromptEffect {
            prompt: q.prompt.clone(),
            p_before: before.0[i],
            p_after: after.0[i],
            top1_before: tok(before.1[i]),
            top1_after: tok(after.1[i]),
            rank_before: None,
            rank_after: None,
            new_answer: None,
        })
        .collect()
}

/// For every list of answer ids (one id per query), each query's probability
/// and rank (1 = the top prediction) of its id, from one forward pass at the
/// blank (one-token answers only: ranks are a fact update's measure).
pub fn probabilities_and_ranks(
    model: &Model,
    queries: &[Query],
    lists: &[&[u32]],
) -> Result<Vec<Vec<(f64, usize)>>> {
    if queries.is_empty() {
        return Err(Error::InvalidArgument("no prompts".into()));
    }
    super::query::one_token(model, queries)?;
    let seqs: Vec<Vec<u32>> = queries.iter().map(|q| q.cloze.ids.clone()).collect();
    let blanks: Vec<usize> = queries.iter().map(|q| q.cloze.blank).collect();
    let batch = Batch::new(&seqs, &blanks, model.net.device())?;
    let logits = tch::no_grad(|| model.net.forward(&batch, &Hooks::default()).logits);
    let probs = logits.softmax(-1, Kind::Float);
    lists
        .iter()
        .map(|ids| {
            if ids.len() != queries.len() {
                return Err(Error::InvalidArgument(
                    "one answer per prompt is needed".into(),
                ));
            }
            let ids = Tensor::from_slice(&ids.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to(probs.device());
            let p = probs.gather(1, &ids.unsqueeze(1), false);
            let above = probs.gt_tensor(&p).sum_dim_intlist(1, false, Kind::Int64);
            let p: Vec<f32> = Vec::try_from(p.squeeze_dim(1).to(tch::Device::Cpu))?;
            let above: Vec<i64> = Vec::try_from(above.to(tch::Device::Cpu))?;
            Ok(p.into_iter()
                .zip(above)
                .map(|(p, a)| (f64::from(p), a as usize + 1))
                .collect())
        })
        .collect()
}

/// Every neuron's activation at the blank of each of `clozes`, without hooks,
/// in passes cut by `budget` rows × tokens (shortest first, so a pass pads
/// little) and one device read per pass: `read(i, at)` is called once per
/// cloze `i` with `at(neuron)`, that neuron's activation there.
pub fn at_blanks(
    model: &Model,
    clozes: &[crate::cloze::Cloze],
    budget: usize,
    mut read: impl FnMut(usize, &dyn Fn(&super::Neuron) -> f64),
) -> Result<()> {
    let d_ff = model.config().d_ff;
    let mut order: Vec<usize> = (0..clozes.len()).collect();
    order.sort_by_key(|&i| clozes[i].ids.len());
    let lens = order.iter().map(|&i| (1, clozes[i].ids.len()));
    for run in super::batching::runs(lens, budget) {
        let rows = &order[run];
        let seqs: Vec<Vec<u32>> = rows.iter().map(|&i| clozes[i].ids.clone()).collect();
        let blanks: Vec<usize> = rows.iter().map(|&i| clozes[i].blank).collect();
        let batch = Batch::new(&seqs, &blanks, model.net.device())?;
        let acts = tch::no_grad(|| {
            let a = model.net.forward(&batch, &Hooks::capture()).activations;
            Tensor::stack(&a, 0).to_kind(Kind::Float) // [layers, rows, d_ff]
        });
        let acts: Vec<f32> = Vec::try_from(super::host::to_host(&acts).view(-1))?;
        for (row, &i) in rows.iter().enumerate() {
            let at =
                |n: &super::Neuron| f64::from(acts[(n.layer * rows.len() + row) * d_ff + n.index]);
            read(i, &at);
        }
    }
    Ok(())
}
