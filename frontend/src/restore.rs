//! A permalink's stored request, put back into the page's forms. One arm per
//! kind of stored computation: a new kind does not compile until it says
//! which fields it fills.

use crate::state::Page;
use kn_shared::methods::MethodsRequest;
use kn_shared::{
    AnalyzeRequest, ComputeRequest, EraseRelationRequest, EraseRequest, EvalPrompt,
    UpdateFactRequest,
};
use leptos::prelude::*;

/// Fill the forms from a stored result's request.
pub fn restore(page: Page, request: &ComputeRequest) {
    match request {
        ComputeRequest::Analyze(r) => analysis(page, r),
        ComputeRequest::Update(r) => update(page, r),
        ComputeRequest::Erase(r) => erase(page, r),
        ComputeRequest::EraseRelation(r) => erase_relation(page, r),
        ComputeRequest::Methods(r) => methods(page, r),
    }
}

/// The model (stored requests leave it out: then the page keeps its own).
fn model(page: Page, model: &Option<String>) {
    if let Some(m) = model {
        page.model.set(m.clone());
    }
}

/// A fact: its answer and prompts (the Ask form gets the first prompt).
fn fact(page: Page, target: &str, prompts: &[String]) {
    page.target.set(target.to_string());
    page.prompts.set(prompts.join("\n"));
    if let Some(first) = prompts.first() {
        page.prompt.set(first.clone());
    }
}

fn number(sig: RwSignal<String>, value: impl ToString) {
    sig.set(value.to_string());
}

fn eval(page: Page, eval: &[EvalPrompt]) {
    let lines: Vec<String> = eval
        .iter()
        .map(|e| format!("{} | {}", e.prompt, e.target))
        .collect();
    page.eval.set(lines.join("\n"));
}

fn analysis(page: Page, r: &AnalyzeRequest) {
    model(page, &r.model);
    fact(page, &r.target, &r.prompts);
    number(page.steps, r.steps);
    number(page.t, r.t);
    number(page.p, r.p);
    page.positions.set(r.answer_positions.name().to_string());
    // The controls exactly as stored (none: the fields are emptied, so a
    // re-run is the same request).
    for (kind, target, prompts) in [
        ("same relation", page.same_target, page.same_prompts),
        (
            "other relation",
            page.unrelated_target,
            page.unrelated_prompts,
        ),
    ] {
        let c = r.controls.iter().find(|c| c.kind == kind);
        target.set(c.map(|c| c.target.clone()).unwrap_or_default());
        prompts.set(c.map(|c| c.prompts.join("\n")).unwrap_or_default());
    }
}

fn update(page: Page, r: &UpdateFactRequest) {
    model(page, &r.model);
    fact(page, &r.target, &r.prompts);
    number(page.steps, r.steps);
    number(page.k, r.k);
    number(page.lambda1, r.lambda1);
    number(page.lambda2, r.lambda2);
    page.new_target.set(r.new_target.clone());
    page.norm_scaled.set(if r.norm_scaled {
        "1".into()
    } else {
        String::new()
    });
    eval(page, &r.eval);
}

fn erase(page: Page, r: &EraseRequest) {
    model(page, &r.model);
    let list: Vec<String> = r.neurons.iter().map(ToString::to_string).collect();
    page.erase_neurons.set(list.join(", "));
    page.erase_with.set(r.with.clone());
    if !r.prompts.is_empty() {
        fact(page, &r.target, &r.prompts);
    }
    eval(page, &r.eval);
}

fn erase_relation(page: Page, r: &EraseRelationRequest) {
    model(page, &r.model);
    page.erase_relation.set(r.relation.clone());
    number(page.erase_facts, r.facts);
    number(page.erase_top, r.top);
    page.erase_with.set(r.with.clone());
}

fn methods(page: Page, r: &MethodsRequest) {
    model(page, &r.model);
    fact(page, &r.target, &r.prompts);
    number(page.steps, r.steps);
    number(page.t, r.t);
    number(page.p, r.p);
    page.positions.set(r.answer_positions.name().to_string());
    page.methods.set(r.methods.join(","));
    let ks: Vec<String> = r.ks.iter().map(ToString::to_string).collect();
    page.ks.set(ks.join(","));
    page.unrelated_target
        .set(r.unrelated_target.clone().unwrap_or_default());
    page.unrelated_prompts.set(r.unrelated_prompts.join("\n"));
    // The same-relation control as stored (none: emptied, so a re-run is the
    // same request).
    let same = r.controls.iter().find(|c| c.kind == "same relation");
    page.same_target
        .set(same.map(|c| c.target.clone()).unwrap_or_default());
    page.same_prompts
        .set(same.map(|c| c.prompts.join("\n")).unwrap_or_default());
}
