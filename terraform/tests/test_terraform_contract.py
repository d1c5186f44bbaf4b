"""The contract between terraform/ and the platform, checked offline on the parsed HCL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tf_hcl
import yaml

from fnplatform.pools import DEFAULT_POOLS, NODE_POOL_CAPACITY, pool_resource

RAY_INTERNAL_PORTS = {6379, 8265, 10001}  # GCS, dashboard, Ray client: never exposed
SERVE_PORT = 8000
TLS_PORT = 443
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


def _node_pools(tf: tf_hcl.Terraform) -> dict[str, dict]:
    pools = {}
    for template, _ in tf.templatefile_calls("karpenter"):
        if template.startswith("nodepool-"):
            doc = yaml.safe_load(tf.render("karpenter", template))
            assert doc["apiVersion"] == "karpenter.sh/v1" and doc["kind"] == "NodePool"
            pools[doc["metadata"]["name"]] = doc
    return pools


def _requirement(pool: dict, key: str) -> dict:
    matches = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    assert len(matches) == 1, f"{pool['metadata']['name']}: expected one {key} requirement"
    return matches[0]


# --- pools ---------------------------------------------------------------------------------------


def test_the_platform_pools_each_have_a_karpenter_node_pool(tf: tf_hcl.Terraform) -> None:
    assert set(_node_pools(tf)) == set(DEFAULT_POOLS)


def test_env_root_pool_resources_are_the_platforms_names(tf: tf_hcl.Terraform) -> None:
    locals_ = tf.prod.locals
    assert locals_["pool_resources"] == {pool: pool_resource(pool) for pool in DEFAULT_POOLS}
    assert locals_["node_pool_capacity"] == NODE_POOL_CAPACITY
    call = tf.module_call(tf.prod, "ray")
    assert call["pool_resources"] == "${local.pool_resources}"
    assert call["node_pool_capacity"] == "${local.node_pool_capacity}"


def test_gpu_pool_is_tainted_limited_and_gpu_only(tf: tf_hcl.Terraform) -> None:
    gpu = _node_pools(tf)["gpu"]
    spec = gpu["spec"]
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in spec["template"]["spec"]["taints"]
    assert int(spec["limits"]["nvidia.com/gpu"]) >= 1
    families = _requirement(gpu, "karpenter.k8s.aws/instance-family")
    assert families["operator"] == "In" and families["values"]
    assert all(re.fullmatch(r"(g|p)[0-9]+[a-z]*", f) for f in families["values"]), families["values"]
    assert spec["disruption"]["consolidationPolicy"] in {"WhenEmpty", "WhenEmptyOrUnderutilized"}


def test_only_the_gpu_pool_is_tainted(tf: tf_hcl.Terraform) -> None:
    for name, pool in _node_pools(tf).items():
        if name != "gpu":
            assert not pool["spec"]["template"]["spec"].get("taints"), name


def test_every_pool_has_cpu_and_memory_limits(tf: tf_hcl.Terraform) -> None:
    for name, pool in _node_pools(tf).items():
        limits = pool["spec"]["limits"]
        assert int(limits["cpu"]) > 0, name
        assert re.fullmatch(r"[0-9]+Gi", limits["memory"]), name


def test_capacity_types(tf: tf_hcl.Terraform) -> None:
    pools = _node_pools(tf)
    assert _requirement(pools["api"], "karpenter.sh/capacity-type")["values"] == ["on-demand"]
    assert set(_requirement(pools["cpu"], "karpenter.sh/capacity-type")["values"]) == {"spot", "on-demand"}


def test_cpu_and_gpu_pools_can_reach_zero_nodes(tf: tf_hcl.Terraform) -> None:
    # A v1 NodePool has no minimum; static replicas would pin nodes. Empty nodes are removed.
    for name in ("cpu", "gpu"):
        spec = _node_pools(tf)[name]["spec"]
        assert "replicas" not in spec, name
        assert spec["disruption"]["consolidationPolicy"] in {"WhenEmpty", "WhenEmptyOrUnderutilized"}
        assert spec["disruption"]["consolidateAfter"] != "Never", name


def test_node_pool_limits_default_from_typed_pools_variable(tf: tf_hcl.Terraform) -> None:
    pools = tf.modules["karpenter"].variables["pools"]["default"]
    assert set(pools) == set(DEFAULT_POOLS)
    assert pools["gpu"]["gpu_limit"] >= 1


def test_karpenter_discovers_the_networks_subnets(tf: tf_hcl.Terraform) -> None:
    network = tf.modules["network"].resource("aws_subnet", "private")
    assert network["tags"]["karpenter.sh/discovery"] == "${var.cluster_name}"
    assert network["tags"]["kubernetes.io/role/internal-elb"] == "1"
    public = tf.modules["network"].resource("aws_subnet", "public")
    assert public["map_public_ip_on_launch"] is False
    assert "kubernetes.io/role/elb" not in public.get("tags", {})
    # The same name tags the subnets and names the cluster that Karpenter's node classes use.
    assert tf.module_call(tf.prod, "network")["cluster_name"] == tf.module_call(tf.prod, "eks")["name"]


# --- bundles bucket --------------------------------------------------------------------------------


def test_bundles_bucket_is_kms_encrypted_with_a_rotating_key(tf: tf_hcl.Terraform) -> None:
    bundles = tf.modules["bundles"]
    sse = bundles.resource("aws_s3_bucket_server_side_encryption_configuration", "bundles")
    assert sse["bucket"] == "${aws_s3_bucket.bundles.id}"
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"] == "${aws_kms_key.bundles.arn}"
    assert bundles.resource("aws_kms_key", "bundles")["enable_key_rotation"] is True


def test_bundles_bucket_is_versioned_private_and_tls_only(tf: tf_hcl.Terraform) -> None:
    bundles = tf.modules["bundles"]
    for bucket in ("bundles", "logs"):
        ref = f"${{aws_s3_bucket.{bucket}.id}}"
        versioning = bundles.resource("aws_s3_bucket_versioning", bucket)
        assert versioning["bucket"] == ref
        assert versioning["versioning_configuration"][0]["status"] == "Enabled"
        pab = bundles.resource("aws_s3_bucket_public_access_block", bucket)
        assert pab["bucket"] == ref
        for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert pab[flag] is True, (bucket, flag)
        ownership = bundles.resource("aws_s3_bucket_ownership_controls", bucket)
        assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
        policy = bundles.data("aws_iam_policy_document", bucket)
        tls = [s for s in policy["statement"] if s.get("sid") == "DenyInsecureTransport"]
        assert tls and tls[0]["effect"] == "Deny"
        assert tls[0]["condition"][0]["variable"] == "aws:SecureTransport"
        assert tls[0]["condition"][0]["values"] == ["false"]


def test_bundles_bucket_lifecycle_and_access_logging(tf: tf_hcl.Terraform) -> None:
    bundles = tf.modules["bundles"]
    rules = bundles.resource("aws_s3_bucket_lifecycle_configuration", "bundles")["rule"]
    assert any("noncurrent_version_expiration" in r and r["status"] == "Enabled" for r in rules)
    assert any("abort_incomplete_multipart_upload" in r and r["status"] == "Enabled" for r in rules)
    logging = bundles.resource("aws_s3_bucket_logging", "bundles")
    assert logging["bucket"] == "${aws_s3_bucket.bundles.id}"
    assert logging["target_bucket"] == "${aws_s3_bucket.logs.id}"


# --- providers, backend, variables, outputs ---------------------------------------------------------


def _provider_types_used(module: tf_hcl.Module) -> set[str]:
    used = set()
    for rtype, _, _ in module.resources():
        used.add(rtype.split("_", 1)[0])
    for _, block in module.blocks("data"):
        used.update(t.split("_", 1)[0] for t in block)
    return used


def test_providers_and_terraform_are_pinned(tf: tf_hcl.Terraform) -> None:
    for name, module in tf.all_modules().items():
        blocks = module.terraform_blocks()
        assert len(blocks) == 1, f"{name}: one terraform block"
        block = blocks[0]
        assert re.fullmatch(r"(~>|=)\s*[0-9]+\.[0-9]+(\.[0-9]+)?", block["required_version"]), name
        providers = block["required_providers"][0]
        for provider, spec in providers.items():
            assert re.fullmatch(r"(~>\s*|=\s*)?[0-9]+\.[0-9]+(\.[0-9]+)?", spec["version"]), (name, provider)
            assert "/" in spec["source"], (name, provider)
        assert _provider_types_used(module) <= set(providers), f"{name}: a used provider is not declared"


def test_backend_is_s3_with_native_locking(tf: tf_hcl.Terraform) -> None:
    backends = [b for block in tf.prod.terraform_blocks() for b in block.get("backend", [])]
    assert len(backends) == 1 and set(backends[0]) == {"s3"}
    s3 = backends[0]["s3"]
    assert s3["use_lockfile"] is True
    assert s3["encrypt"] is True
    assert "dynamodb_table" not in s3


def test_aws_provider_has_default_tags(tf: tf_hcl.Terraform) -> None:
    providers = [p for _, block in tf.prod.blocks("provider") for p in [block]]
    aws = [p["aws"] for p in providers if "aws" in p]
    assert len(aws) == 1
    assert aws[0]["default_tags"], "aws provider needs default_tags"


def test_every_variable_is_typed_and_described(tf: tf_hcl.Terraform) -> None:
    for name, module in tf.all_modules().items():
        for var, body in module.variables.items():
            assert body.get("type"), f"{name}: variable {var} has no type"
            assert isinstance(body.get("description"), str) and len(body["description"]) > 10, (
                f"{name}: variable {var} has no description"
            )


def test_every_output_is_described(tf: tf_hcl.Terraform) -> None:
    for name, module in tf.all_modules().items():
        for out, body in module.outputs.items():
            assert body.get("description"), f"{name}: output {out} has no description"


def test_env_root_outputs_what_the_platform_needs(tf: tf_hcl.Terraform) -> None:
    outputs = tf.prod.outputs
    for needed in (
        "bundles_bucket_name",
        "cluster_name",
        "cluster_endpoint",
        "serve_internal_endpoint",
        "control_plane_endpoint",
        "database_url_secret_arn",
    ):
        assert needed in outputs, needed


def test_modules_have_readmes(tf: tf_hcl.Terraform) -> None:
    assert (tf.root / "README.md").is_file()
    for name in tf.modules:
        assert (tf.root / "modules" / name / "README.md").is_file(), name


def test_templates_use_only_plain_placeholders_and_all_are_passed(tf: tf_hcl.Terraform) -> None:
    for module_name in ("karpenter", "ray"):
        for template, items in tf.templatefile_calls(module_name):
            text = (tf.root / "modules" / module_name / template).read_text()
            assert "%{" not in text and "$${" not in text, template
            names = set(tf_hcl.template_placeholders(text))
            assert all(tf_hcl.IDENTIFIER_RE.match(n) for n in names), (template, names)
            assert names == set(items), (template, names ^ set(items))


# --- exposure ---------------------------------------------------------------------------------------


def _all_resources(tf: tf_hcl.Terraform):
    for name, module in tf.all_modules().items():
        for rtype, rname, body in module.resources():
            yield name, rtype, rname, body


def _cidrs(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return list(value or [])


def _port(tf: tf_hcl.Terraform, module: tf_hcl.Module, value: object) -> int:
    if tf_hcl.is_expression(value):
        value = tf.resolve(str(value)[2:-1], module, None, module)
    assert isinstance(value, int), f"cannot resolve port {value!r}"
    return value


def test_no_security_group_is_open_to_the_internet(tf: tf_hcl.Terraform) -> None:
    checked = 0
    modules = tf.all_modules()
    for name, rtype, rname, body in _all_resources(tf):
        if rtype == "aws_vpc_security_group_ingress_rule":
            checked += 1
            assert body.get("cidr_ipv4") not in OPEN_CIDRS and body.get("cidr_ipv6") not in OPEN_CIDRS, rname
            assert body.get("referenced_security_group_id"), f"{name}: {rname} must admit a security group, not CIDRs"
            ports = range(_port(tf, modules[name], body["from_port"]), _port(tf, modules[name], body["to_port"]) + 1)
            assert not RAY_INTERNAL_PORTS & set(ports), (name, rname)
        elif rtype == "aws_security_group_rule" and body.get("type") == "ingress":
            checked += 1
            assert not OPEN_CIDRS & set(_cidrs(body.get("cidr_blocks"))), (name, rname)
        elif rtype == "aws_security_group":
            checked += 1
            for rule in body.get("ingress", []):
                assert not OPEN_CIDRS & set(_cidrs(rule.get("cidr_blocks"))), (name, rname)
    assert checked, "expected at least one security group or rule to check"


def lb_ports(tf: tf_hcl.Terraform, module: tf_hcl.Module, value: str) -> set[int]:
    """The ports a Service port expression can take: both branches of a `local.tls ? a : b` local."""
    expr = value[2:-1]
    if expr.startswith("local.") and tf_hcl.is_expression(module.locals.get(expr[6:])):
        inner = module.locals[expr[6:]][2:-1]
        if inner.startswith("local.tls ?"):
            branches = inner.removeprefix("local.tls ?").split(":")
            return {tf.resolve(b, module, None, module) for b in branches}
    return {tf.resolve(expr, module, None, module)}


def test_services_expose_only_serve_and_the_control_plane_internally(tf: tf_hcl.Terraform) -> None:
    ray = tf.modules["ray"]
    control_plane_port = ray.variables["control_plane"]["default"]["port"]
    services = ray.resources("kubernetes_service_v1")
    # control_plane_internal: the scraper's in-cluster address (metrics.tf), a ClusterIP on the API's port.
    assert {n for _, n, _ in services} == {"serve", "control_plane", "control_plane_internal"}
    internal = ray.resource("kubernetes_service_v1", "control_plane_internal")
    assert internal["spec"][0]["type"] == "ClusterIP" and "annotations" not in internal["metadata"][0]
    annotations = ray.locals["internal_nlb_annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert ray.locals["lb_annotations"].startswith("${merge(local.internal_nlb_annotations,")
    for name, module in tf.all_modules().items():
        for rtype, rname, body in module.resources():
            if rtype not in ("kubernetes_service", "kubernetes_service_v1"):
                continue
            spec = body["spec"][0]
            ports = set().union(*(lb_ports(tf, module, p["port"]) for p in spec["port"]))
            assert ports <= {SERVE_PORT, control_plane_port, TLS_PORT}, (name, rname, ports)
            assert not RAY_INTERNAL_PORTS & ports, (name, rname)
            if spec.get("type") in ("LoadBalancer", "NodePort"):
                assert body["metadata"][0]["annotations"] == "${local.lb_annotations}", rname
                assert spec["load_balancer_source_ranges"] == "${var.internal_client_cidrs}", rname
    serve = ray.resource("kubernetes_service_v1", "serve")["spec"][0]
    assert lb_ports(tf, ray, serve["port"][0]["port"]) == {SERVE_PORT, TLS_PORT}
    assert serve["port"][0]["target_port"] == "${local.serve_port}" and ray.locals["serve_port"] == SERVE_PORT
    assert serve["selector"]["ray.io/node-type"] == "head"


def test_internal_client_cidrs_validation_rejects_the_internet(tf: tf_hcl.Terraform) -> None:
    validation = tf.modules["ray"].variables["internal_client_cidrs"]["validation"][0]
    assert '!contains(var.internal_client_cidrs, "0.0.0.0/0")' in validation["condition"]
    call = tf.module_call(tf.prod, "ray")
    assert call["internal_client_cidrs"].startswith("${concat([module.network.vpc_cidr_block]")


def test_eks_api_is_private_by_default_logged_and_encrypted(tf: tf_hcl.Terraform) -> None:
    eks = tf.modules["eks"]
    cluster = eks.resource("aws_eks_cluster", "this")
    vpc = cluster["vpc_config"][0]
    assert vpc["endpoint_private_access"] is True
    assert vpc["endpoint_public_access"] == "${var.endpoint_public_access}"
    assert eks.variables["endpoint_public_access"]["default"] is False
    assert tf.prod.variables["cluster_endpoint_public_access"]["default"] is False
    assert set(cluster["enabled_cluster_log_types"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    assert cluster["encryption_config"][0]["resources"] == ["secrets"]
    assert eks.resource("aws_kms_key", "eks")["enable_key_rotation"] is True


def test_ray_image_validation_rejects_unpinned_images(tf: tf_hcl.Terraform) -> None:
    condition = tf.modules["ray"].variables["ray_image"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(\^[^"]+)", var\.ray_image\)', condition)
    assert pattern, condition
    regex = re.compile(pattern.group(1).replace("\\\\", "\\"))

    def accepted(image: str) -> bool:
        return bool(regex.fullmatch(image)) and not image.endswith(":latest")

    assert accepted("123456789012.dkr.ecr.us-east-1.amazonaws.com/fn-ray:2.60.0-py311")
    assert accepted("rayproject/ray@sha256:" + "a" * 64)
    assert not accepted("rayproject/ray")
    assert not accepted("rayproject/ray:latest")


# --- identities and data ------------------------------------------------------------------------------


def _actions(doc: dict) -> set[str]:
    return {a for s in doc.get("statement", []) for a in s.get("actions", [])}


def test_ray_pods_read_bundles_write_only_flow_blobs_and_the_control_plane_writes(tf: tf_hcl.Terraform) -> None:
    ray = tf.modules["ray"]
    ray_doc = ray.data("aws_iam_policy_document", "ray")
    assert _actions(ray_doc) == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "s3:PutObject", "kms:GenerateDataKey"}
    # Writes only under blobs/ (terraform/tests/test_terraform_security.py ties it to the code) and the
    # opt-in prefixes (empty by default), never bundles/.
    writes = [s for s in ray_doc["statement"] if "s3:PutObject" in s["actions"]]
    assert writes == [{"sid": "WriteFlowBlobs", "actions": ["s3:PutObject"],
                       "resources": ["${var.bundles_bucket_arn}/${local.flow_blobs_prefix}*"]}]
    opt_in = ray_doc["dynamic"][0]["statement"]
    assert opt_in["for_each"] == "${length(var.ray_write_prefixes) > 0 ? [1] : []}"
    assert opt_in["content"][0]["actions"] == ["s3:PutObject"]
    assert ray.variables["ray_write_prefixes"]["default"] == []
    cp = ray.data("aws_iam_policy_document", "control_plane")
    assert _actions(cp) == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    for doc in (ray_doc, cp):
        for statement in doc["statement"]:
            assert "*" not in statement.get("resources", []), statement
    associations = {
        b["service_account"]: b["role_arn"] for _, _, b in ray.resources("aws_eks_pod_identity_association")
    }
    assert associations == {
        "${local.ray_sa}": "${aws_iam_role.ray.arn}",
        "${local.control_plane_sa}": "${aws_iam_role.control_plane.arn}",
    }


def test_control_plane_is_wired_to_ray_s3_and_the_database(tf: tf_hcl.Terraform) -> None:
    ray = tf.modules["ray"]
    deployment = ray.resource("kubernetes_deployment_v1", "control_plane")
    pod = deployment["spec"][0]["template"][0]["spec"][0]
    assert pod["node_selector"] == {"karpenter.sh/nodepool": "api"}
    container = pod["container"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secrets = {e["name"]: e["value_from"][0]["secret_key_ref"][0] for e in container["env"] if "value_from" in e}
    assert env["FN_RAY_ADDRESS"] == "${local.ray_address}"
    assert ray.locals["ray_address"].startswith("ray://${local.head_service}")
    assert env["FN_S3_BUCKET"] == "${var.bundles_bucket_name}"
    assert env["AWS_REGION"] == "${var.region}"
    assert env["RAY_AUTH_MODE"] == "token"
    # Secrets only by reference to the Kubernetes Secrets of secrets.tf.
    assert secrets == {
        "FN_DATABASE_URL": {"name": "${local.database_url_secret}", "key": "url"},
        "FN_ADMIN_KEY": {"name": "${local.admin_key_secret}", "key": "api_key"},
        "FN_METRICS_KEY": {"name": "${local.metrics_key_secret}", "key": "api_key"},
        "FN_SECRETS_KEY": {"name": "${local.secrets_key_secret}", "key": "key"},
        "RAY_AUTH_TOKEN": {"name": "${local.ray_auth_secret}", "key": "auth_token"},
    }
    assert container["command"] == ["fnctl"]
    # fnctl server: API on the Service's port, Serve's proxy on 0.0.0.0:8000 (the fn-serve Service).
    settings = ray.variables["control_plane"]["default"]
    args = settings["args"]
    assert args[0] == "server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options == {
        "--api-host": "0.0.0.0",
        "--api-port": str(settings["port"]),
        "--http-host": "0.0.0.0",
        "--http-port": str(SERVE_PORT),
    }
    assert container["args"] == "${var.control_plane.args}"


def test_registry_database_is_private_encrypted_and_protected(tf: tf_hcl.Terraform) -> None:
    registry = tf.modules["registry"]
    db = registry.resource("aws_db_instance", "registry")
    assert db["engine"] == "postgres"
    assert db["storage_encrypted"] is True and db["kms_key_id"] == "${aws_kms_key.registry.arn}"
    assert db["publicly_accessible"] is False
    assert db["deletion_protection"] == "${var.deletion_protection}"
    assert registry.variables["deletion_protection"]["default"] is True
    assert db["iam_database_authentication_enabled"] is True
    assert db["performance_insights_enabled"] is True
    assert db["performance_insights_kms_key_id"] == "${aws_kms_key.registry.arn}"
    assert db["backup_retention_period"] == "${var.backup_retention_days}"
    assert registry.variables["backup_retention_days"]["default"] >= 7
    params = {p["name"]: p["value"] for p in registry.resource("aws_db_parameter_group", "registry")["parameter"]}
    assert params["rds.force_ssl"] == "1"
    secret = registry.resource("aws_secretsmanager_secret", "database_url")
    assert secret["kms_key_id"] == "${aws_kms_key.registry.arn}"
    version = registry.resource("aws_secretsmanager_secret_version", "database_url")
    assert version["secret_string"] == "${local.database_url}"
    url = registry.locals["database_url"]
    assert "postgresql+psycopg://" in url and "sslmode=require" in url
    assert registry.outputs["database_url"]["sensitive"] is True
    assert tf.module_call(tf.prod, "registry")["subnet_ids"] == "${module.network.private_subnet_ids}"


def test_kms_keys_rotate(tf: tf_hcl.Terraform) -> None:
    keys = [(name, rname, body) for name, rtype, rname, body in _all_resources(tf) if rtype == "aws_kms_key"]
    assert len(keys) >= 4
    for name, rname, body in keys:
        assert body["enable_key_rotation"] is True, (name, rname)
        assert body.get("policy"), (name, rname)


def test_checkov_skips_are_each_justified() -> None:
    config = Path(__file__).resolve().parents[2] / "terraform" / ".checkov.yaml"
    lines = config.read_text().splitlines()
    parsed = yaml.safe_load("\n".join(lines))
    skips = parsed.get("skip-check", [])
    assert skips, "expected the skip list to exist"
    for skip in skips:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {skip}")
        above = lines[index - 1].strip()
        # Either a comment right above, or part of a group introduced by one.
        j = index - 1
        while lines[j].strip().startswith("- CKV"):
            j -= 1
        assert lines[j].strip().startswith("#"), f"{skip} has no justification comment ({above!r})"
    assert json.dumps(parsed["framework"]) == '["terraform"]'


@pytest.mark.parametrize("path", ["envs/prod/backend.hcl.example", "envs/prod/terraform.tfvars.example"])
def test_examples_exist(tf: tf_hcl.Terraform, path: str) -> None:
    assert (tf.root / path).is_file()
