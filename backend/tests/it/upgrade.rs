//! Upgrades: a result store written by an earlier release opens with today's
//! code. `tests/fixtures/store-v1` holds one stored result of every kind
//! (analyses on a masked and a causal model, one on an edit set, an update, an
//! erase, a relation erasure, a methods comparison) and the edit sets they
//! made, written by `scripts/make_store_fixture.py` with the release its
//! manifest names. Every result must reopen under its id with the same JSON,
//! and, its numbers evicted, be planned again under the same id (a request's
//! id is a hash of its canonical form, so a change to a request type that
//! moves ids fails here) and recomputed to the same numbers.

use crate::common::api::*;
use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use kn_shared::JobStatus;
use serde_json::Value;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// A copy of the fixture store (tests never write the committed file).
fn copy_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("results.sqlite"),
        dir.path().join("results.sqlite"),
    )
    .unwrap();
    dir
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The stored rows: `(id, kind, request, result)` as the release wrote them.
fn rows(dir: &std::path::Path) -> Vec<(String, String, Value, Value)> {
    let conn = rusqlite::Connection::open(dir.join("results.sqlite")).unwrap();
    let mut st = conn
        .prepare("SELECT id, kind, request, result FROM results ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })
    .unwrap()
    .map(|r| {
        let (id, kind, req, res) = r.unwrap();
        (
            id,
            kind,
            serde_json::from_str(&req).unwrap(),
            serde_json::from_str(&res).unwrap(),
        )
    })
    .collect()
}

/// The output field of a stored result's JSON for its kind.
fn output_of(kind: &str) -> &'static str {
    match kind {
        "analyze" => "result",
        "methods" => "methods",
        _ => "edit",
    }
}

/// Output fields added since the store fixture's release: an erase's own
/// outcome (`erase`), a methods k-effect's specificity (`specificity`).
const ADDED: [&str; 2] = ["erase", "specificity"];

/// `a` and `b` are the same JSON up to float rounding (1e-4 relative),
/// timings (`seconds`), which a recomputation changes, and where the model
/// was loaded from.
fn close(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(y.abs()) + 1e-7,
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                close(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| {
                m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
            };
            // A recomputation may fill fields this release added to an old
            // kind's output; every field the store had is still there.
            let (now, then) = (keys(x), keys(y));
            let added: Vec<_> = now.difference(&then).collect();
            assert!(
                then.is_subset(&now) && added.iter().all(|k| ADDED.contains(&k.as_str())),
                "{at}: fields {then:?} then, {now:?} now"
            );
            for (k, v) in y {
                if k != "seconds" {
                    close(&x[k], v, &format!("{at}.{k}"));
                }
            }
        }
        // A model's name is the path it was loaded from, which differs
        // between checkouts: its last component is the model.
        (Value::String(x), Value::String(y)) if x.contains('/') && y.contains('/') => {
            let last = |p: &str| p.rsplit('/').next().unwrap_or_default().to_string();
            assert_eq!(last(x), last(y), "{at}");
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// A stored result as this release serves it: a model summary saved before
/// precisions were named says f32 for both (the only precision there was).
fn with_precision(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            if m.contains_key("arch") && m.contains_key("d_ff") {
                for k in ["storage", "compute"] {
                    m.entry(k).or_insert_with(|| "f32".into());
                }
            }
            for (_, x) in m.iter_mut() {
                *x = with_precision(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = with_precision(x.take());
            }
        }
        _ => {}
    }
    v
}

#[tokio::test]
async fn a_store_from_the_last_release_reopens_and_recomputes_under_the_same_ids() {
    let m = manifest();
    for (name, fp) in m["fingerprints"].as_object().unwrap() {
        let model = kn::load_model(&fixture(name), cpu()).unwrap();
        assert_eq!(
            Some(kn::engine::edit::fingerprint(&model).as_str()),
            fp.as_str(),
            "the fixture model {name} is not the one the store was written on: scripts/make_fixtures.py changed it, so regenerate the store with the release it stands for (scripts/make_store_fixture.py)"
        );
    }
    let dir = copy_store();
    let stored = rows(dir.path());
    let listed = m["results"].as_array().unwrap();
    assert_eq!(
        stored.len(),
        listed.len(),
        "every result of the manifest is stored"
    );
    let kinds: std::collections::BTreeSet<&str> = stored.iter().map(|r| r.1.as_str()).collect();
    for kind in kn_shared::ResultKind::ALL {
        assert!(
            kinds.contains(kind.name()),
            "the store holds a result of kind {kind}"
        );
    }
    let app = app_of(state(&["tiny-bert", "tiny-llama"], Some(dir.path())));

    // Reopened: the same JSON as stored, under the same id.
    for (id, kind, request, result) in &stored {
        let (s, b) = call(&app, "GET", &format!("/api/results/{id}"), Body::empty()).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{kind} {id}: {}",
            String::from_utf8_lossy(&b)
        );
        let got: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            (got["id"].as_str(), got["kind"].as_str()),
            (Some(id.as_str()), Some(kind.as_str()))
        );
        assert_eq!(&got["request"], request, "{kind} {id}: the request");
        assert_eq!(
            got[output_of(kind)],
            with_precision(result.clone()),
            "{kind} {id}: the numbers"
        );
    }

    // Evicted: planned again from the stored request under the same id (a
    // 202 names the job, whose id is the plan's), then recomputed.
    let conn = rusqlite::Connection::open(dir.path().join("results.sqlite")).unwrap();
    conn.execute("UPDATE results SET result = NULL", [])
        .unwrap();
    for (id, kind, request, result) in &stored {
        let (s, b) = call(&app, "GET", &format!("/api/results/{id}"), Body::empty()).await;
        assert_eq!(
            s,
            StatusCode::ACCEPTED,
            "{kind} {id}: planned again under its id: {}",
            String::from_utf8_lossy(&b)
        );
        let job: JobStatus = serde_json::from_slice(&b).unwrap();
        assert_eq!(&job.id, id);
        let end = events(&app, id).await.pop().unwrap();
        assert_eq!(end.state.name(), "done", "{kind} {id}: {end:?}");
        let (s, b) = call(&app, "GET", &format!("/api/results/{id}"), Body::empty()).await;
        assert_eq!(s, StatusCode::OK);
        let got: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(&got["request"], request);
        close(
            &got[output_of(kind)],
            &with_precision(result.clone()),
            &format!("{kind} {id}"),
        );
    }
}
