#!/usr/bin/env bash
# The one-call GPU check (see scripts/gpu_check.py for what it checks).
#
# Here, before the call: build `kn` against the full torch wheel with CUDA linked,
#   KN_CUDA=1 cargo build --release -p kn-backend   (scripts/test.sh checks this link)
# and carry it with the fixtures and the peer's sources (scripts/bench.sh fetches
# them into .tools/; or: python3 -m pip download --no-deps --no-binary :all:
# knowledge-neurons==0.0.2 -d .tools && tar xzf .tools/knowledge-neurons-0.0.2.tar.gz -C .tools):
# with the device tool, carry
#   ["target/release/kn", "fixtures/models", ".tools/knowledge-neurons-0.0.2"]
# and run `bash scripts/gpu-check.sh` there (the peer is skipped when absent). The binary's own library path points
# at this machine's .venv, which the GPU machine lacks; this script points
# LD_LIBRARY_PATH at the torch that machine has. It needs Python and torch only.
#   bash scripts/gpu-check.sh [--cpu-only] [--quick]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-python3}"
KN="${KN:-$ROOT/target/release/kn}"
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
NV="$("$PY" -c 'import os, torch; d = os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia"); print(":".join(os.path.join(r, x) for r, ds, _ in os.walk(d) for x in ds if x == "lib"))' 2>/dev/null || true)"
export LD_LIBRARY_PATH="$TORCH_LIB${NV:+:$NV}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "kn: $KN"
echo "torch: $TORCH_LIB ($("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())'))"
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; fi
readelf -d "$KN" 2>/dev/null | grep -q 'libtorch_cuda' && echo "kn links libtorch_cuda" || echo "warning: kn does not link libtorch_cuda (build it with KN_CUDA=1)"
exec "$PY" "$ROOT/scripts/gpu_check.py" --kn "$KN" "$@"
