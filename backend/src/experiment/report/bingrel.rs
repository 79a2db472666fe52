//! Do knowledge-expressing texts fire the neurons? (SPEC, BingRel): the mean
//! activation of a fact's neurons at the blank of web sentences holding head
//! and tail (tail blanked), of sentences holding the head only (a random word
//! blanked), and of prompts of other facts.

use super::stats::{estimate, mean};
use super::Done;
use crate::cloze::{cloze, Cloze, BLANK};
use crate::engine::Neuron;
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::{Error, Result};
use kn_shared::experiment::{ActivationGroups, BingRel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Most clozes × tokens in one pass (no gradients are kept).
const PASS_ROW_TOKENS: usize = 2048;

/// Per cloze, the mean activation of each of its two neuron sets at its blank
/// (`None` for an empty set); `sets[i]` are cloze `i`'s. The clozes of every
/// fact pass together, in batches of at most [`PASS_ROW_TOKENS`] rows × tokens,
/// and each batch's activations at the blanks come back in one read.
fn activations(
    model: &Model,
    clozes: &[Cloze],
    sets: &[[&[Neuron]; 2]],
) -> Result<Vec<[Option<f64>; 2]>> {
    activations_in(model, clozes, sets, PASS_ROW_TOKENS)
}

fn activations_in(
    model: &Model,
    clozes: &[Cloze],
    sets: &[[&[Neuron]; 2]],
    budget: usize,
) -> Result<Vec<[Option<f64>; 2]>> {
    let mut out = vec![[None, None]; clozes.len()];
    crate::engine::readout::at_blanks(model, clozes, budget, |i, at| {
        out[i] = sets[i].map(|set| mean(set.iter().map(at)));
    })?;
    Ok(out)
}

/// Blank the word of `len` bytes at byte `at` of `sentence`: a masked LM sees
/// the whole sentence, a causal LM the text before the blank.
fn blank_at(model: &Model, sentence: &str, at: usize, len: usize) -> Option<Cloze> {
    let prompt = if model.config().arch.is_masked() {
        format!("{}{BLANK}{}", &sentence[..at], &sentence[at + len..])
    } else {
        format!("{}{BLANK}", &sentence[..at])
    };
    cloze(model, &prompt).ok()
}

/// The occurrences of `word` in `s` as a whole word (not "Rome" in "Romeo").
pub(super) fn find_words(s: &str, word: &str) -> Vec<usize> {
    s.match_indices(word)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = s[..at].chars().next_back();
            let after = s[at + word.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
        .collect()
}

/// A fact's first two sentence groups as clozes, and the number of
/// expressing sentences left out because the tail occurs in them twice or
/// more (blanking one would leave the answer in plain sight).
fn clozes(
    model: &Model,
    entry: &serde_json::Value,
    head: &str,
    tail: &str,
    rng: &mut ChaCha8Rng,
) -> (Vec<Cloze>, Vec<Cloze>, usize) {
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
    let mut repeated = 0;
    let expressing = bag("th_bags")
        .iter()
        .filter_map(|s| match find_words(s, tail).as_slice() {
            [at] => blank_at(model, s, *at, tail.len()),
            [] => None,
            _ => {
                repeated += 1;
                None
            }
        })
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
    (expressing, head_only, repeated)
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

/// SPEC's BingRel test over the sampled facts with knowledge neurons.
pub fn bingrel(
    model: &Model,
    data: &ParaRel,
    done: &[Done],
    dir: &Path,
    seed: u64,
) -> Result<BingRel> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BingRel::default();
    let (mut k, mut b) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    let mut bags: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
    // Every sentence and prompt to run, with its (fact, group).
    let (mut all, mut owner): (Vec<Cloze>, Vec<(usize, usize)>) = (Vec::new(), Vec::new());
    for (i, d) in done.iter().enumerate() {
        if d.knowledge.is_empty() || !d.in_sample {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = bags.entry(d.rel) {
            e.insert(load_bags(dir, &data.relations[d.rel].id)?);
        }
        let Some(entry) = bags[&d.rel].get(d.fact) else {
            continue;
        };
        let (expressing, head_only, repeated) =
            clozes(model, entry, &d.record.subject, &d.record.object, &mut rng);
        // Three prompts of facts of other relations.
        let others: Vec<Cloze> = (1..done.len())
            .map(|s| &done[(i + s * 7) % done.len()])
            .filter(|o| o.rel != d.rel && o.in_sample)
            .filter_map(|o| o.queries.first().map(|q| q.cloze.clone()))
            .take(3)
            .collect();
        out.facts += 1;
        out.repeated_tail_sentences += repeated;
        out.expressing_sentences += expressing.len();
        out.head_only_sentences += head_only.len();
        out.other_prompts += others.len();
        for (g, group) in [expressing, head_only, others].into_iter().enumerate() {
            if !group.is_empty() {
                owner.extend(std::iter::repeat_n((i, g), group.len()));
                all.extend(group);
            }
        }
    }
    // Every fact's sentences in the same passes; then, per fact and group in
    // order, the mean over its sentences of each set's mean activation.
    let sets: Vec<[&[Neuron]; 2]> = owner
        .iter()
        .map(|&(i, _)| [&done[i].knowledge[..], &done[i].baseline[..]])
        .collect();
    let acts = activations(model, &all, &sets)?;
    let mut at = 0;
    while at < owner.len() {
        let (i, g) = owner[at];
        let end = at + owner[at..].iter().take_while(|&&o| o == (i, g)).count();
        k[g].extend(mean(acts[at..end].iter().filter_map(|a| a[0])));
        b[g].extend(mean(acts[at..end].iter().filter_map(|a| a[1])));
        at = end;
    }
    let groups = |v: &[Vec<f64>; 3]| ActivationGroups {
        expressing: mean(v[0].iter().copied()).unwrap_or(0.0),
        head_only: mean(v[1].iter().copied()).unwrap_or(0.0),
        other_prompts: mean(v[2].iter().copied()).unwrap_or(0.0),
    };
    out.knowledge = groups(&k);
    out.baseline = groups(&b);
    out.knowledge_ci =
        Some([0, 1, 2].map(|g| estimate(&k[g], seed ^ g as u64).unwrap_or_default()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_words_only() {
        assert_eq!(super::find_words("Romeo left Rome.", "Rome"), vec![11]);
        assert_eq!(super::find_words("Romeo", "Rome"), Vec::<usize>::new());
        assert_eq!(super::find_words("Rome, Rome", "Rome"), vec![0, 6]);
    }

    /// The batched, one-read activations are each cloze's own, whatever the
    /// batches: held to a forward pass per cloze.
    #[test]
    fn activations_are_each_clozes_own() {
        use crate::engine::Neuron;
        use crate::models::{Batch, Hooks};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/models/tiny-bert");
        let model = crate::load_model(dir, tch::Device::Cpu).unwrap();
        let clozes: Vec<_> = [
            "[MASK] is the capital of France.",
            "The capital city of the French Republic is [MASK].",
            "Paris is in [MASK].",
            "In [MASK] the river runs through the capital of the country.",
        ]
        .iter()
        .map(|p| crate::cloze::cloze(&model, p).unwrap())
        .collect();
        let n = |layer, index| Neuron { layer, index };
        let (a, b) = (vec![n(0, 1), n(2, 5), n(1, 7)], vec![n(2, 0)]);
        // Each cloze its own pair of sets: the first and last swap them.
        let sets: Vec<[&[Neuron]; 2]> = (0..clozes.len())
            .map(|i| {
                if i == 0 || i == clozes.len() - 1 {
                    [&b[..], &a[..]]
                } else {
                    [&a[..], &b[..]]
                }
            })
            .collect();
        for budget in [1, 40, 4096] {
            let got = super::activations_in(&model, &clozes, &sets, budget).unwrap();
            for (row, c) in clozes.iter().enumerate() {
                let batch =
                    Batch::new(std::slice::from_ref(&c.ids), &[c.blank], tch::Device::Cpu).unwrap();
                let acts =
                    tch::no_grad(|| model.net.forward(&batch, &Hooks::capture()).activations);
                for (set, got) in sets[row].iter().zip(got[row]) {
                    let want = set
                        .iter()
                        .map(|n| acts[n.layer].double_value(&[0, n.index as i64]))
                        .sum::<f64>()
                        / set.len() as f64;
                    let got = got.unwrap();
                    assert!(
                        (got - want).abs() < 1e-5,
                        "budget {budget}, cloze {row}: {got} vs {want}"
                    );
                }
            }
        }
        // An empty set has no mean; the other set of the same cloze still does.
        let got = super::activations_in(&model, &clozes[..1], &[[&[], &a[..]]], 4096).unwrap();
        assert!(got[0][0].is_none() && got[0][1].is_some(), "{got:?}");
    }
}
