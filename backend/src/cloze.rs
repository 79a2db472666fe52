//! Cloze prompts: where the blank is and what the answer's tokens are.
//!
//! `[MASK]` marks the blank in every prompt. A masked LM gets its own mask token
//! there. A causal LM predicts the *next* token, so its blank must end the
//! prompt (only whitespace and a closing `.`, `!` or `?` may follow); the text
//! before it, right-trimmed, is the input, and an answer that followed a space
//! is tokenised with that space (` Paris`), as the model would have written it.

use crate::models::Vocab;
use crate::{Error, Result};

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
        // RoBERTa's `<mask>` absorbs the space before it, and its tokens
        // carry their leading space: the answer is read with it, as for a
        // causal BPE model. BERT's WordPiece has no spaces in its tokens.
        let before = prompt.split_once(BLANK).map_or("", |(b, _)| b);
        Cloze {
            ids,
            blank,
            answer_after_space: cfg.arch == crate::models::Arch::Roberta
                && before.ends_with(char::is_whitespace),
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

/// Most pieces (tokens) of one answer: each piece is a step of the answer's
/// chain (a pass of its own in every computation), so the cost grows with it.
pub const MAX_ANSWER_PIECES: usize = 8;

/// The token ids of `target` as an answer at this cloze's blank, in order (one
/// for most answers; several for a multi-token answer such as ` Ott|awa`).
pub fn answer_ids(model: &impl Vocab, cloze: &Cloze, target: &str) -> Result<Vec<u32>> {
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
    if ids.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the target `{t}` tokenises to nothing"
        )));
    }
    if ids.len() > MAX_ANSWER_PIECES {
        return Err(Error::AnswerTooLong {
            target: t.to_string(),
            pieces: ids.len(),
            max: MAX_ANSWER_PIECES,
        });
    }
    Ok(ids)
}

/// The single token id of `target` as an answer at this cloze's blank, for
/// what is defined on one token only (a fact update moves a value slot from
/// one token's embedding to another's): a multi-token target is an error that
/// lists its pieces.
pub fn target_id(model: &impl Vocab, cloze: &Cloze, target: &str) -> Result<u32> {
    let ids = answer_ids(model, cloze, target)?;
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => Err(Error::MultiTokenTarget {
            target: target.trim().to_string(),
            pieces: ids
                .iter()
                .map(|&i| model.tokenizer().token_text(i))
                .collect(),
        }),
    }
}
