//! Knowledge Neuron Studio's web client: Leptos, rendered in the browser,
//! talking to the `kn serve` JSON API with the types of `kn-shared`.
//!
//! The studio is a workbench: the model and the answer sit at the top and every
//! action uses them; each form's progress, result and errors appear next to it
//! or directly under it; every field lives in the address ([`state`]), so a
//! reload or a link restores the page.

mod analysis;
mod api;
mod ask;
mod charts;
mod dataset;
mod edits;
mod experiments;
mod heatmap;
mod methods;
mod neuron;
mod png;
mod state;
mod ui;

use kn_shared::{ActiveEdit, ModelSummary};
use leptos::prelude::*;
use leptos::task::spawn_local;
use state::Page;

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

/// What the studio's views share besides the page's fields.
#[derive(Clone, Copy)]
pub struct Workbench {
    pub models: RwSignal<Vec<ModelSummary>>,
    /// An error about the answer field (shown under it, whoever caused it).
    pub target_error: RwSignal<Option<String>>,
    pub page: Page,
}

impl Workbench {
    /// The selected model's summary.
    pub fn selected(&self) -> Option<ModelSummary> {
        let name = self.page.model.get();
        self.models.get().into_iter().find(|m| m.name == name)
    }
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

/// Fill the forms from a stored result's request (a permalink).
fn restore(page: Page, kind: &str, req: &serde_json::Value) {
    let text = |k: &str| req.get(k).and_then(|v| v.as_str()).map(String::from);
    let num = |k: &str| req.get(k).filter(|v| v.is_number()).map(|v| v.to_string());
    for (key, sig) in [("model", page.model), ("target", page.target)] {
        if let Some(v) = text(key) {
            sig.set(v);
        }
    }
    if let Some(ps) = req.get("prompts").and_then(|v| v.as_array()) {
        let lines: Vec<&str> = ps.iter().filter_map(|p| p.as_str()).collect();
        page.prompts.set(lines.join("\n"));
        if let Some(first) = lines.first() {
            page.prompt.set(first.to_string());
        }
    }
    let numbers: &[(&str, RwSignal<String>)] = match kind {
        "analyze" => &[("steps", page.steps), ("t", page.t), ("p", page.p)],
        "update" => &[
            ("steps", page.steps),
            ("k", page.k),
            ("lambda1", page.lambda1),
            ("lambda2", page.lambda2),
        ],
        "erase-relation" => &[("facts", page.erase_facts), ("top", page.erase_top)],
        "methods" => &[("steps", page.steps), ("t", page.t), ("p", page.p)],
        _ => &[],
    };
    for (key, sig) in numbers {
        if let Some(v) = num(key) {
            sig.set(v);
        }
    }
    if let Some(v) = text("new_target") {
        page.new_target.set(v);
    }
    if matches!(kind, "analyze" | "methods") {
        // Left out of stored requests when it is the default.
        page.positions
            .set(text("answer_positions").unwrap_or_else(|| "all".into()));
    }
    if let Some(v) = req.get("norm_scaled").and_then(|v| v.as_bool()) {
        page.norm_scaled
            .set(if v { "1".into() } else { String::new() });
    }
    if kind == "methods" {
        let list = |k: &str| -> Option<Vec<String>> {
            Some(
                req.get(k)?
                    .as_array()?
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
            )
        };
        if let Some(ms) = list("methods") {
            page.methods.set(ms.join(","));
        }
        if let Some(ks) = list("ks") {
            page.ks.set(ks.join(","));
        }
        page.unrelated_target
            .set(text("unrelated_target").unwrap_or_default());
        if let Some(ps) = list("unrelated_prompts") {
            page.unrelated_prompts.set(ps.join("\n"));
        }
    }
    if let Some(v) = text("relation") {
        page.erase_relation.set(v);
    }
    if let Some(v) = text("with") {
        page.erase_with.set(v);
    }
    if let Some(ns) = req.get("neurons").and_then(|v| v.as_array()) {
        let list: Vec<String> = ns
            .iter()
            .filter_map(|n| serde_json::from_value::<kn_shared::Neuron>(n.clone()).ok())
            .map(|n| n.to_string())
            .collect();
        page.erase_neurons.set(list.join(", "));
    }
    if let Some(ev) = req.get("eval").and_then(|v| v.as_array()) {
        let list: Vec<String> = ev
            .iter()
            .filter_map(|e| {
                Some(format!(
                    "{} | {}",
                    e.get("prompt")?.as_str()?,
                    e.get("target")?.as_str()?
                ))
            })
            .collect();
        page.eval.set(list.join("\n"));
    }
}

#[component]
fn App() -> impl IntoView {
    let page = Page::from_url();
    let bench = Workbench {
        models: RwSignal::new(Vec::new()),
        target_error: RwSignal::new(None),
        page,
    };
    let models_error = RwSignal::new(None::<String>);
    let analysis: analysis::Outcome = RwSignal::new(None);
    let edit_outcome: edits::Outcome = RwSignal::new(None);
    let methods_outcome: methods::Outcome = RwSignal::new(None);
    let url_edits = Page::url_edits();
    load_edits(page.edits, url_edits.clone());
    page.sync_url();

    // A permalink (/r/<id>) reopens a stored result without recomputing.
    if let Some(id) = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .and_then(|p| p.strip_prefix("/r/").map(str::to_string))
    {
        let keep_url_edits = !url_edits.is_empty();
        spawn_local(async move {
            match api::result(&id, |_| {}).await {
                Err(e) => analysis.set(Some(Err(e))),
                Ok(r) => {
                    restore(page, &r.kind, &r.request);
                    let mut ran_on: Vec<String> = r
                        .request
                        .get("edits")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if r.kind == "analyze" {
                        analysis.set(Some(api::as_analysis(r)));
                        ui::scroll_to("analysis");
                    } else if let Some(m) = r.methods {
                        methods_outcome.set(Some(Ok((r.id.clone(), m))));
                        ui::scroll_to("methods-result");
                    } else if let Some(e) = r.edit {
                        // A shared edit: the page continues on the edited model.
                        ran_on.push(e.edit.id.clone());
                        edit_outcome.set(Some(("link", Ok(e))));
                        ui::scroll_to("update-result");
                    }
                    if !keep_url_edits {
                        load_edits(page.edits, ran_on);
                    }
                }
            }
        });
    }

    spawn_local(async move {
        match api::models().await {
            Ok(list) => {
                if !list.iter().any(|m| m.name == page.model.get_untracked()) {
                    if let Some(first) = list.first() {
                        page.model.set(first.name.clone());
                    }
                }
                bench.models.set(list);
            }
            Err(e) => models_error.set(Some(e.message)),
        }
    });

    let copied = RwSignal::new(None::<&'static str>);
    let copy_link = move |_| {
        let Some(w) = web_sys::window() else { return };
        let href = w.location().href().unwrap_or_default();
        let promise = w.navigator().clipboard().write_text(&href);
        spawn_local(async move {
            let ok = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
            copied.set(Some(if ok {
                "Link copied: it reopens this page as it is now."
            } else {
                "Could not copy: copy the address bar instead."
            }));
        });
    };

    view! {
        <Header current="studio" />
        {move || {
            let list = page.edits.get();
            (!list.is_empty()).then(|| view! {
                <p class="banner" id="edited-banner" role="status">
                    {format!("This page runs on an edited model: {} edit set{} ({}). Other pages and users see the model as loaded. Manage them under Edit.",
                        list.len(), if list.len() == 1 { "" } else { "s" },
                        list.iter().map(|e| e.description.clone()).collect::<Vec<_>>().join("; "))}
                </p>
            })
        }}
        <main class="bench">
            <section class="panel wide" id="fact-bar" aria-label="model and answer">
                <div class="factrow">
                    <div>
                        <label for="model">"Model"</label>
                        <select id="model" prop:value=move || page.model.get() on:change=move |ev| page.model.set(event_target_value(&ev))>
                            {move || bench.models.get().into_iter().map(|m| {
                                let label = format!("{} ({}, {} layers × {} neurons)", m.name, m.arch, m.n_layers, m.d_ff);
                                view! { <option value=m.name.clone() selected=m.name == page.model.get_untracked()>{label}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div>
                        <label for="target">"Answer (the target every action uses)"</label>
                        <input id="target" type="text" prop:value=move || page.target.get()
                            on:input=move |ev| { page.target.set(event_target_value(&ev)); bench.target_error.set(None); } />
                        <ui::FieldError id="target-error" error=Signal::derive(move || bench.target_error.get()) />
                    </div>
                    <div>
                        <label for="answer-positions">"Neurons of a multi-token answer"</label>
                        <select id="answer-positions" prop:value=move || page.positions.get() on:change=move |ev| page.positions.set(event_target_value(&ev))
                            title="An answer the tokenizer splits is read piece by piece, each from the prompt and the pieces before it; P(answer) is their product.">
                            <option value="all" selected=move || page.positions.get() != "first">"at every piece"</option>
                            <option value="first" selected=move || page.positions.get() == "first">"where the first piece is predicted"</option>
                        </select>
                    </div>
                    <div class="share">
                        <button type="button" id="copy-link" on:click=copy_link>"Copy link"</button>
                        {move || copied.get().map(|m| view! { <span id="copy-status" role="status">{m}</span> })}
                    </div>
                </div>
                {move || models_error.get().map(|e| view! { <p class="error" role="alert">{format!("Could not list models: {e}")}</p> })}
            </section>
            <ask::Ask page=page bench=bench />
            <dataset::Dataset form=page causal=Signal::derive(move || bench.selected().is_some_and(|m| !m.masked)) />
            <analysis::AnalysisSection page=page bench=bench outcome=analysis />
            <methods::MethodsSection page=page bench=bench outcome=methods_outcome />
            <edits::Edits page=page bench=bench outcome=edit_outcome />
        </main>
    }
}
