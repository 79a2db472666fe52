//! Knowledge Neuron Studio's web client: Leptos, rendered in the browser,
//! talking to the `kn serve` JSON API with the types of `kn-shared`.
//!
//! The views beyond "Ask" (attribution, knowledge vs baseline, edits, dataset)
//! arrive with the engine; this file is the shell they plug into.

mod api;
mod charts;

use kn_shared::{ModelSummary, PredictRequest, PredictResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Form state kept in the URL query, so a link to a half-filled form works.
#[derive(Clone, Default)]
struct FormState {
    model: String,
    prompt: String,
    target: String,
    top_k: String,
}

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
        ] {
            if !v.is_empty() {
                params.append(k, v);
            }
        }
        let url = format!("?{}", String::from(params.to_string()));
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
        let state = FormState {
            model: model.get_untracked(),
            prompt: prompt.get_untracked(),
            target: target.get_untracked(),
            top_k: top_k.get_untracked(),
        };
        state.write_url();
        let t = state.target.trim().to_string();
        predict.dispatch(PredictRequest {
            model: (!state.model.is_empty()).then_some(state.model),
            prompt: state.prompt,
            target: (!t.is_empty()).then_some(t),
            top_k: state.top_k.trim().parse().unwrap_or(0),
        });
    };

    let selected = move || models.get().into_iter().find(|m| m.name == model.get());

    view! {
        <header class="top">
            <h1>"Knowledge Neuron Studio"</h1>
            <p class="tagline">"Where does a language model keep a fact? Ask it a cloze question."</p>
        </header>
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
            <section class="panel" aria-live="polite">
                {move || match predict.value().get() {
                    None => view! { <p class="muted">"Predictions appear here."</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="error" role="alert" id="predict-error">{e}</p> }.into_any(),
                    Some(Ok(r)) => view! { <Prediction r=r /> }.into_any(),
                }}
            </section>
        </main>
    }
}

#[component]
fn Prediction(r: PredictResponse) -> impl IntoView {
    let svg = charts::top_k_bars(&r);
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
        <div class="chart" id="topk-chart" inner_html=svg></div>
    }
}
