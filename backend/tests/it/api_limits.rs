//! No request can break the server: every cost has a budget checked before any
//! work starts, bad numbers are refused, and only the server's own origin (and,
//! beyond loopback, only a token holder) may change anything.

use crate::common::api::*;
use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use kn::server::Access;
use StatusCode as S;

/// Refusing prompts over the budgets costs no memory (the peak is the
/// process's, so this test runs alone).
#[tokio::test]
#[ignore = "reads the process peak memory: runs alone, as scripts/test.sh does (cargo test -- --ignored --test-threads=1)"]
async fn refusing_long_prompts_costs_no_memory() {
    let before = kn::device::peak_memory_mib();
    long_prompts_are_refused().await;
    assert!(
        kn::device::peak_memory_mib() - before < 64.0,
        "refusing long prompts must not cost memory: peak grew {:.0} MiB",
        kn::device::peak_memory_mib() - before
    );
}

/// A prompt longer than the server's budget (the fixtures' own context is
/// 128 tokens; SmolLM2's 8,192 is in smollm2.rs): refused before any work,
/// naming the limit; past the model's own context, with the model's limit.
async fn long_prompts_are_refused() {
    let mut st = state(&["tiny-llama", "tiny-bert"], None);
    st.limits.max_tokens = 24;
    let app = app_of(st);
    let long = format!("{} is [MASK].", "the capital of France ".repeat(10));
    for uri in ["/api/analyze", "/api/jobs/analyze"] {
        let body = serde_json::json!({"target": "Paris", "prompts": [long]}).to_string();
        expect_error(
            &app,
            "POST",
            uri,
            &body,
            S::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "at most 24 tokens per prompt (kn serve --max-tokens)",
        )
        .await;
    }
    let body = serde_json::json!({"prompt": long}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/predict",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "--max-tokens",
    )
    .await;
    let update = serde_json::json!({"target": "Paris", "new_target": "France", "prompts": [long]})
        .to_string();
    expect_error(
        &app,
        "POST",
        "/api/edits/update",
        &update,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "--max-tokens",
    )
    .await;
    // Past the model's own context: refused too, with the model's limit.
    let digits = digits(2000);
    let body = serde_json::json!({"target": "Paris", "prompts": [format!("{digits} is [MASK].")]})
        .to_string();
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "prompt_too_long",
        "at most 128",
    )
    .await;
}

#[tokio::test]
async fn every_cost_is_bounded_before_work_starts() {
    long_prompts_are_refused().await;
    let app = app_of(state(&["tiny-llama", "tiny-bert"], None));
    // Steps 10,000; a work budget; list lengths.
    let p = "The capital of France is [MASK].";
    let body = serde_json::json!({"target": "Paris", "prompts": [p], "steps": 10000}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/jobs/analyze",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "steps (m) is 10000; this server allows at most 200 (kn serve --max-steps)",
    )
    .await;
    let many: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "The capital{} of France is [MASK].",
                " truly".repeat(i % 20)
            )
        })
        .collect();
    let body = serde_json::json!({"target": "Paris", "prompts": many, "steps": 200}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/jobs/analyze",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "work units",
    )
    .await;
    let body = serde_json::json!({"target": "Paris", "prompts": vec![p; 51]}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/analyze",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "number of prompts is 51",
    )
    .await;
    let neurons: Vec<_> = (0..513)
        .map(|i| serde_json::json!({"layer": 0, "index": i % 64}))
        .collect();
    let body = serde_json::json!({"neurons": neurons}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/edits/erase",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "number of neurons is 513",
    )
    .await;
    let eval: Vec<_> = (0..101)
        .map(|_| serde_json::json!({"prompt": p, "target": "Paris"}))
        .collect();
    let body = serde_json::json!({"neurons": [{"layer": 0, "index": 1}], "eval": eval}).to_string();
    expect_error(
        &app,
        "POST",
        "/api/edits/erase",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "evaluation prompts: 101",
    )
    .await;
    let body = r#"{"relation": "P36", "facts": 200}"#;
    expect_error(
        &app,
        "POST",
        "/api/jobs/erase-relation",
        body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "facts is 200",
    )
    .await;
}

#[tokio::test]
async fn lambdas_must_be_finite_and_bounded() {
    let app = app_of(state(&["tiny-llama", "tiny-bert"], None));
    let p = "The capital of France is [MASK].";
    // λ must be finite and bounded: 1e39 once made the shared model NaN for everyone.
    let upd = |l2: &str| {
        format!(
            r#"{{"target": "Paris", "new_target": "France", "prompts": ["{p}"], "steps": 2, "lambda2": {l2}}}"#
        )
    };
    expect_error(
        &app,
        "POST",
        "/api/edits/update",
        &upd("1e39"),
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "|λ2| ≤ 100",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/jobs/update-fact",
        &upd("-1e39"),
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "λ2",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/edits/update",
        &upd("1e400"),
        S::BAD_REQUEST,
        "malformed_json",
        "number out of range",
    )
    .await;
    expect_error(
        &app,
        "POST",
        "/api/edits/update",
        &upd("NaN"),
        S::BAD_REQUEST,
        "malformed_json",
        "request body",
    )
    .await;
    let body =
        format!(r#"{{"target": "Paris", "new_target": "France", "prompts": ["{p}"], "k": 1000}}"#);
    expect_error(
        &app,
        "POST",
        "/api/edits/update",
        &body,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "k is 1000",
    )
    .await;
    // The server still answers, and the limits are published.
    let (s, b) = call(&app, "GET", "/api/limits", Body::empty()).await;
    assert_eq!(s, S::OK);
    let limits: kn_shared::Limits = serde_json::from_slice(&b).unwrap();
    assert_eq!((limits.max_tokens, limits.max_steps), (128, 200));
    let (s, b) = call(&app, "GET", "/api/openapi.json", Body::empty()).await;
    assert_eq!(s, S::OK);
    let doc: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let text = doc["info"]["description"].as_str().unwrap();
    assert!(
        text.contains("128 tokens per prompt") && text.contains("200 integration steps"),
        "{text}"
    );
    assert!(doc["paths"].get("/api/limits").is_some());
}

#[tokio::test]
async fn long_prompts_within_the_limit_run_in_bounded_passes() {
    // A prompt of ~120 tokens at 200 steps: the engine splits the 201 × layers
    // scaled copies into passes of at most MAX_ROW_TOKENS copies × tokens
    // (tests/attribution.rs holds the split to the unsplit numbers).
    let mut st = state(&["tiny-llama"], None);
    st.limits.max_work = 10_000_000;
    let app = app_of(st);
    let words = "and the capital city of France ".repeat(19);
    let prompt = format!("{words}is [MASK].");
    let body =
        serde_json::json!({"target": "Paris", "prompts": [prompt], "steps": 200}).to_string();
    let (s, b) = call(&app, "POST", "/api/analyze", body).await;
    assert_eq!(s, S::OK, "{}", String::from_utf8_lossy(&b));
}

fn guarded(access: Access) -> axum::Router {
    let mut st = state(&["tiny-llama"], None);
    st.access = access;
    app_of(st)
}

#[tokio::test]
async fn only_our_own_origin_may_change_anything() {
    let app = guarded(Access::for_address("127.0.0.1:8080".parse().unwrap(), None, None).unwrap());
    let body = r#"{"prompt": "The capital of France is [MASK]."}"#;
    let ours = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/json"),
    ];
    let (s, b) = call_with(&app, "POST", "/api/predict", &ours, body).await;
    assert_eq!(s, S::OK, "{}", String::from_utf8_lossy(&b));
    let local = [
        ("host", "localhost:8080"),
        ("content-type", "application/json"),
        ("origin", "http://localhost:8080"),
    ];
    assert_eq!(
        call_with(&app, "POST", "/api/predict", &local, body)
            .await
            .0,
        S::OK
    );

    // A page elsewhere posting text/plain JSON (no CORS preflight needed).
    let evil = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "text/plain"),
        ("origin", "http://evil.example"),
    ];
    let (s, b) = call_with(&app, "POST", "/api/predict", &evil, body).await;
    check_error(
        "/api/predict",
        body,
        s,
        &b,
        S::FORBIDDEN,
        "cross_origin",
        "evil.example",
    );
    let cross = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/json"),
        ("sec-fetch-site", "cross-site"),
    ];
    let (s, b) = call_with(&app, "POST", "/api/jobs/analyze", &cross, body).await;
    check_error(
        "/api/jobs/analyze",
        body,
        s,
        &b,
        S::FORBIDDEN,
        "cross_origin",
        "Sec-Fetch-Site",
    );
    let null = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/json"),
        ("origin", "null"),
    ];
    assert_eq!(
        call_with(&app, "DELETE", "/api/jobs/0123456789abcdef0123", &null, "")
            .await
            .0,
        S::FORBIDDEN
    );
    // Our origin, but not JSON: a form could send it, so it is refused.
    let plain = [("host", "127.0.0.1:8080"), ("content-type", "text/plain")];
    let (s, b) = call_with(&app, "POST", "/api/predict", &plain, body).await;
    check_error(
        "/api/predict",
        body,
        s,
        &b,
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );
    // DNS rebinding: a name that resolves to us is still not our Host.
    let rebound = [("host", "evil.example:8080")];
    let (s, b) = call_with(&app, "GET", "/api/models", &rebound, Body::empty()).await;
    check_error(
        "/api/models",
        "",
        s,
        &b,
        S::FORBIDDEN,
        "bad_host",
        "--public-url",
    );
}

#[tokio::test]
async fn beyond_loopback_a_token_is_required() {
    let token = "0123456789abcdef0123";
    let app = guarded(
        Access::for_address(
            "0.0.0.0:9000".parse().unwrap(),
            Some("https://kn.lab.example"),
            Some(token.into()),
        )
        .unwrap(),
    );
    let host = ("host", "kn.lab.example");
    let (s, b) = call_with(&app, "GET", "/api/models", &[host], Body::empty()).await;
    check_error(
        "/api/models",
        "",
        s,
        &b,
        S::UNAUTHORIZED,
        "unauthorized",
        "token",
    );
    assert_eq!(
        call_with(&app, "GET", "/api/health", &[host], Body::empty())
            .await
            .0,
        S::OK
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        call_with(
            &app,
            "GET",
            "/api/models",
            &[host, ("authorization", &bearer)],
            Body::empty()
        )
        .await
        .0,
        S::OK
    );
    let wrong = "Bearer 0123456789abcdef0124".to_string();
    assert_eq!(
        call_with(
            &app,
            "GET",
            "/api/models",
            &[host, ("authorization", &wrong)],
            Body::empty()
        )
        .await
        .0,
        S::UNAUTHORIZED
    );
    // The browser's way in: /?token= sets a cookie and drops the token from the address.
    let req = axum::http::Request::builder()
        .uri(format!("/?token={token}"))
        .header("host", "kn.lab.example")
        .body(Body::empty())
        .unwrap();
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), S::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(
        call_with(
            &app,
            "GET",
            "/api/models",
            &[host, ("cookie", &pair)],
            Body::empty()
        )
        .await
        .0,
        S::OK
    );
}

#[test]
fn a_server_beyond_loopback_without_a_token_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kn"))
        .args([
            "serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu", "--model",
        ])
        .arg(fixture("tiny-llama"))
        .env_remove("KN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token"), "{err}");
}
