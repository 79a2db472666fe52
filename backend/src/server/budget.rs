//! Budgets: every cost a request can ask for, checked in the handler before any
//! work is queued, with a 422 `limit_exceeded` that names the limit and the
//! flag that sets it.
//!
//! The work of an attribution is counted in *work units*: for each prompt,
//! `(steps + 1) × tokens × layers` (the scaled copies of every layer, each as
//! long as the prompt). It is what the time of integrated gradients grows
//! with; on the 2-core development CPU one unit costs roughly a millisecond on
//! SmolLM2 or bert-base, so the default budget of 600,000 units bounds one
//! request at about ten minutes there. Memory is bounded separately: the
//! engine puts at most [`crate::engine::batching::MAX_ROW_TOKENS`]
//! `copies × tokens` into one pass, and prompts are at most `max_tokens` long.

use super::{ApiFail, AppState, ModelWorker};
use crate::engine::{AnswerPositions, Query};
use crate::models::Vocab;
use kn_shared::{EvalPrompt, Limits};

/// Largest request body (edit-set uploads have their own, larger, limit).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The defaults of `kn serve`.
pub fn default_limits() -> Limits {
    Limits {
        max_tokens: 128,
        max_steps: 200,
        max_prompts: crate::engine::analysis::MAX_PROMPTS,
        max_work: 600_000,
        max_eval: 100,
        max_neurons: crate::engine::edit::MAX_SLOTS,
        max_k: 64,
        max_facts: 50,
        max_lambda: 100.0,
        max_edit_sets: 16,
        max_top_k: 1000,
        max_body_bytes: MAX_BODY_BYTES,
        max_upload_bytes: 32 << 20,
    }
}

/// A count that must lie in `1..=max`.
pub fn count(what: &str, n: usize, max: usize, flag: &str) -> Result<(), ApiFail> {
    if n == 0 {
        return Err(ApiFail::invalid(format!("{what} must be at least 1")));
    }
    if n > max {
        return Err(ApiFail::limit(format!(
            "{what} is {n}; this server allows at most {max}{}",
            flag_note(flag)
        )));
    }
    Ok(())
}

fn flag_note(flag: &str) -> String {
    if flag.is_empty() {
        String::new()
    } else {
        format!(" (kn serve {flag})")
    }
}

/// A length that may be zero but not more than `max`.
pub fn at_most(what: &str, n: usize, max: usize, flag: &str) -> Result<(), ApiFail> {
    if n > max {
        return Err(ApiFail::limit(format!(
            "{what}: {n}; this server allows at most {max}{}",
            flag_note(flag)
        )));
    }
    Ok(())
}

/// A finite number of magnitude at most `max`.
pub fn finite(what: &str, x: f64, max: f64) -> Result<(), ApiFail> {
    if !x.is_finite() {
        return Err(ApiFail::invalid(format!("{what} is not a finite number")));
    }
    if x.abs() > max {
        return Err(ApiFail::limit(format!(
            "{what} is {x}; this server allows |{what}| ≤ {max}"
        )));
    }
    Ok(())
}

/// Build the engine's queries for `prompts` (each with answer `target`, read
/// at `positions` when it has several tokens), checking the blank, the answer
/// and the token budget.
pub fn queries(
    st: &AppState,
    worker: &ModelWorker,
    prompts: &[String],
    target: &str,
    positions: AnswerPositions,
) -> Result<Vec<Query>, ApiFail> {
    count(
        "the number of prompts",
        prompts.len(),
        st.limits.max_prompts,
        "",
    )?;
    labelled(st, worker, prompts, target, positions, "")
}

/// Control facts (specificity), each checked as [`queries`] checks a fact's
/// prompts, their errors naming the control ("same relation control, prompt
/// 2: …"); what makes a control no control (too many, none the fact) is
/// `engine::specificity::check`'s.
pub fn controls(
    st: &AppState,
    worker: &ModelWorker,
    controls: &[kn_shared::ControlFact],
    positions: AnswerPositions,
) -> Result<Vec<Vec<Query>>, ApiFail> {
    controls
        .iter()
        .map(|c| {
            let what = format!("{} control", c.kind);
            count(
                &format!("the number of {what} prompts"),
                c.prompts.len(),
                st.limits.max_prompts,
                "",
            )?;
            labelled(
                st,
                worker,
                &c.prompts,
                &c.target,
                positions,
                &format!("{what}, "),
            )
        })
        .collect()
}

/// Each prompt as a query, its error labelled `{prefix}prompt {i}`.
fn labelled(
    st: &AppState,
    worker: &ModelWorker,
    prompts: &[String],
    target: &str,
    positions: AnswerPositions,
    prefix: &str,
) -> Result<Vec<Query>, ApiFail> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            query(st, worker, p, target, &format!("{prefix}prompt {}", i + 1))
                .map(|q| q.with_positions(positions))
        })
        .collect()
}

/// One prompt as a query, within the token budget.
pub fn query(
    st: &AppState,
    worker: &ModelWorker,
    prompt: &str,
    target: &str,
    label: &str,
) -> Result<Query, ApiFail> {
    // (Tokenising is bounded by the body limit: at most 256 KiB of text.)
    let q = Query::new(&worker.text, prompt, target).map_err(|e| {
        let mut f = ApiFail::from(e);
        f.body.error.message = format!("{label}: {}", f.body.error.message);
        f
    })?;
    if q.longest_step() > st.limits.max_tokens {
        return Err(ApiFail::limit(format!(
            "{label} is {} tokens{}; this server takes at most {} tokens per prompt (kn serve --max-tokens)",
            q.longest_step(),
            if q.longest_step() > q.cloze.ids.len() {
                " with its answer's pieces"
            } else {
                ""
            },
            st.limits.max_tokens
        )));
    }
    Ok(q)
}

/// Side-effect prompts with their answers.
pub fn eval_queries(
    st: &AppState,
    worker: &ModelWorker,
    eval: &[EvalPrompt],
) -> Result<Vec<Query>, ApiFail> {
    at_most("evaluation prompts", eval.len(), st.limits.max_eval, "")?;
    eval.iter()
        .enumerate()
        .map(|(i, e)| {
            query(
                st,
                worker,
                &e.prompt,
                &e.target,
                &format!("evaluation prompt {}", i + 1),
            )
        })
        .collect()
}

/// Integration steps within the budget.
pub fn steps(st: &AppState, steps: usize) -> Result<(), ApiFail> {
    count("steps (m)", steps, st.limits.max_steps, "--max-steps")
}

/// The work units of attributing `queries` at `steps`, checked against the budget.
pub fn work(
    st: &AppState,
    worker: &ModelWorker,
    queries: &[Query],
    steps: usize,
) -> Result<u64, ApiFail> {
    let layers = Vocab::config(&worker.text).n_layers as u64;
    let units: u64 = queries
        .iter()
        .map(|q| (steps as u64 + 1) * q.attributed_tokens() as u64 * layers)
        .sum();
    if units > st.limits.max_work {
        return Err(ApiFail::limit(format!(
            "this request needs {units} work units (Σ over its {} prompts, and the pieces of a multi-token answer, of (steps + 1) × tokens × {layers} layers); this server allows {} per request (kn serve --max-work): use fewer prompts, fewer steps or shorter prompts",
            queries.len(),
            st.limits.max_work
        )));
    }
    Ok(units)
}
