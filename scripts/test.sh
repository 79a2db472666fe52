#!/usr/bin/env bash
# Set up everything and run the whole test suite: formatting, lints, the Rust
# tests (held to goldens from `transformers`), and the browser tests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_test_python
ensure_smollm2
libtorch_env
ensure_chromium
ensure_e2e_node
build_frontend

step "Test fixtures (tiny random checkpoints + goldens from transformers)"
"$PY" scripts/make_fixtures.py --smollm2 "$(smollm2_gguf)"

step "rustfmt"
cargo fmt --all -- --check
step "clippy"
cargo clippy -p kn-backend -p kn-shared --all-targets -- -D warnings
cargo clippy -p kn-frontend --target wasm32-unknown-unknown -- -D warnings

step "Rust tests"
cargo build -p kn-backend
cargo test
# The few tests that read or set something of the whole process (device-read
# counts, peak memory, libtorch's thread count, HF_HOME): alone, one at a time.
cargo test -p kn-backend --test it -- --ignored --test-threads=1

step "Browser tests (Playwright + Debian chromium)"
KN_BIN="$ROOT/target/debug/kn" node --test e2e/

# A GPU build must really link libtorch_cuda (build.rs, KN_CUDA=1), or `--device
# auto` silently says no CUDA on a GPU machine. Only the link changes (seconds);
# on a machine without a GPU the CUDA-linked binary must still run on the CPU.
step "CUDA link check (KN_CUDA=1)"
KN_CUDA=1 cargo build -p kn-backend --bin kn
readelf -d target/debug/kn | grep -q 'libtorch_cuda' || { echo "kn built with KN_CUDA=1 does not link libtorch_cuda"; exit 1; }
info=$(target/debug/kn info --device auto --model fixtures/models/tiny-bert)
grep -q '"cuda_available"' <<<"$info"
note "kn links libtorch_cuda; --device auto runs"
