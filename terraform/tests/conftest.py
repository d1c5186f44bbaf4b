"""Fixtures for the offline Terraform checks (no terraform binary: HCL parsed by python-hcl2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The pool constants, blob keys and key rules come from the platform itself, never a copy. Prefer
# the installed packages; fall back to the source tree when the project is not installed.
try:
    import fn  # noqa: F401
    import fnplatform.pools  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the project was installed
    sys.path[:0] = [str(REPO_ROOT / "platform"), str(REPO_ROOT / "sdk")]

# The helper module beside this file, importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tf_hcl  # noqa: E402


@pytest.fixture(scope="session")
def tf() -> tf_hcl.Terraform:
    return tf_hcl.Terraform(REPO_ROOT / "terraform")
