#!/usr/bin/env python3
"""Random-weight checkpoints with the shapes of Llama-3.2-1B and Llama-3.1-8B, in bf16.

Memory and speed depend on the shapes and the dtype, not on the values, so these
stand in for the real models (which cannot be downloaded here) in `kn bench` and
in the loading measurements of BENCHMARKS.md. Hugging Face layout: config.json
with the real models' keys (Llama 3 rope scaling included), safetensors shards of
at most 2 GB with their index, and the tokenizer of our tiny Llama fixture (a
smaller vocabulary than the embedding, which kn accepts). Each tensor is drawn and
written on its own, so writing the 16 GB one needs little memory. Never commit
the output.

    python3 scripts/large_model.py OUT_DIR [--shape 1b|8b] [--seed 0]
"""

import argparse
import json
import os
import shutil
import struct

import torch

SHAPES = {
    # meta-llama/Llama-3.2-1B and meta-llama/Llama-3.1-8B, config.json
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, head_dim=64,
               tie_word_embeddings=True,
               rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8, head_dim=128,
               tie_word_embeddings=False,
               rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
}
SHARD_BYTES = 2 << 30


def tensors(c):
    """(name, shape, is_norm) in the order the shards hold them."""
    d, ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd, h, kvh = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    yield "model.embed_tokens.weight", (v, d), False
    for l in range(c["num_hidden_layers"]):
        n = f"model.layers.{l}"
        yield f"{n}.input_layernorm.weight", (d,), True
        yield f"{n}.post_attention_layernorm.weight", (d,), True
        for part, shape in [("self_attn.q_proj", (h * hd, d)), ("self_attn.k_proj", (kvh * hd, d)),
                            ("self_attn.v_proj", (kvh * hd, d)), ("self_attn.o_proj", (d, h * hd)),
                            ("mlp.gate_proj", (ff, d)), ("mlp.up_proj", (ff, d)),
                            ("mlp.down_proj", (d, ff))]:
            yield f"{n}.{part}.weight", shape, False
    yield "model.norm.weight", (d,), True
    if not c["tie_word_embeddings"]:
        yield "lm_head.weight", (v, d), False


def shards(c):
    """Tensors grouped into shards of at most SHARD_BYTES."""
    out, cur, size = [], [], 0
    for name, shape, norm in tensors(c):
        b = 2 * torch.Size(shape).numel()
        if cur and size + b > SHARD_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.append((name, shape, norm))
        size += b
    return out + [cur]


def write_shard(path, group):
    """The safetensors format, header first (the shapes are known), then each
    tensor drawn and written in turn."""
    header, offset = {}, 0
    for name, shape, _ in group:
        b = 2 * torch.Size(shape).numel()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + b]}
        offset += b
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, shape, norm in group:
            t = torch.ones(shape) if norm else torch.randn(shape) * 0.02
            f.write(t.to(torch.bfloat16).view(torch.int16).numpy().tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    ap.add_argument("--seed", type=int, default=0)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--tokenizer", default=os.path.join(here, "fixtures", "models", "tiny-llama"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    c = dict(SHAPES[args.shape], model_type="llama", architectures=["LlamaForCausalLM"],
             vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
             rope_theta=500000.0, hidden_act="silu", attention_bias=False, mlp_bias=False,
             torch_dtype="bfloat16", bos_token_id=128000, eos_token_id=128001)
    os.makedirs(args.out, exist_ok=True)
    groups = shards(c)
    weight_map = {}
    for i, group in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_shard(os.path.join(args.out, name), group)
        weight_map.update({n: name for n, _, _ in group})
        print(f"large_model: {name} ({len(group)} tensors)", flush=True)
    total = sum(2 * torch.Size(s).numel() for _, s, _ in tensors(c))
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(args.out, "model.safetensors.index.json"), "w"), indent=1)
    json.dump(c, open(os.path.join(args.out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = os.path.join(args.tokenizer, f)
        if os.path.exists(src):
            shutil.copy(src, args.out)
    print(f"large_model: Llama-{args.shape} shapes, {total / 2**30:.2f} GiB of bf16, in {args.out}")


if __name__ == "__main__":
    main()
