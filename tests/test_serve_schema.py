"""Schemathesis against the app's own OpenAPI schema: for requests the schema allows and requests it does not,
the app answers without a 500, with a status code, content type and body its schema declares, rejects what the
schema forbids, and answers 401 when the API key is left out.

Requests the schema allows may still be refused (422) because a record lacks a column the loaded model needs: the
columns depend on the checkpoint being served, which can change at run time, so the schema does not list them and
schemathesis's `positive_data_acceptance` check is left out. No answer may be an unexpected error: the app's
/metrics must count none, and the `twiga.serve` logger must log none. Schemathesis's pytest fixture integration
(`schemathesis.pytest.from_fixture`) does not run under pytest 9, so each operation's strategy is driven with
Hypothesis directly."""
import logging

import pytest
import schemathesis
from _serve_helpers import LOOKBACK, ercot, fit_and_save
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

KEY = "schemathesis-key"
ROUTES = ["GET /health", "POST /predict", "POST /predict-interval", "POST /explain", "POST /monitor/drift",
          "POST /monitor/actuals", "GET /monitor/performance", "POST /reload"]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from twiga.core.settings import TwigaSettings
    from twiga.serve import create_app
    base = tmp_path_factory.mktemp("serve_schema")
    fc, _ = fit_and_save(base / "checkpoints", ercot("2018-02-01", "2018-05-01"), n_estimators=20)
    yield create_app(fc, report_dir=base / "reports", title="schemathesis",
                     settings=TwigaSettings(_env_file=None, serve_api_key=KEY, serve_max_records=2 * LOOKBACK))


def test_every_route_is_in_the_schema(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in schema.get_all_operations())
    assert found == sorted(ROUTES)


class _Records(logging.Handler):
    "Keeps the records it is given."
    def __init__(self, level):
        super().__init__(level); self.records = []
    def emit(self, record): self.records.append(record)


@pytest.fixture
def serve_errors():
    "ERROR records of the `twiga.serve` logger during the test (a handler on that logger: `twiga` may not propagate)."
    handler, logger = _Records(logging.ERROR), logging.getLogger("twiga.serve")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def unhandled(app) -> dict:
    "The app's count of unexpected errors, from its /metrics: {(endpoint, exception type): count}."
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families
    text = TestClient(app).get("/metrics").text
    return {(s.labels["endpoint"], s.labels["exception"]): s.value for f in text_string_to_metric_families(text)
            if f.name == "twiga_unhandled_errors" for s in f.samples if s.name == "twiga_unhandled_errors_total"}


def test_an_unexpected_error_is_logged_and_counted(app, serve_errors):
    "The checks below are real ones: a bug on a route shows in the log and in /metrics."
    from unittest import mock

    from fastapi.testclient import TestClient
    forecaster = app.state.twiga.loader.get().forecaster
    body = {"records": [{"timestamp": "2018-04-01T00:00:00", "demand_mwh": 1.0}]}
    broken = mock.Mock(served=None, get=mock.Mock(side_effect=ZeroDivisionError))  # a loader whose `get` has a bug
    with mock.patch.object(app.state.twiga, "loader", broken):
        r = TestClient(app, raise_server_exceptions=False).post("/predict", json=body, headers={"X-API-Key": KEY})
    assert (r.status_code, r.json()["error"]) == (500, "InternalError")
    assert [x.getMessage() for x in serve_errors] == ["Unhandled ZeroDivisionError on POST /predict"]
    assert unhandled(app) == {("/predict", "ZeroDivisionError"): 1.0}
    assert app.state.twiga.loader.get().forecaster is forecaster


CASES = [(r, GenerationMode.POSITIVE) for r in ROUTES]
CASES += [(r, GenerationMode.NEGATIVE) for r in ROUTES if r.startswith("POST")]


@pytest.mark.parametrize("route,mode", CASES)  # negative cases for the routes with a body (the GETs take no input)
def test_app_conforms_to_its_schema(app, serve_errors, route, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    method, path = route.split()

    @given(case=schema[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance])

    before = unhandled(app)
    run()
    assert unhandled(app) == before, f"unexpected errors answered with 500: {unhandled(app)}"
    assert not [x.getMessage() for x in serve_errors if x.getMessage().startswith("Unhandled")]
