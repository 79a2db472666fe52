//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The fixture models written by `scripts/make_fixtures.py`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var("KN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models"));
    if !dir.join("STAMP").exists() {
        missing_fixtures(&dir);
    }
    dir
}

/// No fixtures: say once, in one line, what makes them, and end the test run
/// (every test would otherwise fail on its own, deep in its setup).
fn missing_fixtures(dir: &std::path::Path) -> ! {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "the test fixtures are missing in {}: run `bash scripts/test.sh` (it makes them and runs every test), or `.venv/bin/python scripts/make_fixtures.py` to make them alone",
            dir.display()
        );
    });
    std::process::exit(2)
}

pub fn fixture(name: &str) -> String {
    fixtures().join(name).to_string_lossy().into_owned()
}

pub fn golden(dir: &str) -> serde_json::Value {
    let p = fixtures().join(dir).join("golden.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// `n` digits, `0123456789…`: a prompt of about `n` tokens for byte-level BPE.
pub fn digits(n: usize) -> String {
    (0..n).map(|i| char::from(b'0' + (i % 10) as u8)).collect()
}

pub fn cpu() -> tch::Device {
    tch::Device::Cpu
}

/// The model's token ids equal the goldens' for every `{text, ids}` case (a few
/// hundred of them).
pub fn assert_token_parity(model: &kn::Model, label: &str, cases: &serde_json::Value) {
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 200, "parity needs a few hundred strings");
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            model.tokenizer.encode(text).unwrap(),
            want,
            "{label}: tokens of {text:?}"
        );
    }
}

/// Calling the HTTP API in process (no sockets): routers on fixture models.
pub mod api {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use kn::server::{router, AppState, ModelWorker};
    use kn_shared::ApiError;
    use std::sync::Arc;
    use tower::ServiceExt;

    pub fn dataset() -> kn::pararel::ParaRel {
        kn::pararel::ParaRel::load(&kn::pararel::ParaRel::default_dir()).unwrap()
    }

    /// A state on fixture `models` with a store in `dir` (a fresh temporary
    /// folder when `None`) and the dataset.
    pub fn state(models: &[&str], dir: Option<&std::path::Path>) -> AppState {
        let workers = models
            .iter()
            .map(|m| ModelWorker::spawn(kn::load_model(&super::fixture(m), super::cpu()).unwrap()))
            .collect();
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => tempfile::tempdir().unwrap().keep(),
        };
        let mut st = AppState::new(workers, Arc::new(kn::store::Store::open(&dir).unwrap()));
        st.dataset = Some(dataset());
        st
    }

    pub fn app_of(st: AppState) -> axum::Router {
        router(Arc::new(st), None)
    }

    /// One request with a JSON body (or none).
    pub async fn call(
        app: &axum::Router,
        method: &str,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Vec<u8>) {
        call_with(
            app,
            method,
            uri,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// One request with the given headers.
    pub async fn call_with(
        app: &axum::Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, bytes)
    }

    /// POST `body` (JSON) and parse a 200 answer.
    pub async fn post_ok<T: serde::de::DeserializeOwned>(
        app: &axum::Router,
        uri: &str,
        body: &serde_json::Value,
    ) -> T {
        let (s, b) = call(app, "POST", uri, body.to_string()).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    /// The request fails with `status`, `code`, and a message containing `words`.
    pub async fn expect_error(
        app: &axum::Router,
        method: &str,
        uri: &str,
        body: &str,
        status: StatusCode,
        code: &str,
        words: &str,
    ) {
        let (s, b) = call(app, method, uri, body.to_string()).await;
        check_error(uri, body, s, &b, status, code, words);
    }

    pub fn check_error(
        uri: &str,
        body: &str,
        s: StatusCode,
        b: &[u8],
        status: StatusCode,
        code: &str,
        words: &str,
    ) {
        let e: ApiError = serde_json::from_slice(b).unwrap_or_else(|_| {
            panic!(
                "{uri} {}: not an API error: {}",
                &body[..body.len().min(200)],
                String::from_utf8_lossy(b)
            )
        });
        assert_eq!(s, status, "{uri}: {e:?}");
        assert_eq!(e.error.code, code, "{uri}: {e:?}");
        assert!(
            e.error.message.contains(words),
            "{uri}: {:?} lacks {words:?}",
            e.error.message
        );
    }

    /// Read a job's server-sent events to the end; return the statuses.
    pub async fn events(app: &axum::Router, id: &str) -> Vec<kn_shared::JobStatus> {
        let (s, b) = call(app, "GET", &format!("/api/jobs/{id}/events"), Body::empty()).await;
        assert_eq!(s, StatusCode::OK);
        String::from_utf8(b)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

/// A golden attribution case's prompt as a query (its target is the case's).
pub fn query(model: &kn::Model, case: &serde_json::Value) -> kn::engine::Query {
    let prompt = case["prompt"].as_str().unwrap();
    let ids: Vec<u32> = case["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let q = kn::engine::Query::with_token(model, prompt, case["target"].as_u64().unwrap() as u32)
        .unwrap();
    // The prompt's tokens are the reference's tokens (checked in golden.rs).
    assert_eq!(q.cloze.ids, ids);
    q
}

/// The fixture's golden prompts (their own one-token answers) and its
/// multi-token cases, answer positions as the case says.
pub fn golden_queries(model: &kn::Model, dir: &str) -> Vec<kn::engine::Query> {
    let g = golden(dir);
    let mut qs: Vec<kn::engine::Query> = g["attribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| query(model, c))
        .collect();
    for c in g["chain"].as_array().unwrap() {
        let positions: kn::engine::AnswerPositions =
            c["positions"].as_str().unwrap().parse().unwrap();
        qs.push(
            kn::engine::Query::new(
                model,
                c["prompt"].as_str().unwrap(),
                c["target"].as_str().unwrap(),
            )
            .unwrap()
            .with_positions(positions),
        );
    }
    qs
}

/// A seeded set of 1 to `max` distinct neurons in random layers, sorted.
pub fn random_neurons(
    rng: &mut impl rand::Rng,
    cfg: &kn::models::ModelConfig,
    max: usize,
) -> Vec<kn::engine::Neuron> {
    let k = rng.random_range(1..=max);
    let mut ns: Vec<kn::engine::Neuron> = (0..k)
        .map(|_| kn::engine::Neuron {
            layer: rng.random_range(0..cfg.n_layers),
            index: rng.random_range(0..cfg.d_ff),
        })
        .collect();
    ns.sort();
    ns.dedup();
    ns
}

/// A specificity's rows each hold their change inside their interval, and its
/// verdict is what the intervals say (every control apart from the fact).
pub fn assert_verdict_follows_intervals(s: &kn_shared::Specificity) {
    for row in &s.rows {
        assert!(
            row.lo <= row.change + 1e-12 && row.change <= row.hi + 1e-12,
            "{row:?}"
        );
    }
    let apart = s.rows[1..]
        .iter()
        .all(|c| c.hi < s.rows[0].lo || c.lo > s.rows[0].hi);
    assert_eq!(s.fact_specific, apart);
}
