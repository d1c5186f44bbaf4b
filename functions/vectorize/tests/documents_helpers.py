"""Documents for the tests (built by samples/make_documents.py's functions) and the vectorize functions run in this
process by fn.testing.local(): the real MiniLM, OCR and Milvus Lite store, no Ray and no platform."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from vectorize_paths import VECTORIZE

import fn.testing


def samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vectorize_make_documents", VECTORIZE / "samples" / "make_documents.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@contextmanager
def local_functions(home: Path) -> Iterator[fn.testing.LocalPlatform]:
    """The vectorize functions in this process, with the store's Milvus Lite file under *home* (FN_HOME); the Milvus
    Lite server is released afterwards."""
    from milvus_lite.server_manager import server_manager_instance  # type: ignore[import-untyped]
    from vectorize import service  # noqa: F401 - declares the functions that fn.testing.local() finds

    try:
        with fn.testing.local() as platform:
            yield platform
    finally:
        server_manager_instance.release_server(str(home / "vectors" / "milvus.db"))


def ingest(pipeline: str, items: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return fn.call("vector-ingest", pipeline=pipeline, items=items, **options)  # type: ignore[no-any-return]


def search(collection: str, query: str, **options: Any) -> list[dict[str, Any]]:
    return fn.call("vector-search", collection=collection, query=query, **options)["results"]  # type: ignore[no-any-return]
