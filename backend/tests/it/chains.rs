//! Answers of several tokens (docs/method.md, "Answers of several tokens")
//! against the independent Python reference (`scripts/reference_chain.py`):
//! the steps of the chain, P(answer), and integrated gradients of P(answer)
//! with every step's blank scaled along one path, or the first step's only,
//! for the BERT, GPT-2 and Llama fixtures in every mode.

use crate::common::*;
use kn::engine::attribution::{attribute, attribute_many, Mode, Options, Riemann};
use kn::engine::intervene::scale_hooks;
use kn::engine::readout::{answers, probabilities};
use kn::engine::{AnswerPositions, Neuron, Query};
use kn::models::Hooks;
use serde_json::Value;

fn positions(case: &Value) -> AnswerPositions {
    case["positions"].as_str().unwrap().parse().unwrap()
}

fn chain_query(model: &kn::Model, case: &Value) -> Query {
    Query::new(
        model,
        case["prompt"].as_str().unwrap(),
        case["target"].as_str().unwrap(),
    )
    .unwrap()
    .with_positions(positions(case))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `got` is `want` up to float32 rounding, relative to the layer's largest value.
fn close(got: &[f32], want: &[f64], what: &str) {
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 1e-4 * w.abs() + 1e-5 * scale + 1e-30,
            "{what}: neuron {i}: {g} vs reference {w} (layer's largest {scale})"
        );
    }
}

pub(crate) fn check(dir: &str) {
    let model = kn::load_model(&fixture(dir), cpu()).unwrap();
    let cases = golden(dir)["chain"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 4, "{dir}: two prompts × two answer positions");
    for case in &cases {
        let q = chain_query(&model, case);
        let label = format!("{dir} {} ({:?})", case["prompt"], positions(case));
        // The chain's steps are the reference's: tokens, blank, piece.
        let steps = q.steps();
        let want = case["chain"].as_array().unwrap();
        assert!(steps.len() >= 2, "{label}: a multi-token answer");
        assert_eq!(steps.len(), want.len(), "{label}");
        for (s, w) in steps.iter().zip(want) {
            assert_eq!(s.cloze.ids, ids(&w["input_ids"]), "{label}: step tokens");
            assert_eq!(
                s.cloze.blank as u64,
                w["blank"].as_u64().unwrap(),
                "{label}"
            );
            assert_eq!(s.target as u64, w["piece"].as_u64().unwrap(), "{label}");
        }
        // P(answer) is the product of the pieces'.
        let p_answer = case["p_target"].as_f64().unwrap();
        let (p, _) = probabilities(&model, std::slice::from_ref(&q), &Hooks::default()).unwrap();
        assert!(
            (p[0] / p_answer - 1.0).abs() < 1e-4,
            "{label}: {} vs {p_answer}",
            p[0]
        );
        // For a causal model, the chain reads what one pass over the prompt
        // and the whole answer reads.
        if let Some(one) = case["p_one_pass"].as_f64() {
            assert!(
                (p[0] / one - 1.0).abs() < 1e-4,
                "{label}: {} vs one pass {one}",
                p[0]
            );
        }
        for mode in [Mode::Naive, Mode::Resume, Mode::Fast] {
            let opts = Options {
                steps: case["steps"].as_u64().unwrap() as usize,
                riemann: Riemann::Right,
                mode,
                max_batch: 64,
                ..Options::default()
            };
            let a = attribute(&model, &q, &opts).unwrap();
            assert!(
                (a.p_target / p_answer - 1.0).abs() < 1e-4,
                "{label} {mode:?}: P(answer) {} vs {p_answer}",
                a.p_target
            );
            for (l, layer) in case["layers"].as_array().unwrap().iter().enumerate() {
                let what = format!("{label} {mode:?} layer {l}");
                let got: Vec<f32> = Vec::try_from(a.scores.get(l as i64)).unwrap();
                close(&got, &f64s(&layer["right"]), &what);
                let acts: Vec<f32> = Vec::try_from(a.activations.get(l as i64)).unwrap();
                close(
                    &acts,
                    &f64s(&layer["activations"]),
                    &format!("{what} activations"),
                );
                let (f0, f1) = (
                    layer["p_zero"].as_f64().unwrap(),
                    layer["p_full"].as_f64().unwrap(),
                );
                assert!((a.p_zero[l] / f0 - 1.0).abs() < 1e-3, "{what}: F(0)");
                // Completeness: the scores add up to F(1) − F(0), up to the
                // Riemann sum's error, which the residual reports.
                let sum: f64 = got.iter().map(|&x| x as f64).sum();
                assert!(
                    ((sum - (f1 - f0)) - a.residual[l]).abs() <= 1e-3 * (f1 - f0).abs() + 1e-12,
                    "{what}: residual {} vs {}",
                    a.residual[l],
                    sum - (f1 - f0)
                );
            }
        }
    }
}

#[test]
fn bert_chains_match_reference() {
    check("tiny-bert");
}

#[test]
fn gpt2_chains_match_reference() {
    check("tiny-gpt2");
}

#[test]
fn llama_chains_match_reference() {
    check("tiny-llama");
}

/// Chains batched with one-token prompts, and cut into passes every way the
/// budgets allow (a chain whose steps exceed a pass gets passes of its own),
/// give the numbers of each query alone.
#[test]
fn chains_batch_with_one_token_prompts() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let g = golden(dir);
        let mut qs: Vec<Query> = g["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| chain_query(&model, c))
            .collect();
        qs.insert(1, query(&model, &g["attribution"][0]));
        qs.push(query(&model, &g["attribution"][1]));
        let layers = 0..model.config().n_layers;
        for mode in [Mode::Resume, Mode::Fast] {
            let base = Options {
                steps: 6,
                mode,
                ..Options::default()
            };
            let alone: Vec<_> = qs
                .iter()
                .map(|q| attribute(&model, q, &base).unwrap())
                .collect();
            // Everything in one pass; two rows' layers per pass; fewer rows
            // per pass than a chain has steps (steps cut into chunks: many
            // small passes, so in one mode only).
            let budgets: &[usize] = if mode == Mode::Fast {
                &[4096, 2 * 7, 2]
            } else {
                &[4096, 2 * 7]
            };
            for &max_batch in budgets {
                let opts = Options { max_batch, ..base };
                let together =
                    attribute_many(&model, &qs, &opts, layers.clone(), &mut |_| true).unwrap();
                assert_eq!(together.len(), qs.len());
                for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
                    let what = format!("{dir} {mode:?} max_batch {max_batch} query {i}");
                    assert!((a.p_target / b.p_target - 1.0).abs() < 1e-4, "{what}");
                    for l in 0..model.config().n_layers as i64 {
                        let x: Vec<f32> = Vec::try_from(a.scores.get(l)).unwrap();
                        let y: Vec<f64> = Vec::<f32>::try_from(b.scores.get(l))
                            .unwrap()
                            .into_iter()
                            .map(f64::from)
                            .collect();
                        close(&x, &y, &format!("{what} layer {l}"));
                    }
                }
            }
        }
    }
}

/// An intervention on a chain scales the steps its answer positions name: at
/// `first`, the later pieces are read as they are.
#[test]
fn interventions_act_where_the_positions_say() {
    let model = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let case = &golden("tiny-llama")["chain"][0];
    let q = chain_query(&model, case);
    let ns = [Neuron { layer: 1, index: 3 }, Neuron { layer: 2, index: 7 }];
    let hooks = scale_hooks(&model, &ns, 0.0).unwrap();
    let steps = q.steps();
    let (scaled, _) = probabilities(&model, &steps, &hooks).unwrap();
    let (plain, _) = probabilities(&model, &steps, &Hooks::default()).unwrap();
    for positions in [AnswerPositions::All, AnswerPositions::First] {
        let q = q.clone().with_positions(positions);
        let (p, _) = probabilities(&model, std::slice::from_ref(&q), &hooks).unwrap();
        let want: f64 = (0..steps.len())
            .map(|j| {
                if j == 0 || positions == AnswerPositions::All {
                    scaled[j]
                } else {
                    plain[j]
                }
            })
            .product();
        assert!(
            (p[0] / want - 1.0).abs() < 1e-5,
            "{positions:?}: {} vs {want}",
            p[0]
        );
    }
    assert!(
        scaled.iter().zip(&plain).any(|(a, b)| a != b),
        "the neurons matter"
    );
}

/// The model's greedy answer is the whole answer only when every step's top-1
/// is its piece; a prediction reports every piece and P(answer).
#[test]
fn predictions_read_every_piece() {
    let model = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let case = &golden("tiny-gpt2")["chain"][0];
    let q = chain_query(&model, case);
    let a = answers(&model, std::slice::from_ref(&q), &Hooks::default()).unwrap();
    let (_, top) = probabilities(&model, &q.steps(), &Hooks::default()).unwrap();
    let greedy = q.steps().iter().zip(&top).all(|(s, &t)| s.target == t);
    assert_eq!(a[0].greedy, greedy);
    let r = kn::predict::predict(
        &model,
        &kn_shared::PredictRequest {
            model: None,
            prompt: case["prompt"].as_str().unwrap().into(),
            target: Some(case["target"].as_str().unwrap().into()),
            top_k: 5,
            edits: vec![],
        },
    )
    .unwrap();
    let t = r.target.unwrap();
    let want = f64s(&case["p_pieces"]);
    assert_eq!(t.pieces.len(), want.len());
    for (p, w) in t.pieces.iter().zip(&want) {
        assert!((p.prob / w - 1.0).abs() < 1e-4, "{} vs {w}", p.prob);
    }
    assert!((t.prob / case["p_target"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    assert_eq!(t.id, q.target);
    // An answer longer than the limit is refused with the limit's name.
    let long = "Zyxwvutsrqponmlkjihgfedcba Zyxwvutsrqponmlkjihgfedcba";
    let e = Query::new(&model, "The capital of France is [MASK].", long).unwrap_err();
    assert!(e.to_string().contains("answer_pieces"), "{e}");
}

/// Every method combines a chain's steps as its quantity does: activations
/// are the mean over the acted steps, log-probability increases their sum
/// (log P(answer) is the sum of the pieces'); `first` reads the first step
/// only. The masked baseline masks the prompt, never the given pieces.
#[test]
fn methods_combine_the_steps() {
    use kn::engine::methods_lab::{scores, Method};
    for dir in ["tiny-bert", "tiny-gpt2"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let case = &golden(dir)["chain"][0];
        let q = chain_query(&model, case).with_positions(AnswerPositions::All);
        let steps = q.steps();
        let opts = Options::default();
        let one = |m: Method, qs: &[Query]| scores(&model, qs, m, &opts, 0).unwrap();
        let per_step = |m: Method| -> Vec<tch::Tensor> {
            steps
                .iter()
                .map(|s| one(m, std::slice::from_ref(s)).remove(0))
                .collect()
        };
        let same = |a: &tch::Tensor, b: &tch::Tensor, what: &str| {
            let d = f64::try_from((a - b).abs().max()).unwrap();
            let m = f64::try_from(b.abs().max()).unwrap();
            // Float rounding of the batched pass: log-probabilities near −7
            // round at about 1e-6.
            assert!(
                d <= 1e-5 * m + 1e-5,
                "{dir} {what}: differs by {d} (largest {m})"
            );
        };
        let acts = per_step(Method::Activation);
        let mean = tch::Tensor::stack(&acts, 0).mean_dim(0, false, tch::Kind::Float);
        same(
            &one(Method::Activation, std::slice::from_ref(&q))[0],
            &mean,
            "activation",
        );
        let lp = per_step(Method::LogprobIncrease);
        let sum = tch::Tensor::stack(&lp, 0).sum_dim_intlist(0, false, tch::Kind::Float);
        same(
            &one(Method::LogprobIncrease, std::slice::from_ref(&q))[0],
            &sum,
            "logprob-increase",
        );
        let first = q.clone().with_positions(AnswerPositions::First);
        same(
            &one(Method::LogprobIncrease, std::slice::from_ref(&first))[0],
            &lp[0],
            "logprob-increase, first",
        );
        same(
            &one(Method::Activation, std::slice::from_ref(&first))[0],
            &acts[0],
            "activation, first",
        );
        // The masked prompt keeps the pieces a step is given.
        for (j, s) in steps.iter().enumerate() {
            let m = s.masked(&model).unwrap();
            let given: Vec<u32> = if model.config().arch.is_masked() {
                m.cloze.ids[q.cloze.blank..q.cloze.blank + j].to_vec()
            } else {
                m.cloze.ids[m.cloze.ids.len() - j..].to_vec()
            };
            assert_eq!(given, q.answer[..j], "{dir} step {j}: {:?}", m.cloze.ids);
            assert_ne!(
                m.cloze.ids, s.cloze.ids,
                "{dir} step {j}: the prompt is masked"
            );
        }
    }
}

/// grad-x-act's one backward pass gives, on chains, what the IG engine with
/// one right Riemann step gives (the gradients weighted by the other pieces'
/// probabilities, the acted steps' scores added), for both answer positions,
/// with one-token prompts in the same list, on every fixture architecture.
#[test]
fn grad_x_act_on_chains_is_ig_with_one_step() {
    use kn::engine::methods_lab::{scores, Method};
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let model = kn::load_model(&fixture(dir), cpu()).unwrap();
        let g = golden(dir);
        let mut qs: Vec<Query> = g["attribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| query(&model, c))
            .collect();
        qs.extend(
            g["chain"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| chain_query(&model, c)),
        );
        assert!(qs
            .iter()
            .any(|q| q.is_chain() && q.positions == AnswerPositions::First));
        assert!(qs
            .iter()
            .any(|q| q.is_chain() && q.positions == AnswerPositions::All));
        let one_step = Options {
            steps: 1,
            riemann: Riemann::Right,
            ..Options::default()
        };
        let ig = attribute_many(
            &model,
            &qs,
            &one_step,
            0..model.config().n_layers,
            &mut |_| true,
        )
        .unwrap();
        let gxa = scores(&model, &qs, Method::GradXAct, &Options::default(), 0).unwrap();
        for (i, (a, b)) in ig.iter().zip(&gxa).enumerate() {
            let d = f64::try_from((&a.scores - b).abs().max()).unwrap();
            let m = f64::try_from(a.scores.abs().max()).unwrap();
            assert!(m > 0.0, "{dir} query {i}: scores");
            assert!(
                d <= 1e-4 * m,
                "{dir} query {i} ({:?}): differs by {d} (largest {m})",
                qs[i].positions
            );
        }
    }
}
