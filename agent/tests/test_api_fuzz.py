"""Schemathesis over the agent's own OpenAPI schema: no 500, documented shapes, every error a JSON {error, code}."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import content_type_conformance, response_schema_conformance
from schemathesis.schemas import BaseSchema

from tests.conftest import API_KEY, start_service
from tests.fakes.ollama import FakeOllama

# A missing or unreachable model is a deliberate 503 with a reason; anything else at 5xx is a bug.
OPERATIONAL_5XX = {"model_missing", "model_unreachable", "timeout", "busy"}


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory, fake_ollama: FakeOllama) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    running = start_service(
        tmp,
        AGENT_API_KEY=API_KEY,
        OLLAMA_BASE_URL=fake_ollama.url,
        AGENT_TIMEOUT_S="10",
        AGENT_TOOLS="file_system",
    )
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_service: str) -> BaseSchema:
    return schemathesis.openapi.from_url(
        f"{fuzzed_service}/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}
    )


OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/models"),
    ("POST", "/run"),
    ("POST", "/run/stream"),
    ("GET", "/files/{file_id}"),
]
# Negative data needs something to break: the GET operations take no parameters but /files' id, any string.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    ("POST", "/run", GenerationMode.NEGATIVE),
    ("POST", "/run/stream", GenerationMode.NEGATIVE),
]


def test_fuzzing_covers_every_operation(api_schema: BaseSchema) -> None:
    listed = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert listed == set(OPERATIONS)


# schemathesis 4.32's `pytest.from_fixture` fails on pytest 9 (`request.node._nodeid`), so each operation's
# strategy is drawn by Hypothesis directly.
@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_api_answers_generated_requests_without_a_crash(
    api_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    @given(case=api_schema[path][method].as_strategy(mode))
    @settings(max_examples=10, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        where = f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code}: {response.text[:300]}"
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body, dict) and isinstance(body.get("error"), str), where
            assert isinstance(body.get("code"), str), where
            assert response.status_code < 500 or body["code"] in OPERATIONAL_5XX, where
        case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])

    check()
