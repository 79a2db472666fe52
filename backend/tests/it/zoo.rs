//! The architectures beyond BERT, GPT-2 and Llama (`ZOO` in
//! `scripts/make_fixtures.py`), each held to `transformers` on a tiny checkpoint
//! in which its feature bites: the logits, top-5 and activations at the blank,
//! the tokenizer, integrated gradients in every mode, the methods lab's
//! scores, a multi-token chain, the
//! batched interventions, the edit overlay, and an edit's apply and undo.
//! Then a config key that changes the computation and is not implemented: an
//! error that names it, never a silently different number.

use crate::common::*;
use crate::{attribution, chains, edit, edit_overlay, golden, interventions, methods_lab};
use kn::engine::edit_overlay::Budgets;
use std::path::Path;

/// Every check the first three architectures pass, on one zoo fixture.
fn holds(dir: &str) {
    golden::check_model(&fixture(dir), dir);
    golden::check_tokenizer(&fixture(dir), &golden(dir)["tokenizer_parity"]);
    attribution::check(dir);
    methods_lab::check_all(dir);
    chains::check(dir);
    interventions::check(dir, 40);
    edit_overlay::check(dir, 12, 1, Budgets::default());
    edit::undo_is_exact(dir);
}

/// Checkpoints distributed in bf16 are held in bf16 (half the bytes of f32)
/// and computed in f32: exactly what transformers gives loading them in f32,
/// so their goldens hold at the same tolerance and their ids are the
/// checkpoint's own.
#[test]
fn bf16_checkpoints_are_held_in_bf16_and_match_transformers() {
    for dir in ["tiny-gemma2-bf16", "tiny-pythia-bf16"] {
        let m = kn::load_model(&fixture(dir), cpu()).unwrap();
        assert_eq!(m.held.storage, tch::Kind::BFloat16, "{dir}");
        assert_eq!(m.dtype, tch::Kind::Float, "{dir}");
        assert!(
            !m.held.rounded && !m.fingerprint.contains('@'),
            "{dir}: {}",
            m.fingerprint
        );
        let file = std::fs::metadata(fixture(dir) + "/model.safetensors")
            .unwrap()
            .len();
        // The file less its header; norms and biases held in f32 add a little.
        assert!(
            m.held.bytes <= file * 11 / 10 && m.held.bytes * 10 >= file * 9,
            "{dir}: {} bytes held for a file of {file}",
            m.held.bytes
        );
        holds(dir);
    }
}

/// RoBERTa: positions after the padding index, one token type, the lm_head's
/// transform; byte-level BPE with a `<mask>` that takes the space before it,
/// answers read with their leading space.
#[test]
fn roberta_matches_transformers() {
    let m = kn::load_model(&fixture("tiny-roberta"), cpu()).unwrap();
    assert_eq!(m.config().arch, kn::models::Arch::Roberta);
    // 66 position embeddings, the first two before any token (padding_idx 1).
    assert_eq!(m.config().max_positions, 64);
    let q = kn::engine::Query::new(&m, "The capital of France is [MASK].", "Paris").unwrap();
    assert_eq!(m.tokenizer.token_text(q.target), " Paris");
    holds("tiny-roberta");
}

/// XLM-RoBERTa: the same encoder with a SentencePiece Unigram tokenizer.
#[test]
fn xlm_roberta_matches_transformers() {
    holds("tiny-xlmr");
}

/// A sliding window of 3 on every layer, shorter than every prompt; linear
/// rope scaling.
#[test]
fn mistral_matches_transformers() {
    holds("tiny-mistral");
}

/// `use_sliding_window` with layer 0 full and layers 1–2 sliding (window 4);
/// q/k/v biases.
#[test]
fn qwen2_with_sliding_windows_matches_transformers() {
    holds("tiny-qwen2-sliding");
}

/// Per-head q/k RMSNorm; a head_dim that is not hidden / heads.
#[test]
fn qwen3_matches_transformers() {
    holds("tiny-qwen3");
}

/// Llama 3.x rope scaling over an original context of 8 positions.
#[test]
fn llama3_rope_scaling_matches_transformers() {
    holds("tiny-llama3");
}

/// Phi-3: fused projections, partial rotary, a sliding window of 4.
#[test]
fn phi3_matches_transformers() {
    holds("tiny-phi3");
}

/// OLMo 2: norms after attention and FFN, q/k norms over the projection
/// (an edit's change enters before the FFN's output norm).
#[test]
fn olmo2_matches_transformers() {
    holds("tiny-olmo2");
}

/// GPT-2 with `scale_attn_by_inverse_layer_idx` and `reorder_and_upcast_attn`
/// (Stanford CRFM's models).
#[test]
fn gpt2_scaled_by_layer_matches_transformers() {
    holds("tiny-gpt2-crfm");
}

/// Gemma: `(1 + w)` RMSNorm, `√d` embeddings, gelu-tanh.
#[test]
fn gemma_matches_transformers() {
    holds("tiny-gemma");
}

/// Gemma 2: sandwich norms, soft-capped scores and logits, alternating
/// sliding windows, `query_pre_attn_scalar`.
#[test]
fn gemma2_matches_transformers() {
    holds("tiny-gemma2");
}

/// Gemma 3 (text): per-head q/k norms, local and global rotary bases.
#[test]
fn gemma3_matches_transformers() {
    holds("tiny-gemma3");
}

/// Pythia's layout: per-head fused QKV, a quarter of each head rotary
/// (`rotary_pct`, `rotary_emb_base`), parallel residual, `embed_out`.
#[test]
fn pythia_matches_transformers() {
    holds("tiny-pythia");
}

/// GPT-NeoX with the serial residual, half of each head rotary
/// (transformers 5's `rope_parameters`), `lm_head`.
#[test]
fn gpt_neox_serial_matches_transformers() {
    holds("tiny-neox-serial");
}

/// GPT-J: attention and FFN from one LayerNorm, interleaved partial rotary,
/// an LM head with a bias.
#[test]
fn gptj_matches_transformers() {
    holds("tiny-gptj");
}

/// A copy of fixture `dir` in a temporary folder, its `config.json` changed by
/// `edit`.
fn changed_copy(dir: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
    tmp
}

/// The error of loading fixture `dir` with its config changed by `edit`.
fn load_error(dir: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let tmp = changed_copy(dir, edit);
    match kn::load_model(&tmp.path().display().to_string(), cpu()) {
        Ok(_) => panic!("{dir}: the changed config loaded"),
        Err(e) => e.to_string(),
    }
}

fn set(key: &str, value: serde_json::Value) -> impl FnOnce(&mut serde_json::Value) + '_ {
    move |cfg| {
        cfg[key] = value;
    }
}

#[test]
fn keys_that_change_the_computation_are_refused_by_name() {
    use serde_json::json;
    // (fixture, key, value, what the error must name)
    let cases = [
        (
            "tiny-llama3",
            "rope_parameters",
            json!({"rope_type": "yarn", "factor": 4.0}),
            "`yarn`",
        ),
        (
            "tiny-llama3",
            "rope_scaling",
            json!({"rope_type": "dynamic", "factor": 2.0}),
            "`dynamic`",
        ),
        ("tiny-llama", "hidden_act", json!("gelu"), "hidden_act"),
        (
            "tiny-llama",
            "partial_rotary_factor",
            json!(0.5),
            "partial_rotary_factor",
        ),
        (
            "tiny-qwen2-sliding",
            "layer_types",
            json!(["full_attention", "chunked_attention", "full_attention"]),
            "chunked_attention",
        ),
        (
            "tiny-gpt2",
            "add_cross_attention",
            json!(true),
            "add_cross_attention",
        ),
        (
            "tiny-gpt2",
            "activation_function",
            json!("relu"),
            "activation_function",
        ),
        ("tiny-gpt2", "n_embd", json!("wide"), "n_embd"),
        // Qwen3's weights under Qwen2's name: its q/k norms would go unread.
        ("tiny-qwen3", "model_type", json!("qwen2"), "q_norm"),
        (
            "tiny-gemma2",
            "hidden_activation",
            json!("relu"),
            "hidden_activation",
        ),
        (
            "tiny-gemma",
            "partial_rotary_factor",
            json!(0.5),
            "partial_rotary_factor",
        ),
        (
            "tiny-gemma3",
            "use_bidirectional_attention",
            json!(true),
            "use_bidirectional_attention",
        ),
        (
            "tiny-gemma3",
            "layer_types",
            json!(["sliding_attention", "chunked_attention", "full_attention"]),
            "chunked_attention",
        ),
        // The image-text model's config names its text model apart.
        ("tiny-gemma3", "model_type", json!("gemma3"), "gemma3_text"),
        ("tiny-pythia", "hidden_act", json!("relu"), "hidden_act"),
        (
            "tiny-pythia",
            "rope_scaling",
            json!({"rope_type": "dynamic", "factor": 2.0}),
            "`dynamic`",
        ),
        ("tiny-gptj", "rotary_dim", json!(null), "rotary_dim"),
        (
            "tiny-roberta",
            "position_embedding_type",
            json!("relative_key"),
            "position_embedding_type",
        ),
        (
            "tiny-gptj",
            "activation_function",
            json!("relu"),
            "activation_function",
        ),
    ];
    for (dir, key, value, named) in cases {
        let e = load_error(dir, set(key, value));
        assert!(
            e.contains(named),
            "{dir}: the error does not name {named}: {e}"
        );
        assert!(!e.contains("config.json: config.json"), "{e}");
    }
    // A missing key is named once, the file once.
    let e = load_error("tiny-llama", |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    assert_eq!(e, "config.json: missing field `hidden_size`");
}

/// Keys that change the computation of a checkpoint must reach the runtime:
/// loading the fixture with the key removed gives other numbers than the
/// golden (so the golden tests above would catch a runtime that ignored it).
#[test]
fn each_fixture_feature_changes_the_numbers() {
    for (dir, key) in [
        ("tiny-mistral", "sliding_window"),
        ("tiny-phi3", "sliding_window"),
        ("tiny-qwen2-sliding", "use_sliding_window"),
        ("tiny-llama3", "rope_parameters"),
        ("tiny-gpt2-crfm", "scale_attn_by_inverse_layer_idx"),
        // Removed, Gemma 2's defaults apply: caps of 50 and 30, a scale of
        // 256^-½, a window of 4096.
        ("tiny-gemma2", "attn_logit_softcapping"),
        ("tiny-gemma2", "final_logit_softcapping"),
        ("tiny-gemma2", "query_pre_attn_scalar"),
        ("tiny-gemma2", "sliding_window"),
        ("tiny-gemma3", "rope_parameters"),
        ("tiny-gemma3", "query_pre_attn_scalar"),
        ("tiny-neox-serial", "use_parallel_residual"),
        ("tiny-neox-serial", "rope_parameters"),
    ] {
        let tmp = changed_copy(dir, |cfg| {
            cfg.as_object_mut().unwrap().remove(key);
        });
        let changed = differs_from_golden(tmp.path(), dir);
        assert!(
            changed,
            "{dir}: without `{key}` the logits still match the golden"
        );
    }
}

/// Gemma 3 configs on the hub spell the rotary keys the older way
/// (`rope_theta`, `rope_local_base_freq`, `rope_scaling` for the global
/// layers); they mean the same as transformers 5's per-layer-type
/// `rope_parameters`.
#[test]
fn gemma3_older_rope_keys_mean_the_same() {
    let tmp = changed_copy("tiny-gemma3", |cfg| {
        let p = cfg
            .as_object_mut()
            .unwrap()
            .remove("rope_parameters")
            .unwrap();
        cfg["rope_theta"] = p["full_attention"]["rope_theta"].clone();
        cfg["rope_local_base_freq"] = p["sliding_attention"]["rope_theta"].clone();
        cfg["rope_scaling"] = serde_json::json!({
            "rope_type": p["full_attention"]["rope_type"],
            "factor": p["full_attention"]["factor"],
        });
    });
    assert!(!differs_from_golden(tmp.path(), "tiny-gemma3"));
}

/// Whether some prompt's logits at the blank differ from `dir`'s golden by
/// more than the goldens' tolerance.
fn differs_from_golden(model_dir: &Path, dir: &str) -> bool {
    use kn::cloze::cloze;
    use kn::models::{Batch, Hooks};
    let model = kn::load_model(&model_dir.display().to_string(), cpu()).unwrap();
    golden(dir)["prompts"].as_array().unwrap().iter().any(|p| {
        let c = cloze(&model, p["prompt"].as_str().unwrap()).unwrap();
        let batch = Batch::new(std::slice::from_ref(&c.ids), &[c.blank], cpu()).unwrap();
        let out = tch::no_grad(|| model.net.forward(&batch, &Hooks::capture()));
        let ours: Vec<f32> = Vec::try_from(out.logits.get(0)).unwrap();
        golden::max_rel_err(&ours, &p["logits"]) > 1e-4
    })
}
