//! `POST /api/jobs/methods`: the methods lab as a job, stored under a permalink
//! whose numbers are the library's, on the edit sets the request names, with
//! its cost checked before it is queued.

use crate::common::api::*;
use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use kn::engine::attribution::Options;
use kn::engine::methods_lab::{compare, Comparison, Method};
use kn::engine::selection::Thresholds;
use kn::engine::Query;
use kn_shared::{JobStatus, StoredResult};

const PROMPTS: [&str; 2] = [
    "The capital of France is [MASK].",
    "France's capital is [MASK].",
];

fn body(extra: serde_json::Value) -> String {
    let mut b = serde_json::json!({
        "target": "Paris", "prompts": PROMPTS, "steps": 4, "ks": [1, 3],
        "unrelated_target": "Berlin", "unrelated_prompts": ["The capital of Germany is [MASK]."],
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

#[tokio::test]
async fn a_comparison_runs_as_a_job_and_reopens_from_its_permalink() {
    let app = app_of(state(&["tiny-llama"], None));
    let (s, b) = call(
        &app,
        "POST",
        "/api/jobs/methods",
        body(serde_json::json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(job.total, 6, "one unit of progress per method");
    let evs = events(&app, &job.id).await;
    assert_eq!(evs.last().unwrap().state.name(), "done", "{evs:?}");
    let (s, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", job.id),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let stored: StoredResult = serde_json::from_slice(&b).unwrap();
    assert_eq!(stored.kind().name(), "methods");
    let r = stored.methods().unwrap().clone();
    assert_eq!(r.request.as_ref().unwrap().prompts, PROMPTS);

    // The library, on the same model and request, gives the same top neurons
    // and the same effects (the timings differ).
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let qs: Vec<Query> = PROMPTS
        .iter()
        .map(|p| Query::new(&m, p, "Paris").unwrap())
        .collect();
    let other = [Query::new(&m, "The capital of Germany is [MASK].", "Berlin").unwrap()];
    let opts = Options {
        steps: 4,
        ..Options::default()
    };
    let lib = compare(
        &m,
        &Comparison {
            methods: &Method::ALL,
            target: "Paris",
            queries: &qs,
            unrelated: &other,
            unrelated_target: "Berlin",
            controls: &[],
            ks: &[1, 3],
            opts: &opts,
            thresholds: Thresholds::default(),
            seed: 0,
        },
        &mut |_| true,
    )
    .unwrap();
    for (a, b) in r.methods.iter().zip(&lib.methods) {
        assert_eq!(
            (&a.method, &a.top, &a.refined),
            (&b.method, &b.top, &b.refined)
        );
        assert_eq!(a.by_k, b.by_k);
    }
    assert_eq!(r.jaccard, lib.jaccard);

    // The same request again: stored, answered at once under the same id.
    let (s, b) = call(
        &app,
        "POST",
        "/api/jobs/methods",
        body(serde_json::json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let again: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (again.id.as_str(), again.state.name()),
        (job.id.as_str(), "done")
    );
    // Another method list is another computation.
    let (s, b) = call(
        &app,
        "POST",
        "/api/jobs/methods",
        body(serde_json::json!({"methods": ["ig"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let ig: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_ne!(ig.id, job.id);
    // (Jobs end before the test does: no libtorch work at process exit.)
    assert_eq!(
        events(&app, &ig.id).await.last().unwrap().state.name(),
        "done"
    );
}

/// Each method's top k suppressed on the unrelated fact and on a control of
/// the same relation, beside the fact, with intervals: the rows' changes are
/// the effects table's and the library's interventions', and a control that
/// is the fact itself is refused before any work.
#[tokio::test]
async fn a_comparison_judges_each_top_k_on_control_facts() {
    let app = app_of(state(&["tiny-llama"], None));
    let same = [
        "Germany's capital is [MASK].",
        "The capital city of Italy is [MASK].",
    ];
    let controls =
        serde_json::json!([{"kind": "same relation", "target": "Rome", "prompts": same}]);
    let req = body(serde_json::json!({"methods": ["ig", "activation"], "controls": controls}));
    let (s, b) = call(&app, "POST", "/api/jobs/methods", req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        events(&app, &job.id).await.last().unwrap().state.name(),
        "done"
    );
    let (_, b) = call(
        &app,
        "GET",
        &format!("/api/results/{}", job.id),
        Body::empty(),
    )
    .await;
    let stored: StoredResult = serde_json::from_slice(&b).unwrap();
    let r = stored.methods().unwrap().clone();

    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let qs: Vec<Query> = same
        .iter()
        .map(|p| Query::new(&m, p, "Rome").unwrap())
        .collect();
    for method in &r.methods {
        for e in &method.by_k {
            let s = e.specificity.as_ref().expect("controls give a specificity");
            let names: Vec<(&str, &str)> = s
                .rows
                .iter()
                .map(|x| (x.set.as_str(), x.target.as_str()))
                .collect();
            assert_eq!(
                names,
                [
                    ("this fact", "Paris"),
                    ("unrelated", "Berlin"),
                    ("same relation", "Rome")
                ]
            );
            assert!((s.rows[0].change - e.suppress).abs() < 1e-12);
            assert!((s.rows[1].change - e.suppress_unrelated.unwrap()).abs() < 1e-12);
            assert_eq!(s.rows[0].per_prompt.len(), PROMPTS.len());
            let lib = kn::engine::intervene::intervene(&m, &qs, &method.top[..e.k], 0.0).unwrap();
            // The judge runs every k in one batched pass (float rounding apart).
            let near = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs() + 1e-6;
            assert!(
                near(s.rows[2].change, lib.relative_change),
                "{s:?} vs {lib:?}"
            );
            for (x, p) in s.rows[2].per_prompt.iter().zip(&lib.prompts) {
                assert!(near(*x, (p.p_after - p.p_before) / p.p_before));
            }
            assert_verdict_follows_intervals(s);
        }
    }
    // Without controls the request (and its id) is what it always was.
    let plain: serde_json::Value = serde_json::to_value(r.request.as_ref().unwrap()).unwrap();
    assert!(plain.get("controls").is_some());
    let mut old = plain.clone();
    old.as_object_mut().unwrap().remove("controls");
    let back: kn_shared::methods::MethodsRequest = serde_json::from_value(old).unwrap();
    assert!(serde_json::to_value(&back)
        .unwrap()
        .get("controls")
        .is_none());

    // The fact as its own control is refused before any work.
    let itself =
        serde_json::json!([{"kind": "same relation", "target": "Paris", "prompts": [PROMPTS[1]]}]);
    expect_error(
        &app,
        "POST",
        "/api/jobs/methods",
        &body(serde_json::json!({"controls": itself})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "is the fact itself",
    )
    .await;
}

#[tokio::test]
async fn bad_comparisons_are_refused_before_any_work() {
    let app = app_of(state(&["tiny-llama"], None));
    use StatusCode as S;
    let cases: [(serde_json::Value, S, &str, &str); 6] = [
        (
            serde_json::json!({"methods": ["saliency"]}),
            S::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "unknown method `saliency`",
        ),
        (
            serde_json::json!({"methods": ["ig", "ig"]}),
            S::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "named twice",
        ),
        (
            serde_json::json!({"methods": []}),
            S::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "at least 1",
        ),
        (
            serde_json::json!({"ks": [0]}),
            S::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "k must be at least 1",
        ),
        (
            serde_json::json!({"ks": (1..=11).collect::<Vec<_>>()}),
            S::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "k values",
        ),
        (
            serde_json::json!({"unrelated_target": null}),
            S::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "go together",
        ),
    ];
    for (extra, status, code, words) in cases {
        expect_error(
            &app,
            "POST",
            "/api/jobs/methods",
            &body(extra),
            status,
            code,
            words,
        )
        .await;
    }
    // The work budget counts every method: IG alone fits where all five do not
    // (logprob-increase's head rows weigh the most).
    let mut st = state(&["tiny-llama"], None);
    st.limits.max_work = 200;
    let small = app_of(st);
    let all = body(serde_json::json!({}));
    expect_error(
        &small,
        "POST",
        "/api/jobs/methods",
        &all,
        S::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        "work units",
    )
    .await;
    let ig = body(serde_json::json!({"methods": ["ig"]}));
    let (s, b) = call(&small, "POST", "/api/jobs/methods", ig).await;
    assert_eq!(s, S::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let job: JobStatus = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        events(&small, &job.id).await.last().unwrap().state.name(),
        "done"
    );
}
