"""The app behind a real uvicorn on 127.0.0.1: concurrent answers equal sequential ones, bad input is a 4xx and the
server stays up, /health answers during a long forecast, and the API key guards the routes without being logged."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from _serve_helpers import LOOKBACK, Server, ercot_split, fit_and_save, records, request

pytestmark = pytest.mark.timeout(600)
KEY = "k3y-th4t-must-n0t-be-logged"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    "A checkpoint store with one version, a running server on it, and test data."
    base = tmp_path_factory.mktemp("serve_uvicorn")
    train, test = ercot_split()
    fit_and_save(base / "checkpoints", train)
    env = {"TWIGA_SERVE_API_KEY": KEY, "TWIGA_SERVE_MAX_RECORDS": "5000", "TWIGA_LOG_LEVEL": "DEBUG"}
    with Server(base / "checkpoints", base / "reports", env=env) as srv:
        yield srv, test


def post(srv, path, body=None, raw=None, key=KEY):
    return request(srv.port, "POST", path, body, raw=raw, headers={"X-API-Key": key} if key else None)


def _columns(recs: list[dict]) -> dict:
    "The same rows as a columnar body: one array per column."
    return {"columns": {c: [r[c] for r in recs] for c in recs[0]}}


def test_concurrent_answers_equal_sequential_answers(served):
    srv, test = served
    windows = [records(test.iloc[i * 37: i * 37 + LOOKBACK + 20]) for i in range(8)]
    bodies = [json.dumps({"records": w}).encode() for w in windows]
    sequential = []
    for b in bodies:
        status, body = post(srv, "/predict", raw=b)
        assert status == 200, body
        sequential.append(body)
    jobs = [i % 8 for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        concurrent = list(pool.map(lambda i: post(srv, "/predict", raw=bodies[i]), jobs))
    assert all(s == 200 for s, _ in concurrent)
    differ = [i for i, (j, (_, body)) in enumerate(zip(jobs, concurrent, strict=True)) if body != sequential[j]]
    assert not differ, f"{len(differ)} of 32 concurrent answers differ from the sequential answer to the same window"
    assert len({json.dumps(s["forecasts"]) for s in sequential}) == 8  # 8 different windows, 8 different answers
    columnar = [json.dumps(_columns(w)).encode() for w in windows]  # the same windows as columns: the same answers
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: post(srv, "/predict", raw=columnar[i]), jobs[:16]))
    assert all(s == 200 and body == sequential[j] for j, (s, body) in zip(jobs, answers, strict=False)), answers[0]
    metrics = request(srv.port, "GET", "/metrics")[1]  # windows without future rows: counted, not logged each time
    persisted = [ln for ln in metrics.splitlines() if ln.startswith("twiga_covariates_persisted_total ")]
    assert persisted and float(persisted[0].split()[1]) >= 56, persisted


def _bad_cases(test):
    good = records(test.iloc[:LOOKBACK])
    def edit(f):
        recs = json.loads(json.dumps(good)); f(recs); return {"records": recs}
    def swap(r): r[10], r[11] = r[11], r[10]
    def dup(r): r[11]["timestamp"] = r[10]["timestamp"]
    return {
        "malformed JSON": (None, b'{"records": [{"timestamp": "2018-07-01T00:00:00"', "not valid JSON"),
        "empty records": ({"records": []}, None, "records"),
        "no records key": ({"rows": good}, None, "records"),
        "missing column": (edit(lambda r: [x.pop("temperature_c") for x in r]), None, "temperature_c"),
        "misspelt column": (edit(lambda r: [x.update(temprature_c=x.pop("temperature_c")) for x in r]), None,
                            "did you mean"),
        "NaN target in the window": (edit(lambda r: r[100].update(demand_mwh=None)), None, "demand_mwh"),
        "unparseable timestamp": (edit(lambda r: r[5].update(timestamp="not a time")), None, "not a time"),
        "duplicate timestamps": (edit(dup), None, "timestamp"),
        "shuffled timestamps": (edit(swap), None, "timestamp"),
        "fewer records than one lookback": ({"records": good[:LOOKBACK - 1]}, None, str(LOOKBACK)),
        "string for a number": (edit(lambda r: r[3].update(temperature_c="warm")), None, "warm"),
        "boolean for a number": (edit(lambda r: r[3].update(temperature_c=True)), None, "temperature_c"),
        "object for a number": (edit(lambda r: r[3].update(temperature_c={"v": 1})), None, "temperature_c"),
        "records not a list": ({"records": "all of them"}, None, "records"),
        "too many records": ({"records": good * 15}, None, "at most 5000"),
        "unknown ensemble strategy": ({"records": good, "ensemble_strategy": "vote"}, None, "ensemble_strategy"),
        "records and columns both": ({"records": good, **_columns(good)}, None, "not both"),
        "columns of different lengths": ({"columns": {**_columns(good)["columns"], "demand_mwh": [1.0]}}, None,
                                         "one length"),
        "boolean in a column": ({"columns": {**_columns(good)["columns"], "ghi_wm2": [True] * LOOKBACK}}, None,
                                "ghi_wm2"),
        "column missing": ({"columns": {c: v for c, v in _columns(good)["columns"].items() if c != "ghi_wm2"}},
                           None, "ghi_wm2"),
    }


@pytest.mark.parametrize("path", ["/predict", "/predict-interval"])
def test_bad_input_is_4xx_with_the_problem_named_and_the_server_stays_up(served, path):
    srv, test = served
    for name, (body, raw, expect) in _bad_cases(test).items():
        status, answer = post(srv, path, body, raw=raw)
        assert 400 <= status < 500, (name, status, answer)
        assert expect in answer["detail"], (name, answer)
    assert post(srv, path, {"records": records(test.iloc[:LOOKBACK])})[0] == 200
    assert request(srv.port, "GET", "/health")[0] == 200
    assert "Traceback" not in srv.logs() and "Unhandled" not in srv.logs(), srv.logs()
    metrics = request(srv.port, "GET", "/metrics")[1]
    assert f'twiga_http_requests_total{{endpoint="{path}",method="POST",status="422"}}' in metrics, metrics
    assert "twiga_unhandled_errors_total{" not in metrics, metrics  # no 500 was answered


def test_body_above_the_size_cap_is_413_before_parsing(served):
    srv, _ = served
    raw = b'{"records": [' + b'{"x": 1},' * (5000 * 2048 // 9 + 10) + b'{"x": 1}]}'
    status, answer = post(srv, "/predict", raw=raw)
    assert status == 413 and "at most" in answer["detail"], answer


def test_api_key_guards_every_protected_route_and_is_never_logged(served):
    srv, test = served
    window = {"records": records(test.iloc[:LOOKBACK])}
    routes = [("POST", "/predict", window), ("POST", "/predict-interval", window), ("POST", "/monitor/drift", window),
              ("POST", "/monitor/actuals", window), ("GET", "/monitor/performance", None), ("POST", "/reload", None)]
    for method, path, body in routes:
        for headers in (None, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}):
            status, answer = request(srv.port, method, path, body, headers=headers)
            assert status == 401, (path, headers, status, answer)
            assert KEY not in json.dumps(answer)
        status, _ = request(srv.port, method, path, body, headers={"X-API-Key": KEY})
        assert status != 401, path
    assert request(srv.port, "GET", "/health")[0] == 200
    assert request(srv.port, "GET", "/metrics")[0] == 200
    assert KEY not in srv.logs() and KEY[:-1] not in srv.logs()


def test_health_answers_while_a_long_forecast_runs(served):
    srv, test = served
    long = json.dumps({"records": records(test), "all_windows": True}).encode()  # every window of two months
    done, health_during = threading.Event(), []
    def forecast():
        try: assert post(srv, "/predict", raw=long)[0] == 200
        finally: done.set()
    t = threading.Thread(target=forecast)
    t.start()
    while not done.is_set():
        status, body = request(srv.port, "GET", "/health")
        if not done.is_set(): health_during.append(status)
        time.sleep(0.005)
    t.join()
    print(f"{len(health_during)} /health answers while the forecast ran")
    # a blocked event loop would let at most the one /health already in flight through before the forecast ends
    assert len(health_during) >= 2 and set(health_during) == {200}, health_during
