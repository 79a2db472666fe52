//! Edits are values, not server state: an edit set is stored under the hash of
//! its contents, requests name the sets they run on, and the model's worker
//! restores the base weights after every task, whatever happens. These tests
//! hold the API to that: two clients with different edits at the same time, a
//! queued update that cannot leak into an analysis, results and edit outcomes
//! under permalinks that reopen (or recompute) exactly.

use crate::common::api::*;
use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use kn_shared::{
    ActiveEdit, AnalysisResult, AnalyzeRequest, AnalyzeResponse, EditResponse, EditSet, JobStatus,
    PredictResponse, StoredResult,
};
use std::sync::Arc;

const ASK: &str = r#"{"prompt": "The capital of France is [MASK].", "top_k": 5}"#;

fn ask_with(edits: &[&str]) -> String {
    serde_json::json!({"prompt": "The capital of France is [MASK].", "top_k": 5, "edits": edits})
        .to_string()
}

fn update_body(edits: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "target": "Paris", "new_target": "France", "steps": 4, "k": 2,
        "prompts": ["The capital of France is [MASK].", "France's capital is [MASK].", "The capital city of France is [MASK]."],
        "eval": [{"prompt": "Paris is the capital of [MASK].", "target": "France"}],
        "edits": edits
    })
}

async fn predict(app: &axum::Router, body: &str) -> PredictResponse {
    let (s, b) = call(app, "POST", "/api/predict", body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

#[tokio::test]
async fn edits_are_values_that_requests_name() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_of(state(&["tiny-llama"], Some(dir.path())));
    let original = predict(&app, ASK).await;
    let r: EditResponse = post_ok(&app, "/api/edits/update", &update_body(&[])).await;
    assert!(!r.edit.neurons.is_empty() && r.edit.neurons.len() <= 2);
    assert_eq!((r.predictions.len(), r.metrics.perplexity.len()), (3, 1));
    assert!(r.random.is_some());
    assert_eq!(r.id.len(), 20, "the outcome has a permalink id");

    // Nothing changed for anyone who does not name the edit.
    assert_eq!(predict(&app, ASK).await, original);
    let edited = predict(&app, &ask_with(&[&r.edit.id])).await;
    assert_ne!(edited, original, "the named edit is applied");
    assert_eq!(
        predict(&app, ASK).await,
        original,
        "and restored after the request"
    );
    // The outcome's predictions say what the edit does to its prompts.
    let with_target = |edits: &[&str]| {
        serde_json::json!({"prompt": "The capital of France is [MASK].", "target": "Paris", "edits": edits})
            .to_string()
    };
    let p_after = predict(&app, &with_target(&[&r.edit.id]))
        .await
        .target
        .unwrap()
        .prob;
    let p_before = predict(&app, &with_target(&[])).await.target.unwrap().prob;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-12);
    assert!(
        close(r.predictions[0].p_after, p_after),
        "{} vs {p_after}",
        r.predictions[0].p_after
    );
    assert!(close(r.predictions[0].p_before, p_before));

    // The set: download, summary, and the outcome's permalink.
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/edit-sets/{}", r.edit.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let set: EditSet = serde_json::from_slice(&b).unwrap();
    assert_eq!(set.slots.len(), r.edit.neurons.len());
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/edit-sets/{}/summary", r.edit.id),
        Body::empty(),
    )
    .await;
    assert_eq!(serde_json::from_slice::<ActiveEdit>(&b).unwrap(), r.edit);
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", r.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let stored: StoredResult = serde_json::from_slice(&b).unwrap();
    assert_eq!(stored.kind().name(), "update");
    assert_eq!(stored.edit(), Some(&r));
    assert_eq!(stored.request().to_json().unwrap()["target"], "Paris");
    // The same request again is the same outcome, from the store.
    let again: EditResponse = post_ok(&app, "/api/edits/update", &update_body(&[])).await;
    assert_eq!(again, r);

    // Uploaded to another server (another store), the same set has the same
    // id and makes the same predictions.
    let other = app_of(state(&["tiny-llama"], None));
    let up: ActiveEdit = {
        let (s, b) = call(
            &other,
            "POST",
            "/api/edit-sets",
            serde_json::to_string(&set).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    };
    assert_eq!(up, r.edit);
    assert_eq!(predict(&other, &ask_with(&[&up.id])).await, edited);

    // An erase made on top of the update touches one of its slots: it runs
    // after the update, and alone it is refused, with the weights restored.
    let n = r.edit.neurons[0];
    let erase = serde_json::json!({"neurons": [n], "edits": [r.edit.id]});
    let e: EditResponse = post_ok(&app, "/api/edits/erase", &erase).await;
    let both = predict(&app, &ask_with(&[&r.edit.id, &e.edit.id])).await;
    assert_ne!(both, edited);
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &ask_with(&[&e.edit.id]),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "made on top of other edit sets",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &ask_with(&[&e.edit.id, &r.edit.id]),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "in the order they were made",
    )
    .await;
    assert_eq!(
        predict(&app, ASK).await,
        original,
        "a refused request leaves nothing applied"
    );
    assert_eq!(predict(&app, &ask_with(&[&r.edit.id])).await, edited);
}

#[tokio::test]
async fn bad_edit_sets_get_clear_errors() {
    use StatusCode as S;
    let app = app_of(state(&["tiny-llama", "tiny-gpt2"], None));
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &ask_with(&["nothex"]),
        S::BAD_REQUEST,
        "bad_edit_id",
        "not an edit-set id",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &ask_with(&["0123456789abcdef0123"]),
        S::NOT_FOUND,
        "edit_set_not_found",
        "upload its file again",
    )
    .await;
    let many = vec!["0123456789abcdef0123"; 17];
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &ask_with(&many),
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "edit sets in one request",
    )
    .await;
    expect_error(
        &app,
        "GET",
        "/api/edit-sets/0123456789abcdef0123",
        "",
        S::NOT_FOUND,
        "edit_set_not_found",
        "no edit set",
    )
    .await;
}

/// An edit set made for another model, or with values or slots out of range,
/// is refused by name.
#[tokio::test]
async fn edit_sets_of_other_models_or_out_of_range_are_refused() {
    use StatusCode as S;
    let app = app_of(state(&["tiny-llama", "tiny-gpt2"], None));
    // A set made on the llama, named in a request to the gpt2.
    let r: EditResponse = post_ok(&app, "/api/edits/update", &update_body(&[])).await;
    let models: Vec<kn_shared::ModelSummary> = {
        let (_, b) = call(&app, "GET", "/api/models", Body::empty()).await;
        serde_json::from_slice(&b).unwrap()
    };
    let on_gpt2 = serde_json::json!({"model": models[1].name, "prompt": "The capital of France is [MASK].", "edits": [r.edit.id]});
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &on_gpt2.to_string(),
        S::UNPROCESSABLE_ENTITY,
        "wrong_model",
        "made for model",
    )
    .await;

    // Uploads: another model's fingerprint, values out of range, a slot out of range.
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/edit-sets/{}", r.edit.id),
        Body::empty(),
    )
    .await;
    let set: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let mut foreign = set.clone();
    foreign["model"] = "llama-1x1-d1-v1-sha256:00".into();
    expect_error(
        &app,
        "POST",
        "/api/edit-sets",
        &foreign.to_string(),
        S::UNPROCESSABLE_ENTITY,
        "wrong_model",
        "not loaded here",
    )
    .await;
    let mut huge = set.clone();
    huge["slots"][0]["after"][0] = 1e7.into();
    expect_error(
        &app,
        "POST",
        "/api/edit-sets",
        &huge.to_string(),
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "must be finite",
    )
    .await;
    // Beyond f32 is not even a number the set can hold.
    let text = set
        .to_string()
        .replacen("\"after\":[", "\"after\":[1e39,", 1);
    expect_error(
        &app,
        "POST",
        "/api/edit-sets",
        &text,
        S::BAD_REQUEST,
        "malformed_json",
        "out of range",
    )
    .await;
    let mut far = set.clone();
    far["slots"][0]["layer"] = 99.into();
    expect_error(
        &app,
        "POST",
        "/api/edit-sets",
        &far.to_string(),
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "out of range",
    )
    .await;
    let mut short = set;
    short["slots"][0]["after"].as_array_mut().unwrap().pop();
    expect_error(
        &app,
        "POST",
        "/api/edit-sets",
        &short.to_string(),
        S::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "values",
    )
    .await;
}

fn analyze_body(edits: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "target": "Paris", "steps": 3,
        "prompts": ["The capital of France is [MASK].", "France's capital is [MASK]."],
        "edits": edits
    })
}

/// The same analysis computed by the library on a model with `sets` applied.
fn library_analysis(sets: &[EditSet], body: &serde_json::Value) -> AnalysisResult {
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let mut req: AnalyzeRequest = serde_json::from_value(body.clone()).unwrap();
    req.model = Some(fixture("tiny-llama"));
    let _applied = kn::engine::edit::Applied::new(&m, sets).unwrap();
    kn::engine::analysis::analyze(&m, &req, kn::server::summary(&m)).unwrap()
}

fn same_numbers(a: &AnalysisResult, b: &AnalysisResult) {
    assert_eq!(a.mean_scores, b.mean_scores);
    assert_eq!(a.neurons, b.neurons);
    assert_eq!(a.suppress, b.suppress);
    let p = |r: &AnalysisResult| r.prompts.iter().map(|p| p.p_target).collect::<Vec<_>>();
    assert_eq!(p(a), p(b));
}

#[tokio::test]
async fn two_clients_with_different_edits_at_the_same_time() {
    let app = app_of(state(&["tiny-llama"], None));
    let r: EditResponse = post_ok(&app, "/api/edits/update", &update_body(&[])).await;
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/edit-sets/{}", r.edit.id),
        Body::empty(),
    )
    .await;
    let set: EditSet = serde_json::from_slice(&b).unwrap();
    let id = r.edit.id.as_str();
    // Interleaved requests of two users, one on the base model, one edited.
    let (plain, named) = (analyze_body(&[]), analyze_body(&[id]));
    let ask_edited = ask_with(&[id]);
    let (base_a, edited_a, base_b, edited_b, p_base, p_edited) = tokio::join!(
        post_ok::<AnalyzeResponse>(&app, "/api/analyze", &plain),
        post_ok::<AnalyzeResponse>(&app, "/api/analyze", &named),
        predict(&app, ASK),
        predict(&app, &ask_edited),
        predict(&app, ASK),
        predict(&app, &ask_edited),
    );
    assert_ne!(base_a.id, edited_a.id, "the edit set is part of the id");
    same_numbers(&base_a.result, &library_analysis(&[], &analyze_body(&[])));
    same_numbers(
        &edited_a.result,
        &library_analysis(std::slice::from_ref(&set), &analyze_body(&[id])),
    );
    same_prediction(&base_b, &p_base);
    same_prediction(&edited_b, &p_edited);
    assert_ne!(base_b, edited_b);
}

/// The same answer up to float rounding: two equal requests may be answered
/// in one batch or in two (`predict_many`), whose matrix products round
/// differently (about 1e-6 relative).
fn same_prediction(a: &PredictResponse, b: &PredictResponse) {
    let ids = |r: &PredictResponse| r.top_k.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b));
    assert_eq!(a.input_ids, b.input_ids);
    for (x, y) in a.top_k.iter().zip(&b.top_k) {
        assert!((x.prob - y.prob).abs() <= 1e-5 * y.prob, "{x:?} vs {y:?}");
    }
}

#[tokio::test]
async fn a_queued_update_never_leaks_into_an_analysis() {
    // The old race: an update queued before an analysis changed the weights
    // the analysis ran on, and its result was stored under the unedited id.
    let app = app_of(state(&["tiny-llama"], None));
    let (s, b) = call(
        &app,
        "POST",
        "/api/jobs/update-fact",
        update_body(&[]).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let update: JobStatus = serde_json::from_slice(&b).unwrap();
    let (s, b) = call(
        &app,
        "POST",
        "/api/jobs/analyze",
        analyze_body(&[]).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let analysis: JobStatus = serde_json::from_slice(&b).unwrap();
    let done = events(&app, &update.id).await.pop().unwrap();
    assert_eq!(done.state.name(), "done", "{done:?}");
    let edit_id = done.edit.unwrap().edit.id;
    assert_eq!(
        events(&app, &analysis.id).await.pop().unwrap().state.name(),
        "done"
    );
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", analysis.id),
        Body::empty(),
    )
    .await;
    let stored: StoredResult = serde_json::from_slice(&b).unwrap();
    same_numbers(
        stored.analysis().unwrap(),
        &library_analysis(&[], &analyze_body(&[])),
    );
    // Naming the edit gives another id and the edited numbers.
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/edit-sets/{edit_id}"),
        Body::empty(),
    )
    .await;
    let set: EditSet = serde_json::from_slice(&b).unwrap();
    let edited: AnalyzeResponse = post_ok(&app, "/api/analyze", &analyze_body(&[&edit_id])).await;
    assert_ne!(edited.id, analysis.id);
    same_numbers(
        &edited.result,
        &library_analysis(&[set], &analyze_body(&[&edit_id])),
    );
}

#[tokio::test]
async fn evicted_results_are_recomputed_from_their_request() {
    let dir = tempfile::tempdir().unwrap();
    let caps = kn::store::Caps {
        result_bytes: 1,
        ..Default::default()
    };
    let mut st = state(&["tiny-llama"], None);
    st.store = Arc::new(kn::store::Store::open_with(dir.path(), caps).unwrap());
    let app = app_of(st);
    let first: AnalyzeResponse = post_ok(&app, "/api/analyze", &analyze_body(&[])).await;
    let mut other = analyze_body(&[]);
    other["steps"] = 2.into();
    let _: AnalyzeResponse = post_ok(&app, "/api/analyze", &other).await;
    // The cap holds one result at most: the first was evicted, its request kept.
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", first.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(job.id, first.id);
    assert_eq!(
        events(&app, &job.id).await.pop().unwrap().state.name(),
        "done"
    );
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", first.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let back: StoredResult = serde_json::from_slice(&b).unwrap();
    same_numbers(back.analysis().unwrap(), &first.result);
}

#[tokio::test]
async fn a_task_that_panics_or_is_abandoned_leaves_the_weights_as_loaded() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let q = kn::engine::Query::new(&m, "The capital of France is [MASK].", "Paris").unwrap();
    let set = kn::engine::edit::erase(
        &m,
        &[
            kn::engine::Neuron { layer: 1, index: 3 },
            kn::engine::Neuron { layer: 2, index: 9 },
        ],
        kn::engine::edit::EraseWith::Zero,
        "test".into(),
    )
    .unwrap();
    let worker = kn::server::ModelWorker::spawn(m);
    let probe = move |m: &kn::Model, _: &AtomicBool| -> kn::Result<f64> {
        let (p, _) =
            kn::engine::readout::probabilities(m, std::slice::from_ref(&q), &Default::default())?;
        Ok(p[0])
    };
    let base = worker.run(vec![], probe.clone()).await.unwrap();
    let edited = worker.run(vec![set.clone()], probe.clone()).await.unwrap();
    assert_ne!(base, edited);

    // A panic with the edit applied: a 500 without the panic's text, and the
    // weights restored.
    let fail = worker
        .run(vec![set.clone()], |_, _| -> kn::Result<()> {
            panic!("secret detail")
        })
        .await
        .unwrap_err();
    let body = format!("{fail:?}");
    assert!(
        body.contains("incident") && !body.contains("secret detail"),
        "{body}"
    );
    assert_eq!(worker.run(vec![], probe.clone()).await.unwrap(), base);

    // A request whose client goes away: its task sees the cancel flag and
    // stops; the weights are restored.
    let saw = Arc::new(AtomicBool::new(false));
    let saw2 = saw.clone();
    let abandoned = worker.run(vec![set], move |_, cancel| -> kn::Result<()> {
        let start = std::time::Instant::now();
        while !cancel.load(Ordering::Relaxed) && start.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        saw2.store(cancel.load(Ordering::Relaxed), Ordering::Relaxed);
        Err(kn::Error::Cancelled)
    });
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), abandoned).await;
    assert_eq!(worker.run(vec![], probe).await.unwrap(), base);
    assert!(
        saw.load(Ordering::Relaxed),
        "the abandoned task was cancelled"
    );
}

/// An erase answers its own question: the erased fact's prompts first, each
/// with P(answer) before and after as `/api/predict` reads them without and
/// with the new edit set; then the side-effect prompts; and the outcome in an
/// erase's terms (forgotten prompts, the relative change of P), not an update's.
#[tokio::test]
async fn an_erase_measures_its_fact_then_the_side_effects() {
    let app = app_of(state(&["tiny-llama"], None));
    let prompts = [
        "The capital of France is [MASK].",
        "France's capital is [MASK].",
    ];
    let neurons: Vec<_> = (0..32)
        .map(|i| serde_json::json!({"layer": 2, "index": i}))
        .collect();
    let body = serde_json::json!({
        "neurons": neurons, "target": "Paris", "prompts": prompts,
        "eval": [{"prompt": "Paris is the capital of [MASK].", "target": "France"}],
    });
    let e: EditResponse = post_ok(&app, "/api/edits/erase", &body).await;
    assert!(
        e.edit.description.contains("of \"Paris\""),
        "{}",
        e.edit.description
    );
    let prob = |r: &PredictResponse| r.target.as_ref().unwrap().prob;
    let ask = |prompt: &str, target: &str, edits: &[&str]| {
        serde_json::json!({"prompt": prompt, "target": target, "top_k": 1, "edits": edits})
            .to_string()
    };
    assert_eq!(e.predictions.len(), 2, "the fact's prompts come first");
    let mut before_after = Vec::new();
    for (p, effect) in prompts.iter().zip(&e.predictions) {
        assert_eq!(&effect.prompt, p);
        let before = predict(&app, &ask(p, "Paris", &[])).await;
        let after = predict(&app, &ask(p, "Paris", &[&e.edit.id])).await;
        assert!((prob(&before) - effect.p_before).abs() < 1e-6);
        assert!((prob(&after) - effect.p_after).abs() < 1e-6);
        assert_eq!(effect.top1_before, before.top_k[0].token);
        assert_eq!(effect.top1_after, after.top_k[0].token);
        before_after.push((effect.p_before, effect.p_after));
    }
    assert_eq!(e.side_effects.len(), 1);
    assert_eq!(e.side_effects[0].prompt, "Paris is the capital of [MASK].");
    let o = e.erase.as_ref().expect("an erase's own outcome");
    let mean = |f: fn(&(f64, f64)) -> f64| before_after.iter().map(f).sum::<f64>() / 2.0;
    let (b, a) = (mean(|x| x.0), mean(|x| x.1));
    assert!((o.p_change.unwrap() - (a - b) / b).abs() < 1e-9);
    assert_eq!((o.prompts, o.side_prompts), (2, 1));
    let known = e
        .predictions
        .iter()
        .filter(|p| p.top1_before == "Paris")
        .count();
    let lost = e
        .predictions
        .iter()
        .filter(|p| p.top1_before == "Paris" && p.top1_after != "Paris")
        .count();
    assert_eq!((o.known, o.forgotten), (known, lost));
    let side_changed = e
        .side_effects
        .iter()
        .filter(|p| p.top1_before != p.top1_after)
        .count();
    assert_eq!(o.side_changed, side_changed);

    // The fact is given whole or not at all.
    let half = serde_json::json!({"neurons": [{"layer": 0, "index": 0}], "prompts": prompts});
    expect_error(
        &app,
        "POST",
        "/api/edits/erase",
        &half.to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "without its answer",
    )
    .await;
}

/// An edit-strength search tries every λ2 of the grid and picks the smallest
/// that works. Each try is held to the plain update at that λ2: the edit
/// prompt's top-1 and P(t′) as `/api/predict` reads them with that edit set,
/// and the side prompts' perplexity as the update measures it.
#[tokio::test]
async fn an_edit_strength_search_is_the_plain_update_at_each_strength() {
    let app = app_of(state(&["tiny-llama"], None));
    let mut body = update_body(&[]);
    body["search"] = serde_json::json!(true);
    let r: EditResponse = post_ok(&app, "/api/edits/update", &body).await;
    let s = r.strength.as_ref().expect("a search says what it tried");
    let grid: Vec<f64> = s.tried.iter().map(|t| t.lambda2).collect();
    assert_eq!(grid, kn_shared::STRENGTH_GRID.to_vec());
    assert_eq!(s.prompt, "The capital of France is [MASK].");
    assert_eq!(
        (s.side.as_str(), s.side_prompts),
        ("the side-effect prompts given", 1)
    );
    for t in &s.tried {
        let mut plain = update_body(&[]);
        plain["lambda2"] = serde_json::json!(t.lambda2);
        let u: EditResponse = post_ok(&app, "/api/edits/update", &plain).await;
        let ask = serde_json::json!({"prompt": s.prompt, "target": "France", "top_k": 1, "edits": [u.edit.id]});
        let p = predict(&app, &ask.to_string()).await;
        assert_eq!(p.top_k[0].token, t.top1, "λ2 = {}", t.lambda2);
        assert!((p.target.as_ref().unwrap().prob - t.p_new).abs() < 1e-6);
        let ppl = &u.metrics.perplexity[0];
        assert!((ppl.before - t.perplexity_before).abs() < 1e-6 * ppl.before);
        assert!((ppl.after - t.perplexity_after).abs() < 1e-6 * ppl.after);
        assert!((u.metrics.success_rate - t.success_rate).abs() < 1e-9);
        let top1 = p.target.as_ref().unwrap().rank == 1;
        let works = top1 && t.perplexity_after <= 2.0 * t.perplexity_before;
        assert_eq!(t.works, works, "λ2 = {}", t.lambda2);
    }
    let first = s.tried.iter().find(|t| t.works).map(|t| t.lambda2);
    assert_eq!(s.chosen, first);
    // The outcome's edit is the chosen one (or the form's λ2 when none works).
    let lambda2 = s.chosen.unwrap_or(8.0);
    assert!(
        r.edit.description.contains(&format!("λ2 = {lambda2}")),
        "{}",
        r.edit.description
    );
}
