//! Find a fact's knowledge neurons: the form, its progress and its errors, and
//! directly under them the result (attribution heatmap, knowledge vs baseline,
//! suppress/amplify, the neuron card), all linked by the selected neuron.

use crate::api::{self, Failure};
use crate::heatmap::HeatmapView;
use crate::neuron::NeuronCardView;
use crate::specificity::SpecificityView;
use crate::state::{lines, Page};
use crate::ui::{self, Cell, Download, FieldError, Help, SortTable};
use crate::{charts, Workbench};
use kn_shared::{
    AnalysisResult, AnalyzeRequest, AnalyzeResponse, ControlFact, InterventionReport, ScoredNeuron,
};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The analysis on the page: nothing yet, loading, or its outcome.
pub type Outcome = RwSignal<Option<Result<AnalyzeResponse, Failure>>>;

/// Which field an analysis error belongs under.
fn field_of(e: &Failure) -> &'static str {
    // The engine's checks come as "invalid argument: p is 2; …".
    let m = e.message.as_str();
    let m = m.strip_prefix("invalid argument: ").unwrap_or(m);
    match e.code.as_str() {
        _ if m.starts_with("steps") || m.contains("steps (m)") => "steps",
        _ if m.contains("`t`") || m.starts_with("t ") || m.contains(" t = ") => "t",
        _ if m.contains("`p`") || m.starts_with("p ") => "p",
        "bad_prompt" | "prompt_too_long" => "prompts",
        _ if m.contains("prompt") => "prompts",
        _ => "form",
    }
}

#[component]
pub fn AnalysisSection(page: Page, bench: Workbench, outcome: Outcome) -> impl IntoView {
    let running = RwSignal::new(false);
    let job = RwSignal::new(None::<kn_shared::JobStatus>);
    let run = move || {
        let target = page.target.get_untracked().trim().to_string();
        if target.is_empty() {
            bench.target_error.set(Some(
                "Give the answer whose neurons to find (e.g. Paris): analysis, prediction and updates use it."
                    .into(),
            ));
            ui::scroll_to("fact-bar");
            return;
        }
        bench.target_error.set(None);
        let req = analysis_request(page, target);
        running.set(true);
        outcome.set(None);
        ui::scroll_to("analysis-progress-box");
        spawn_local(async move {
            let r = api::analyze_job(&req, move |s| job.set(Some(s))).await;
            job.set(None);
            match &r {
                Ok(ok) => {
                    let search = web_sys::window()
                        .and_then(|w| w.location().search().ok())
                        .unwrap_or_default();
                    let url = format!("/r/{}{search}", ok.id);
                    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
                        let _ = h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
                    }
                    ui::scroll_to("analysis");
                }
                Err(e) if e.code == "multi_token_target" => {
                    bench.target_error.set(Some(e.message.clone()));
                    ui::scroll_to("fact-bar");
                }
                Err(_) => ui::scroll_to("analyze-form"),
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
            Some(Err(e)) if e.code != "multi_token_target" && field_of(&e) == field => {
                Some(e.message)
            }
            _ => None,
        })
    };
    // A field's error goes once the field is edited; until then the field is
    // marked invalid and described by its message.
    let edited = move |field: &'static str| {
        if matches!(outcome.get_untracked(), Some(Err(ref e)) if field_of(e) == field) {
            outcome.set(None);
        }
    };
    let invalid = move |field: &'static str| move || matches!(outcome.get(), Some(Err(ref e)) if e.code != "multi_token_target" && field_of(e) == field);
    view! {
        <section class="panel wide" id="analyze-section" aria-labelledby="analyze-title">
            <form id="analyze-form" novalidate on:submit=submit>
                <h2 id="analyze-title">"Find knowledge neurons"</h2>
                <label for="prompts">"Paraphrases of the fact, one per line (the answer is the one above)"</label>
                <textarea id="prompts" rows="5" prop:value=move || page.prompts.get()
                    on:input=move |ev| { page.prompts.set(event_target_value(&ev)); edited("prompts"); }
                    aria-invalid=move || invalid("prompts")().to_string() aria-describedby="analysis-error"
                    on:keydown=ui::submit_on_ctrl_enter></textarea>
                <p class="hint">"Ctrl+Enter runs the analysis."</p>
                <FieldError id="analysis-error" error=error_for("prompts") />
                <div class="row3">
                    <div>
                        <label for="steps">"Integration steps m " <Help id="m" text="Integrated gradients approximate an integral with m steps: the blank's activations are scaled from 0 to their real value in m steps and the gradients summed. The paper uses m = 20; more steps, smaller error (see the completeness residual), more time." /></label>
                        <input id="steps" type="number" min="1" prop:value=move || page.steps.get() on:input=move |ev| { page.steps.set(event_target_value(&ev)); edited("steps"); }
                            aria-invalid=move || invalid("steps")().to_string() aria-describedby="steps-error" />
                        <FieldError id="steps-error" error=error_for("steps") />
                    </div>
                    <div>
                        <label for="t">"Threshold t " <Help id="t" text="A neuron is in a prompt's coarse set when its attribution score is above t times the prompt's largest score (the paper: t = 0.2)." /></label>
                        <input id="t" type="number" min="0" max="0.99" step="0.05" prop:value=move || page.t.get() on:input=move |ev| { page.t.set(event_target_value(&ev)); edited("t"); }
                            aria-invalid=move || invalid("t")().to_string() aria-describedby="t-error" />
                        <FieldError id="t-error" error=error_for("t") />
                    </div>
                    <div>
                        <label for="p">"Share p " <Help id="p" text="A neuron is a knowledge neuron when it is in the coarse sets of more than p × the prompts (the paper starts at p = 0.7). The baseline's neurons are selected the same way from activations instead of attributions." /></label>
                        <input id="p" type="number" min="0" max="1" step="0.05" prop:value=move || page.p.get() on:input=move |ev| { page.p.set(event_target_value(&ev)); edited("p"); }
                            aria-invalid=move || invalid("p")().to_string() aria-describedby="p-error" />
                        <FieldError id="p-error" error=error_for("p") />
                    </div>
                </div>
                <ControlFields page=page />
                <Estimate page=page />
                <button id="analyze" type="submit" disabled=move || running.get()>
                    {move || if running.get() { "Computing attribution…" } else { "Find knowledge neurons" }}
                </button>
                <div id="analysis-progress-box">
                    {move || running.get().then(|| view! {
                        <ui::JobProgress job=job bar_id="analysis-progress" cancel_id="cancel" what="prompts attributed" />
                    })}
                </div>
                <FieldError id="analysis-error" error=error_for("form") />
            </form>
            {move || match outcome.get() {
                Some(Ok(r)) => view! { <AnalysisView r=r page=page rerun=Callback::new(move |_| run()) /> }.into_any(),
                _ => ().into_any(),
            }}
        </section>
    }
}

/// The form's analysis request.
fn analysis_request(page: Page, target: String) -> AnalyzeRequest {
    let model = page.model.get_untracked();
    AnalyzeRequest {
        model: (!model.is_empty()).then_some(model),
        target,
        prompts: lines(&page.prompts.get_untracked()),
        answer_positions: page.answer_positions(),
        steps: page.steps.get_untracked().trim().parse().unwrap_or(0),
        riemann: Default::default(),
        t: page.t.get_untracked().trim().parse().unwrap_or(f64::NAN),
        p: page.p.get_untracked().trim().parse().unwrap_or(f64::NAN),
        min_prompts: 1,
        edits: page.edit_ids(),
        controls: controls(page),
    }
}

/// What the form's analysis would cost, asked again (after a pause) whenever
/// a field it depends on changes; nothing while the form cannot run.
#[component]
fn Estimate(page: Page) -> impl IntoView {
    let shown = RwSignal::new(None::<kn_shared::CostEstimate>);
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        // The fields the cost depends on.
        let _ = (
            page.target.get(),
            page.prompts.get(),
            page.steps.get(),
            page.model.get(),
            page.positions.get(),
        );
        let n = asked.get_value() + 1;
        asked.set_value(n);
        let cb = wasm_bindgen::closure::Closure::once_into_js(move || {
            if asked.get_value() != n {
                return;
            }
            let target = page.target.get_untracked().trim().to_string();
            if target.is_empty() {
                shown.set(None);
                return;
            }
            let req = analysis_request(page, target);
            spawn_local(async move {
                let e = api::estimate_analysis(&req).await.ok();
                if asked.get_value() == n {
                    shown.set(e);
                }
            });
        });
        if let Some(w) = web_sys::window() {
            use wasm_bindgen::JsCast;
            let _ =
                w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 300);
        }
    });
    move || {
        shown.get().map(|e| {
            let units = ui::count(e.units);
            let text = match e.seconds {
                Some(s) => format!("Estimated: {} on this server ({units} work units, at the pace of its last {} job{}).", ui::about(s), e.timed_jobs, if e.timed_jobs == 1 { "" } else { "s" }),
                None => format!("Estimated: {units} work units; the first analysis on this server times them."),
            };
            view! { <p class="hint" id="analysis-estimate">{text}</p> }
        })
    }
}

/// The analysis's control facts, from the form: each with an answer and
/// prompts, and never the fact itself (the server refuses that too).
fn controls(page: Page) -> Vec<ControlFact> {
    let fact_target = page.target.get_untracked().trim().to_string();
    let fact_prompts = lines(&page.prompts.get_untracked());
    [
        ("same relation", page.same_target, page.same_prompts),
        (
            "other relation",
            page.unrelated_target,
            page.unrelated_prompts,
        ),
    ]
    .into_iter()
    .map(|(kind, target, prompts)| ControlFact {
        kind: kind.into(),
        target: target.get_untracked().trim().to_string(),
        prompts: lines(&prompts.get_untracked()),
    })
    .filter(|c| !c.target.is_empty() && !c.prompts.is_empty())
    .filter(|c| !is_the_fact(c, &fact_target, &fact_prompts))
    .collect()
}

/// A control with the fact's answer and one of its prompts is the fact.
pub fn is_the_fact(c: &ControlFact, target: &str, prompts: &[String]) -> bool {
    c.target.trim() == target.trim() && c.prompts.iter().any(|p| prompts.contains(p))
}

/// The control facts the knowledge neurons are also suppressed on.
#[component]
fn ControlFields(page: Page) -> impl IntoView {
    let field = |id: &'static str,
                 label: &'static str,
                 sig: RwSignal<String>,
                 rows: Option<&'static str>| {
        match rows {
        None => view! {
            <label for=id>{label}</label>
            <input id=id type="text" prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
        }.into_any(),
        Some(rows) => view! {
            <label for=id>{label}</label>
            <textarea id=id rows=rows prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev))></textarea>
        }.into_any(),
    }
    };
    view! {
        <details id="controls">
            <summary>"Controls: is the set specific to this fact? " <Help id="controls" text="The knowledge neurons are also suppressed on a fact of the same relation and on a fact of another relation. If they cut those as much as this fact (the intervals overlap), they carry the relation or something broader, not this fact. “Use this fact” in the dataset fills both; a control equal to the fact is left out." /></summary>
            <div class="compare">
                <div>
                    {field("control-same-target", "Same relation: answer", page.same_target, None)}
                    {field("control-same-prompts", "Its prompts", page.same_prompts, Some("2"))}
                </div>
                <div>
                    {field("control-other-target", "Another relation: answer", page.unrelated_target, None)}
                    {field("control-other-prompts", "Its prompts", page.unrelated_prompts, Some("2"))}
                </div>
            </div>
        </details>
    }
}

fn effects(r: &Option<InterventionReport>) -> Vec<(&'static str, f64)> {
    let Some(r) = r else { return vec![] };
    let mut v = vec![("knowledge", 100.0 * r.knowledge.relative_change)];
    if let Some(b) = &r.baseline {
        v.push(("baseline", 100.0 * b.relative_change));
    }
    if let Some(x) = &r.random {
        v.push(("random", 100.0 * x.relative_change));
    }
    v
}

fn neuron_rows(set: &str, ns: &[ScoredNeuron]) -> String {
    ns.iter()
        .map(|n| {
            format!(
                "{set},{},{},{},{},{}\n",
                n.layer, n.index, n.prompts, n.score, n.activation
            )
        })
        .collect()
}

fn neuron_table(ns: &[ScoredNeuron]) -> Vec<(Option<kn_shared::Neuron>, Vec<Cell>)> {
    ns.iter()
        .map(|n| {
            (
                Some(n.neuron()),
                vec![
                    Cell::num(n.layer.to_string(), n.layer as f64),
                    Cell::num(n.index.to_string(), n.index as f64),
                    Cell::num(n.prompts.to_string(), n.prompts as f64),
                    Cell::num(ui::value(n.score), n.score),
                    Cell::num(ui::value(n.activation), n.activation),
                ],
            )
        })
        .collect()
}

/// Rows of a sortable table: the neuron a row selects, and its cells.
type Rows = Vec<(Option<kn_shared::Neuron>, Vec<Cell>)>;

/// The 15 strongest neurons by mean attribution, whatever the thresholds.
fn top_neurons(res: &AnalysisResult) -> Rows {
    let mut top: Vec<(usize, usize, f32, f32)> = res
        .mean_scores
        .iter()
        .enumerate()
        .flat_map(|(l, row)| row.iter().enumerate().map(move |(i, &v)| (l, i, v)))
        .map(|(l, i, v)| (l, i, v, res.mean_activations[l][i]))
        .collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    top.truncate(15);
    top.into_iter()
        .map(|(l, i, v, a)| {
            (
                Some(kn_shared::Neuron { layer: l, index: i }),
                vec![
                    Cell::num(l.to_string(), l as f64),
                    Cell::num(i.to_string(), i as f64),
                    Cell::num(ui::value(v as f64), v as f64),
                    Cell::num(ui::value(a as f64), a as f64),
                ],
            )
        })
        .collect()
}

fn prompt_rows(res: &AnalysisResult) -> Rows {
    res.prompts
        .iter()
        .map(|p| {
            (
                None,
                vec![
                    Cell::text(p.prompt.clone()),
                    Cell::num(ui::prob(p.p_target), p.p_target),
                    Cell::num(format!("{:.1e}", p.max_abs_residual), p.max_abs_residual),
                ],
            )
        })
        .collect()
}

/// Which model the numbers are of: as loaded, or which edit sets.
fn edits_line(edits: &[String]) -> String {
    if edits.is_empty() {
        " · the model as loaded".to_string()
    } else {
        format!(
            " · edited by {} edit set{}: {}",
            edits.len(),
            if edits.len() == 1 { "" } else { "s" },
            edits.join(", ")
        )
    }
}

/// "Erase these": the erase form filled with a table's neurons and this
/// analysis's fact, and the keyboard focus on its button (nothing runs until
/// it is pressed: the form says what an erase will be measured on).
fn erase_these(
    page: Page,
    res: &AnalysisResult,
    ns: &[ScoredNeuron],
    id: &'static str,
) -> impl IntoView {
    let list = ns
        .iter()
        .map(|n| n.neuron().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (target, prompts) = (res.request.target.clone(), res.request.prompts.join("\n"));
    let n = ns.len();
    let fill = move |_| {
        page.erase_neurons.set(list.clone());
        page.target.set(target.clone());
        page.prompts.set(prompts.clone());
        ui::go_to("erase-form", "erase");
    };
    (n > 0).then(|| view! {
        <button type="button" class="small secondary" id=id on:click=fill>{format!("Erase these {n}…")}</button>
    })
}

#[component]
pub fn AnalysisView(r: AnalyzeResponse, page: Page, rerun: Callback<()>) -> impl IntoView {
    let res = r.result.clone();
    let name = format!("kn-{}", r.id);
    let selected = page.neuron;
    let ran_on = res.request.edits.clone();
    let stale = Signal::derive(move || {
        page.edits
            .get()
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
            != ran_on
    });
    let kn_marks: Vec<(usize, usize)> = res
        .neurons
        .knowledge
        .iter()
        .map(|n| (n.layer, n.index))
        .collect();
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    let overlap = res.neurons.overlap.len();
    let permalink = format!("/r/{}", r.id);
    let headers = vec![
        "layer",
        "neuron",
        "prompts",
        "mean score",
        "mean activation",
    ];
    let analysis_id = r.id.clone();
    view! {
        <div id="analysis">
            <h2>"Knowledge neurons of " <code>{format!("{:?}", res.request.target)}</code></h2>
            <p class="meta">
                {format!("{} · {} prompts · m = {} ({} Riemann sum) · t = {} · p = {} · {:.1} s{}",
                    res.model.name, res.prompts.len(), res.request.steps, res.request.riemann,
                    res.neurons.t, res.neurons.p, res.seconds, if r.cached { " · from the store" } else { "" })}
                <span id="analysis-model-state">{edits_line(&res.request.edits)}</span>
                " · permalink: " <a id="permalink" href=permalink.clone()>{permalink.clone()}</a>
                " · " <Download label="all data (JSON)" file=format!("{name}.json") mime="application/json" content=json />
            </p>
            {move || stale.get().then(|| view! {
                <p class="stale" id="stale-notice" role="status">
                    "These numbers were computed on other edit sets than this page now runs on. "
                    <button type="button" class="small" id="rerun" on:click=move |_| rerun.run(())>"Re-run on this page's edits"</button>
                </p>
            })}
            <h3>"Prompts " <Help id="residual" text="P(answer): the probability the model gives the answer at the blank. Completeness residual: integrated gradients should sum to P(with the neurons) − P(with them zeroed); the residual is how far they miss, over the worst layer. It shrinks as m grows; a large one means m is too small." /></h3>
            <SortTable id="prompt-table" headers=vec!["prompt", "P(answer)", "completeness residual"] rows=prompt_rows(&res) />
            <HeatmapView map=res.mean_scores.clone() marks=kn_marks selected=selected data_name=format!("{name}-heatmap") stale=stale />
            <NeuronCardView analysis=analysis_id selected=selected relation=page.relation />
            <div class="compare">
                <div>
                    <h3>{format!("Knowledge neurons ({})", res.neurons.knowledge.len())}</h3>
                    <SortTable id="knowledge-table" headers=headers.clone() rows=neuron_table(&res.neurons.knowledge) selected=selected />
                    {erase_these(page, &res, &res.neurons.knowledge, "erase-knowledge")}
                </div>
                <div>
                    <h3>{format!("Activation baseline ({}, t = {})", res.neurons.baseline.len(), ui::setting(res.neurons.baseline_t))}
                        " " <Help id="baseline" text="The paper's baseline: neurons selected from their activation at the blank instead of their attribution, with a threshold tuned so a fact gets 2–5 of them, then refined like the knowledge neurons." /></h3>
                    <SortTable id="baseline-table" headers=headers.clone() rows=neuron_table(&res.neurons.baseline) selected=selected />
                    {erase_these(page, &res, &res.neurons.baseline, "erase-baseline")}
                </div>
            </div>
            <p id="overlap">{format!("Overlap: {overlap} neuron(s) in both sets.")}</p>
            <details id="top-details">
                <summary>"Top 15 neurons by mean attribution"</summary>
                <SortTable id="top-neurons" headers=vec!["layer", "neuron", "mean score", "mean activation"] rows=top_neurons(&res) selected=selected />
            </details>
            {res.specificity.clone().map(|s| view! { <SpecificityView s=s id="specificity" title="Specificity: the knowledge neurons suppressed (×0) on this fact and on control facts" /> })}
            <EffectsAndLayers res=res name=name selected=selected stale=stale />
        </div>
    }
}

/// The suppress/amplify bars and the layer distribution (the selected
/// neuron's layer marked), with their numbers in words.
#[component]
fn EffectsAndLayers(
    res: AnalysisResult,
    name: String,
    selected: RwSignal<Option<kn_shared::Neuron>>,
    stale: Signal<bool>,
) -> impl IntoView {
    let sup = effects(&res.suppress);
    let amp = effects(&res.amplify);
    let groups: Vec<(String, f64, f64)> = sup
        .iter()
        .zip(&amp)
        .map(|((n, s), (_, a))| (n.to_string(), *s, *a))
        .collect();
    let effect_csv: String = std::iter::once("set,suppress_percent,amplify_percent\n".to_string())
        .chain(groups.iter().map(|(n, s, a)| format!("{n},{s},{a}\n")))
        .collect();
    let effects_label = format!(
        "Relative change of P(answer) when each set is suppressed (×0) and amplified (×2): {}",
        groups
            .iter()
            .map(|(g, s, a)| format!("{g} {s:+.1}% and {a:+.1}%"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let effects_node = NodeRef::<html::Div>::new();
    let effects_width = ui::width_of(effects_node, 560);
    let groups2 = groups.clone();
    let effect_plot = Memo::new(move |_| {
        if groups2.is_empty() {
            charts::Plot::default()
        } else {
            charts::effect_bars(&groups2, effects_width.get())
        }
    });
    let k_layers: Vec<usize> = res.neurons.knowledge.iter().map(|n| n.layer).collect();
    let b_layers: Vec<usize> = res.neurons.baseline.iter().map(|n| n.layer).collect();
    let n_layers = res.model.n_layers;
    let layers_node = NodeRef::<html::Div>::new();
    let layers_width = ui::width_of(layers_node, 560);
    let layer_plot = Memo::new(move |_| {
        charts::layer_counts(n_layers, &k_layers, &b_layers, layers_width.get())
    });
    // The selected neuron's layer, marked on the layer chart.
    let layer_mark = move || {
        let n = selected.get()?;
        let p = layer_plot.get();
        let (x0, y0) = p.to_px(n.layer as f64 - 0.45, p.y.2);
        let (x1, y1) = p.to_px(n.layer as f64 + 0.45, p.y.3);
        let k = layers_width.get() as f64 / p.width.max(1) as f64;
        Some((
            n.layer,
            x0 * k,
            y1.min(y0) * k,
            (x1 - x0) * k,
            (y0 - y1).abs() * k,
        ))
    };
    let neurons_csv = format!(
        "set,layer,index,prompts,score,activation\n{}{}",
        neuron_rows("knowledge", &res.neurons.knowledge),
        neuron_rows("baseline", &res.neurons.baseline)
    );
    let effect_json = serde_json::to_string(&(&res.suppress, &res.amplify)).unwrap_or_default();
    let layers_json = serde_json::to_string(&res.neurons).unwrap_or_default();
    let effects_name = format!("{name}-effects");
    view! {
        <div class="compare">
            <figure class="chart" id="effects" class:stale=move || stale.get()>
                <div class="svg" role="img" aria-label=effects_label node_ref=effects_node inner_html=move || effect_plot.get().svg></div>
                <figcaption>"Suppress and amplify, knowledge vs baseline vs random"
                    {move || view! { <ui::Exports svg=effect_plot.get().svg data_name=effects_name.clone() csv=effect_csv.clone() json=effect_json.clone() /> }}
                </figcaption>
            </figure>
            <figure class="chart" id="layers" class:stale=move || stale.get()>
                <div class="plotbox">
                    <div class="svg" role="img" aria-label="Knowledge and baseline neurons per layer (the numbers are in the neuron tables)" node_ref=layers_node inner_html=move || layer_plot.get().svg></div>
                    {move || layer_mark().map(|(l, x, y, w, h)| view! {
                        <div id="layers-selection" class="selection" data-layer=l style=format!("left:{x:.0}px;top:{y:.0}px;width:{w:.0}px;height:{h:.0}px")></div>
                    })}
                </div>
                <figcaption>"Distribution over layers"
                    {move || view! { <ui::Exports svg=layer_plot.get().svg data_name=format!("{}-layers", name) csv=neurons_csv.clone() json=layers_json.clone() /> }}
                </figcaption>
            </figure>
        </div>
        <p id="effect-numbers">
            {groups.iter().map(|(n, s, a)| format!("{n}: suppress {s:+.2}%, amplify {a:+.2}%")).collect::<Vec<_>>().join(" · ")}
        </p>
    }
}
