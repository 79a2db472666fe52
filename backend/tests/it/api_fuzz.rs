//! A property-based fuzz of the API, driven by its own OpenAPI document: for
//! every route, thousands of seeded random requests (bodies built from the
//! request schemas, then mutated: wrong types, missing and unknown fields,
//! huge and negative numbers, long and odd strings, ids seen in earlier
//! answers). The property: no 5xx, ever; the server answers at the end; and
//! the model still predicts exactly what it predicted at the start (no edit
//! leaked into the base weights).

use crate::common::api::*;
use axum::body::Body;
use axum::http::StatusCode;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// Requests sent (the test command runs this many; `KN_FUZZ_REQUESTS` overrides).
const DEFAULT_REQUESTS: usize = 5000;

struct Gen<'a> {
    rng: ChaCha8Rng,
    doc: &'a Value,
    /// Ids seen in answers (results, jobs, edit sets), to aim at real objects.
    ids: Vec<String>,
    /// Of which edit sets (to name in `edits`).
    edit_sets: Vec<String>,
    models: Vec<String>,
    /// Whether this request is built to be valid (values that make sense for
    /// each field) or mutated.
    clean: bool,
}

const PROMPTS: &[&str] = &[
    "The capital of France is [MASK].",
    "France's capital is [MASK].",
    "Paris is the capital of [MASK].",
    "[MASK]",
    "no blank here",
    "[MASK] [MASK]",
    "",
    " ",
    "The capital of France is [MASK] and more text",
    "Ünïcödé ✓ 東京 is [MASK].",
    "\u{0000}\u{ffff} [MASK]",
];
const WORDS: &[&str] = &[
    "Paris",
    "France",
    "London",
    "",
    " ",
    "Zyxwvutsrq",
    "zero",
    "unk",
    "right",
    "left",
    "P36",
    "P19",
    "P0",
    "P9999",
    "..",
    "../etc",
    "null",
    "NaN",
    "0123456789abcdef0123",
];

impl Gen<'_> {
    fn resolve<'b>(&'b self, schema: &'b Value) -> &'b Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                &self.doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// A sensible value for a field the API knows, in clean requests.
    fn sensible(&mut self, name: &str) -> Option<Value> {
        let r = &mut self.rng;
        Some(match name {
            "steps" => json!(r.random_range(1..9)),
            "k" => json!(r.random_range(1..5)),
            "top_k" => json!(r.random_range(1..20)),
            "t" => json!(r.random_range(0.05..0.6)),
            "p" => json!(r.random_range(0.2..0.95)),
            "min_prompts" => json!(1),
            "lambda1" | "lambda2" => json!(r.random_range(0.1..4.0)),
            "facts" => json!(r.random_range(1..3)),
            "top" => json!(r.random_range(1..10)),
            "seed" => json!(r.random_range(0..1000)),
            "riemann" => json!(["right", "left"][r.random_range(0..2)]),
            "with" => json!(["zero", "unk"][r.random_range(0..2)]),
            "target" | "new_target" => {
                json!(["Paris", "France", "London", "Rome"][r.random_range(0..4)])
            }
            "relation" => json!(["P36", "P19", "P103"][r.random_range(0..3)]),
            "prompt" => json!(PROMPTS[r.random_range(0..3)]),
            "layer" => json!(r.random_range(0..3)),
            "index" => json!(r.random_range(0..64)),
            "model" => json!(self.models.choose(r)?),
            "edits" => {
                let n = r.random_range(0..3).min(self.edit_sets.len());
                json!(self.edit_sets.choose_multiple(r, n).collect::<Vec<_>>())
            }
            _ => return None,
        })
    }

    fn string(&mut self, name: &str) -> Value {
        let r = self.rng.random_range(0..100);
        let s = match name {
            "prompt" => PROMPTS.choose(&mut self.rng).unwrap().to_string(),
            "model" if r < 70 && !self.models.is_empty() => {
                self.models.choose(&mut self.rng).unwrap().clone()
            }
            _ if r < 10 => "x".repeat(self.rng.random_range(200..20_000)),
            _ if r < 20 && !self.ids.is_empty() => self.ids.choose(&mut self.rng).unwrap().clone(),
            _ => WORDS.choose(&mut self.rng).unwrap().to_string(),
        };
        Value::String(s)
    }

    fn number(&mut self, integer: bool) -> Value {
        match self.rng.random_range(0..100) {
            0..=59 => json!(self.rng.random_range(0..6)),
            60..=69 => json!(self.rng.random_range(0..300)),
            70..=74 => json!(-1),
            75..=79 => json!(u64::MAX),
            80..=84 => json!(1e39),
            85..=89 if !integer => json!(self.rng.random::<f64>()),
            90..=94 => json!(10_000),
            _ => json!(0.5),
        }
    }

    /// A value for `schema`, usually valid, sometimes not.
    fn value(&mut self, schema: &Value, name: &str, depth: usize) -> Value {
        let schema = self.resolve(schema).clone();
        if depth > 6 {
            return Value::Null;
        }
        if self.clean {
            if let Some(v) = self.sensible(name) {
                return v;
            }
        } else if self.rng.random_range(0..100) < 3 {
            // A value of the wrong type.
            return [
                json!(null),
                json!(true),
                json!("x"),
                json!(7),
                json!([]),
                json!({}),
            ]
            .choose(&mut self.rng)
            .unwrap()
            .clone();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let pick = options.choose(&mut self.rng).unwrap().clone();
                return self.value(&pick, name, depth + 1);
            }
        }
        let ty = match schema.get("type") {
            Some(Value::Array(ts)) => {
                let ts: Vec<&Value> = ts.iter().filter(|t| *t != "null").collect();
                ts.first()
                    .and_then(|t| t.as_str())
                    .unwrap_or("null")
                    .to_string()
            }
            Some(Value::String(t)) => t.clone(),
            _ => {
                if schema.get("properties").is_some() {
                    "object".into()
                } else {
                    "string".into()
                }
            }
        };
        match ty.as_str() {
            "object" => self.object(&schema, depth),
            "array" => {
                let n = match self.rng.random_range(0..100) {
                    _ if self.clean => self.rng.random_range(1..4),
                    0..=9 => 0,
                    10..=84 => self.rng.random_range(1..5),
                    85..=94 => self.rng.random_range(5..30),
                    _ => self.rng.random_range(50..600),
                };
                let item = schema.get("items").cloned().unwrap_or(json!({}));
                let singular = name.trim_end_matches('s');
                (0..n)
                    .map(|_| self.value(&item, singular, depth + 1))
                    .collect()
            }
            "integer" => self.number(true),
            "number" => self.number(false),
            "boolean" => json!(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => {
                if name == "edit" && !self.ids.is_empty() {
                    json!(self.ids.choose(&mut self.rng).unwrap())
                } else {
                    self.string(name)
                }
            }
        }
    }

    fn object(&mut self, schema: &Value, depth: usize) -> Value {
        let required: Vec<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let needed = required.contains(k);
                let include = if needed {
                    self.clean || self.rng.random_range(0..100) >= 3
                } else {
                    self.rng.random_range(0..100) < 50
                };
                if include {
                    let v = self.value(v, k, depth + 1);
                    out.insert(k.clone(), v);
                }
            }
        }
        if !self.clean && self.rng.random_range(0..100) < 3 {
            out.insert("unexpected".into(), json!(1));
        }
        Value::Object(out)
    }

    fn path_param(&mut self) -> String {
        match self.rng.random_range(0..100) {
            0..=49 if !self.ids.is_empty() => self.ids.choose(&mut self.rng).unwrap().clone(),
            0..=59 => format!("{:020x}", self.rng.random::<u64>()),
            60..=69 => "P36".into(),
            70..=79 => "..".into(),
            80..=89 => "%00%ff".into(),
            _ => "x".repeat(self.rng.random_range(1..300)),
        }
    }
}

fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "id" {
                    if let Some(s) = x.as_str() {
                        if !out.iter().any(|o| o == s) {
                            out.push(s.to_string());
                        }
                    }
                }
                collect_ids(x, out);
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

/// Every operation of the OpenAPI document: method, path, body schema.
fn operations(doc: &Value) -> Vec<(String, String, Option<Value>)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
            ops.push((
                method.to_uppercase(),
                path.clone(),
                (!body.is_null()).then_some(body),
            ));
        }
    }
    ops
}

impl Gen<'_> {
    /// A URI for `path`, its parameters drawn (the dataset's `i`-th time with
    /// a query, half the time).
    fn uri(&mut self, path: &str, i: usize) -> String {
        let mut uri = String::new();
        for part in path.split('/') {
            if part.starts_with('{') {
                uri.push_str(&self.path_param());
            } else {
                uri.push_str(part);
            }
            uri.push('/');
        }
        uri.pop();
        if path == "/api/dataset/{relation}" && self.rng.random_bool(0.5) {
            uri.push_str(
                [
                    "?q=fr&limit=3",
                    "?limit=-1",
                    "?offset=99999999999",
                    "?limit=x",
                ][i % 4],
            );
        }
        uri
    }

    /// Keep the result and edit-set ids an answer names, for later requests.
    fn learn(&mut self, answer: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<Value>(answer) {
            collect_ids(&v, &mut self.ids);
            for e in [&v["edit"]["id"], &v["edit"]["edit"]["id"]] {
                if let Some(id) = e.as_str() {
                    if !self.edit_sets.iter().any(|x| x == id) {
                        self.edit_sets.push(id.to_string());
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_random_requests_never_get_a_5xx() {
    let n: usize = std::env::var("KN_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS);
    let mut st = state(&["tiny-llama", "tiny-bert"], None);
    // Small budgets keep the valid requests quick on the fixtures.
    st.limits.max_work = 20_000;
    st.limits.max_steps = 8;
    st.limits.max_facts = 3;
    let app = app_of(st);
    let (_, b) = call(&app, "GET", "/api/openapi.json", Body::empty()).await;
    let doc: Value = serde_json::from_slice(&b).unwrap();
    let (_, b) = call(&app, "GET", "/api/models", Body::empty()).await;
    let models: Vec<String> = serde_json::from_slice::<Vec<kn_shared::ModelSummary>>(&b)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    let probe = r#"{"prompt": "The capital of France is [MASK].", "top_k": 20}"#;
    let (_, start) = call(&app, "POST", "/api/predict", probe).await;

    let ops = operations(&doc);
    assert!(
        ops.len() >= 20,
        "the document lists {} operations",
        ops.len()
    );
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(2026),
        doc: &doc,
        ids: Vec::new(),
        edit_sets: Vec::new(),
        models,
        clean: false,
    };
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..n {
        let (method, path, body) = ops[i % ops.len()].clone();
        let uri = g.uri(&path, i);
        g.clean = g.rng.random_bool(0.5);
        let (text, ctype) = match &body {
            Some(schema) => match g.rng.random_range(0..100) {
                0..=2 if !g.clean => ("{\"prompt\": [MASK".to_string(), "application/json"),
                3..=4 if !g.clean => (g.value(schema, "", 0).to_string(), "text/plain"),
                _ => (g.value(schema, "", 0).to_string(), "application/json"),
            },
            None => (String::new(), "application/json"),
        };
        let (s, b) = call_with(
            &app,
            &method,
            &uri,
            &[("content-type", ctype)],
            text.clone(),
        )
        .await;
        assert!(
            !s.is_server_error(),
            "{method} {uri} {}: {s} {}",
            &text[..text.len().min(500)],
            String::from_utf8_lossy(&b)
        );
        *by_status.entry(s.as_u16()).or_default() += 1;
        if std::env::var("KN_FUZZ_VERBOSE").is_ok() {
            eprintln!(
                "{method} {path} -> {s}: {}",
                String::from_utf8_lossy(&b)
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
        }
        g.learn(&b);
        if method == "POST" && s == StatusCode::ACCEPTED && g.rng.random_bool(0.5) {
            // Follow some jobs to their end (and so past the worker's queue).
            if let Some(id) = serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v["id"].as_str().map(String::from))
            {
                let _ = events(&app, &id).await;
            }
        }
    }
    eprintln!("fuzz: {n} requests, answers by status: {by_status:?}");
    let (s, _) = call(&app, "GET", "/api/health", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    // Jobs may still fill the queue: wait for room.
    let end = loop {
        let (s, end) = call(&app, "POST", "/api/predict", probe).await;
        if s != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(s, StatusCode::OK);
            break end;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(end, start, "the base model is exactly as loaded");
    // Let the other model's worker finish its queued jobs too: a process that
    // exits while a worker thread is inside libtorch can crash in libtorch's
    // static destructors.
    let other = serde_json::json!({"model": crate::common::fixture("tiny-bert"), "prompt": "The capital of France is [MASK].", "top_k": 1}).to_string();
    loop {
        let (s, _) = call(&app, "POST", "/api/predict", other.clone()).await;
        if s != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(s, StatusCode::OK);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= n / 50,
        "enough requests were valid to reach the engine: {by_status:?}"
    );
}
