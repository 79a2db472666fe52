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


def _residual_module(model, arch, layer):
    """The module whose input holds the residual the FFN adds to."""
    if arch == "bert":
        return model.bert.encoder.layer[layer].output  # forward(intermediate, attention_output)
    if arch == "gpt2":
        return model.transformer.h[layer].ln_2
    return model.model.layers[layer].post_attention_layernorm


def _layer_out(model, arch, layer, h, a):
    """The layer's output for residual h ([n, d]) and activations a ([n, d_ff])."""
    if arch == "bert":
        o = model.bert.encoder.layer[layer].output
        return o.LayerNorm(o.dense(a) + h)
    if arch == "gpt2":
        return h + model.transformer.h[layer].mlp.c_proj(a)
    return h + model.model.layers[layer].mlp.down_proj(a)


def _head(model, arch, x):
    if arch == "bert":
        return model.cls(x)
    if arch == "gpt2":
        return model.lm_head(model.transformer.ln_f(x))
    return model.lm_head(model.model.norm(x))


def logprob_increase(model, arch, ids, blank, target):
    model.eval()
    x = torch.tensor([ids])
    hs, acts, hooks = {}, {}, []
    for l in range(n_layers(model)):
        def grab_h(_m, inp, l=l):
            hs[l] = (inp[1] if arch == "bert" else inp[0])[0, blank].detach().clone()

        def grab_a(_m, inp, l=l):
            acts[l] = inp[0][0, blank].detach().clone()

        hooks.append(_residual_module(model, arch, l).register_forward_pre_hook(grab_h))
        hooks.append(consumer(model, arch, l).register_forward_pre_hook(grab_a))
    with torch.no_grad():
        model(x)
        for h in hooks:
            h.remove()
        out = []
        for l in range(n_layers(model)):
            a = acts[l]
            d_ff = a.shape[0]
            h = hs[l].unsqueeze(0)
            none = torch.log_softmax(_head(model, arch, _layer_out(model, arch, l, h, torch.zeros(1, d_ff))).double(), -1)[0, target]
            one_hot = torch.diag(a)
            lp = torch.log_softmax(_head(model, arch, _layer_out(model, arch, l, h.expand(d_ff, -1), one_hot)).double(), -1)[:, target]
            out.append((lp - none).tolist())
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
