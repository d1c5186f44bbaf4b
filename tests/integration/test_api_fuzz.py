"""Schemathesis over the control plane's own OpenAPI schema, on the real platform with an admin key:
whatever the schema allows a client to send, the answer is never a 5xx and always fn's JSON error.

Bounded (``FUZZ_EXAMPLES`` per operation) so it fits CI. Removing functions is left out: a generated
name could be one the other tests deployed."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from harness import Platform

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the skip: hypothesis comes with schemathesis

FUZZ_EXAMPLES = int(os.environ.get("FN_FUZZ_EXAMPLES", "15"))
SKIPPED = {("DELETE", "/v1/functions/{name}")}


@pytest.fixture(scope="module")
def schema(platform: Platform) -> Any:
    headers = {"Authorization": f"Bearer {platform.key}"}
    document = httpx.get(f"{platform.api_url}/openapi.json", headers=headers, timeout=30).json()
    return schemathesis.openapi.from_dict(document)


def fuzz(platform: Platform, operation: Any, failures: list[str]) -> int:
    """Up to FUZZ_EXAMPLES generated requests for one operation; the number sent."""
    headers = {"Authorization": f"Bearer {platform.key}"}
    label = f"{operation.method.upper()} {operation.path}"
    sent = [0]

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        sent[0] += 1
        response = case.call(base_url=platform.api_url, headers=headers, timeout=60)
        if response.status_code >= 500:
            failures.append(f"{label} -> {response.status_code}: {response.text[:200]}")
        elif response.status_code >= 400 and response.request.method != "HEAD":
            error = response.json().get("error", {})
            if not (error.get("type") and error.get("message") and error.get("request_id")):
                failures.append(f"{label} -> {response.status_code} without fn's error body: {response.text[:200]}")

    check()
    return sent[0]


def test_no_operation_answers_5xx_to_anything_its_schema_allows(platform: Platform, schema: Any) -> None:
    failures: list[str] = []
    fuzzed = {f"{op.method.upper()} {op.path}": fuzz(platform, op, failures)
              for op in (result.ok() for result in schema.get_all_operations())
              if (op.method.upper(), op.path) not in SKIPPED}
    print(f"schemathesis: {len(fuzzed)} operations, {sum(fuzzed.values())} examples, 5xx and bad bodies: {len(failures)}")
    assert len(fuzzed) >= 12, fuzzed
    assert not failures, "\n".join(failures[:20])
