"""The Grafana dashboard (deploy/grafana/fn.json) against what GET /metrics really exports: every query names
only series the control plane renders, with labels they carry, and the dashboard is well formed (unique panel
ids, titles, defined variables, one Prometheus data source variable). The exported names come from rendering
the code's own declarations, so renaming a metric fails here until the dashboard follows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fnplatform.control.metrics import DEPLOY_COUNTERS, DEPLOY_HISTOGRAMS, render
from fnplatform.serving.metrics import COUNTERS, GAUGES, HISTOGRAMS, Recorder

from .conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "fn.json"
# Series Prometheus adds to every scrape itself (the dashboard's "Scrape up" panel); the job is the scrape
# config's (terraform/modules/ray, docs/observability.md).
PROMETHEUS_SERIES: dict[str, set[str]] = {"up": {"job", "instance"}}
# PromQL's functions, aggregations and keywords: any other identifier in a query is a metric name.
PROMQL_CALLS = {"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
                "min_over_time", "max_over_time", "avg_over_time", "clamp_min", "clamp_max", "label_values", "vector",
                "topk", "bottomk", "abs", "round"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "__all"}


def _filled(declared: dict[str, tuple[str, ...]], recorder: Recorder, histogram: bool) -> None:
    for name, labels in declared.items():
        values = tuple(f"{label}-x" for label in labels)
        if histogram:
            recorder.observe(name, values, 0.1)
        else:
            recorder.count(name, values)


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> its label names, from the text ``GET /metrics`` renders with one series of each metric."""
    data_plane, control = Recorder(), Recorder()
    _filled(COUNTERS, data_plane, histogram=False)
    _filled(HISTOGRAMS, data_plane, histogram=True)
    _filled(DEPLOY_COUNTERS, control, histogram=False)
    _filled(DEPLOY_HISTOGRAMS, control, histogram=True)
    data = data_plane.drain()
    data.gauges = {(name, tuple(f"{label}-x" for label in labels)): 1.0 for name, labels in GAUGES.items()}
    text = render(data, control.drain(), {("function-x", "state-x"): 1.0}, {("function-x", "status-x"): 1}).decode()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        assert family.samples, f"{family.name} rendered without samples: fill it above"
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) of every panel target and query variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']!r}", variable["query"]["query"], ""


def parse_promql(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names, called functions) of a query, from a tokenizer sized to PromQL as dashboards
    write it (no subqueries or string functions); anything unexpected fails the test rather than passing it."""
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    rest = re.sub(r"\{[^}]*\}", " ", expr)
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", rest):
        labels |= {name.strip() for name in clause.split(",") if name.strip()}
    rest = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range selectors: [5m], [$__rate_interval]
    rest = re.sub(r"\b[0-9]+(?:\.[0-9]+)?\b", " ", rest)
    calls = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", rest))
    rest = re.sub(r"[A-Za-z_][A-Za-z0-9_]*\s*\(", " ( ", rest)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", rest)) - PROMQL_KEYWORDS
    # label_values(metric, label): its second argument is a label, not a metric
    for label in re.findall(r"label_values\(\s*[A-Za-z_:][A-Za-z0-9_:]*\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", expr):
        names.discard(label)
        labels.add(label)
    leftover = re.sub(r"[A-Za-z_:][A-Za-z0-9_:]*|[()+\-*/,\s]", "", rest)
    assert not leftover, f"unexpected PromQL in {expr!r}: {leftover!r}"
    return names, labels, calls


def test_the_tokenizer_finds_metrics_labels_and_calls() -> None:
    names, labels, calls = parse_promql(
        'histogram_quantile(0.9, sum by (flow, le) (rate(fn_x_bucket{flow=~"$flow"}[$__rate_interval]))) / 60 '
        "or 0 * sum(up)")
    assert names == {"fn_x_bucket", "up"}
    assert labels == {"flow", "le"}
    assert calls == {"histogram_quantile", "sum", "rate"}
    assert parse_promql("label_values(fn_requests_total, function)")[:2] == ({"fn_requests_total"}, {"function"})


def test_the_exported_names_are_what_the_code_declares(exported: dict[str, set[str]]) -> None:
    # A guard on the fixture: counters get _total once, histograms their three series, and labels come through.
    assert exported["fn_requests_total"] == {"function", "version", "code"}
    assert exported["fn_request_duration_seconds_bucket"] == {"function", "version", "le"}
    assert {"fn_deploy_duration_seconds_count", "fn_metrics_dropped_total", "fn_data_plane_metrics_up",
            "fn_requests_in_flight"} <= set(exported)
    assert not {name for name in exported if name.endswith("_total_total")}


def test_every_query_names_only_exported_series_and_their_labels(dashboard: dict[str, Any],
                                                                 exported: dict[str, set[str]]) -> None:
    known = {**exported, **PROMETHEUS_SERIES}
    queries = list(_queries(dashboard))
    assert len(queries) >= 12
    used: set[str] = set()
    for where, expr, legend in queries:
        names, labels, calls = parse_promql(expr)
        assert names, f"{where}: {expr!r} names no metric"
        unknown = names - set(known)
        assert not unknown, f"{where}: {sorted(unknown)} not exported by GET /metrics (control/metrics.py)"
        assert calls <= PROMQL_CALLS, f"{where}: unknown PromQL functions {sorted(calls - PROMQL_CALLS)}"
        available = set().union(*(known[name] for name in names))
        assert labels <= available, f"{where}: labels {sorted(labels - available)} are not on {sorted(names)}"
        if "histogram_quantile" in calls:
            assert all(name.endswith("_bucket") for name in names if name != "up"), where
            assert "le" in labels, f"{where}: histogram_quantile needs the le label kept"
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert legend_labels <= labels, f"{where}: the legend names {sorted(legend_labels - labels)}, not kept by {expr!r}"
        used |= names
    # Every metric of the list is on the dashboard (histograms by their buckets or sums).
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    wanted = {*COUNTERS, *HISTOGRAMS, *GAUGES, *DEPLOY_COUNTERS, *DEPLOY_HISTOGRAMS,
              "fn_metrics_dropped_total", "fn_data_plane_metrics_up"}
    assert wanted <= families, f"not on the dashboard: {sorted(wanted - families)}"


def test_every_panel_has_a_unique_id_a_title_and_a_place(dashboard: dict[str, Any]) -> None:
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert isinstance(panel["id"], int) and panel["title"].strip(), panel
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_variables_are_defined_used_and_the_data_source_is_prometheus(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    function = variables["function"]
    assert function["type"] == "query" and function["multi"] and function["includeAll"]
    assert function["query"]["query"] == "label_values(fn_requests_total, function)"
    text = json.dumps(dashboard)
    referenced = set(re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", text))
    names = {a or b for a, b in referenced} - GRAFANA_BUILTINS
    assert names <= set(variables), f"undefined variables: {sorted(names - set(variables))}"
    assert set(variables) <= names, f"unused variables: {sorted(set(variables) - names)}"
    data_source = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == data_source, panel["title"]
        assert all(t["datasource"] == data_source for t in panel["targets"]), panel["title"]
    assert function["datasource"] == data_source


def test_the_dashboard_is_plain_importable_json(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 39 and dashboard["uid"] == "fn-overview"
    # No "__inputs"/"__requires": it is imported as it is, the data source chosen by its variable.
    assert "__inputs" not in dashboard and "id" not in dashboard
    assert DASHBOARD.read_text() == json.dumps(dashboard, indent=2) + "\n"
