"""What ``fnctl vectorize ingest`` reads, as a stream: ``(where, load)`` per input, in a fixed order.

Nothing is read before its entry is loaded: a JSONL file a line at a time, a folder a file at a time,
a PDF a page at a time (PDFium reads the file as it needs), an S3 object when its entry comes. So a
source of any size costs the memory of one batch, and an entry can be passed over without reading it
(a resumed ingest passes over what the checkpoint says is done). ``load()`` returns the item, or a
string with the reason this input failed; load each entry before taking the next (a PDF's pages need
its file still open).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import click

from .documents import PDF_SUFFIXES, SCAN_SUFFIXES, pdf_entries, scan_item

TEXT_SUFFIXES = {".txt", ".md"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SUFFIXES = {"text": TEXT_SUFFIXES, "image": IMAGE_SUFFIXES, "document": PDF_SUFFIXES | SCAN_SUFFIXES}
JSONL_KINDS = {"text", "document"}  # an image goes as a file; a JSONL line of image_b64 works too, in a .jsonl SOURCE
MAX_LINE_BYTES = 32 * 1024 * 1024  # a JSONL line (a 20 MB file in base64 is 27 MB); longer ones fail, unread

Load = Callable[[], "dict[str, Any] | str"]
Entry = tuple[str, Load]


def entries(source: str, kind: str) -> Iterator[Entry]:
    """Every input of SOURCE (a folder, a .jsonl file, a document file, or s3://bucket/prefix), in a fixed order."""
    if source.startswith("s3://"):
        yield from _s3_entries(source, kind)
        return
    path = Path(source)
    if not path.exists():
        raise click.BadParameter(f"{source} does not exist", param_hint="SOURCE")
    if path.is_file():
        if kind == "document" and path.suffix.lower() in SUFFIXES["document"]:
            yield from _document(path, path.name, str(path))
            return
        if path.suffix.lower() != ".jsonl":
            also = ", a .pdf, .png or .jpg file" if kind == "document" else ""
            raise click.BadParameter(f"{source} is a file but not .jsonl; give a folder, a .jsonl file{also} or "
                                     f"s3://bucket/prefix", param_hint="SOURCE")
        with path.open("rb") as stream:
            yield from jsonl(str(path), stream)
        return
    suffixes = SUFFIXES[kind]
    # Only the paths are listed up front (sorted, so a resumed run meets the files in the same order).
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = file.relative_to(path).as_posix()
        suffix = file.suffix.lower()
        if suffix == ".jsonl" and kind in JSONL_KINDS:
            with file.open("rb") as stream:
                yield from jsonl(str(file), stream)
        elif kind == "document" and suffix in suffixes:
            yield from _document(file, rel, str(file))
        elif suffix in suffixes:
            yield str(file), functools.partial(_file_item, rel, file, kind)


def _document(path: Path, rel: str, where: str) -> Iterator[Entry]:
    """A PDF page by page (each page its own item), or a scan as one item."""
    if path.suffix.lower() in PDF_SUFFIXES:
        yield from pdf_entries(path, rel, where)
    else:
        yield where, lambda: scan_item(rel, where, path.read_bytes())


def file_item(rel: str, where: str, data: bytes, kind: str) -> dict[str, Any] | str:
    if kind == "document":
        return scan_item(rel, where, data)
    if kind == "image":
        return {"id": rel, "source": where, "image_b64": base64.b64encode(data).decode()}
    try:
        return {"id": rel, "source": where, "text": data.decode("utf-8")}
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"


def lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of *stream* one at a time, each read whole only when within *limit* bytes: a longer line is passed
    over a piece at a time and given as None."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def jsonl(where: str, stream: IO[bytes]) -> Iterator[Entry]:
    """One entry per non-blank line: the line's object, with ``source`` FILE:LINE unless it has one."""
    for number, line in enumerate(lines(stream), 1):
        if line is None:
            yield f"{where}:{number}", lambda: f"the line is over {MAX_LINE_BYTES:,} bytes; split the item"
            continue
        if not line.strip():
            continue
        yield f"{where}:{number}", functools.partial(_parse, line, f"{where}:{number}")


def _file_item(rel: str, file: Path, kind: str) -> Any:
    return file_item(rel, str(file), file.read_bytes(), kind)


def _parse(line: bytes, where: str) -> Any:
    """The item of a JSONL line, or what is wrong with it; a value that is not an object is returned as it is
    (vector-ingest fails it with the reason)."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if isinstance(item, dict):
        item.setdefault("source", where)
    return item


def _s3_entries(source: str, kind: str) -> Iterator[Entry]:
    import boto3

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=os.environ.get("FN_S3_ENDPOINT") or None)
    suffixes = SUFFIXES[kind] | ({".jsonl"} if kind in JSONL_KINDS else set())
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            suffix = PurePosixPath(key).suffix.lower()
            if suffix not in suffixes:
                continue
            where = f"s3://{bucket}/{key}"
            rel = key.removeprefix(prefix).lstrip("/")
            if suffix == ".jsonl":  # streamed a line at a time
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                try:
                    yield from jsonl(where, io.BufferedReader(_Body(body), 1024 * 1024))
                finally:
                    body.close()
            elif suffix in PDF_SUFFIXES and kind == "document":  # PDFium reads it from a file, a page at a time
                with tempfile.TemporaryDirectory() as folder:
                    local = Path(folder) / "document.pdf"
                    client.download_file(bucket, key, str(local))
                    yield from pdf_entries(local, rel, where)
            else:
                def load(key: str = key, rel: str = rel, where: str = where) -> dict[str, Any] | str:
                    return file_item(rel, where, client.get_object(Bucket=bucket, Key=key)["Body"].read(), kind)

                yield where, load


class _Body(io.RawIOBase):
    """An S3 object's streaming body as a raw stream, so a BufferedReader can read it a line at a time."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
