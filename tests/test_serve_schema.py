"""Schemathesis against the app's own OpenAPI schema: for requests the schema allows and requests it does not,
the app answers without a 500, with a status code, content type and body its schema declares, rejects what the
schema forbids, and answers 401 when the API key is left out.

Requests the schema allows may still be refused (422) because a record lacks a column the loaded model needs: the
columns depend on the checkpoint being served, which can change at run time, so the schema does not list them and
schemathesis's `positive_data_acceptance` check is left out. Schemathesis's pytest fixture integration
(`schemathesis.pytest.from_fixture`) does not run under pytest 9, so each operation's strategy is driven with
Hypothesis directly."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from _serve_helpers import LOOKBACK, ercot, fit_and_save

KEY = "schemathesis-key"
ROUTES = ["GET /health", "POST /predict", "POST /predict-interval", "POST /monitor/drift", "POST /monitor/actuals",
          "GET /monitor/performance", "POST /reload"]
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


CASES = [(r, GenerationMode.POSITIVE) for r in ROUTES] + [(r, GenerationMode.NEGATIVE) for r in ROUTES if r.startswith("POST")]


@pytest.mark.parametrize("route,mode", CASES)  # negative cases for the routes with a body (the GETs take no input)
def test_app_conforms_to_its_schema(app, route, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    method, path = route.split()

    @given(case=schema[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance])

    run()
    assert app.state.twiga.bugs == [], app.state.twiga.bugs
