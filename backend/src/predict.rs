//! The answer distribution at the blank of cloze prompts (`kn predict`,
//! `POST /api/predict`), several prompts in one forward pass. Where the blank
//! is and how an answer is tokenised are the rules of [`crate::cloze`].

use crate::cloze::{cloze, Cloze};
use crate::models::{Batch, Hooks, Model};
use crate::{Error, Result};
use kn_shared::{PredictRequest, PredictResponse, TargetProb, TokenProb};
use tch::{Kind, Tensor};

/// Answer `kn predict` and `POST /api/predict`.
pub fn predict(model: &Model, req: &PredictRequest) -> Result<PredictResponse> {
    predict_many(model, std::slice::from_ref(req))
        .pop()
        .expect("one answer per request")
}

/// Answer several predictions with one forward pass: the prompts right-padded
/// into one batch (each row masked to its own tokens, read at its own blank),
/// their distributions read back at once. One answer per request, in order; a
/// request's own error (no blank, a target over the limits) is its answer
/// alone. A multi-token target adds one row per later piece (the answer's
/// steps, `engine::Query::steps`). The numbers are those of one prompt at a
/// time up to float rounding (the matrix products have other shapes): the
/// same top tokens, probabilities within about 1e-6 relative.
pub fn predict_many(model: &Model, reqs: &[PredictRequest]) -> Vec<Result<PredictResponse>> {
    let checked: Vec<Result<Rows>> = reqs.iter().map(|r| check(model, r)).collect();
    let rows: Vec<(Vec<u32>, usize)> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .flat_map(|r| r.rows())
        .collect();
    let probs = if rows.is_empty() {
        None
    } else {
        let ids: Vec<Vec<u32>> = rows.iter().map(|(ids, _)| ids.clone()).collect();
        let blanks: Vec<usize> = rows.iter().map(|&(_, b)| b).collect();
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
            let r = c?;
            let n = r.count() as i64;
            let probs = probs
                .as_ref()
                .expect("rows for every checked request")
                .narrow(0, row, n);
            row += n;
            respond(model, req, &r, &probs)
        })
        .collect()
}

/// A checked request: its cloze, and its answer's steps when it names one.
struct Rows {
    cloze: Cloze,
    steps: Vec<crate::engine::Query>,
}

impl Rows {
    /// How many rows it reads (without building them).
    fn count(&self) -> usize {
        self.steps.len().max(1)
    }

    /// The rows it reads: the answer's steps (the first one is the cloze the
    /// top tokens are read at), or the cloze alone.
    fn rows(&self) -> Vec<(Vec<u32>, usize)> {
        if self.steps.is_empty() {
            vec![(self.cloze.ids.clone(), self.cloze.blank)]
        } else {
            self.steps
                .iter()
                .map(|q| (q.cloze.ids.clone(), q.cloze.blank))
                .collect()
        }
    }
}

/// A request's blank and answer, or why it cannot be answered.
fn check(model: &Model, req: &PredictRequest) -> Result<Rows> {
    if req.top_k == 0 || req.top_k > 1000 {
        return Err(Error::InvalidArgument(format!(
            "top_k is {}; it must be between 1 and 1000",
            req.top_k
        )));
    }
    match req.target.as_deref() {
        None => Ok(Rows {
            cloze: cloze(model, &req.prompt)?,
            steps: Vec::new(),
        }),
        Some(t) => {
            let q = crate::engine::Query::new(model, &req.prompt, t)?;
            Ok(Rows {
                steps: q.steps(),
                cloze: q.cloze,
            })
        }
    }
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
    r: &Rows,
    probs: &Tensor,
) -> Result<PredictResponse> {
    let first = probs.get(0);
    let vocab = model.config().vocab_size;
    let k = req.top_k.min(vocab) as i64;
    let (vals, idx) = first.topk(k, 0, true, true);
    let vals: Vec<f32> = Vec::try_from(&vals)?;
    let idx: Vec<i64> = Vec::try_from(&idx)?;
    let token = |id: u32| model.tokenizer.token_text(id);
    let top_k = idx
        .iter()
        .zip(&vals)
        .map(|(&i, &p)| TokenProb {
            id: i as u32,
            token: token(i as u32),
            prob: p.into(),
        })
        .collect();
    let target = match r.steps.first() {
        Some(q0) => {
            let pieces: Vec<TokenProb> = r
                .steps
                .iter()
                .enumerate()
                .map(|(j, q)| TokenProb {
                    id: q.target,
                    token: token(q.target),
                    prob: probs.double_value(&[j as i64, q.target as i64]),
                })
                .collect();
            let p0 = pieces[0].prob;
            let higher = first.gt(p0).sum(Kind::Int64).int64_value(&[]);
            Some(TargetProb {
                id: q0.target,
                token: pieces.iter().map(|p| p.token.as_str()).collect(),
                prob: pieces.iter().map(|p| p.prob).product(),
                rank: higher as usize + 1,
                pieces: if pieces.len() > 1 { pieces } else { Vec::new() },
            })
        }
        None => None,
    };
    Ok(PredictResponse {
        model: model.name.clone(),
        prompt: req.prompt.clone(),
        tokens: r.cloze.ids.iter().map(|&i| token(i)).collect(),
        input_ids: r.cloze.ids.clone(),
        blank_index: r.cloze.blank,
        top_k,
        target,
    })
}
