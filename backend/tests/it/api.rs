//! The HTTP API, route by route, including every kind of bad request: the right
//! 4xx status, our error shape with a message, and a server that still answers.
//! (Edits: `api_edits.rs`; budgets and access: `api_limits.rs`.)

use crate::common::api::*;
use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use kn::server::{router, AppState};
use kn_shared::{Health, ModelSummary, PredictResponse};
use std::sync::Arc;

fn app() -> axum::Router {
    app_of(state(&["tiny-bert", "tiny-gpt2"], None))
}

fn app_with_store(dir: &std::path::Path) -> axum::Router {
    app_of(state(&["tiny-llama"], Some(dir)))
}

fn empty_state(dir: &std::path::Path) -> AppState {
    AppState::new(vec![], Arc::new(kn::store::Store::open(dir).unwrap()))
}

#[tokio::test]
async fn health_and_models() {
    let app = app();
    let (s, b) = call(&app, "GET", "/api/health", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let h: Health = serde_json::from_slice(&b).unwrap();
    assert_eq!((h.status.as_str(), h.models), ("ok", 2));
    let (s, b) = call(&app, "GET", "/api/models", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let m: Vec<ModelSummary> = serde_json::from_slice(&b).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].arch.name(), m[0].masked, m[0].n_layers, m[0].d_ff),
        ("bert", true, 3, 64)
    );
    assert_eq!((m[1].arch.name(), m[1].masked), ("gpt2", false));
    assert_eq!(
        (m[0].storage.as_str(), m[0].compute.as_str()),
        ("f32", "f32")
    );
}

#[tokio::test]
async fn predict_matches_the_library() {
    let app = app();
    let body =
        serde_json::json!({"prompt": "The capital of France is [MASK].", "top_k": 4}).to_string();
    let (s, b) = call(&app, "POST", "/api/predict", body).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let r: PredictResponse = serde_json::from_slice(&b).unwrap();
    assert_eq!(r.top_k.len(), 4);
    assert_eq!(r.tokens[r.blank_index], "[MASK]");
    // The same request through the library gives the same numbers.
    let m = kn::load_model(&fixture("tiny-bert"), cpu()).unwrap();
    let lib = kn::predict::predict(
        &m,
        &serde_json::from_str(
            &serde_json::json!({"prompt": "The capital of France is [MASK].", "top_k": 4})
                .to_string(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(r.top_k, lib.top_k);

    let second = fixture("tiny-gpt2");
    let body = serde_json::json!({"model": second, "prompt": "The capital of France is [MASK].", "top_k": 2}).to_string();
    let (s, b) = call(&app, "POST", "/api/predict", body).await;
    assert_eq!(s, StatusCode::OK);
    let r: PredictResponse = serde_json::from_slice(&b).unwrap();
    assert_eq!(r.blank_index, r.tokens.len() - 1);
}

#[tokio::test]
async fn every_bad_request_gets_a_clear_error() {
    let app = app();
    let p = "/api/predict";
    use StatusCode as S;
    expect_error(
        &app,
        "POST",
        p,
        "{not json",
        S::BAD_REQUEST,
        "malformed_json",
        "request body",
    )
    .await;
    expect_error(&app, "POST", p, "", S::BAD_REQUEST, "malformed_json", "EOF").await;
    expect_error(
        &app,
        "POST",
        p,
        "{}",
        S::BAD_REQUEST,
        "invalid_field",
        "missing field `prompt`",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": 42}"#,
        S::BAD_REQUEST,
        "invalid_field",
        "invalid type",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "a [MASK]", "top_k": "ten"}"#,
        S::BAD_REQUEST,
        "invalid_field",
        "invalid type",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "a [MASK]", "colour": 1}"#,
        S::BAD_REQUEST,
        "invalid_field",
        "unknown field `colour`",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "a [MASK]", "model": "nope"}"#,
        S::NOT_FOUND,
        "model_not_found",
        "`nope` is not loaded",
    )
    .await;
}

/// A prompt or target the model cannot take: 422 with what was wrong.
#[tokio::test]
async fn bad_prompts_get_a_clear_error() {
    let app = app();
    let p = "/api/predict";
    use StatusCode as S;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "no blank here"}"#,
        S::UNPROCESSABLE_ENTITY,
        "bad_prompt",
        "no [MASK]",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "a [MASK]", "top_k": 0}"#,
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "top_k",
    )
    .await;
    expect_error(
        &app,
        "POST",
        p,
        r#"{"prompt": "a [MASK]", "target": "Zyxwvutsrq Zyxwvutsrq Zyxwvutsrq"}"#,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "answer_pieces",
    )
    .await;
    let huge = format!(
        r#"{{"prompt": "{}"}}"#,
        "x".repeat(kn::server::budget::MAX_BODY_BYTES + 10)
    );
    expect_error(
        &app,
        "POST",
        p,
        &huge,
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "limit",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/nope",
        "",
        S::NOT_FOUND,
        "not_found",
        "no such API route",
    )
    .await;
    let (s, _) = call(&app, "GET", p, Body::empty()).await;
    assert_eq!(s, S::METHOD_NOT_ALLOWED);
    // Still serving.
    let (s, _) = call(&app, "POST", p, r#"{"prompt": "Paris is in [MASK]."}"#).await;
    assert_eq!(s, S::OK);
}

#[tokio::test]
async fn analyze_stores_results_under_a_permalink_that_survives_a_restart() {
    use kn_shared::AnalyzeResponse;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_store(dir.path());
    let body = serde_json::json!({
        "target": "Paris",
        "prompts": ["The capital of France is [MASK].", "France's capital is [MASK].", "The capital city of France is [MASK]."],
        "steps": 4
    })
    .to_string();
    let (s, b) = call(&app, "POST", "/api/analyze", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let first: AnalyzeResponse = serde_json::from_slice(&b).unwrap();
    assert!(!first.cached);
    assert_eq!(first.id.len(), 20);
    let r = &first.result;
    assert_eq!((r.mean_scores.len(), r.mean_scores[0].len()), (3, 128));
    assert_eq!(r.prompts.len(), 3);
    // The same request again comes from the store, identical.
    let (_, b) = call(&app, "POST", "/api/analyze", body).await;
    let again: AnalyzeResponse = serde_json::from_slice(&b).unwrap();
    assert!(again.cached);
    assert_eq!(
        (again.id.as_str(), &again.result),
        (first.id.as_str(), &first.result)
    );
    drop(app);

    // A new server on the same data directory answers the permalink.
    let app = app_with_store(dir.path());
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", first.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let stored: AnalyzeResponse = serde_json::from_slice(&b).unwrap();
    assert_eq!(stored.result, first.result);

    use StatusCode as S;
    expect_error(
        &app,
        "GET",
        "/api/results/nothex",
        "",
        S::BAD_REQUEST,
        "bad_id",
        "not a result id",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/results/0123456789abcdef0123",
        "",
        S::NOT_FOUND,
        "result_not_found",
        "no stored result",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        r#"{"target": "Paris", "prompts": []}"#,
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "number of prompts must be at least 1",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        r#"{"target": "Paris", "prompts": ["no blank"]}"#,
        S::UNPROCESSABLE_ENTITY,
        "bad_prompt",
        "prompt 1: ",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        r#"{"target": "Paris", "prompts": ["a [MASK]"], "steps": 0}"#,
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "steps",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        r#"{"target": "Paris", "prompts": ["a [MASK]"], "riemann": "middle"}"#,
        S::BAD_REQUEST,
        "invalid_field",
        "riemann is `middle`; use `right` or `left`",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        r#"{"prompts": ["a [MASK]"]}"#,
        S::BAD_REQUEST,
        "invalid_field",
        "missing field `target`",
    )
    .await;
}

#[tokio::test]
async fn dataset_routes() {
    use kn_shared::{RelationPage, RelationSummary};
    let app = app();
    let (s, b) = call(&app, "GET", "/api/dataset", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let rels: Vec<RelationSummary> = serde_json::from_slice(&b).unwrap();
    assert_eq!(rels.len(), 34);
    assert_eq!(rels.iter().map(|r| r.facts).sum::<usize>(), 27_738);
    let (s, b) = call(
        &app,
        "GET",
        "/api/dataset/P36?q=france&limit=5",
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let page: RelationPage = serde_json::from_slice(&b).unwrap();
    assert!(
        page.facts
            .iter()
            .any(|f| f.subject == "France" && f.object == "Paris"),
        "{:?}",
        page.facts
    );
    assert_eq!(page.templates.len(), page.relation.templates);
    // Best matches first: a whole field, then the start of a word, then
    // anywhere; the dataset's order among equals ("Kingdom of Italy" comes
    // first in the file).
    let (_, b) = call(&app, "GET", "/api/dataset/P36?q=Italy", Body::empty()).await;
    let page: RelationPage = serde_json::from_slice(&b).unwrap();
    let first = &page.facts[0];
    assert_eq!(
        (first.subject.as_str(), first.object.as_str()),
        ("Italy", "Rome")
    );
    assert!(page.facts.iter().any(|f| f.subject == "Kingdom of Italy"));
    use StatusCode as S;
    expect_error(
        &app,
        "GET",
        "/api/dataset/P9999",
        "",
        S::NOT_FOUND,
        "unknown_relation",
        "unknown relation `P9999`",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/dataset/P36?limit=many",
        "",
        S::BAD_REQUEST,
        "invalid_query",
        "limit",
    )
    .await;
    let no_data = router(
        Arc::new(empty_state(tempfile::tempdir().unwrap().path())),
        None,
    );
    expect_error(
        &no_data,
        "GET",
        "/api/dataset",
        "",
        S::NOT_FOUND,
        "no_dataset",
        "--data DIR",
    )
    .await;
}

#[tokio::test]
async fn jobs_stream_progress_store_results_and_cancel() {
    use kn_shared::{AnalyzeResponse, JobStatus};
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_store(dir.path());
    let prompts: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "The capital of France is [MASK]{}",
                if i % 2 == 0 { "." } else { "" }
            )
        })
        .collect();
    let body = serde_json::json!({"target": "Paris", "prompts": prompts, "steps": 3}).to_string();
    let (s, b) = call(&app, "POST", "/api/jobs/analyze", body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!((job.state.name(), job.total), ("queued", 4));
    let evs = events(&app, &job.id).await;
    let last = evs.last().unwrap();
    assert_eq!(last.state.name(), "done", "{evs:?}");
    assert_eq!(last.done, 4);
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", job.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r: AnalyzeResponse = serde_json::from_slice(&b).unwrap();
    assert_eq!(r.result.prompts.len(), 4);
    // Submitting the same request again: answered from the store at once.
    let (s, b) = call(&app, "POST", "/api/jobs/analyze", body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<JobStatus>(&b)
            .unwrap()
            .state
            .name(),
        "done"
    );

    // A long job, cancelled.
    let many: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "The capital of France{} is [MASK].",
                " really".repeat(i % 5)
            )
        })
        .collect();
    let body = serde_json::json!({"target": "Paris", "prompts": many, "steps": 200}).to_string();
    let (s, b) = call(&app, "POST", "/api/jobs/analyze", body).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/api/jobs/{}", job.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let evs = events(&app, &job.id).await;
    let last = evs.last().unwrap();
    assert_eq!(last.state.name(), "cancelled", "{evs:?}");
    assert!(last.done < 50);
    let (s, _) = call(
        &app,
        "GET",
        &format!("/api/results/{}", job.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a cancelled job stores nothing");
    use StatusCode as S;
    expect_error(
        &app,
        "GET",
        "/api/jobs/0123456789abcdef0123",
        "",
        S::NOT_FOUND,
        "job_not_found",
        "no job",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/jobs/0123456789abcdef0123/events",
        "",
        S::NOT_FOUND,
        "job_not_found",
        "no job",
    )
    .await;
}

#[tokio::test]
async fn openapi_document_lists_every_route_with_schemas() {
    let app = app();
    let (s, b) = call(&app, "GET", "/api/openapi.json", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/health",
        "/api/models",
        "/api/predict",
        "/api/analyze",
        "/api/jobs/analyze",
        "/api/jobs/{id}",
        "/api/jobs/{id}/events",
        "/api/results/{id}",
        "/api/dataset",
        "/api/dataset/{relation}",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "PredictRequest",
        "PredictResponse",
        "AnalyzeRequest",
        "AnalysisResult",
        "ApiError",
        "JobStatus",
        "FactNeurons",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert!(doc["components"]["schemas"]["PredictRequest"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "prompt"));
}

#[tokio::test]
async fn experiments_list_and_reports() {
    use kn::experiment::{db::RunDb, report, run, Settings, Shard};
    use StatusCode as S;
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let data = kn::pararel::ParaRel::load(&kn::pararel::ParaRel::default_dir()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let settings = Settings {
        model: "tiny-gpt2".into(),
        fingerprint: kn::engine::edit::fingerprint(&m),
        steps: 20,
        riemann: Default::default(),
        seed: 0,
        facts_per_relation: Some(2),
        relations: vec!["P36".into(), "P19".into()],
        known_facts_per_relation: 0,
        multi_token: None,
    };
    let opts = run::RunOptions {
        ig: Default::default(),
        progress: false,
        max_facts: None,
        batch_facts: 1,
    };
    for name in ["with-report", "no-report"] {
        run::run(
            &m,
            &data,
            &settings,
            Shard::ALL,
            &root.path().join(name),
            &opts,
        )
        .unwrap();
    }
    let db = RunDb::open_existing(&root.path().join("with-report/run.sqlite")).unwrap();
    let r = report::report(
        &m,
        &data,
        &db,
        "with-report",
        &Default::default(),
        &mut |_| {},
    )
    .unwrap();
    db.put_report(&r).unwrap();
    std::fs::create_dir(root.path().join("not-a-run")).unwrap();
    // A file that is not SQLite at all is left out of the list, not an error.
    std::fs::create_dir(root.path().join("broken")).unwrap();
    std::fs::write(root.path().join("broken/run.sqlite"), "not a database").unwrap();
    let mut st = empty_state(root.path());
    st.experiments = Some(root.path().to_path_buf());
    let app = router(Arc::new(st), None);
    let (s, body) = call(&app, "GET", "/api/experiments", "").await;
    assert_eq!(s, S::OK);
    let list: Vec<kn_shared::experiment::ExperimentSummary> =
        serde_json::from_slice(&body).unwrap();
    let names: Vec<(&str, bool, usize)> = list
        .iter()
        .map(|x| (x.name.as_str(), x.has_report, x.facts_done))
        .collect();
    assert_eq!(
        names,
        vec![("no-report", false, 4), ("with-report", true, 4)]
    );
    let (s, body) = call(&app, "GET", "/api/experiments/with-report", "").await;
    assert_eq!(s, S::OK);
    let got: kn_shared::experiment::ExperimentReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(got, r);
    expect_error(
        &app,
        "GET",
        "/api/experiments/no-report",
        "",
        S::NOT_FOUND,
        "no_report",
        "kn experiment report",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/experiments/nope",
        "",
        S::NOT_FOUND,
        "unknown_experiment",
        "nope",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/experiments/..",
        "",
        S::NOT_FOUND,
        "unknown_experiment",
        "",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/experiments/not-a-run",
        "",
        S::NOT_FOUND,
        "unknown_experiment",
        "",
    )
    .await;
    let none = router(Arc::new(empty_state(root.path())), None);
    expect_error(
        &none,
        "GET",
        "/api/experiments",
        "",
        S::NOT_FOUND,
        "no_experiments",
        "--experiments DIR",
    )
    .await;
}

/// An analysis of `prompts` (answer Paris, p = 0.5) and its first knowledge
/// neuron: what the neuron-card tests look at.
async fn analysed_neuron(
    app: &axum::Router,
    prompts: &[&str],
    steps: usize,
) -> (kn_shared::AnalyzeResponse, kn_shared::ScoredNeuron) {
    let body = serde_json::json!({"target": "Paris", "prompts": prompts, "steps": steps, "p": 0.5});
    let a: kn_shared::AnalyzeResponse = post_ok(app, "/api/analyze", &body).await;
    let n = a
        .result
        .neurons
        .knowledge
        .first()
        .expect("a knowledge neuron")
        .clone();
    (a, n)
}

#[tokio::test]
async fn a_neuron_card_agrees_with_the_analysis_and_the_library() {
    use kn_shared::NeuronCard;
    let app = app_with_store(tempfile::tempdir().unwrap().path());
    let prompts = [
        "The capital of France is [MASK].",
        "France's capital is [MASK].",
        "The capital city of France is [MASK].",
    ];
    let (a, n) = analysed_neuron(&app, &prompts, 4).await;
    let ask = serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index});
    let card: NeuronCard = post_ok(&app, "/api/neuron", &ask).await;
    assert!(card.knowledge);
    assert_eq!(card.prompts.len(), 3);
    assert_eq!(card.known, 3);
    assert!(
        card.passed as f64 > 0.5 * 3.0,
        "a refined neuron passed in more than p·n prompts"
    );
    let mean = card.prompts.iter().map(|p| p.score).sum::<f64>() / 3.0;
    assert!(
        (mean - n.score).abs() <= 1e-5 * n.score.abs().max(1e-9),
        "{mean} vs {}",
        n.score
    );
    // The library's full attribution of each prompt gives the same score.
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    for (p, on) in prompts.iter().zip(&card.prompts) {
        let q = kn::engine::Query::new(&m, p, "Paris").unwrap();
        let opts = kn::engine::attribution::Options {
            steps: 4,
            ..Default::default()
        };
        let full = kn::engine::attribution::attribute(&m, &q, &opts).unwrap();
        let want = full.scores.double_value(&[n.layer as i64, n.index as i64]);
        assert!(
            (on.score - want).abs() <= 1e-6 + 1e-5 * want.abs(),
            "{p}: {} vs {want}",
            on.score
        );
    }
    // Promoted tokens come strongest first, and mirror the suppressed ones.
    assert_eq!((card.promotes.len(), card.suppresses.len()), (10, 10));
    assert!(card.promotes.windows(2).all(|w| w[0].value >= w[1].value));
    assert!(card.suppresses.windows(2).all(|w| w[0].value <= w[1].value));
    assert!(card.promotes[0].value >= card.suppresses[0].value);
    // Read at the neuron's mean activation: its sign picks which end of the
    // slot's projection it raises.
    let mean = card.prompts.iter().map(|p| p.activation).sum::<f64>() / card.prompts.len() as f64;
    assert!((card.mean_activation - mean).abs() < 1e-12);
    let ids = |l: &[kn_shared::TokenScore]| l.iter().map(|t| t.id).collect::<Vec<_>>();
    let raised = if mean < 0.0 {
        &card.slot_suppresses
    } else {
        &card.slot_promotes
    };
    assert_eq!(ids(&card.promotes), ids(raised));
    for (c, s) in card.promotes.iter().zip(raised) {
        assert!((c.value - mean * s.value).abs() <= 1e-9 * c.value.abs().max(1.0));
    }
    let rank = card.answer_rank.unwrap();
    assert!(rank >= 1 && rank <= m.config().vocab_size);
    // Both signs on one neuron: what +a raises, -a lowers; the answer's rank
    // turns over (no ties in a random model's projection).
    let vocab = |a: f64| {
        kn::engine::neuron_card::vocabulary(&m, n.neuron(), 5, a, Some(card.prompts.len() as u32))
            .unwrap()
    };
    let (up, down) = (vocab(2.0), vocab(-2.0));
    assert_eq!(ids(&up.promotes), ids(&down.suppresses));
    assert_eq!(ids(&up.suppresses), ids(&down.promotes));
    assert_eq!(up.slot_promotes, down.slot_promotes);
    assert!((down.promotes[0].value + 2.0 * up.slot_suppresses[0].value).abs() < 1e-9);
    let v = m.config().vocab_size;
    assert_eq!(up.answer_rank.unwrap() + down.answer_rank.unwrap(), v + 1);
    use StatusCode as S;
    let far = serde_json::json!({"analysis": a.id, "layer": 99, "index": 0}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/neuron",
        &far,
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "out of range",
    )
    .await;
    let none =
        serde_json::json!({"analysis": "0123456789abcdef0123", "layer": 0, "index": 0}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/neuron",
        &none,
        S::NOT_FOUND,
        "result_not_found",
        "open the analysis first",
    )
    .await;
}

/// The data comes with the project: the dataset routes work from the
/// repository's own `data/` folder, with nothing beside the checkout.
#[tokio::test]
async fn the_dataset_routes_need_only_the_repositorys_data() {
    use kn_shared::{RelationPage, RelationSummary};
    let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    assert!(own.join("kn-official/SOURCE.md").is_file() && own.join("README.md").is_file());
    let mut st = empty_state(tempfile::tempdir().unwrap().path());
    st.dataset = Some(kn::pararel::ParaRel::load(&own).unwrap());
    let app = router(Arc::new(st), None);
    let (s, b) = call(&app, "GET", "/api/dataset", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let rels: Vec<RelationSummary> = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (rels.len(), rels.iter().map(|r| r.facts).sum::<usize>()),
        (34, 27_738)
    );
    let (s, b) = call(&app, "GET", "/api/dataset/P36?q=france", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let page: RelationPage = serde_json::from_slice(&b).unwrap();
    assert!(page.facts.iter().any(|f| f.object == "Paris"));
    // And the default is that folder when nothing else is said.
    if std::env::var("KN_DATA").is_err() {
        assert_eq!(
            kn::pararel::ParaRel::default_dir().canonicalize().unwrap(),
            own.canonicalize().unwrap()
        );
    }
}

/// The web client goes out compressed where the browser takes it, and with
/// `no-cache`: kept by the browser and revalidated (a 304 once it has it).
#[tokio::test]
async fn the_web_client_is_served_compressed_and_revalidated() {
    use tower::ServiceExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dist");
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::write(dir.join("index.html"), "<p>app</p>").unwrap();
    std::fs::write(dir.join("pkg/app.wasm"), vec![0u8; 4096]).unwrap();
    std::fs::write(dir.join("pkg/app.wasm.br"), b"brotli bytes").unwrap();
    std::fs::write(dir.join("pkg/app.wasm.gz"), b"gzip bytes").unwrap();
    let app = router(Arc::new(empty_state(root.path())), Some(dir));
    let get = |uri: &str, headers: &[(&str, String)]| {
        let mut req = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let body = |r: axum::response::Response| async {
        http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes()
    };
    let h = |r: &axum::response::Response, k: &str| {
        r.headers().get(k).map(|v| v.to_str().unwrap().to_string())
    };

    let br = get("/pkg/app.wasm", &[("accept-encoding", "gzip, br".into())])
        .await
        .unwrap();
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(h(&br, "content-encoding").as_deref(), Some("br"));
    assert_eq!(h(&br, "cache-control").as_deref(), Some("no-cache"));
    assert_eq!(h(&br, "content-type").as_deref(), Some("application/wasm"));
    let modified = h(&br, "last-modified").expect("a Last-Modified to revalidate with");
    assert_eq!(&body(br).await[..], b"brotli bytes");

    let gz = get("/pkg/app.wasm", &[("accept-encoding", "gzip".into())])
        .await
        .unwrap();
    assert_eq!(h(&gz, "content-encoding").as_deref(), Some("gzip"));
    let plain = get("/pkg/app.wasm", &[]).await.unwrap();
    assert_eq!(h(&plain, "content-encoding"), None);
    assert_eq!(body(plain).await.len(), 4096);

    let again = get("/pkg/app.wasm", &[("if-modified-since", modified)])
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Any other path is the app's page, also revalidated.
    let page = get("/r/some-result", &[]).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(h(&page, "cache-control").as_deref(), Some("no-cache"));
    assert_eq!(&body(page).await[..], b"<p>app</p>");
}

/// An analysis with control facts suppresses the knowledge neurons on them
/// too: each row is `intervene` on that fact's prompts (held to the library),
/// with a bootstrap interval around its change, and the set is "fact-specific"
/// only when the fact's interval is apart from every control's. A control
/// that is the fact itself is refused before any work.
#[tokio::test]
async fn an_analysis_measures_its_neurons_on_control_facts() {
    let app = app_of(state(&["tiny-llama"], None));
    let fact = [
        "The capital of France is [MASK].",
        "France's capital is [MASK].",
        "The capital city of France is [MASK].",
    ];
    let same = [
        "The capital of Germany is [MASK].",
        "Germany's capital is [MASK].",
        "The capital city of Germany is [MASK].",
    ];
    let other = [
        "Dante was born in [MASK].",
        "The birthplace of Dante is [MASK].",
    ];
    let body = serde_json::json!({
        "target": "Paris", "steps": 4, "t": 0.1, "p": 0.5, "prompts": fact,
        "controls": [
            {"kind": "same relation", "target": "Berlin", "prompts": same},
            {"kind": "other relation", "target": "Florence", "prompts": other},
        ],
    });
    let r: kn_shared::AnalyzeResponse = post_ok(&app, "/api/analyze", &body).await;
    let res = r.result;
    let s = res
        .specificity
        .as_ref()
        .expect("controls give a specificity");
    let names: Vec<&str> = s.rows.iter().map(|x| x.set.as_str()).collect();
    assert_eq!(names, ["this fact", "same relation", "other relation"]);
    let suppress = res.suppress.as_ref().unwrap();
    assert!((s.rows[0].change - suppress.knowledge.relative_change).abs() < 1e-12);

    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let kn_set: Vec<kn_shared::Neuron> = res.neurons.knowledge.iter().map(|n| n.neuron()).collect();
    for (row, (target, prompts)) in s.rows[1..]
        .iter()
        .zip([("Berlin", &same[..]), ("Florence", &other[..])])
    {
        let qs: Vec<_> = prompts
            .iter()
            .map(|p| kn::engine::Query::new(&m, p, target).unwrap())
            .collect();
        let e = kn::engine::intervene::intervene(&m, &qs, &kn_set, 0.0).unwrap();
        assert_eq!(row.target, target);
        assert!(
            (row.change - e.relative_change).abs() < 1e-9,
            "{} vs {}",
            row.change,
            e.relative_change
        );
        for (x, p) in row.per_prompt.iter().zip(&e.prompts) {
            assert!((x - (p.p_after - p.p_before) / p.p_before).abs() < 1e-9);
        }
    }
    assert_verdict_follows_intervals(s);

    // The fact as its own control is refused, before the attribution.
    let mut itself = body.clone();
    itself["controls"] =
        serde_json::json!([{"kind": "same relation", "target": "Paris", "prompts": [fact[1]]}]);
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        &itself.to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "is the fact itself",
    )
    .await;
}

/// An estimate is the analysis's plan without the run: the work units the
/// budget counts (a bad request gets the analysis's own error), and seconds
/// only once a job has been timed on this server, at that job's pace.
#[tokio::test]
async fn an_estimate_counts_the_work_and_times_it_after_a_job() {
    let app = app_of(state(&["tiny-llama"], None));
    let body = serde_json::json!({"target": "Paris", "steps": 4, "prompts": ["The capital of France is [MASK].", "France's capital is [MASK]."]});
    let e: kn_shared::CostEstimate = post_ok(&app, "/api/estimate/analyze", &body).await;
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let units: u64 = [
        "The capital of France is [MASK].",
        "France's capital is [MASK].",
    ]
    .iter()
    .map(|p| {
        let q = kn::engine::Query::new(&m, p, "Paris").unwrap();
        5 * q.attributed_tokens() as u64 * 3
    })
    .sum();
    assert_eq!((e.units, e.seconds, e.timed_jobs), (units, None, 0));
    let _: kn_shared::AnalyzeResponse = post_ok(&app, "/api/analyze", &body).await;
    let after: kn_shared::CostEstimate = post_ok(&app, "/api/estimate/analyze", &body).await;
    assert_eq!((after.units, after.timed_jobs), (units, 1));
    assert!(after.seconds.unwrap() > 0.0);
    let mut twice = body.clone();
    twice["steps"] = serde_json::json!(9);
    let more: kn_shared::CostEstimate = post_ok(&app, "/api/estimate/analyze", &twice).await;
    assert_eq!(more.units, 2 * units);
    assert!((more.seconds.unwrap() - 2.0 * after.seconds.unwrap()).abs() < 1e-9);
    expect_error(
        &app,
        "POST",
        "/api/estimate/analyze",
        r#"{"target": "Paris", "prompts": ["no blank here"]}"#,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_prompt",
        "no [MASK]",
    )
    .await;
}

/// Byte-level tokens that are part of a character (GPT-2 splits many
/// non-ASCII characters) are listed as their bytes, never as `�`.
#[test]
fn no_token_is_shown_as_a_replacement_character() {
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let n = m.config().vocab_size as u32;
    let texts: Vec<String> = (0..n).map(|id| m.tokenizer.token_text(id)).collect();
    let bad: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains('\u{FFFD}'))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let bytes = texts.iter().filter(|t| t.contains("<0x")).count();
    assert!(
        bytes > 0,
        "the vocabulary has partial characters, shown as bytes"
    );
}

/// A neuron on a text of the user's: its activation at every token. At the
/// last token of a causal prompt's text it is the activation the card reads at
/// that prompt's blank; every token of the text is listed, in order.
#[tokio::test]
async fn a_neuron_card_reads_the_neuron_along_a_typed_text() {
    use kn_shared::NeuronCard;
    let app = app_with_store(tempfile::tempdir().unwrap().path());
    let prompts = [
        "The capital of France is [MASK].",
        "France's capital is [MASK].",
    ];
    let (a, n) = analysed_neuron(&app, &prompts, 3).await;
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    for (i, text) in ["The capital of France is", "France's capital is"]
        .iter()
        .enumerate()
    {
        let ask =
            serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index, "text": text});
        let card: NeuronCard = post_ok(&app, "/api/neuron", &ask).await;
        let ids = m.tokenizer.encode(text).unwrap();
        let tokens: Vec<String> = ids.iter().map(|&id| m.tokenizer.token_text(id)).collect();
        let listed: Vec<&str> = card
            .text_activations
            .iter()
            .map(|t| t.token.as_str())
            .collect();
        assert_eq!(
            listed,
            tokens.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let last = card.text_activations.last().unwrap().activation;
        let at_blank = card.prompts[i].activation;
        assert!(
            (last - at_blank).abs() <= 1e-4 * at_blank.abs().max(1e-6),
            "{last} vs {at_blank}"
        );
    }
    // Without a text, none; a text over the token budget is refused.
    let plain = serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index});
    let card: NeuronCard = post_ok(&app, "/api/neuron", &plain).await;
    assert!(card.text_activations.is_empty());
    let long = serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index, "text": "word ".repeat(400)});
    expect_error(
        &app,
        "POST",
        "/api/neuron",
        &long.to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "tokens",
    )
    .await;
}

/// Across a relation: the neuron at the blank of the first prompt of up to 50
/// of its facts, each the activation a layer-by-layer read of that prompt
/// gives at its blank; an unknown relation is a 404.
#[tokio::test]
async fn a_neuron_card_reads_the_neuron_across_a_relation() {
    use kn_shared::NeuronCard;
    let app = app_with_store(tempfile::tempdir().unwrap().path());
    let (a, n) = analysed_neuron(&app, &["The capital of France is [MASK]."], 3).await;
    let ask = serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index, "relation": "P36"});
    let card: NeuronCard = post_ok(&app, "/api/neuron", &ask).await;
    let across = &card.relation_activations;
    assert!(!across.is_empty() && across.len() <= 50, "{}", across.len());
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let neuron = kn::engine::Neuron {
        layer: n.layer,
        index: n.index,
    };
    for p in across.iter().take(5) {
        let c = kn::cloze::cloze(&m, &p.prompt).unwrap();
        let along = kn::engine::neuron_card::along_text(&m, &c.ids[..=c.blank], neuron).unwrap();
        let want = *along.last().unwrap();
        assert!(
            (p.activation - want).abs() <= 1e-4 * want.abs().max(1e-6),
            "{}: {} vs {want}",
            p.prompt,
            p.activation
        );
    }
    let bad = serde_json::json!({"analysis": a.id, "layer": n.layer, "index": n.index, "relation": "P9999"});
    expect_error(
        &app,
        "POST",
        "/api/neuron",
        &bad.to_string(),
        StatusCode::NOT_FOUND,
        "unknown_relation",
        "P9999",
    )
    .await;
}
