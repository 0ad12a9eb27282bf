"""Replicas behind a load balancer: three separate uvicorn processes (`twiga.serve:app_from_env`, each on its own
loopback port) serve one checkpoint directory. The real `retraining_flow` (a Prefect flow run) promotes a challenger
and POSTs /reload to one replica only; every replica then serves the new version within a few seconds (each follows
the store's manifest, polled at the shipped default of 2 s), and no request fails under a bounded load meanwhile.
A rollback sent to another replica reaches all of them the same way."""
from __future__ import annotations

import json
import threading
import time

import pytest
from _pipeline_helpers import make_forecaster, write_slices
from _serve_helpers import Client, Server, records, request

pytestmark = pytest.mark.timeout(900)
N_REPLICAS, CONVERGE_S = 3, 10.0


class Load:
    "One client thread per replica posting /predict in a loop (bounded in count and time), recording every answer."
    def __init__(self, servers, body: bytes, pause=0.05, max_requests=3000, max_seconds=240):
        self.servers, self.body, self.pause = servers, body, pause
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.results = []  # (replica, time sent, status, version, forecasts)
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(len(servers))]

    def _loop(self, i):
        c, t_end = Client(self.servers[i].port, timeout=60), time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self.stop.is_set() or time.monotonic() > t_end: break
            sent = time.time()
            try:
                status, raw = c.post("/predict", self.body)
                body = json.loads(raw)
            except Exception as e:  # a refused or dropped connection is a failed request too
                status, body = None, {"error": f"{type(e).__name__}: {e}"}
            with self.lock: self.results.append((i, sent, status, body.get("version"), body.get("forecasts") or body))
            time.sleep(self.pause)
        c.close()

    def __enter__(self):
        for t in self.threads: t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads: t.join(90)


def versions(servers) -> list:
    return [request(s.port, "GET", "/health", timeout=30)[1]["version"] for s in servers]


def wait_converged(servers, version, since: float, timeout=CONVERGE_S) -> float:
    "Seconds from `since` (a `time.time()`) until every replica's /health shows `version` (raises after `timeout`)."
    while (seen := versions(servers)) != [version] * len(servers):
        assert time.time() - since < timeout, f"replicas serve {seen}, not {version}, {timeout} s after the change"
        time.sleep(0.05)
    return time.time() - since


def changed_at(ckpt) -> float:
    "When the store's current version last changed: the manifest's modification time (`time.time()` clock)."
    from twiga.checkpoints import MANIFEST_NAME
    return (ckpt / MANIFEST_NAME).stat().st_mtime


def test_replicas_follow_a_promotion_and_a_rollback(prefect_server, tmp_path):
    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import retraining_flow
    from twiga.pipeline.tasks import read_frame

    paths = write_slices(tmp_path / "data")
    ckpt = tmp_path / "checkpoints"
    make_forecaster(ckpt).fit(read_frame(paths["reference"])).on_save_checkpoint()  # the champion: version 1
    current = read_frame(paths["current"])
    body = json.dumps({"records": records(current.tail(168 + 24).head(168))}).encode()  # one lookback window

    servers = [Server(ckpt, tmp_path / f"reports-{i}", env={"TWIGA_SERVE_RELOAD_POLL_SECONDS": "2"})
               for i in range(N_REPLICAS)]
    try:
        for s in servers: s.start()
        assert len({s.port for s in servers}) == N_REPLICAS and versions(servers) == [1] * N_REPLICAS
        with Load(servers, body) as load:
            time.sleep(2)
            flow_started = time.time()
            # the flow promotes the challenger and tells replica 0 only
            state = retraining_flow(checkpoint_dir=str(ckpt), reference_data_path=str(paths["reference"]),
                                    current_data_path=str(paths["current"]), drift_threshold=0.5, track=False,
                                    report_dir=str(tmp_path / "flow-reports"),
                                    fastapi_reload_url=f"http://127.0.0.1:{servers[0].port}", return_state=True)
            assert state.is_completed(), state
            r = state.result()
            assert (r.promoted, r.checkpoint_version, r.reload_status) == (True, 2, 200), r.reason
            promoted_at = changed_at(ckpt)  # the save that made version 2 current
            promotion_s = wait_converged(servers, 2, promoted_at)
            time.sleep(3)  # load on version 2 everywhere
            # a rollback sent to the last replica: it makes version 1 current in the store, the others follow
            status, answer = request(servers[-1].port, "POST", "/reload", {"version": 1})
            assert (status, answer["new_version"]) == (200, 1), answer
            rolled_at = changed_at(ckpt)
            rollback_s = wait_converged(servers, 1, rolled_at)
            time.sleep(2)
        print(f"all replicas served the new version {promotion_s:.2f} s after the promotion was saved, "
              f"and {rollback_s:.2f} s after the rollback")
        logs = [s.logs() for s in servers]
    finally:
        for s in servers: s.stop()
    assert all(s.proc.poll() is not None for s in servers)
    assert CheckpointStore(ckpt).current_version() == 1

    res = load.results
    failed = [x for x in res if x[2] != 200]
    assert not failed, f"{len(failed)} of {len(res)} requests failed, e.g. {failed[:3]}"
    for i in range(N_REPLICAS):  # every replica answered throughout: before, between and after the changes
        mine = [x for x in res if x[0] == i]
        assert {x[3] for x in mine if x[1] < flow_started} == {1}
        assert {x[3] for x in mine if promoted_at + promotion_s < x[1] < rolled_at} == {2}
        assert {x[3] for x in mine if x[1] > rolled_at + rollback_s} == {1}
        assert any(x[3] == 2 for x in mine) and any(x[1] > rolled_at + rollback_s for x in mine)
    # all replicas serve the same model: the same window gets the same forecast from each, per version
    for v in (1, 2):
        answers = {json.dumps(x[4], sort_keys=True) for x in res if x[3] == v}
        assert len(answers) == 1, f"version {v} answered differently across replicas"
    assert {x[3] for x in res} == {1, 2} and len(res) > 50
    for text in logs: assert "Traceback" not in text, text
