//! Edit forms: update a fact through its knowledge neurons, erase neurons, and
//! the page's list of edit sets with undo, download and upload.
//!
//! An edit changes nothing on the server: it is a stored edit set that this
//! page's requests name (the list lives in the URL). Undo drops it from the
//! list; the files on disk and other pages never see it.

use crate::api;
use kn_shared::{
    ActiveEdit, EditResponse, EraseRelationRequest, EraseRequest, EvalPrompt, Neuron,
    UpdateFactRequest,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// `prompt | answer` lines.
fn eval_lines(text: &str) -> Result<Vec<EvalPrompt>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.rsplit_once('|')
                .map(|(p, t)| EvalPrompt {
                    prompt: p.trim().into(),
                    target: t.trim().into(),
                })
                .ok_or_else(|| {
                    format!("side-effect line `{l}`: write `prompt with [MASK] | answer`")
                })
        })
        .collect()
}

#[component]
pub fn Edits(
    model: RwSignal<String>,
    target: RwSignal<String>,
    prompts: RwSignal<String>,
    /// The page's edit sets, oldest first.
    edits: RwSignal<Vec<ActiveEdit>>,
    /// The last edit's outcome (or a shared edit's, from its permalink).
    outcome: RwSignal<Option<Result<EditResponse, String>>>,
) -> impl IntoView {
    let new_target = RwSignal::new(String::new());
    let k = RwSignal::new("4".to_string());
    let lambda1 = RwSignal::new("1".to_string());
    let lambda2 = RwSignal::new("8".to_string());
    let norm_scaled = RwSignal::new(false);
    let eval = RwSignal::new(String::new());
    let erase_neurons = RwSignal::new(String::new());
    let erase_with = RwSignal::new("zero".to_string());
    let busy = RwSignal::new(false);
    let erase_relation = RwSignal::new("P36".to_string());
    let erase_facts = RwSignal::new("10".to_string());
    let erase_top = RwSignal::new("20".to_string());
    let job = RwSignal::new(None::<kn_shared::JobStatus>);
    let model_name = move || Some(model.get_untracked()).filter(|m| !m.is_empty());
    let ids = move || {
        edits
            .get_untracked()
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    // A new edit was made on top of the page's edits: it joins them.
    let made = move |r: Result<EditResponse, String>| {
        if let Ok(e) = &r {
            let edit = e.edit.clone();
            edits.update(|list| {
                if !list.iter().any(|x| x.id == edit.id) {
                    list.push(edit);
                }
            });
        }
        outcome.set(Some(r));
    };

    let update = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let eval = match eval_lines(&eval.get_untracked()) {
            Ok(e) => e,
            Err(e) => return outcome.set(Some(Err(e))),
        };
        let num = |s: RwSignal<String>| s.get_untracked().trim().parse::<f64>().unwrap_or(f64::NAN);
        let req = UpdateFactRequest {
            model: model_name(),
            target: target.get_untracked().trim().into(),
            new_target: new_target.get_untracked().trim().into(),
            prompts: prompts
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            k: k.get_untracked().trim().parse().unwrap_or(0),
            lambda1: num(lambda1),
            lambda2: num(lambda2),
            norm_scaled: norm_scaled.get_untracked(),
            steps: 20,
            eval,
            edits: ids(),
        };
        busy.set(true);
        spawn_local(async move {
            let r = if req.new_target.is_empty() {
                Err("Give the new answer t'.".to_string())
            } else {
                api::update_fact_job(&req, move |s| job.set(Some(s))).await
            };
            job.set(None);
            made(r);
            busy.set(false);
        });
    };
    let erase = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let neurons: Result<Vec<Neuron>, String> = erase_neurons
            .get_untracked()
            .split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect();
        let neurons = match neurons {
            Ok(n) => n,
            Err(e) => return outcome.set(Some(Err(e))),
        };
        let eval = match eval_lines(&eval.get_untracked()) {
            Ok(e) => e,
            Err(e) => return outcome.set(Some(Err(e))),
        };
        let req = EraseRequest {
            model: model_name(),
            neurons,
            with: erase_with.get_untracked(),
            eval,
            edits: ids(),
        };
        busy.set(true);
        spawn_local(async move {
            made(api::erase(&req).await);
            busy.set(false);
        });
    };
    let erase_rel = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = EraseRelationRequest {
            model: model_name(),
            relation: erase_relation.get_untracked().trim().to_string(),
            facts: erase_facts.get_untracked().trim().parse().unwrap_or(0),
            seed: 0,
            top: erase_top.get_untracked().trim().parse().unwrap_or(0),
            steps: 20,
            with: erase_with.get_untracked(),
            edits: ids(),
        };
        busy.set(true);
        spawn_local(async move {
            let r = api::erase_relation_job(&req, move |s| job.set(Some(s))).await;
            job.set(None);
            made(r);
            busy.set(false);
        });
    };
    // Undo: the page stops naming the set (and the sets made on top of it,
    // which expect its values under them).
    let undo = move |id: String| {
        edits.update(|list| {
            if let Some(i) = list.iter().position(|e| e.id == id) {
                list.truncate(i);
            }
        })
    };
    let upload = move |ev: leptos::ev::Event| {
        use wasm_bindgen::JsCast;
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        input.set_value("");
        spawn_local(async move {
            let text = wasm_bindgen_futures::JsFuture::from(file.text())
                .await
                .ok()
                .and_then(|v| v.as_string());
            let r = match text {
                Some(t) => api::upload_edit_set(t).await,
                None => Err("could not read the file".into()),
            };
            match r {
                Ok(e) => edits.update(|list| {
                    if !list.iter().any(|x| x.id == e.id) {
                        list.push(e);
                    }
                }),
                Err(e) => outcome.set(Some(Err(format!("upload: {e}")))),
            }
        });
    };

    view! {
        <section class="panel wide" aria-labelledby="edit-title">
            <h2 id="edit-title">"Edit"</h2>
            <div class="compare">
                <form id="update-form" on:submit=update>
                    <h3>"Update the fact (target → new answer)"</h3>
                    <p class="hint">"Uses the target and the paraphrases above; edits the value slots of the top-k knowledge neurons: v := v − λ1·e(t) + λ2·e(t′)."</p>
                    <label for="new-target">"New answer t′"</label>
                    <input id="new-target" type="text" placeholder="London" prop:value=move || new_target.get() on:input=move |ev| new_target.set(event_target_value(&ev)) />
                    <div class="row3">
                        <div><label for="k">"k"</label><input id="k" type="number" min="1" prop:value=move || k.get() on:input=move |ev| k.set(event_target_value(&ev)) /></div>
                        <div><label for="lambda1">"λ1"</label><input id="lambda1" type="number" step="any" prop:value=move || lambda1.get() on:input=move |ev| lambda1.set(event_target_value(&ev)) /></div>
                        <div><label for="lambda2">"λ2"</label><input id="lambda2" type="number" step="any" prop:value=move || lambda2.get() on:input=move |ev| lambda2.set(event_target_value(&ev)) /></div>
                    </div>
                    <label class="check"><input id="norm-scaled" type="checkbox" prop:checked=move || norm_scaled.get() on:change=move |ev| norm_scaled.set(event_target_checked(&ev)) />" rescale embeddings to the slot's norm (the authors' code)"</label>
                    <button id="update" type="submit" disabled=move || busy.get()>"Update fact"</button>
                </form>
                <form id="erase-form" on:submit=erase>
                    <h3>"Erase neurons"</h3>
                    <label for="erase-neurons">"Neurons (LAYER:INDEX, comma-separated)"</label>
                    <input id="erase-neurons" type="text" placeholder="L29:1066, L29:1285" prop:value=move || erase_neurons.get() on:input=move |ev| erase_neurons.set(event_target_value(&ev)) />
                    <label for="erase-with">"Set their value slots to"</label>
                    <select id="erase-with" prop:value=move || erase_with.get() on:change=move |ev| erase_with.set(event_target_value(&ev))>
                        <option value="zero">"zero (the paper)"</option>
                        <option value="unk">"the [UNK] embedding"</option>
                    </select>
                    <label for="eval">"Side-effect prompts for perplexity (prompt | answer, one per line)"</label>
                    <textarea id="eval" rows="3" prop:value=move || eval.get() on:input=move |ev| eval.set(event_target_value(&ev))></textarea>
                    <button id="erase" type="submit" disabled=move || busy.get()>"Erase"</button>
                </form>
            </div>
            <form id="erase-relation-form" on:submit=erase_rel>
                <h3>"Erase a relation"</h3>
                <p class="hint">"Finds the knowledge neurons of a seeded sample of the relation's facts and erases the most frequent (20 in the paper), as a job; reports perplexity and accuracy on the relation and on others."</p>
                <div class="row3">
                    <div><label for="erase-relation">"Relation"</label><input id="erase-relation" type="text" prop:value=move || erase_relation.get() on:input=move |ev| erase_relation.set(event_target_value(&ev)) /></div>
                    <div><label for="erase-facts">"Facts sampled"</label><input id="erase-facts" type="number" min="1" max="200" prop:value=move || erase_facts.get() on:input=move |ev| erase_facts.set(event_target_value(&ev)) /></div>
                    <div><label for="erase-top">"Neurons erased"</label><input id="erase-top" type="number" min="1" prop:value=move || erase_top.get() on:input=move |ev| erase_top.set(event_target_value(&ev)) /></div>
                </div>
                <button id="erase-relation-run" type="submit" disabled=move || busy.get()>"Erase relation"</button>
            </form>
            {move || busy.get().then(|| {
                let (done, total) = job.get().map_or((0, 0), |s| (s.done, s.total));
                view! { <div class="progress"><progress id="edit-progress" max=total.max(1) value=done aria-label="editing"></progress>
                    <span>{if total > 0 { format!("{done} of {total} done") } else { String::new() }}</span></div> }
            })}
            {move || outcome.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert" id="edit-error">{e}</p> }.into_any(),
                Ok(r) => view! {
                    <div id="edit-result">
                        <p>{format!("{} — edited {}", r.edit.description, r.edit.neurons.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))}
                            " · permalink: " <a id="edit-permalink" href=format!("/r/{}", r.id)>{format!("/r/{}", r.id)}</a></p>
                        <p id="edit-metrics">
                            {format!("change rate {:.0}%, success rate {:.0}%", 100.0 * r.metrics.change_rate, 100.0 * r.metrics.success_rate)}
                            {r.metrics.perplexity.iter().map(|p| format!("; perplexity on {} ({} prompts) {:.2} → {:.2}", p.set, p.prompts, p.before, p.after)).collect::<String>()}
                            {r.random.as_ref().map(|x| format!("; random neurons: change {:.0}%, success {:.0}%", 100.0 * x.change_rate, 100.0 * x.success_rate)).unwrap_or_default()}
                        </p>
                        <table id="edit-predictions">
                            <thead><tr><th>"prompt"</th><th>"top-1 before"</th><th>"top-1 after"</th></tr></thead>
                            <tbody>{r.predictions.into_iter().map(|p| view! {
                                <tr><td>{p.prompt}</td><td>{format!("{:?}", p.top1_before)}</td><td>{format!("{:?}", p.top1_after)}</td></tr>
                            }).collect_view()}</tbody>
                        </table>
                    </div>
                }.into_any(),
            })}
            <h3>"This page's edits"</h3>
            <p class="hint">"Every request of this page runs on these edit sets, in order; they live in the page's address, so a link carries them and other pages never see them."</p>
            <ul id="edits">
                {move || {
                    let list = edits.get();
                    if list.is_empty() {
                        return view! { <li class="muted">"None: the model is as loaded."</li> }.into_any();
                    }
                    list.into_iter().map(|e| {
                        let id = e.id.clone();
                        view! {
                            <li>
                                {e.description.clone()} " "
                                <a href=format!("/api/edit-sets/{}", e.id) download=format!("edit-{}.json", e.id)>"download"</a> " "
                                <button type="button" class="undo" on:click=move |_| undo(id.clone())>"Undo"</button>
                            </li>
                        }
                    }).collect_view().into_any()
                }}
            </ul>
            <label for="edit-upload">"Add a saved edit set (JSON)"</label>
            <input id="edit-upload" type="file" accept="application/json,.json" on:change=upload />
        </section>
    }
}
