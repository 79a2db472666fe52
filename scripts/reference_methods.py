"""The other attribution methods (docs/methods.md), the slow, obvious way, with
`transformers` hooks and autograd: the independent reference the Rust methods are
tested against. Nothing is shared with the Rust code.

- grad_x_act: for each layer, the FFN activation at the blank is replaced (pre-hook
  on the module that consumes it) by a leaf equal to itself; score = a * dP/da.
- ig_masked_baseline: integrated gradients (right Riemann sum) along a' + (k/m)(w - a'),
  where a' is the blank's activation on the prompt with every non-special token replaced
  by the mask token (masked models) or the end-of-text token (causal models).
- logprob_increase (Yu & Ananiadou, 2024): for each layer and neuron i, the layer's
  output with only neuron i active (its value vector a_i * W_out[:, i], plus the
  FFN's bias, added to the residual h that the FFN adds to; BERT then applies the
  layer's LayerNorm) read through the model's output head, against the same with no
  neuron active: log P(target | with i) - log P(target | none).
"""

import torch

from reference_ig import blank_activations, consumer, n_layers, replace_at_blank


def grad_x_act(model, arch, ids, blank, target):
    model.eval()
    x = torch.tensor([ids])
    acts, _ = blank_activations(model, arch, ids, blank)
    out = []
    for l in range(n_layers(model)):
        leaf = acts[l].clone().requires_grad_(True)
        h = replace_at_blank(model, arch, l, blank, leaf)
        p = torch.softmax(model(x).logits[0, blank].float(), -1)[target]
        h.remove()
        (g,) = torch.autograd.grad(p, leaf)
        out.append((acts[l].double() * g.double()).tolist())
    return out


def _layer(model, arch, layer):
    """The module whose output is layer `layer`'s hidden state."""
    if arch == "bert":
        return model.bert.encoder.layer[layer]
    if arch == "roberta":
        return model.roberta.encoder.layer[layer]
    if arch in ("gpt2", "gptj"):
        return model.transformer.h[layer]
    if arch == "gpt_neox":
        return model.gpt_neox.layers[layer]
    return model.model.layers[layer]


def _head(model, arch, x):
    """The output head on hidden states `x` (final norm, unembedding, and
    Gemma 2's logit soft-cap)."""
    if arch == "bert":
        return model.cls(x)
    if arch == "roberta":
        return model.lm_head(x)
    if arch in ("gpt2", "gptj"):
        return model.lm_head(model.transformer.ln_f(x))
    if arch == "gpt_neox":
        return model.lm_head(model.gpt_neox.final_layer_norm(x))
    logits = model.lm_head(model.model.norm(x))
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def logprob_increase(model, arch, ids, blank, target):
    """One batched forward pass per layer: row 0 with no neuron active at the
    blank, row 1 + i with only neuron i (at its own activation); the layer's
    output at the blank is read through the head."""
    model.eval()
    acts, _ = blank_activations(model, arch, ids, blank)
    out = []
    for l in range(n_layers(model)):
        a = acts[l]
        rows = torch.cat([torch.zeros(1, a.shape[0]), torch.diag(a)])
        seen = {}

        def replace(_m, inp):
            x = inp[0].clone()
            x[:, blank] = rows
            return (x,) + tuple(inp[1:])

        def grab(_m, _inp, output):
            seen["x"] = (output[0] if isinstance(output, tuple) else output)[:, blank]

        hooks = [
            consumer(model, arch, l).register_forward_pre_hook(replace),
            _layer(model, arch, l).register_forward_hook(grab),
        ]
        with torch.no_grad():
            model(torch.tensor([ids] * rows.shape[0]))
            lp = torch.log_softmax(_head(model, arch, seen["x"]).double(), -1)[:, target]
        for h in hooks:
            h.remove()
        out.append((lp[1:] - lp[0]).tolist())
    return out


def masked_ids(tok, ids, masked):
    """The prompt's ids with every non-special token replaced (see the module's doc)."""
    special = set(tok.all_special_ids)
    filler = tok.mask_token_id if masked else tok.convert_tokens_to_ids("<|endoftext|>")
    return [i if i in special else filler for i in ids]


def ig_masked_baseline(model, arch, ids, blank, target, steps, base_ids):
    model.eval()

    w = blank_activations(model, arch, ids, blank)[0]
    a0 = blank_activations(model, arch, base_ids, blank)[0]
    x = torch.tensor([ids])
    out = []
    for l in range(n_layers(model)):
        total = torch.zeros_like(w[l], dtype=torch.float64)
        for k in range(1, steps + 1):
            leaf = (a0[l] + k / steps * (w[l] - a0[l])).clone().requires_grad_(True)
            h = replace_at_blank(model, arch, l, blank, leaf)
            p = torch.softmax(model(x).logits[0, blank].float(), -1)[target]
            h.remove()
            (g,) = torch.autograd.grad(p, leaf)
            total += g.double()
        out.append(((w[l] - a0[l]).double() * total / steps).tolist())
    return out
