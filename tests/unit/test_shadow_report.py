"""Shadow reports: agreement (exact and the project's comparator), numeric drift, errors, latency, and the text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fnplatform.control.shadow_report import render, summarize


def rec(primary: Any = 1, shadow: Any = 1, *, n: int = 0, **extra: Any) -> dict[str, Any]:
    """One record as serving.shadow writes it; *n* sets its time (a second apart) and request id."""
    record: dict[str, Any] = {
        "at": f"2024-05-01T12:00:{n:02d}Z", "request_id": f"req-{n}", "primary_version": 3, "shadow_version": 4,
        "primary_ms": 10.0, "shadow_ms": 12.0, "primary_error": None, "shadow_error": None,
        "primary": primary, "shadow": shadow, "truncated": False, "same": None}
    record.update(extra)
    return record


def test_exact_comparison_ignores_key_order_but_not_types() -> None:
    report = summarize([
        rec({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, n=0),
        rec(1, 1.0, n=1),  # JSON has one number type
        rec(True, 1, n=2),  # a bool is not the number 1
        rec(0.1 + 0.2, 0.3, n=3),  # floats compared exactly
        rec("cat", "cat", n=4),
    ])
    assert report["comparator"] == "exact"
    assert report["agreement"] == {"compared": 5, "agree": 3, "rate": 0.6}
    assert [d["request_id"] for d in report["disagreements"]] == ["req-3", "req-2"]  # most recent first
    assert report["versions"] == {"primary": [3], "shadow": [4]}


def test_the_user_comparator_overrides_exact_equality() -> None:
    report = summarize([rec(0.91, 0.90, same=True, n=0), rec("x", "x", same=False, n=1), rec(2, 2, n=2)])
    assert report["comparator"] == "user"
    assert report["agreement"]["agree"] == 2  # the first by the comparator, the last (no verdict) exactly
    assert [d["request_id"] for d in report["disagreements"]] == ["req-1"]


def test_vectors_report_mean_abs_diff_and_cosine() -> None:
    report = summarize([rec([1.0, 0.0], [0.8, 0.2], n=0), rec([0.0, 0.0], [0.0, 0.0], n=1), rec([1, 2], [1, 2, 3], n=2)])
    numeric = report["numeric"]
    assert numeric["compared"] == 2  # unequal lengths are not a vector comparison
    assert numeric["mean_abs_diff"] == pytest.approx((0.2 + 0.0) / 2)
    assert numeric["max_abs_diff"] == pytest.approx(0.2)
    # the all-zero vector has no cosine: the mean is the first record's alone
    assert numeric["mean_cosine"] == pytest.approx(0.8 / (0.8**2 + 0.2**2) ** 0.5)


def test_dicts_compare_their_numeric_leaves() -> None:
    report = summarize([
        rec({"score": 0.91, "decision": "approve"}, {"score": 0.87, "decision": "approve"}, n=0),
        rec({"scores": {"cat": 0.5, "dog": 0.5}, "only_primary": 9}, {"scores": {"cat": 0.7, "dog": 0.3}}, n=1),
        rec([{"label": "a", "p": 0.25}], [{"label": "a", "p": 0.5}], n=2),
        rec({"flag": True}, {"flag": False}, n=3),  # bools are not numbers
    ])
    numeric = report["numeric"]
    assert numeric["compared"] == 3
    assert numeric["mean_abs_diff"] == pytest.approx((0.04 + 0.2 + 0.25) / 3)
    assert numeric["max_abs_diff"] == pytest.approx(0.25)
    assert numeric["mean_cosine"] is None  # no vectors among them
    assert report["agreement"]["agree"] == 0


def test_truncated_outputs_compare_by_sha256() -> None:
    big = {"primary": None, "shadow": None, "truncated": True}
    report = summarize([
        rec(**big, primary_sha256="aa" * 32, shadow_sha256="aa" * 32, n=0),
        rec(**big, primary_sha256="aa" * 32, shadow_sha256="bb" * 32, n=1),
    ])
    assert report["agreement"] == {"compared": 2, "agree": 1, "rate": 0.5}
    shown = report["disagreements"][0]
    assert shown["request_id"] == "req-1" and "sha256 bbbb" in shown["shadow"]
    assert report["numeric"] is None


def test_errors_on_each_side() -> None:
    report = summarize([
        rec(n=0),
        rec(primary=None, primary_error="ValueError: bad", n=1),
        rec(shadow=None, shadow_error="RuntimeError: boom", n=2),
        rec(primary=None, shadow=None, primary_error="E", shadow_error="F", n=3),
        rec(shadow=None, shadow_ms=None, n=4),  # the shadow never finished
    ])
    errors = report["errors"]
    assert errors["primary"] == {"count": 2, "rate": 0.4}
    assert errors["shadow"] == {"count": 3, "rate": 0.6}
    assert (errors["shadow_only"], errors["primary_only"]) == (2, 1)
    assert report["agreement"]["compared"] == 1
    assert [e["request_id"] for e in report["shadow_errors"]] == ["req-4", "req-3", "req-2"]
    assert report["shadow_errors"][2]["error"] == "RuntimeError: boom"
    assert "did not finish" in report["shadow_errors"][0]["error"]


def test_latency_percentiles_by_nearest_rank() -> None:
    records = [rec(n=i, primary_ms=float(i + 1), shadow_ms=float(2 * (i + 1))) for i in range(10)]
    records.append(rec(n=10, primary_ms=100.0, shadow_ms=None, shadow_error="Timeout"))
    latency = summarize(records)["latency_ms"]
    assert latency["primary"] == {"p50": 6.0, "p99": 100.0, "mean": pytest.approx(155 / 11)}
    assert latency["shadow"] == {"p50": 10.0, "p99": 20.0, "mean": 11.0}  # the unfinished call left out
    assert latency["p50_ratio"] == pytest.approx(10.0 / 6.0)


def test_examples_are_limited_most_recent_first_and_cut() -> None:
    records = [rec(i, i + 1, n=i) for i in range(8)]
    records.append(rec("x" * 1000, "y", n=30))
    report = summarize(records, examples=3)
    assert [d["request_id"] for d in report["disagreements"]] == ["req-30", "req-7", "req-6"]
    assert len(report["disagreements"][0]["primary"]) == 300
    assert report["disagreements"][1]["primary"] == "7"


def test_empty_input() -> None:
    report = summarize([])
    assert report["calls"] == 0
    assert report["agreement"] == {"compared": 0, "agree": 0, "rate": None}
    assert report["errors"]["primary"] == {"count": 0, "rate": None}
    assert report["numeric"] is None and report["latency_ms"]["p50_ratio"] is None
    assert report["latency_ms"]["shadow"] == {"p50": None, "p99": None, "mean": None}
    text = render(report)
    assert "calls compared: 0" in text and "nothing to compare" in text and "primary n/a (0)" in text
    assert "primary -/-" in text


def test_report_is_json_and_renders() -> None:
    records = [rec([1.0, 0.0], [1.0, 0.0], n=i) for i in range(3)]
    records.append(rec([1.0, 0.0], [0.0, 1.0], n=3))
    records.append(rec(shadow=None, shadow_error="RuntimeError: boom", n=4))
    report = summarize(records)
    assert json.loads(json.dumps(report)) == report
    text = render(report)
    lines = text.splitlines()
    assert lines[0] == "calls compared: 5 (primary v3, shadow v4)"
    assert "agreement (exact): 3/4 = 75.0%" in lines
    assert "numeric: mean |diff| 0.25, max 1, mean cosine 0.75 (4 compared)" in lines
    assert "errors: primary 0.0% (0), shadow 20.0% (1), shadow only 1, primary only 0" in lines
    assert "latency p50/p99 ms: primary 10.0/10.0, shadow 12.0/12.0 (p50 x1.20)" in lines
    assert "    primary: [1.0,0.0]" in lines and "    shadow:  [0.0,1.0]" in lines
    assert any("req-4" in line and "RuntimeError: boom" in line for line in lines)


def test_render_keeps_none_fields_readable() -> None:
    report = summarize([rec("a", "b", n=0, primary_ms=None, shadow_ms=5.0)])
    report["numeric"] = None
    text = render(report)
    assert "numeric: no numeric outputs to compare" in text
    assert "latency p50/p99 ms: primary -/-, shadow 5.0/5.0" in text.splitlines()  # no p50 ratio without both
    assert "shadow errors: none" in text
    assert "None" not in text
