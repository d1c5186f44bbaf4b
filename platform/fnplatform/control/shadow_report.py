"""A summary of shadow records (``serving.shadow``): agreement, numeric drift, errors and latency, as JSON and text.

Pure: the caller reads the records from the log store and hands them in; the API returns ``summarize``'s dict
and ``fnctl shadow report`` prints ``render``'s text.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

SHOWN_CHARS = 300


def summarize(records: list[dict[str, Any]], *, examples: int = 5) -> dict[str, Any]:
    """The report over *records*, with up to *examples* disagreements and shadow errors, most recent first."""
    calls = len(records)
    agree = compared = 0
    per_record_diffs: list[float] = []
    max_diff = 0.0
    cosines: list[float] = []
    disagreeing: list[tuple[float, int, dict[str, Any]]] = []
    failing: list[tuple[float, int, dict[str, Any]]] = []
    primary_errors = shadow_errors = shadow_only = primary_only = 0
    for index, record in enumerate(records):
        primary_ok, shadow_ok = _ok(record, "primary"), _ok(record, "shadow")
        primary_errors += not primary_ok
        shadow_errors += not shadow_ok
        shadow_only += primary_ok and not shadow_ok
        primary_only += shadow_ok and not primary_ok
        when = (_when(record.get("at")), index)
        if not shadow_ok:
            failing.append((*when, record))
        if not (primary_ok and shadow_ok):
            continue
        compared += 1
        if _agree(record):
            agree += 1
        else:
            disagreeing.append((*when, record))
        diffs: list[float] = []
        vectors: list[tuple[list[float], list[float]]] = []
        _pair(record.get("primary"), record.get("shadow"), diffs, vectors)
        if diffs:
            per_record_diffs.append(sum(diffs) / len(diffs))
            max_diff = max(max_diff, *diffs)
        cosines.extend(c for c in (_cosine(a, b) for a, b in vectors) if c is not None)
    numeric = None if not per_record_diffs else {
        "compared": len(per_record_diffs), "mean_abs_diff": sum(per_record_diffs) / len(per_record_diffs),
        "max_abs_diff": max_diff, "mean_cosine": sum(cosines) / len(cosines) if cosines else None}
    primary_ms = [float(r["primary_ms"]) for r in records if r.get("primary_ms") is not None]
    shadow_ms = [float(r["shadow_ms"]) for r in records if r.get("shadow_ms") is not None]
    latency = {"primary": _latency(primary_ms), "shadow": _latency(shadow_ms)}
    p50s = latency["primary"]["p50"], latency["shadow"]["p50"]
    return {
        "calls": calls,
        "versions": {side: sorted({r[f"{side}_version"] for r in records if r.get(f"{side}_version") is not None})
                     for side in ("primary", "shadow")},
        "comparator": "user" if any(r.get("same") is not None for r in records) else "exact",
        "agreement": {"compared": compared, "agree": agree, "rate": agree / compared if compared else None},
        "numeric": numeric,
        "errors": {"primary": {"count": primary_errors, "rate": primary_errors / calls if calls else None},
                   "shadow": {"count": shadow_errors, "rate": shadow_errors / calls if calls else None},
                   "shadow_only": shadow_only, "primary_only": primary_only},
        "latency_ms": {**latency, "p50_ratio": p50s[1] / p50s[0] if p50s[0] and p50s[1] is not None else None},
        "disagreements": [{"at": r.get("at"), "request_id": r.get("request_id"), "primary": _shown(r, "primary"),
                           "shadow": _shown(r, "shadow")} for *_, r in _latest(disagreeing, examples)],
        "shadow_errors": [{"at": r.get("at"), "request_id": r.get("request_id"),
                           "error": r.get("shadow_error") or "the shadow call did not finish"}
                          for *_, r in _latest(failing, examples)],
    }


def render(report: dict[str, Any]) -> str:
    """*report* (``summarize``'s) as plain lines for a terminal."""
    versions = report.get("versions") or {}
    sides = ", ".join(f"{side} {', '.join(f'v{v}' for v in versions.get(side) or []) or 'none'}"
                      for side in ("primary", "shadow"))
    lines = [f"calls compared: {report.get('calls', 0)} ({sides})"]
    agreement = report.get("agreement") or {}
    label = f"agreement ({report.get('comparator', 'exact')})"
    if agreement.get("compared"):
        lines.append(f"{label}: {agreement['agree']}/{agreement['compared']} = {_pct(agreement.get('rate'))}")
    else:
        lines.append(f"{label}: nothing to compare (no call succeeded on both sides)")
    numeric = report.get("numeric")
    if numeric:
        cosine = numeric.get("mean_cosine")
        lines.append(f"numeric: mean |diff| {_num(numeric.get('mean_abs_diff'))}, max {_num(numeric.get('max_abs_diff'))}"
                     + (f", mean cosine {_num(cosine)}" if cosine is not None else "")
                     + f" ({numeric.get('compared', 0)} compared)")
    else:
        lines.append("numeric: no numeric outputs to compare")
    errors = report.get("errors") or {}
    primary, shadow = errors.get("primary") or {}, errors.get("shadow") or {}
    lines.append(f"errors: primary {_pct(primary.get('rate'))} ({primary.get('count', 0)}), "
                 f"shadow {_pct(shadow.get('rate'))} ({shadow.get('count', 0)}), "
                 f"shadow only {errors.get('shadow_only', 0)}, primary only {errors.get('primary_only', 0)}")
    latency = report.get("latency_ms") or {}
    ratio = latency.get("p50_ratio")
    lines.append("latency p50/p99 ms: " + ", ".join(
        f"{side} {_ms((latency.get(side) or {}).get('p50'))}/{_ms((latency.get(side) or {}).get('p99'))}"
        for side in ("primary", "shadow")) + (f" (p50 x{ratio:.2f})" if ratio is not None else ""))
    lines.append("disagreements:" if report.get("disagreements") else "disagreements: none")
    for item in report.get("disagreements") or []:
        lines += [f"  {item.get('at')}  {item.get('request_id')}", f"    primary: {item.get('primary')}",
                  f"    shadow:  {item.get('shadow')}"]
    lines.append("shadow errors:" if report.get("shadow_errors") else "shadow errors: none")
    lines += [f"  {item.get('at')}  {item.get('request_id')}  {item.get('error')}" for item in report.get("shadow_errors") or []]
    return "\n".join(lines)


def _ok(record: dict[str, Any], side: str) -> bool:
    # A shadow with no latency never finished: it has no output to compare, so it counts as failed.
    return record.get(f"{side}_error") is None and (side == "primary" or record.get("shadow_ms") is not None)


def _agree(record: dict[str, Any]) -> bool:
    if record.get("same") is not None:
        return bool(record["same"])
    if record.get("truncated"):
        digests = record.get("primary_sha256"), record.get("shadow_sha256")
        return digests[0] is not None and digests[0] == digests[1]
    return _equal(record.get("primary"), record.get("shadow"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: key order ignored, 1 == 1.0 (JSON has one number type), but True != 1."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _pair(a: Any, b: Any, diffs: list[float], vectors: list[tuple[list[float], list[float]]]) -> None:
    """Collect |a - b| for the numeric leaves at the same paths in both, and the number lists as vectors."""
    if _is_number(a) and _is_number(b):
        if math.isfinite(a) and math.isfinite(b):
            diffs.append(abs(a - b))
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() & b.keys():
            _pair(a[key], b[key], diffs, vectors)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a:
        if all(_is_number(x) and math.isfinite(x) for x in (*a, *b)):
            vectors.append(([float(x) for x in a], [float(y) for y in b]))
            diffs.extend(abs(x - y) for x, y in zip(a, b, strict=True))
        else:  # a list of objects (e.g. one per label): compared position by position
            for x, y in zip(a, b, strict=True):
                _pair(x, y, diffs, vectors)


def _cosine(a: list[float], b: list[float]) -> float | None:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else None


def _nearest_rank(ordered: list[float], percent: int) -> float:
    return ordered[max(1, -(-percent * len(ordered) // 100)) - 1]


def _latency(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None}
    ordered = sorted(values)
    return {"p50": _nearest_rank(ordered, 50), "p99": _nearest_rank(ordered, 99), "mean": sum(values) / len(values)}


def _when(at: Any) -> float:
    """A record's time as seconds, for ordering; unreadable times sort oldest."""
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        return -math.inf
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _latest(items: list[tuple[float, int, dict[str, Any]]], count: int) -> list[tuple[float, int, dict[str, Any]]]:
    return sorted(items, key=lambda item: (item[0], item[1]), reverse=True)[:max(count, 0)]


def _shown(record: dict[str, Any], side: str) -> str:
    value = record.get(side)
    if value is None and record.get(f"{side}_sha256"):
        return f"<too large to keep; sha256 {str(record[f'{side}_sha256'])[:16]}>"
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
