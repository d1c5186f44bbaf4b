"""A function's requirements reach its replicas: met by the pool's environment, with no pip virtualenv at all; otherwise
through Ray's runtime_env pip, and pip's own error fails the deploy."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from harness import Platform

import fn

pytestmark = pytest.mark.slow


def test_satisfied_requirement_deploys_and_missing_one_fails_with_pips_message(platform: Platform, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.mkdir()
    # 'six' is already in the platform's environment: the replica runs in it, no virtualenv built
    (ok / "main.py").write_text(textwrap.dedent("""
        import sys

        import fn

        @fn.function(cpus=0.25, requirements=["six>=1.0", "fn-never-installed-zz9 ; python_version < '3'"])
        def with_six() -> list[str]:
            import six
            return [six.__name__, sys.prefix]
    """))
    job = platform.deploy(ok)
    assert job["exit_code"] == 0, job["output"]
    assert fn.call("with-six") == ["six", sys.prefix]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.py").write_text("import fn\n\n@fn.function(cpus=0.25)\ndef with_nothing() -> int:\n    return 1\n")
    (bad / "requirements.txt").write_text("fn-no-such-package-zz9==0.0.1\n")
    job = platform.deploy(bad)
    assert job["exit_code"] == 1
    error = job["results"]["with-nothing"]["error"]
    assert "fn-no-such-package-zz9" in error
    assert "No matching distribution" in error or "Could not find a version" in error
    platform.fnctl("rm", "with-six")
