//! The methods lab: several attribution methods on the fact of the page (its
//! answer and paraphrases), judged by what their top-k neurons do when
//! suppressed and amplified, on the fact's prompts and on an unrelated fact's.
//! The result has a permalink like an analysis (`/r/<id>`).

use crate::api::{self, Failure};
use crate::specificity::MethodsSpecificity;
use crate::state::{lines, Page};
use crate::ui::{self, Cell, FieldError, Help, SortTable};
use crate::{charts, Workbench};
use kn_shared::methods::{MethodsReport, MethodsRequest};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The comparison on the page: nothing yet, or its id and report, or why not.
pub type Outcome = RwSignal<Option<Result<(String, MethodsReport), Failure>>>;

const METHODS: [(&str, &str); 6] = [
    ("ig", "integrated gradients (the paper)"),
    (
        "ig-masked-baseline",
        "IG from the masked prompt (AMIG's baseline)",
    ),
    ("activation", "activation (the paper's baseline)"),
    ("grad-x-act", "activation × gradient"),
    (
        "logprob-increase",
        "log-probability increase (Yu & Ananiadou 2024)",
    ),
    ("random", "random (control)"),
];

/// Which field a comparison error belongs under.
fn field_of(e: &Failure) -> &'static str {
    let m = e.message.as_str();
    match () {
        _ if m.contains("unrelated") => "unrelated",
        _ if m.contains("method") => "methods",
        _ if m.contains("k ") || m.contains("k values") => "ks",
        _ if m.contains("prompt") => "prompts",
        _ => "form",
    }
}

/// The form's request for the answer `target` and the `methods` ticked.
fn methods_request(page: Page, target: String, methods: Vec<String>) -> MethodsRequest {
    let model = page.model.get_untracked();
    let unrelated_prompts = lines(&page.unrelated_prompts.get_untracked());
    let unrelated_target = page.unrelated_target.get_untracked().trim().to_string();
    MethodsRequest {
        model: (!model.is_empty()).then_some(model),
        target,
        prompts: lines(&page.prompts.get_untracked()),
        answer_positions: page.answer_positions(),
        methods,
        ks: page
            .ks
            .get_untracked()
            .split(',')
            .map(|k| k.trim().parse().unwrap_or(0))
            .collect(),
        unrelated_target: (!unrelated_target.is_empty() && !unrelated_prompts.is_empty())
            .then_some(unrelated_target),
        unrelated_prompts: if page.unrelated_target.get_untracked().trim().is_empty() {
            vec![]
        } else {
            unrelated_prompts
        },
        controls: same_relation(page),
        steps: page.steps.get_untracked().trim().parse().unwrap_or(0),
        t: page.t.get_untracked().trim().parse().unwrap_or(f64::NAN),
        p: page.p.get_untracked().trim().parse().unwrap_or(f64::NAN),
        min_prompts: 1,
        seed: 0,
        edits: page.edit_ids(),
    }
}

/// The page's control of the same relation (the unrelated fact is the other
/// relation's), unless it is empty or the fact itself.
fn same_relation(page: Page) -> Vec<kn_shared::ControlFact> {
    let c = kn_shared::ControlFact {
        kind: "same relation".into(),
        target: page.same_target.get_untracked().trim().to_string(),
        prompts: lines(&page.same_prompts.get_untracked()),
    };
    let fact = (
        page.target.get_untracked(),
        lines(&page.prompts.get_untracked()),
    );
    let usable = !c.target.is_empty()
        && !c.prompts.is_empty()
        && !crate::analysis::is_the_fact(&c, &fact.0, &fact.1);
    if usable {
        vec![c]
    } else {
        vec![]
    }
}

/// Keep the address on the comparison's permalink (its fields in the query).
fn show_permalink(id: &str) {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let url = format!("/r/{id}{search}");
    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

#[component]
pub fn MethodsSection(page: Page, bench: Workbench, outcome: Outcome) -> impl IntoView {
    let running = RwSignal::new(false);
    let job = RwSignal::new(None::<kn_shared::JobStatus>);
    let chosen = move || -> Vec<String> {
        page.methods
            .get()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let toggle = move |name: &'static str, on: bool| {
        let mut list: Vec<String> = chosen();
        list.retain(|m| m != name);
        if on {
            list.push(name.to_string());
        }
        // Keep the table's order, whatever the clicking order.
        let order = |m: &String| METHODS.iter().position(|(n, _)| n == m).unwrap_or(99);
        list.sort_by_key(order);
        page.methods.set(list.join(","));
    };
    let run = move || {
        let target = page.target.get_untracked().trim().to_string();
        if target.is_empty() {
            bench.target_error.set(Some(
                "Give the answer whose neurons to compare (e.g. Paris).".into(),
            ));
            ui::scroll_to("fact-bar");
            return;
        }
        let req = methods_request(page, target, chosen());
        running.set(true);
        outcome.set(None);
        ui::scroll_to("methods-progress-box");
        spawn_local(async move {
            let r = api::methods_job(&req, move |s| job.set(Some(s))).await;
            job.set(None);
            if let Ok((id, _)) = &r {
                show_permalink(id);
                ui::scroll_to("methods-result");
            }
            outcome.set(Some(r));
            running.set(false);
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        run();
    };
    let error_for = move |field: &'static str| {
        Signal::derive(move || match outcome.get() {
            Some(Err(e)) if field_of(&e) == field => Some(e.message),
            _ => None,
        })
    };
    view! {
        <section class="panel wide" id="methods-section" aria-labelledby="methods-title">
            <form id="methods-form" novalidate on:submit=submit>
                <h2 id="methods-title">"Compare attribution methods "
                    <Help id="methods" text="Runs several ways of scoring neurons on the fact above (its answer and the paraphrases of the analysis form), then suppresses (×0) and amplifies (×2) each method's top-k neurons and measures the answer's probability. A method whose neurons also move an unrelated fact's answer has found neurons that matter to the model, not to this fact. Definitions: docs/methods.md." /></h2>
                <fieldset id="method-boxes">
                    <legend>"Methods"</legend>
                    {METHODS.iter().map(|&(name, label)| {
                        let (for_id, input_id) = (format!("method-{name}"), format!("method-{name}"));
                        view! {
                            <label class="check" for=for_id>
                                <input type="checkbox" id=input_id prop:checked=move || chosen().iter().any(|m| m == name)
                                    on:change=move |ev| toggle(name, event_target_checked(&ev)) />
                                {label}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
                <FieldError id="methods-error" error=error_for("methods") />
                <div class="row3">
                    <div>
                        <label for="ks">"Top-k neurons to intervene on (comma-separated)"</label>
                        <input id="ks" type="text" prop:value=move || page.ks.get() on:input=move |ev| page.ks.set(event_target_value(&ev)) />
                        <FieldError id="ks-error" error=error_for("ks") />
                    </div>
                    <div>
                        <label for="unrelated-target">"Unrelated fact's answer"</label>
                        <input id="unrelated-target" type="text" prop:value=move || page.unrelated_target.get() on:input=move |ev| page.unrelated_target.set(event_target_value(&ev)) />
                    </div>
                    <div>
                        <label for="unrelated-prompts">"Its prompts, one per line"</label>
                        <textarea id="unrelated-prompts" rows="2" prop:value=move || page.unrelated_prompts.get() on:input=move |ev| page.unrelated_prompts.set(event_target_value(&ev))></textarea>
                    </div>
                </div>
                <FieldError id="unrelated-error" error=error_for("unrelated") />
                <p class="hint" id="methods-controls-hint">{move || {
                    let same = page.same_target.get();
                    if same.trim().is_empty() {
                        "The unrelated fact is the only control; set a fact of the same relation in the analysis's controls to test that too.".to_string()
                    } else {
                        format!("Each method's top k is also suppressed on the analysis's same-relation control ({}), with 95% intervals.", same.trim())
                    }
                }}</p>
                <FieldError id="methods-prompts-error" error=error_for("prompts") />
                <button id="compare" type="submit" disabled=move || running.get()>
                    {move || if running.get() { "Comparing…" } else { "Compare methods" }}
                </button>
                <div id="methods-progress-box">
                    {move || running.get().then(|| view! {
                        <ui::JobProgress job=job bar_id="methods-progress" cancel_id="cancel-methods" what="methods" />
                    })}
                </div>
                <FieldError id="methods-form-error" error=error_for("form") />
            </form>
            {move || match outcome.get() {
                Some(Ok((id, r))) => view! { <MethodsView id=id r=r /> }.into_any(),
                _ => ().into_any(),
            }}
        </section>
    }
}

/// Named lines of a chart: (method, change in % for each k).
type Series = Vec<(String, Vec<f64>)>;

fn pct(x: Option<f64>) -> Cell {
    match x {
        Some(v) => Cell::num(format!("{:+.1}%", 100.0 * v), v),
        None => Cell::text("–"),
    }
}

/// The effects as CSV: one row per method and k.
fn effects_csv(r: &MethodsReport) -> String {
    let mut out = String::from("method,k,suppress,amplify,suppress_unrelated,amplify_unrelated\n");
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for m in &r.methods {
        for e in &m.by_k {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                m.method,
                e.k,
                e.suppress,
                e.amplify,
                opt(e.suppress_unrelated),
                opt(e.amplify_unrelated)
            ));
        }
    }
    out
}

/// A curve chart of the comparison: its id, title and lines.
type ChartSpec = (&'static str, &'static str, Series);

/// Rows of a sortable table: the neuron a row selects, and its cells.
type Rows = Vec<(Option<kn_shared::Neuron>, Vec<Cell>)>;

/// Per method: its cost and what it found.
fn cost_rows(r: &MethodsReport) -> Rows {
    r.methods
        .iter()
        .map(|m| {
            let best = m.top.first().map(|n| n.to_string()).unwrap_or_default();
            (
                None,
                vec![
                    Cell::text(m.method.clone()),
                    Cell::num(format!("{:.2}", m.seconds), m.seconds),
                    Cell::num(format!("{:.1}", m.gflop), m.gflop),
                    m.refined.as_ref().map_or(Cell::text("–"), |s| {
                        Cell::num(s.len().to_string(), s.len() as f64)
                    }),
                    Cell::text(best),
                ],
            )
        })
        .collect()
}

/// Per method and k: the effects (on the unrelated fact too, when there is one).
fn effect_table(r: &MethodsReport) -> (Vec<&'static str>, Rows) {
    let mut headers = vec!["method", "k", "suppress", "amplify"];
    let any_unrelated = !r.unrelated_prompts.is_empty();
    if any_unrelated {
        headers.extend(["suppress, unrelated", "amplify, unrelated"]);
    }
    let rows = r
        .methods
        .iter()
        .flat_map(|m| {
            m.by_k.iter().map(move |e| {
                let mut cells = vec![
                    Cell::text(m.method.clone()),
                    Cell::num(e.k.to_string(), e.k as f64),
                    pct(Some(e.suppress)),
                    pct(Some(e.amplify)),
                ];
                if any_unrelated {
                    cells.extend([pct(e.suppress_unrelated), pct(e.amplify_unrelated)]);
                }
                (None, cells)
            })
        })
        .collect();
    (headers, rows)
}

#[component]
pub fn MethodsView(id: String, r: MethodsReport) -> impl IntoView {
    let name = format!("kn-{id}-methods");
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    let csv = effects_csv(&r);
    let series =
        |pick: fn(&kn_shared::methods::KEffect) -> Option<f64>| -> Vec<(String, Vec<f64>)> {
            r.methods
                .iter()
                .filter(|m| m.by_k.iter().all(|e| pick(e).is_some()))
                .map(|m| {
                    let v = m
                        .by_k
                        .iter()
                        .map(|e| 100.0 * pick(e).unwrap_or(0.0))
                        .collect();
                    (m.method.clone(), v)
                })
                .collect()
        };
    let charts_spec: Vec<ChartSpec> = [
        (
            "suppress-curve",
            "Suppress (×0) top-k: change of P(answer)",
            series(|e| Some(e.suppress)),
        ),
        (
            "amplify-curve",
            "Amplify (×2) top-k: change of P(answer)",
            series(|e| Some(e.amplify)),
        ),
        (
            "suppress-unrelated-curve",
            "Suppress (×0) top-k: unrelated fact",
            series(|e| e.suppress_unrelated),
        ),
    ]
    .into_iter()
    .filter(|c| !c.2.is_empty())
    .collect();
    let ks = r.ks.clone();
    let any_unrelated = !r.unrelated_prompts.is_empty();
    let (effect_headers, effect_rows) = effect_table(&r);
    let names: Vec<String> = r.methods.iter().map(|m| m.method.clone()).collect();
    let matrix = |cell: &dyn Fn(usize, usize) -> String| {
        let names = names.clone();
        view! {
            <table class="matrix">
                <thead><tr><th></th>{names.iter().map(|n| view! { <th>{n.clone()}</th> }).collect_view()}</tr></thead>
                <tbody>{names.iter().enumerate().map(|(i, n)| view! {
                    <tr><th>{n.clone()}</th>{(0..names.len()).map(|j| view! { <td class="num">{cell(i, j)}</td> }).collect_view()}</tr>
                }).collect_view()}</tbody>
            </table>
        }
    };
    let jaccard = r.jaccard.clone();
    let spearman = r.spearman.clone();
    let mean_p = r.p_target.iter().sum::<f64>() / r.p_target.len().max(1) as f64;
    let report = r.clone();
    view! {
        <div id="methods-result" class="result">
            <p id="methods-summary">{format!(
                "{:?} on {} prompt(s), mean P(answer) {}{}. ",
                r.target, r.prompts.len(), ui::prob(mean_p),
                if any_unrelated { format!("; unrelated: {} prompt(s)", r.unrelated_prompts.len()) } else { String::new() }
            )}"Permalink: "<a id="methods-permalink" href=format!("/r/{id}")>{format!("/r/{id}")}</a></p>
            <h3>"Cost and what each method found"</h3>
            <SortTable id="methods-cost" headers=vec!["method", "seconds", "GFLOP", "refined neurons", "top neuron"] rows=cost_rows(&r) />
            <div class="compare">
                {charts_spec.into_iter().map(|(cid, title, s)| {
                    let node = NodeRef::<html::Div>::new();
                    let width = ui::width_of(node, 520);
                    let ks = ks.clone();
                    let plot = Memo::new(move |_| charts::k_curves(title, &ks, &s, width.get()));
                    let (csv, json, name) = (csv.clone(), json.clone(), format!("{name}-{cid}"));
                    view! {
                        <figure class="chart" id=cid>
                            <div class="svg" role="img" aria-label=format!("{title} (the numbers are in the table below)") node_ref=node inner_html=move || plot.get().svg></div>
                            <figcaption>{title}
                                {move || view! { <ui::Exports svg=plot.get().svg data_name=name.clone() csv=csv.clone() json=json.clone() /> }}
                            </figcaption>
                        </figure>
                    }
                }).collect_view()}
            </div>
            <h3>"Effects by k"</h3>
            <SortTable id="methods-effects" headers=effect_headers rows=effect_rows />
            <MethodsSpecificity r=report />
            <div class="compare">
                <div id="jaccard">
                    <h3>"Jaccard of refined sets " <Help id="jaccard" text="|A ∩ B| / |A ∪ B| of two methods' refined neuron sets (the paper's t and p applied to each method's scores). – where a set is missing (random) or both are empty." /></h3>
                    {matrix(&move |i, j| jaccard[i][j].map_or("–".into(), |x| format!("{x:.2}")))}
                </div>
                <div id="spearman">
                    <h3>"Spearman of mean scores " <Help id="spearman" text="Rank correlation of two methods' mean scores over every neuron of every layer: 1 = the same ranking." /></h3>
                    {matrix(&move |i, j| format!("{:.2}", spearman[i][j]))}
                </div>
            </div>
        </div>
    }
}
