#!/usr/bin/env python3
"""Write the test fixtures: tiny random-initialised checkpoints in exact Hugging Face
layout, GGUF files of the tiny Llama, and golden outputs computed by `transformers`.

The Rust runtimes are held to these goldens (backend/tests/). Everything here is seeded,
so the files are the same on every machine; the output folder carries a stamp with the
hash of this script, and the script does nothing when the stamp matches.

    python scripts/make_fixtures.py [--out fixtures/models] [--smollm2 PATH.gguf]

What each golden file holds (`golden.json` in every model folder):
  prompts: [{prompt, input_ids, blank, logits (at the blank), top5, activations}]
where `activations[l]` is the FFN intermediate activation (SPEC: "Neurons") of layer l
at the blank, captured with forward hooks on the module that consumes it.
"""

import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
IG_STEPS = 20
DATA = os.path.join(ROOT, "data")

ROPE_THETA = 10000.0

PROMPTS = [
    "The capital of France is [MASK].",
    "Paris is the capital of [MASK].",
    "The official language of Brazil is [MASK].",
    "Albert Einstein was born in [MASK].",
    "The Eiffel Tower is located in [MASK].",
]


def corpus():
    """Text for training the fixture tokenizers: ParaRel templates filled with facts."""
    lines = []
    for path in sorted(glob.glob(os.path.join(DATA, "pararel", "graphs_json", "*.jsonl"))):
        rel = os.path.basename(path)[: -len(".jsonl")]
        pats = [json.loads(l)["pattern"] for l in open(path) if l.strip()]
        facts_path = os.path.join(DATA, "pararel", "trex_lms_vocab", rel + ".jsonl")
        if not os.path.exists(facts_path):
            continue
        facts = [json.loads(l) for l in open(facts_path) if l.strip()][:60]
        for i, f in enumerate(facts):
            p = pats[i % len(pats)]
            lines.append(p.replace("[X]", f["sub_label"]).replace("[Y]", f["obj_label"]))
    if not lines:
        sys.exit(f"make_fixtures: no ParaRel data under {DATA}/pararel (the repository's data/ folder)")
    lines += [p.replace("[MASK]", "Paris France Portuguese Germany Ulm") for p in PROMPTS]
    lines += ["In 1999, 42 people paid $3.50 each; 2024-11-28 was a Thursday!"] * 3
    return lines


def parity_strings():
    """Strings for tokenizer parity: real prompts plus awkward cases."""
    rng = random.Random(7)
    lines = corpus()
    rng.shuffle(lines)
    out = lines[:240]
    out += [
        "",
        " ",
        "  leading and trailing  ",
        "Numbers: 12345 and 3.14159, 1,000,000",
        "CamelCaseWordsAndALLCAPS",
        "tabs\tand\nnewlines\n\n",
        "Ünïcödé façade — naïve café, Zürich; 東京; Москва",
        "emoji 🙂 and symbols © ® ™ ±",
        "don't won't it's y'all",
        "URL https://example.org/a?b=c&d=e",
        "multiple     spaces",
        "[MASK] alone",
        "The capital of France is",
        " Paris",
        "Paris",
    ]
    return out


def set_seed(seed):
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_wordpiece(folder):
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    tok.train_from_iterator(corpus(), vocab_size=1200, min_frequency=1, show_progress=False)
    os.makedirs(folder, exist_ok=True)
    tok.save_model(folder)  # vocab.txt
    # The trainer breaks ties between equally frequent pieces in hash order, so
    # the same corpus gives the same set of tokens in another order on each run
    # (and another fingerprint). WordPiece matches by the set alone: write it
    # sorted, the special tokens first, so the ids are the same on every run.
    path = os.path.join(folder, "vocab.txt")
    lines = open(path, encoding="utf-8").read().splitlines()
    specials = [t for t in lines if t.startswith("[") and t.endswith("]")]
    rest = sorted(t for t in lines if t not in specials)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(specials + rest) + "\n")
    from transformers import BertTokenizer

    # transformers 5 builds BERT's tokenizer (normaliser, WordPiece, [CLS]/[SEP]
    # template) from a vocabulary; it is the reference for our vocab.txt loader.
    lines = open(os.path.join(folder, "vocab.txt"), encoding="utf-8").read().splitlines()
    fast = BertTokenizer(vocab={t: i for i, t in enumerate(lines)}, do_lower_case=False)
    return fast


def train_bytelevel(folder, digits):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if digits:  # SmolLM2's pre-tokenizer: single digits, then GPT-2's byte-level split
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), bl]
        )
    else:
        tok.pre_tokenizer = bl
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    os.makedirs(folder, exist_ok=True)
    fast.save_pretrained(folder)
    return fast


def encode(tok, prompt, masked):
    if masked:
        text = prompt.replace("[MASK]", tok.mask_token)
        ids = tok(text)["input_ids"]
        return ids, ids.index(tok.mask_token_id)
    before = prompt.split("[MASK]")[0].rstrip()
    ids = tok(before)["input_ids"]
    return ids, len(ids) - 1


def golden(model, tok, arch, masked, n_layers):
    from reference_ig import consumer  # the module that consumes the FFN activation

    import torch

    model.eval()
    out = []
    for prompt in PROMPTS:
        ids, blank = encode(tok, prompt, masked)
        acts = {}
        hooks = []
        for l in range(n_layers):
            def hook(_m, inp, l=l):
                acts[l] = inp[0][0, blank].detach().double().tolist()

            hooks.append(consumer(model, arch, l).register_forward_pre_hook(hook))
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, blank].double()
        for h in hooks:
            h.remove()
        top5 = torch.topk(logits, 5).indices.tolist()
        out.append(
            {
                "prompt": prompt,
                "input_ids": ids,
                "blank": blank,
                "logits": logits.tolist(),
                "top5": top5,
                "activations": [acts[l] for l in range(n_layers)],
            }
        )
    return out


def attribution_goldens(model, tok, arch, masked):
    """IG references for two prompts, target = the model's second-ranked token (any
    token will do; the second exercises a non-argmax answer)."""
    from reference_ig import integrated_gradients
    from reference_methods import grad_x_act, ig_masked_baseline, logprob_increase, masked_ids

    out = []
    for prompt in PROMPTS[:2]:
        ids, blank = encode(tok, prompt, masked)
        import torch

        with torch.no_grad():
            target = torch.topk(model(torch.tensor([ids])).logits[0, blank], 2).indices[1].item()
        ref = integrated_gradients(model, arch, ids, blank, target, IG_STEPS)
        methods = {
            "grad_x_act": grad_x_act(model, arch, ids, blank, target),
            "logprob_increase": logprob_increase(model, arch, ids, blank, target),
            "ig_masked_baseline": ig_masked_baseline(
                model, arch, ids, blank, target, IG_STEPS, masked_ids(tok, ids, masked)
            ),
            "masked_ids": masked_ids(tok, ids, masked),
        }
        out.append({"prompt": prompt, "input_ids": ids, "blank": blank, "target": target, "steps": IG_STEPS, **ref, "methods": methods})
    return out


CHAIN_TARGETS = ["Ottawa", "Lyon", "Berlin", "Zurich", "Tokyo", "Madrid", "Lisbon",
                 "Reykjavik", "Ouagadougou", "Doha", "Lima", "Bern"]


def chain_goldens(model, tok, arch, masked):
    """Multi-token answers (reference_chain.py): the first candidate answer of two or
    three pieces, on two prompts, read at every step and at the first only."""
    from reference_chain import chain_integrated_gradients, one_pass, pieces, steps

    target = next(t for t in CHAIN_TARGETS if 2 <= len(pieces(tok, t, masked)) <= 3)
    out = []
    for prompt in PROMPTS[:2]:
        chain = steps(tok, prompt, target, masked)
        for positions in ["all", "first"]:
            acted = [positions == "all" or j == 0 for j in range(len(chain))]
            ref = chain_integrated_gradients(model, arch, chain, acted, IG_STEPS)
            out.append({
                "prompt": prompt,
                "target": target,
                "positions": positions,
                "steps": IG_STEPS,
                "chain": [{"input_ids": ids, "blank": b, "piece": p} for ids, b, p in chain],
                **ref,
                # A causal model reads the same P(answer) in one pass over the
                # prompt and the answer.
                **({} if masked else {"p_one_pass": one_pass(model, chain)}),
            })
    return out


def write_golden(folder, tok, model, arch, masked, n_layers, extra=None, attribution=False):
    g = {
        "arch": arch,
        "masked": masked,
        "prompts": golden(model, tok, arch, masked, n_layers),
        "tokenizer_parity": [
            {"text": s, "ids": tok(s)["input_ids"]} for s in parity_strings()
        ],
    }
    if attribution:
        g["attribution"] = attribution_goldens(model, tok, arch, masked)
        g["chain"] = chain_goldens(model, tok, arch, masked)
    if extra:
        g.update(extra)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(g, f)


def train_roberta_bpe(folder):
    """RoBERTa's tokenizer (byte-level BPE, `<s> … </s>`, a `<mask>` that absorbs the
    space before it), built by transformers from a vocabulary trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # As roberta-base's tokenizer_config: the mask takes the space before it.
    mask = AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)
    fast = RobertaTokenizer(vocab=model["vocab"], merges=merges, mask_token=mask)
    os.makedirs(folder, exist_ok=True)
    fast.save_pretrained(folder)
    return fast


def train_xlmr_unigram(folder):
    """XLM-RoBERTa's tokenizer (SentencePiece Unigram with `▁` for spaces), built by
    transformers from a vocabulary and scores trained here; `<mask>` last, as XLM-R."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, XLMRobertaTokenizer

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=1000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    vocab = [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]] + [("<mask>", 0.0)]
    mask = AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)
    fast = XLMRobertaTokenizer(vocab=vocab, mask_token=mask)
    os.makedirs(folder, exist_ok=True)
    fast.save_pretrained(folder)
    return fast


def make_roberta(out):
    """RoBERTa and XLM-RoBERTa masked LMs: positions after the padding index, one token
    type, the lm_head's dense + LayerNorm + decoder, random biases and LayerNorm gains."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    for name, train, config_cls, model_cls, seed in [
        ("tiny-roberta", train_roberta_bpe, RobertaConfig, RobertaForMaskedLM, 26),
        ("tiny-xlmr", train_xlmr_unigram, XLMRobertaConfig, XLMRobertaForMaskedLM, 27),
    ]:
        print(f"fixtures: {name}", flush=True)
        folder = os.path.join(out, name)
        set_seed(seed)
        tok = train(folder)
        cfg = config_cls(vocab_size=len(tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, layer_norm_eps=1e-5)
        model = model_cls(cfg)
        model.set_attn_implementation("eager")
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() > 1:
                    p.mul_(4.0)
                elif "LayerNorm" in n or "layer_norm" in n:
                    p.add_(0.3 * torch.randn_like(p))
                elif n.endswith("bias"):
                    p.copy_(0.3 * torch.randn_like(p))
        model.save_pretrained(folder, safe_serialization=True)
        write_golden(folder, tok, model, "roberta", True, cfg.num_hidden_layers, attribution=True)


def make_bert(out):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder = os.path.join(out, "tiny-bert")
    set_seed(1)
    tok = train_wordpiece(folder)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
    )
    model = BertForMaskedLM(cfg)
    # Random init gives near-uniform predictions; a larger scale makes top-5
    # comparisons meaningful.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() > 1 else None
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)  # tokenizer.json + vocab.txt
    write_golden(folder, tok, model, "bert", True, cfg.num_hidden_layers, attribution=True)
    # The same checkpoint with only vocab.txt (the old layout many BERTs ship).
    v = os.path.join(out, "tiny-bert-vocab-only")
    os.makedirs(v, exist_ok=True)
    for name in ["config.json", "model.safetensors", "vocab.txt", "golden.json"]:
        shutil.copy(os.path.join(folder, name), v)


def make_gpt2(out):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = os.path.join(out, "tiny-gpt2")
    set_seed(2)
    tok = train_bytelevel(folder, digits=False)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=32,
        n_layer=3,
        n_head=4,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() > 1 else None
    model.save_pretrained(folder, safe_serialization=True)
    write_golden(folder, tok, model, "gpt2", False, cfg.n_layer, attribution=True)


def make_llama(out):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = os.path.join(out, "tiny-llama")
    set_seed(3)
    tok = train_bytelevel(folder, digits=True)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=ROPE_THETA,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() > 1:
                p.mul_(6.0)
            elif "norm" in n:  # non-trivial norm weights exercise the RMSNorm scale
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    write_golden(folder, tok, model, "llama", False, cfg.num_hidden_layers, attribution=True)
    for qtype in ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"]:
        write_gguf(folder, tok, model, cfg, qtype, out)


# The architectures beyond the first three ("the zoo"): each a tiny random
# checkpoint in which the feature that sets it apart bites on the test prompts
# (5 to 10 tokens): sliding windows of 3 or 4 positions, rope scaling with an
# original context of 8, q/k norms, a head_dim that is not hidden/heads,
# random biases and norm gains. Goldens from transformers' eager attention.
ZOO = {
    # Mistral: a sliding window on every layer, shorter than every prompt, and
    # linear rope scaling.
    "tiny-mistral": dict(
        cls="Mistral", seed=11, arch="mistral",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, sliding_window=3,
                 rope_scaling={"rope_type": "linear", "factor": 2.0}, rope_theta=ROPE_THETA,
                 rms_norm_eps=1e-5, tie_word_embeddings=False),
    ),
    # Qwen2 with use_sliding_window: layer 0 full, layers 1-2 sliding
    # (max_window_layers = 1); q/k/v biases.
    "tiny-qwen2-sliding": dict(
        cls="Qwen2", seed=12, arch="qwen2",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, use_sliding_window=True,
                 sliding_window=4, max_window_layers=1, rope_theta=ROPE_THETA, rms_norm_eps=1e-5,
                 tie_word_embeddings=True),
    ),
    # Qwen3: per-head q/k RMSNorm, head_dim 24 (not 64 / 4).
    "tiny-qwen3": dict(
        cls="Qwen3", seed=13, arch="qwen3",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                 rope_theta=ROPE_THETA, rms_norm_eps=1e-5, tie_word_embeddings=True),
    ),
    # Llama 3.x rope scaling with an original context of 8 positions, so that
    # low, middle and high frequencies each take their branch.
    "tiny-llama3": dict(
        cls="Llama", seed=14, arch="llama",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=128, rms_norm_eps=1e-5,
                 rope_theta=ROPE_THETA,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8},
                 tie_word_embeddings=True),
    ),
    # Phi-3: fused qkv_proj and gate_up_proj, half the head rotary, a sliding
    # window of 4 on every layer.
    "tiny-phi3": dict(
        cls="Phi3", seed=16, arch="phi3",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, original_max_position_embeddings=128,
                 partial_rotary_factor=0.5, sliding_window=4, rope_theta=ROPE_THETA, rms_norm_eps=1e-5,
                 tie_word_embeddings=False),
    ),
    # OLMo 2: norms after attention and FFN (none before), q/k RMSNorm over the
    # whole projection.
    "tiny-olmo2": dict(
        cls="Olmo2", seed=17, arch="olmo2",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, rope_theta=ROPE_THETA,
                 rms_norm_eps=1e-5, tie_word_embeddings=False),
    ),
    # GPT-2 as Stanford CRFM trained it: scores also divided by layer index + 1,
    # computed in f32.
    "tiny-gpt2-crfm": dict(
        cls="GPT2", seed=15, arch="gpt2",
        cfg=dict(n_positions=64, n_embd=32, n_layer=3, n_head=4,
                 scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True),
    ),
    # Gemma: (1 + w) norms, √d embeddings, gelu-tanh, head_dim 24 (not 64 / 4).
    "tiny-gemma": dict(
        cls="Gemma", seed=18, arch="gemma", norm_center=0.0,
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                 rope_theta=ROPE_THETA, rms_norm_eps=1e-5),
    ),
    # Gemma 2: sandwich norms, scores and logits soft-capped by caps small
    # enough to bite (the final norm's gain about 4, so that the tied
    # head's logits reach past the cap), query_pre_attn_scalar 16 (not head_dim), layers 0 and 2
    # sliding (window 3), layer 1 global.
    "tiny-gemma2": dict(
        cls="Gemma2", seed=19, arch="gemma", norm_center=0.0, final_norm_center=3.0,
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
                 query_pre_attn_scalar=16, sliding_window=3, attn_logit_softcapping=3.0,
                 final_logit_softcapping=10.0, rope_theta=ROPE_THETA, rms_norm_eps=1e-5),
    ),
    # Gemma 3 (text): per-head q/k norms, local layers turned by a base of 100,
    # the global one by 10000 with linear scaling; window 3.
    "tiny-gemma3": dict(
        cls="Gemma3Text", model="Gemma3ForCausalLM", seed=20, arch="gemma", norm_center=0.0,
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                 query_pre_attn_scalar=24, sliding_window=3, sliding_window_pattern=2,
                 rope_theta=ROPE_THETA, rope_local_base_freq=100.0,
                 rope_scaling={"rope_type": "linear", "factor": 2.0}, rms_norm_eps=1e-5),
    ),
    # Pythia's layout: fused per-head QKV, a quarter of each head rotary,
    # parallel residual, untied embed_out, biases everywhere.
    "tiny-pythia": dict(
        cls="GPTNeoX", seed=21, arch="gpt_neox", rename={"lm_head.weight": "embed_out.weight"},
        hub_keys={"rotary_pct": 0.25, "rotary_emb_base": ROPE_THETA},
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 max_position_embeddings=128, rotary_pct=0.25, rotary_emb_base=ROPE_THETA,
                 use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False),
    ),
    # GPT-NeoX with the serial residual and half the head rotary.
    "tiny-neox-serial": dict(
        cls="GPTNeoX", seed=22, arch="gpt_neox",
        cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                 max_position_embeddings=128, rotary_pct=0.5, rotary_emb_base=ROPE_THETA,
                 use_parallel_residual=False, hidden_act="gelu", tie_word_embeddings=False),
    ),
    # GPT-J: attention and FFN in parallel from one LayerNorm, interleaved
    # rotary on 8 of each head's 16 dimensions, lm_head with a bias.
    "tiny-gptj": dict(
        cls="GPTJ", seed=23, arch="gptj",
        cfg=dict(n_embd=64, n_inner=128, n_layer=3, n_head=4, n_positions=128, rotary_dim=8,
                 tie_word_embeddings=False),
    ),
}
# Distributed in bf16, as the hub's checkpoints are: kn holds them in bf16 and
# computes in f32, which is what transformers gives loading them in f32.
ZOO["tiny-gemma2-bf16"] = dict(ZOO["tiny-gemma2"], seed=24, bf16=True)
ZOO["tiny-pythia-bf16"] = dict(ZOO["tiny-pythia"], seed=25, bf16=True)


def zoo_model(cls, cfg, model=None):
    import transformers

    config_cls = getattr(transformers, f"{cls}Config")
    model_cls = getattr(
        transformers, model or (f"{cls}LMHeadModel" if cls == "GPT2" else f"{cls}ForCausalLM")
    )
    model = model_cls(config_cls(**cfg))
    model.set_attn_implementation("eager")
    return model


def make_zoo(out):
    import torch

    for name, spec in ZOO.items():
        print(f"fixtures: {name}", flush=True)
        folder = os.path.join(out, name)
        set_seed(spec["seed"])
        tok = train_bytelevel(folder, digits=spec["cls"] != "GPT2")
        cfg = dict(spec["cfg"], vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                   eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        model = zoo_model(spec["cls"], cfg, spec.get("model"))
        center = spec.get("norm_center", 1.0)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() > 1:
                    p.mul_(6.0 if spec["cls"] != "GPT2" else 4.0)
                elif n == "model.norm.weight" and "final_norm_center" in spec:
                    p.copy_(spec["final_norm_center"] + 0.3 * torch.randn_like(p))
                elif "norm" in n or n.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                    p.copy_(center + 0.3 * torch.randn_like(p))
                elif n.endswith("bias"):
                    p.copy_(0.3 * torch.randn_like(p))
        if spec.get("bf16"):
            model = model.to(torch.bfloat16)
        model.save_pretrained(folder, safe_serialization=True)
        if spec.get("bf16"):  # as a user loads it in f32 (buffers made afresh, in f32)
            model = type(model).from_pretrained(folder, dtype=torch.float32,
                                                attn_implementation="eager")
        if spec.get("rename"):  # the names the hub's checkpoints have (Pythia: embed_out)
            rename_tensors(os.path.join(folder, "model.safetensors"), spec["rename"])
        if spec.get("hub_keys"):  # the hub's older spelling of the rope keys
            path = os.path.join(folder, "config.json")
            c = json.load(open(path))
            c.pop("rope_parameters")
            c.update(spec["hub_keys"])
            json.dump(c, open(path, "w"), indent=2)
        write_golden(folder, tok, model, spec["arch"], False, model.config.num_hidden_layers,
                     attribution=True)


def rename_tensors(path, names):
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    save_file({names.get(k, k): v for k, v in tensors.items()}, path, metadata={"format": "pt"})


def hf_to_gguf_permute(w, n_head):
    """llama.cpp's converter reorders Q and K rows from HF's half-split rotary layout
    to interleaved pairs; the Rust loader must undo exactly this."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_gguf(folder, tok, model, cfg, qtype, out):
    import gguf
    import torch
    from gguf import GGMLQuantizationType as Q

    path = os.path.join(out, f"tiny-llama-{qtype}.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_file_type({"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}[qtype])
    # Tokenizer, the way llama.cpp's converter writes a byte-level BPE.
    backend = json.loads(tok.backend_tokenizer.to_str())
    vocab = backend["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for added in backend["added_tokens"]:
        if added["special"]:
            types[added["id"]] = gguf.TokenType.CONTROL
    merges = backend["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_add_bos_token(False)

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for l in range(cfg.num_hidden_layers):
        for k, v in per_layer.items():
            names[f"model.layers.{l}.{k}"] = f"blk.{l}.{v}"
    sd = model.state_dict()
    for hf_name, gg_name in names.items():
        t = sd[hf_name].detach().float().numpy()
        if hf_name.endswith("q_proj.weight"):
            t = hf_to_gguf_permute(t, cfg.num_attention_heads)
        if hf_name.endswith("k_proj.weight"):
            t = hf_to_gguf_permute(t, cfg.num_key_value_heads)
        # Like llama.cpp: 1-D tensors stay F32; the embedding of a Q4 file is Q8_0
        # (as in SmolLM2's file).
        if t.ndim == 1 or qtype == "F32":
            w.add_tensor(gg_name, np.ascontiguousarray(t, dtype=np.float32))
            continue
        qt = {"F16": Q.F16, "Q8_0": Q.Q8_0, "Q4_0": Q.Q4_0, "Q4_1": Q.Q4_1}[qtype]
        if gg_name == "token_embd.weight" and qtype.startswith("Q4"):
            qt = Q.Q8_0
        if qt == Q.F16:
            w.add_tensor(gg_name, t.astype(np.float16))
        else:
            data = gguf.quants.quantize(t, qt)
            w.add_tensor(gg_name, data, raw_shape=data.shape, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Goldens from transformers loading the GGUF file itself (dequantised, un-permuted).
    from transformers import AutoTokenizer, LlamaForCausalLM

    gtok = AutoTokenizer.from_pretrained(out, gguf_file=os.path.basename(path))
    gmodel = LlamaForCausalLM.from_pretrained(
        out, gguf_file=os.path.basename(path), torch_dtype=torch.float32
    )
    gfolder = os.path.join(out, f"tiny-llama-{qtype}")
    os.makedirs(gfolder, exist_ok=True)
    write_golden(gfolder, gtok, gmodel, "llama", False, cfg.num_hidden_layers)


def make_smollm2_tokenizer_golden(out, gguf_path):
    """Token ids for the parity strings from transformers' own GGUF tokenizer
    conversion of the real SmolLM2 file."""
    from transformers import AutoTokenizer

    d, name = os.path.split(gguf_path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    data = [{"text": s, "ids": tok(s)["input_ids"]} for s in parity_strings()]
    with open(os.path.join(out, "smollm2-tokenizer-parity.json"), "w") as f:
        json.dump(data, f)


def make_bert_base(out):
    """A random-initialised checkpoint of bert-base-cased's shape (12 layers, 768,
    3072, vocabulary 28996) for benchmarks; its tokenizer is the fixture's."""
    from transformers import BertConfig, BertForMaskedLM

    set_seed(4)
    os.makedirs(out, exist_ok=True)
    tok = train_wordpiece(out)
    cfg = BertConfig(vocab_size=28996)  # the defaults are bert-base's shapes
    BertForMaskedLM(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"fixtures: bert-base-shaped checkpoint in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "models"))
    ap.add_argument("--smollm2", help="path of SmolLM2's GGUF file, for tokenizer goldens")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--bert-base", metavar="DIR", help="only write a bert-base-shaped checkpoint to DIR")
    args = ap.parse_args()
    if args.bert_base:
        if not os.path.exists(os.path.join(args.bert_base, "model.safetensors")):
            make_bert_base(args.bert_base)
        return

    h = hashlib.sha256(open(__file__, "rb").read())
    h.update(open(os.path.join(HERE, "reference_ig.py"), "rb").read())
    h.update(open(os.path.join(HERE, "reference_methods.py"), "rb").read())
    h.update(open(os.path.join(HERE, "reference_chain.py"), "rb").read())
    if args.smollm2:
        h.update(os.path.abspath(args.smollm2).encode())
    stamp = os.path.join(args.out, "STAMP")
    if not args.force and os.path.exists(stamp) and open(stamp).read() == h.hexdigest():
        print(f"fixtures: up to date in {args.out}")
        return
    import torch

    torch.set_num_threads(2)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    for step in (make_bert, make_gpt2, make_llama, make_zoo, make_roberta):
        print(f"fixtures: {step.__name__[5:]}", flush=True)
        step(args.out)
    if args.smollm2:
        print("fixtures: smollm2 tokenizer goldens", flush=True)
        make_smollm2_tokenizer_golden(args.out, args.smollm2)
    with open(stamp, "w") as f:
        f.write(h.hexdigest())
    print(f"fixtures: written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
