"""Which requirements the running environment already meets (bundles.requirements): met ones need no pip virtualenv."""

from __future__ import annotations

from importlib import metadata

import pytest

from fnplatform.bundles.requirements import unsatisfied

PYDANTIC = metadata.version("pydantic")


@pytest.mark.parametrize("requirement", [
    "pydantic", f"pydantic=={PYDANTIC}", "pydantic>=2", "Pydantic>=2,<99", "PYDANTIC_CORE",
    "no-such-package-zz9 ; python_version < '3'",  # a marker that excludes it: pip skips it too
])
def test_met_requirements(requirement: str) -> None:
    assert unsatisfied([requirement]) == []


@pytest.mark.parametrize("requirement", [
    "no-such-package-zz9",
    "pydantic<2",
    f"pydantic!={PYDANTIC}",
    "pydantic[email]>=2",  # an extra's own dependencies: pip's to resolve
    "pydantic @ https://example.invalid/pydantic.whl",
    "-r other.txt",  # not a requirement this can read
    "pydantic>>2",
])
def test_requirements_left_to_pip(requirement: str) -> None:
    assert unsatisfied([requirement]) == [requirement]


def test_only_the_unmet_ones_are_returned_in_their_order() -> None:
    assert unsatisfied(["zz9-a", "pydantic", "zz9-b"]) == ["zz9-a", "zz9-b"]
