"""Property-based: schemathesis generates valid and invalid requests from the app's own OpenAPI schema, and no
input may yield a 5xx. Every model is loaded and port sessions get fake ports, so a 503 here is a bug too.

(Driven through ``APIOperation.as_strategy`` and Hypothesis directly: schemathesis's lazy pytest loader does
not run under pytest 9.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from service.deps import get_port_opener
from service.settings import Settings

MAX_EXAMPLES = 15  # per operation and mode: the whole run stays around a minute on 2 cores
SLOW = {"/api/strokes": 5, "/api/strokes/svg": 5}  # up to 32 drawings of 250 points each: fewer examples
OPERATIONS = [(method.upper(), path) for path, item in create_app(Settings(checkpoints_dir=Path("/nonexistent")))
              .openapi()["paths"].items() for method in item]


@pytest.fixture
def api_schema(settings: Settings, fake_ports: Any) -> Any:
    fuzz = settings.model_copy(update={"max_render_seconds": 3.0, "max_renders": 16, "max_live_streams": 2,
                                       "allowed_hosts": ["testserver"]})  # the Host schemathesis sends
    app = create_app(fuzz)
    app.dependency_overrides[get_port_opener] = lambda: fake_ports
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_yields_a_server_error(api_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=SLOW.get(path, MAX_EXAMPLES), deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def check(case: Any) -> None:
        response = case.call()
        assert response.status_code < 500, f"{method} {case.formatted_path} -> {response.status_code}: {response.text}"
        if response.status_code == 413:  # over the (test's small) body limit: refused before it is read, as documented
            assert "larger than" in response.json()["detail"]
            return
        # the schema and the status codes must hold; schema-valid input may still be refused (422) for domain
        # reasons the schema cannot express: characters outside the text vocabulary, a port name in use
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    try:
        check()
    except Unsatisfiable:
        pytest.skip("nothing in this operation can be made invalid")
