"""Secrets end to end: a function deployed with secrets=[...] sees the value in its environment, the value is
nowhere else (registry file, store, API answers, fnctl, logs, Ray's files and Serve's config), and changing the
secret restarts the function with the new value."""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from harness import Platform, wait_for

from fnctl.main import cli

NAME = "itest-token"
FUNCTION = "secret-check"


def _files_containing(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_symlink() or not path.is_file():
                continue
            if needle in path.read_bytes():
                found.append(str(path))
        except OSError:  # a file Ray removed meanwhile, or a socket
            continue
    return found


def _store_objects(platform: Platform) -> list[bytes]:
    config = platform.control.store.config
    s3 = boto3.client("s3", endpoint_url=config.endpoint, region_name=config.region or "us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.bucket)
            for o in page.get("Contents", [])]
    return [s3.get_object(Bucket=config.bucket, Key=key)["Body"].read() for key in keys]


def _set(value: str) -> str:
    result = CliRunner().invoke(cli, ["secrets", "set", NAME, "API_TOKEN=-"], input=value)
    assert result.exit_code == 0, result.output
    return result.output


def _matches(platform: Platform, value: str) -> bool:
    with platform.client() as client:
        response = client.post(f"/{FUNCTION}", json={"expected": value})
    return response.status_code == 200 and response.json() is True


@pytest.mark.slow
def test_a_secret_reaches_the_replica_and_nothing_else_and_a_change_rolls_it(
        platform: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    value = f"itest-{uuid.uuid4().hex}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text(textwrap.dedent(f"""
        import os

        import fn

        AT_IMPORT = os.environ.get("API_TOKEN")


        @fn.function(name="{FUNCTION}", secrets=["{NAME}"], cpus=0.25, min_replicas=1)
        def check(expected: str) -> bool:
            return os.environ.get("API_TOKEN") == expected == AT_IMPORT
    """))

    assert value not in _set(value)
    job = platform.deploy(project)
    assert job["exit_code"] == 0 and job["state"] == "succeeded", job["output"]
    assert _matches(platform, value)

    # nowhere but in the replica
    needle = value.encode()
    answers = [platform.fnctl(*args).output for args in (
        ["describe", FUNCTION], ["describe", FUNCTION, "--json"], ["ls", "--json"], ["secrets", "ls", "--json"],
        ["logs", FUNCTION, "--json"])]
    assert json.loads(answers[1])["spec"]["secrets"] == [NAME]
    with platform.client() as http:
        api = http.get(f"{platform.api_url}/v1/functions/{FUNCTION}").text + http.get(f"{platform.api_url}/v1/secrets").text
    import ray

    from fnplatform.serving import ray_compat
    from fnplatform.serving.hub import find_hub

    serve_config = json.dumps(ray_compat.serve_instance_details(), default=str)  # with each runtime env and init args
    topics = json.dumps([ray.get(find_hub().read.remote(topic)) for topic in ("functions", "keys")])
    assert NAME in [s["name"] for s in json.loads(answers[3])]
    for text in [*answers, api, serve_config, topics, job["output"], caplog.text]:
        assert value not in text
    assert not any(needle in blob for blob in _store_objects(platform))
    workdir = platform.home.parent  # FN_HOME (registry.db and its WAL, the key file) and Ray's temp dirs and logs
    assert _files_containing(workdir, needle) == []

    # a new value restarts the function with it
    new_value = f"itest-{uuid.uuid4().hex}"
    output = _set(new_value)
    assert f"restarting with the new values: {FUNCTION}" in output
    wait_for(lambda: _matches(platform, new_value), timeout=180, interval=1)
    assert not _matches(platform, value)
    assert _files_containing(workdir, new_value.encode()) == []

    # in use: removal is refused unless forced
    refused = CliRunner().invoke(cli, ["secrets", "rm", NAME])
    assert refused.exit_code == 1 and f"used by function '{FUNCTION}'" in refused.output
    assert platform.fnctl("rm", FUNCTION).exit_code == 0
    assert platform.fnctl("secrets", "rm", NAME).exit_code == 0
