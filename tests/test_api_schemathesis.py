"""Property-based tests of the API against its own OpenAPI document (schemathesis).

Schemathesis reads /api/v1/openapi.json from the app itself (WSGI, no network), generates
requests for every operation, valid ones and invalid ones, and checks each answer: never
a 5xx, the status code documented, the body matching the documented schema and content
type. The number of calls made is reported at the end of the run.

The operations are driven through Hypothesis strategies (`as_strategy`) inside ordinary
tests, so they use the suite's fixtures (a fresh database per test, SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from directory.extensions import db
from directory.models import ClinicScore, Neighbourhood
from tests.factories import make_clinic

# A well-formed place we do not know (near=nosniff) is a documented 422: valid by the
# schema's types, refused by meaning. Schemathesis' defaults otherwise stand.
CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "3xx", "404", "422", "429"]}}})
CALLS: Counter[str] = Counter()
FAILURES: Counter[str] = Counter()
MAX_EXAMPLES = 40
PATHS = ["/", "/clinics", "/clinics/{ref}", "/services", "/languages", "/neighbourhoods",
         "/openapi.json", "/docs", "/hsds.zip", "/hsds.json"]
# Operations that take parameters, so that invalid requests can be made of them.
WITH_PARAMETERS = ["/clinics", "/clinics/{ref}"]


@pytest.fixture
def api_schema(app: Flask) -> schemathesis.Schema:
    """The app with a few synthetic clinics, and the OpenAPI document it serves."""
    make_clinic("Synthetic Free Spanish", lat=40.7410, lng=-74.0010, languages=("es", "en"),
                cost={"free": True}, walk_in=True, documents={"id": False},
                hours={"MO": [(540, 1020)], "TU": [(1320, 120)], "SU": [(0, 0)]},
                services=("hiv_testing", "prep"))
    rated = make_clinic("Synthetic Rated", lat=40.80, lng=-73.95, postal_code="10027")
    make_clinic("Synthetic Closed", status="closed")
    db.session.add(ClinicScore(location_id=rated.id, review_count=3, respect_sum=12,
                               respect_count=3))
    db.session.add(Neighbourhood(code="MN0401", name="Chelsea-Hudson Yards",
                                 borough="Manhattan", latitude=40.7455, longitude=-74.0008))
    db.session.commit()
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def report_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Say how many calls schemathesis made, per operation, when the module is done."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not CALLS:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"schemathesis: {sum(CALLS.values())} calls over {len(PATHS)} operations, "
            f"{sum(FAILURES.values())} failing; " +
            ", ".join(f"{k} {v}" for k, v in sorted(CALLS.items())))


def run_operation(api_schema: schemathesis.Schema, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path]["GET"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        key = f"GET {path} {mode.value}"
        CALLS[key] += 1
        try:
            # The WSGI transport does not undo Content-Encoding as an HTTP client would.
            response = case.call_and_validate(headers={"Accept-Encoding": "identity"})
            assert response.status_code < 500
        except Exception:
            FAILURES[key] += 1
            raise

    check()


@pytest.mark.parametrize("path", PATHS)
def test_valid_requests_get_answers_that_match_the_spec(
        api_schema: schemathesis.Schema, path: str) -> None:
    run_operation(api_schema, path, GenerationMode.POSITIVE)


@pytest.mark.parametrize("path", WITH_PARAMETERS)
def test_invalid_requests_get_documented_4xx_problems(
        api_schema: schemathesis.Schema, path: str) -> None:
    run_operation(api_schema, path, GenerationMode.NEGATIVE)
