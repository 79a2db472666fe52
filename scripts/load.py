#!/usr/bin/env python3
"""Bounded load test of `kn serve`, on loopback only: many concurrent clients post
/api/predict; reports requests served, 429s (queue full, expected under load), any
other error (there must be none), latency, and the server's peak memory. It starts
and stops its own server and ends by itself.

    python3 scripts/load.py [--bin target/release/kn] [--model smollm2]
                            [--clients 32] [--requests 20] [--timeout 120]
"""

import argparse
import json
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--bin", default=os.path.join(root, "target", "release", "kn"))
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20, help="per client")
    ap.add_argument("--timeout", type=float, default=120, help="overall limit in seconds")
    args = ap.parse_args()

    port = free_port()
    data = tempfile.mkdtemp(prefix="kn-load-")
    server = subprocess.Popen(
        [args.bin, "serve", "--port", str(port), "--model", args.model, "--data-dir", data, "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        else:
            sys.exit("server did not start")
        prompts = ["The capital of France is [MASK].", "The capital of Germany is [MASK].", "The official language of Brazil is [MASK]."]
        counts = {"ok": 0, "429": 0, "other": 0}
        errors, latencies = [], []
        lock = threading.Lock()
        deadline = time.time() + args.timeout

        def client(i):
            for j in range(args.requests):
                if time.time() > deadline:
                    return
                body = json.dumps({"prompt": prompts[(i + j) % len(prompts)], "top_k": 5}).encode()
                req = urllib.request.Request(base + "/api/predict", data=body, headers={"content-type": "application/json"})
                t0 = time.time()
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        r.read()
                        key = "ok"
                except urllib.error.HTTPError as e:
                    key = "429" if e.code == 429 else "other"
                    if key == "other":
                        errors.append(f"{e.code} {e.read()[:200]!r}")
                    elif e.headers.get("Retry-After") is None:
                        errors.append("429 without Retry-After")
                except Exception as e:  # connection errors count as errors
                    key = "other"
                    errors.append(repr(e))
                with lock:
                    counts[key] += 1
                    if key == "ok":
                        latencies.append(time.time() - t0)
                if key == "429":
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        healthy = urllib.request.urlopen(base + "/api/health", timeout=5).status == 200
        report = {
            "model": args.model,
            "clients": args.clients,
            "requests_sent": sum(counts.values()),
            "served": counts["ok"],
            "rejected_429": counts["429"],
            "other_errors": counts["other"],
            "seconds": round(wall, 2),
            "served_per_second": round(counts["ok"] / wall, 2),
            "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p95_s": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
            "server_peak_rss_mib": round(peak_rss_mib(server.pid), 1),
            "healthy_after": healthy,
        }
        print(json.dumps(report, indent=2))
        for e in errors[:10]:
            print("error:", e, file=sys.stderr)
        sys.exit(1 if counts["other"] or not healthy else 0)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
