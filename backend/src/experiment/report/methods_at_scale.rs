//! The methods lab at scale (`kn experiment report --methods`): every chosen
//! attribution method (engine::methods_lab, docs/methods.md) on a seeded subset of
//! the run's facts, judged like the knowledge neurons are: its refined set
//! (coarse `t` per prompt, refined at the relation's adapted `p`) and its
//! top-`k` neurons suppressed and amplified, with intervals over facts, beside
//! what the scores cost.
//!
//! `ig` is not recomputed: its refined set is the report's knowledge neurons,
//! its top-`k` comes from the stored scores, its cost is the run's. Every other
//! method is computed here, from the fact's prompts.

use super::effects::{effects, unrelated_facts, unrelated_prompts};
use super::stats::estimate;
use super::Done;
use crate::engine::attribution::Options;
use crate::engine::methods_lab::{scores, top_k, Method};
use crate::engine::selection::{coarse, refine};
use crate::engine::{Neuron, Query};
use crate::experiment::db::RunDb;
use crate::models::Model;
use crate::Result;
use kn_shared::experiment::{MethodRelationRow, MethodScaleRow, MethodsAtScale};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// What to compare, and on how many facts.
#[derive(Debug, Clone)]
pub struct MethodsOptions {
    pub methods: Vec<Method>,
    /// Facts per relation (seeded, among the sampled facts with knowledge
    /// neurons).
    pub per_relation: usize,
    pub k: usize,
    /// The run's IG settings (steps, Riemann sum) for the methods that integrate.
    pub ig: Options,
}

/// The version of what [`fact_outcomes`] computes, in the report cache's keys:
/// raised whenever a method's numbers or its cost change, so that no report
/// reads another version's pieces.
const CACHE_VERSION: u32 = 2;

/// A digest of prompts as the engine reads them (tokens, blank, answer pieces,
/// answer positions): a cached piece is for these prompts only.
fn digest<'a>(qs: impl Iterator<Item = &'a Query>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for q in qs {
        for t in q.cloze.ids.iter().chain([&u32::MAX]).chain(&q.answer) {
            h.update(t.to_le_bytes());
        }
        h.update((q.cloze.blank as u64).to_le_bytes());
        h.update(format!("{:?};", q.positions).as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// One fact under one method (kept in the run file's report cache).
#[derive(Serialize, Deserialize)]
struct Outcome {
    neurons: usize,
    /// `[suppress, amplify]` of the refined set (`None` when it is empty), then
    /// of the top-`k`, then the top-`k` ×0 on unrelated prompts.
    refined: [Option<f64>; 2],
    top: [Option<f64>; 2],
    unrelated: Option<f64>,
    seconds: f64,
    gflop: f64,
    /// Whether the fact's answer is several tokens.
    multi: bool,
    /// The fact's relation (index into the data's relations).
    rel: usize,
}

/// Indices into `done` of the facts to compare.
fn pick(done: &[Done], per_relation: usize, seed: u64) -> Vec<usize> {
    let mut by_rel: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, d) in done.iter().enumerate() {
        if d.in_sample && !d.knowledge.is_empty() {
            by_rel.entry(d.rel).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (rel, mut v) in by_rel {
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (rel as u64).wrapping_mul(0x9e37));
        v.shuffle(&mut rng);
        out.extend(v.into_iter().take(per_relation));
    }
    out
}

/// The top-`k` neurons by the stored IG scores summed over the prompts.
fn stored_top_k(d: &Done, k: usize) -> Vec<Neuron> {
    let mut sum: BTreeMap<Neuron, f64> = BTreeMap::new();
    for p in &d.record.prompts {
        for s in &p.knowledge {
            let n = Neuron {
                layer: s.0 as usize,
                index: s.1 as usize,
            };
            *sum.entry(n).or_default() += f64::from(s.2);
        }
    }
    let mut v: Vec<(Neuron, f64)> = sum.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(k).map(|(n, _)| n).collect()
}

/// Fact `i` of `done` under every method of `opts`: its scores, refined set
/// and top-`k`, then every set's effects in one batched run on the fact's
/// prompts and one on unrelated ones.
fn fact_outcomes(
    model: &Model,
    done: &[Done],
    i: usize,
    sel: &Selection,
    opts: &MethodsOptions,
    p_rel: f64,
    seed: u64,
) -> Result<Vec<Outcome>> {
    let d = &done[i];
    let qs = &d.queries;
    let mut chosen = Vec::new();
    for m in &opts.methods {
        let gflop = qs
            .iter()
            .map(|q| m.query_flops(model.config(), &opts.ig, q))
            .sum::<f64>()
            / 1e9;
        let (refined, top, seconds) = if *m == Method::Ig {
            // Its seconds are the run's, set by the caller.
            (d.knowledge.clone(), stored_top_k(d, opts.k), 0.0)
        } else {
            let t0 = Instant::now();
            let per_prompt = scores(model, qs, *m, &opts.ig, d.seed(seed))?;
            let seconds = t0.elapsed().as_secs_f64();
            let sets: Vec<Vec<Neuron>> = per_prompt.iter().map(|s| coarse(s, sel.t)).collect();
            let refined = if *m == Method::Random {
                // Uniform scores keep most neurons: no refined set to judge.
                Vec::new()
            } else {
                refine(&sets, p_rel, sel.min_prompts)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            };
            let mean = tch::Tensor::stack(&per_prompt, 0).mean_dim(0, false, tch::Kind::Float);
            (refined, top_k(&mean, opts.k)?, seconds)
        };
        chosen.push((refined, top, seconds, gflop));
    }
    let own: Vec<(&[Neuron], f64)> = chosen
        .iter()
        .flat_map(|(refined, top, _, _)| {
            [(&refined[..], 0.0), (refined, 2.0), (top, 0.0), (top, 2.0)]
        })
        .collect();
    let own = effects(model, qs, &own)?;
    let tops: Vec<(&[Neuron], f64)> = chosen.iter().map(|c| (&c.1[..], 0.0)).collect();
    let others = effects(model, &unrelated_prompts(done, i), &tops)?;
    Ok(chosen
        .iter()
        .enumerate()
        .map(|(j, (refined, _, seconds, gflop))| Outcome {
            neurons: refined.len(),
            refined: [own[4 * j], own[4 * j + 1]],
            top: [own[4 * j + 2], own[4 * j + 3]],
            unrelated: others[j],
            seconds: *seconds,
            gflop: *gflop,
            multi: qs.iter().any(Query::is_chain),
            rel: d.rel,
        })
        .collect())
}

/// The report's selection: each relation's adapted refining share `p`, the
/// coarse threshold and the minimum number of prompts.
pub(super) struct Selection<'a> {
    pub p: &'a BTreeMap<usize, f64>,
    pub t: f64,
    pub min_prompts: usize,
}

/// What the comparison reads of the run: its file (whose report cache keeps
/// each fact's outcomes as they are computed, under a key naming all they
/// depend on, so a killed report resumes), its facts, the data's relation ids
/// and the run's attribution seconds per fact (IG's cost).
pub(super) struct RunSide<'a> {
    pub db: &'a RunDb,
    pub done: &'a [Done],
    pub relations: &'a [&'a str],
    pub ig_seconds: f64,
}

/// Compare `opts.methods` on a seeded subset of the run's facts.
pub(super) fn methods_at_scale(
    model: &Model,
    run: &RunSide,
    sel: &Selection,
    opts: &MethodsOptions,
    seed: u64,
) -> Result<Option<MethodsAtScale>> {
    let done = run.done;
    if opts.methods.is_empty() {
        return Ok(None);
    }
    let facts = pick(done, opts.per_relation, seed);
    let mut per_method: Vec<Vec<Outcome>> = opts.methods.iter().map(|_| Vec::new()).collect();
    for &i in &facts {
        let outs = cached_outcomes(model, run, sel, opts, i, seed)?;
        for ((m, mut o), all) in opts.methods.iter().zip(outs).zip(per_method.iter_mut()) {
            if *m == Method::Ig {
                // IG's cost is the run's, which a grown run changes.
                o.seconds = run.ig_seconds;
            }
            o.rel = done[i].rel;
            all.push(o);
        }
    }
    let rows = opts
        .methods
        .iter()
        .zip(&per_method)
        .enumerate()
        .map(|(j, (m, outs))| method_row(*m, outs, seed ^ (j as u64 + 1).wrapping_mul(101)))
        .collect();
    let multi_token_facts = facts
        .iter()
        .filter(|&&i| done[i].queries.iter().any(Query::is_chain))
        .count();
    Ok(Some(MethodsAtScale {
        by_relation: by_relation(run, &facts, opts, &per_method, seed),
        multi_token_facts,
        facts: facts.len(),
        per_relation: opts.per_relation,
        k: opts.k,
        rows,
    }))
}

/// Fact `i`'s outcome of every method, from the report cache when a piece
/// for the same inputs is there, else computed and kept.
fn cached_outcomes(
    model: &Model,
    run: &RunSide,
    sel: &Selection,
    opts: &MethodsOptions,
    i: usize,
    seed: u64,
) -> Result<Vec<Outcome>> {
    let (db, done, relations) = (run.db, run.done, run.relations);
    let d = &done[i];
    let p_rel = sel.p.get(&d.rel).copied().unwrap_or(0.7);
    let fact_key = |j: usize| {
        (
            relations.get(done[j].rel).copied().unwrap_or("?"),
            done[j].fact,
        )
    };
    let unrelated = unrelated_facts(done, i);
    let key = serde_json::json!({
        "what": "methods at scale",
        "version": CACHE_VERSION,
        "model": model.fingerprint,
        "device": format!("{:?}", model.net.device()),
        "fact": fact_key(i),
        "unrelated": unrelated.iter().map(|&j| fact_key(j)).collect::<Vec<_>>(),
        "prompts": digest(std::iter::once(i).chain(unrelated).flat_map(|j| &done[j].queries)),
        "methods": opts.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "t": sel.t, "p": p_rel, "min_prompts": sel.min_prompts, "k": opts.k,
        "steps": opts.ig.steps, "riemann": format!("{:?}", opts.ig.riemann),
        "mode": format!("{:?}", opts.ig.mode), "seed": seed,
    })
    .to_string();
    // A piece that no longer reads (another version's) is computed anew; a
    // piece that cannot be kept costs a resume, not the report.
    Ok(match db.cached::<Vec<Outcome>>(&key) {
        Ok(Some(outs)) if outs.len() == opts.methods.len() => outs,
        _ => {
            let outs = fact_outcomes(model, done, i, sel, opts, p_rel, seed)?;
            if let Err(e) = db.put_cached(&key, &outs) {
                tracing::warn!("the report cache keeps nothing: {e}");
            }
            outs
        }
    })
}

/// One method's row over every compared fact, each figure with its interval.
fn method_row(m: Method, outs: &[Outcome], s: u64) -> MethodScaleRow {
    let col =
        |f: &dyn Fn(&Outcome) -> Option<f64>| -> Vec<f64> { outs.iter().filter_map(f).collect() };
    let n = outs.len().max(1) as f64;
    MethodScaleRow {
        method: m.name().to_string(),
        neurons_per_fact: (m != Method::Random)
            .then(|| estimate(&col(&|o| Some(o.neurons as f64)), s))
            .flatten(),
        empty: if m == Method::Random {
            0
        } else {
            outs.iter().filter(|o| o.neurons == 0).count()
        },
        suppress: estimate(&col(&|o| o.refined[0]), s ^ 1),
        amplify: estimate(&col(&|o| o.refined[1]), s ^ 2),
        suppress_top_k: estimate(&col(&|o| o.top[0]), s ^ 3),
        amplify_top_k: estimate(&col(&|o| o.top[1]), s ^ 4),
        unrelated_top_k: estimate(&col(&|o| o.unrelated), s ^ 5),
        suppress_top_k_multi_token: estimate(
            &col(&|o| o.multi.then_some(o.top[0]).flatten()),
            s ^ 6,
        ),
        seconds_per_fact: outs.iter().map(|o| o.seconds).sum::<f64>() / n,
        gflop_per_fact: outs.iter().map(|o| o.gflop).sum::<f64>() / n,
    }
}

/// Every method's row per relation of the compared facts.
fn by_relation(
    run: &RunSide,
    facts: &[usize],
    opts: &MethodsOptions,
    per_method: &[Vec<Outcome>],
    seed: u64,
) -> Vec<MethodRelationRow> {
    let mut out = Vec::new();
    let rels: std::collections::BTreeSet<usize> = facts.iter().map(|&i| run.done[i].rel).collect();
    for rel in rels {
        for (j, (m, outs)) in opts.methods.iter().zip(per_method).enumerate() {
            let mine: Vec<&Outcome> = outs.iter().filter(|o| o.rel == rel).collect();
            let s = seed ^ (rel as u64).wrapping_mul(0x51) ^ (j as u64 + 1).wrapping_mul(101);
            let col = |f: &dyn Fn(&Outcome) -> Option<f64>| -> Vec<f64> {
                mine.iter().filter_map(|o| f(o)).collect()
            };
            out.push(MethodRelationRow {
                method: m.name().to_string(),
                relation: run.relations.get(rel).copied().unwrap_or("?").to_string(),
                facts: mine.len(),
                suppress: estimate(&col(&|o| o.refined[0]), s ^ 1),
                amplify: estimate(&col(&|o| o.refined[1]), s ^ 2),
                suppress_top_k: estimate(&col(&|o| o.top[0]), s ^ 3),
                gflop_per_fact: mine.iter().map(|o| o.gflop).sum::<f64>()
                    / mine.len().max(1) as f64,
            });
        }
    }
    out
}
