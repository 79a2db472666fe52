//! `kn experiment report`: the paper's results from a run's stored neurons.
//!
//! Refining happens here, not in the run, because SPEC's adaptive `p` is a
//! property of a relation's facts together. The interventions, BingRel, fact
//! updates and relation erasure need forward passes only (no attribution), so a
//! report costs minutes where the run costs hours.
//!
//! What each figure rests on is part of the report: every headline number has
//! a 95% bootstrap interval over facts ([`stats`]), per-relation effects carry
//! theirs, relations that cannot be refined are listed apart (the plan leaves
//! them out), and the update experiment says which facts and prompts its rates
//! count.

mod bingrel;
mod effects;
mod erase;
pub mod methods_at_scale;
mod refine;
pub mod stats;
mod update;

use super::db::{FactRecord, RunDb, STORE_BASE_T, STORE_T};
use super::plan_with;
use crate::engine::edit::{fingerprint, UpdateOptions};
use crate::engine::{Neuron, Query};
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::{Error, Result};
use kn_shared::experiment::*;
use stats::set_stats;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

/// The report's knobs; the defaults are SPEC's, the paper's and the official
/// code's where SPEC leaves a choice.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Coarse threshold (at least the stored `STORE_T`).
    pub t: f64,
    /// The baseline's coarse threshold, a fraction of the prompt's largest
    /// activation (the official code: 0.5; at least the stored `STORE_BASE_T`).
    pub base_t: f64,
    /// Starting refining share, adapted per relation (for both kinds).
    pub p: f64,
    /// A neuron must be in at least this many prompts' coarse sets (the
    /// official code: 3), besides more than `p·n`.
    pub min_prompts: usize,
    pub max_rounds: usize,
    /// Relation-level neurons: shared by at least this share of its facts.
    pub share: f64,
    /// Facts updated per relation (seeded, among the known facts).
    pub update_facts: usize,
    pub update: UpdateOptions,
    /// `k` of the sweep; it runs on the edited facts with at least the largest.
    pub k_sweep: Vec<usize>,
    /// Neurons erased per relation.
    pub erase_top: usize,
    /// Prompts of the other relations' set, per perplexity measurement.
    pub eval_prompts: usize,
    /// `data/bingrel/`; `None` skips that part.
    pub bingrel: Option<PathBuf>,
    /// Leave out the fact updates and the relation erasures.
    pub no_edits: bool,
    /// The methods lab over the run's facts; no methods leaves it out.
    pub methods: methods_at_scale::MethodsOptions,
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            t: 0.2,
            base_t: 0.5,
            p: 0.7,
            min_prompts: 3,
            max_rounds: 6,
            share: 0.1,
            update_facts: 10,
            update: UpdateOptions::default(),
            k_sweep: vec![1, 2, 3, 4],
            erase_top: 20,
            eval_prompts: 200,
            bingrel: None,
            no_edits: false,
            methods: methods_at_scale::MethodsOptions {
                methods: Vec::new(),
                per_relation: 3,
                k: 5,
                ig: crate::engine::attribution::Options::default(),
            },
            seed: 0,
        }
    }
}

impl ReportOptions {
    /// Refuse bad knobs before the slow stages, not half an hour into them.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.t.is_finite() && self.t >= STORE_T && self.t < 1.0) {
            return bad(format!(
                "t = {}: it must be at least the stored threshold {STORE_T} and below 1",
                self.t
            ));
        }
        if !(self.base_t.is_finite() && self.base_t >= STORE_BASE_T && self.base_t < 1.0) {
            return bad(format!(
                "base-t = {}: it must be at least the stored threshold {STORE_BASE_T} and below 1",
                self.base_t
            ));
        }
        if !(self.p.is_finite() && self.p > 0.0 && self.p <= 1.0) {
            return bad(format!("p = {}: it must be in (0, 1]", self.p));
        }
        if self.min_prompts == 0 {
            return bad("min-prompts must be at least 1".into());
        }
        if self.update.k == 0 || self.k_sweep.is_empty() || self.k_sweep.contains(&0) {
            return bad("k and every k of the sweep must be at least 1".into());
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
        if !self.methods.methods.is_empty()
            && (self.methods.k == 0 || self.methods.per_relation == 0)
        {
            return bad("methods-k and methods-facts must be at least 1".into());
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

/// One prompt list for a batched run, built from facts' prompts, each fact's
/// once however often it is named; `at` says where each fact's prompts are.
#[derive(Default)]
pub(crate) struct FactPrompts {
    pub queries: Vec<Query>,
    pub at: BTreeMap<usize, Range<usize>>,
}

impl FactPrompts {
    /// Where fact `i` of `done`'s prompts are, adding them the first time.
    pub fn place(&mut self, done: &[Done], i: usize) -> Range<usize> {
        let queries = &mut self.queries;
        self.at
            .entry(i)
            .or_insert_with(|| {
                let start = queries.len();
                queries.extend(done[i].queries.iter().cloned());
                start..queries.len()
            })
            .clone()
    }
}

/// A finished fact with its refined sets.
pub(crate) struct Done {
    pub rel: usize,
    pub fact: usize,
    pub record: FactRecord,
    pub queries: Vec<Query>,
    /// Knowledge neurons, strongest first (summed stored scores).
    pub knowledge: Vec<Neuron>,
    pub baseline: Vec<Neuron>,
    /// In the random sample (the statistics use these facts only).
    pub in_sample: bool,
    /// Answered correctly on at least one prompt (the update experiment's facts).
    pub known: bool,
}

impl Done {
    /// A seed of this fact's own, from the report's: its random controls stay
    /// the same whatever else the run holds (its index in the run would not).
    pub fn seed(&self, seed: u64) -> u64 {
        crate::experiment::mix(seed, &format!("{}:{}", self.rel, self.fact))
    }

    /// The neuron's stored attribution scores summed over the fact's prompts
    /// (a prompt whose coarse set lacks it adds nothing).
    pub fn summed_score(&self, n: Neuron) -> f64 {
        self.record
            .prompts
            .iter()
            .flat_map(|p| p.knowledge.iter())
            .filter(|s| neuron(s.0, s.1) == n)
            .map(|s| f64::from(s.2))
            .sum()
    }
}

pub(crate) fn neuron(l: u32, i: u32) -> Neuron {
    Neuron {
        layer: l as usize,
        index: i as usize,
    }
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
    let (settings, fp) = run_settings(model, db)?;
    let cfg = model.config().clone();
    progress("planning");
    let plan = plan_with(model, data, &settings, db.known()?.as_deref())?;
    let stored = db.facts()?;
    let mut coverage = plan.coverage.clone();
    coverage.done = stored.iter().filter(|f| f.outcome.is_ok()).count();
    coverage.failed = stored.len() - coverage.done;
    let attribution_seconds = stored.iter().map(|f| f.seconds).sum();

    progress("refining");
    let refine::Refined {
        done,
        mut rows,
        rel_shared,
        rel_p,
    } = refine::refine(model, data, &plan, &stored, &settings, opts)?;
    let sample: Vec<&Done> = done.iter().filter(|d| d.in_sample).collect();
    if sample.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no finished fact to report on; run `kn experiment run` first",
            db.path.display()
        )));
    }
    let rels: Vec<usize> = sample.iter().map(|d| d.rel).collect();
    let pick = |f: fn(&Done) -> &Vec<Neuron>| -> Vec<Vec<Neuron>> {
        sample.iter().map(|d| f(d).clone()).collect()
    };
    let knowledge = set_stats(&pick(|d| &d.knowledge), &rels, cfg.n_layers, opts.seed);
    let baseline = set_stats(&pick(|d| &d.baseline), &rels, cfg.n_layers, opts.seed ^ 7);

    progress("suppress and amplify");
    let (suppress, amplify) = suppress_and_amplify(model, data, &done, &mut rows, opts)?;

    let bingrel = match &opts.bingrel {
        Some(dir) => {
            progress("BingRel");
            Some(bingrel::bingrel(model, data, &done, dir, opts.seed)?)
        }
        None => None,
    };

    let methods = if opts.methods.methods.is_empty() {
        None
    } else {
        progress("methods");
        let ig_seconds = attribution_seconds / stored.len().max(1) as f64;
        let run = LabInputs {
            db,
            done: &done,
            settings: &settings,
            rel_p: &rel_p,
            ig_seconds,
        };
        methods_lab(model, data, &run, opts)?
    };

    let (update, erase) = if opts.no_edits {
        (None, Vec::new())
    } else {
        progress("updating facts");
        let update = update::update_facts(model, data, &done, &rel_shared, opts)?;
        progress("erasing relations");
        (update, erase::erase_relations(model, data, &done, opts)?)
    };

    Ok(ExperimentReport {
        name: name.to_string(),
        model: settings.model.clone(),
        fingerprint: fp,
        masked: cfg.arch.is_masked(),
        settings: experiment_settings(&settings, opts),
        coverage,
        knowledge,
        baseline,
        layers: cfg.n_layers,
        relations: rows,
        suppress,
        amplify,
        bingrel,
        update,
        erase,
        attribution_seconds,
        report_seconds: started.elapsed().as_secs_f64(),
        methods,
    })
}

/// The run's settings, checked to be this model's (runs made before the
/// fingerprint became a hash of the checkpoint carry the old device checksum;
/// those are recognised too), with this model's fingerprint.
fn run_settings(model: &Model, db: &RunDb) -> Result<(super::Settings, String)> {
    let settings = db
        .settings()?
        .ok_or_else(|| Error::Store(format!("{}: not a run file", db.path.display())))?;
    let fp = fingerprint(model);
    let legacy = !settings.fingerprint.contains("sha256:")
        && crate::engine::edit::legacy_fingerprint(model) == settings.fingerprint;
    if fp != settings.fingerprint && !legacy {
        return Err(Error::InvalidArgument(format!(
            "the run used model `{}` (fingerprint {}); this model's fingerprint is {fp}",
            settings.model, settings.fingerprint
        )));
    }
    Ok((settings, fp))
}

/// Suppress and amplify every sampled fact's knowledge neurons (with their
/// controls): each relation's row gets its own summary; the overall pair is
/// returned.
fn suppress_and_amplify(
    model: &Model,
    data: &ParaRel,
    done: &[Done],
    rows: &mut [RelationRow],
    opts: &ReportOptions,
) -> Result<(Effects, Effects)> {
    let facts: Vec<usize> = (0..done.len())
        .filter(|&i| done[i].in_sample && !done[i].knowledge.is_empty())
        .collect();
    let per_fact: Vec<(usize, effects::FactEffects)> = facts
        .iter()
        .map(|&i| done[i].rel)
        .zip(effects::facts_effects(model, done, &facts, opts.seed)?)
        .collect();
    for row in rows.iter_mut() {
        let ri = data
            .relations
            .iter()
            .position(|r| r.id == row.id)
            .unwrap_or(usize::MAX);
        let mine: Vec<&effects::FactEffects> = per_fact
            .iter()
            .filter(|f| f.0 == ri)
            .map(|f| &f.1)
            .collect();
        row.suppress = effects::summarise(&mine, 0, opts.seed ^ ri as u64);
        row.amplify = effects::summarise(&mine, 1, opts.seed ^ ri as u64);
    }
    let all: Vec<&effects::FactEffects> = per_fact.iter().map(|f| &f.1).collect();
    Ok((
        effects::summarise(&all, 0, opts.seed),
        effects::summarise(&all, 1, opts.seed),
    ))
}

/// What the methods lab at scale reads of the run.
struct LabInputs<'a> {
    db: &'a RunDb,
    done: &'a [Done],
    settings: &'a super::Settings,
    /// Each relation's adapted refining share.
    rel_p: &'a BTreeMap<usize, f64>,
    /// Seconds of IG per fact in the run, for the methods' cost.
    ig_seconds: f64,
}

/// The methods lab over the run's facts, IG at the run's own settings.
fn methods_lab(
    model: &Model,
    data: &ParaRel,
    run: &LabInputs,
    opts: &ReportOptions,
) -> Result<Option<MethodsAtScale>> {
    let mut m = opts.methods.clone();
    m.ig.steps = run.settings.steps;
    m.ig.riemann = run.settings.riemann;
    let sel = methods_at_scale::Selection {
        p: run.rel_p,
        t: opts.t,
        min_prompts: opts.min_prompts,
    };
    let relations: Vec<&str> = data.relations.iter().map(|r| r.id.as_str()).collect();
    let side = methods_at_scale::RunSide {
        db: run.db,
        done: run.done,
        relations: &relations,
        ig_seconds: run.ig_seconds,
    };
    methods_at_scale::methods_at_scale(model, &side, &sel, &m, opts.seed)
}

/// The settings the report states it was made with.
fn experiment_settings(settings: &super::Settings, opts: &ReportOptions) -> ExperimentSettings {
    ExperimentSettings {
        steps: settings.steps,
        riemann: settings.riemann,
        t: opts.t,
        p: opts.p,
        min_prompts: opts.min_prompts,
        base_t: Some(opts.base_t),
        seed: settings.seed,
        facts_per_relation: settings.facts_per_relation,
        relations: settings.relations.clone(),
        multi_token: settings.multi_token,
    }
}

#[cfg(test)]
mod tests {
    use super::refine::coarse_sets;
    use super::*;
    use crate::experiment::db::{PromptRecord, Scored};

    #[test]
    fn the_baseline_is_cut_at_base_t_of_each_prompts_largest_activation() {
        let prompt = |acts: &[(u32, f32)], max: Option<f64>| PromptRecord {
            prompt: String::new(),
            p_target: 0.5,
            max_score: 1.0,
            knowledge: vec![Scored(0, 1, 0.9), Scored(0, 2, 0.15)],
            baseline: acts.iter().map(|&(i, a)| Scored(0, i, a)).collect(),
            max_activation: max,
        };
        let r = FactRecord {
            subject: String::new(),
            object: String::new(),
            prompts: vec![
                prompt(&[(7, 6.0), (8, 4.0)], Some(10.0)),
                // A run made before activations were kept: its tuned set as is.
                prompt(&[(8, 4.0)], None),
            ],
            baseline_t: 0.4,
        };
        let (k, b) = coarse_sets(&r, &ReportOptions::default());
        let n = |i| Neuron { layer: 0, index: i };
        assert_eq!(k[0], vec![n(1)], "t = 0.2 of the largest score");
        assert_eq!(b[0], vec![n(7)], "base_t = 0.5 of the largest activation");
        assert_eq!(b[1], vec![n(8)]);
    }

    #[test]
    fn bad_report_options_are_refused_before_any_work() {
        assert!(ReportOptions::default().validate().is_ok());
        let bad = [
            ReportOptions {
                t: 0.05,
                ..Default::default()
            },
            ReportOptions {
                base_t: 0.1,
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
                k_sweep: vec![],
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
}
