"""Operator pipelines: ``Pipeline("text").flat_map(chunk).map(embed, remote="embed-text").sink(milvus(...))``.

Operators are plain Python callables. Light ones run inline in the replica that runs the
pipeline; a heavy one names a deployed function (``remote=``) and its items are sent as
concurrent single calls, which the callee batches on the server side (``max_batch_size``).
A stateful operator is an object with state: it lives in the replica and keeps it between calls.

Every item carries its own outcome: an operator that raises fails that item (with the reason),
never the batch, and the report counts stored, skipped, filtered and failed items.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import fn


class ItemError(Exception):
    """A bad input: fails one item with this message, the rest of the batch goes on."""


@dataclass
class Item:
    key: str  # the item's own id (given, or derived from its content)
    value: Any
    meta: dict[str, Any] = field(default_factory=dict)
    source_index: int = 0  # which input item this came from (chunks share it)


@dataclass(frozen=True)
class Stage:
    kind: str  # map | flat_map | filter | batch
    op: Callable[..., Any] | None = None
    remote: str | None = None
    size: int = 0
    name: str = ""
    when: Callable[[Any], bool] | None = None  # map only: the items it applies to (the others pass unchanged)


@dataclass
class Report:
    stored: int = 0
    skipped: int = 0  # items already stored (same content hash)
    filtered: int = 0  # values a filter stage dropped (the documents pipeline's blank pages)
    failed: list[dict[str, Any]] = field(default_factory=list)
    outputs: int = 0  # rows written (chunks), >= stored items
    partial: int = 0  # stored documents some of whose pages failed (listed in failed, each with its page)

    def to_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "skipped": self.skipped, "failed": len(self.failed), "errors": self.failed,
                "rows": self.outputs, "partial": self.partial, "filtered": self.filtered}


class Pipeline:
    """An ordered list of stages and one sink; immutable, each call returns a new pipeline."""

    def __init__(self, name: str, stages: tuple[Stage, ...] = (), sink: Any = None) -> None:
        self.name = name
        self.stages = stages
        self.target = sink  # where the outputs go: the ingest function hands it to vector-store, which creates it

    def _with(self, stage: Stage) -> Pipeline:
        return Pipeline(self.name, (*self.stages, stage), self.target)

    def map(self, op: Callable[[Any], Any] | None = None, *, remote: str | None = None, arg: str = "value",
            when: Callable[[Any], bool] | None = None) -> Pipeline:
        """One output per item: ``op(value)`` inline, or the deployed function *remote* called with ``{arg: value}``.
        With *when*, only the items whose value it accepts go through (``when=needs_ocr``); the rest pass unchanged."""
        if (op is None) == (remote is None):
            raise ValueError("map() takes an operator or remote='function-name', exactly one of them")
        return self._with(Stage("map", op=op, remote=remote, name=arg, when=when))

    def flat_map(self, op: Callable[[Any, dict[str, Any]], Iterable[tuple[Any, dict[str, Any]]]]) -> Pipeline:
        """Zero or more outputs per item: ``op(value, meta)`` yields ``(value, extra_meta)`` pairs (e.g. chunks, pages).
        An output whose value is an exception fails that output alone (a page that cannot be read), with its meta."""
        return self._with(Stage("flat_map", op=op))

    def filter(self, predicate: Callable[[Any], bool]) -> Pipeline:
        """Drops the items for which *predicate* is false (they count as filtered, not failed)."""
        return self._with(Stage("filter", op=predicate))

    def batch(self, op: Callable[[list[Any]], list[Any]], size: int = 64) -> Pipeline:
        """A window of up to *size* values in, as many out: for operators that are cheaper in bulk."""
        return self._with(Stage("batch", op=op, size=size))

    def sink(self, sink: Any) -> Pipeline:
        """Where the outputs are stored (e.g. ``milvus("text", dim=384)``): the collection is created from it."""
        return Pipeline(self.name, self.stages, sink)

    # running -------------------------------------------------------------------------------
    async def run(self, items: list[Item], report: Report) -> list[Item]:
        """Runs every stage over *items*; failed items are recorded in *report* and dropped."""
        live = items
        for stage in self.stages:
            if stage.kind == "map":
                live = await self._map(stage, live, report)
            elif stage.kind == "flat_map":
                live = self._flat_map(stage, live, report)
            elif stage.kind == "filter":
                live = self._filter(stage, live, report)
            else:
                live = self._batch(stage, live, report)
        return live

    @staticmethod
    def _fail(report: Report, item: Item, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, ItemError | fn.ClientError) else f"{type(exc).__name__}: {exc}"
        entry = {"id": item.key, "source": item.meta.get("source", ""), "error": reason}
        if "page" in item.meta:  # a part of a document: the rest of it may still be stored
            entry["page"] = item.meta["page"]
        report.failed.append(entry)

    async def _map(self, stage: Stage, items: list[Item], report: Report) -> list[Item]:
        if stage.when is not None:
            chosen = [item for item in items if stage.when(item.value)]
            kept = {id(item) for item in await self._map(dataclasses.replace(stage, when=None), chosen, report)}
            chosen_ids = {id(item) for item in chosen}
            return [item for item in items if id(item) not in chosen_ids or id(item) in kept]  # in their order
        if stage.remote is not None:
            calls = [fn.acall(stage.remote, **{stage.name: item.value}) for item in items]
            results = await asyncio.gather(*calls, return_exceptions=True)
        else:
            assert stage.op is not None
            results = []
            for item in items:
                try:
                    results.append(stage.op(item.value))
                except Exception as exc:  # noqa: BLE001 - one bad item must not fail its batch
                    results.append(exc)
        kept = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                self._fail(report, item, result)
            else:
                item.value = result
                kept.append(item)
        return kept

    def _flat_map(self, stage: Stage, items: list[Item], report: Report) -> list[Item]:
        assert stage.op is not None
        out = []
        for item in items:
            try:
                produced = [Item(item.key, value, {**item.meta, **extra}, item.source_index)
                            for value, extra in stage.op(item.value, item.meta)]
            except Exception as exc:  # noqa: BLE001 - one bad item must not fail its batch
                self._fail(report, item, exc)
                continue
            if not produced:
                self._fail(report, item, ItemError("produced nothing to store (no text left after chunking)"))
            for part in produced:
                if isinstance(part.value, BaseException):
                    self._fail(report, part, part.value)
                else:
                    out.append(part)
        return out

    def _filter(self, stage: Stage, items: list[Item], report: Report) -> list[Item]:
        assert stage.op is not None
        kept = []
        for item in items:
            if stage.op(item.value):
                kept.append(item)
            else:
                report.filtered += 1
        return kept

    def _batch(self, stage: Stage, items: list[Item], report: Report) -> list[Item]:
        assert stage.op is not None
        out = []
        for start in range(0, len(items), stage.size):
            window = items[start:start + stage.size]
            try:
                values = stage.op([item.value for item in window])
                if len(values) != len(window):
                    raise ItemError(f"batch operator returned {len(values)} values for {len(window)} items")
            except Exception as exc:  # noqa: BLE001 - a failed window fails its own items only
                for item in window:
                    self._fail(report, item, exc)
                continue
            for item, value in zip(window, values, strict=True):
                item.value = value
                out.append(item)
        return out
