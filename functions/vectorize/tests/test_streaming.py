"""fnctl vectorize ingest streams its source in bounded batches and resumes from its checkpoint.

vector-ingest is replaced by a recorder (fn.call), so every call's items and bytes are counted; the CLI runs
in-process (click's CliRunner). The source is read as it is sent: a JSONL file many times larger than a batch
is ingested with a few batches' worth of memory (tracemalloc, in a fresh interpreter), and a PDF goes a page per item."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from documents_helpers import samples
from fnctl_vectorize import batches, vectorize
from fnctl_vectorize.checkpoint import Checkpoint
from fnctl_vectorize.sources import entries, lines

import fn

DOCS = samples()


class Recorder:
    """vector-ingest's stand-in: records (ids, JSON bytes) per call; raises Unavailable on call number *fail_at*."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.fail_at = fail_at
        self.items = 0

    def __call__(self, name: str, **arguments: Any) -> dict[str, Any]:
        assert name == "vector-ingest"
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            self.fail_at = None
            raise fn.Unavailable("vector-store is unavailable", status=503)
        items = arguments["items"]
        self.items += len(items)
        self.calls.append(([item["id"] for item in items], len(json.dumps(items))))
        return {"stored": len(items), "skipped": 0, "failed": 0, "rows": len(items), "errors": []}

    @property
    def sent(self) -> list[str]:
        return [key for ids, _ in self.calls for key in ids]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(recorder: Recorder, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(fn, "call", recorder)
    return CliRunner().invoke(vectorize, ["ingest", *args, "--json"])


def write_jsonl(path: Path, count: int, chars: int = 1000) -> list[str]:
    with path.open("w") as out:
        for i in range(count):
            out.write(json.dumps({"id": f"doc-{i}", "text": f"passage {i} " + "x" * chars}) + "\n")
            if i == 5:
                out.write("\n{not json\n")  # a blank line (passed over) and a bad one (fails alone, never sent)
    return [f"doc-{i}" for i in range(count)]


def test_a_jsonl_source_goes_in_batches_bounded_in_items_and_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    home: Path) -> None:
    ids = write_jsonl(tmp_path / "docs.jsonl", 100)
    recorder = Recorder()
    result = run(recorder, monkeypatch, "text", str(tmp_path / "docs.jsonl"), "--batch-size", "16",
                 "--batch-bytes", "8192")
    assert result.exit_code == 1, result.output  # the bad line
    report = json.loads(result.output[:result.output.rindex("}") + 1])
    assert recorder.sent == ids  # each item once, in order
    assert all(len(sent) <= 16 and size <= 8192 for sent, size in recorder.calls)
    assert [len(sent) for sent, _ in recorder.calls] == [7] * 14 + [2]  # 8 KB holds seven 1 KB items
    assert (report["stored"], report["failed"], report["entries"]) == (100, 1, 101)
    assert report["errors"][0]["id"].endswith("docs.jsonl:8") and "invalid JSON" in report["errors"][0]["error"]
    assert not list((home / "vectorize" / "checkpoints").iterdir())  # done: no checkpoint left

    by_count = Recorder()
    run(by_count, monkeypatch, "text", str(tmp_path / "docs.jsonl"), "--batch-size", "16")
    assert [len(sent) for sent, _ in by_count.calls] == [16] * 6 + [4]


def test_an_item_larger_than_a_batch_goes_alone() -> None:
    items = [("a", lambda: {"id": "a", "text": "x" * 10}), ("b", lambda: {"id": "b", "text": "x" * 5000}),
             ("c", lambda: {"id": "c", "text": "x" * 10}), ("d", lambda: "unreadable")]
    found = [([i["id"] for i in b.items], [e["id"] for e in b.errors], b.end, b.last)
             for b in batches(iter(items), 10, 1000)]
    assert found == [(["a"], [], 1, "a"), (["b"], [], 2, "b"), (["c"], ["d"], 4, "d")]


# Run in a fresh interpreter: tracemalloc counts every thread's allocations, and in a session that has
# started Ray its background threads allocate while the ingest runs (1.2 MB once in CI), which is not the
# ingest's memory.
MEASURE = """
import json, sys, tracemalloc
from click.testing import CliRunner
import fn
from fnctl_vectorize import vectorize
calls = []
def record(name, **arguments):
    items = arguments["items"]
    calls.append((len(items), sum(len(json.dumps(item)) for item in items)))  # what --batch-bytes bounds
    return {"stored": len(items), "skipped": 0, "failed": 0, "rows": len(items), "errors": []}
fn.call = record
tracemalloc.start()
result = CliRunner().invoke(vectorize, ["ingest", "text", sys.argv[1], "--batch-bytes", "65536", "--json"])
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"exit_code": result.exit_code, "items": sum(n for n, _ in calls),
                  "largest": max(size for _, size in calls), "peak": peak}))
"""


def test_a_source_many_times_a_batch_is_read_with_the_memory_of_a_few_batches(tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    write_jsonl(source, 8000)  # 8 MB
    assert source.stat().st_size > 8_000_000
    done = subprocess.run([sys.executable, "-c", MEASURE, str(source)], capture_output=True, text=True,
                          env={**os.environ, "FN_HOME": str(tmp_path / "home")}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["exit_code"] == 1 and found["items"] == 8000  # the bad line fails alone
    assert found["largest"] <= 65536
    peak = found["peak"]
    assert peak < 10 * 65536, f"peak {peak:,} bytes for an {source.stat().st_size:,}-byte file"  # here: about 340 KB


def test_an_interrupted_ingest_resumes_after_its_last_committed_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    ids = write_jsonl(tmp_path / "docs.jsonl", 40, chars=10)
    failing = Recorder(fail_at=3)  # the store goes away during the third call
    first = run(failing, monkeypatch, "text", str(tmp_path / "docs.jsonl"), "--batch-size", "10")
    assert first.exit_code == 1
    # 20 items and 1 bad line
    assert "stopped: vector-store is unavailable. The first 21 entries" in " ".join(first.output.split())
    assert "run the same command again to go on from there" in first.output
    assert failing.sent == ids[:20]
    saved = json.loads(next((home / "vectorize" / "checkpoints").iterdir()).read_text())
    assert (saved["done"], saved["last"], saved["report"]["stored"]) == (21, f"{tmp_path / 'docs.jsonl'}:22", 20)

    resumed = Recorder()
    second = run(resumed, monkeypatch, "text", str(tmp_path / "docs.jsonl"), "--batch-size", "10")
    assert resumed.sent == ids[20:]  # the first two batches are not read again, nor sent
    report = json.loads(second.output[:second.output.rindex("}") + 1])
    assert (report["stored"], report["failed"], report["entries"]) == (40, 1, 41)  # the report covers the whole source
    assert not list((home / "vectorize" / "checkpoints").iterdir())

    again = Recorder()  # a finished source starts over (the store skips what it has)
    run(again, monkeypatch, "text", str(tmp_path / "docs.jsonl"), "--batch-size", "10")
    assert again.sent == ids


def test_a_checkpoint_whose_source_changed_starts_over_and_restart_ignores_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "docs.jsonl"
    ids = write_jsonl(source, 30, chars=10)
    assert run(Recorder(fail_at=2), monkeypatch, "text", str(source), "--batch-size", "10").exit_code == 1
    write_jsonl(source, 5, chars=10)  # shorter now: entry 10 is gone
    changed = Recorder()
    monkeypatch.setattr(fn, "call", changed)
    result = CliRunner().invoke(vectorize, ["ingest", "text", str(source), "--batch-size", "10"])
    assert "the source changed since the checkpoint (entry 11 was" in result.output
    assert changed.sent == ids[:5] and result.exit_code == 0

    write_jsonl(source, 30, chars=10)
    assert run(Recorder(fail_at=2), monkeypatch, "text", str(source), "--batch-size", "10").exit_code == 1
    restarted = Recorder()
    result = run(restarted, monkeypatch, "text", str(source), "--batch-size", "10", "--restart")
    assert restarted.sent == ids and result.exit_code == 1  # the bad line


def test_a_resumed_run_does_not_load_the_entries_it_passes_over(tmp_path: Path) -> None:
    checkpoint = Checkpoint.for_source("text", str(tmp_path / "x.jsonl"), False, folder=tmp_path)
    checkpoint.commit(2, "b")
    loaded: list[str] = []

    def make() -> Any:
        for where in "abcd":
            yield where, lambda where=where: loaded.append(where) or {"id": where}

    stream, note = checkpoint.resume(make)
    assert [where for where, load in stream if load()] == ["c", "d"] and loaded == ["c", "d"]
    assert note.startswith("resuming after entry 2 (b)")
    stream, note = Checkpoint.for_source("text", str(tmp_path / "x.jsonl"), True, folder=tmp_path).resume(make)
    assert [where for where, _ in stream] == list("abcd") and note == ""  # --force keeps its own checkpoint


def test_a_large_pdf_goes_a_page_per_item_in_bounded_batches_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [p["text"] for p in DOCS.passages()]
    pdf = tmp_path / "book.pdf"
    pdf.write_bytes(DOCS.text_pdf([DOCS.wrap(texts[i]) for i in range(23)]))
    failing = Recorder(fail_at=3)
    assert run(failing, monkeypatch, "documents", str(pdf), "--batch-size", "5").exit_code == 1
    assert failing.sent == [f"book.pdf:page{n}" for n in range(1, 11)]
    resumed = Recorder()
    result = run(resumed, monkeypatch, "documents", str(pdf), "--batch-size", "5")
    assert result.exit_code == 0, result.output
    assert [ids for ids, _ in resumed.calls] == [[f"book.pdf:page{n}" for n in range(first, min(first + 5, 24))]
                                                 for first in (11, 16, 21)]
    assert json.loads(result.output)["stored"] == 23


def test_a_line_over_the_limit_is_passed_over_unread(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"y" * 5000 + b"\n" + b'{"b": 2}')
    with path.open("rb") as stream:
        assert list(lines(stream, limit=100)) == [b'{"a": 1}\n', None, b'{"b": 2}']
    found = [(where.rsplit(":", 1)[1], load()) for where, load in entries(str(path), "text")]
    assert found[0] == ("1", {"a": 1, "source": f"{path}:1"}) and found[2][0] == "3"
