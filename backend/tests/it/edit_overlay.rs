//! Edits measured on their own rows (`edited::answers_under`, which the
//! experiment report's updates and erasures use) give the numbers of writing
//! each edit into the weights and running the prompts (`edit::Applied` and
//! `readout::answers`): on the BERT, GPT-2 and Llama fixtures, prompts of
//! different lengths, one-token and multi-token answers, edits that start at
//! the first, a middle and the last layer (updates and erasures), each edit on
//! its own list of prompts, and enough of them for several traces and passes.

use crate::common::*;
use kn::engine::edit::{erase, update_fact, Applied, EraseWith, UpdateOptions};
use kn::engine::edit_overlay::{answers_under, answers_under_with, Budgets, Job};
use kn::engine::readout::{answers, Answer};
use kn::engine::{Neuron, Query};
use kn::models::Hooks;
use kn_shared::EditSet;
use rand::{Rng, SeedableRng};

/// Seeded edits: updates of 1 to 6 neurons in random layers and erasures, with
/// one update at the first layer only and one erasure at the last.
fn edits(model: &kn::Model, n: usize) -> Vec<EditSet> {
    let cfg = model.config().clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let vocab = model.tokenizer.vocab_size() as u32;
    let update = |ns: &[Neuron], rng: &mut rand_chacha::ChaCha8Rng| {
        let (old, new) = (rng.random_range(0..vocab), rng.random_range(0..vocab));
        let opts = UpdateOptions {
            k: ns.len(),
            ..UpdateOptions::default()
        };
        update_fact(model, ns, old, new, &opts, String::new()).unwrap()
    };
    let mut out = vec![
        update(&[Neuron { layer: 0, index: 1 }], &mut rng),
        erase(
            model,
            &[Neuron {
                layer: cfg.n_layers - 1,
                index: 2,
            }],
            EraseWith::Zero,
            String::new(),
        )
        .unwrap(),
    ];
    while out.len() < n {
        let ns = random_neurons(&mut rng, &cfg, 6);
        let e = if rng.random_bool(0.5) {
            update(&ns, &mut rng)
        } else {
            erase(model, &ns, EraseWith::Zero, String::new()).unwrap()
        };
        out.push(e);
    }
    out
}

fn close(dir: &str, what: &str, got: &Answer, want: &Answer) {
    assert!(
        (got.p - want.p).abs() <= 1e-4 * want.p.abs() + 1e-7,
        "{dir} {what}: P {} on own rows vs {} with the edit applied",
        got.p,
        want.p
    );
    assert_eq!(
        (got.top1, got.greedy),
        (want.top1, want.greedy),
        "{dir} {what}: top-1"
    );
}

/// Every job's answers against applying its edit; the unedited answers against
/// the plain model; the weights untouched.
fn compare(model: &kn::Model, dir: &str, qs: &[Query], jobs: &[Job], budgets: Budgets) {
    let slots = |l: usize| model.net.value_slots(l).copy();
    let weights: Vec<tch::Tensor> = (0..model.config().n_layers).map(slots).collect();
    let got = answers_under_with(model, qs, jobs, budgets).unwrap();
    for (l, w) in weights.iter().enumerate() {
        assert!(w.equal(&slots(l)), "{dir}: layer {l}'s weights changed");
    }
    let plain = answers(model, qs, &Hooks::default()).unwrap();
    for (i, (g, w)) in got.before.iter().zip(&plain).enumerate() {
        close(dir, &format!("prompt {i} unedited"), g, w);
    }
    let mut moved = 0;
    for (k, job) in jobs.iter().enumerate() {
        let mine: Vec<Query> = job.prompts.iter().map(|&i| qs[i].clone()).collect();
        let want = {
            let _applied = Applied::new(model, std::slice::from_ref(job.edit)).unwrap();
            answers(model, &mine, &Hooks::default()).unwrap()
        };
        assert_eq!(got.after[k].len(), mine.len());
        for (j, (g, w)) in got.after[k].iter().zip(&want).enumerate() {
            close(dir, &format!("edit {k}, its prompt {j}"), g, w);
            let before = plain[job.prompts[j]].p;
            moved += usize::from((w.p - before).abs() > 1e-3 * before);
        }
    }
    // The comparison means something only if the edits move the answers.
    let rows: usize = jobs.iter().map(|j| j.prompts.len()).sum();
    assert!(moved * 2 > rows, "{dir}: only {moved} of {rows} rows moved");
}

pub(crate) fn check(dir: &str, n_edits: usize, copies: usize, budgets: Budgets) {
    let model = kn::load_model(&fixture(dir), cpu()).unwrap();
    let mut qs = golden_queries(&model, dir);
    assert!(qs.iter().any(Query::is_chain) && qs.iter().any(|q| !q.is_chain()));
    let lens: Vec<usize> = qs.iter().map(|q| q.cloze.ids.len()).collect();
    assert!(
        lens.iter().min() < lens.iter().max(),
        "{dir}: mixed lengths"
    );
    qs = qs.iter().cycle().take(qs.len() * copies).cloned().collect();
    let edits = edits(&model, n_edits);
    // Each edit on its own seeded subset of the prompts (one of them on
    // every prompt, one on a single one, a prompt named twice in one list).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let jobs: Vec<Job> = edits
        .iter()
        .enumerate()
        .map(|(k, edit)| {
            let prompts = match k {
                0 => (0..qs.len()).collect(),
                1 => vec![qs.len() - 1],
                2 => vec![3, 0, 3],
                _ => (0..qs.len()).filter(|_| rng.random_bool(0.6)).collect(),
            };
            Job { edit, prompts }
        })
        .collect();
    compare(&model, dir, &qs, &jobs, budgets);
}

#[test]
fn bert_edits_on_their_own_rows_match_applying_them() {
    check("tiny-bert", 12, 1, Budgets::default());
}

#[test]
fn gpt2_edits_on_their_own_rows_match_applying_them() {
    check("tiny-gpt2", 12, 1, Budgets::default());
}

#[test]
fn llama_edits_on_their_own_rows_match_applying_them() {
    check("tiny-llama", 12, 1, Budgets::default());
}

/// More prompts than one trace keeps and more copies than one pass holds:
/// several of each (budgets cut small for the fixtures' short prompts), the
/// numbers unchanged; BERT's and Llama's too.
#[test]
fn many_prompts_and_edits_take_several_traces_and_passes() {
    let small = Budgets {
        trace: 40,
        pass: 64,
    };
    for dir in ["tiny-gpt2", "tiny-bert", "tiny-llama"] {
        check(dir, 16, 3, small);
    }
}

#[test]
fn an_edit_that_does_not_fit_is_refused() {
    let model = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let qs = golden_queries(&model, "tiny-llama");
    let n = Neuron { layer: 1, index: 3 };
    let good = erase(&model, &[n], EraseWith::Zero, String::new()).unwrap();
    let err = |edit: &EditSet, prompts: Vec<usize>| {
        answers_under(&model, &qs, &[Job { edit, prompts }])
            .unwrap_err()
            .to_string()
    };
    let mut stale = good.clone();
    stale.slots[0].before[0] += 1.0;
    assert!(
        err(&stale, vec![0]).contains("changed"),
        "{}",
        err(&stale, vec![0])
    );
    let mut other = good.clone();
    other.model = "another model".into();
    assert!(err(&other, vec![0]).contains("not for the loaded model"));
    assert!(err(&good, vec![qs.len()]).contains("there are"));
    assert!(answers_under(&model, &[], &[]).is_err());
}
