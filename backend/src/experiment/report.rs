//! `kn experiment report`: the paper's results from a run's stored neurons.
//!
//! Refining happens here, not in the run, because SPEC's adaptive `p` is a
//! property of a relation's facts together. The interventions, BingRel, fact
//! updates and relation erasure need forward passes only (no attribution), so a
//! report costs minutes where the run costs hours.

use super::db::{FactRecord, RunDb};
use super::fact_queries;
use crate::engine::edit::{self, apply, erase, fingerprint, undo, EraseWith, UpdateOptions};
use crate::engine::intervene::{probabilities, random_like, scale_hooks};
use crate::engine::neurons::{adaptive_refine, relation_neurons};
use crate::engine::{Neuron, Query};
use crate::models::{Batch, Hooks, Model};
use crate::pararel::ParaRel;
use crate::predict::{cloze, Cloze, BLANK};
use crate::{Error, Result};
use kn_shared::experiment::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The report's knobs; the defaults are SPEC's and the paper's.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Coarse threshold (at least the stored `STORE_T`).
    pub t: f64,
    /// Starting refining share, adapted per relation.
    pub p: f64,
    pub min_prompts: usize,
    pub max_rounds: usize,
    /// Relation-level neurons: shared by at least this share of its facts.
    pub share: f64,
    /// Facts updated per relation (seeded).
    pub update_facts: usize,
    pub update: UpdateOptions,
    pub k_sweep: Vec<usize>,
    /// Neurons erased per relation.
    pub erase_top: usize,
    /// At most this many prompts per perplexity set.
    pub eval_prompts: usize,
    /// `data/bingrel/`; `None` skips that part.
    pub bingrel: Option<PathBuf>,
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            t: 0.2,
            p: 0.7,
            min_prompts: 1,
            max_rounds: 6,
            share: 0.1,
            update_facts: 10,
            update: UpdateOptions::default(),
            k_sweep: vec![1, 2, 4, 8],
            erase_top: 20,
            eval_prompts: 100,
            bingrel: None,
            seed: 0,
        }
    }
}

impl ReportOptions {
    /// Refuse bad knobs before the slow stages, not half an hour into them.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.t.is_finite() && self.t >= super::db::STORE_T && self.t < 1.0) {
            return bad(format!(
                "t = {}: it must be at least the stored threshold {} and below 1",
                self.t,
                super::db::STORE_T
            ));
        }
        if !(self.p.is_finite() && self.p > 0.0 && self.p <= 1.0) {
            return bad(format!("p = {}: it must be in (0, 1]", self.p));
        }
        if self.min_prompts == 0 {
            return bad("min-prompts must be at least 1".into());
        }
        if self.update.k == 0 || self.k_sweep.contains(&0) {
            return bad("k must be at least 1".into());
        }
        if !(self.update.lambda1.is_finite() && self.update.lambda2.is_finite()) {
            return bad(format!(
                "λ1 = {}, λ2 = {}: they must be finite numbers",
                self.update.lambda1, self.update.lambda2
            ));
        }
        if self.erase_top == 0 {
            return bad("erase-top must be at least 1".into());
        }
        if let Some(dir) = self.bingrel.as_ref().filter(|d| !d.is_dir()) {
            return bad(format!(
                "no BingRel folder at {} (pass --no-bingrel to leave BingRel out)",
                dir.display()
            ));
        }
        Ok(())
    }
}

/// A finished fact with its refined sets.
struct Done {
    rel: usize,
    fact: usize,
    record: FactRecord,
    queries: Vec<Query>,
    /// Knowledge neurons, highest mean attribution first.
    knowledge: Vec<Neuron>,
    baseline: Vec<Neuron>,
}

fn neuron(l: u32, i: u32) -> Neuron {
    Neuron {
        layer: l as usize,
        index: i as usize,
    }
}

fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (s, n) = v
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Mean `|A ∩ B|` over pairs, all pairs up to `cap`, else `cap` seeded random ones.
fn shared(pairs: &[(usize, usize)], sets: &[BTreeSet<Neuron>]) -> f64 {
    mean(
        pairs
            .iter()
            .map(|&(a, b)| sets[a].intersection(&sets[b]).count() as f64),
    )
    .unwrap_or(0.0)
}

fn set_stats(done: &[Done], layers: usize, pick: fn(&Done) -> &Vec<Neuron>, seed: u64) -> SetStats {
    let sets: Vec<BTreeSet<Neuron>> = done
        .iter()
        .map(|d| pick(d).iter().copied().collect())
        .collect();
    const CAP: usize = 200_000;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = done.len();
    let mut intra = Vec::new();
    let mut inter = Vec::new();
    if n * n / 2 <= 2 * CAP {
        for a in 0..n {
            for b in a + 1..n {
                if done[a].rel == done[b].rel {
                    intra.push((a, b));
                } else {
                    inter.push((a, b));
                }
            }
        }
    } else {
        while intra.len() + inter.len() < 2 * CAP {
            let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
            if a != b {
                if done[a].rel == done[b].rel {
                    intra.push((a, b));
                } else {
                    inter.push((a, b));
                }
            }
        }
    }
    let mut per_layer = vec![0; layers];
    for s in &sets {
        for nr in s {
            per_layer[nr.layer] += 1;
        }
    }
    SetStats {
        per_fact: mean(sets.iter().map(|s| s.len() as f64)).unwrap_or(0.0),
        empty_facts: sets.iter().filter(|s| s.is_empty()).count(),
        shared_intra: shared(&intra, &sets),
        shared_inter: shared(&inter, &sets),
        per_layer,
    }
}

fn relative(before: &[f64], after: &[f64]) -> f64 {
    let (b, a) = (
        before.iter().sum::<f64>() / before.len() as f64,
        after.iter().sum::<f64>() / after.len() as f64,
    );
    if b > 0.0 {
        (a - b) / b
    } else {
        0.0
    }
}

/// Relative change of P(answer) on `qs` when scaling `neurons` by `factor`.
fn effect(
    model: &Model,
    qs: &[Query],
    before: &[f64],
    neurons: &[Neuron],
    factor: f64,
) -> Result<Option<f64>> {
    if neurons.is_empty() {
        return Ok(None);
    }
    let (after, _) = probabilities(model, qs, &scale_hooks(model, neurons, factor)?)?;
    Ok(Some(relative(before, &after)))
}

#[derive(Default)]
struct EffectAcc {
    knowledge: Vec<f64>,
    baseline: Vec<f64>,
    random: Vec<f64>,
    unrelated: Vec<f64>,
}

impl EffectAcc {
    fn push(&mut self, k: Option<f64>, b: Option<f64>, r: Option<f64>, u: Option<f64>) {
        for (v, x) in [
            (&mut self.knowledge, k),
            (&mut self.baseline, b),
            (&mut self.random, r),
            (&mut self.unrelated, u),
        ] {
            v.extend(x);
        }
    }

    fn effects(&self) -> Effects {
        Effects {
            knowledge: mean(self.knowledge.iter().copied()),
            baseline: mean(self.baseline.iter().copied()),
            random: mean(self.random.iter().copied()),
            unrelated: mean(self.unrelated.iter().copied()),
            facts: self.knowledge.len(),
        }
    }

    fn extend(&mut self, o: &EffectAcc) {
        self.knowledge.extend(&o.knowledge);
        self.baseline.extend(&o.baseline);
        self.random.extend(&o.random);
        self.unrelated.extend(&o.unrelated);
    }
}

/// Top-1 accuracy and perplexity of `qs` under the model as it is now.
fn ppl_acc(model: &Model, qs: &[Query]) -> Result<(f64, f64)> {
    let (p, top) = probabilities(model, qs, &Hooks::default())?;
    let nll = p
        .iter()
        .map(|x| -(x.max(f64::MIN_POSITIVE)).ln())
        .sum::<f64>()
        / p.len() as f64;
    let acc = qs.iter().zip(&top).filter(|(q, t)| q.target == **t).count() as f64 / qs.len() as f64;
    Ok((nll.exp(), acc))
}

/// Up to `n` of `qs`, a seeded sample.
fn sample(mut qs: Vec<Query>, n: usize, seed: u64) -> Vec<Query> {
    qs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    qs.truncate(n);
    qs
}

/// Mean activation of `neurons` at the blank of each cloze, batched by 16.
fn activations(model: &Model, clozes: &[Cloze], neurons: &[&[Neuron]]) -> Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::new(); neurons.len()];
    for chunk in clozes.chunks(16) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|c| c.ids.clone()).collect();
        let blanks: Vec<usize> = chunk.iter().map(|c| c.blank).collect();
        let batch = Batch::new(&seqs, &blanks, model.net.device())?;
        let acts = tch::no_grad(|| model.net.forward(&batch, &Hooks::capture()).activations);
        let acts: Vec<Vec<Vec<f32>>> = acts
            .iter()
            .map(|a| crate::engine::attribution::rows(&a.to(tch::Device::Cpu)))
            .collect::<Result<_>>()?;
        for (set, out) in neurons.iter().zip(out.iter_mut()) {
            out.extend((0..chunk.len()).filter_map(|row| {
                mean(set.iter().map(|n| f64::from(acts[n.layer][row][n.index])))
            }));
        }
    }
    Ok(out)
}

/// Blank the `word` that starts at byte `at` of `sentence`: a masked LM sees
/// the whole sentence, a causal LM the text before the blank.
fn blank_at(model: &Model, sentence: &str, at: usize, len: usize) -> Option<Cloze> {
    let prompt = if model.config().arch.is_masked() {
        format!("{}{BLANK}{}", &sentence[..at], &sentence[at + len..])
    } else {
        format!("{}{BLANK}", &sentence[..at])
    };
    cloze(model, &prompt).ok()
}

/// The first occurrence of `word` in `s` as a whole word (not "Rome" in "Romeo").
fn find_word(s: &str, word: &str) -> Option<usize> {
    s.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The BingRel sentence groups of one fact as clozes (SPEC's three groups but
/// the third, which the caller supplies).
fn bingrel_clozes(
    model: &Model,
    entry: &serde_json::Value,
    head: &str,
    tail: &str,
    rng: &mut ChaCha8Rng,
) -> (Vec<Cloze>, Vec<Cloze>) {
    let bag = |k: &str| -> Vec<String> {
        entry
            .get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expressing = bag("th_bags")
        .iter()
        .filter_map(|s| find_word(s, tail).and_then(|at| blank_at(model, s, at, tail.len())))
        .collect();
    // Group (2) asks whether unrelated words fire the neurons: blanking a
    // word of the head itself would test something else.
    let head_words: BTreeSet<String> = head
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .collect();
    let head_only = bag("h_bags")
        .iter()
        .filter_map(|s| {
            let words: Vec<(usize, &str)> = s
                .split_whitespace()
                .map(|w| (w.as_ptr() as usize - s.as_ptr() as usize, w))
                .filter(|(at, w)| {
                    *at > 0
                        && w.len() >= 3
                        && w.chars().all(char::is_alphabetic)
                        && !head_words.contains(&w.to_lowercase())
                })
                .collect();
            let &(at, w) = words.get(rng.random_range(0..words.len().max(1)))?;
            blank_at(model, s, at, w.len())
        })
        .collect();
    (expressing, head_only)
}

fn load_bags(dir: &Path, relation: &str) -> Result<Vec<serde_json::Value>> {
    let path = dir.join(format!("final_distant_allbags_{relation}_new.json.gz"));
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(file))
        .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    match v {
        serde_json::Value::Array(a) => Ok(a),
        _ => Err(Error::Data(format!(
            "{}: expected a JSON list",
            path.display()
        ))),
    }
}

/// Apply `e`, measure, undo, even when measuring fails.
fn with_edit<T>(
    model: &Model,
    e: &kn_shared::EditSet,
    fp: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    apply(model, e, fp)?;
    let r = f();
    undo(model, e, fp)?;
    r
}

/// Build the report of the run in `db`. `progress(stage)` is told each stage.
pub fn report(
    model: &Model,
    data: &ParaRel,
    db: &RunDb,
    name: &str,
    opts: &ReportOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ExperimentReport> {
    let started = Instant::now();
    opts.validate()?;
    let settings = db
        .settings()?
        .ok_or_else(|| Error::Store(format!("{}: not a run file", db.path.display())))?;
    let fp = fingerprint(model);
    // Runs made before the fingerprint became a hash of the checkpoint carry
    // the old device checksum; recognise those too.
    let legacy = !settings.fingerprint.contains("sha256:")
        && crate::engine::edit::legacy_fingerprint(model) == settings.fingerprint;
    if fp != settings.fingerprint && !legacy {
        return Err(Error::InvalidArgument(format!(
            "the run used model `{}` (fingerprint {}); this model's fingerprint is {fp}",
            settings.model, settings.fingerprint
        )));
    }
    let cfg = model.config().clone();
    let stored = db.facts()?;
    let mut coverage = db.coverage()?.unwrap_or_default();
    coverage.done = stored.iter().filter(|f| f.outcome.is_ok()).count();
    coverage.failed = stored.len() - coverage.done;
    let attribution_seconds = stored.iter().map(|f| f.seconds).sum();

    // Refine per relation with adaptive p.
    progress("refining");
    let mut done: Vec<Done> = Vec::new();
    let mut rows = Vec::new();
    let mut rel_shared: BTreeMap<usize, Vec<Neuron>> = BTreeMap::new();
    for (ri, rel) in data.relations.iter().enumerate() {
        let facts: Vec<(usize, FactRecord)> = stored
            .iter()
            .filter(|f| f.relation == rel.id)
            .filter_map(|f| f.outcome.as_ref().ok().map(|r| (f.fact, r.clone())))
            .collect();
        if facts.is_empty() {
            continue;
        }
        let coarse_k: Vec<Vec<Vec<Neuron>>> = facts
            .iter()
            .map(|(_, r)| {
                r.prompts
                    .iter()
                    .map(|p| {
                        p.knowledge
                            .iter()
                            .filter(|s| p.max_score > 0.0 && f64::from(s.2) > opts.t * p.max_score)
                            .map(|s| neuron(s.0, s.1))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let coarse_b: Vec<Vec<Vec<Neuron>>> = facts
            .iter()
            .map(|(_, r)| {
                r.prompts
                    .iter()
                    .map(|p| p.baseline.iter().map(|s| neuron(s.0, s.1)).collect())
                    .collect()
            })
            .collect();
        let ak = adaptive_refine(&coarse_k, opts.p, opts.min_prompts, opts.max_rounds);
        let ab = adaptive_refine(&coarse_b, opts.p, opts.min_prompts, opts.max_rounds);
        let start = done.len();
        for (((fact, record), k), b) in facts.into_iter().zip(ak.facts).zip(ab.facts) {
            // Strongest first: mean stored attribution over the prompts.
            let score = |n: &Neuron| -> f64 {
                record
                    .prompts
                    .iter()
                    .flat_map(|p| p.knowledge.iter())
                    .filter(|s| neuron(s.0, s.1) == *n)
                    .map(|s| f64::from(s.2))
                    .sum::<f64>()
            };
            let mut knowledge: Vec<Neuron> = k.into_iter().map(|(n, _)| n).collect();
            knowledge.sort_by(|a, b| score(b).total_cmp(&score(a)).then(a.cmp(b)));
            let queries = fact_queries(model, rel, fact)?;
            if queries.len() != record.prompts.len() {
                return Err(Error::InvalidArgument(format!(
                    "{} #{fact}: the run stored {} prompts, the data gives {} now; was the data changed?",
                    rel.id,
                    record.prompts.len(),
                    queries.len()
                )));
            }
            done.push(Done {
                rel: ri,
                fact,
                record,
                queries,
                knowledge,
                baseline: b.into_iter().map(|(n, _)| n).collect(),
            });
        }
        let mine = &done[start..];
        let sets: Vec<Vec<Neuron>> = mine.iter().map(|d| d.knowledge.clone()).collect();
        let rel_n = relation_neurons(&sets, opts.share);
        // SPEC: relation-level neurons are shared by at least 10% of the
        // facts; the update drops those shared by more than 10%.
        let update_drop: Vec<Neuron> = rel_n
            .iter()
            .filter(|&&(_, c)| c as f64 > opts.share * sets.len() as f64)
            .map(|&(n, _)| n)
            .collect();
        rows.push(RelationRow {
            id: rel.id.clone(),
            label: rel.label.clone(),
            kind: rel.kind.clone(),
            facts: mine.len(),
            p: ak.p,
            knowledge_per_fact: mean(mine.iter().map(|d| d.knowledge.len() as f64)).unwrap_or(0.0),
            baseline_per_fact: mean(mine.iter().map(|d| d.baseline.len() as f64)).unwrap_or(0.0),
            shared_neurons: rel_n.len(),
            suppress: Effects::default(),
            amplify: Effects::default(),
        });
        rel_shared.insert(ri, update_drop);
    }
    if done.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no finished fact to report on; run `kn experiment run` first",
            db.path.display()
        )));
    }
    let knowledge = set_stats(&done, cfg.n_layers, |d| &d.knowledge, opts.seed);
    let baseline = set_stats(&done, cfg.n_layers, |d| &d.baseline, opts.seed);

    // An unrelated prompt for each fact: the first prompt of the next fact of
    // another relation (round robin, deterministic).
    let unrelated = |i: usize| -> Option<&Query> {
        (1..done.len())
            .map(|k| &done[(i + k) % done.len()])
            .find(|d| d.rel != done[i].rel)
            .and_then(|d| d.queries.first())
    };

    progress("suppress and amplify");
    let (mut all_sup, mut all_amp) = (EffectAcc::default(), EffectAcc::default());
    for row in rows.iter_mut() {
        let (mut sup, mut amp) = (EffectAcc::default(), EffectAcc::default());
        for (i, d) in done.iter().enumerate() {
            if data.relations[d.rel].id != row.id || d.knowledge.is_empty() {
                continue;
            }
            let (before, _) = probabilities(model, &d.queries, &Hooks::default())?;
            let rnd = random_like(&cfg, &d.knowledge, opts.seed ^ i as u64);
            let un = unrelated(i).cloned();
            let un_before = match &un {
                Some(q) => {
                    Some(probabilities(model, std::slice::from_ref(q), &Hooks::default())?.0)
                }
                None => None,
            };
            for (acc, factor) in [(&mut sup, 0.0), (&mut amp, 2.0)] {
                let u = match (&un, &un_before) {
                    (Some(q), Some(b)) => {
                        effect(model, std::slice::from_ref(q), b, &d.knowledge, factor)?
                    }
                    _ => None,
                };
                acc.push(
                    effect(model, &d.queries, &before, &d.knowledge, factor)?,
                    effect(model, &d.queries, &before, &d.baseline, factor)?,
                    effect(model, &d.queries, &before, &rnd, factor)?,
                    u,
                );
            }
        }
        row.suppress = sup.effects();
        row.amplify = amp.effects();
        all_sup.extend(&sup);
        all_amp.extend(&amp);
    }

    let bingrel = match &opts.bingrel {
        Some(dir) => {
            progress("BingRel");
            Some(bingrel(model, data, &done, dir, opts.seed)?)
        }
        None => None,
    };

    progress("updating facts");
    let update = update_facts(model, data, &done, &rel_shared, opts, &fp)?;

    progress("erasing relations");
    let mut erase_rows = Vec::new();
    for (ri, rel) in data.relations.iter().enumerate() {
        let mine: Vec<&Done> = done.iter().filter(|d| d.rel == ri).collect();
        if mine.is_empty() {
            continue;
        }
        let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
        for d in &mine {
            for &n in &d.knowledge {
                *counts.entry(n).or_default() += 1;
            }
        }
        let mut ranked: Vec<(Neuron, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let neurons: Vec<Neuron> = ranked
            .into_iter()
            .take(opts.erase_top)
            .map(|(n, _)| n)
            .collect();
        if neurons.is_empty() {
            continue;
        }
        let intra = sample(
            mine.iter().flat_map(|d| d.queries.clone()).collect(),
            opts.eval_prompts,
            opts.seed,
        );
        let inter = sample(
            done.iter()
                .filter(|d| d.rel != ri)
                .flat_map(|d| d.queries.clone())
                .collect(),
            opts.eval_prompts,
            opts.seed,
        );
        let e = erase(
            model,
            &neurons,
            EraseWith::Zero,
            format!("erase {}", rel.id),
        )?;
        let measure = |qs: &[Query]| -> Result<Option<(f64, f64)>> {
            if qs.is_empty() {
                Ok(None)
            } else {
                ppl_acc(model, qs).map(Some)
            }
        };
        let (ib, eb) = (measure(&intra)?, measure(&inter)?);
        let (ia, ea) = with_edit(model, &e, &fp, || Ok((measure(&intra)?, measure(&inter)?)))?;
        let pa = |n: usize, b: Option<(f64, f64)>, a: Option<(f64, f64)>| match (b, a) {
            (Some(b), Some(a)) => PplAcc {
                prompts: n,
                ppl_before: b.0,
                ppl_after: a.0,
                acc_before: b.1,
                acc_after: a.1,
            },
            _ => PplAcc::default(),
        };
        erase_rows.push(EraseRow {
            relation: rel.id.clone(),
            neurons: neurons.len(),
            intra: pa(intra.len(), ib, ia),
            inter: pa(inter.len(), eb, ea),
        });
    }

    Ok(ExperimentReport {
        name: name.to_string(),
        model: settings.model.clone(),
        fingerprint: fp,
        masked: cfg.arch.is_masked(),
        settings: ExperimentSettings {
            steps: settings.steps,
            riemann: settings.riemann.clone(),
            t: opts.t,
            p: opts.p,
            min_prompts: opts.min_prompts,
            seed: settings.seed,
            facts_per_relation: settings.facts_per_relation,
            relations: settings.relations.clone(),
        },
        coverage,
        knowledge,
        baseline,
        layers: cfg.n_layers,
        relations: rows,
        suppress: all_sup.effects(),
        amplify: all_amp.effects(),
        bingrel,
        update,
        erase: erase_rows,
        attribution_seconds,
        report_seconds: started.elapsed().as_secs_f64(),
    })
}

fn bingrel(model: &Model, data: &ParaRel, done: &[Done], dir: &Path, seed: u64) -> Result<BingRel> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BingRel::default();
    let (mut k, mut b) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    let mut bags: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
    for (i, d) in done.iter().enumerate() {
        if d.knowledge.is_empty() {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = bags.entry(d.rel) {
            e.insert(load_bags(dir, &data.relations[d.rel].id)?);
        }
        let Some(entry) = bags[&d.rel].get(d.fact) else {
            continue;
        };
        let (expressing, head_only) =
            bingrel_clozes(model, entry, &d.record.subject, &d.record.object, &mut rng);
        // Three prompts of facts of other relations.
        let others: Vec<Cloze> = (1..done.len())
            .map(|s| &done[(i + s * 7) % done.len()])
            .filter(|o| o.rel != d.rel)
            .filter_map(|o| o.queries.first().map(|q| q.cloze.clone()))
            .take(3)
            .collect();
        out.facts += 1;
        out.expressing_sentences += expressing.len();
        out.head_only_sentences += head_only.len();
        out.other_prompts += others.len();
        for (g, clozes) in [expressing, head_only, others].iter().enumerate() {
            if clozes.is_empty() {
                continue;
            }
            let sets: [&[Neuron]; 2] = [&d.knowledge, &d.baseline];
            let acts = activations(model, clozes, &sets)?;
            k[g].extend(mean(acts[0].iter().copied()));
            b[g].extend(mean(acts[1].iter().copied()));
        }
    }
    let groups = |v: &[Vec<f64>; 3]| ActivationGroups {
        expressing: mean(v[0].iter().copied()).unwrap_or(0.0),
        head_only: mean(v[1].iter().copied()).unwrap_or(0.0),
        other_prompts: mean(v[2].iter().copied()).unwrap_or(0.0),
    };
    out.knowledge = groups(&k);
    out.baseline = groups(&b);
    Ok(out)
}

/// Per edited fact: change, success, intra before/after, inter before/after.
/// A value is NaN where it cannot be measured (no prompt known before the
/// edit; an empty perplexity set) and is left out of that column's mean only.
#[derive(Default)]
struct UpdAcc(Vec<[f64; 6]>);

impl UpdAcc {
    fn metrics(&self) -> UpdateMetrics {
        let m =
            |i: usize| mean(self.0.iter().map(|r| r[i]).filter(|x| x.is_finite())).unwrap_or(0.0);
        // Perplexities: geometric means, so that one wrecked fact does not
        // stand for all of them; before and after over the same facts.
        let g = |i: usize| {
            let rows = || {
                self.0
                    .iter()
                    .filter(move |r| [r[i], r[i + 1]].iter().all(|x| x.is_finite() && *x > 0.0))
            };
            let geo = |j: usize| mean(rows().map(|r| r[j].ln())).map_or(0.0, f64::exp);
            (geo(i), geo(i + 1))
        };
        let ((intra_before, intra_after), (inter_before, inter_after)) = (g(2), g(4));
        UpdateMetrics {
            change_rate: m(0),
            success_rate: m(1),
            intra_before,
            intra_after,
            inter_before,
            inter_after,
        }
    }
}

fn update_facts(
    model: &Model,
    data: &ParaRel,
    done: &[Done],
    rel_shared: &BTreeMap<usize, Vec<Neuron>>,
    opts: &ReportOptions,
    fp: &str,
) -> Result<Option<UpdateSummary>> {
    let cfg = model.config();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (mut kn, mut rnd) = (UpdAcc::default(), UpdAcc::default());
    let mut sweep: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    let (mut prompts, mut known_prompts) = (0, 0);
    // Change rate over the prompts the model got right before the edit (NaN
    // when there is none); success rate over all of them.
    let rates = |qs: &[Query], known: &[bool], new: u32| -> Result<(f64, f64)> {
        let (_, top) = probabilities(model, qs, &Hooks::default())?;
        let n_known = known.iter().filter(|&&k| k).count();
        let changed = top
            .iter()
            .zip(qs)
            .zip(known)
            .filter(|((&t, q), &k)| k && t != q.target)
            .count();
        Ok((
            if n_known == 0 {
                f64::NAN
            } else {
                changed as f64 / n_known as f64
            },
            top.iter().filter(|&&t| t == new).count() as f64 / top.len() as f64,
        ))
    };
    for ri in 0..data.relations.len() {
        let shared = rel_shared.get(&ri).cloned().unwrap_or_default();
        let mut cands: Vec<usize> = (0..done.len())
            .filter(|&i| done[i].rel == ri && done[i].knowledge.iter().any(|n| !shared.contains(n)))
            .collect();
        cands.shuffle(&mut rng);
        cands.truncate(opts.update_facts);
        for &i in &cands {
            let d = &done[i];
            let neurons: Vec<Neuron> = d
                .knowledge
                .iter()
                .copied()
                .filter(|n| !shared.contains(n))
                .collect();
            let first = &d.queries[0];
            // t': a random other answer of the relation that is one token here.
            let mut answers: Vec<&str> = data.relations[ri]
                .facts
                .iter()
                .map(|f| f.object.as_str())
                .filter(|o| *o != d.record.object)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            answers.shuffle(&mut rng);
            let Some(new) = answers
                .iter()
                .find_map(|a| crate::predict::target_id(model, &first.cloze, a).ok())
            else {
                continue;
            };
            let old = first.target;
            let known: Vec<bool> = probabilities(model, &d.queries, &Hooks::default())?
                .1
                .iter()
                .zip(&d.queries)
                .map(|(&t, q)| t == q.target)
                .collect();
            prompts += known.len();
            known_prompts += known.iter().filter(|&&k| k).count();
            let intra = sample(
                done.iter()
                    .filter(|o| o.rel == ri && o.fact != d.fact)
                    .flat_map(|o| o.queries.clone())
                    .collect(),
                20,
                opts.seed ^ i as u64,
            );
            let inter = sample(
                done.iter()
                    .filter(|o| o.rel != ri)
                    .flat_map(|o| o.queries.first().cloned())
                    .collect(),
                20,
                opts.seed ^ i as u64,
            );
            let ppl = |qs: &[Query]| -> Result<f64> {
                if qs.is_empty() {
                    Ok(f64::NAN)
                } else {
                    edit::perplexity(model, qs)
                }
            };
            let (intra_b, inter_b) = (ppl(&intra)?, ppl(&inter)?);
            let k = opts.update.k.min(neurons.len());
            let control = random_like(cfg, &neurons[..k], opts.seed ^ i as u64);
            for (acc, set) in [(&mut kn, &neurons[..k]), (&mut rnd, &control[..])] {
                let e = edit::update_fact(
                    model,
                    set,
                    old,
                    new,
                    &opts.update,
                    format!("update {} #{}", data.relations[ri].id, d.fact),
                )?;
                let row = with_edit(model, &e, fp, || {
                    let (c, s) = rates(&d.queries, &known, new)?;
                    Ok([c, s, intra_b, ppl(&intra)?, inter_b, ppl(&inter)?])
                })?;
                acc.0.push(row);
            }
            // A fact with fewer than k neurons would repeat a smaller k's edit.
            for &ks in opts.k_sweep.iter().filter(|&&ks| ks <= neurons.len()) {
                let u = UpdateOptions {
                    k: ks,
                    ..opts.update
                };
                let e = edit::update_fact(model, &neurons, old, new, &u, String::new())?;
                let r = with_edit(model, &e, fp, || rates(&d.queries, &known, new))?;
                sweep.entry(ks).or_default().push(r);
            }
        }
    }
    if kn.0.is_empty() {
        return Ok(None);
    }
    Ok(Some(UpdateSummary {
        facts: kn.0.len(),
        prompts,
        known_prompts,
        k: opts.update.k,
        lambda1: opts.update.lambda1,
        lambda2: opts.update.lambda2,
        norm_scaled: opts.update.norm_scaled,
        knowledge: kn.metrics(),
        random: rnd.metrics(),
        k_sweep: sweep
            .into_iter()
            .map(|(k, v)| KRates {
                k,
                facts: v.len(),
                change_rate: mean(v.iter().map(|x| x.0).filter(|x| x.is_finite())).unwrap_or(0.0),
                success_rate: mean(v.iter().map(|x| x.1)).unwrap_or(0.0),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_report_options_are_refused_before_any_work() {
        assert!(ReportOptions::default().validate().is_ok());
        let bad = [
            ReportOptions {
                t: 0.05,
                ..Default::default()
            },
            ReportOptions {
                p: f64::NAN,
                ..Default::default()
            },
            ReportOptions {
                update: UpdateOptions {
                    k: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
            ReportOptions {
                erase_top: 0,
                ..Default::default()
            },
            ReportOptions {
                bingrel: Some("/no/such/bingrel".into()),
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
    }

    #[test]
    fn unmeasurable_values_leave_only_their_own_column() {
        let nan = f64::NAN;
        let acc = UpdAcc(vec![
            [0.5, 0.0, 10.0, 40.0, nan, nan],
            [nan, 1.0, nan, nan, 4.0, 16.0],
        ]);
        let m = acc.metrics();
        assert_eq!((m.change_rate, m.success_rate), (0.5, 0.5));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b;
        assert!(
            close(m.intra_before, 10.0) && close(m.intra_after, 40.0),
            "{m:?}"
        );
        assert!(
            close(m.inter_before, 4.0) && close(m.inter_after, 16.0),
            "{m:?}"
        );
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(super::find_word("Romeo left Rome.", "Rome"), Some(11));
        assert_eq!(super::find_word("Romeo", "Rome"), None);
        assert_eq!(super::find_word("Rome", "Rome"), Some(0));
    }
}
