#!/usr/bin/env python3
"""The GPU check: does `kn` built with KN_CUDA=1 run on CUDA, agree with the CPU,
and how fast is it against the machine's own matrix-multiply peak?

Run through scripts/gpu-check.sh, which points LD_LIBRARY_PATH at this machine's
torch. Needs only Python and torch (no network, no `transformers`). Steps:

1. `kn info --device auto` must pick CUDA (and report how many devices it sees).
2. On every fixture model and on random checkpoints of bert-base-cased's and
   SmolLM2's shapes (scripts/gpu_fixtures.py; the real SmolLM2 too when its GGUF
   is here): predict and integrated gradients on the CPU and on CUDA agree (the
   same top-5 ids, P within 1e-4 relative, IG scores within 1e-3 of the largest,
   the same top-10 neurons), and the weights' fingerprint is the same on both.
3. `kn bench` on both shapes: each mode in f32 with the device's batching (a
   fact's prompts together), fast mode one prompt at a time (as before
   batching), fast mode with TF32 matmuls (`kn --tf32`), and fast mode in bf16 and
   f16 (`kn bench --dtype`, with its fidelity against f32); each with its
   fraction of the peak and its device-to-host reads per fact.
4. A precision check: attribution with TF32 against f32 on both shapes (scores'
   deviation, same top-10 neurons).
5. The peer, EleutherAI's knowledge-neurons 0.0.2, on the same device, checkpoint,
   prompts and answer (scripts/bench_peer.py), when its unpacked sdist is here
   (`--peer`, default .tools/knowledge-neurons-0.0.2, which scripts/bench.sh
   fetches; carry it) and `transformers` and `einops` import (the GPU image has both).

It prints one table and writes gpu-check.json (into $OUT when set). `--cpu-only`
compares the CPU with itself, to check the script on a machine without a GPU;
`--quick` uses 3 prompts instead of 9 and skips naive mode.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MASKED = [
    "[MASK] is the capital of France.", "The capital of France is [MASK].", "The capital city of France is [MASK].",
    "[MASK] is the capital city of France.", "France's capital, [MASK].", "France's capital city, [MASK].",
    "France's capital is [MASK].", "France's capital city is [MASK].", "[MASK], the capital of France.",
]
CAUSAL = [
    "The capital of France is [MASK].", "The capital city of France is [MASK].", "France's capital, [MASK].",
    "France's capital city, [MASK].", "France's capital is [MASK].", "France's capital city is [MASK].",
    "The capital of the French Republic is [MASK].", "The French capital is [MASK].", "France has its capital in [MASK].",
]


def kn(args, kn_bin, env=None, timeout=600):
    t0 = time.time()
    r = subprocess.run([kn_bin] + args, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "KN_LOG": "warn", **(env or {})})
    if r.returncode != 0:
        raise RuntimeError(f"kn {' '.join(args[:6])}… failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout), time.time() - t0


def prompt_args(prompts):
    out = []
    for p in prompts:
        out += ["--prompt", p]
    return out


# ParaRel by SPEC's rules for a masked model (README, "What it should cost").
PARAREL_PROMPTS = 253_448

# Answers to try when none of the top predictions is a plain word: a random
# checkpoint with a vocabulary larger than its tokenizer's mostly predicts ids the
# tokenizer cannot spell. Timing and agreement do not depend on the answer.
FALLBACK = ["Paris", "France", "capital", "city", "the"]


def target_for(pred, path, prompt, kn_bin):
    """A one-token answer: the first top-k token that is a plain word, else the
    first of FALLBACK, that `kn` reads back as one token at this blank."""
    words = [t["token"].strip() for t in pred["top_k"]]
    for w in [w for w in words if w.isalpha() and not w.startswith("##")] + FALLBACK:
        try:
            kn(["predict", "--device", "cpu", "--model", path, "--prompt", prompt, "--target", w, "--json"], kn_bin)
            return w
        except RuntimeError:
            continue
    raise RuntimeError(f"no one-token answer among the top predictions and fallbacks of {path}")


def compare_predict(a, b):
    ids_a = [t["id"] for t in a["top_k"][:5]]
    ids_b = [t["id"] for t in b["top_k"][:5]]
    worst = max(abs(x["prob"] - y["prob"]) / max(abs(x["prob"]), 1e-12) for x, y in zip(a["top_k"][:5], b["top_k"][:5]))
    return ids_a == ids_b and worst <= 1e-4, {"top5_equal": ids_a == ids_b, "p_rel_diff": worst}


def top10(scores):
    flat = [(v, l, i) for l, row in enumerate(scores) for i, v in enumerate(row)]
    flat.sort(reverse=True)
    return {(l, i) for _, l, i in flat[:10]}


def compare_attribution(a, b):
    worst, same_top = 0.0, True
    for pa, pb in zip(a, b):
        m = max(abs(v) for row in pa["scores"] for v in row) or 1e-12
        d = max(abs(x - y) for ra, rb in zip(pa["scores"], pb["scores"]) for x, y in zip(ra, rb))
        worst = max(worst, d / m)
        same_top &= top10(pa["scores"]) == top10(pb["scores"])
    return worst <= 1e-3 and same_top, {"score_diff_of_max": worst, "top10_equal": same_top}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kn", default=os.path.join(ROOT, "target", "release", "kn"))
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "fixtures", "models"))
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--peer", default=os.path.join(ROOT, ".tools", "knowledge-neurons-0.0.2"),
                    help="the peer's unpacked sdist (skipped when absent)")
    args = ap.parse_args()
    started = time.time()
    report = {"checks": [], "bench": [], "ok": True}
    fail = []

    info, _ = kn(["info", "--device", "auto", "--model", os.path.join(args.fixtures, "tiny-bert")], args.kn)
    report["info"] = {k: info.get(k) for k in ("device", "cuda_available", "cuda_devices", "dtype", "threads")}
    dev = "cpu" if args.cpu_only else "cuda"
    if not args.cpu_only and not str(info.get("device", "")).startswith("cuda"):
        fail.append(f"--device auto picked {info.get('device')}, not CUDA (cuda_available {info.get('cuda_available')})")
    print(f"kn info --device auto: {report['info']}", flush=True)

    shaped = tempfile.mkdtemp(prefix="kn-gpu-")
    subprocess.run([sys.executable, os.path.join(HERE, "gpu_fixtures.py"), shaped, "--fixtures", args.fixtures], check=True)
    models = [(os.path.join(args.fixtures, n), n) for n in ("tiny-bert", "tiny-gpt2", "tiny-llama", "tiny-llama-Q4_1.gguf")]
    # The real models' shapes, random weights: checked, then timed.
    shapes = ((os.path.join(shaped, "bert-base-shaped"), "bert-base shapes", MASKED),
              (os.path.join(shaped, "smollm2-shaped"), "SmolLM2 shapes", CAUSAL))
    models += [(path, label) for path, label, _ in shapes]
    gguf = os.environ.get("KN_SMOLLM2_GGUF")
    if gguf and os.path.exists(gguf):
        models.append((gguf, "SmolLM2"))

    for path, label in models:
        masked = label.startswith("tiny-bert") or label.startswith("bert")
        prompts = (MASKED if masked else CAUSAL)[:3]
        row = {"model": label}
        try:
            infos = [kn(["info", "--device", d, "--model", path], args.kn)[0] for d in ("cpu", dev)]
            row["fingerprint_equal"] = infos[0]["fingerprint"] == infos[1]["fingerprint"]
            preds = [kn(["predict", "--device", d, "--model", path, "--prompt", prompts[0], "--top-k", "20", "--json"], args.kn)[0] for d in ("cpu", dev)]
            ok_p, row["predict"] = compare_predict(*preds)
            target = target_for(preds[0], path, prompts[0], args.kn)
            attrs = [kn(["attribute", "--device", d, "--model", path, "--target", target, "--steps", "20", "--json"] + prompt_args(prompts), args.kn)[0] for d in ("cpu", dev)]
            ok_a, row["attribution"] = compare_attribution(*attrs)
            row["ok"] = ok_p and ok_a and row["fingerprint_equal"]
        except Exception as e:  # a failure of one model is reported, the rest still run
            row["ok"], row["error"] = False, str(e)
        if not row["ok"]:
            fail.append(f"{label}: {row}")
        report["checks"].append(row)
        print(f"check {label}: {'ok' if row['ok'] else 'FAILED'} {json.dumps({k: v for k, v in row.items() if k != 'model'})}", flush=True)

    n = 3 if args.quick else 9
    modes = "resume,fast" if args.quick else "naive,resume,fast"
    # (precision, batching, extra arguments, modes): the device's defaults
    # attribute a fact's prompts together; "one prompt" holds passes to the
    # CPU's budgets, one prompt at a time, as the engine ran before batching.
    variants = [("f32", "batched", [], modes),
                ("f32", "one prompt", ["--max-batch", "256", "--max-row-tokens", "8192"], "fast"),
                ("tf32", "batched", ["--tf32"], "fast"),
                # bf16 and f16 weights and activations; kn bench also attributes
                # the fact in f32 and reports the fidelity (engine::precision).
                ("bf16", "batched", ["--dtype", "bf16"], "fast"),
                ("f16", "batched", ["--dtype", "f16"], "fast")]
    if dev == "cpu":
        # A CPU has no f16 matrix kernels (about 2 GFLOP/s): minutes per prompt.
        variants = [v for v in variants if v[0] != "f16"]
    report["precision"] = []
    targets = {}  # each shape's answer
    for path, label, prompts in shapes:
        try:
            pred, _ = kn(["predict", "--device", dev, "--model", path, "--prompt", prompts[0], "--top-k", "20", "--json"], args.kn)
            target = target_for(pred, path, prompts[0], args.kn)
            targets[label] = target
        except Exception as e:
            fail.append(f"bench {label}: {e}")
            continue
        for precision, batching, extra, mode_list in variants:
            try:
                b, _ = kn(["bench", "--device", dev, "--model", path, "--target", target, "--json", "--modes", mode_list]
                          + extra + prompt_args(prompts[:n]), args.kn)
                for r in b["results"]:
                    report["bench"].append({"model": label, "precision": precision, "batching": batching,
                                            "prompts": b["prompts"], "peak_gflops": b["matmul_peak_gflops"], **r})
                f = b.get("fidelity_vs_f32")
                if f:
                    report["precision"].append({"model": label, "precision": precision,
                                                "score_diff_of_max": f["worst_deviation"],
                                                "top10": f"{100 * f['top10_overlap']:.0f}%",
                                                "same_refined_set": f["same_knowledge"]})
            except Exception as e:
                fail.append(f"bench {label} {precision} {batching}: {e}")

    # The peer on the same device, checkpoint, prompts and answer: a measurement
    # beside ours, not a check (its absence or failure is reported, not failed).
    report["peer"] = None
    peer_ok = os.path.isdir(args.peer) and subprocess.run(
        [sys.executable, "-c", "import transformers, einops"], capture_output=True).returncode == 0
    if not peer_ok:
        print(f"peer: skipped (no {args.peer}, or transformers/einops missing)", flush=True)
    elif "bert-base shapes" in targets:
        try:
            r = subprocess.run([sys.executable, os.path.join(HERE, "bench_peer.py"), os.path.join(shaped, "bert-base-shaped"),
                                targets["bert-base shapes"], *MASKED[:n], "--peer-dir", args.peer, "--device", dev],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.strip()[-800:])
            report["peer"] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"peer: {report['peer']}", flush=True)
        except Exception as e:
            report["peer"] = {"error": str(e)}
            print(f"peer: failed: {e}", flush=True)

    # TF32 against f32 on the same weights and prompts (not a pass/fail check:
    # how far the cheaper precision moves the scores is a measurement).
    for path, label, prompts in shapes:
        if label not in targets:
            continue  # its failure to find an answer is already reported
        target = targets[label]
        try:
            runs = [kn(["attribute", "--device", dev, "--model", path, "--target", target, "--steps", "20", "--json"]
                       + flag + prompt_args(prompts[:3]), args.kn)[0] for flag in ([], ["--tf32"])]
            _, cmp = compare_attribution(*runs)
            report["precision"].append({"model": label, "precision": "tf32", **cmp,
                                        "top10": "equal" if cmp["top10_equal"] else "differs"})
        except Exception as e:
            fail.append(f"precision {label}: {e}")

    report["ok"] = not fail
    report["failures"] = fail
    report["seconds"] = round(time.time() - started, 1)
    print("\n| model | precision | batching | mode | prompts | s/fact | GFLOP/s | % of matmul peak | peak GFLOP/s | device reads/fact |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in report["bench"]:
        print(f"| {r['model']} | {r['precision']} | {r['batching']} | {r['mode']} | {r['prompts']} | {r['seconds_per_fact']:.3f} | "
              f"{r['gflops']:.0f} | {100 * r['fraction_of_peak']:.1f}% | {r['peak_gflops']:.0f} | {r['device_reads_per_fact']} |")
    # The paper's whole ParaRel run on bert-base-cased (253,448 prompts of
    # 27,738 facts), projected from each bert-base-shaped row's time per prompt
    # (the prompts here are of typical length, about ten tokens).
    report["pararel_projection"] = []
    for r in report["bench"]:
        if r["model"] == "bert-base shapes":
            hours = PARAREL_PROMPTS * r["seconds_per_fact"] / r["prompts"] / 3600
            report["pararel_projection"].append({k: r[k] for k in ("precision", "batching", "mode")} | {"hours": hours})
    if report["pararel_projection"]:
        print(f"\nthe whole ParaRel on bert-base-cased ({PARAREL_PROMPTS:,} prompts), projected from the bert-base rows:")
        for r in report["pararel_projection"]:
            print(f"  {r['precision']} {r['batching']} {r['mode']}: {r['hours']:.2f} h on one device")
    peer = report["peer"]
    if peer and "seconds_per_fact" in peer:
        ours = [r for r in report["bench"] if r["model"] == "bert-base shapes" and r["precision"] == "f32"]
        print(f"\npeer (knowledge-neurons 0.0.2) on bert-base shapes, {dev}, {n} prompts: {peer['seconds_per_fact']:.3f} s/fact")
        for r in ours:
            print(f"  ours, f32 {r['batching']} {r['mode']}: {r['seconds_per_fact']:.3f} s/fact, "
                  f"{peer['seconds_per_fact'] / r['seconds_per_fact']:.2f}x the peer")
    print("\n| model | CPU = device | P rel. diff | IG diff / max | top-10 equal | fingerprint equal |")
    print("| --- | --- | ---: | ---: | --- | --- |")
    for c in report["checks"]:
        p, a = c.get("predict", {}), c.get("attribution", {})
        print(f"| {c['model']} | {'yes' if c['ok'] else 'NO'} | {p.get('p_rel_diff', float('nan')):.1e} | "
              f"{a.get('score_diff_of_max', float('nan')):.1e} | {a.get('top10_equal')} | {c.get('fingerprint_equal')} |")
    print("\n| model | precision | IG diff / max vs f32 | top-10 | same refined set |")
    print("| --- | --- | ---: | --- | --- |")
    for r in report["precision"]:
        print(f"| {r['model']} | {r['precision']} | {r['score_diff_of_max']:.1e} | {r['top10']} | {r.get('same_refined_set', '')} |")
    out = os.path.join(os.environ.get("OUT", "."), "gpu-check.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\n{'OK' if report['ok'] else 'FAILED'} in {report['seconds']} s; details in {out}")
    for m in fail:
        print("failure:", m)
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
