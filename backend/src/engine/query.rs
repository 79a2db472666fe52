//! A prompt with its answer, ready for the engine, and a multi-token answer as
//! a chain of one-token steps.
//!
//! An answer of `n` tokens `t_1 … t_n` is read as `n` clozes, each with one
//! blank and a one-token answer: step `j` predicts `t_j` from the prompt and
//! the true earlier pieces `t_<j` (teacher forcing). A causal model's step `j`
//! is the prompt followed by `t_<j`, read at its last position; a masked
//! model's prompt gets one mask per piece, and step `j` fills the first `j − 1`
//! masks with their pieces and reads mask `j` (left to right). Then
//! `P(answer) = ∏_j P(t_j | step j)`, which for a causal model equals one pass
//! over the prompt and the answer. Every step is an ordinary cloze, so every
//! method, the fast mode and the interventions run on it unchanged; what a
//! chain adds is which steps are acted on ([`AnswerPositions`]) and how the
//! steps' numbers combine ([`Chains`]).

use crate::cloze::{answer_ids, cloze, Cloze};
use crate::models::Vocab;
use crate::{Error, Result};
use kn_shared::AnswerPositions;
use std::ops::Range;
use tch::{Kind, Tensor};

/// A prompt ready for the engine: tokens, blank, and the answer's token ids.
#[derive(Debug, Clone)]
pub struct Query {
    pub prompt: String,
    /// The input of the answer's first step: the prompt (causal models), or
    /// the prompt with one mask per piece of the answer (masked models).
    pub cloze: Cloze,
    /// The answer's first token (all of it for a one-token answer).
    pub target: u32,
    /// Every token of the answer; `answer[0] == target`.
    pub answer: Vec<u32>,
    /// Which steps of a multi-token answer are read and acted on.
    pub positions: AnswerPositions,
    /// Positions of `cloze.ids` holding given pieces of the answer (the later
    /// steps of a chain), which [`Query::masked`] keeps.
    given: Range<usize>,
    /// A causal model's query: its steps grow by the given pieces.
    causal: bool,
}

impl Query {
    /// `prompt` (with one `[MASK]`) and its answer `target`, of one token or
    /// several; read at every step of a multi-token answer
    /// ([`Query::with_positions`] to choose).
    pub fn new(model: &impl Vocab, prompt: &str, target: &str) -> Result<Self> {
        let mut c = cloze(model, prompt)?;
        let answer = answer_ids(model, &c, target)?;
        let n = answer.len();
        let causal = !model.config().arch.is_masked();
        if n > 1 && !causal {
            // One mask per piece, where the one mask was.
            let mask = c.ids[c.blank];
            c.ids
                .splice(c.blank..c.blank, std::iter::repeat_n(mask, n - 1));
        }
        let q = Query {
            prompt: prompt.to_string(),
            cloze: c,
            target: answer[0],
            answer,
            positions: AnswerPositions::default(),
            given: 0..0,
            causal,
        };
        let max = model.config().max_positions;
        if q.longest_step() > max {
            return Err(Error::PromptTooLong {
                len: q.longest_step(),
                max,
            });
        }
        Ok(q)
    }

    /// `prompt` with the one-token answer `id` (a token id rather than text:
    /// for answers read off the model, as the references' tests do).
    pub fn with_token(model: &impl Vocab, prompt: &str, id: u32) -> Result<Self> {
        let c = cloze(model, prompt)?;
        if id as usize >= model.config().vocab_size {
            return Err(Error::InvalidArgument(format!(
                "target id {id} is outside the vocabulary"
            )));
        }
        Ok(Query {
            prompt: prompt.to_string(),
            cloze: c,
            target: id,
            answer: vec![id],
            positions: AnswerPositions::default(),
            given: 0..0,
            causal: !model.config().arch.is_masked(),
        })
    }

    /// The same query, read at `positions` of a multi-token answer.
    pub fn with_positions(mut self, positions: AnswerPositions) -> Self {
        self.positions = positions;
        self
    }

    /// Whether the answer has several tokens.
    pub fn is_chain(&self) -> bool {
        self.answer.len() > 1
    }

    /// Whether the answer positions act on step `j` (always on the first).
    pub fn acts_on(&self, j: usize) -> bool {
        j == 0 || self.positions == AnswerPositions::All
    }

    /// The length in tokens of step `j`'s input: a causal step grows by its
    /// given pieces; a masked model's pieces fill its masks.
    pub fn step_len(&self, j: usize) -> usize {
        self.cloze.ids.len() + if self.causal { j } else { 0 }
    }

    /// The longest input among the answer's steps, in tokens.
    pub fn longest_step(&self) -> usize {
        self.step_len(self.answer.len() - 1)
    }

    /// The tokens attribution runs through for this query: the lengths of the
    /// steps it acts on, added (one prompt's length for a one-token answer).
    pub fn attributed_tokens(&self) -> usize {
        (0..self.answer.len())
            .filter(|&j| self.acts_on(j))
            .map(|j| self.step_len(j))
            .sum()
    }

    /// The answer's steps, each a one-token query: step `j` reads `t_j` with
    /// the pieces before it given. A one-token answer is its own only step.
    pub fn steps(&self) -> Vec<Query> {
        if !self.is_chain() {
            return vec![self.clone()];
        }
        let b = self.cloze.blank;
        (0..self.answer.len())
            .map(|j| {
                let mut c = self.cloze.clone();
                let given = if self.causal {
                    let start = c.ids.len();
                    c.ids.extend_from_slice(&self.answer[..j]);
                    c.blank = c.ids.len() - 1;
                    start..start + j
                } else {
                    c.ids[b..b + j].copy_from_slice(&self.answer[..j]);
                    c.blank = b + j;
                    b..b + j
                };
                Query {
                    prompt: self.prompt.clone(),
                    cloze: c,
                    target: self.answer[j],
                    answer: vec![self.answer[j]],
                    positions: self.positions,
                    given,
                    causal: self.causal,
                }
            })
            .collect()
    }

    /// The prompt's input tokens as text.
    pub fn tokens(&self, model: &impl Vocab) -> Vec<String> {
        self.cloze
            .ids
            .iter()
            .map(|&i| model.tokenizer().token_text(i))
            .collect()
    }

    /// The same query with its content masked: every token that is not one of
    /// the tokenizer's special tokens (nor a given piece of the answer) becomes
    /// the mask token (masked models) or the end-of-text token (causal models,
    /// which have no mask), at the same positions, so the blank keeps its
    /// index. Integrated gradients from the activations this prompt gives at
    /// the blank is the `ig-masked-baseline` method (docs/methods.md).
    pub fn masked(&self, model: &impl Vocab) -> Result<Self> {
        let tok = model.tokenizer();
        let special: std::collections::HashSet<u32> = tok
            .inner()
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        let filler = if model.config().arch.is_masked() {
            tok.mask().map(|(_, id)| id)
        } else {
            ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"]
                .iter()
                .find_map(|t| tok.token_to_id(t))
        }
        .ok_or_else(|| {
            Error::InvalidArgument(
                "this tokenizer has no mask or end-of-text token to mask a prompt with".into(),
            )
        })?;
        let mut q = self.clone();
        q.cloze.ids = self
            .cloze
            .ids
            .iter()
            .enumerate()
            .map(|(at, &i)| {
                if special.contains(&i) || self.given.contains(&at) {
                    i
                } else {
                    filler
                }
            })
            .collect();
        q.prompt = format!("{} (masked)", self.prompt);
        Ok(q)
    }
}

/// The steps of a list of queries, flat, and which query each belongs to.
pub(crate) struct Chains {
    /// Every query's steps, in order.
    pub steps: Vec<Query>,
    /// Per query: its steps' range in `steps`.
    pub of: Vec<Range<usize>>,
    /// Per step: whether its query's [`AnswerPositions`] act on it.
    pub acted: Vec<bool>,
}

impl Chains {
    pub fn new(qs: &[Query]) -> Chains {
        let (mut steps, mut of, mut acted) = (Vec::new(), Vec::new(), Vec::new());
        for q in qs {
            let s = q.steps();
            let start = steps.len();
            acted.extend((0..s.len()).map(|j| q.acts_on(j)));
            steps.extend(s);
            of.push(start..steps.len());
        }
        Chains { steps, of, acted }
    }

    /// Query `i`'s steps that its answer positions act on, in order.
    pub fn acted_of(&self, i: usize) -> impl Iterator<Item = &Query> {
        self.of[i]
            .clone()
            .filter(|&s| self.acted[s])
            .map(|s| &self.steps[s])
    }

    /// Per query, the product of its steps' values (P(answer) from the
    /// pieces' probabilities).
    pub fn product(&self, per_step: &[f64]) -> Vec<f64> {
        self.of
            .iter()
            .map(|r| per_step[r.clone()].iter().product())
            .collect()
    }

    /// Per query, whether every step satisfies `ok` (the model's greedy
    /// answer is the whole answer).
    pub fn all(&self, ok: impl Fn(usize) -> bool) -> Vec<bool> {
        self.of.iter().map(|r| r.clone().all(&ok)).collect()
    }

    /// Per query, the sum (or the mean) over its acted steps of per-step
    /// tensors of one shape.
    pub fn over_acted(&self, per_step: &[Tensor], mean: bool) -> Vec<Tensor> {
        self.of
            .iter()
            .map(|r| {
                let mine: Vec<&Tensor> = r
                    .clone()
                    .filter(|&s| self.acted[s])
                    .map(|s| &per_step[s])
                    .collect();
                if mine.len() == 1 {
                    return mine[0].shallow_clone();
                }
                let sum = Tensor::stack(&mine, 0).sum_dim_intlist(0, false, Kind::Float);
                if mean {
                    sum / mine.len() as f64
                } else {
                    sum
                }
            })
            .collect()
    }
}

/// Refuse multi-token answers where an edit's measure is defined on one token
/// (a fact update moves a value slot from the old answer's embedding to the
/// new one's, and its ranks are read at one blank).
pub fn one_token(model: &impl Vocab, queries: &[Query]) -> Result<()> {
    match queries.iter().find(|q| q.is_chain()) {
        None => Ok(()),
        Some(q) => {
            let pieces: Vec<String> = q
                .answer
                .iter()
                .map(|&i| model.tokenizer().token_text(i))
                .collect();
            Err(Error::MultiTokenTarget {
                target: pieces.concat(),
                pieces,
            })
        }
    }
}
