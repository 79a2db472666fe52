#!/usr/bin/env python3
"""Write the upgrade fixture: a small result store made by a `kn` release.

usage: make_store_fixture.py KN_BINARY OUT_DIR RELEASE

RELEASE names the commit KN_BINARY was built from (written into the manifest).

Starts `kn serve` on the tiny BERT and Llama fixtures (fixtures/models, made by
make_fixtures.py) with ParaRel's data, asks for one stored result of every kind
(analyze on a masked and a causal model, one of them on an edit set, methods,
update, erase, erase-relation), stops the server and writes
OUT_DIR/results.sqlite (checkpointed, vacuumed) and OUT_DIR/manifest.json: the
release that wrote it, each model's fingerprint, and each result's id and kind.

`backend/tests/it/upgrade.rs` opens a copy with the current code: every result
must reopen under the same id with the same numbers, and recompute under the
same id when its numbers are evicted. Regenerate it only with the release whose
store it stands for (check that commit out, build it, run this script), never
with the code under test: the point is that today's code reads yesterday's
files.
"""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "fixtures", "models")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {url}: {e.code} {e.read().decode()}")


def wait_job(base, status):
    while status["state"] in ("queued", "running"):
        time.sleep(0.2)
        _, status = call(f"{base}/api/jobs/{status['id']}")
    if status["state"] != "done":
        raise SystemExit(f"job {status['id']}: {status}")
    return status


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    kn, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="kn-store-fixture-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bert, llama = (os.path.join(MODELS, m) for m in ("tiny-bert", "tiny-llama"))
    proc = subprocess.Popen(
        [kn, "serve", "--port", str(port), "--data-dir", data_dir, "--device", "cpu",
         "--model", bert, "--model", llama, "--data", os.path.join(ROOT, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                call(f"{base}/api/health")
                break
            except (urllib.error.URLError, ConnectionError, SystemExit):
                time.sleep(0.2)
        _, models = call(f"{base}/api/models")
        names = {m["arch"]: m["name"] for m in models}
        b, l = names["bert"], names["llama"]
        paris = ["The capital of France is [MASK].", "France's capital is [MASK].",
                 "The capital city of France is [MASK]."]
        results = []

        def keep(kind, model, status_or_response):
            results.append({"kind": kind, "model": os.path.basename(model),
                            "id": status_or_response["id"]})

        _, r = call(f"{base}/api/analyze", "POST",
                    {"model": b, "target": "Paris", "prompts": paris, "steps": 4})
        keep("analyze", b, r)
        _, r = call(f"{base}/api/analyze", "POST",
                    {"model": l, "target": " Paris", "prompts": paris, "steps": 3,
                     "riemann": "left", "t": 0.3, "p": 0.5})
        keep("analyze", l, r)
        _, upd = call(f"{base}/api/edits/update", "POST",
                      {"model": l, "target": "Paris", "new_target": "France", "steps": 3, "k": 2,
                       "prompts": paris,
                       "eval": [{"prompt": "Paris is the capital of [MASK].", "target": "France"}]})
        keep("update", l, upd)
        _, r = call(f"{base}/api/analyze", "POST",
                    {"model": l, "target": "Paris", "prompts": paris[:2], "steps": 2,
                     "edits": [upd["edit"]["id"]]})
        keep("analyze", l, r)
        _, r = call(f"{base}/api/edits/erase", "POST",
                    {"model": b, "neurons": [{"layer": 0, "index": 3}, {"layer": 2, "index": 7}],
                     "with": "unk",
                     "eval": [{"prompt": "Paris is the capital of [MASK].", "target": "France"}]})
        keep("erase", b, r)
        _, s = call(f"{base}/api/jobs/erase-relation", "POST",
                    {"model": b, "relation": "P36", "facts": 2, "top": 3, "steps": 2})
        keep("erase-relation", b, wait_job(base, s))
        _, s = call(f"{base}/api/jobs/methods", "POST",
                    {"model": l, "target": "Paris", "prompts": paris, "steps": 2,
                     "methods": ["ig", "activation", "random"], "ks": [1, 2],
                     "unrelated_prompts": ["The capital of Germany is [MASK]."],
                     "unrelated_target": "Berlin"})
        keep("methods", l, wait_job(base, s))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    info = {}
    for path in (bert, llama):
        text = subprocess.run([kn, "info", "--device", "cpu", "--model", path],
                              check=True, capture_output=True, text=True).stdout
        info[os.path.basename(path)] = json.loads(text)["fingerprint"]
    db = os.path.join(out, "results.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    src = sqlite3.connect(os.path.join(data_dir, "results.sqlite"))
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dst = sqlite3.connect(db)
    src.backup(dst)
    dst.execute("PRAGMA journal_mode=DELETE")
    dst.execute("VACUUM")
    dst.close()
    src.close()
    release = sys.argv[3]
    manifest = {
        "written_by": f"kn {release}",
        "fingerprints": info,
        "results": results,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{db}: {os.path.getsize(db)} bytes, {len(results)} results")


if __name__ == "__main__":
    main()
