//! Edit forms: update a fact through its knowledge neurons, erase neurons,
//! erase a relation; each form's progress and result directly under it; and
//! the page's list of edit sets with undo, download and upload.
//!
//! An edit changes nothing on the server: it is a stored edit set that this
//! page's requests name (the list lives in the URL). Undo drops it from the
//! list; the files on disk and other pages never see it.

use crate::api::{self, Failure};
use crate::state::{lines, Page};
use crate::ui::{self, Cell, Help, SortTable};
use crate::Workbench;
use kn_shared::{
    EditResponse, EraseRelationRequest, EraseRequest, EvalPrompt, Neuron, UpdateFactRequest,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// An edit's outcome and the form it came from (`update`, `erase`,
/// `erase-relation`, or `link` for one opened from its permalink).
pub type Outcome = RwSignal<Option<(&'static str, Result<EditResponse, Failure>)>>;

/// `prompt | answer` lines.
fn eval_lines(text: &str) -> Result<Vec<EvalPrompt>, Failure> {
    lines(text)
        .into_iter()
        .map(|l| {
            l.rsplit_once('|')
                .map(|(p, t)| EvalPrompt {
                    prompt: p.trim().into(),
                    target: t.trim().into(),
                })
                .ok_or_else(|| {
                    Failure::from(format!(
                        "side-effect line `{l}`: write `prompt with [MASK] | answer`"
                    ))
                })
        })
        .collect()
}

/// The edit forms' shared state: which form is working, its job's progress,
/// and the last outcome (shown under the form it came from).
#[derive(Clone, Copy)]
struct EditForms {
    page: Page,
    outcome: Outcome,
    busy: RwSignal<Option<&'static str>>,
    job: RwSignal<Option<kn_shared::JobStatus>>,
}

impl EditForms {
    fn model_name(self) -> Option<String> {
        Some(self.page.model.get_untracked()).filter(|m| !m.is_empty())
    }

    fn disabled(self) -> bool {
        self.busy.get().is_some()
    }

    fn start(self, form: &'static str) {
        self.busy.set(Some(form));
        self.outcome.set(None);
        ui::scroll_to(&format!("{form}-result"));
    }

    fn failed(self, form: &'static str, e: Failure) {
        self.outcome.set(Some((form, Err(e))));
    }

    /// A new edit was made on top of the page's edits: it joins them.
    fn made(self, form: &'static str, r: Result<EditResponse, Failure>) {
        if let Ok(e) = &r {
            let edit = e.edit.clone();
            self.page.edits.update(|list| {
                if !list.iter().any(|x| x.id == edit.id) {
                    list.push(edit);
                }
            });
        }
        self.outcome.set(Some((form, r)));
        self.busy.set(None);
        ui::scroll_to(&format!("{form}-result"));
    }

    /// A searched edit: shown, not added (its result has an "Apply" button).
    fn shown(self, form: &'static str, r: Result<EditResponse, Failure>) {
        self.outcome.set(Some((form, r)));
        self.busy.set(None);
        ui::scroll_to(&format!("{form}-result"));
    }

    /// Add an edit the page was shown to the page's edits.
    fn apply(self, edit: kn_shared::ActiveEdit) {
        self.page.edits.update(|list| {
            if !list.iter().any(|x| x.id == edit.id) {
                list.push(edit);
            }
        });
    }

    /// The progress and the result of `form`, shown directly under it.
    fn under(self, form: &'static str) -> impl IntoView {
        let EditForms {
            outcome, busy, job, ..
        } = self;
        let clock = ui::Eta::new();
        view! {
            <div id=format!("{form}-result") class="under">
                {move || (busy.get() == Some(form)).then(|| {
                    let (done, total, id) = job.get().map_or((0, 0, String::new()), |s| (s.done, s.total, s.id));
                    let left = clock.left(&id, done, total);
                    view! { <div class="progress"><progress id="edit-progress" max=total.max(1) value=done aria-label="editing"></progress>
                        <span>{if total > 0 { format!("{done} of {total} done{left}") } else { "working…".to_string() }}</span></div> }
                })}
                {move || outcome.get().filter(|(f, _)| *f == form || (form == "update" && *f == "link")).map(|(_, r)| match r {
                    Err(e) => view! { <p class="error" role="alert" id="edit-error">{e.message}</p> }.into_any(),
                    Ok(r) => view! { <EditResult r=r forms=self /> }.into_any(),
                })}
            </div>
        }
    }
}

fn number(s: RwSignal<String>) -> f64 {
    s.get_untracked().trim().parse::<f64>().unwrap_or(f64::NAN)
}

/// The update form's request, or what to fix (an empty answer is the fact
/// bar's to say).
fn update_request(forms: EditForms, target: String) -> Result<UpdateFactRequest, Failure> {
    let page = forms.page;
    let req = UpdateFactRequest {
        model: forms.model_name(),
        target,
        new_target: page.new_target.get_untracked().trim().into(),
        prompts: lines(&page.prompts.get_untracked()),
        k: page.k.get_untracked().trim().parse().unwrap_or(0),
        lambda1: number(page.lambda1),
        lambda2: number(page.lambda2),
        norm_scaled: page.norm_scaled.get_untracked() == "1",
        steps: page.steps.get_untracked().trim().parse().unwrap_or(20),
        eval: eval_lines(&page.eval.get_untracked())?,
        edits: page.edit_ids(),
        search: false,
    };
    if req.new_target.is_empty() {
        return Err("Give the new answer t′.".into());
    }
    Ok(req)
}

fn erase_request(forms: EditForms) -> Result<EraseRequest, Failure> {
    let page = forms.page;
    let neurons: Vec<Neuron> = page
        .erase_neurons
        .get_untracked()
        .split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, String>>()?;
    // The fact bar's fact is the one erased (measured first); without an
    // answer there, only the side effects are measured.
    let target = page.target.get_untracked().trim().to_string();
    let prompts = if target.is_empty() {
        Vec::new()
    } else {
        lines(&page.prompts.get_untracked())
    };
    Ok(EraseRequest {
        model: forms.model_name(),
        neurons,
        with: page.erase_with.get_untracked(),
        target: if prompts.is_empty() {
            String::new()
        } else {
            target
        },
        prompts,
        eval: eval_lines(&page.eval.get_untracked())?,
        edits: page.edit_ids(),
    })
}

fn erase_relation_request(forms: EditForms) -> EraseRelationRequest {
    let page = forms.page;
    EraseRelationRequest {
        model: forms.model_name(),
        relation: page.erase_relation.get_untracked().trim().to_string(),
        facts: page.erase_facts.get_untracked().trim().parse().unwrap_or(0),
        seed: 0,
        top: page.erase_top.get_untracked().trim().parse().unwrap_or(0),
        steps: 20,
        with: page.erase_with.get_untracked(),
        edits: page.edit_ids(),
    }
}

#[component]
pub fn Edits(page: Page, bench: Workbench, outcome: Outcome) -> impl IntoView {
    let forms = EditForms {
        page,
        outcome,
        busy: RwSignal::new(None),
        job: RwSignal::new(None),
    };
    view! {
        <section class="panel wide" id="edit-section" aria-labelledby="edit-title">
            <h2 id="edit-title">"Edit"</h2>
            // One form per row: their results are tables that need the width.
            <UpdateForm forms=forms bench=bench />
            <EraseForm forms=forms />
            <EraseRelationForm forms=forms />
            <EditList forms=forms />
        </section>
    }
}

#[component]
fn UpdateForm(forms: EditForms, bench: Workbench) -> impl IntoView {
    let page = forms.page;
    // `search`: find the smallest λ2 that works and show it (applied only on
    // request); otherwise update with the form's settings.
    let run = move |search: bool| {
        let target = page.target.get_untracked().trim().to_string();
        if target.is_empty() {
            bench.target_error.set(Some(
                "Give the current answer t above: the update replaces it.".into(),
            ));
            ui::scroll_to("fact-bar");
            return;
        }
        let req = match update_request(forms, target) {
            Ok(r) => UpdateFactRequest { search, ..r },
            Err(e) => return forms.failed("update", e),
        };
        forms.start("update");
        spawn_local(async move {
            let r = api::update_fact_job(&req, move |s| forms.job.set(Some(s))).await;
            forms.job.set(None);
            if search {
                forms.shown("update", r);
            } else {
                forms.made("update", r);
            }
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        run(false);
    };
    let paper = move |_| {
        page.lambda1.set("1".into());
        page.lambda2.set("8".into());
        page.norm_scaled.set(String::new());
        run(false);
    };
    view! {
        <form id="update-form" novalidate on:submit=submit>
            <h3>"Update the fact (answer → new answer)"</h3>
            <p class="hint">"Uses the answer and the paraphrases above; edits the value slots of the top-k knowledge neurons: v := v − λ1·e(t) + λ2·e(t′)."</p>
            <label for="new-target">"New answer t′"</label>
            <input id="new-target" type="text" placeholder="e.g. London" prop:value=move || page.new_target.get() on:input=move |ev| page.new_target.set(event_target_value(&ev)) />
            <div class="row3">
                <div><label for="k">"k " <Help id="k" text="How many of the fact's knowledge neurons are edited, strongest first (the paper: 4)." /></label><input id="k" type="number" min="1" prop:value=move || page.k.get() on:input=move |ev| page.k.set(event_target_value(&ev)) /></div>
                <div><label for="lambda1">"λ1"</label><input id="lambda1" type="number" step="any" prop:value=move || page.lambda1.get() on:input=move |ev| page.lambda1.set(event_target_value(&ev)) /></div>
                <div><label for="lambda2">"λ2 " <Help id="lambda" text="How much of the old answer's embedding is taken out (λ1) and of the new one's put in (λ2). The paper uses λ1 = 1, λ2 = 8, which can wreck a small model's perplexity: “Find a strength that works” tries a grid of λ2 and says which, if any, works on this model." /></label><input id="lambda2" type="number" step="any" prop:value=move || page.lambda2.get() on:input=move |ev| page.lambda2.set(event_target_value(&ev)) /></div>
            </div>
            <label class="check"><input id="norm-scaled" type="checkbox" prop:checked=move || page.norm_scaled.get() == "1"
                on:change=move |ev| page.norm_scaled.set(if event_target_checked(&ev) { "1".into() } else { String::new() }) />" rescale embeddings to the slot's norm (the authors' code)"</label>
            <label for="eval">"Side-effect prompts for perplexity (prompt | answer, one per line)"</label>
            <textarea id="eval" rows="3" prop:value=move || page.eval.get() on:input=move |ev| page.eval.set(event_target_value(&ev)) on:keydown=ui::submit_on_ctrl_enter></textarea>
            <p class="hint">"Find a strength: tries λ2 from 0.25 to 12 and shows the smallest with which t′ becomes the answer to the first prompt while the model's perplexity on other prompts at most doubles (the side-effect prompts, or one ParaRel prompt from each of 20 relations). Nothing is applied until you say so."</p>
            <div class="buttons">
                <button id="find-strength" type="button" disabled=move || forms.disabled() on:click=move |_| run(true)>"Find a strength that works"</button>
                <button id="update" type="submit" class="secondary" disabled=move || forms.disabled()>"Update with these settings"</button>
                <button id="paper-setting" type="button" class="secondary" disabled=move || forms.disabled() on:click=paper>"The paper's setting (λ1 = 1, λ2 = 8)"</button>
            </div>
            {forms.under("update")}
        </form>
    }
}

#[component]
fn EraseForm(forms: EditForms) -> impl IntoView {
    let page = forms.page;
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = match erase_request(forms) {
            Ok(r) => r,
            Err(e) => return forms.failed("erase", e),
        };
        forms.start("erase");
        spawn_local(async move {
            let r = api::erase(&req).await;
            forms.made("erase", r);
        });
    };
    view! {
        <form id="erase-form" novalidate on:submit=submit>
            <h3>"Erase neurons"</h3>
            <label for="erase-neurons">"Neurons (LAYER:INDEX, comma-separated)"</label>
            <input id="erase-neurons" type="text" placeholder="e.g. L29:1066, L29:1285" prop:value=move || page.erase_neurons.get() on:input=move |ev| page.erase_neurons.set(event_target_value(&ev)) />
            <label for="erase-with">"Set their value slots to"</label>
            <select id="erase-with" prop:value=move || page.erase_with.get() on:change=move |ev| page.erase_with.set(event_target_value(&ev))>
                <option value="zero">"zero (the paper)"</option>
                <option value="unk">"the [UNK] embedding"</option>
            </select>
            <p class="hint" id="erase-fact">{move || {
                let target = page.target.get();
                let n = lines(&page.prompts.get()).len();
                if target.trim().is_empty() || n == 0 {
                    "Measured on the side-effect prompts of the update form only: give an answer and prompts above to see whether the fact is forgotten.".to_string()
                } else {
                    format!("Measured on the fact above ({:?}, {n} prompts: is it forgotten?), then on the side-effect prompts of the update form.", target.trim())
                }
            }}</p>
            <button id="erase" type="submit" disabled=move || forms.disabled()>"Erase"</button>
            {forms.under("erase")}
        </form>
    }
}

#[component]
fn EraseRelationForm(forms: EditForms) -> impl IntoView {
    let page = forms.page;
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = erase_relation_request(forms);
        forms.start("erase-relation");
        spawn_local(async move {
            let r = api::erase_relation_job(&req, move |s| forms.job.set(Some(s))).await;
            forms.job.set(None);
            forms.made("erase-relation", r);
        });
    };
    view! {
        <form id="erase-relation-form" novalidate on:submit=submit>
            <h3>"Erase a relation"</h3>
            <p class="hint">"Finds the knowledge neurons of a seeded sample of the relation's facts and erases the most frequent (20 in the paper), as a job; reports perplexity and accuracy on the relation and on others."</p>
            <div class="row3">
                <div><label for="erase-relation">"Relation"</label><input id="erase-relation" type="text" prop:value=move || page.erase_relation.get() on:input=move |ev| page.erase_relation.set(event_target_value(&ev)) /></div>
                <div><label for="erase-facts">"Facts sampled"</label><input id="erase-facts" type="number" min="1" max="50" prop:value=move || page.erase_facts.get() on:input=move |ev| page.erase_facts.set(event_target_value(&ev)) /></div>
                <div><label for="erase-top">"Neurons erased"</label><input id="erase-top" type="number" min="1" prop:value=move || page.erase_top.get() on:input=move |ev| page.erase_top.set(event_target_value(&ev)) /></div>
            </div>
            <button id="erase-relation-run" type="submit" disabled=move || forms.disabled()>"Erase relation"</button>
            {forms.under("erase-relation")}
        </form>
    }
}

/// Read a chosen edit-set file and add it to the page's edits.
fn upload(forms: EditForms, ev: leptos::ev::Event) {
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
            Ok(e) => forms.page.edits.update(|list| {
                if !list.iter().any(|x| x.id == e.id) {
                    list.push(e);
                }
            }),
            Err(e) => forms.failed("upload", format!("upload: {e}").into()),
        }
    });
}

/// The page's edit sets, with download and undo, and an upload.
#[component]
fn EditList(forms: EditForms) -> impl IntoView {
    let page = forms.page;
    // Undo: the page stops naming the set (and the sets made on top of it,
    // which expect its values under them).
    let undo = move |id: String| {
        page.edits.update(|list| {
            if let Some(i) = list.iter().position(|e| e.id == id) {
                list.truncate(i);
            }
        })
    };
    view! {
        <h3>"This page's edits"</h3>
        <p class="hint">"Every request of this page runs on these edit sets, in order; they live in the page's address, so a link carries them and other pages never see them."</p>
        <ul id="edits">
            {move || {
                let list = page.edits.get();
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
        <input id="edit-upload" type="file" accept="application/json,.json" on:change=move |ev| upload(forms, ev) />
        {forms.under("upload")}
    }
}

/// What an edit did: an erase in its own terms ([`EraseResult`]); an update's
/// rates, side effects, per prompt P and rank of the old and new answers
/// before and after, and warnings when it went wrong.
#[component]
fn EditResult(r: EditResponse, forms: EditForms) -> impl IntoView {
    if r.erase.is_some() {
        return view! { <EraseResult r=r /> }.into_any();
    }
    if r.strength.is_some() {
        return view! { <StrengthResult r=r forms=forms /> }.into_any();
    }
    view! { <UpdateResult r=r /> }.into_any()
}

/// An edit-strength search: the setting that works (with "Apply"), or, when
/// none does, that in words, before anything is applied; every try in a table.
#[component]
fn StrengthResult(r: EditResponse, forms: EditForms) -> impl IntoView {
    let Some(s) = r.strength.clone() else {
        return ().into_any();
    };
    let new = r
        .predictions
        .first()
        .and_then(|p| p.new_answer.as_ref())
        .map_or_else(String::new, |n| n.token.trim().to_string());
    let prompt = s.prompt.replace("[MASK]", "___");
    let applied = Signal::derive({
        let id = r.edit.id.clone();
        move || forms.page.edits.get().iter().any(|e| e.id == id)
    });
    let (lo, hi) = (
        s.tried.first().map_or(0.0, |t| t.lambda2),
        s.tried.last().map_or(0.0, |t| t.lambda2),
    );
    let verdict = match s.tried.iter().find(|t| Some(t.lambda2) == s.chosen).cloned() {
        Some(t) => {
            let edit = r.edit.clone();
            view! {
                <p id="strength-verdict" class="ok">{format!(
                    "λ2 = {} works: the model now answers {new:?} to “{prompt}” (P = {}), and its perplexity on {} goes {} → {} ({}). It is not applied yet.",
                    ui::setting(t.lambda2), ui::prob(t.p_new), s.side, ui::value(t.perplexity_before), ui::value(t.perplexity_after),
                    ui::ratio(t.perplexity_after / t.perplexity_before))}</p>
                <button type="button" id="apply-strength" disabled=move || applied.get() on:click=move |_| forms.apply(edit.clone())>
                    {move || if applied.get() { "Applied to this page".to_string() } else { format!("Apply this edit (λ2 = {})", ui::setting(t.lambda2)) }}
                </button>
            }
            .into_any()
        }
        None => view! {
            <p id="strength-verdict" class="warning" role="alert">{format!(
                "No edit strength works for this fact on this model. We tried λ2 from {} to {}: with none of them does the model answer {new:?} to “{prompt}” while still answering other questions about as well as before (its perplexity on {} must not more than double). Nothing was applied: editing these neurons does not move this fact here. The paper's setting is one click away if you want to see what it does.",
                ui::setting(lo), ui::setting(hi), s.side)}</p>
        }
        .into_any(),
    };
    let rows: Vec<_> = s
        .tried
        .iter()
        .map(|t| {
            (
                None,
                vec![
                    Cell::num(ui::setting(t.lambda2), t.lambda2),
                    Cell::text(format!("{:?}", t.top1)),
                    Cell::num(ui::prob(t.p_new), t.p_new),
                    Cell::num(format!("{:.0}%", 100.0 * t.success_rate), t.success_rate),
                    Cell::num(
                        ui::ratio(t.perplexity_after / t.perplexity_before),
                        t.perplexity_after / t.perplexity_before,
                    ),
                    Cell::text(if t.works { "yes" } else { "no" }.to_string()),
                ],
            )
        })
        .collect();
    let headers = vec![
        "λ2",
        "top-1 on the edit prompt",
        "P(t′) there",
        "prompts answering t′",
        "perplexity",
        "works",
    ];
    view! {
        <div id="edit-result">
            {verdict}
            <p class="meta">{if s.chosen.is_some() { format!("The edit found: {}", r.edit.description) } else { format!("The form's setting, measured for reference (not applied): {}", r.edit.description) }}" · permalink: "
                <a id="edit-permalink" href=format!("/r/{}", r.id)>{format!("/r/{}", r.id)}</a></p>
            <SortTable id="strength-table" headers=headers rows=rows />
        </div>
    }
    .into_any()
}

/// The edit's description, neurons and permalink.
fn edit_header(r: &EditResponse) -> impl IntoView {
    let link = format!("/r/{}", r.id);
    let neurons = r
        .edit
        .neurons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <p>{format!("{} — edited {neurons}", r.edit.description)}
            " · permalink: " <a id="edit-permalink" href=link.clone()>{link.clone()}</a></p>
    }
}

/// Per prompt: P(answer), its rank and the top-1, before → after.
fn effect_rows(effects: &[kn_shared::PromptEffect]) -> Vec<(Option<Neuron>, Vec<Cell>)> {
    let arrow = |a: String, b: String| format!("{a} → {b}");
    let rank = |x: Option<usize>| x.map_or("–".into(), |r| r.to_string());
    effects
        .iter()
        .map(|p| {
            (
                None,
                vec![
                    Cell::text(p.prompt.clone()),
                    Cell::num(
                        arrow(ui::prob(p.p_before), ui::prob(p.p_after)),
                        p.p_after - p.p_before,
                    ),
                    Cell::text(arrow(rank(p.rank_before), rank(p.rank_after))),
                    Cell::text(arrow(
                        format!("{:?}", p.top1_before),
                        format!("{:?}", p.top1_after),
                    )),
                ],
            )
        })
        .collect()
}

/// An erase: is the fact forgotten (its prompts first), then what else moved.
#[component]
fn EraseResult(r: EditResponse) -> impl IntoView {
    let Some(o) = r.erase.clone() else {
        return ().into_any();
    };
    let headers = vec!["prompt", "P(answer) before → after", "rank", "top-1"];
    let p_change = o.p_change.map_or("–".into(), ui::percent_change);
    let fact = if o.prompts == 0 {
        "No fact was named: only the side effects were measured.".to_string()
    } else if o.known == 0 {
        format!(
            "Erased {}: the model answered none of its {} prompts before the erase, so none can be forgotten; P(answer) {p_change} on average.",
            o.erased, o.prompts
        )
    } else {
        format!(
            "Erased {}: forgotten on {} of the {} prompts the model answered (of {}); P(answer) {p_change} on average.",
            o.erased,
            o.forgotten,
            o.known,
            o.prompts
        )
    };
    let ppl: String = r
        .metrics
        .perplexity
        .iter()
        .map(|p| {
            format!(
                " Perplexity on {} ({} prompts): {} → {}.",
                p.set,
                p.prompts,
                ui::value(p.before),
                ui::value(p.after)
            )
        })
        .collect();
    let side = format!(
        "Side effects: the top-1 changed on {} of {} other prompts.{ppl}",
        o.side_changed, o.side_prompts
    );
    let mut warnings = Vec::new();
    if o.known > 0 && o.forgotten == 0 {
        warnings.push("The model still gives the answer on every prompt it knew: these neurons alone do not hold the fact.".to_string());
    }
    for p in r
        .metrics
        .perplexity
        .iter()
        .filter(|p| p.after > 2.0 * p.before)
    {
        warnings.push(format!(
            "Perplexity on {} rose {}: erasing these neurons damages more than this fact.",
            p.set,
            ui::ratio(p.after / p.before)
        ));
    }
    view! {
        <div id="edit-result">
            {edit_header(&r)}
            <p id="erase-outcome">{fact}</p>
            <p id="edit-metrics">{side}</p>
            {(!warnings.is_empty()).then(|| view! {
                <ul class="warning" id="edit-warning" role="alert">{warnings.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}</ul>
            })}
            {(o.prompts > 0).then(|| view! {
                <h4>{format!("The prompts of {}", o.erased)}</h4>
                <SortTable id="edit-predictions" headers=headers.clone() rows=effect_rows(&r.predictions) />
            })}
            // Without a fact, the side effects are where erases always had them.
            {(o.prompts == 0 || !r.side_effects.is_empty()).then(|| {
                let side = if o.prompts == 0 { &r.predictions } else { &r.side_effects };
                view! {
                    <h4>"Side-effect prompts"</h4>
                    <SortTable id="erase-side-effects" headers=headers.clone() rows=effect_rows(side) />
                }
            })}
        </div>
    }
    .into_any()
}

/// A fact update's outcome.
#[component]
fn UpdateResult(r: EditResponse) -> impl IntoView {
    let m = &r.metrics;
    let has_new = r.predictions.iter().any(|p| p.new_answer.is_some());
    let mut warnings = Vec::new();
    let tops: std::collections::BTreeSet<&str> = r
        .predictions
        .iter()
        .map(|p| p.top1_after.as_str())
        .collect();
    if r.predictions.len() >= 2 && tops.len() == 1 {
        let only = tops.iter().next().copied().unwrap_or_default();
        let wanted = r
            .predictions
            .first()
            .and_then(|p| p.new_answer.as_ref())
            .is_some_and(|n| n.token == only);
        if !wanted {
            warnings.push(format!(
                "Every prompt now answers {only:?}: the edit collapsed the predictions to one token rather than moving them to the new answer."
            ));
        }
    }
    if has_new && m.success_rate == 0.0 {
        warnings
            .push("No prompt answers the new answer after the edit (success rate 0%).".to_string());
    }
    for p in &m.perplexity {
        if p.after > 2.0 * p.before {
            warnings.push(format!(
                "Perplexity on {} rose {} ({} → {}): the edit damages what the model knows beyond this fact. “Find a strength that works” looks for a λ2 that does not.",
                p.set,
                ui::ratio(p.after / p.before),
                ui::value(p.before),
                ui::value(p.after)
            ));
        }
    }
    let arrow = |a: String, b: String| format!("{a} → {b}");
    let rank = |x: Option<usize>| x.map_or("–".into(), |r| r.to_string());
    let rows: Vec<_> = r
        .predictions
        .iter()
        .map(|p| {
            let mut cells = vec![
                Cell::text(p.prompt.clone()),
                Cell::num(
                    arrow(ui::prob(p.p_before), ui::prob(p.p_after)),
                    p.p_after - p.p_before,
                ),
                Cell::text(arrow(rank(p.rank_before), rank(p.rank_after))),
            ];
            if let Some(n) = &p.new_answer {
                cells.push(Cell::num(
                    arrow(ui::prob(n.p_before), ui::prob(n.p_after)),
                    n.p_after - n.p_before,
                ));
                cells.push(Cell::text(arrow(
                    n.rank_before.to_string(),
                    n.rank_after.to_string(),
                )));
            }
            cells.push(Cell::text(arrow(
                format!("{:?}", p.top1_before),
                format!("{:?}", p.top1_after),
            )));
            (None, cells)
        })
        .collect();
    let headers = if has_new {
        vec![
            "prompt",
            "P(t) before → after",
            "rank of t",
            "P(t′) before → after",
            "rank of t′",
            "top-1",
        ]
    } else {
        vec!["prompt", "P(answer) before → after", "rank", "top-1"]
    };
    view! {
        <div id="edit-result">
            {edit_header(&r)}
            <p id="edit-metrics">
                {format!("change rate {:.0}%, success rate {:.0}%", 100.0 * m.change_rate, 100.0 * m.success_rate)}
                {m.perplexity.iter().map(|p| format!("; perplexity on {} ({} prompts) {} → {}", p.set, p.prompts, ui::value(p.before), ui::value(p.after))).collect::<String>()}
                {r.random.as_ref().map(|x| format!("; random neurons: change {:.0}%, success {:.0}%", 100.0 * x.change_rate, 100.0 * x.success_rate)).unwrap_or_default()}
            </p>
            {(!warnings.is_empty()).then(|| view! {
                <ul class="warning" id="edit-warning" role="alert">{warnings.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}</ul>
            })}
            <SortTable id="edit-predictions" headers=headers rows=rows />
        </div>
    }
}
