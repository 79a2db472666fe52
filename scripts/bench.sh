#!/usr/bin/env bash
# Benchmark harness: time finding one fact's neurons from 9 prompts at m = 20
# with our engine (naive, resume and fast modes) and with the peer
# implementation (EleutherAI knowledge-neurons 0.0.2) in the same run, on a
# random-initialised bert-base-shaped checkpoint; and our engine on SmolLM2.
# Prints the ratios; record them in BENCHMARKS.md with the machine.
#   bash scripts/bench.sh [--quick] [--repeat N]
#   --quick: 3 prompts instead of 9; --repeat N: every row is the best of N
#   timed runs (ours and the peer alike), which a shared machine needs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_test_python
ensure_smollm2
libtorch_env
step "Release build"
cargo build --release -p kn-backend
KN="$ROOT/target/release/kn"
BERT="$ROOT/fixtures/bert-base-shaped"
"$PY" scripts/make_fixtures.py --bert-base "$BERT"

PEER="$TOOLS/knowledge-neurons-0.0.2"
if [ ! -d "$PEER" ]; then
  step "Peer implementation: knowledge-neurons==0.0.2 (PyPI sdist) and einops"
  "$PY" -m pip download -q --no-deps --no-binary :all: knowledge-neurons==0.0.2 -d "$TOOLS"
  tar xzf "$TOOLS/knowledge-neurons-0.0.2.tar.gz" -C "$TOOLS"
fi
"$PY" -c "import einops" 2>/dev/null || "$PY" -m pip install -q einops

# Nine P1376 templates for <Paris, capital of, France>; masked models take the blank anywhere.
MASKED=(
  "[MASK] is the capital of France." "The capital of France is [MASK]." "The capital city of France is [MASK]."
  "[MASK] is the capital city of France." "France's capital, [MASK]." "France's capital city, [MASK]."
  "France's capital is [MASK]." "France's capital city is [MASK]." "[MASK], the capital of France."
)
# Causal models need the blank at the end: nine prompts that end with it.
CAUSAL=(
  "The capital of France is [MASK]." "The capital city of France is [MASK]." "France's capital, [MASK]."
  "France's capital city, [MASK]." "France's capital is [MASK]." "France's capital city is [MASK]."
  "The capital of the French Republic is [MASK]." "The French capital is [MASK]." "France has its capital in [MASK]."
)
REPEAT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MASKED=("${MASKED[@]:0:3}"); CAUSAL=("${CAUSAL[@]:0:3}") ;;
    --repeat) REPEAT="$2"; shift ;;
    *) echo "usage: bench.sh [--quick] [--repeat N]" >&2; exit 2 ;;
  esac
  shift
done
args() { for p in "$@"; do printf -- '--prompt\n%s\n' "$p"; done; }

mkdir -p "$ROOT/bench-results"
OUT="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
step "Ours on bert-base shapes (naive, resume, fast)"
mapfile -t A < <(args "${MASKED[@]}")
"$KN" bench --device cpu --model "$BERT" --target Paris "${A[@]}" --modes naive,resume,fast --repeat "$REPEAT" --json | tee -a "$OUT"
step "Peer on bert-base shapes"
"$PY" scripts/bench_peer.py "$BERT" Paris "${MASKED[@]}" --peer-dir "$PEER" --repeat "$REPEAT" | tee -a "$OUT"
step "Ours on SmolLM2 (naive, resume, fast)"
mapfile -t A < <(args "${CAUSAL[@]}")
"$KN" bench --device cpu --model smollm2 --target Paris "${A[@]}" --modes naive,resume,fast --repeat "$REPEAT" --json | tee -a "$OUT"

step "Ratios"
"$PY" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours_bert, peer, ours_smol = rows
def t(rows, mode): return next(r["seconds_per_fact"] for r in rows["results"] if r["mode"] == mode)
print(f"bert-base shapes, {ours_bert['prompts']} prompts, m={ours_bert['steps']}:")
for mode in ("naive", "resume", "fast"):
    print(f"  ours {mode:<7} {t(ours_bert, mode):8.2f} s/fact   {peer['seconds_per_fact'] / t(ours_bert, mode):5.2f}x faster than the peer")
print(f"  peer          {peer['seconds_per_fact']:8.2f} s/fact")
print(f"SmolLM2, {ours_smol['prompts']} prompts:")
for mode in ("naive", "resume", "fast"):
    print(f"  ours {mode:<7} {t(ours_smol, mode):8.2f} s/fact   {t(ours_smol, 'naive') / t(ours_smol, mode):5.2f}x faster than naive")
PY
note "raw results: $OUT"
