//! The runtimes against `transformers`: logits, top-5 and FFN activations at the
//! blank, and token ids, for every architecture and weight format.

use crate::common::*;
use kn::cloze::cloze;
use kn::models::{Batch, Hooks};

/// Largest |ours - golden| / (1 + |golden|) over a vector.
pub(crate) fn max_rel_err(ours: &[f32], golden: &serde_json::Value) -> f64 {
    let g: Vec<f64> = golden
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), g.len(), "length differs from golden");
    ours.iter()
        .zip(&g)
        .map(|(&o, &g)| (o as f64 - g).abs() / (1.0 + g.abs()))
        .fold(0.0, f64::max)
}

pub(crate) fn check_model(model_spec: &str, golden_dir: &str) {
    let model = kn::load_model(model_spec, cpu()).unwrap_or_else(|e| panic!("{model_spec}: {e}"));
    let g = golden(golden_dir);
    let mut worst = (0.0f64, 0.0f64);
    for p in g["prompts"].as_array().unwrap() {
        let prompt = p["prompt"].as_str().unwrap();
        let c = cloze(&model, prompt).unwrap();
        let ids: Vec<u32> = p["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(c.ids, ids, "{model_spec}: token ids of {prompt:?}");
        assert_eq!(
            c.blank as u64,
            p["blank"].as_u64().unwrap(),
            "{model_spec}: blank of {prompt:?}"
        );
        let batch = Batch::new(std::slice::from_ref(&c.ids), &[c.blank], cpu()).unwrap();
        let out = tch::no_grad(|| model.net.forward(&batch, &Hooks::capture()));
        let logits: Vec<f32> = Vec::try_from(out.logits.get(0)).unwrap();
        let e = max_rel_err(&logits, &p["logits"]);
        assert!(
            e < 1e-4,
            "{model_spec}: logits of {prompt:?} differ by {e:e}"
        );
        worst.0 = worst.0.max(e);
        let top5: Vec<i64> = Vec::try_from(out.logits.get(0).topk(5, 0, true, true).1).unwrap();
        let g5: Vec<i64> = p["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(top5, g5, "{model_spec}: top-5 of {prompt:?}");
        let acts = p["activations"].as_array().unwrap();
        assert_eq!(out.activations.len(), acts.len());
        for (l, (ours, gold)) in out.activations.iter().zip(acts).enumerate() {
            let ours: Vec<f32> = Vec::try_from(ours.get(0)).unwrap();
            let e = max_rel_err(&ours, gold);
            assert!(
                e < 1e-4,
                "{model_spec}: layer {l} activations of {prompt:?} differ by {e:e}"
            );
            worst.1 = worst.1.max(e);
        }
    }
    println!(
        "{model_spec}: worst relative error: logits {:.2e}, activations {:.2e}",
        worst.0, worst.1
    );
}

pub(crate) fn check_tokenizer(model_spec: &str, cases: &serde_json::Value) {
    let model = kn::load_model(model_spec, cpu()).unwrap();
    assert_token_parity(&model, model_spec, cases);
}

#[test]
fn bert_matches_transformers() {
    check_model(&fixture("tiny-bert"), "tiny-bert");
}

#[test]
fn bert_from_vocab_txt_matches_transformers() {
    check_model(&fixture("tiny-bert-vocab-only"), "tiny-bert-vocab-only");
    check_tokenizer(
        &fixture("tiny-bert-vocab-only"),
        &golden("tiny-bert")["tokenizer_parity"],
    );
}

#[test]
fn gpt2_matches_transformers() {
    check_model(&fixture("tiny-gpt2"), "tiny-gpt2");
}

#[test]
fn llama_safetensors_matches_transformers() {
    check_model(&fixture("tiny-llama"), "tiny-llama");
}

#[test]
fn llama_gguf_matches_transformers_for_every_format() {
    for q in ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"] {
        check_model(
            &fixture(&format!("tiny-llama-{q}.gguf")),
            &format!("tiny-llama-{q}"),
        );
    }
}

#[test]
fn tokenizers_match_transformers() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        check_tokenizer(&fixture(dir), &golden(dir)["tokenizer_parity"]);
    }
    // The tokenizer built from GGUF metadata, against transformers' own
    // conversion of the same file.
    check_tokenizer(
        &fixture("tiny-llama-Q4_1.gguf"),
        &golden("tiny-llama-Q4_1")["tokenizer_parity"],
    );
}
