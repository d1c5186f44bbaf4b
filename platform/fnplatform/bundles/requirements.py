"""Which of a function's requirements a node's Python environment already satisfies.

Ray builds a virtualenv for every distinct requirement set on every node, and pip resolves the set even when
everything is installed: tens of seconds per set (most of `fnctl deploy functions/auth`). A function whose
requirements the node's environment already meets runs without one, which is what the virtualenv would have
given it (Ray's pip environments see the node's site-packages). Checked on a node of the function's pool (the
deployer's check task), since that, not the control plane, is where the replica runs; a pool's nodes share one
image. Anything this cannot decide exactly (a URL, extras, an unparsable line) goes to pip as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement


def unsatisfied(requirements: Sequence[str]) -> list[str]:
    """The requirements this interpreter's environment does not meet, in their order."""
    return [text for text in requirements if not _satisfied(text)]


def _satisfied(text: str) -> bool:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return False
    if requirement.marker is not None and not requirement.marker.evaluate():
        return True  # pip would skip it here too
    if requirement.url or requirement.extras:
        return False  # an extra's own dependencies are pip's to resolve
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


__all__ = ["unsatisfied"]
