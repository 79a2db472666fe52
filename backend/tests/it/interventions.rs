//! Many interventions in one go (`intervene::scaled_changes`, which the
//! experiment report and the methods comparison use) give the numbers of one
//! intervention at a time (`intervene::scaled_change`, one forward pass per
//! set): on the BERT, GPT-2 and Llama fixtures, for prompts of different
//! lengths in one batch, one-token and multi-token answers (both answer
//! positions), sets that start at the first, a middle or the last layer, and
//! enough sets to need several passes.

use crate::common::*;
use kn::engine::intervene::{scaled_change, scaled_changes};
use kn::engine::{AnswerPositions, Neuron, Query};
use rand::{Rng, SeedableRng};

/// Seeded sets of 1 to 6 neurons in random layers, factors among 0, 2, 0.5
/// and 3; with an empty set, one at the first layer only and one at the last.
fn sets(cfg: &kn::models::ModelConfig, n: usize) -> Vec<(Vec<Neuron>, f64)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let factors = [0.0, 2.0, 0.5, 3.0];
    let mut out = vec![
        (Vec::new(), 0.0),
        (vec![Neuron { layer: 0, index: 1 }], 0.0),
        (
            vec![Neuron {
                layer: cfg.n_layers - 1,
                index: 2,
            }],
            2.0,
        ),
    ];
    while out.len() < n {
        let ns = random_neurons(&mut rng, cfg, 6);
        out.push((ns, factors[rng.random_range(0..factors.len())]));
    }
    out
}

pub(crate) fn check(dir: &str, n_sets: usize) {
    let model = kn::load_model(&fixture(dir), cpu()).unwrap();
    let qs = golden_queries(&model, dir);
    assert!(qs.iter().any(Query::is_chain) && qs.iter().any(|q| !q.is_chain()));
    let lens: Vec<usize> = qs.iter().map(|q| q.cloze.ids.len()).collect();
    assert!(
        lens.iter().min() < lens.iter().max(),
        "{dir}: prompts of different lengths"
    );
    let sets = sets(model.config(), n_sets);
    compare(&model, dir, &qs, &sets);
    // A chain's P(answer) is small beside a one-token answer's, so its own
    // list is needed to see its steps' numbers in the mean.
    for positions in [AnswerPositions::All, AnswerPositions::First] {
        let chains: Vec<Query> = qs
            .iter()
            .filter(|q| q.is_chain() && q.positions == positions)
            .cloned()
            .collect();
        assert!(!chains.is_empty());
        compare(
            &model,
            &format!("{dir} chains ({positions:?})"),
            &chains,
            &sets,
        );
    }
}

fn compare(model: &kn::Model, dir: &str, qs: &[Query], sets: &[(Vec<Neuron>, f64)]) {
    let refs: Vec<(&[Neuron], f64)> = sets.iter().map(|(n, f)| (n.as_slice(), *f)).collect();
    let got = scaled_changes(model, qs, &refs).unwrap();
    assert_eq!(got.len(), sets.len());
    assert_eq!(got[0], None, "{dir}: an empty set has no effect to measure");
    let before = kn::engine::readout::probabilities(model, qs, &kn::models::Hooks::default())
        .unwrap()
        .0;
    let mut moved = 0;
    for (i, (ns, f)) in sets.iter().enumerate().skip(1) {
        let want = scaled_change(model, qs, &before, ns, *f).unwrap();
        let got = got[i].unwrap_or_else(|| panic!("{dir}: set {i} has neurons"));
        assert!(
            (got - want).abs() <= 1e-4 * want.abs() + 1e-5,
            "{dir}: set {i} ({ns:?} ×{f}): {got} batched vs {want} one at a time"
        );
        moved += usize::from(want.abs() > 1e-3);
    }
    // The comparison means something only if the sets move the answers.
    assert!(
        moved * 2 > sets.len(),
        "{dir}: only {moved} sets move P(answer)"
    );
}

#[test]
fn bert_batched_interventions_match_one_at_a_time() {
    check("tiny-bert", 40);
}

#[test]
fn gpt2_batched_interventions_match_one_at_a_time() {
    check("tiny-gpt2", 40);
}

#[test]
fn llama_batched_interventions_match_one_at_a_time() {
    check("tiny-llama", 40);
}

/// More copies than one pass holds (8,192 rows × tokens): several passes, each
/// a staircase of its own.
#[test]
fn many_sets_take_several_passes() {
    check("tiny-llama", 400);
}

/// One one-token prompt (the trace's rows are a broadcast of one prompt).
#[test]
fn one_prompt_alone() {
    let model = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let qs: Vec<Query> = golden_queries(&model, "tiny-gpt2")
        .into_iter()
        .filter(|q| !q.is_chain())
        .take(1)
        .collect();
    compare(
        &model,
        "tiny-gpt2 one prompt",
        &qs,
        &sets(model.config(), 12),
    );
}

/// More prompts than one unscaled pass keeps (2,048 rows × tokens): the
/// prompts are traced a group at a time and the means taken over all.
#[test]
fn long_lists_take_several_traces() {
    for dir in ["tiny-llama", "tiny-bert"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let one = golden_queries(&model, dir);
        let qs: Vec<Query> = (0..60).flat_map(|_| one.iter().cloned()).collect();
        let tokens: usize = qs.iter().map(|q| q.answer.len() * q.longest_step()).sum();
        assert!(tokens > 2 * 2048, "{dir}: {tokens} rows × tokens");
        compare(
            &model,
            &format!("{dir} long"),
            &qs,
            &sets(model.config(), 20),
        );
    }
}

/// Each intervention on its own prompts (`scaled_changes_on`, which the report
/// uses to measure every fact's sets on its own prompts and on other facts'
/// in one run): the numbers of that intervention alone on that list, with the
/// lists spread over several traces, a prompt named twice, one prompt alone,
/// and no prompt or no neuron giving no effect; on every architecture.
#[test]
fn each_intervention_on_its_own_prompts() {
    use kn::engine::intervene::{scaled_changes_on, Scaling};
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let one = golden_queries(&model, dir);
        // Enough copies of the prompts to need several traces of 2,048 rows × tokens.
        let qs: Vec<Query> = (0..60).flat_map(|_| one.iter().cloned()).collect();
        let tokens: usize = qs.iter().map(|q| q.answer.len() * q.longest_step()).sum();
        assert!(tokens > 2 * 2048, "{dir}: {tokens} rows × tokens");
        let n = qs.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let sets = sets(model.config(), 14);
        let lists: Vec<Vec<usize>> = (0..sets.len())
            .map(|i| match i {
                1 => vec![n - 1],          // one prompt, in the last trace
                2 => vec![3, 3, n / 2, 0], // one named twice, out of order
                3 => Vec::new(),           // no prompt
                4 => (0..n).collect(),     // all
                _ => (0..n).filter(|_| rng.random_bool(0.15)).collect(),
            })
            .collect();
        let jobs: Vec<Scaling> = sets
            .iter()
            .zip(&lists)
            .map(|((ns, f), prompts)| Scaling {
                neurons: ns,
                factor: *f,
                prompts: prompts.clone(),
            })
            .collect();
        let got = scaled_changes_on(&model, &qs, &jobs).unwrap();
        assert_eq!(got[0], None, "{dir}: an empty set");
        assert_eq!(got[3], None, "{dir}: no prompt");
        let mut moved = 0;
        for (i, ((ns, f), list)) in sets.iter().zip(&lists).enumerate().skip(1) {
            if list.is_empty() {
                continue;
            }
            let mine: Vec<Query> = list.iter().map(|&q| qs[q].clone()).collect();
            let before =
                kn::engine::readout::probabilities(&model, &mine, &kn::models::Hooks::default())
                    .unwrap()
                    .0;
            let want = scaled_change(&model, &mine, &before, ns, *f).unwrap();
            let got = got[i].unwrap_or_else(|| panic!("{dir}: set {i} has neurons and prompts"));
            assert!(
                (got - want).abs() <= 1e-4 * want.abs() + 1e-5,
                "{dir}: set {i} ({ns:?} ×{f}) on {} prompts: {got} vs {want} alone",
                list.len()
            );
            moved += usize::from(want.abs() > 1e-3);
        }
        assert!(moved * 2 > sets.len(), "{dir}: only {moved} move P(answer)");
        // A prompt out of range is refused.
        let bad = [Scaling {
            neurons: &sets[1].0,
            factor: 0.0,
            prompts: vec![n],
        }];
        assert!(scaled_changes_on(&model, &qs, &bad).is_err());
    }
}
