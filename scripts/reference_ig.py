"""Integrated gradients the slow, obvious way, with `transformers` forward hooks.

This is the independent reference the Rust engine is tested against: for each layer
and each Riemann point it runs the whole model, with the FFN activation at the blank
replaced (through a pre-hook on the module that consumes it) by `alpha * w_bar`, and
takes the gradient of P(target) with autograd. Nothing is shared with the Rust code.
"""

import torch


def consumer(model, arch, layer):
    """The module whose input is the FFN intermediate activation (SPEC)."""
    if arch == "bert":
        return model.bert.encoder.layer[layer].output.dense
    if arch == "gpt2":
        return model.transformer.h[layer].mlp.c_proj
    if arch == "gpt_neox":
        return model.gpt_neox.layers[layer].mlp.dense_4h_to_h
    if arch == "gptj":
        return model.transformer.h[layer].mlp.fc_out
    if arch == "roberta":
        return model.roberta.encoder.layer[layer].output.dense
    return model.model.layers[layer].mlp.down_proj


def n_layers(model):
    return model.config.num_hidden_layers


def blank_activations(model, arch, ids, blank):
    """Every layer's FFN activation at the blank, and the answer distribution
    there (float64), from one forward pass."""
    acts = {}
    hooks = []
    for l in range(n_layers(model)):
        def grab(_m, inp, l=l):
            acts[l] = inp[0][0, blank].detach().clone()
        hooks.append(consumer(model, arch, l).register_forward_pre_hook(grab))
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, blank].double(), -1)
    for h in hooks:
        h.remove()
    return acts, probs


def replace_at_blank(model, arch, layer, blank, leaf):
    """Make the layer's FFN activation at the blank `leaf` (remove the returned
    hook afterwards)."""
    def replace(_m, inp):
        a = inp[0].clone()
        a[0, blank] = leaf
        return (a,) + tuple(inp[1:])

    return consumer(model, arch, layer).register_forward_pre_hook(replace)


def integrated_gradients(model, arch, ids, blank, target, steps):
    """Per layer: right and left Riemann IG scores, P at alpha=0 and at alpha=1."""
    model.eval()
    x = torch.tensor([ids])
    # w_bar: the activation at the blank, per layer.
    acts, probs = blank_activations(model, arch, ids, blank)
    p_target = probs[target].item()

    out = []
    for l in range(n_layers(model)):
        w = acts[l]
        grads, probs = [], []
        for k in range(steps + 1):
            leaf = (k / steps * w).clone().requires_grad_(True)
            h = replace_at_blank(model, arch, l, blank, leaf)
            logits = model(x).logits[0, blank]
            h.remove()
            p = torch.softmax(logits.float(), -1)[target]
            (g,) = torch.autograd.grad(p, leaf)
            grads.append(g.double())
            probs.append(p.item())
        grads = torch.stack(grads)
        right = (w.double() * grads[1:].sum(0) / steps).tolist()
        left = (w.double() * grads[:-1].sum(0) / steps).tolist()
        out.append({"right": right, "left": left, "p_zero": probs[0], "p_full": probs[-1]})
    return {"p_target": p_target, "layers": out, "activations": [acts[l].tolist() for l in range(n_layers(model))]}
