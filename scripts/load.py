#!/usr/bin/env python3
"""Bounded load test of `kn serve`, on loopback only: many concurrent clients mix
predictions, analyses and edits (fact updates, and predictions on the edited model
they name). Reports requests served, 429s (queue full, expected under load), any
other answer (there must be none), latency, and the server's peak memory. Then it
restarts the server on the same data directory and reads back every result and
edit set the clients were given: nothing may be lost. It starts and stops its own
server and ends by itself.

    python3 scripts/load.py [--bin target/release/kn] [--model smollm2]
                            [--clients 100] [--requests 10] [--timeout 300]
                            [--mix predict=70,analyze=10,update=5,edited=15]
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


PROMPTS = [
    "The capital of France is [MASK].",
    "The capital of Germany is [MASK].",
    "The official language of Brazil is [MASK].",
]
FACTS = [
    ("Paris", ["The capital of France is [MASK].", "France's capital is [MASK]."]),
    ("Berlin", ["The capital of Germany is [MASK].", "Germany's capital is [MASK]."]),
]


def start(args, port, data):
    server = subprocess.Popen(
        [args.bin, "serve", "--port", str(port), "--model", args.model, "--data-dir", data, "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            urllib.request.urlopen(base + "/api/health", timeout=1)
            return server, base
        except Exception:
            time.sleep(0.1)
    server.kill()
    sys.exit("server did not start")


def call(base, path, body=None, timeout=300):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--bin", default=os.path.join(root, "target", "release", "kn"))
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--requests", type=int, default=10, help="per client")
    ap.add_argument("--timeout", type=float, default=300, help="overall limit in seconds")
    ap.add_argument("--mix", default="predict=70,analyze=10,update=5,edited=15")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    mix = {k: int(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}

    port = free_port()
    data = tempfile.mkdtemp(prefix="kn-load-")
    server, base = start(args, port, data)
    try:
        kinds = list(mix)
        counts = {k: {"ok": 0, "429": 0, "other": 0} for k in kinds}
        errors, latencies = [], {k: [] for k in kinds}
        kept = {}  # id -> what the client was given (results and edit sets)
        edit_sets = []
        lock = threading.Lock()
        deadline = time.time() + args.timeout

        def one(kind, rng):
            if kind == "predict":
                return call(base, "/api/predict", {"prompt": rng.choice(PROMPTS), "top_k": 5}), None
            if kind == "edited":
                with lock:
                    named = [rng.choice(edit_sets)] if edit_sets else []
                return call(base, "/api/predict", {"prompt": rng.choice(PROMPTS), "top_k": 5, "edits": named}), None
            target, prompts = rng.choice(FACTS)
            if kind == "analyze":
                body = {"target": target, "prompts": prompts, "steps": rng.choice([2, 3, 4])}
                s, r = call(base, "/api/analyze", body)
                return (s, r), ("result", r["id"], r["result"]["mean_scores"][0][:8])
            body = {"target": target, "new_target": "London", "prompts": prompts, "steps": 2, "k": rng.choice([1, 2]),
                    "lambda2": 1}
            s, r = call(base, "/api/edits/update", body)
            with lock:
                edit_sets.append(r["edit"]["id"])
            return (s, r), ("edit", r["id"], r["edit"]["id"])

        def client(i):
            rng = random.Random(args.seed * 1000 + i)
            for _ in range(args.requests):
                if time.time() > deadline:
                    return
                kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
                t0 = time.time()
                keep = None
                try:
                    _, keep = one(kind, rng)
                    key = "ok"
                except urllib.error.HTTPError as e:
                    key = "429" if e.code == 429 else "other"
                    if key == "other":
                        errors.append(f"{kind}: {e.code} {e.read()[:200]!r}")
                    elif e.headers.get("Retry-After") is None:
                        errors.append("429 without Retry-After")
                except Exception as e:  # connection errors count as errors
                    key = "other"
                    errors.append(f"{kind}: {e!r}")
                with lock:
                    counts[kind][key] += 1
                    if key == "ok":
                        latencies[kind].append(time.time() - t0)
                    if keep:
                        kept[keep[1]] = keep
                if key == "429":
                    time.sleep(0.05 + 0.1 * rng.random())

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        healthy = urllib.request.urlopen(base + "/api/health", timeout=5).status == 200
        peak = peak_rss_mib(server.pid)

        # Restart on the same data directory: every id a client was given answers.
        server.send_signal(signal.SIGINT)
        stopped_in = time.time()
        server.wait(timeout=60)
        stopped_in = time.time() - stopped_in
        server, base = start(args, port, data)
        lost = []
        for rid, (what, _, extra) in kept.items():
            try:
                s, r = call(base, f"/api/results/{rid}")
                if s != 200:
                    lost.append(f"{rid}: {s}")
                elif what == "result" and r["result"]["mean_scores"][0][:8] != extra:
                    lost.append(f"{rid}: other numbers")
                elif what == "edit":
                    call(base, f"/api/edit-sets/{extra}/summary")
            except Exception as e:
                lost.append(f"{rid}: {e!r}")

        served = sum(c["ok"] for c in counts.values())
        def lat(k):
            xs = sorted(latencies[k])
            return [round(statistics.median(xs), 3), round(xs[int(0.95 * (len(xs) - 1))], 3)] if xs else None
        report = {
            "model": args.model,
            "clients": args.clients,
            "mix": mix,
            "requests_sent": sum(sum(c.values()) for c in counts.values()),
            "served": served,
            "rejected_429": sum(c["429"] for c in counts.values()),
            "other_errors": sum(c["other"] for c in counts.values()),
            "by_kind": counts,
            "latency_median_p95_s": {k: lat(k) for k in kinds},
            "seconds": round(wall, 2),
            "served_per_second": round(served / wall, 2),
            "server_peak_rss_mib": round(peak, 1),
            "healthy_after": healthy,
            "stopped_after_sigint_s": round(stopped_in, 2),
            "ids_kept": len(kept),
            "ids_lost_after_restart": len(lost),
        }
        print(json.dumps(report, indent=2))
        for e in (errors + lost)[:10]:
            print("error:", e, file=sys.stderr)
        sys.exit(1 if report["other_errors"] or lost or not healthy else 0)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
