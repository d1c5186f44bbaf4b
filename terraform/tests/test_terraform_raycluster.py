"""Render the RayCluster manifest from its Terraform template, as envs/prod configures it, and
check that KubeRay and Ray's autoscaler would read the node pools the platform schedules on."""

from __future__ import annotations

import json

import pytest
import tf_hcl
import yaml

from fnplatform.pools import DEFAULT_POOLS, NODE_POOL_CAPACITY, pool_resource


@pytest.fixture(scope="module")
def raycluster(tf: tf_hcl.Terraform) -> dict:
    doc = yaml.safe_load(tf.render("ray", "raycluster.yaml.tftpl"))
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    return doc


def _groups(raycluster: dict) -> dict[str, dict]:
    """The head as "head" plus every worker group by name."""
    spec = raycluster["spec"]
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def parse_ray_start_resources(value: object) -> dict[str, int]:
    """Our own reading of rayStartParams.resources, as KubeRay and Ray expect it: a JSON
    object wrapped in one more pair of double quotes, with escaped inner quotes."""
    assert isinstance(value, str), "rayStartParams values are strings"
    assert value.startswith('"') and value.endswith('"'), f"not a quoted string: {value!r}"
    parsed = json.loads(value[1:-1].replace("\\", ""))
    assert isinstance(parsed, dict) and parsed
    for key, amount in parsed.items():
        assert isinstance(key, str)
        assert type(amount) is int, f"{key}: {amount!r} is not an integer"
    return parsed


def test_groups_declare_their_pool_resource(raycluster: dict) -> None:
    groups = _groups(raycluster)
    expected = {
        "head": pool_resource("api"),
        "api": pool_resource("api"),
        "cpu": pool_resource("cpu"),
        "gpu": pool_resource("gpu"),
    }
    assert set(groups) == set(expected)
    assert {g for g in groups if g != "head"} == set(DEFAULT_POOLS)
    for name, group in groups.items():
        resources = parse_ray_start_resources(group["rayStartParams"]["resources"])
        assert resources == {expected[name]: NODE_POOL_CAPACITY}, name


def test_ray_autoscaler_parses_each_groups_resources(raycluster: dict) -> None:
    autoscaling_config = pytest.importorskip("ray.autoscaler._private.kuberay.autoscaling_config")
    for name, group in _groups(raycluster).items():
        parsed = autoscaling_config._get_custom_resources({}, group["rayStartParams"], name)
        assert parsed == parse_ray_start_resources(group["rayStartParams"]["resources"]), name


def test_ray_autoscaler_derives_node_types_that_scale_from_zero(raycluster: dict) -> None:
    autoscaling_config = pytest.importorskip("ray.autoscaler._private.kuberay.autoscaling_config")
    config = autoscaling_config._derive_autoscaling_config_from_ray_cr(raycluster)
    node_types = config["available_node_types"]
    head = node_types[autoscaling_config._HEAD_GROUP_NAME]
    assert head["resources"][pool_resource("api")] == NODE_POOL_CAPACITY
    for pool in DEFAULT_POOLS:
        node_type = node_types[pool]
        assert node_type["resources"][pool_resource(pool)] == NODE_POOL_CAPACITY, pool
        assert node_type["min_workers"] == 0, pool
        assert node_type["max_workers"] >= 1, pool
        assert node_type["resources"]["CPU"] >= 1, pool
    assert node_types["gpu"]["resources"]["GPU"] >= 1
    assert "GPU" not in node_types["cpu"]["resources"]


def test_autoscaler_enabled_and_cpu_gpu_scale_to_zero(raycluster: dict) -> None:
    spec = raycluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    groups = _groups(raycluster)
    for name in ("cpu", "gpu"):
        assert groups[name]["minReplicas"] == 0, name
        assert groups[name]["replicas"] == 0, name


def test_groups_land_on_their_karpenter_pool(raycluster: dict, tf: tf_hcl.Terraform) -> None:
    node_pools = {}
    for template, _ in tf.templatefile_calls("karpenter"):
        if template.startswith("nodepool-"):
            doc = yaml.safe_load(tf.render("karpenter", template))
            node_pools[doc["metadata"]["name"]] = doc
    for name, group in _groups(raycluster).items():
        pool = "api" if name == "head" else name
        pod = group["template"]["spec"]
        assert pod["nodeSelector"] == {"karpenter.sh/nodepool": pool}, name
        assert pool in node_pools
        taints = node_pools[pool]["spec"]["template"]["spec"].get("taints", [])
        tolerations = pod.get("tolerations", [])
        for taint in taints:
            assert any(
                t["key"] == taint["key"] and t.get("value") == taint["value"] and t["effect"] == taint["effect"]
                for t in tolerations
            ), (name, taint)
    gpu_container = groups_container(raycluster, "gpu")
    assert int(gpu_container["resources"]["limits"]["nvidia.com/gpu"]) >= 1


def groups_container(raycluster: dict, name: str) -> dict:
    return _groups(raycluster)[name]["template"]["spec"]["containers"][0]


def test_head_pins_the_api_pool_and_hides_the_dashboard(raycluster: dict) -> None:
    head = _groups(raycluster)["head"]
    assert head["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert "enableIngress" not in head
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    ports = {p["containerPort"] for p in groups_container(raycluster, "head")["ports"]}
    assert 8265 not in ports and 8000 in ports


def test_ray_pods_get_the_region_and_the_ray_identity(raycluster: dict, tf: tf_hcl.Terraform) -> None:
    ray = tf.modules["ray"]
    for name, group in _groups(raycluster).items():
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == ray.locals["ray_sa"], name
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
        assert env["AWS_REGION"] == tf.prod.variables["region"]["default"], name
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_head_bounds_what_the_gcs_keeps_as_a_local_platform_does(raycluster: dict) -> None:
    from fnplatform.control.local import RAY_RECORD_BOUNDS

    env = {e["name"]: e.get("value") for e in groups_container(raycluster, "head")["env"]}
    assert {name: env.get(name) for name in RAY_RECORD_BOUNDS} == RAY_RECORD_BOUNDS


def test_every_groups_serve_proxy_stamps_arrivals_as_a_local_platform_does(raycluster: dict) -> None:
    from fnplatform.serving.arrival import ARRIVAL_STAMP, PROXY_CALLBACK_ENV

    for group in ("head", "api", "cpu", "gpu"):
        env = {e["name"]: e.get("value") for e in groups_container(raycluster, group)["env"]}
        assert env.get(PROXY_CALLBACK_ENV) == ARRIVAL_STAMP, group
