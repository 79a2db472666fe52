"""Peak memory of `kn serve` under the largest analyses its default budgets admit.

    python3 scripts/server_memory.py target/release/kn [PORT]

Each request runs on a fresh server (Linux: VmHWM of /proc/PID/status), so one
request's peak is not hidden by what the allocator kept from the one before; a
server answering them in turn holds the largest of them, or more. The default
model (SmolLM2) must be installed (scripts/lib.sh: smollm2_gguf). BENCHMARKS.md,
"Memory under the server's budgets", has the figures.
"""
import json, subprocess, sys, tempfile, time, urllib.request, urllib.error

KN = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8093
BASE = f"http://127.0.0.1:{PORT}"
data = tempfile.mkdtemp(prefix="kn-memory-") + "/store"
def start(n):
    global p
    p = subprocess.Popen([KN, "serve", "--port", str(PORT), "--data-dir", f"{data}-{n}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(BASE + "/api/health", timeout=2); return
        except Exception:
            time.sleep(1)
start(0)

def call(path, body):
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=900) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

def kib(field):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])

print(f"idle after load: {kib('VmRSS') / 1024:.0f} MiB", flush=True)

FILL = ["In the old records of the city archive it is written that", "Every guide book printed in the last century agrees that",
        "According to the teacher who explained the map to the class,", "As the radio announcer reminded the listeners this morning,"]
def prompt(i, n):
    return (FILL[i % 4] + " ") * n + "the capital of France is [MASK]."
def longest(i):
    lo, hi = 1, 40
    while lo < hi:
        mid = (lo + hi + 1) // 2
        s, _ = call("/api/predict", {"prompt": prompt(i, mid), "top_k": 1})
        lo, hi = (mid, hi) if s == 200 else (lo, mid - 1)
    return prompt(i, lo)

long = [longest(i) for i in range(4)]
print("tokens of the long prompts:", [len(call("/api/predict", {"prompt": q, "top_k": 1})[1]["input_ids"]) for q in long], flush=True)
cases = [
    ("a fact of 5 short prompts, m = 20", {"target": "Paris", "steps": 20, "prompts": [
        "The capital of France is [MASK].", "France's capital is [MASK].", "The capital city of France is [MASK].",
        "France has its capital in [MASK].", "The seat of the French government is [MASK]."]}),
    ("one prompt at the token limit, m = 150", {"target": "Paris", "steps": 150, "prompts": [long[0]]}),
    ("four prompts at the token limit, m = 38 (traced together)", {"target": "Paris", "steps": 38, "prompts": long}),
]
p.terminate(); p.wait()
for n, (name, body) in enumerate(cases):
    start(n + 1)
    t0 = time.time()
    s, r = call("/api/analyze", body)
    dt = time.time() - t0
    peak = kib("VmHWM") / 1024
    p.terminate(); p.wait()
    print(f"{name}: HTTP {s}, {dt:.1f} s, peak RSS {peak:.0f} MiB" + ("" if s == 200 else f" {r}"), flush=True)
