"""What makes the production deployment safe to expose, checked offline: Ray token authentication
in every Ray process, network policies around Ray's ports, secrets only by reference, the Ray
pods' write access tied to the code's blob keys, and the optional TLS listener."""

from __future__ import annotations

import pytest
import tf_hcl
import yaml

from fnplatform.control.settings import ADMIN_KEY_CHARS, ADMIN_KEY_MIN_LEN
from fnplatform.flows.run import BLOB_PREFIX, blob_key
from fnplatform.storage.db import DATABASE_URL_ENV

SECRET_NAMES = {"RAY_AUTH_TOKEN", "FN_DATABASE_URL", "FN_ADMIN_KEY", "FN_METRICS_KEY"}


@pytest.fixture(scope="module")
def raycluster(tf: tf_hcl.Terraform) -> dict:
    return yaml.safe_load(tf.render("ray", "raycluster.yaml.tftpl"))


@pytest.fixture(scope="module")
def ray(tf: tf_hcl.Terraform) -> tf_hcl.Module:
    return tf.modules["ray"]


def _containers(raycluster: dict) -> dict[str, dict]:
    spec = raycluster["spec"]
    groups = {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}
    return {name: group["template"]["spec"]["containers"][0] for name, group in groups.items()}


def _secret_refs(env: list[dict]) -> dict[str, dict]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}


def _plain(env: list[dict]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in env if "value" in e}


# --- Ray token authentication ---------------------------------------------------------------------


def test_the_env_var_names_are_the_ones_the_pinned_ray_reads() -> None:
    setup = pytest.importorskip("ray._private.authentication.authentication_token_setup")
    assert setup.AUTH_MODE_ENV_VAR == "RAY_AUTH_MODE"


def test_every_ray_process_runs_with_token_auth_from_the_secret(raycluster: dict, ray: tf_hcl.Module) -> None:
    secret = ray.locals["ray_auth_secret"]
    autoscaler = raycluster["spec"]["autoscalerOptions"]["env"]
    for name, env in {"autoscaler": autoscaler, **{n: c["env"] for n, c in _containers(raycluster).items()}}.items():
        assert _plain(env)["RAY_AUTH_MODE"] == "token", name
        assert "RAY_AUTH_TOKEN" not in _plain(env), name
        assert _secret_refs(env)["RAY_AUTH_TOKEN"] == {"name": secret, "key": "auth_token"}, name
    secret_resource = ray.resource("kubernetes_secret_v1", "ray_auth")
    assert secret_resource["metadata"][0]["name"] == "${local.ray_auth_secret}"
    assert secret_resource["data"] == {"auth_token": "${random_password.ray_auth_token.result}"}
    token = ray.resource("random_password", "ray_auth_token")
    assert token["length"] >= 32 and token["special"] is False


def test_the_database_url_reaches_only_the_api_pool_and_by_reference(raycluster: dict, tf: tf_hcl.Terraform,
                                                                    ray: tf_hcl.Module) -> None:
    # The flows gateway and run actors (fnplatform.flows) run in the api pool: the head and the api group.
    secret = ray.locals["database_url_secret"]
    for name, container in _containers(raycluster).items():
        refs = _secret_refs(container["env"])
        if name in {"head", "api"}:
            assert refs[DATABASE_URL_ENV] == {"name": secret, "key": "url"}, name
        else:
            assert DATABASE_URL_ENV not in refs, name
        assert not SECRET_NAMES & set(_plain(container["env"])), name
    assert ray.resource("kubernetes_secret_v1", "database_url")["data"] == {"url": "${var.database_url}"}
    assert ray.variables["database_url"]["sensitive"] is True
    assert tf.module_call(tf.prod, "ray")["database_url"] == "${module.registry.database_url}"
    assert "postgresql" not in tf.render("ray", "raycluster.yaml.tftpl")


def test_the_bootstrap_admin_key_is_a_random_secret_the_platform_accepts(tf: tf_hcl.Terraform, ray: tf_hcl.Module) -> None:
    key = ray.resource("random_password", "admin_key")
    # special = false: letters and digits only, all in what FN_ADMIN_KEY allows.
    assert key["special"] is False and set("aZ09") <= ADMIN_KEY_CHARS
    assert key["length"] >= ADMIN_KEY_MIN_LEN
    secret = ray.resource("kubernetes_secret_v1", "admin_key")
    assert secret["data"] == {"api_key": "${random_password.admin_key.result}"}
    assert secret["metadata"][0]["name"] == "${local.admin_key_secret}"
    assert "admin_key_secret" in tf.prod.outputs


def test_the_control_plane_reads_no_secret_from_aws(ray: tf_hcl.Module) -> None:
    actions = {a for s in ray.data("aws_iam_policy_document", "control_plane")["statement"] for a in s["actions"]}
    assert not {a for a in actions if a.startswith("secretsmanager:")}
    assert "database_url_secret_arn" not in ray.variables


# --- network policies --------------------------------------------------------------------------------


def _policies(ray: tf_hcl.Module) -> dict[str, dict]:
    return {name: body["spec"][0] for _, name, body in ray.resources("kubernetes_network_policy_v1")}


def test_vpc_cni_enforces_network_policies(tf: tf_hcl.Terraform) -> None:
    addon = tf.modules["eks"].resource("aws_eks_addon", "networking")
    assert addon["configuration_values"] == (
        '${each.value == "vpc-cni" ? jsonencode({enableNetworkPolicy = "true"}) : null}')


def test_nothing_reaches_the_namespace_unless_a_policy_admits_it(ray: tf_hcl.Module) -> None:
    policies = _policies(ray)
    assert set(policies) == {"default_deny", "ray_internal", "serve_ingress", "control_plane_ingress",
                             "control_plane_from_scraper"}
    deny = policies["default_deny"]
    assert deny["pod_selector"] == [{}] and deny["policy_types"] == ["Ingress"] and "ingress" not in deny
    for spec in policies.values():
        assert spec["policy_types"] == ["Ingress"]


def test_only_platform_pods_reach_rays_ports(ray: tf_hcl.Module, raycluster: dict) -> None:
    spec = _policies(ray)["ray_internal"]
    assert spec["pod_selector"][0]["match_labels"] == "${local.ray_pods}"
    assert ray.locals["ray_pods"] == {"ray.io/cluster": "${var.name}"}
    rule = spec["ingress"][0]
    assert "ports" not in rule  # GCS, client, dashboard and Ray's randomly chosen node/object/worker ports
    peers = [f["pod_selector"][0]["match_labels"] for f in rule["from"]]
    assert peers == ["${local.ray_pods}", "${local.control_plane_pods}"]
    assert all(set(f) == {"pod_selector"} for f in rule["from"])  # no ip_block, no other namespace
    # The labels the selectors use are on the pods: KubeRay's ray.io/cluster, and the control plane's own.
    assert raycluster["metadata"]["name"] == "fn"
    template = ray.resource("kubernetes_deployment_v1", "control_plane")["spec"][0]["template"][0]["metadata"][0]
    assert ray.locals["control_plane_pods"] == {"app.kubernetes.io/name": "${local.control_plane_name}"}
    assert template["labels"]["app.kubernetes.io/name"] == "${local.control_plane_name}"


@pytest.mark.parametrize(("policy", "selector", "port"), [
    ("serve_ingress", "${local.ray_head_pod}", "${local.serve_port}"),
    ("control_plane_ingress", "${local.control_plane_pods}", "${var.control_plane.port}"),
])
def test_load_balancers_reach_only_the_http_ports(ray: tf_hcl.Module, policy: str, selector: str, port: str) -> None:
    spec = _policies(ray)[policy]
    assert spec["pod_selector"][0]["match_labels"] == selector
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    source = rule["dynamic"][0]["from"]
    assert source["for_each"] == "${var.internal_client_cidrs}"
    assert source["content"][0]["ip_block"] == [{"cidr": "${from.value}"}]
    assert ray.locals["ray_head_pod"] == {"ray.io/cluster": "${var.name}", "ray.io/node-type": "head"}


# --- S3: the Ray pods write flow blobs only ------------------------------------------------------------


def test_the_ray_write_prefix_is_the_codes_blob_prefix(ray: tf_hcl.Module, raycluster: dict) -> None:
    assert ray.locals["flow_blobs_prefix"] == BLOB_PREFIX
    for kind in ("inputs", "steps"):
        assert blob_key("run1", kind, "x").startswith(BLOB_PREFIX)
    assert not BLOB_PREFIX.startswith("bundles")
    statement = next(s for s in ray.data("aws_iam_policy_document", "ray")["statement"] if s.get("sid") == "WriteFlowBlobs")
    assert statement["resources"] == ["${var.bundles_bucket_arn}/${local.flow_blobs_prefix}*"]
    # Keys land at the bucket's root: no FN_S3_PREFIX that would move them out from under the grant.
    for container in _containers(raycluster).values():
        assert "FN_S3_PREFIX" not in _plain(container["env"])
    control_plane = ray.resource("kubernetes_deployment_v1", "control_plane")["spec"][0]["template"][0]["spec"][0]
    assert "FN_S3_PREFIX" not in {e["name"] for e in control_plane["container"][0]["env"]}


# --- TLS on the load balancers --------------------------------------------------------------------------


def test_tls_is_optional_and_then_the_only_listener(tf: tf_hcl.Terraform, ray: tf_hcl.Module) -> None:
    assert ray.variables["tls_certificate_arn"]["default"] == ""
    assert tf.prod.variables["tls_certificate_arn"]["default"] == ""
    assert tf.module_call(tf.prod, "ray")["tls_certificate_arn"] == "${var.tls_certificate_arn}"
    locals_ = ray.locals
    assert locals_["tls"] == '${var.tls_certificate_arn != ""}'
    assert locals_["tls_annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "${var.tls_certificate_arn}",
        "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "443",
        "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
    assert locals_["lb_annotations"] == "${merge(local.internal_nlb_annotations, local.tls ? local.tls_annotations : {})}"
    assert locals_["serve_lb_port"] == "${local.tls ? 443 : local.serve_port}"
    assert locals_["control_plane_lb_port"] == "${local.tls ? 443 : var.control_plane.port}"
    # One listener per load balancer: with a certificate the plaintext port is gone, not redirected.
    for name in ("serve", "control_plane"):
        service = ray.resource("kubernetes_service_v1", name)
        assert len(service["spec"][0]["port"]) == 1, name
        assert service["metadata"][0]["annotations"] == "${local.lb_annotations}", name


@pytest.mark.parametrize("variables", ["modules/ray", "envs/prod"])
def test_the_certificate_validation_accepts_acm_arns_only(tf: tf_hcl.Terraform, variables: str) -> None:
    import re

    module = tf.all_modules()[variables]
    condition = module.variables["tls_certificate_arn"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(\^[^"]+)", var\.tls_certificate_arn\)', condition)
    assert pattern, condition
    regex = re.compile(pattern.group(1).replace("\\\\", "\\"))
    assert regex.fullmatch("arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-4a4b-8c8d-0123456789ab")
    assert not regex.fullmatch("arn:aws:iam::123456789012:server-certificate/fn")
    assert condition.startswith('${var.tls_certificate_arn == "" ||')


def test_the_secrets_master_key_survives_restarts_and_only_the_control_plane_has_it(tf: tf_hcl.Terraform,
                                                                                   ray: tf_hcl.Module) -> None:
    # 32 random bytes as 64 hex digits: the format FN_SECRETS_KEY takes (fnplatform.storage.secrets).
    assert ray.resource("random_id", "secrets_key")["byte_length"] == 32
    secret = ray.resource("kubernetes_secret_v1", "secrets_key")
    assert secret["data"] == {"key": "${random_id.secrets_key.hex}"}
    assert secret["metadata"][0]["name"] == "${local.secrets_key_secret}"
    assert "FN_SECRETS_KEY" not in tf.render("ray", "raycluster.yaml.tftpl")  # no Ray pod gets it
