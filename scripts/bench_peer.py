#!/usr/bin/env python3
"""Time the peer implementation, EleutherAI's `knowledge-neurons` 0.0.2 (PyPI), finding
one fact's neurons: `get_refined_neurons` (= `get_scores` for each prompt, then
refining) at m = 20, on a BERT checkpoint, on the CPU (or CUDA, for the GPU check).
Prints one JSON line.

    python scripts/bench_peer.py MODEL_DIR TARGET PROMPT... [--peer-dir DIR] [--repeat N] [--device cuda]

With --repeat N the fact is timed N times and the best is reported, as `kn bench
--repeat N` does: on a shared machine the best of a few runs moves less than one.
"""

import argparse
import json
import os
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("target")
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--peer-dir", required=True, help="unpacked knowledge-neurons-0.0.2 sdist")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    sys.path.insert(0, args.peer_dir)
    import torch
    from transformers import BertForMaskedLM, BertTokenizer

    from knowledge_neurons import KnowledgeNeurons

    if args.threads:
        torch.set_num_threads(args.threads)
    lines = open(os.path.join(args.model, "vocab.txt"), encoding="utf-8").read().splitlines()
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(lines)}, do_lower_case=False)
    model = BertForMaskedLM.from_pretrained(args.model).eval()
    kn = KnowledgeNeurons(model, tok, model_type="bert", device=args.device)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    # Warm-up, as for ours.
    kn.get_scores(args.prompts[0], args.target, batch_size=2, steps=2, pbar=False)
    times = []
    for _ in range(max(1, args.repeat)):
        sync()
        t0 = time.perf_counter()
        refined = kn.get_refined_neurons(
            args.prompts, args.target, p=0.7, batch_size=10, steps=args.steps,
            coarse_adaptive_threshold=0.2, quiet=True,
        )
        sync()
        times.append(time.perf_counter() - t0)
    dt = min(times)
    print(json.dumps({
        "implementation": "knowledge-neurons 0.0.2 (EleutherAI)",
        "seconds_per_fact": dt,
        "runs_seconds": times,
        "seconds_per_prompt": dt / len(args.prompts),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None,
        "refined_neurons": len(refined),
    }))


if __name__ == "__main__":
    main()
