"""The registry and flow checkpoints against a real PostgreSQL server (started here, thrown away after)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import fn
from fnplatform.flows.state import FlowState
from fnplatform.storage.registry import Registry

INITDB = shutil.which("initdb")
PG_CTL = shutil.which("pg_ctl")
pytestmark = pytest.mark.skipif(not (INITDB and PG_CTL and os.geteuid() == 0),
                                reason="needs PostgreSQL's initdb/pg_ctl and root (to run the server as 'postgres')")


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=True,
                          timeout=120)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="fnpg"))
    shutil.chown(root, user="postgres")
    data = root / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _as_postgres(str(INITDB), "-D", str(data), "-U", "fn", "--auth=trust", "-E", "UTF8")
    _as_postgres(str(PG_CTL), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql+psycopg://fn@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_CTL), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_registry_on_postgresql(postgres_url: str) -> None:
    registry = Registry(postgres_url)
    try:
        spec = fn.FunctionSpec(name="add", entrypoint="app:add")
        first = registry.create_version(spec, "a" * 64)
        registry.finish_version("add", first.number)
        second = registry.create_version(spec, "b" * 64)
        registry.finish_version("add", second.number, error="setup() raised KeyError: 'x'")
        active = registry.active("add")
        assert active is not None and active.number == 1
        assert [v.status for v in registry.versions("add")] == ["ready", "failed"]
        record, key = registry.create_key("ci")
        assert registry.verify_key(key) is not None
        assert registry.revoke_key(record.id) and registry.verify_key(key) is None
        assert registry.delete_function("add") and registry.versions("add") == []
    finally:
        registry.engine.dispose()


def test_flow_checkpoints_on_postgresql(postgres_url: str) -> None:
    flow = fn.Flow("pg-flow", inputs=["a"])
    flow.output("echo", inputs=["a"])
    state = FlowState(postgres_url)
    try:
        state.put_flow(flow.spec(), "c" * 64)
        run_id = state.create_run(flow.spec())
        assert state.add_input(run_id, "a", value_json="1")
        assert not state.add_input(run_id, "a", value_json="2"), "an input given twice keeps the first"
        state.record_step(run_id, "echo", attempts=1, value_json="1")
        state.finish_run(run_id, output_json="1")
        record = state.run(run_id)
        assert record is not None and record.status == "succeeded" and record.output == 1
        assert record.values["a"].value == 1 and state.unfinished_runs() == []
    finally:
        state.engine.dispose()


def test_log_store_on_postgresql(postgres_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from fnplatform.logtext import format_line
    from fnplatform.storage.db import utcnow
    from fnplatform.storage.logs import LogQuery, LogStore

    logs = LogStore(postgres_url)
    try:
        old = datetime.now(UTC) - timedelta(days=5)
        assert logs.add_drained("add", [format_line("INFO", "r1", "req-1", "50% Done_", old),
                                        format_line("INFO", "r1", "req-2", "50 done")], "hub1", 0, 2)
        assert not logs.add_drained("add", [format_line("INFO", "r1", "-", "again")], "hub1", 0, 2)
        texts = lambda **q: [r.line.text for r in logs.query(LogQuery(source="add", **q))]  # noqa: E731
        assert texts(grep="%") == ["50% Done_"] and texts(grep="done") == ["50 done"]  # plain, case-sensitive
        assert texts(request_id="req-1") == ["50% Done_"]
        assert texts(since=utcnow() - timedelta(hours=1)) == ["50 done"]
        assert logs.prune(utcnow() - timedelta(hours=72), 2**30) == 1 and texts() == ["50 done"]
        again = LogStore(postgres_url)  # a restarted control plane
        assert again.cursors() == {"add": ("hub1", 2)}
        again.engine.dispose()
    finally:
        logs.engine.dispose()


def test_jobs_and_schedules_on_postgresql(postgres_url: str) -> None:
    """The job store's every write on PostgreSQL (row locks, group commits, the claims' compare and set)."""
    from datetime import timedelta

    from fnplatform.storage.db import utcnow
    from fnplatform.storage.jobs import Ending, JobStore, NewJob
    from fnplatform.storage.schedules import ScheduleStore, tick_job_id

    jobs = JobStore(postgres_url)
    schedules = ScheduleStore(postgres_url)
    try:
        made = jobs.submit_many([NewJob(function="f", arguments=f'{{"x": {i}}}', owner="k", max_attempts=2,
                                        callback_url="https://example.com/h") for i in range(5)])
        assert all(created for _, created in made)
        again, created = jobs.submit(NewJob(function="f", arguments="{}", owner="k", id=made[0][0].id))
        assert not created and again.arguments == '{"x": 0}'
        claimed = jobs.claim_many([job.id for job, _ in made], "r1", 60)
        assert sorted(j.id for j in claimed) == sorted(j.id for j, _ in made) and all(j.attempts == 1 for j in claimed)
        first, second, third, fourth, fifth = (job.id for job, _ in made)
        assert jobs.finish_many([Ending(first, "r1", "succeeded", result="1"), Ending(second, "r2", "succeeded")]) == \
            [True, False]  # another runner's lease: not written
        assert jobs.retry_later(second, "r1", 0, {"type": "E", "status": 500, "message": "m"})
        assert jobs.cancel(third) is not None and jobs.cancels("r1") == [third]
        assert jobs.finish(fourth, "r1", "failed", error={"type": "E", "status": 500, "message": "m"})
        assert jobs.redrive(fourth) is not None and jobs.get(fourth).status == "queued"  # type: ignore[union-attr]
        assert jobs.requeue_expired(utcnow() + timedelta(seconds=120)) == 2  # third (cancel asked) and fifth
        assert jobs.get(third).status == "cancelled" and jobs.get(fifth).status == "queued"  # type: ignore[union-attr]
        later = utcnow() + timedelta(seconds=121)  # third's webhook is due from the requeue's "now" on
        hooks = jobs.claim_webhooks(later, limit=10, hold_s=60)
        assert {j.id for j in hooks} == {first, third} and jobs.claim_webhooks(later, limit=10, hold_s=60) == []
        assert jobs.purge(utcnow() + timedelta(seconds=1)) == []  # their webhooks are still pending
        tick = utcnow()
        schedules.put("f", {"every_s": 30.0}, tick, "k")
        assert schedules.advance("f", tick, tick, tick_job_id("f", tick), tick + timedelta(seconds=30))
        assert not schedules.advance("f", tick, tick, tick_job_id("f", tick), tick + timedelta(seconds=30))
    finally:
        jobs.engine.dispose()
        schedules.engine.dispose()


def test_shared_state_on_postgresql(postgres_url: str) -> None:
    import asyncio

    from fnplatform.state.server import StateServer

    async def use(server: StateServer) -> tuple[object, ...]:
        await server.dict_set("weights", "a", '{"w":[0.5,1.5]}')
        counts = await asyncio.gather(*(server.dict_incr("weights", "hits", 1) for _ in range(50)))
        await server.dict_set("weights", "ünïcode ключ", '"v"')
        for item in ('"one"', '"two"', '"three"'):
            await server.queue_put("work", item, 10, 0)
        return sorted(counts), await server.queue_get("work", 0)

    server = StateServer(postgres_url)
    counts, first = asyncio.run(use(server))
    server._store.engine.dispose()
    assert counts == list(range(1, 51)) and first == '"one"'  # incr atomic, in one group commit or several

    async def read_back(server: StateServer) -> tuple[object, ...]:  # a restarted server: the database only
        return (await server.dict_get("weights", "a"), await server.dict_get("weights", "hits"),
                await server.dict_get("weights", "ünïcode ключ"), await server.queue_get("work", 0),
                await server.queue_len("work"))

    restarted = StateServer(postgres_url)
    try:
        assert asyncio.run(read_back(restarted)) == ('{"w":[0.5,1.5]}', "50", '"v"', '"two"', 1)
    finally:
        restarted._store.engine.dispose()
