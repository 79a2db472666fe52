"""Multi-token answers, the slow, obvious way: the independent reference the Rust
engine's chains are tested against (docs/method.md, "Answers of several tokens").
Nothing is shared with the Rust code.

An answer of n tokens is n one-blank clozes ("steps"), each piece predicted from the
prompt and the true earlier pieces: a causal model's step j is the prompt followed by
pieces[:j], read at its last position; a masked model's prompt gets one mask per piece
and step j fills the first j masks with their pieces and reads mask j.
P(answer) = prod_j P_j.

Integrated gradients of P(answer) for layer l: the activations at the blanks of the
*acted* steps (every step, or the first) are scaled together, a_j = alpha * w_j, while
the other steps are read as they are; F(alpha) = prod_j P_j, and
score_i = sum_acted_j w_j,i / m * sum_k dF/da_j,i at alpha_k (right Riemann sum), taken
with autograd through every step's own forward pass.
"""

import torch

from reference_ig import blank_activations, n_layers, replace_at_blank


def pieces(tok, target, masked):
    """The answer's tokens as they follow the blank: with the space before it for
    causal models and for RoBERTa/XLM-R, whose tokens carry their leading space
    (their `<mask>` absorbs it); WordPiece (BERT) tokens have no spaces."""
    spaced = not masked or type(tok).__name__.startswith(("Roberta", "XLMRoberta"))
    text = " " + target if spaced else target
    return tok(text, add_special_tokens=False)["input_ids"]


def steps(tok, prompt, target, masked):
    """[(ids, blank, piece)] for every step of the answer."""
    ps = pieces(tok, target, masked)
    if masked:
        text = prompt.replace("[MASK]", tok.mask_token * len(ps))
        ids = tok(text)["input_ids"]
        first = ids.index(tok.mask_token_id)
        out = []
        for j, p in enumerate(ps):
            s = list(ids)
            s[first:first + j] = ps[:j]
            out.append((s, first + j, p))
        return out
    before = prompt.split("[MASK]")[0].rstrip()
    ids = tok(before)["input_ids"]
    return [(ids + ps[:j], len(ids) + j - 1, p) for j, p in enumerate(ps)]


def _p(model, arch, ids, blank, piece, layer, leaf):
    """P(piece) at the blank, with the layer's activation there replaced by leaf."""
    h = replace_at_blank(model, arch, layer, blank, leaf)
    logits = model(torch.tensor([ids])).logits[0, blank]
    h.remove()
    return torch.softmax(logits.float(), -1)[piece]


def chain_integrated_gradients(model, arch, chain, acted, m):
    """Per layer: right-sum scores, F(0), F(1); P(answer); the mean activation over
    the acted steps; each piece's P."""
    model.eval()
    read = [blank_activations(model, arch, ids, blank) for ids, blank, _ in chain]
    p_pieces = [read[j][1][piece].item() for j, (_, _, piece) in enumerate(chain)]
    p_answer = 1.0
    for p in p_pieces:
        p_answer *= p
    held = 1.0
    for j, p in enumerate(p_pieces):
        if not acted[j]:
            held *= p
    layers = []
    for l in range(n_layers(model)):
        ws = {j: read[j][0][l] for j in range(len(chain)) if acted[j]}
        total = {j: torch.zeros_like(w, dtype=torch.float64) for j, w in ws.items()}
        ends = []
        for k in range(m + 1):
            leaves = {j: (k / m * w).clone().requires_grad_(True) for j, w in ws.items()}
            f = torch.tensor(held, dtype=torch.float32)
            for j, leaf in leaves.items():
                ids, blank, piece = chain[j]
                f = f * _p(model, arch, ids, blank, piece, l, leaf)
            grads = torch.autograd.grad(f, list(leaves.values()))
            if k >= 1:
                for j, g in zip(leaves, grads):
                    total[j] += g.double()
            ends.append(f.item())
        scores = sum(ws[j].double() * total[j] / m for j in ws)
        mean_act = sum(ws[j].double() for j in ws) / len(ws)
        layers.append({
            "right": scores.tolist(),
            "p_zero": ends[0],
            "p_full": ends[-1],
            "activations": mean_act.tolist(),
        })
    return {"p_target": p_answer, "p_pieces": p_pieces, "layers": layers}


def one_pass(model, chain):
    """A causal model's P(answer) from one pass over the prompt and the whole
    answer: the product of each piece's probability at the position before it."""
    first = chain[0][1]
    with torch.no_grad():
        logits = model(torch.tensor([chain[-1][0] + [chain[-1][2]]])).logits[0].double()
    p = 1.0
    for j, (_, _, piece) in enumerate(chain):
        p *= torch.softmax(logits[first + j], -1)[piece].item()
    return p
