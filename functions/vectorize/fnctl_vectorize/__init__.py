"""``fnctl vectorize ingest|search|stats|drop``: the vectorize functions (functions/vectorize), a command group
fnctl finds through the ``fnctl.commands`` entry point (``pip install -e functions/vectorize``).

Ingestion streams a folder, a JSONL file, a PDF or scan (documents) or an S3 prefix (sources.py) into
batches bounded in items and bytes, sends each to the deployed ``vector-ingest`` function and shows a
progress bar. A PDF goes one page per item. It is resumable twice over: stored items are recognised by
their content hash on the server and skipped, and a checkpoint (checkpoint.py) after each committed batch
lets a re-run after an interruption pass over what is done without reading or sending it. The report
counts stored, skipped and failed items, with each failure's reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import fn
from fn import load_settings
from fn._platform import function_url, raise_for_response, shared_client
from fnctl._output import console, json_option, print_json, print_table

from .checkpoint import Checkpoint, add
from .sources import Entry, entries

PIPELINES = {"text": "text", "images": "image", "documents": "document"}
MAX_BATCH_BYTES = 8 * 1024 * 1024


@click.group()
def vectorize() -> None:
    """Ingest text, images and documents (PDFs, scans) into Milvus through the vectorize pipelines, and search them."""


@dataclass
class Batch:
    items: list[Any]  # what one vector-ingest call carries
    errors: list[dict[str, Any]]  # inputs that failed here, before sending (unreadable, invalid JSON, ...)
    end: int  # entries of the source up to here: the checkpoint once this batch is committed
    last: str  # where entry end - 1 came from


def batches(stream: Iterator[Entry], size: int, max_bytes: int, start: int = 0) -> Iterator[Batch]:
    """Loads entries one by one into batches of at most *size* items and *max_bytes* bytes of JSON (an item larger
    than that goes alone): what is held at a time is one batch and the entry after it."""
    items: list[Any] = []
    errors: list[dict[str, Any]] = []
    weight, position, last = 0, start, ""
    for where, load in stream:
        entry = load()
        if isinstance(entry, str):
            errors.append({"id": where, "source": where, "error": entry})
        else:
            cost = len(json.dumps(entry))
            if items and (len(items) >= size or weight + cost > max_bytes):
                yield Batch(items, errors, position, last)
                items, errors, weight = [], [], 0
            items.append(entry)
            weight += cost
        position += 1
        last = where
    if items or errors:
        yield Batch(items, errors, position, last)


@vectorize.command()
@click.argument("pipeline", type=click.Choice(sorted(PIPELINES)))
@click.argument("source")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 256),
              help="Items (a PDF's pages: one each) per call to vector-ingest.")
@click.option("--batch-bytes", default=MAX_BATCH_BYTES, show_default=True, type=click.IntRange(1024),
              help="At most this many bytes of JSON per call (an item larger than that goes alone).")
@click.option("--force", is_flag=True, help="Embed and store again even items that are already stored.")
@click.option("--restart", is_flag=True, help="Start from the first entry, not from an interrupted run's checkpoint.")
@json_option
def ingest(pipeline: str, source: str, batch_size: int, batch_bytes: int, force: bool, restart: bool,
           as_json: bool) -> None:
    """Run PIPELINE (text | images | documents) over SOURCE: a folder, a .jsonl file, s3://bucket/prefix, or for
    documents a .pdf (sent a page per item), .png or .jpg file.

    SOURCE is read as it is sent, one batch at a time, never whole. After each batch the store has answered, a
    checkpoint (under FN_HOME/vectorize/checkpoints) records how far it went: run the same command again after an
    interruption and it goes on from there (--restart: from the first entry). Stored items are skipped by the store
    in any case (--force: stored again)."""
    kind = PIPELINES[pipeline]
    checkpoint = Checkpoint.for_source(pipeline, source, force)
    if restart:
        checkpoint.reset()
    stream, note = checkpoint.resume(lambda: entries(source, kind))
    report = checkpoint.report
    if note and not as_json:
        console.print(note)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} entries"),
                        TimeElapsedColumn(), console=console, disable=as_json)
    def stopped(why: str) -> str:
        return (f"stopped: {why}. The first {checkpoint.done} entries of {source} are done (checkpoint "
                f"{checkpoint.path}); run the same command again to go on from there")

    with progress:
        task = progress.add_task(f"ingest {pipeline}", total=None, completed=checkpoint.done)
        try:
            for batch in batches(stream, batch_size, batch_bytes, start=checkpoint.done):
                if batch.items:
                    add(report, fn.call("vector-ingest", pipeline=pipeline, items=batch.items, force=force))
                add(report, {"failed": len(batch.errors), "errors": batch.errors})
                checkpoint.commit(batch.end, batch.last)
                progress.update(task, completed=batch.end)
        except fn.FnError as exc:
            raise click.ClickException(stopped(str(exc))) from None
        except KeyboardInterrupt:
            raise click.ClickException(stopped("interrupted")) from None
    total = checkpoint.done
    checkpoint.clear()  # the whole source is done: the next run reads it all again (and the store skips it)
    if as_json:
        print_json({**report, "entries": total})
    else:
        partial = f" ({report['partial']} without their failed pages)" if report["partial"] else ""
        blank = f", {report['filtered']} blank pages" if report["filtered"] else ""
        console.print(f"{pipeline}: {total} entries, {report['stored']} stored{partial} ({report['rows']} rows), "
                      f"{report['skipped']} skipped (already stored){blank}, {report['failed']} failed")
        if report["errors"]:
            print_table(["ITEM", "PAGE", "ERROR"], [[e["id"], str(e.get("page", "")), e["error"][:120]]
                                                    for e in report["errors"][:50]])
    if report["failed"]:
        raise click.ClickException(f"{report['failed']} of {total} entries (or pages) failed; the rest were stored")


@vectorize.command()
@click.argument("collection")
@click.argument("query", required=False)
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="Search the images collection with this file.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--filter", "filter_", default=None,
              help='A JSON object of conditions on the collection\'s declared fields: {"topic": "music"}, '
                   '{"topic": {"in": ["music", "art"]}}, {"position": {"gte": 0, "lt": 3}}.')
@click.option("--hybrid", is_flag=True,
              help="BM25 over the chunks' texts fused with the dense ranking (reciprocal rank fusion): text, documents.")
@json_option
def search(collection: str, query: str | None, image: str | None, top_k: int, filter_: str | None, hybrid: bool,
           as_json: bool) -> None:
    """Search COLLECTION with QUERY text, or with --image: POST /search/<collection>."""
    if (query is None) == (image is None):
        raise click.UsageError("give a QUERY or --image, exactly one")
    if hybrid and image is not None:
        raise click.UsageError("--hybrid needs a text QUERY (BM25 matches words), not --image")
    body: dict[str, Any] = {"top_k": top_k, **({"mode": "hybrid"} if hybrid else {})}
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
