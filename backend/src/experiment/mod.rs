//! The paper's experiments over ParaRel (`kn experiment`), in three steps:
//!
//! 1. [`plan`]: which facts a run covers. SPEC's data rules (via [`crate::pararel`]),
//!    the causal-template filter, answers of any length (runs made before
//!    multi-token answers could be attributed keep them out; counted either
//!    way), then all facts or a seeded sample per relation. The plan is a pure function
//!    of the data, the model's tokenizer and the settings, so every shard and every
//!    restart computes the same one.
//! 2. [`run`]: attribution and coarse selection for each planned fact of this
//!    shard, each fact committed to SQLite ([`db`]) as it finishes. Restarting skips
//!    what is stored; `merge` joins the shards' files.
//! 3. [`report`]: refining (adaptive `p`), statistics, interventions, BingRel,
//!    fact updates and relation erasure, from the stored neurons; Markdown, JSON
//!    and SVG, and the same JSON in the store for the web client.

pub mod db;
pub mod markdown;
pub mod report;
pub mod run;

use crate::engine::attribution::Riemann;
use crate::engine::{AnswerPositions, Query};
use crate::models::{Model, Vocab};
use crate::pararel::{fill, ParaRel, Relation};
use crate::{Error, Result};
use kn_shared::experiment::Coverage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The settings that decide a run's results. A store remembers them, and a
/// restart or a merge with other settings is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The model as given (`smollm2`, a directory, a hub id).
    pub model: String,
    /// [`crate::engine::edit::fingerprint`] of its weights.
    pub fingerprint: String,
    pub steps: usize,
    pub riemann: Riemann,
    pub seed: u64,
    pub facts_per_relation: Option<usize>,
    /// Empty: all 34.
    pub relations: Vec<String>,
    /// Besides the sample, up to this many facts per relation that the model
    /// answers correctly on at least one prompt: the facts the update
    /// experiment edits (it measures whether an answer the model gives is
    /// changed, so it needs facts the model knows). They are left out of the
    /// other statistics, which use the random sample only.
    #[serde(default)]
    pub known_facts_per_relation: usize,
    /// Facts whose answer is several tokens: `None` leaves them out (the
    /// plan of runs made before they could be attributed, which keeps those
    /// runs' samples), `Some(positions)` plans them, read at those positions.
    #[serde(default)]
    pub multi_token: Option<AnswerPositions>,
}

impl Settings {
    /// Whether a file started with `other` belongs to the same run: the same
    /// weights and method, whatever the model was called (a hub id on one
    /// machine, a local folder on another) and in whatever order the
    /// relations were listed.
    pub fn same_run(&self, other: &Settings) -> bool {
        let key = |s: &Settings| {
            let mut k = s.clone();
            k.model.clear();
            k.relations.sort();
            k.relations.dedup();
            k
        };
        key(self) == key(other)
    }
}

/// Which part of the plan this process works on: the facts whose stable hash
/// is `i` modulo `n` (see [`Shard::holds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `--shard i/n` (0-based), else a Slurm job array
    /// (`SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`),
    /// else a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of `--shards N`).
    pub fn resolve(
        flag: Option<&str>,
        shards: Option<usize>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        let num = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                Error::InvalidArgument(format!("{name} is `{v}`; expected a whole number"))
            })
        };
        let shard = if let Some(f) = flag {
            let (i, n) = f.split_once('/').ok_or_else(|| {
                Error::InvalidArgument(format!("--shard `{f}`: expected i/n, e.g. 0/4"))
            })?;
            Shard {
                index: num("the shard index", i)?,
                count: num("the shard count", n)?,
            }
        } else if let (Some(id), Some(count)) =
            (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"))
        {
            let min = env("SLURM_ARRAY_TASK_MIN")
                .map(|m| num("SLURM_ARRAY_TASK_MIN", &m))
                .transpose()?
                .unwrap_or(0);
            let id = num("SLURM_ARRAY_TASK_ID", &id)?;
            let count = num("SLURM_ARRAY_TASK_COUNT", &count)?;
            if let Some(n) = shards.filter(|&n| n != count) {
                return Err(Error::InvalidArgument(format!(
                    "--shards {n} disagrees with SLURM_ARRAY_TASK_COUNT {count}; leave --shards out in a Slurm array"
                )));
            }
            Shard {
                index: id.checked_sub(min).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                    ))
                })?,
                count,
            }
        } else if let Some(i) = env("JOB_COMPLETION_INDEX") {
            let count = shards.ok_or_else(|| {
                Error::InvalidArgument(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give the shard count with --shards N, the Job's completions".into(),
                )
            })?;
            Shard {
                index: num("JOB_COMPLETION_INDEX", &i)?,
                count,
            }
        } else {
            return match shards {
                Some(n) if n > 1 => Err(Error::InvalidArgument(format!(
                    "--shards {n} needs a shard index: --shard i/{n}, a Slurm array or JOB_COMPLETION_INDEX"
                ))),
                _ => Ok(Shard::ALL),
            };
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(Error::InvalidArgument(format!(
                "shard {}/{}: the index must be below the count (0-based)",
                shard.index, shard.count
            )));
        }
        Ok(shard)
    }

    /// Whether this shard works on `fact` of relation `relation`. By a stable
    /// hash, not by position in the plan, so that growing a sample adds facts
    /// to shards without moving the ones they hold already.
    pub fn holds(&self, relation: &str, fact: usize) -> bool {
        let mut h = mix(fact as u64, relation);
        // splitmix64's finaliser: FNV's low bits alone spread poorly.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        h % self.count as u64 == self.index as u64
    }

    /// The store file of this shard in a run folder.
    pub fn file_name(&self) -> String {
        if self.count == 1 {
            "run.sqlite".into()
        } else {
            format!("shard-{}-of-{}.sqlite", self.index, self.count)
        }
    }
}

/// A planned fact: indices into [`ParaRel::relations`] and its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub relation: usize,
    pub fact: usize,
}

pub struct Plan {
    /// Every fact to attribute: the sample and the known facts, in relation
    /// order, each relation's facts in index order.
    pub items: Vec<Item>,
    /// The random sample (or every fact): the facts of the statistics.
    pub sample: std::collections::BTreeSet<Item>,
    /// Facts the model answers correctly on at least one prompt, for updates.
    pub known: std::collections::BTreeSet<Item>,
    pub coverage: Coverage,
}

/// SPEC keeps the relations with at least this many templates; we apply the
/// rule to the templates the model can use, since a fact's knowledge neurons
/// are refined across its prompts and one or two prompts refine nothing.
pub const MIN_TEMPLATES: usize = 4;

/// The known-fact scan looks at most at this many facts of a relation.
pub const KNOWN_SCAN: usize = 320;

/// The templates this model can use: all for a masked LM, those whose blank
/// ends the sentence for a causal LM.
pub fn usable_templates<'a>(model: &impl Vocab, rel: &'a Relation) -> Vec<&'a String> {
    if Vocab::config(model).arch.is_masked() {
        rel.templates.iter().collect()
    } else {
        rel.causal_templates()
    }
}

/// A fact's queries on the usable templates, a multi-token answer read at
/// `multi_token`'s positions; `None` (the plan of runs made before such
/// answers could be attributed) refuses one, as those runs did, on whichever
/// template splits it.
pub fn fact_queries(
    model: &impl Vocab,
    rel: &Relation,
    fact: usize,
    multi_token: Option<AnswerPositions>,
) -> Result<Vec<Query>> {
    let f = rel
        .facts
        .get(fact)
        .ok_or_else(|| Error::InvalidArgument(format!("{} has no fact {fact}", rel.id)))?;
    let qs = usable_templates(model, rel)
        .iter()
        .map(|t| {
            Ok(Query::new(model, &fill(t, &f.subject), &f.object)?
                .with_positions(multi_token.unwrap_or_default()))
        })
        .collect::<Result<Vec<_>>>()?;
    if multi_token.is_none() {
        crate::engine::one_token(model, &qs)?;
    }
    Ok(qs)
}

/// Whether a fact can be planned.
enum Eligible {
    /// Its answer is one token at the blank.
    OneToken,
    /// Its answer is several tokens at the blank.
    MultiToken,
    /// Its answer is more tokens than an answer may have.
    TooManyPieces,
    /// Its prompt cannot be built (too long, or the tokenizer refuses it).
    Unusable(Error),
}

/// How many tokens the fact's answer is at the blank of its first usable template.
fn answer_kind(model: &Model, template: &str, rel: &Relation, fact: usize) -> Eligible {
    let f = &rel.facts[fact];
    match Query::new(model, &fill(template, &f.subject), &f.object) {
        Ok(q) if q.is_chain() => Eligible::MultiToken,
        Ok(_) => Eligible::OneToken,
        Err(Error::AnswerTooLong { .. }) => Eligible::TooManyPieces,
        Err(e) => Eligible::Unusable(e),
    }
}

/// A stable 64-bit hash of a relation id, to give each relation its own sample.
pub(crate) fn mix(seed: u64, id: &str) -> u64 {
    id.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The facts a run covers (see the module docs), in relation order, each
/// relation's facts in index order.
pub fn plan(model: &Model, data: &ParaRel, settings: &Settings) -> Result<Plan> {
    plan_with(model, data, settings, None)
}

/// [`plan`], with the known facts a run file kept (`(relation id, fact)`)
/// instead of scanning for them again.
pub fn plan_with(
    model: &Model,
    data: &ParaRel,
    settings: &Settings,
    known_kept: Option<&[(String, usize)]>,
) -> Result<Plan> {
    for r in &settings.relations {
        data.relation(r)?;
    }
    let mut cov = Coverage {
        multi_token_included: settings.multi_token.is_some(),
        ..Coverage::default()
    };
    let (mut sample, mut known) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for (ri, rel) in data.relations.iter().enumerate() {
        if !settings.relations.is_empty() && !settings.relations.contains(&rel.id) {
            continue;
        }
        let Some((eligible, one_token)) = eligible_facts(model, rel, settings, &mut cov) else {
            continue;
        };
        let mut chosen = eligible;
        if let Some(n) = settings.facts_per_relation {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(settings.seed, &rel.id));
            chosen.shuffle(&mut rng);
            chosen.truncate(n);
            chosen.sort_unstable();
        }
        let item = |fact| Item { relation: ri, fact };
        sample.extend(chosen.iter().map(|&f| item(f)));
        if let Some(kept) = known_kept {
            known.extend(
                kept.iter()
                    .filter(|(r, _)| *r == rel.id)
                    .map(|&(_, f)| item(f)),
            );
        } else if settings.known_facts_per_relation > 0 {
            let found = scan_known(model, rel, one_token, settings, &mut cov)?;
            known.extend(found.into_iter().map(item));
        }
    }
    let items: Vec<Item> = sample.union(&known).copied().collect();
    cov.known = known
        .iter()
        .map(|it| (data.relations[it.relation].id.clone(), it.fact))
        .collect();
    cov.planned = items.len();
    cov.known_planned = known.len();
    Ok(Plan {
        items,
        sample,
        known,
        coverage: cov,
    })
}

/// A relation's plannable facts, and those of them whose answer is one token
/// (the updates' candidates), counted into `cov`; `None` when the relation
/// has no usable template or too few to refine.
fn eligible_facts(
    model: &Model,
    rel: &Relation,
    settings: &Settings,
    cov: &mut Coverage,
) -> Option<(Vec<usize>, Vec<usize>)> {
    cov.relations += 1;
    cov.facts += rel.facts.len();
    cov.prompts += rel.facts.len() * rel.templates.len();
    let templates = usable_templates(model, rel);
    cov.usable_prompts += rel.facts.len() * templates.len();
    let Some(first) = templates.first() else {
        cov.no_template += rel.facts.len();
        return None;
    };
    if templates.len() < MIN_TEMPLATES {
        cov.unrefinable.push(kn_shared::experiment::Unrefinable {
            relation: rel.id.clone(),
            usable_templates: templates.len(),
            facts: rel.facts.len(),
        });
        return None;
    }
    let (mut eligible, mut one_token) = (Vec::new(), Vec::new());
    for fact in 0..rel.facts.len() {
        match answer_kind(model, first, rel, fact) {
            Eligible::OneToken => {
                eligible.push(fact);
                one_token.push(fact);
            }
            Eligible::MultiToken => {
                cov.multi_token += 1;
                if settings.multi_token.is_some() {
                    eligible.push(fact);
                }
            }
            Eligible::TooManyPieces => cov.too_many_pieces += 1,
            Eligible::Unusable(e) => {
                tracing::warn!("{} #{fact}: skipped: {e}", rel.id);
                cov.unusable += 1;
            }
        }
    }
    cov.eligible_facts += eligible.len();
    cov.eligible_prompts += eligible.len() * templates.len();
    Some((eligible, one_token))
}

/// Up to `known_facts_per_relation` facts of `rel` (among `one_token`, in a
/// seeded order of the relation's own) that the model answers correctly on at
/// least one prompt, scanning at most [`KNOWN_SCAN`] facts in batches of 16
/// (one forward pass each).
fn scan_known(
    model: &Model,
    rel: &Relation,
    mut order: Vec<usize>,
    settings: &Settings,
    cov: &mut Coverage,
) -> Result<Vec<usize>> {
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(
        settings.seed ^ 0x6b6e_6f77_6e00,
        &rel.id,
    )));
    let mut found = Vec::new();
    for chunk in order[..order.len().min(KNOWN_SCAN)].chunks(16) {
        // One-token answers on every template (an update needs one); a fact
        // whose answer some template splits is passed over.
        let facts: Vec<(usize, Vec<Query>)> = chunk
            .iter()
            .filter_map(|&f| fact_queries(model, rel, f, None).ok().map(|q| (f, q)))
            .collect();
        if facts.is_empty() {
            continue;
        }
        let all: Vec<Query> = facts.iter().flat_map(|(_, q)| q.iter().cloned()).collect();
        let (_, top) =
            crate::engine::readout::probabilities(model, &all, &crate::models::Hooks::default())?;
        let mut at = 0;
        for (fact, qs) in &facts {
            let hit = top[at..at + qs.len()]
                .iter()
                .zip(qs)
                .any(|(&t, q)| t == q.target);
            at += qs.len();
            cov.known_scanned += 1;
            if hit {
                found.push(*fact);
                if found.len() == settings.known_facts_per_relation {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn shard_from_flag_slurm_and_kubernetes() {
        let none = env(&[]);
        assert_eq!(Shard::resolve(None, None, &none).unwrap(), Shard::ALL);
        assert_eq!(
            Shard::resolve(Some("2/4"), None, &none).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &slurm).unwrap(),
            Shard { index: 1, count: 3 }
        );
        // The flag wins over the environment.
        assert_eq!(
            Shard::resolve(Some("0/2"), None, &slurm).unwrap(),
            Shard { index: 0, count: 2 }
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            Shard::resolve(None, Some(8), &k8s).unwrap(),
            Shard { index: 3, count: 8 }
        );
        let e = Shard::resolve(None, None, &k8s).unwrap_err().to_string();
        assert!(e.contains("--shards"), "{e}");
        // --shards must agree with a Slurm array's count.
        assert_eq!(
            Shard::resolve(None, Some(3), &slurm).unwrap(),
            Shard { index: 1, count: 3 }
        );
        let e = Shard::resolve(None, Some(4), &slurm)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT 3"), "{e}");
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(Shard::resolve(Some(bad), None, &none).is_err(), "{bad}");
        }
        assert_eq!(
            Shard { index: 1, count: 4 }.file_name(),
            "shard-1-of-4.sqlite"
        );
        assert_eq!(Shard::ALL.file_name(), "run.sqlite");
    }

    #[test]
    fn each_fact_has_exactly_one_shard_and_shards_are_balanced() {
        for n in [1, 2, 3, 8] {
            let mut sizes = vec![0usize; n];
            for rel in ["P19", "P36", "P101", "P1412"] {
                for fact in 0..500 {
                    let owners: Vec<usize> = (0..n)
                        .filter(|&i| Shard { index: i, count: n }.holds(rel, fact))
                        .collect();
                    assert_eq!(owners.len(), 1, "{rel} #{fact} of {n}");
                    sizes[owners[0]] += 1;
                }
            }
            let fair = 2000 / n;
            assert!(
                sizes.iter().all(|&s| s.abs_diff(fair) < fair / 5 + 10),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn settings_ignore_the_model_name_and_the_relation_order() {
        let a = Settings {
            model: "bert-base-cased".into(),
            fingerprint: "f".into(),
            steps: 20,
            riemann: Riemann::Right,
            seed: 0,
            facts_per_relation: Some(3),
            relations: vec!["P36".into(), "P19".into()],
            known_facts_per_relation: 0,
            multi_token: None,
        };
        let b = Settings {
            model: "/models/bert-base-cased".into(),
            relations: vec!["P19".into(), "P36".into(), "P19".into()],
            ..a.clone()
        };
        assert!(a.same_run(&b));
        let c = Settings {
            fingerprint: "g".into(),
            ..b.clone()
        };
        assert!(!a.same_run(&c));
    }

    #[test]
    fn relation_seeds_differ() {
        assert_ne!(mix(0, "P19"), mix(0, "P20"));
        assert_ne!(mix(0, "P19"), mix(1, "P19"));
    }
}
