"""API request bodies and parameters fuzzed with schemathesis against the app's own /openapi.json.

The app (duluan.web.create_app) runs in-process over ASGI with a real home: tantivy index with the
web tests' corpus, migrated app database, an admin whose bearer token (duluan.accounts) authorises
every call. Every operation gets a bounded number of generated requests; a 5xx answer is a failure.
Rendering a digest (POST /api/v1/digests, PDF via WeasyPrint) is left out: seconds per call.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from duluan.accounts import create_api_token, create_user
from duluan.db import open_database
from duluan.settings import load_settings
from duluan.web import create_app
from duluan.wiring import open_backend
from tests.web.conftest import seed_documents

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("api-fuzz") / "home"
    app_settings = load_settings(home=home)
    backend = open_backend(app_settings)
    try:
        backend.upsert(seed_documents())
    finally:
        backend.close()
    engine = open_database(app_settings.db_url)
    try:
        create_user(engine, "fuzz.admin", "mat-khau-thu-nghiem", "admin", "Quản trị kiểm thử")
        TOKEN["value"] = create_api_token(engine, "fuzz.admin", "schemathesis")
    finally:
        engine.dispose()
    app = create_app(app_settings)
    headers = {"Authorization": f"Bearer {TOKEN['value']}"}
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)


SKIPPED = {("POST", "/api/v1/digests")}
PER_OPERATION = settings(
    max_examples=5, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def test_no_request_makes_the_api_fail_with_a_server_error(api_schema: Any) -> None:
    """Valid and invalid (negative) requests for every operation; collects every 5xx, then fails."""
    headers = {"Authorization": f"Bearer {TOKEN['value']}"}
    server_errors: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1
        # Invalid (negative) requests for operations that take a body or query parameters; invalid
        # path parameters are just other strings, and hypothesis spends seconds trying to build them.
        takes_input = "requestBody" in operation.definition.raw or any(
            p.get("in") == "query" for p in operation.definition.raw.get("parameters", [])
        )
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])
        for mode in modes:

            @PER_OPERATION
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.300} "
                        f"→ {response.status_code}: {response.text[:300]}"
                    )

            try:
                call()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # a negative request cannot be built for an operation without inputs; fine
    assert operations >= 40, "the schema lost its operations"
    assert not server_errors, "\n".join(server_errors[:10])
