#!/usr/bin/env bash
# Set up everything and run Knowledge Neuron Studio on the offline default model.
# Extra arguments go to `kn serve` (e.g. --port 9000 --model path/to/bert).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if have_gpu; then ensure_torch full; else ensure_torch slim; fi
ensure_smollm2
libtorch_env
build_frontend
step "Server (cargo build --release)"
cargo build --release -p kn-backend
step "Starting: kn serve $*"
exec "$ROOT/target/release/kn" serve --static-dir "$ROOT/dist" "$@"
