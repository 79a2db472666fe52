//! Integrated gradients against the independent Python reference
//! (`scripts/reference_ig.py`, `transformers` hooks and autograd), for every
//! architecture, both Riemann sums and every execution mode; and SPEC's
//! completeness law.

use crate::common::*;
use kn::engine::attribution::{attribute, Mode, Options, Riemann};
use kn::engine::Query;

pub(crate) fn check(dir: &str) {
    let model = kn::load_model(&fixture(dir), cpu()).unwrap();
    let g = golden(dir);
    let mut worst = 0.0f64;
    for case in g["attribution"].as_array().unwrap() {
        let q = query(&model, case);
        for riemann in [Riemann::Right, Riemann::Left] {
            for mode in [Mode::Naive, Mode::Resume, Mode::Fast] {
                let opts = Options {
                    steps: case["steps"].as_u64().unwrap() as usize,
                    riemann,
                    mode,
                    max_batch: 8,
                    ..Options::default()
                };
                let a = attribute(&model, &q, &opts).unwrap();
                let p = case["p_target"].as_f64().unwrap();
                assert!(
                    (a.p_target - p).abs() < 1e-6,
                    "{dir}: P(target) {} vs {p}",
                    a.p_target
                );
                for (l, layer) in case["layers"].as_array().unwrap().iter().enumerate() {
                    let key = if riemann == Riemann::Right {
                        "right"
                    } else {
                        "left"
                    };
                    let want: Vec<f64> = layer[key]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    let got: Vec<f32> = Vec::try_from(a.scores.get(l as i64)).unwrap();
                    for (i, (&o, &w)) in got.iter().zip(&want).enumerate() {
                        let err = (o as f64 - w).abs();
                        assert!(
                            err <= 1e-7f64.max(1e-4 * w.abs()),
                            "{dir} {riemann:?} {mode:?}: layer {l} neuron {i}: {o} vs reference {w}"
                        );
                        if w.abs() > 1e-6 {
                            worst = worst.max(err / w.abs());
                        }
                    }
                    let p0 = layer["p_zero"].as_f64().unwrap();
                    assert!((a.p_zero[l] - p0).abs() < 1e-6, "{dir}: P(0) at layer {l}");
                    let acts: Vec<f32> = Vec::try_from(a.activations.get(l as i64)).unwrap();
                    let ref_acts = case["activations"][l].as_array().unwrap();
                    assert!(acts
                        .iter()
                        .zip(ref_acts)
                        .all(|(&o, w)| (o as f64 - w.as_f64().unwrap()).abs() < 1e-5));
                }
            }
        }
    }
    println!("{dir}: worst relative error of scores above 1e-6: {worst:.2e}");
}

#[test]
fn bert_scores_match_reference() {
    check("tiny-bert");
}

#[test]
fn gpt2_scores_match_reference() {
    check("tiny-gpt2");
}

#[test]
fn llama_scores_match_reference() {
    check("tiny-llama");
}

/// SPEC: Σ_i Attr(w_i) ≈ P(w̄) − P(0), up to the Riemann error, which shrinks
/// as m grows. At m = 200 the residual is within 1% of ΔP — or of P(w̄) itself
/// where ΔP is a small difference of large terms (the fixtures' last layers) —
/// and it is at least 5× smaller than at m = 20, as a 1/m error must be.
#[test]
fn completeness_law_holds_at_200_steps() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        for case in golden(dir)["attribution"].as_array().unwrap() {
            let q = query(&model, case);
            let coarse = attribute(
                &model,
                &q,
                &Options {
                    steps: 20,
                    ..Options::default()
                },
            )
            .unwrap();
            let a = attribute(
                &model,
                &q,
                &Options {
                    steps: 200,
                    ..Options::default()
                },
            )
            .unwrap();
            for (l, r) in a.residual.iter().enumerate() {
                let delta = a.p_target - a.p_zero[l];
                let r20 = coarse.residual[l];
                println!("{dir} layer {l}: P = {:.3e}, ΔP = {delta:.3e}, residual m=20 {r20:.3e}, m=200 {r:.3e}", a.p_target);
                let scale = delta.abs().max(a.p_target);
                assert!(
                    r.abs() <= 0.01 * scale,
                    "{dir} layer {l}: residual {r:e} vs ΔP {delta:e}, P {:e}",
                    a.p_target
                );
                if r20.abs() > 1e-6 {
                    assert!(
                        r.abs() * 5.0 <= r20.abs(),
                        "{dir} layer {l}: residual does not shrink with m ({r20:e} → {r:e})"
                    );
                }
            }
        }
    }
}

/// Long prompts get fewer scaled copies per pass (`max_row_tokens`), so a
/// pass's memory is bounded; the numbers do not depend on the split.
#[test]
fn splitting_passes_by_length_keeps_the_numbers() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let case = &golden(dir)["attribution"][0];
        let q = query(&model, case);
        let whole = attribute(
            &model,
            &q,
            &Options {
                steps: 16,
                ..Options::default()
            },
        )
        .unwrap();
        for max_row_tokens in [1, 3 * q.cloze.ids.len(), 40 * q.cloze.ids.len()] {
            for mode in [Mode::Resume, Mode::Fast] {
                let split = attribute(
                    &model,
                    &q,
                    &Options {
                        steps: 16,
                        mode,
                        max_row_tokens,
                        ..Options::default()
                    },
                )
                .unwrap();
                let (a, b): (Vec<f32>, Vec<f32>) = (
                    Vec::try_from(whole.scores.flatten(0, -1)).unwrap(),
                    Vec::try_from(split.scores.flatten(0, -1)).unwrap(),
                );
                let max = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * max,
                        "{dir} {mode:?} max_row_tokens {max_row_tokens}: {x} vs {y}"
                    );
                }
                assert_eq!(whole.p_zero.len(), split.p_zero.len());
            }
        }
    }
}

/// Prompts of different lengths and answers attributed together (right-padded
/// into one batch, each row with its own blank and answer) give the numbers of
/// one prompt at a time, in every mode and for every way of cutting the passes.
#[test]
fn batches_of_prompts_keep_the_numbers() {
    use kn::engine::attribution::{attribute_many, Plan};
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let mut qs: Vec<Query> = golden(dir)["attribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| query(&model, c))
            .collect();
        // Longer and shorter paraphrases with other answers.
        let mask = if dir == "tiny-bert" { " [MASK]." } else { "" };
        for (p, t) in [
            ("The capital city of the country France is", "Paris"),
            ("Paris is in", "France"),
        ] {
            let prompt = format!("{p}{mask}");
            let prompt = if mask.is_empty() {
                format!("{prompt} [MASK]")
            } else {
                prompt
            };
            if let Ok(q) = Query::new(&model, &prompt, t) {
                qs.push(q);
            }
        }
        let lens: std::collections::BTreeSet<usize> =
            qs.iter().map(|q| q.cloze.ids.len()).collect();
        assert!(
            lens.len() >= 2,
            "{dir}: the prompts must differ in length: {lens:?}"
        );
        let layers = 0..model.config().n_layers;
        for mode in [Mode::Naive, Mode::Resume, Mode::Fast] {
            let base = Options {
                steps: 12,
                mode,
                ..Options::default()
            };
            let alone: Vec<_> = qs
                .iter()
                .map(|q| attribute(&model, q, &base).unwrap())
                .collect();
            let longest = qs.iter().map(|q| q.cloze.ids.len()).max().unwrap();
            // All prompts in each pass; two per pass; chunks of steps of one prompt.
            for max_batch in [4096, 2 * 13 * model.config().n_layers, 5] {
                let opts = Options { max_batch, ..base };
                let plan = Plan::new(&opts, layers.len(), qs.len(), longest);
                assert!(
                    plan.prompts >= 2 || max_batch < 13,
                    "{dir}: {plan:?} attributes one prompt at a time"
                );
                let together =
                    attribute_many(&model, &qs, &opts, layers.clone(), &mut |_| true).unwrap();
                for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
                    let (x, y): (Vec<f32>, Vec<f32>) = (
                        Vec::try_from(a.scores.flatten(0, -1)).unwrap(),
                        Vec::try_from(b.scores.flatten(0, -1)).unwrap(),
                    );
                    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (u, v) in x.iter().zip(&y) {
                        assert!(
                            (u - v).abs() <= 1e-5 * max,
                            "{dir} {mode:?} batch {max_batch} prompt {i}: {u} vs {v}"
                        );
                    }
                    assert!(
                        (a.p_target - b.p_target).abs() < 1e-6,
                        "{dir} {mode:?} prompt {i}: P"
                    );
                    for (p, q) in a.p_zero.iter().zip(&b.p_zero) {
                        assert!((p - q).abs() < 1e-6, "{dir} {mode:?} prompt {i}: P(0)");
                    }
                    // Within 1e-5 of the largest activation (a multi-token
                    // answer's are the mean of its steps', whose rounding
                    // depends on the batch they share).
                    let max = f64::try_from(a.activations.abs().max()).unwrap();
                    let diff =
                        f64::try_from((&a.activations - &b.activations).abs().max()).unwrap();
                    assert!(
                        diff <= 1e-5 * max,
                        "{dir} {mode:?} prompt {i}: activations differ by {diff} (largest {max})"
                    );
                }
            }
        }
    }
}

/// The resuming modes take the ends of the path from the traced pass (P and
/// every layer's gradient at α = 1 from one backward, P at α = 0 without
/// gradients), where naive mode runs a copy for each: the numbers are the
/// same, for both sums, down to one step (no scaled copy at all for the right
/// sum), for a range of layers as for all of them, and from the masked
/// prompt's activations as from zero.
#[test]
fn the_ends_of_the_path_come_from_the_trace() {
    use kn::engine::attribution::{attribute_layers, attribute_many_from, Baseline};
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let q = query(&model, &golden(dir)["attribution"][0]);
        let n = model.config().n_layers;
        for steps in [1, 2, 7] {
            for riemann in [Riemann::Right, Riemann::Left] {
                for baseline in [Baseline::Zero, Baseline::Masked] {
                    let naive = Options {
                        steps,
                        riemann,
                        mode: Mode::Naive,
                        ..Options::default()
                    };
                    let reference = attribute_many_from(
                        &model,
                        std::slice::from_ref(&q),
                        &naive,
                        0..n,
                        &mut |_| true,
                        baseline,
                    )
                    .unwrap()
                    .remove(0);
                    let want: Vec<f32> = Vec::try_from(reference.scores.flatten(0, -1)).unwrap();
                    let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    assert!(max > 0.0, "{dir}: all scores are zero");
                    for mode in [Mode::Resume, Mode::Fast] {
                        let opts = Options { mode, ..naive };
                        let got = attribute_many_from(
                            &model,
                            std::slice::from_ref(&q),
                            &opts,
                            0..n,
                            &mut |_| true,
                            baseline,
                        )
                        .unwrap()
                        .remove(0);
                        let label = format!("{dir} m={steps} {riemann:?} {baseline:?} {mode:?}");
                        let got: Vec<f32> = Vec::try_from(got.scores.flatten(0, -1)).unwrap();
                        for (i, (x, y)) in want.iter().zip(&got).enumerate() {
                            assert!(
                                (x - y).abs() <= 1e-5 * max,
                                "{label}: score {i}: naive {x}, {y}"
                            );
                        }
                        if baseline == Baseline::Masked {
                            continue;
                        }
                        // Layers 1..n alone: the rows of the whole.
                        let part = attribute_layers(&model, &q, &opts, 1..n, &mut || true).unwrap();
                        let whole = attribute(&model, &q, &opts).unwrap();
                        let (a, b): (Vec<f32>, Vec<f32>) = (
                            Vec::try_from(whole.scores.narrow(0, 1, n as i64 - 1).flatten(0, -1))
                                .unwrap(),
                            Vec::try_from(part.scores.flatten(0, -1)).unwrap(),
                        );
                        for (x, y) in a.iter().zip(&b) {
                            assert!(
                                (x - y).abs() <= 1e-5 * max,
                                "{label}: layers 1..: {x} vs {y}"
                            );
                        }
                        for (l, (p, r)) in part.p_zero.iter().zip(&whole.p_zero[1..]).enumerate() {
                            assert!((p - r).abs() < 1e-6, "{label}: P(0) of layer {}", l + 1);
                        }
                        for (x, y) in reference.residual.iter().zip(&whole.residual) {
                            assert!((x - y).abs() < 1e-5, "{label}: residual {x} vs {y}");
                        }
                    }
                }
            }
        }
    }
}
