//! Predictions that wait together are answered together: one forward pass and
//! one device read per batch of requests on the same edit sets, with the
//! numbers of one prompt at a time (up to float rounding: the same top tokens,
//! probabilities within 1e-5 relative), and a bad request's error its own.
//! Tests in this file count device reads, a process-wide counter, so they hold
//! one lock and run apart from the others (ignored in a plain run; the test
//! command runs the ignored tests alone, one at a time).

use crate::common::*;
use kn::engine::host::reads;
use kn::server::ModelWorker;
use kn_shared::{PredictRequest, PredictResponse};
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

const PROMPTS: [&str; 5] = [
    "The capital of France is [MASK].",
    "[MASK].",
    "Paris is the capital of [MASK].",
    "In the middle of a much longer sentence about a city, the capital of France is [MASK].",
    "The capital of Italy is [MASK].",
];

fn request(prompt: &str, target: Option<&str>, edits: &[&str]) -> PredictRequest {
    serde_json::from_value(serde_json::json!({
        "prompt": prompt, "top_k": 7, "target": target, "edits": edits
    }))
    .unwrap()
}

fn requests() -> Vec<PredictRequest> {
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| request(p, (i % 2 == 0).then_some("Paris"), &[]))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-8
}

/// Batched and single answers agree: same tokens in the same order, close
/// probabilities, the same target rank.
fn same_answer(batched: &PredictResponse, single: &PredictResponse) {
    assert_eq!(batched.tokens, single.tokens);
    assert_eq!(batched.blank_index, single.blank_index);
    let names = |r: &PredictResponse| r.top_k.iter().map(|t| t.token.clone()).collect::<Vec<_>>();
    assert_eq!(names(batched), names(single));
    for (a, b) in batched.top_k.iter().zip(&single.top_k) {
        assert!(close(a.prob, b.prob), "{} vs {}", a.prob, b.prob);
    }
    match (&batched.target, &single.target) {
        (Some(a), Some(b)) => {
            assert_eq!(a.rank, b.rank);
            assert!(close(a.prob, b.prob), "{} vs {}", a.prob, b.prob);
        }
        (None, None) => {}
        other => panic!("targets differ: {other:?}"),
    }
}

#[test]
#[ignore = "counts device reads, a process-wide counter: runs alone, as scripts/test.sh does (cargo test -- --ignored --test-threads=1)"]
fn predictions_in_one_batch_equal_one_at_a_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for name in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let m = kn::load_model(&fixture(name), cpu()).unwrap();
        let mut reqs = requests();
        // A request that cannot be answered sits in the middle of the batch.
        reqs.insert(2, request("No blank in this one.", None, &[]));
        let before = reads();
        let batched = kn::predict::predict_many(&m, &reqs);
        assert_eq!(reads() - before, 1, "{name}: one read for the batch");
        assert_eq!(batched.len(), reqs.len());
        for (req, b) in reqs.iter().zip(&batched) {
            match kn::predict::predict(&m, req) {
                Ok(single) => same_answer(b.as_ref().unwrap(), &single),
                Err(e) => assert_eq!(
                    b.as_ref().unwrap_err().to_string(),
                    e.to_string(),
                    "{name}: the bad request's error is its own"
                ),
            }
        }
    }
}

#[test]
#[ignore = "counts device reads, a process-wide counter: runs alone, as scripts/test.sh does (cargo test -- --ignored --test-threads=1)"]
fn waiting_predictions_share_a_forward_pass() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(predictions_wait_and_share());
}

async fn predictions_wait_and_share() {
    let model = kn::load_model(&fixture("tiny-bert"), cpu()).unwrap();
    let worker = Arc::new(ModelWorker::spawn(
        kn::load_model(&fixture("tiny-bert"), cpu()).unwrap(),
    ));
    // Hold the model's thread until every prediction is waiting.
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let blocker = {
        let w = worker.clone();
        tokio::spawn(async move {
            w.run(vec![], move |_, _| {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
            .await
        })
    };
    // 40 on the base model (two batches: 32 + 8) and 5 naming another edit
    // list (a third batch; the ids only group here, no set is applied).
    let reqs: Vec<PredictRequest> = (0..45)
        .map(|i| {
            let edits: &[&str] = if i % 9 == 4 { &["other"] } else { &[] };
            request(
                PROMPTS[i % PROMPTS.len()],
                (i % 2 == 0).then_some("Paris"),
                edits,
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in reqs.iter().cloned().enumerate() {
        let w = worker.clone();
        tasks.spawn(async move { (i, w.predict(vec![], r).await) });
    }
    let mut spins = 0;
    while worker.waiting_predictions() < reqs.len() {
        tokio::task::yield_now().await;
        spins += 1;
        assert!(spins < 1_000_000, "predictions never queued");
    }
    // The blocker must be running (not merely queued) before counting reads.
    tokio::task::spawn_blocking(move || started.recv().unwrap())
        .await
        .unwrap();
    let before = reads();
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.unwrap();
        let single = kn::predict::predict(&model, &reqs[i]).unwrap();
        same_answer(&r.unwrap(), &single);
        answered += 1;
    }
    assert_eq!(answered, 45);
    // Only the batches read from the device (the single answers above were
    // computed after; subtract them).
    assert_eq!(reads() - before - 45, 3, "three batches, three reads");
    assert_eq!(worker.waiting_predictions(), 0);
}
