//! `kn experiment run`: attribute this shard's planned facts (several together
//! on a GPU), one SQLite commit per fact, skipping those stored already.

use super::db::{FactRecord, PromptRecord, RunDb, Scored, StoredFact, STORE_BASE_T, STORE_T};
use super::{fact_queries, plan_with, Settings, Shard};
use crate::engine::attribution::{attribute_many, rows, Options};
use crate::engine::selection::{
    attribute_fact_with, coarse, tune_baseline_t, FactAttribution, Thresholds,
};
use crate::engine::{AnswerPositions, Query};
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct RunOptions {
    pub ig: Options,
    /// Draw a progress bar (on a terminal) or log progress lines (otherwise).
    pub progress: bool,
    /// Stop after this many facts (a time-boxed job); the rest wait for a restart.
    pub max_facts: Option<usize>,
    /// Facts whose prompts are attributed together (as far as `ig`'s budgets
    /// allow): 1 on the CPU, where one fact's passes already fill the cores;
    /// more on a GPU (see [`RunOptions::batch_facts_for`]).
    pub batch_facts: usize,
}

impl RunOptions {
    /// The default number of facts attributed together on `device`.
    pub fn batch_facts_for(device: tch::Device) -> usize {
        if device.is_cuda() {
            8
        } else {
            1
        }
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    pub path: PathBuf,
    /// Facts of the whole plan, and of this shard.
    pub planned: usize,
    pub shard_facts: usize,
    /// Stored before this invocation, and by it.
    pub already: usize,
    pub stored: usize,
    pub failed: usize,
}

/// Errors that belong to a fact (its prompt is too long, say): stored with the
/// fact, which is not retried. Anything else (out of memory, a broken model)
/// stops the run, and a restart retries the fact.
fn fact_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Prompt(_)
            | Error::PromptTooLong { .. }
            | Error::MultiTokenTarget { .. }
            | Error::AnswerTooLong { .. }
            | Error::InvalidArgument(_)
            | Error::NonFinite(_)
    )
}

fn scored(map: &[Vec<f32>], neurons: &[crate::engine::Neuron]) -> Vec<Scored> {
    neurons
        .iter()
        .map(|n| Scored(n.layer as u32, n.index as u32, map[n.layer][n.index]))
        .collect()
}

/// Attribute one fact and keep what the report needs.
pub fn fact_record(
    model: &Model,
    data: &ParaRel,
    relation: usize,
    fact: usize,
    ig: &Options,
    multi_token: Option<AnswerPositions>,
) -> Result<FactRecord> {
    let queries = fact_queries(model, &data.relations[relation], fact, multi_token)?;
    let fa = attribute_fact_with(model, queries, ig, &mut |_, _| true)?;
    record(data, relation, fact, &fa)
}

/// [`fact_record`] for several facts `(relation, fact)`, their prompts
/// attributed together: the same records, one result per fact. A fact's own
/// error (a prompt too long, say) is its result alone; should the batch fail
/// as a whole, each fact is attributed alone so the error lands on its fact.
pub fn fact_records(
    model: &Model,
    data: &ParaRel,
    items: &[(usize, usize)],
    ig: &Options,
    multi_token: Option<AnswerPositions>,
) -> Vec<Result<FactRecord>> {
    if items.len() <= 1 {
        return items
            .iter()
            .map(|&(r, f)| fact_record(model, data, r, f, ig, multi_token))
            .collect();
    }
    let queries: Vec<Result<Vec<Query>>> = items
        .iter()
        .map(|&(r, f)| fact_queries(model, &data.relations[r], f, multi_token))
        .collect();
    let all: Vec<Query> = queries.iter().flatten().flatten().cloned().collect();
    let attributions =
        match attribute_many(model, &all, ig, 0..model.config().n_layers, &mut |_| true) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{} facts together: {e}; now one by one", items.len());
                return items
                    .iter()
                    .map(|&(r, f)| fact_record(model, data, r, f, ig, multi_token))
                    .collect();
            }
        };
    let mut attributions = attributions.into_iter();
    items
        .iter()
        .zip(queries)
        .map(|(&(r, f), qs)| {
            let qs = qs?;
            let mine: Vec<_> = attributions.by_ref().take(qs.len()).collect();
            let fa = FactAttribution {
                queries: qs,
                attributions: mine,
            };
            record(data, r, f, &fa)
        })
        .collect()
}

/// What the report needs of one fact's attribution.
fn record(
    data: &ParaRel,
    relation: usize,
    fact: usize,
    fa: &FactAttribution,
) -> Result<FactRecord> {
    let rel = &data.relations[relation];
    let th = Thresholds::default();
    let baseline_t = tune_baseline_t(&[fa], th.t, th.p, th.min_prompts);
    let prompts = fa
        .queries
        .iter()
        .zip(&fa.attributions)
        .map(|(q, a)| {
            let (scores, acts) = (rows(&a.scores)?, rows(&a.activations)?);
            // NaN or infinity would be stored as JSON null and make the run
            // unreadable; the fact is recorded as failed instead.
            let max_score = a.scores.max().double_value(&[]);
            let max_act = a.activations.abs().max().double_value(&[]);
            if ![a.p_target, max_score, max_act].iter().all(|x| x.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "prompt {:?}: the model gave a non-finite value (P(target) {}, top score {max_score}, top |activation| {max_act})",
                    q.prompt, a.p_target
                )));
            }
            Ok(PromptRecord {
                prompt: q.prompt.clone(),
                p_target: a.p_target,
                max_score,
                knowledge: scored(&scores, &coarse(&a.scores, STORE_T)),
                baseline: scored(&acts, &coarse(&a.activations, STORE_BASE_T)),
                max_activation: Some(a.activations.max().double_value(&[])),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let f = &rel.facts[fact];
    Ok(FactRecord {
        subject: f.subject.clone(),
        object: f.object.clone(),
        prompts,
        baseline_t,
    })
}

fn bar(total: usize, done: usize, enabled: bool) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(total as u64), target);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} facts  {per_sec}  elapsed {elapsed}  ETA {eta}  {msg}",
        )
        .expect("a valid template"),
    );
    pb.set_position(done as u64);
    pb.reset_eta();
    pb
}

/// Run this shard of the plan into `out/<shard file>`.
pub fn run(
    model: &Model,
    data: &ParaRel,
    settings: &Settings,
    shard: Shard,
    out: &Path,
    opts: &RunOptions,
) -> Result<RunOutcome> {
    opts.ig.validate()?;
    // Plan first: bad settings must not leave an empty run file behind. A run
    // file that exists already keeps the known facts its first plan found.
    let path = out.join(shard.file_name());
    let kept = if path.is_file() {
        RunDb::open_existing(&path)?.known()?
    } else {
        None
    };
    let plan = plan_with(model, data, settings, kept.as_deref())?;
    let db = RunDb::open(&path)?;
    db.bind(settings, shard)?;
    db.set_known(&plan.coverage.known)?;
    db.set_coverage(&plan.coverage)?;
    let key = |it: &super::Item| (data.relations[it.relation].id.clone(), it.fact);
    let mine: Vec<_> = plan
        .items
        .iter()
        .filter(|it| shard.holds(&data.relations[it.relation].id, it.fact))
        .copied()
        .collect();
    let stored = db.done()?;
    let todo: Vec<_> = mine
        .iter()
        .filter(|it| !stored.contains(&key(it)))
        .collect();
    let already = mine.len() - todo.len();
    tracing::info!(
        "{}: {} facts planned, {} in shard {}/{}, {already} stored already",
        db.path.display(),
        plan.items.len(),
        mine.len(),
        shard.index,
        shard.count
    );
    let pb = bar(mine.len(), already, opts.progress);
    let (start, mut last_log) = (Instant::now(), Instant::now());
    let (mut n_stored, mut n_failed) = (0, 0);
    let todo: Vec<_> = todo
        .into_iter()
        .take(opts.max_facts.unwrap_or(usize::MAX))
        .collect();
    for batch in todo.chunks(opts.batch_facts.max(1)) {
        let (rel, fact) = key(batch[0]);
        pb.set_message(format!("{rel} #{fact}"));
        let t0 = Instant::now();
        let items: Vec<_> = batch.iter().map(|it| (it.relation, it.fact)).collect();
        let records = fact_records(model, data, &items, &opts.ig, settings.multi_token);
        // A batch's time is shared evenly by its facts.
        let seconds = t0.elapsed().as_secs_f64() / batch.len() as f64;
        for (it, r) in batch.iter().zip(records) {
            let (rel, fact) = key(it);
            let outcome = match r {
                Ok(r) => Ok(r),
                Err(e) if fact_error(&e) => {
                    n_failed += 1;
                    tracing::warn!("{rel} #{fact}: {e}");
                    Err(e.to_string())
                }
                Err(e) => {
                    pb.abandon();
                    return Err(e);
                }
            };
            db.put(&StoredFact {
                relation: rel,
                fact,
                outcome,
                seconds,
            })?;
            n_stored += 1;
            pb.inc(1);
        }
        if opts.progress
            && pb.is_hidden()
            && (last_log.elapsed() > Duration::from_secs(30) || n_stored == todo.len())
        {
            last_log = Instant::now();
            let rate = n_stored as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let left = todo.len() - n_stored;
            tracing::info!(
                "{}/{} facts, {:.3} facts/s, ETA {:.0} s",
                already + n_stored,
                mine.len(),
                rate,
                left as f64 / rate.max(1e-9)
            );
        }
    }
    pb.finish_and_clear();
    Ok(RunOutcome {
        path: db.path.clone(),
        planned: plan.items.len(),
        shard_facts: mine.len(),
        already,
        stored: n_stored,
        failed: n_failed,
    })
}
