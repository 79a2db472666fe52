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
mod methods_view;
mod neuron;
mod png;
mod restore;
mod specificity;
mod state;
mod ui;

use kn_shared::{ActiveEdit, ModelSummary};
use leptos::prelude::*;
use leptos::task::spawn_local;
use state::Page;

fn main() {
    console_error_panic_hook::set_once();
    // index.html shows a line while the WebAssembly downloads and starts.
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app-loading"))
    {
        el.remove();
    }
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

/// Where the studio shows each kind of result.
#[derive(Clone, Copy)]
struct Outcomes {
    analysis: analysis::Outcome,
    edit: edits::Outcome,
    methods: methods_view::Outcome,
}

/// Show a stored result where its kind belongs, its request in the forms;
/// returns the edit sets the page continues on (those it ran on, and a
/// shared edit's own).
fn open_stored(page: Page, views: Outcomes, r: kn_shared::StoredResult) -> Vec<String> {
    restore::restore(page, r.request());
    let mut ran_on = r.request().edits().to_vec();
    let id = r.id.clone();
    let (_, output) = r.into_parts();
    match output {
        kn_shared::ComputeOutput::Analysis(result) => {
            views.analysis.set(Some(Ok(kn_shared::AnalyzeResponse {
                id,
                cached: true,
                result: *result,
            })));
            ui::scroll_to("analysis");
        }
        kn_shared::ComputeOutput::Methods(m) => {
            views.methods.set(Some(Ok((id, *m))));
            ui::scroll_to("methods-result");
        }
        kn_shared::ComputeOutput::Edit(e) => {
            // A shared edit: the page continues on the edited model.
            ran_on.push(e.edit.id.clone());
            views.edit.set(Some(("link", Ok(*e))));
            ui::scroll_to("update-result");
        }
    }
    ran_on
}

/// Where to start: the path through the studio, one sentence a step.
#[component]
fn Guide() -> impl IntoView {
    let steps = [
        ("ask", "Ask", "The model answers a cloze question; the answer above is the fact studied."),
        ("analyze-section", "Find knowledge neurons", "Integrated gradients over the feed-forward neurons at the blank, refined across paraphrases, beside the activation baseline."),
        ("analyze-section", "Suppress and amplify", "The found neurons are switched off (×0) and doubled (×2) on the fact and on control facts: do they carry this fact?"),
        ("edit-section", "Edit", "Update the fact or erase the neurons, on this page only; find an edit strength that works, or learn that none does."),
    ];
    view! {
        <nav class="panel wide guide" id="guide" aria-label="where to start">
            <ol>
                {steps.into_iter().map(|(to, name, what)| view! {
                    <li><a href=format!("#{to}")>{name}</a>" "<span class="muted">{what}</span></li>
                }).collect_view()}
            </ol>
        </nav>
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
    let methods_outcome: methods_view::Outcome = RwSignal::new(None);
    let url_edits = Page::url_edits();
    load_edits(page.edits, url_edits.clone());
    page.sync_url();

    // A permalink (/r/<id>) reopens a stored result without recomputing.
    if let Some(id) = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .and_then(|p| p.strip_prefix("/r/").map(str::to_string))
    {
        let keep_url_edits = !url_edits.is_empty();
        let views = Outcomes {
            analysis,
            edit: edit_outcome,
            methods: methods_outcome,
        };
        spawn_local(async move {
            match api::result(&id, |_| {}).await {
                Err(e) => analysis.set(Some(Err(e))),
                Ok(r) => {
                    let ran_on = open_stored(page, views, r);
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
                                let label = format!("{} ({}, {} layers × {} neurons, {} weights, {} compute)", m.name, m.arch, m.n_layers, m.d_ff, m.storage, m.compute);
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
                        <button type="button" id="copy-link" class="secondary" on:click=copy_link>"Copy link"</button>
                        {move || copied.get().map(|m| view! { <span id="copy-status" role="status">{m}</span> })}
                    </div>
                </div>
                {move || models_error.get().map(|e| view! { <p class="error" role="alert">{format!("Could not list models: {e}")}</p> })}
            </section>
            <Guide />
            <ask::Ask page=page bench=bench />
            <dataset::Dataset form=page causal=Signal::derive(move || bench.selected().is_some_and(|m| !m.masked)) />
            <analysis::AnalysisSection page=page bench=bench outcome=analysis />
            <methods_view::MethodsSection page=page bench=bench outcome=methods_outcome />
            <edits::Edits page=page bench=bench outcome=edit_outcome />
        </main>
    }
}
