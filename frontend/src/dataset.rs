//! Browse ParaRel: pick a relation and a fact, and start an analysis from it.

use crate::api;
use crate::state::Page;
use kn_shared::{RelationPage, RelationSummary};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// `[X]` → subject, `[Y]` → `[MASK]`; for causal models only templates whose
/// blank ends the sentence.
fn prompts_for(page: &RelationPage, subject: &str, causal: bool) -> Vec<String> {
    page.templates
        .iter()
        .filter(|t| {
            !causal
                || t.split_once("[Y]")
                    .is_some_and(|(_, a)| matches!(a.trim(), "" | "." | "!" | "?"))
        })
        .map(|t| tidy(&t.replace("[X]", subject).replace("[Y]", "[MASK]")))
        .collect()
}

/// ParaRel's templates put a space before punctuation (`[Y] .`): written
/// as a person would.
fn tidy(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    for c in prompt.chars() {
        if matches!(c, '.' | ',' | ';' | ':' | '!' | '?') && out.ends_with(' ') {
            out.pop();
        }
        out.push(c);
    }
    out
}

/// The specificity control for a fact of `relation` (the project's rule, as
/// the experiments draw it: a fact of another relation): the first fact of
/// the next relation in the list whose subject and answer are not this
/// fact's, with its prompts.
async fn control_for(
    relations: &[RelationSummary],
    relation: &str,
    fact: (&str, &str),
    causal: bool,
) -> Option<(String, Vec<String>)> {
    let at = relations.iter().position(|r| r.id == relation)?;
    for k in 1..relations.len() {
        let other = &relations[(at + k) % relations.len()];
        let Ok(p) = api::relation(&other.id, "").await else {
            continue;
        };
        let pick = p
            .facts
            .iter()
            .find(|f| f.subject != fact.0 && f.object != fact.1);
        if let Some(f) = pick {
            let ps = prompts_for(&p, &f.subject, causal);
            if !ps.is_empty() {
                return Some((f.object.clone(), ps));
            }
        }
    }
    None
}

/// The control of the same relation: the first fact of the relation's
/// unfiltered first page whose subject and answer are not this fact's (nor
/// contain or are contained in its subject: "Kingdom of Italy" is no control
/// for "Italy"), with its prompts.
async fn same_relation_control(
    relation: &str,
    fact: (&str, &str),
    causal: bool,
) -> Option<(String, Vec<String>)> {
    let p = api::relation(relation, "").await.ok()?;
    let related = |a: &str, b: &str| a.contains(b) || b.contains(a);
    p.facts
        .iter()
        .find(|o| !related(&o.subject, fact.0) && o.object != fact.1)
        .map(|o| (o.object.clone(), prompts_for(&p, &o.subject, causal)))
        .filter(|(_, ps)| !ps.is_empty())
}

/// Empty the control fields, then fill them with a fact of the same relation
/// and one of another (as the responses come).
fn fill_controls(
    form: Page,
    list: Vec<RelationSummary>,
    rel: String,
    (subject, object): (String, String),
    causal: bool,
) {
    for sig in [
        form.same_target,
        form.same_prompts,
        form.unrelated_target,
        form.unrelated_prompts,
    ] {
        sig.set(String::new());
    }
    spawn_local(async move {
        let fact = (subject.as_str(), object.as_str());
        if let Some((target, prompts)) = same_relation_control(&rel, fact, causal).await {
            form.same_target.set(target);
            form.same_prompts.set(prompts.join("\n"));
        }
        if let Some((target, prompts)) = control_for(&list, &rel, fact, causal).await {
            form.unrelated_target.set(target);
            form.unrelated_prompts.set(prompts.join("\n"));
        }
    });
}

/// "Fact (51–100 of 703 matching)": where this page is among the matches.
fn fact_label(p: Option<&RelationPage>, offset: usize) -> String {
    match p {
        None => "Fact".to_string(),
        Some(p) if p.facts.len() < p.matching => format!(
            "Fact ({}–{} of {} matching, best first)",
            offset + 1,
            offset + p.facts.len(),
            p.matching
        ),
        Some(p) => format!("Fact ({} matching)", p.matching),
    }
}

/// Previous and next pages of the matching facts.
#[component]
fn Pager(
    page: RwSignal<Option<RelationPage>>,
    offset: RwSignal<usize>,
    load_at: impl Fn(usize) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let matching = move || page.get().map_or(0, |p| p.matching);
    view! {
        <button id="facts-previous" type="button" class="secondary" disabled=move || offset.get() == 0
            on:click=move |_| load_at(offset.get_untracked().saturating_sub(api::PAGE))>"Previous 50"</button>
        <button id="facts-next" type="button" class="secondary" disabled=move || { offset.get() + api::PAGE >= matching() }
            on:click=move |_| load_at(offset.get_untracked() + api::PAGE)>"Next 50"</button>
    }
}

#[component]
pub fn Dataset(form: Page, causal: Signal<bool>) -> impl IntoView {
    let relations = RwSignal::new(Vec::<RelationSummary>::new());
    let error = RwSignal::new(None::<String>);
    let (relation, search) = (form.relation, form.search);
    let page = RwSignal::new(None::<RelationPage>);
    let fact = RwSignal::new(String::new());

    let offset = RwSignal::new(0usize);
    let load_at = move |at: usize| {
        let (id, q) = (relation.get_untracked(), search.get_untracked());
        if id.is_empty() {
            return;
        }
        offset.set(at);
        spawn_local(async move {
            let answer = api::relation_page(&id, &q, at).await;
            // Responses can come back out of order (a relation's first page after the search typed
            // into it): keep only the one that answers what the fields say now.
            if (
                relation.get_untracked(),
                search.get_untracked(),
                offset.get_untracked(),
            ) != (id, q, at)
            {
                return;
            }
            match answer {
                Ok(p) => {
                    fact.set(
                        p.facts
                            .first()
                            .map(|f| f.index.to_string())
                            .unwrap_or_default(),
                    );
                    page.set(Some(p));
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let load_page = move || load_at(0);
    spawn_local(async move {
        match api::dataset().await {
            Ok(list) => {
                if !list.iter().any(|r| r.id == relation.get_untracked()) {
                    relation.set(list.first().map(|r| r.id.clone()).unwrap_or_default());
                }
                relations.set(list);
                load_page();
            }
            Err(e) => error.set(Some(e.message)),
        }
    });
    let use_fact = move |_| {
        let Some(p) = page.get_untracked() else {
            return;
        };
        let Some(f) = p
            .facts
            .iter()
            .find(|f| f.index.to_string() == fact.get_untracked())
        else {
            return;
        };
        let causal = causal.get_untracked();
        let ps = prompts_for(&p, &f.subject, causal);
        form.target.set(f.object.clone());
        if let Some(first) = ps.first() {
            form.prompt.set(first.clone());
        }
        form.prompts.set(ps.join("\n"));
        // The controls: never this fact itself.
        let fact = (f.subject.clone(), f.object.clone());
        fill_controls(
            form,
            relations.get_untracked(),
            p.relation.id.clone(),
            fact,
            causal,
        );
    };
    view! {
        <section class="panel wide" id="dataset" aria-labelledby="dataset-title">
            <h2 id="dataset-title">"Dataset: ParaRel"</h2>
            <p class="hint">"Pick a fact: \u{201c}Use this fact\u{201d} fills the answer, the Ask prompt, the paraphrases, and the controls: a fact of the same relation and, as the methods\u{2019} unrelated fact too, a fact of another relation."</p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="row3">
            <div>
            <label for="relation">"Relation"</label>
            <select id="relation" prop:value=move || relation.get() on:change=move |ev| { relation.set(event_target_value(&ev)); load_page(); }>
                {move || relations.get().into_iter().map(|r| {
                    let label = format!("{} {} ({}, {} facts, {} templates)", r.id, r.label, r.kind, r.facts, r.templates);
                    view! { <option value=r.id.clone() selected=r.id == relation.get_untracked()>{label}</option> }
                }).collect_view()}
            </select>
            </div>
            <div>
            <label for="fact-search">"Find a fact (subject or answer)"</label>
            <input id="fact-search" type="search" prop:value=move || search.get() on:input=move |ev| { search.set(event_target_value(&ev)); load_page(); } />
            </div>
            <div>
            <label for="fact">{move || fact_label(page.get().as_ref(), offset.get())}</label>
            <select id="fact" prop:value=move || fact.get() on:change=move |ev| fact.set(event_target_value(&ev))>
                {move || page.get().map(|p| p.facts.into_iter().map(|f| {
                    let label = format!("{} → {}", f.subject, f.object);
                    view! { <option value=f.index.to_string()>{label}</option> }
                }).collect_view())}
            </select>
            </div>
            </div>
            <div class="buttons">
                <button id="use-fact" type="button" on:click=use_fact>"Use this fact"</button>
                <Pager page=page offset=offset load_at=load_at />
            </div>
            {move || page.get().map(|p| view! {
                <details id="templates">
                    <summary>{format!("{} templates of {}", p.templates.len(), p.relation.id)}</summary>
                    <ul>{p.templates.into_iter().map(|t| view! { <li><code>{t}</code></li> }).collect_view()}</ul>
                </details>
            })}
            <p class="hint">{move || if causal.get() { "Causal model: only templates whose blank ends the sentence are used." } else { "" }}</p>
        </section>
    }
}
