//! Cloze prompts: where the blank is, what the answer token is, and the answer
//! distribution at the blank.
//!
//! `[MASK]` marks the blank in every prompt. A masked LM gets its own mask token
//! there. A causal LM predicts the *next* token, so its blank must end the
//! prompt (only whitespace and a closing `.`, `!` or `?` may follow); the text
//! before it, right-trimmed, is the input, and an answer that followed a space
//! is tokenised with that space (` Paris`), as the model would have written it.

use crate::models::{Batch, Hooks, Model, Vocab};
use crate::{Error, Result};
use kn_shared::{PredictRequest, PredictResponse, TargetProb, TokenProb};
use tch::{Kind, Tensor};

/// The marker of the blank in prompts.
pub const BLANK: &str = "[MASK]";

/// A tokenised cloze prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Cloze {
    pub ids: Vec<u32>,
    /// Index of the token whose output distribution is the answer's.
    pub blank: usize,
    /// Whether the answer follows a space (causal LMs).
    answer_after_space: bool,
}

/// Tokenise `prompt` and place its blank.
pub fn cloze(model: &impl Vocab, prompt: &str) -> Result<Cloze> {
    let n = prompt.matches(BLANK).count();
    if n == 0 {
        return Err(Error::Prompt(format!(
            "no {BLANK} in the prompt: mark the blank with {BLANK}, e.g. `The capital of France is {BLANK}.`"
        )));
    }
    if n > 1 {
        return Err(Error::Prompt(format!(
            "the prompt has {n} {BLANK}s; mark exactly one blank"
        )));
    }
    let cfg = Vocab::config(model);
    let tok = model.tokenizer();
    let cloze = if cfg.arch.is_masked() {
        let (mask, mask_id) = tok.mask().ok_or_else(|| {
            Error::Prompt("this masked model's tokenizer has no mask token".into())
        })?;
        let ids = tok.encode(&prompt.replace(BLANK, mask))?;
        let blank = ids
            .iter()
            .position(|&t| t == mask_id)
            .ok_or_else(|| Error::Prompt("the tokenizer did not keep the mask token".into()))?;
        Cloze {
            ids,
            blank,
            answer_after_space: false,
        }
    } else {
        let (before, after) = prompt.split_once(BLANK).expect("one blank");
        let rest = after.trim();
        if !(rest.is_empty() || matches!(rest, "." | "!" | "?")) {
            return Err(Error::Prompt(format!(
                "text after {BLANK} (`{rest}`): a causal model predicts the next token, so the blank must end the prompt"
            )));
        }
        let text = before.trim_end();
        if text.is_empty() {
            return Err(Error::Prompt(format!(
                "no text before {BLANK}: a causal model needs a prompt to continue"
            )));
        }
        let ids = tok.encode(text)?;
        if ids.is_empty() {
            return Err(Error::Prompt("the prompt tokenises to nothing".into()));
        }
        Cloze {
            blank: ids.len() - 1,
            answer_after_space: before.len() != text.len(),
            ids,
        }
    };
    if cloze.ids.len() > cfg.max_positions {
        return Err(Error::PromptTooLong {
            len: cloze.ids.len(),
            max: cfg.max_positions,
        });
    }
    Ok(cloze)
}

/// The single token id of `target` as an answer at this cloze's blank.
pub fn target_id(model: &impl Vocab, cloze: &Cloze, target: &str) -> Result<u32> {
    let t = target.trim();
    if t.is_empty() {
        return Err(Error::InvalidArgument("the target is empty".into()));
    }
    let text = if cloze.answer_after_space {
        format!(" {t}")
    } else {
        t.to_string()
    };
    let tok = model.tokenizer();
    let ids = tok.encode_plain(&text)?;
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => Err(Error::MultiTokenTarget {
            target: t.to_string(),
            pieces: ids.iter().map(|&i| tok.token_text(i)).collect(),
        }),
    }
}

/// Answer `kn predict` and `POST /api/predict`.
pub fn predict(model: &Model, req: &PredictRequest) -> Result<PredictResponse> {
    predict_many(model, std::slice::from_ref(req))
        .pop()
        .expect("one answer per request")
}

/// Answer several predictions with one forward pass: the prompts right-padded
/// into one batch (each row masked to its own tokens, read at its own blank),
/// their distributions read back at once. One answer per request, in order; a
/// request's own error (no blank, a multi-token target) is its answer alone.
/// The numbers are those of one prompt at a time up to float rounding (the
/// matrix products have other shapes): the same top tokens, probabilities
/// within about 1e-6 relative.
pub fn predict_many(model: &Model, reqs: &[PredictRequest]) -> Vec<Result<PredictResponse>> {
    let checked: Vec<Result<(Cloze, Option<u32>)>> = reqs.iter().map(|r| check(model, r)).collect();
    let ok: Vec<&(Cloze, Option<u32>)> = checked.iter().filter_map(|c| c.as_ref().ok()).collect();
    let probs = if ok.is_empty() {
        None
    } else {
        let ids: Vec<Vec<u32>> = ok.iter().map(|(c, _)| c.ids.clone()).collect();
        let blanks: Vec<usize> = ok.iter().map(|(c, _)| c.blank).collect();
        match batch_probs(model, &ids, &blanks) {
            Ok(p) => Some(p),
            Err(e) => {
                // The batch as a whole failed (out of memory, say): every
                // request that got this far gets the error.
                let msg = e.to_string();
                return checked
                    .into_iter()
                    .map(|c| c.and_then(|_| Err(Error::Torch(tch::TchError::Torch(msg.clone())))))
                    .collect();
            }
        }
    };
    let mut row = 0i64;
    reqs.iter()
        .zip(checked)
        .map(|(req, c)| {
            let (cloze, target) = c?;
            let probs = probs.as_ref().expect("a row per checked request").get(row);
            row += 1;
            respond(model, req, &cloze, target, &probs)
        })
        .collect()
}

/// A request's blank and target, or why it cannot be answered.
fn check(model: &Model, req: &PredictRequest) -> Result<(Cloze, Option<u32>)> {
    if req.top_k == 0 || req.top_k > 1000 {
        return Err(Error::InvalidArgument(format!(
            "top_k is {}; it must be between 1 and 1000",
            req.top_k
        )));
    }
    let cloze = cloze(model, &req.prompt)?;
    let target = req
        .target
        .as_deref()
        .map(|t| target_id(model, &cloze, t))
        .transpose()?;
    Ok((cloze, target))
}

/// `[n, vocab]` probabilities at each row's blank, on the CPU (one read).
fn batch_probs(model: &Model, ids: &[Vec<u32>], blanks: &[usize]) -> Result<Tensor> {
    let batch = Batch::new(ids, blanks, model.net.device())?;
    let out = tch::no_grad(|| model.net.forward(&batch, &Hooks::default()));
    Ok(crate::engine::host::to_host(
        &out.logits.softmax(-1, Kind::Float),
    ))
}

fn respond(
    model: &Model,
    req: &PredictRequest,
    cloze: &Cloze,
    target: Option<u32>,
    probs: &Tensor,
) -> Result<PredictResponse> {
    let vocab = model.config().vocab_size;
    let k = req.top_k.min(vocab) as i64;
    let (vals, idx) = probs.topk(k, 0, true, true);
    let vals: Vec<f32> = Vec::try_from(&vals)?;
    let idx: Vec<i64> = Vec::try_from(&idx)?;
    let top_k = idx
        .iter()
        .zip(&vals)
        .map(|(&i, &p)| TokenProb {
            id: i as u32,
            token: model.tokenizer.token_text(i as u32),
            prob: p.into(),
        })
        .collect();
    let target = match target {
        Some(id) => {
            let p = probs.double_value(&[id as i64]);
            let higher = probs.gt(p).sum(Kind::Int64).int64_value(&[]);
            Some(TargetProb {
                id,
                token: model.tokenizer.token_text(id),
                prob: p,
                rank: higher as usize + 1,
            })
        }
        None => None,
    };
    Ok(PredictResponse {
        model: model.name.clone(),
        prompt: req.prompt.clone(),
        tokens: cloze
            .ids
            .iter()
            .map(|&i| model.tokenizer.token_text(i))
            .collect(),
        input_ids: cloze.ids.clone(),
        blank_index: cloze.blank,
        top_k,
        target,
    })
}
