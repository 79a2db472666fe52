#!/usr/bin/env python3
"""Random-initialised checkpoints of real model shapes, written with torch alone.

The GPU check (scripts/gpu-check.sh) runs on a machine that has Python and torch but
no network and no `transformers`, and only tens of megabytes can travel to it: the
paper's bert-base-cased (430 MB) and SmolLM2 (98 MB) cannot. Timing depends on the
shapes, not on the weights' values, so this writes checkpoints of exactly those
shapes in Hugging Face layout (config.json, model.safetensors) with the tokenizer
files of our tiny fixtures (a smaller vocabulary than the embedding, which `kn`
accepts). Correctness on the GPU is checked against the CPU on the same weights.

    python3 scripts/gpu_fixtures.py OUT_DIR [--fixtures fixtures/models] [--seed 0]
"""

import argparse
import json
import os
import shutil
import struct

import torch

# The shapes of bert-base-cased and SmolLM2-135M.
BERT_BASE = dict(hidden=768, layers=12, heads=12, ff=3072, vocab=28996, positions=512)
SMOLLM2 = dict(hidden=576, layers=30, heads=9, kv_heads=3, ff=1536, vocab=49152, positions=8192)


def write_safetensors(path, tensors):
    """The safetensors format: an 8-byte little-endian header length, a JSON header
    of dtype, shape and byte offsets per tensor, then the raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        t = t.contiguous().to(torch.float32).cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def randn(*shape, std=0.02):
    return torch.randn(*shape) * std


def bert(out, fixtures):
    s = BERT_BASE
    d, ff, v = s["hidden"], s["ff"], s["vocab"]
    t = {
        "bert.embeddings.word_embeddings.weight": randn(v, d),
        "bert.embeddings.position_embeddings.weight": randn(s["positions"], d),
        "bert.embeddings.token_type_embeddings.weight": randn(2, d),
        "bert.embeddings.LayerNorm.weight": torch.ones(d),
        "bert.embeddings.LayerNorm.bias": torch.zeros(d),
        "cls.predictions.transform.dense.weight": randn(d, d),
        "cls.predictions.transform.dense.bias": torch.zeros(d),
        "cls.predictions.transform.LayerNorm.weight": torch.ones(d),
        "cls.predictions.transform.LayerNorm.bias": torch.zeros(d),
        "cls.predictions.bias": torch.zeros(v),
    }
    for l in range(s["layers"]):
        n = f"bert.encoder.layer.{l}"
        for part, (o, i) in {
            "attention.self.query": (d, d),
            "attention.self.key": (d, d),
            "attention.self.value": (d, d),
            "attention.output.dense": (d, d),
            "intermediate.dense": (ff, d),
            "output.dense": (d, ff),
        }.items():
            t[f"{n}.{part}.weight"] = randn(o, i)
            t[f"{n}.{part}.bias"] = torch.zeros(o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[f"{n}.{ln}.weight"] = torch.ones(d)
            t[f"{n}.{ln}.bias"] = torch.zeros(d)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    config = {
        "model_type": "bert", "hidden_size": d, "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"], "intermediate_size": ff, "vocab_size": v,
        "max_position_embeddings": s["positions"], "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "tie_word_embeddings": True,
    }
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(fixtures, "tiny-bert", f)
        if os.path.exists(src):
            shutil.copy(src, out)


def smollm2(out, fixtures):
    s = SMOLLM2
    d, ff, v, h, kvh = s["hidden"], s["ff"], s["vocab"], s["heads"], s["kv_heads"]
    hd = d // h
    t = {"model.embed_tokens.weight": randn(v, d), "model.norm.weight": torch.ones(d)}
    for l in range(s["layers"]):
        n = f"model.layers.{l}"
        t[f"{n}.input_layernorm.weight"] = torch.ones(d)
        t[f"{n}.post_attention_layernorm.weight"] = torch.ones(d)
        for part, (o, i) in {
            "self_attn.q_proj": (h * hd, d),
            "self_attn.k_proj": (kvh * hd, d),
            "self_attn.v_proj": (kvh * hd, d),
            "self_attn.o_proj": (d, h * hd),
            "mlp.gate_proj": (ff, d),
            "mlp.up_proj": (ff, d),
            "mlp.down_proj": (d, ff),
        }.items():
            t[f"{n}.{part}.weight"] = randn(o, i)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    config = {
        "model_type": "llama", "hidden_size": d, "num_hidden_layers": s["layers"],
        "num_attention_heads": h, "num_key_value_heads": kvh, "head_dim": hd,
        "intermediate_size": ff, "vocab_size": v, "max_position_embeddings": s["positions"],
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "hidden_act": "silu", "tie_word_embeddings": True,
    }
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(fixtures, "tiny-llama", f)
        if os.path.exists(src):
            shutil.copy(src, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--fixtures", default=os.path.join(here, "fixtures", "models"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    bert(os.path.join(args.out, "bert-base-shaped"), args.fixtures)
    smollm2(os.path.join(args.out, "smollm2-shaped"), args.fixtures)
    print(f"gpu_fixtures: bert-base and SmolLM2 shapes written to {args.out}")


if __name__ == "__main__":
    main()
