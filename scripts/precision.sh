#!/usr/bin/env bash
# What a cheaper precision costs in fidelity and buys in time: ten capital facts
# on SmolLM2, each attributed by the checkpoint in f32 and at the precision asked
# (`kn bench --dtype DTYPE --storage STORAGE`), fast mode, m = 20. Prints the
# share of facts whose refined knowledge neurons are the same set, how far the
# scores move, and the seconds per fact of both.
#   bash scripts/precision.sh [DTYPE: bf16|f16|f32] [STORAGE: auto|bf16|f16|f32] [MODEL]
# `f32 bf16` holds the weights in bf16 and computes in f32: it separates what
# rounding the weights costs from what computing in bf16 costs.
# (f16 has no vector kernels on a CPU: about 2 GFLOP/s here, use it on a GPU.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_test_python
ensure_smollm2
libtorch_env
DTYPE="${1:-bf16}"
STORAGE="${2:-auto}"
MODEL="${3:-smollm2}"
step "Release build"
cargo build --release -p kn-backend
KN="$ROOT/target/release/kn"

mkdir -p "$ROOT/bench-results"
OUT="$ROOT/bench-results/precision-$DTYPE-$STORAGE-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
for pair in France:Paris Germany:Berlin Japan:Tokyo Italy:Rome Spain:Madrid \
            Russia:Moscow China:Beijing Egypt:Cairo Greece:Athens Portugal:Lisbon; do
  country="${pair%%:*}" capital="${pair##*:}"
  step "$capital, capital of $country ($DTYPE compute, $STORAGE storage, against f32)"
  "$KN" bench --device cpu --model "$MODEL" --target "$capital" --modes fast \
    --dtype "$DTYPE" --storage "$STORAGE" --json \
    --prompt "The capital of $country is [MASK]." --prompt "The capital city of $country is [MASK]." \
    --prompt "$country's capital is [MASK]." --prompt "$country's capital city is [MASK]." \
    --prompt "$country's capital, [MASK]." | tee -a "$OUT"
done

step "Summary"
"$PY" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f = [r["fidelity_vs_f32"] for r in rows if r["fidelity_vs_f32"]]
print(f"{rows[0]['dtype']} compute, {rows[0]['storage']} storage against f32 on {rows[0]['model']}, {len(rows)} facts, {rows[0]['prompts']} prompts each, m = {rows[0]['steps']}:")
if f:
    print(f"  refined knowledge neurons identical: {sum(x['same_knowledge'] for x in f)} of {len(f)} facts")
    print(f"  worst score deviation (of a prompt's largest): max {100 * max(x['worst_deviation'] for x in f):.2f}%, "
          f"mean {100 * sum(x['worst_deviation'] for x in f) / len(f):.2f}%")
    print(f"  top-10 overlap: mean {100 * sum(x['top10_overlap'] for x in f) / len(f):.0f}%")
    print(f"  sets (f32 vs this): " + ", ".join(f"{a}/{b}" for a, b in (x['knowledge'] for x in f)))
s = [next(x["seconds_per_fact"] for x in r["results"]) for r in rows]
print(f"  {rows[0]['dtype']} fast mode: {sum(s) / len(s):.1f} s/fact at {100 * sum(next(x['fraction_of_peak'] for x in r['results']) for r in rows) / len(rows):.0f}% of its {rows[0]['matmul_peak_gflops']:.0f} GFLOP/s matmul peak")
PY
note "raw results: $OUT"
