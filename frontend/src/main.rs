//! Knowledge Neuron Studio's web client: Leptos, rendered in the browser,
//! talking to the `kn serve` JSON API with the types of `kn-shared`.
//!
//! The views beyond "Ask" (attribution, knowledge vs baseline, edits, dataset)
//! arrive with the engine; this file is the shell they plug into.

mod analysis;
mod api;
mod charts;
mod dataset;
mod edits;
mod experiments;
mod png;

use kn_shared::{
    ActiveEdit, AnalyzeRequest, AnalyzeResponse, EditResponse, ModelSummary, PredictRequest,
    PredictResponse,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

fn main() {
    console_error_panic_hook::set_once();
    let param = |k: &str| -> Option<String> {
        let search = web_sys::window()?.location().search().ok()?;
        web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(k)
    };
    if param("view").as_deref() == Some("experiments") {
        let run = param("run");
        leptos::mount::mount_to_body(move || {
            view! {
                <Header current="experiments" />
                <experiments::Experiments run=run.clone() />
            }
        });
    } else {
        leptos::mount::mount_to_body(App);
    }
}

/// The title and the two pages: the studio and the ParaRel experiments.
#[component]
fn Header(current: &'static str) -> impl IntoView {
    let class = move |page: &str| if page == current { "current" } else { "" };
    view! {
        <header class="top">
            <h1>"Knowledge Neuron Studio"</h1>
            <p class="tagline">"Where does a language model keep a fact? Ask it a cloze question."</p>
            <nav>
                <a id="nav-studio" class=class("studio") href="/">"Studio"</a>
                " · "
                <a id="nav-experiments" class=class("experiments") href="/?view=experiments">"Experiments"</a>
            </nav>
        </header>
    }
}

/// Form state kept in the URL query, so a link to a half-filled form works.
#[derive(Clone, Default)]
struct FormState {
    model: String,
    prompt: String,
    target: String,
    top_k: String,
    prompts: String,
    /// The page's edit sets, comma-separated ids.
    edits: String,
}

const DEFAULT_PROMPTS: &str = "The capital of France is [MASK].\nThe capital city of France is [MASK].\nFrance's capital is [MASK].\nFrance's capital city is [MASK].\nFrance's capital, [MASK].";

impl FormState {
    fn from_url() -> Self {
        let get = |k: &str| -> Option<String> {
            let search = web_sys::window()?.location().search().ok()?;
            web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(k)
        };
        FormState {
            model: get("model").unwrap_or_default(),
            prompt: get("prompt").unwrap_or_else(|| "The capital of France is [MASK].".into()),
            target: get("target").unwrap_or_default(),
            top_k: get("top_k").unwrap_or_else(|| "10".into()),
            prompts: get("prompts").unwrap_or_else(|| DEFAULT_PROMPTS.into()),
            edits: get("edits").unwrap_or_default(),
        }
    }

    fn write_url(&self) {
        let Ok(params) = web_sys::UrlSearchParams::new() else {
            return;
        };
        for (k, v) in [
            ("model", &self.model),
            ("prompt", &self.prompt),
            ("target", &self.target),
            ("top_k", &self.top_k),
            ("edits", &self.edits),
        ] {
            if !v.is_empty() {
                params.append(k, v);
            }
        }
        let path = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default();
        let url = format!("{path}?{}", String::from(params.to_string()));
        if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }
}

#[component]
fn App() -> impl IntoView {
    let initial = FormState::from_url();
    let models = RwSignal::new(Vec::<ModelSummary>::new());
    let models_error = RwSignal::new(None::<String>);
    let model = RwSignal::new(initial.model.clone());
    let prompt = RwSignal::new(initial.prompt.clone());
    let target = RwSignal::new(initial.target.clone());
    let top_k = RwSignal::new(initial.top_k.clone());
    let prompts = RwSignal::new(initial.prompts.clone());
    let steps = RwSignal::new("20".to_string());
    let t_coarse = RwSignal::new("0.2".to_string());
    let p_refine = RwSignal::new("0.7".to_string());
    let analysis = RwSignal::new(None::<Result<AnalyzeResponse, String>>);
    let analyzing = RwSignal::new(false);
    let job = RwSignal::new(None::<kn_shared::JobStatus>);
    // The edit sets this page runs on, oldest first: every request names them,
    // and the URL keeps them (`edits=id,id`), so another tab or user never
    // sees them unless given the link.
    let edits = RwSignal::new(Vec::<ActiveEdit>::new());
    let edit_outcome = RwSignal::new(None::<Result<EditResponse, String>>);
    let url_edits: Vec<String> = initial
        .edits
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    load_edits(edits, url_edits.clone());
    Effect::new(move |_| {
        let ids = edit_ids(&edits.get());
        set_url_param("edits", &ids.join(","));
    });

    // A permalink (/r/<id>) reopens a stored result without recomputing.
    if let Some(id) = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .and_then(|p| p.strip_prefix("/r/").map(str::to_string))
    {
        analyzing.set(true);
        let keep_url_edits = !url_edits.is_empty();
        spawn_local(async move {
            match api::result(&id, move |s| job.set(Some(s))).await {
                Err(e) => analysis.set(Some(Err(e))),
                Ok(r) => {
                    let req = &r.request;
                    let text = |k: &str| req.get(k).and_then(|v| v.as_str()).map(String::from);
                    if let Some(t) = text("target") {
                        target.set(t);
                    }
                    if let Some(ps) = req.get("prompts").and_then(|v| v.as_array()) {
                        let lines: Vec<&str> = ps.iter().filter_map(|p| p.as_str()).collect();
                        prompts.set(lines.join("\n"));
                    }
                    if let Some(n) = req.get("steps").and_then(|v| v.as_u64()) {
                        steps.set(n.to_string());
                    }
                    let mut ran_on: Vec<String> = req
                        .get("edits")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if r.kind == "analyze" {
                        if let Some(res) = &r.result {
                            t_coarse.set(res.request.t.to_string());
                            p_refine.set(res.request.p.to_string());
                        }
                        analysis.set(Some(api::as_analysis(r)));
                    } else if let Some(e) = r.edit {
                        // A shared edit: the page continues on the edited model.
                        ran_on.push(e.edit.id.clone());
                        edit_outcome.set(Some(Ok(e)));
                    }
                    if !keep_url_edits {
                        load_edits(edits, ran_on);
                    }
                }
            }
            job.set(None);
            analyzing.set(false);
        });
    }

    let current = move || FormState {
        model: model.get_untracked(),
        prompt: prompt.get_untracked(),
        target: target.get_untracked(),
        top_k: top_k.get_untracked(),
        prompts: prompts.get_untracked(),
        edits: edit_ids(&edits.get_untracked()).join(","),
    };
    let run_analysis = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let state = current();
        state.write_url();
        let req = AnalyzeRequest {
            model: (!state.model.is_empty()).then_some(state.model.clone()),
            target: state.target.trim().to_string(),
            prompts: state
                .prompts
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            steps: steps.get_untracked().trim().parse().unwrap_or(0),
            riemann: "right".into(),
            t: t_coarse.get_untracked().trim().parse().unwrap_or(f64::NAN),
            p: p_refine.get_untracked().trim().parse().unwrap_or(f64::NAN),
            min_prompts: 1,
            edits: edit_ids(&edits.get_untracked()),
        };
        analyzing.set(true);
        spawn_local(async move {
            let r = if req.target.is_empty() {
                Err("Give the target answer (e.g. Paris) before finding its neurons.".to_string())
            } else {
                api::analyze_job(&req, move |s| job.set(Some(s))).await
            };
            job.set(None);
            if let Ok(ok) = &r {
                let url = format!(
                    "/r/{}{}",
                    ok.id,
                    web_sys::window()
                        .and_then(|w| w.location().search().ok())
                        .unwrap_or_default()
                );
                if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
                    let _ = h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
                }
            }
            analysis.set(Some(r));
            analyzing.set(false);
        });
    };

    spawn_local(async move {
        match api::models().await {
            Ok(list) => {
                if model.get_untracked().is_empty() {
                    if let Some(first) = list.first() {
                        model.set(first.name.clone());
                    }
                }
                models.set(list);
            }
            Err(e) => models_error.set(Some(e)),
        }
    });

    let predict = Action::new_local(|req: &PredictRequest| {
        let req = req.clone();
        async move { api::predict(&req).await }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let state = current();
        state.write_url();
        let t = state.target.trim().to_string();
        predict.dispatch(PredictRequest {
            model: (!state.model.is_empty()).then_some(state.model),
            prompt: state.prompt,
            target: (!t.is_empty()).then_some(t),
            top_k: state.top_k.trim().parse().unwrap_or(0),
            edits: edit_ids(&edits.get_untracked()),
        });
    };

    let selected = move || models.get().into_iter().find(|m| m.name == model.get());

    view! {
        <Header current="studio" />
        {move || {
            let list = edits.get();
            (!list.is_empty()).then(|| view! {
                <p class="banner" id="edited-banner" role="status">
                    {format!("This page runs on an edited model: {} edit set{} ({}). Other pages and users see the model as loaded. Manage them under Edit.",
                        list.len(), if list.len() == 1 { "" } else { "s" },
                        list.iter().map(|e| e.description.clone()).collect::<Vec<_>>().join("; "))}
                </p>
            })
        }}
        <main>
            <section class="panel" aria-labelledby="ask-title">
                <h2 id="ask-title">"Ask"</h2>
                <form id="ask-form" on:submit=submit>
                    <label for="model">"Model"</label>
                    <select id="model" prop:value=move || model.get() on:change=move |ev| model.set(event_target_value(&ev))>
                        {move || models.get().into_iter().map(|m| {
                            let label = format!("{} ({}, {} layers × {} neurons)", m.name, m.arch, m.n_layers, m.d_ff);
                            view! { <option value=m.name.clone() selected=m.name == model.get_untracked()>{label}</option> }
                        }).collect_view()}
                    </select>
                    <label for="prompt">"Prompt (mark the blank with [MASK])"</label>
                    <input id="prompt" type="text" prop:value=move || prompt.get() on:input=move |ev| prompt.set(event_target_value(&ev)) />
                    {move || selected().filter(|m| !m.masked).map(|_| view! {
                        <p class="hint">"A causal model predicts the next token: the blank must end the prompt."</p>
                    })}
                    <div class="row">
                        <div>
                            <label for="target">"Target answer (optional)"</label>
                            <input id="target" type="text" placeholder="Paris" prop:value=move || target.get() on:input=move |ev| target.set(event_target_value(&ev)) />
                        </div>
                        <div>
                            <label for="top-k">"Top k"</label>
                            <input id="top-k" type="number" min="1" max="1000" prop:value=move || top_k.get() on:input=move |ev| top_k.set(event_target_value(&ev)) />
                        </div>
                    </div>
                    <button id="predict" type="submit" disabled=move || predict.pending().get()>
                        {move || if predict.pending().get() { "Predicting…" } else { "Predict" }}
                    </button>
                </form>
                {move || models_error.get().map(|e| view! { <p class="error" role="alert">{format!("Could not list models: {e}")}</p> })}
            </section>
            <dataset::Dataset target=target prompts=prompts causal=Signal::derive(move || selected().is_some_and(|m| !m.masked)) />
            <section class="panel" aria-labelledby="analyze-title">
                <h2 id="analyze-title">"Find knowledge neurons"</h2>
                <form id="analyze-form" on:submit=run_analysis>
                    <label for="prompts">"Paraphrases of the fact, one per line (the answer is the target above)"</label>
                    <textarea id="prompts" rows="6" prop:value=move || prompts.get() on:input=move |ev| prompts.set(event_target_value(&ev))></textarea>
                    <div class="row3">
                        <div>
                            <label for="steps">"Integration steps m"</label>
                            <input id="steps" type="number" min="1" max="10000" prop:value=move || steps.get() on:input=move |ev| steps.set(event_target_value(&ev)) />
                        </div>
                        <div>
                            <label for="t" title="coarse set: score above t × the prompt's maximum">"Threshold t"</label>
                            <input id="t" type="number" min="0" max="0.99" step="0.05" prop:value=move || t_coarse.get() on:input=move |ev| t_coarse.set(event_target_value(&ev)) />
                        </div>
                        <div>
                            <label for="p" title="refined: in the coarse sets of more than p × the prompts">"Share p"</label>
                            <input id="p" type="number" min="0" max="1" step="0.05" prop:value=move || p_refine.get() on:input=move |ev| p_refine.set(event_target_value(&ev)) />
                        </div>
                    </div>
                    <button id="analyze" type="submit" disabled=move || analyzing.get()>
                        {move || if analyzing.get() { "Computing attribution…" } else { "Find knowledge neurons" }}
                    </button>
                    {move || analyzing.get().then(|| {
                        let (done, total, id) = job.get().map_or((0, 0, String::new()), |s| (s.done, s.total, s.id));
                        let cancel = move |_| {
                            let id = id.clone();
                            spawn_local(async move { let _ = api::cancel_job(&id).await; });
                        };
                        view! {
                            <div class="progress">
                                <progress id="analysis-progress" max=total.max(1) value=done aria-label="prompts attributed"></progress>
                                <span>{format!("{done} of {total} prompts attributed")}</span>
                                <button id="cancel" type="button" on:click=cancel>"Cancel"</button>
                            </div>
                        }
                    })}
                </form>
            </section>
            <section class="panel" aria-live="polite">
                {move || match predict.value().get() {
                    None => view! { <p class="muted">"Predictions appear here."</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="error" role="alert" id="predict-error">{e}</p> }.into_any(),
                    Some(Ok(r)) => view! { <Prediction r=r /> }.into_any(),
                }}
            </section>
            <edits::Edits model=model target=target prompts=prompts edits=edits outcome=edit_outcome />
            {move || match analysis.get() {
                None => ().into_any(),
                Some(Err(e)) => view! { <section class="panel wide"><p class="error" role="alert" id="analysis-error">{e}</p></section> }.into_any(),
                Some(Ok(r)) => view! { <analysis::AnalysisView r=r /> }.into_any(),
            }}
        </main>
    }
}

#[component]
fn Prediction(r: PredictResponse) -> impl IntoView {
    let svg = charts::top_k_bars(&r);
    let csv: String = std::iter::once("rank,id,token,probability\n".to_string())
        .chain(
            r.top_k
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{},{},{:?},{}\n", i + 1, t.id, t.token, t.prob)),
        )
        .collect();
    let tokens = r
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let class = if i == r.blank_index {
                "tok blank"
            } else {
                "tok"
            };
            view! { <span class=class title=format!("position {i}")>{t.clone()}</span> }
        })
        .collect_view();
    let target = r.target.clone().map(|t| {
        view! {
            <p id="target-prob">
                "Target " <code>{format!("{:?}", t.token)}</code>
                {format!(": P = {:.4} ({:.2}%), rank {}", t.prob, 100.0 * t.prob, t.rank)}
            </p>
        }
    });
    view! {
        <h2>"Top predictions"</h2>
        <div class="tokens" aria-label="input tokens">{tokens}</div>
        {target}
        <analysis::Chart id="topk-chart" title="Top predictions at the blank" svg=svg data_name="kn-predictions".to_string() csv=csv json=serde_json::to_string(&r).unwrap_or_default() />
    }
}

/// The ids of a list of edit sets, in order.
fn edit_ids(list: &[ActiveEdit]) -> Vec<String> {
    list.iter().map(|e| e.id.clone()).collect()
}

/// Fill the page's edit list with `ids` (in order), then their descriptions.
fn load_edits(edits: RwSignal<Vec<ActiveEdit>>, ids: Vec<String>) {
    edits.set(
        ids.iter()
            .map(|id| ActiveEdit {
                id: id.clone(),
                model: String::new(),
                description: format!("edit set {id}"),
                neurons: vec![],
            })
            .collect(),
    );
    for id in ids {
        spawn_local(async move {
            let found = api::edit_summary(&id).await;
            edits.update(|list| {
                if let Some(e) = list.iter_mut().find(|e| e.id == id) {
                    match found {
                        Ok(s) => *e = s,
                        Err(err) => e.description = format!("edit set {id} (unavailable: {err})"),
                    }
                }
            });
        });
    }
}

/// Set (or remove, when empty) one query parameter of the address, keeping the
/// rest and the path.
fn set_url_param(key: &str, value: &str) {
    let Some(w) = web_sys::window() else { return };
    let loc = w.location();
    let (Ok(path), Ok(search)) = (loc.pathname(), loc.search()) else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return;
    };
    if value.is_empty() {
        params.delete(key);
    } else {
        params.set(key, value);
    }
    let q = String::from(params.to_string());
    let url = if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    };
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}
