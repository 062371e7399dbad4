"""The API against its own OpenAPI document, with generated requests (schemathesis): no server errors,
documented status codes and content types, and answers that match their schemas.

Signed in as a supervisor (the role that reaches most routes), on a throw-away agency. Every operation
gets valid (positive) and invalid (negative) generated requests; a bounded number of examples per
operation keeps the run near a minute.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi import checks as openapi_checks


EXAMPLES = 12
CHECKS = [schemathesis.checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance]
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


@pytest.fixture(scope="module")
def fuzzed(chain_home, tmp_path_factory, agency_maker):
    """A throw-away agency served in-process."""
    with agency_maker(chain_home, tmp_path_factory.mktemp("fuzz")) as agency:
        yield agency


def _operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _checker(fuzzed, operation, mode):
    """A hypothesis test sending generated requests of ``mode`` to ``operation``, signed in as sue."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
    def check(case) -> None:
        token = fuzzed.token("sue")
        if operation.path == "/api/auth/logout":  # signing out revokes the token: use a throwaway one
            token, _ = fuzzed.app.state.fundtrail.auth.issue("sue", name="fuzz",
                                                             lifetime=timedelta(minutes=5))
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    return check


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_keeps_its_contract(fuzzed, mode) -> None:
    operations = _operations(fuzzed.app)
    assert len(operations) >= 40
    failures: list[str] = []
    for operation in operations:
        try:
            _checker(fuzzed, operation, mode)()
        except Unsatisfiable:  # nothing to generate (no parameters to break in negative mode)
            continue
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - gather them all, then report
            failures.append(f"{operation.label}: {str(error)[:1500]}")
    assert not failures, "\n\n".join(failures)
