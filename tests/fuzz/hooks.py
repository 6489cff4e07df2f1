"""schemathesis hooks of the CI fuzz, loaded by run_schemathesis.py through SCHEMATHESIS_HOOKS.

``documented_refusal`` holds a schema-valid request's 400 to the codes its operation documents.
schemathesis.toml lets ``positive_data_acceptance`` expect a 400 on the few operations that can
refuse a schema-valid request on its merits, which OpenAPI cannot state (a taken username, ``page``
with a cursor, nothing to regenerate). There, the 400 answer names those codes, one example each
(``error_codes`` in chatsite/api/schema.py); any other code (a field the schema should have
bounded, a NUL it should have excluded) fails the run as ``positive_data_acceptance`` would.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

from tests.fuzz.openapi import documented_codes


@schemathesis.check
def documented_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if is_unexpected_http_status_case(case):
        return None  # a coverage probe of the request's shape, not of its data
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    documented = documented_codes(case.operation.definition.raw)
    if code not in documented:
        raise AssertionError(
            f"A schema-valid request was refused with 400 `{code}`, which the operation does not "
            f"document (documented: {', '.join(sorted(documented)) or 'none'}): "
            f"{response.text[:300]}"
        )
    return None
