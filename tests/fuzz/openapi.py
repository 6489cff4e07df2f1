"""The API's OpenAPI schema as the fuzz reads it, for the schema tests and for hooks.py.

``documented_codes`` is what a schema-valid request may be refused with (chatsite/api/schema.py,
``error_codes``); ``schema_valid`` judges a value as schemathesis does (jsonschema_rs: ECMA 262
patterns, formats checked); ``schema_valid_cases`` draws requests the schema calls valid, as the
fuzz draws them (deterministically).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def openapi(client: Any) -> dict[str, Any]:
    """The schema /api/schema/ serves, through a Django test client."""
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def documented_codes(operation: dict[str, Any], status: int = 400) -> set[str]:
    """The ``code`` of each example of an operation's JSON answer with this status."""
    response = operation.get("responses", {}).get(str(status), {})
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return {example["value"]["code"] for example in examples.values()}


def schema_valid(schema: dict[str, Any]) -> Callable[[Any], bool]:
    import jsonschema_rs

    return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid


def schema_valid_cases(
    schema: dict[str, Any], path: str, method: str, count: int = 40, **fixed: Any
) -> list[Any]:
    """``count`` schemathesis cases of one operation the schema calls valid; ``fixed`` pins parts
    of them (``path_parameters={...}``)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    strategy = schemathesis.openapi.from_dict(schema)[path][method].as_strategy(**fixed)
    cases: list[Any] = []

    @given(case=strategy)
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def draw(case: Any) -> None:
        cases.append(case)

    draw()
    return cases
