"""``fnctl vectorize ingest|search|stats|drop``: the vectorize functions (functions/vectorize), a command group
fnctl finds through the ``fnctl.commands`` entry point (``pip install -e functions/vectorize``).

Ingestion reads a folder, a JSONL file, a PDF or scan (documents) or an S3 prefix, sends items in batches
to the deployed ``vector-ingest`` function and shows a progress bar. A PDF goes one page per item. It is
resumable: stored items are recognised by their content hash on the server and skipped, so re-running
after an interruption only does the rest. The report counts stored, skipped and failed items, with each failure's reason.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import fn
from fn import load_settings
from fn._platform import function_url, raise_for_response, shared_client
from fnctl._output import console, json_option, print_json, print_table

from .documents import PDF_SUFFIXES, SCAN_SUFFIXES, pdf_entries, scan_item

PIPELINES = {"text": "text", "images": "image", "documents": "document"}
TEXT_SUFFIXES = {".txt", ".md"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SUFFIXES = {"text": TEXT_SUFFIXES, "image": IMAGE_SUFFIXES, "document": PDF_SUFFIXES | SCAN_SUFFIXES}
MAX_BATCH_BYTES = 8 * 1024 * 1024


@click.group()
def vectorize() -> None:
    """Ingest text, images and documents (PDFs, scans) into Milvus through the vectorize pipelines, and search them."""


def _entries(source: str, kind: str) -> Iterator[tuple[str, Any]]:
    """(where, item or error text) for every input in SOURCE; errors fail that input only."""
    if source.startswith("s3://"):
        yield from _s3_entries(source, kind)
        return
    path = Path(source)
    if not path.exists():
        raise click.BadParameter(f"{source} does not exist", param_hint="SOURCE")
    if path.is_file():
        if kind == "document" and path.suffix.lower() in PDF_SUFFIXES | SCAN_SUFFIXES:
            yield from _document(path, path.name, str(path))
            return
        if path.suffix != ".jsonl":
            also = ", a .pdf, .png or .jpg file" if kind == "document" else ""
            raise click.BadParameter(f"{source} is a file but not .jsonl; give a folder, a .jsonl file{also} or "
                                     f"s3://bucket/prefix", param_hint="SOURCE")
        yield from _jsonl(str(path), path.read_bytes())
        return
    suffixes = SUFFIXES[kind]
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = file.relative_to(path).as_posix()
        if file.suffix.lower() == ".jsonl" and kind in {"text", "document"}:
            yield from _jsonl(str(file), file.read_bytes())
        elif kind == "document" and file.suffix.lower() in suffixes:
            yield from _document(file, rel, str(file))
        elif file.suffix.lower() in suffixes:
            yield str(file), _file_item(rel, str(file), file.read_bytes(), kind)


def _document(path: Path, rel: str, where: str) -> Iterator[tuple[str, Any]]:
    """A PDF page by page (each page its own item), or a scan as one item."""
    if path.suffix.lower() in PDF_SUFFIXES:
        for page_where, load in pdf_entries(path, rel, where):
            yield page_where, load()
    else:
        yield where, scan_item(rel, where, path.read_bytes())


def _file_item(rel: str, where: str, data: bytes, kind: str) -> dict[str, Any] | str:
    if kind == "document":
        return scan_item(rel, where, data)
    if kind == "image":
        return {"id": rel, "source": where, "image_b64": base64.b64encode(data).decode()}
    try:
        return {"id": rel, "source": where, "text": data.decode("utf-8")}
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"


def _jsonl(where: str, data: bytes) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            yield f"{where}:{number}", f"invalid JSON: {exc}"
            continue
        if isinstance(item, dict):
            item.setdefault("source", f"{where}:{number}")
        yield f"{where}:{number}", item


def _s3_entries(source: str, kind: str) -> Iterator[tuple[str, Any]]:
    import boto3

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=os.environ.get("FN_S3_ENDPOINT") or None)
    suffixes = SUFFIXES[kind] | ({".jsonl"} if kind in {"text", "document"} else set())
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            suffix = PurePosixPath(key).suffix.lower()
            if suffix not in suffixes:
                continue
            where = f"s3://{bucket}/{key}"
            rel = key.removeprefix(prefix).lstrip("/")
            if suffix in PDF_SUFFIXES and kind == "document":  # PDFium reads it from a file, a page at a time
                with tempfile.TemporaryDirectory() as folder:
                    local = Path(folder) / "document.pdf"
                    client.download_file(bucket, key, str(local))
                    yield from _document(local, rel, where)
                continue
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            if suffix == ".jsonl":
                yield from _jsonl(where, data)
            else:
                yield where, _file_item(rel, where, data, kind)


def _batches(entries: Iterator[tuple[str, Any]], size: int, report: dict[str, Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    weight = 0
    for where, entry in entries:
        if isinstance(entry, str):
            report["errors"].append({"id": where, "source": where, "error": entry})
            report["failed"] += 1
            continue
        cost = len(json.dumps(entry))
        if batch and (len(batch) >= size or weight + cost > MAX_BATCH_BYTES):
            yield batch
            batch, weight = [], 0
        batch.append(entry)
        weight += cost
    if batch:
        yield batch


@vectorize.command()
@click.argument("pipeline", type=click.Choice(sorted(PIPELINES)))
@click.argument("source")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 256),
              help="Items per call to vector-ingest.")
@click.option("--force", is_flag=True, help="Embed and store again even items that are already stored.")
@json_option
def ingest(pipeline: str, source: str, batch_size: int, force: bool, as_json: bool) -> None:
    """Run PIPELINE (text | images | documents) over SOURCE: a folder, a .jsonl file, s3://bucket/prefix, or for
    documents a .pdf (sent a page per item), .png or .jpg file."""
    kind = PIPELINES[pipeline]
    entries = list(_entries(source, kind))
    report: dict[str, Any] = {"stored": 0, "skipped": 0, "failed": 0, "rows": 0, "partial": 0, "filtered": 0,
                              "errors": []}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=as_json)
    with progress:
        task = progress.add_task(f"ingest {pipeline}", total=len(entries))
        for batch in _batches(iter(entries), batch_size, report):
            result = fn.call("vector-ingest", pipeline=pipeline, items=batch, force=force)
            for key in ("stored", "skipped", "failed", "rows", "partial", "filtered"):
                report[key] += int(result.get(key, 0))
            report["errors"].extend(result["errors"])
            progress.advance(task, len(batch))
        progress.update(task, completed=len(entries))
    if as_json:
        print_json(report)
    else:
        partial = f" ({report['partial']} without their failed pages)" if report["partial"] else ""
        blank = f", {report['filtered']} blank pages" if report["filtered"] else ""
        console.print(f"{pipeline}: {report['stored']} stored{partial} ({report['rows']} rows), {report['skipped']} "
                      f"skipped (already stored){blank}, {report['failed']} failed")
        if report["errors"]:
            print_table(["ITEM", "PAGE", "ERROR"], [[e["id"], str(e.get("page", "")), e["error"][:120]]
                                                    for e in report["errors"][:50]])
    if report["failed"]:
        raise click.ClickException(f"{report['failed']} of {len(entries)} items (or pages) failed; the rest were stored")


@vectorize.command()
@click.argument("collection")
@click.argument("query", required=False)
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="Search the images collection with this file.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--filter", "filter_", default=None,
              help='A JSON object of conditions on the collection\'s declared fields: {"topic": "music"}, '
                   '{"topic": {"in": ["music", "art"]}}, {"position": {"gte": 0, "lt": 3}}.')
@json_option
def search(collection: str, query: str | None, image: str | None, top_k: int, filter_: str | None, as_json: bool) -> None:
    """Search COLLECTION with QUERY text, or with --image: POST /search/<collection>."""
    if (query is None) == (image is None):
        raise click.UsageError("give a QUERY or --image, exactly one")
    body: dict[str, Any] = {"top_k": top_k}
    if filter_:
        try:
            parsed = json.loads(filter_)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON ({exc}); give a JSON object such as '{{\"topic\": \"music\"}}' "
                                     f"(Milvus expressions are not accepted)", param_hint="--filter") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object of field conditions, e.g. '{\"topic\": \"music\"}'",
                                     param_hint="--filter")
        body["filter"] = parsed
    if query is not None:
        body["query"] = query
    if image is not None:
        body["image_b64"] = base64.b64encode(Path(image).read_bytes()).decode()
    settings = load_settings()
    url = function_url(settings, f"search/{collection}")  # the function endpoint address, as fn.call finds it
    response = shared_client(settings).post(url, json=body)
    raise_for_response(response)
    results = response.json()["results"]
    if as_json:
        print_json(results)
        return
    print_table(["SCORE", "ID", "SOURCE", "TEXT"],
                [[f"{r['score']:.3f}", r["id"], _where(r["metadata"]),
                  str(r["metadata"].get("text", ""))[:70].replace("\n", " ")] for r in results], empty="no results")


def _where(metadata: dict[str, Any]) -> str:
    page = metadata.get("page")
    return f"{metadata.get('source', '')}" + (f" p. {page}" if page is not None else "")


@vectorize.command()
@click.argument("collection")
@json_option
def stats(collection: str, as_json: bool) -> None:
    """Row count of COLLECTION."""
    info = fn.call("vector-admin", op="stats", collection=collection)  # vector-store itself is internal
    if as_json:
        print_json(info)
    else:
        console.print(f"{collection}: {info.get('row_count', 0)} rows")


@vectorize.command()
@click.argument("collection")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(collection: str, yes: bool) -> None:
    """Delete COLLECTION and every vector in it."""
    if not yes:
        click.confirm(f"drop collection {collection!r} and all its vectors?", abort=True)
    existed = fn.call("vector-admin", op="drop", collection=collection)
    console.print(f"dropped {collection}" if existed else f"no collection named {collection}")
