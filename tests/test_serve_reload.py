"""Hot reload against a real uvicorn on 127.0.0.1: no request fails while the model is swapped every second, every
answer comes from one whole model version, a failed reload keeps the old model, and with two workers a newly
current checkpoint reaches both within a few seconds."""
import http.client
import json
import os
import shutil
import threading
import time
from collections import Counter

import pytest
from _serve_helpers import HORIZON, LOOKBACK, Client, Server, ercot_split, fit_and_save, records, request

from twiga.checkpoints import CheckpointStore

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    "A checkpoint store with two versions that forecast differently, and 8 one-lookback windows to ask about."
    base = tmp_path_factory.mktemp("serve_reload")
    train, test = ercot_split()
    ckpt = base / "checkpoints"
    fit_and_save(ckpt, train, n_estimators=30, seed=1)
    fit_and_save(ckpt, train, n_estimators=90, seed=2)
    windows = [records(test.iloc[i * HORIZON: i * HORIZON + LOOKBACK]) for i in range(8)]
    bodies = [json.dumps({"records": w, "ensemble_strategy": "mean"}).encode() for w in windows]
    return base, ckpt, bodies


def _answers(port, bodies):
    out = []
    for b in bodies:
        status, body = request(port, "POST", "/predict", raw=b)
        assert status == 200, body
        out.append(body)
    return out


def test_reload_every_second_under_load_drops_nothing(two_versions):
    base, ckpt, bodies = two_versions
    with Server(ckpt, base / "reports-load") as srv:
        ref = {}
        for v in (1, 2):
            status, body = request(srv.port, "POST", "/reload", {"version": v})
            assert status == 200 and body["new_version"] == v, body
            ref[v] = [a["forecasts"] for a in _answers(srv.port, bodies)]
        assert ref[1] != ref[2], "the two versions must forecast differently for this test to mean anything"

        stop, results, lock = threading.Event(), [], threading.Lock()
        def load(k):
            c, i = Client(srv.port), k
            while not stop.is_set() and i < 5000:
                status, raw = c.post("/predict", bodies[i % len(bodies)])
                body = json.loads(raw)
                ok = status == 200 and body["forecasts"] == ref[body["version"]][i % len(bodies)]
                with lock: results.append((status, body.get("version"), ok, None if status == 200 else body))
                i += 8
            c.close()
        threads = [threading.Thread(target=load, args=(k,)) for k in range(8)]
        for t in threads: t.start()
        reloads = []
        try:
            for n in range(12):  # ~12 s of load, one reload a second, alternating versions (each a rollback)
                time.sleep(1.0)
                reloads.append(request(srv.port, "POST", "/reload", {"version": 1 + n % 2}))
        finally:
            stop.set()
            for t in threads: t.join(60)
        failed = [r for r in results if r[0] != 200]
        assert not failed, f"{len(failed)} of {len(results)} requests failed during reloads, e.g. {failed[:3]}"
        assert all(ok for _, _, ok, _ in results), "an answer matched neither version's sequential answer"
        assert [s for s, _ in reloads] == [200] * 12, reloads
        assert [b["new_version"] for _, b in reloads] == [1 + n % 2 for n in range(12)]
        by_version = {v: sum(r[1] == v for r in results) for v in (1, 2)}
        assert by_version[1] > 0 and by_version[2] > 0, by_version
        assert "Traceback" not in srv.logs() and "Unhandled" not in srv.logs(), srv.logs()
        metrics = request(srv.port, "GET", "/metrics")[1]
        assert 'twiga_http_requests_total{endpoint="/predict",method="POST",status="200"}' in metrics, metrics
        assert "twiga_unhandled_errors_total{" not in metrics, metrics  # no 500 was answered


def _tamper(path):
    data = path.read_bytes()
    path.write_bytes(data[:-10] + b"tampered!!")
    return data


def test_failed_reload_keeps_the_old_model(two_versions):
    base, ckpt, bodies = two_versions
    with Server(ckpt, base / "reports-fail") as srv:
        status, body = request(srv.port, "POST", "/reload", {"version": 2})
        assert status == 200
        before = _answers(srv.port, bodies[:2])

        status, body = request(srv.port, "POST", "/reload", {"version": 99})
        assert status == 404 and "`99` not found" in body["detail"], body

        v1 = next(i.path for i in CheckpointStore(ckpt).list() if i.version == 1)
        original = _tamper(v1)
        try:
            status, body = request(srv.port, "POST", "/reload", {"version": 1})
            assert status == 409 and "does not match its manifest" in body["detail"], body
        finally:
            v1.write_bytes(original)
        status, health = request(srv.port, "GET", "/health")
        assert health["version"] == 2 and health["status"] == "ok"
        assert _answers(srv.port, bodies[:2]) == before

        # a tampered version that becomes current through the manifest (as a retraining job would save it):
        # the worker logs it, shows it on /health, and keeps serving version 2
        shadow = base / "shadow"
        shutil.copytree(ckpt, shadow, dirs_exist_ok=True)
        obj, _ = CheckpointStore(shadow).load(1)
        info = CheckpointStore(shadow).save(obj, model_type="lightgbm")
        _tamper(info.path)
        shutil.copy2(info.path, ckpt / info.checkpoint_file)
        os.replace(shadow / "_checkpoint_manifest.json", ckpt / "_checkpoint_manifest.json")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, health = request(srv.port, "GET", "/health")
            if health.get("detail"): break
            time.sleep(0.2)
        assert health["version"] == 2, health
        assert f"Version {info.version} became current but could not be loaded" in health["detail"], health
        assert _answers(srv.port, bodies[:2]) == before
        # repairing the store (rolling back to a good version) is followed again
        CheckpointStore(ckpt).rollback(1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and request(srv.port, "GET", "/health")[1]["version"] != 1: time.sleep(0.2)
        assert request(srv.port, "GET", "/health")[1]["version"] == 1
        CheckpointStore(ckpt).rollback(2)


def _pids_of_open_connections(port: int, n: int) -> Counter:
    "Open `n` connections at once (as a client's pool keeps them), then ask each which worker holds it."
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(n)]
    for c in conns: c.connect()
    pids = Counter()
    for c in conns:
        c.request("GET", "/health")
        pids[json.loads(c.getresponse().read())["pid"]] += 1
        c.close()
    return pids


def _listening_sockets(port: int) -> int:
    "How many sockets listen on `port` (Linux's /proc/net/tcp*: one line per socket, however many processes share it)."
    lines = [line.split() for f in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(f)
             for line in open(f).read().splitlines()[1:]]
    return sum(int(w[1].rsplit(":", 1)[1], 16) == port and w[3] == "0A" for w in lines)  # 0A: LISTEN


def test_every_worker_follows_a_new_checkpoint(two_versions):
    base, ckpt, bodies = two_versions
    store = CheckpointStore(ckpt)
    store.rollback(2)
    with Server(ckpt, base / "reports-workers", workers=2, via_run_server=True) as srv:
        seen = {}
        for _ in range(400):  # fresh connections, so the kernel hands them to both workers
            status, h = request(srv.port, "GET", "/health")
            seen[h["pid"]] = h["version"]
            if len(seen) == 2 and all(v == 2 for v in seen.values()): break
            time.sleep(0.02)
        assert len(seen) == 2 and set(seen.values()) == {2}, seen
        # both up, each listening on a socket of its own (SO_REUSEPORT), not on the one socket uvicorn's parent shares
        # (where the first worker to wake takes every waiting connection): connections opened at once reach both
        assert _listening_sockets(srv.port) == 2
        spread = _pids_of_open_connections(srv.port, 24)  # hashing puts all 24 on one worker 2 times in 2**24
        assert len(spread) == 2, spread

        obj, _ = store.load(1)
        new = store.save(obj, model_type="lightgbm").version  # a new current version, written by another process
        t0, latest = time.monotonic(), {}
        while time.monotonic() - t0 < 20:
            status, h = request(srv.port, "GET", "/health")
            latest[h["pid"]] = h["version"]
            if len(latest) == 2 and set(latest.values()) == {new}: break
            time.sleep(0.02)
        assert set(latest.values()) == {new} and len(latest) == 2, latest
        # and they answer with it
        for b in bodies[:4]:
            status, body = request(srv.port, "POST", "/predict", raw=b)
            assert status == 200 and body["version"] == new
        # one /metrics, summed over both workers (prometheus multiprocess mode), shows each live worker's version
        status, text = request(srv.port, "GET", "/metrics")
        lines = [s for s in text.splitlines() if s.startswith("twiga_model_version{")]
        assert len(lines) == 2 and all(s.endswith(f" {float(new)}") for s in lines), lines
        assert "Traceback" not in srv.logs(), srv.logs()
