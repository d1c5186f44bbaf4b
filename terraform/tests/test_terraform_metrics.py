"""The Prometheus scrape wiring (modules/ray/metrics.tf), checked offline against the platform and the
dashboard: the scraper's key is one the control plane accepts and reaches only the control plane and the
scraper's namespace, the rendered scrape job points at the control plane's port with that key as a file,
and only the scraper's pods are let through to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tf_hcl
import yaml

import fn
from fnplatform.control.settings import ADMIN_KEY_CHARS, ADMIN_KEY_MIN_LEN, PlatformSettings

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fn.json"
COUNTED = "${local.metrics_scrape ? 1 : 0}"  # what makes a resource exist only with metrics_scraper set


@pytest.fixture(scope="module")
def ray(tf: tf_hcl.Terraform) -> tf_hcl.Module:
    return tf.modules["ray"]


@pytest.fixture(scope="module")
def scrape(tf: tf_hcl.Terraform) -> dict:
    """The fn job as the prod root renders it (metrics_scraper's defaults)."""
    doc = yaml.safe_load(tf.render("ray", "prometheus-scrape.yaml.tftpl"))
    (job,) = doc["scrape_configs"]
    return job


# --- the key -----------------------------------------------------------------------------------------


def test_the_metrics_key_is_its_own_random_secret_the_platform_accepts(
        ray: tf_hcl.Module, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = ray.resource("random_password", "metrics_key")
    assert key["special"] is False and key["length"] >= ADMIN_KEY_MIN_LEN
    # What random_password draws with special = false (letters and digits), through the platform's own check.
    assert set("aZ09") <= ADMIN_KEY_CHARS
    monkeypatch.delenv("FN_ADMIN_KEY", raising=False)
    monkeypatch.setenv("FN_METRICS_KEY", "aZ09" * (key["length"] // 4))
    assert PlatformSettings.from_env(home=tmp_path).metrics_key
    monkeypatch.setenv("FN_METRICS_KEY", "aZ09")
    with pytest.raises(fn.ConfigError, match=r"^FN_METRICS_KEY has 4 characters"):
        PlatformSettings.from_env(home=tmp_path)
    assert ray.locals["metrics_key_secret"] == "fn-metrics-key"
    for name in ("metrics_key", "metrics_key_scraper"):
        secret = ray.resource("kubernetes_secret_v1", name)
        # the same key in both, never the admin key
        assert secret["data"] == {"api_key": "${random_password.metrics_key.result}"}, name
        assert secret["metadata"][0]["name"] == "${local.metrics_key_secret}", name


def test_the_metrics_key_reaches_only_the_control_plane_and_the_scrapers_namespace(
        tf: tf_hcl.Terraform, ray: tf_hcl.Module) -> None:
    holders = []
    for module_name, module in tf.all_modules().items():
        for rtype, rname, body in module.resources():
            if "local.metrics_key_secret" in json.dumps(body) or "random_password.metrics_key" in json.dumps(body):
                holders.append((module_name, rtype, rname))
    assert sorted(holders) == [
        ("modules/ray", "kubernetes_deployment_v1", "control_plane"),
        ("modules/ray", "kubernetes_secret_v1", "metrics_key"),
        ("modules/ray", "kubernetes_secret_v1", "metrics_key_scraper"),
    ]
    rendered = tf.render("ray", "raycluster.yaml.tftpl")
    assert "FN_METRICS_KEY" not in rendered and "fn-metrics-key" not in rendered  # no Ray pod gets it
    own = ray.resource("kubernetes_secret_v1", "metrics_key")["metadata"][0]["namespace"]
    assert own == "${kubernetes_namespace_v1.fn.metadata[0].name}"
    copy = ray.resource("kubernetes_secret_v1", "metrics_key_scraper")
    assert copy["count"] == COUNTED and copy["metadata"][0]["namespace"] == "${var.metrics_scraper.namespace}"
    assert ray.locals["metrics_scrape"] == '${var.metrics_scraper.namespace != ""}'
    assert "metrics_key_secret" in tf.prod.outputs and "metrics_key_secret" in ray.outputs


def test_the_scraper_namespace_is_its_own_and_off_by_default(tf: tf_hcl.Terraform, ray: tf_hcl.Module) -> None:
    variable = ray.variables["metrics_scraper"]
    assert variable["default"]["namespace"] == ""
    assert tf.prod.variables["metrics_scraper"]["default"] == variable["default"]
    assert tf.module_call(tf.prod, "ray")["metrics_scraper"] == "${var.metrics_scraper}"
    conditions = [v["condition"] for v in variable["validation"]]
    assert "${var.metrics_scraper.namespace != var.namespace}" in conditions  # its copy would collide with fn's
    assert "${length(var.metrics_scraper.pod_labels) > 0}" in conditions  # an empty selector admits every pod


# --- the scrape job -------------------------------------------------------------------------------------


def test_the_scrape_job_targets_the_control_planes_port_in_the_cluster(
        tf: tf_hcl.Terraform, ray: tf_hcl.Module, scrape: dict) -> None:
    assert scrape["metrics_path"] == "/metrics" and scrape["scheme"] == "http"
    (static,) = scrape["static_configs"]
    (target,) = static["targets"]
    host, port = target.rsplit(":", 1)
    service = ray.resource("kubernetes_service_v1", "control_plane_internal")
    (service_port,) = service["spec"][0]["port"]
    namespace = tf.resolve("var.namespace", ray, tf.module_call(tf.prod, "ray"), tf.prod)
    assert host == f"{ray.locals['control_plane_internal']}.{namespace}.svc"
    assert service["metadata"][0]["name"] == "${local.control_plane_internal}"
    # The target port is the Service's port, which forwards to the container's: the API's --api-port.
    api_port = ray.variables["control_plane"]["default"]["port"]
    assert service_port["port"] == service_port["target_port"] == "${var.control_plane.port}"
    assert int(port) == api_port
    args = ray.variables["control_plane"]["default"]["args"]
    assert args[args.index("--api-port") + 1] == port
    container = ray.resource("kubernetes_deployment_v1", "control_plane")["spec"][0]["template"][0]["spec"][0]
    assert container["container"][0]["port"][0]["container_port"] == "${var.control_plane.port}"
    assert service["spec"][0]["selector"] == ray.locals["control_plane_pods"]


def test_the_scrape_job_reads_the_key_as_the_mounted_secrets_file(ray: tf_hcl.Module, scrape: dict) -> None:
    authorization = scrape["authorization"]
    assert set(authorization) == {"type", "credentials_file"} and authorization["type"] == "Bearer"
    key_dir = ray.variables["metrics_scraper"]["default"]["key_dir"]
    (data_key,) = ray.resource("kubernetes_secret_v1", "metrics_key_scraper")["data"]
    # A Secret mounted as a volume is one file per data key.
    assert authorization["credentials_file"] == f"{key_dir}/{data_key}"
    config_map = ray.resource("kubernetes_config_map_v1", "prometheus_scrape")
    assert config_map["count"] == COUNTED
    assert config_map["metadata"][0] == {"name": "fn-prometheus-scrape", "namespace": "${var.metrics_scraper.namespace}"}
    assert config_map["data"] == {"fn.yaml": "${local.prometheus_scrape_yaml}"}
    assert re.fullmatch(r"[0-9]+s", scrape["scrape_timeout"]) and re.fullmatch(r"[0-9]+s", scrape["scrape_interval"])
    assert int(scrape["scrape_timeout"][:-1]) < int(scrape["scrape_interval"][:-1])


def test_the_dashboards_scrape_health_panel_names_this_job(scrape: dict) -> None:
    jobs = set(re.findall(r'up\{job=\\"([^"\\]+)\\"\}', DASHBOARD.read_text()))
    assert jobs == {scrape["job_name"]}


# --- the network ------------------------------------------------------------------------------------------


def test_only_the_scrapers_pods_reach_the_control_plane_port(ray: tf_hcl.Module) -> None:
    policy = ray.resource("kubernetes_network_policy_v1", "control_plane_from_scraper")
    assert policy["count"] == COUNTED
    spec = policy["spec"][0]
    assert spec["pod_selector"][0]["match_labels"] == "${local.control_plane_pods}"
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": "${var.control_plane.port}", "protocol": "TCP"}]
    # One peer with both selectors: the scraper's namespace AND its pods' labels, not either.
    (peer,) = rule["from"]
    assert set(peer) == {"namespace_selector", "pod_selector"}
    assert peer["namespace_selector"][0]["match_labels"] == {
        "kubernetes.io/metadata.name": "${var.metrics_scraper.namespace}"}
    assert peer["pod_selector"][0]["match_labels"] == "${var.metrics_scraper.pod_labels}"
