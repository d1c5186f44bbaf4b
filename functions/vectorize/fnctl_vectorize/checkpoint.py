"""A resumable ingest's checkpoint: how far through its source the committed batches went, and their report.

``fnctl vectorize ingest`` saves it after each batch that ``vector-ingest`` answered (its rows are in the
store), and removes it once the whole source is done. A run of the same command after an interruption
passes over the entries the checkpoint holds without reading them, and goes on from the next one; the
final report covers the whole source. The checkpoint only saves work: the store still skips unchanged
items by content hash, so a lost or stale checkpoint costs time, never a duplicate or a missing item.
A checkpoint is kept per (pipeline, source, --force) under FN_HOME/vectorize/checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fn

from .sources import Entry

MAX_ERRORS_KEPT = 1000  # in the report (and the checkpoint); the failed count goes on past it
COUNTS = ("stored", "skipped", "failed", "rows", "partial", "filtered")


def empty_report() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), "errors": []}


def add(report: dict[str, Any], result: dict[str, Any]) -> None:
    """Adds one vector-ingest answer (or a batch's own failed inputs) to *report*."""
    for key in COUNTS:
        report[key] += int(result.get(key, 0))
    room = MAX_ERRORS_KEPT - len(report["errors"])
    report["errors"].extend(result.get("errors", [])[:max(0, room)])


@dataclass
class Checkpoint:
    path: Path
    pipeline: str
    source: str
    force: bool = False
    done: int = 0  # entries of the source (items and failed inputs) covered by committed batches
    last: str = ""  # where entry done - 1 came from: a resumed run checks that it is still there
    report: dict[str, Any] = field(default_factory=empty_report)

    @classmethod
    def for_source(cls, pipeline: str, source: str, force: bool, folder: Path | None = None) -> Checkpoint:
        """The checkpoint of this ingest, as saved by an interrupted run, or a new one."""
        where = source if source.startswith("s3://") else str(Path(source).resolve())
        digest = hashlib.sha256(json.dumps([pipeline, where, force]).encode()).hexdigest()[:24]
        path = (folder or fn.fn_home() / "vectorize" / "checkpoints") / f"{digest}.json"
        fresh = cls(path, pipeline, where, force)
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return fresh
        except ValueError:
            return fresh  # a torn or edited file: start over (the store skips what is already stored)
        if not isinstance(saved, dict) or (saved.get("pipeline"), saved.get("source"), saved.get("force")) != \
                (pipeline, where, force):
            return fresh
        return cls(path, pipeline, where, force, int(saved.get("done", 0)), str(saved.get("last", "")),
                   {**empty_report(), **saved.get("report", {})})

    def commit(self, done: int, last: str) -> None:
        """Entries before *done* are in the store (or failed, in the report): written atomically."""
        self.done, self.last = done, last
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def reset(self) -> None:
        self.done, self.last, self.report = 0, "", empty_report()
        self.clear()

    def resume(self, make: Callable[[], Iterator[Entry]]) -> tuple[Iterator[Entry], str]:
        """The source's entries from the first one not done, and a note for the user ("" when starting afresh).
        The entries passed over are not loaded. If entry done - 1 is no longer where it was (the source changed),
        the ingest starts over from the first entry."""
        if self.done == 0:
            return make(), ""
        stream = make()
        for index, (where, _) in enumerate(stream):
            if index == self.done - 1:
                if where == self.last:
                    return stream, f"resuming after entry {self.done} ({where}), from the checkpoint {self.path}"
                break
        getattr(stream, "close", lambda: None)()  # a generator: closes the file it has open
        done, last = self.done, self.last
        self.reset()
        return make(), (f"the source changed since the checkpoint (entry {done} was {last}): starting from the first "
                        f"entry; items already stored are skipped by the store")
