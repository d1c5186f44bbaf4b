"""A flow run's scheduling, retries, checkpoints and resume, in-process: the run's logic with a real
checkpoint database (SQLite) and store, and its cluster side (calling step functions) stood in by a
small runtime. No Ray."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import fn
from fnplatform.flows import run as flow_run
from fnplatform.flows.run import FlowRun
from fnplatform.flows.state import FlowState, _lock_run, _Value, snapshot_from_record
from fnplatform.storage.db import utcnow

Step = Callable[..., Any]


class LocalRuntime:
    """Step functions as plain Python; records every call, in order."""

    def __init__(self, functions: dict[str, Step]) -> None:
        self.functions = functions
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.warmed: set[str] = set()
        self.exited = 0

    async def pick(self, function: str, pinned: int | None) -> int | None:
        return pinned  # one version of each function here

    async def call(self, function: str, request_id: str, kwargs: dict[str, Any], version: int | None = None) -> Any:
        self.calls.append((function, kwargs))
        await asyncio.sleep(0)
        try:
            return self.functions[function](**kwargs)
        except fn.FnError:
            raise
        except Exception as exc:  # noqa: BLE001 - what a replica sends back for a user exception
            raise fn.RemoteError(str(exc), status=500, error_type=type(exc).__name__) from None

    def warm(self, functions: set[str]) -> None:
        self.warmed |= functions

    def hold(self, data: bytes) -> Any:
        return data

    def exit(self) -> None:
        self.exited += 1


def documents_flow() -> fn.FlowSpec:
    flow = fn.Flow("unit-docs", inputs=["front", "back"], retries=1)
    front = flow.step("measure", inputs={"text": "front"}, name="measure-front")
    back = flow.step("measure", inputs={"text": "back"}, name="measure-back")
    flow.output("decide", inputs={"a": front, "b": back})
    return flow.spec()


@pytest.fixture
def state(tmp_path: Path) -> FlowState:
    return FlowState(f"sqlite:///{tmp_path / 'flows.db'}")


def new_run(state: FlowState, tmp_path: Path, runtime: LocalRuntime, run_id: str | None = None) -> FlowRun:
    run_id = run_id or state.create_run(documents_flow())
    return FlowRun(run_id, {"kind": "local", "root": str(tmp_path / "store")}, runtime=runtime, database_url=state.url)


def give(state: FlowState, run: FlowRun, name: str, value: Any) -> dict[str, Any]:
    assert state.add_input(run.run_id, name, value_json=json.dumps(value))
    return asyncio.run(_put(run, name))


async def _put(run: FlowRun, name: str) -> dict[str, Any]:
    snapshot = await run.put(name)
    # A step leaves run._tasks once what it decided is in the database; wait for that, not a fixed
    # number of ticks (a loaded CI machine once ran out of them mid-write).
    deadline = asyncio.get_running_loop().time() + 30
    while run._tasks and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert not run._tasks, f"steps still running after 30 s: {sorted(run._tasks)}"
    return {**snapshot, **run.snapshot()}


def runtime(**overrides: Step) -> LocalRuntime:
    return LocalRuntime({"measure": lambda text: len(text), "decide": lambda a, b: {"total": a + b}, **overrides})


def test_steps_run_as_their_inputs_arrive_and_the_output_is_checkpointed(state: FlowState, tmp_path: Path) -> None:
    local = runtime()
    run = new_run(state, tmp_path, local)
    first = give(state, run, "front", "abcd")
    assert first["status"] == "running"
    assert first["steps"]["measure-front"]["status"] == "succeeded"
    assert first["steps"]["measure-back"]["status"] == "waiting" and first["steps"]["decide"]["status"] == "waiting"
    assert local.warmed == {"measure", "decide"}  # later steps were asked to scale up at the start
    done = give(state, run, "back", "xy")
    assert done["status"] == "succeeded" and done["output"] == {"total": 6}
    assert [c[0] for c in local.calls] == ["measure", "measure", "decide"]
    record = state.run(run.run_id)
    assert record is not None and record.status == "succeeded" and record.output == {"total": 6}


def test_a_failing_step_is_retried_then_fails_the_run_with_its_error(state: FlowState, tmp_path: Path) -> None:
    attempts = {"n": 0}

    def flaky(text: str) -> int:
        attempts["n"] += 1
        raise ValueError(f"unreadable {text}")

    run = new_run(state, tmp_path, runtime(measure=flaky))
    failed = give(state, run, "front", "abcd")
    assert attempts["n"] == 2  # retries=1: two attempts
    assert failed["status"] == "failed"
    assert failed["error"] == {"type": "ValueError", "message": "unreadable abcd", "step": "measure-front", "attempts": 2}
    record = state.run(run.run_id)
    assert record is not None and record.status == "failed"


def test_a_recreated_run_resumes_from_its_checkpoint_without_redoing_finished_steps(state: FlowState,
                                                                                   tmp_path: Path) -> None:
    before = runtime()
    run = new_run(state, tmp_path, before)
    give(state, run, "front", "abcd")
    assert [c[0] for c in before.calls] == ["measure"]

    after = runtime()  # the actor died; a new one is made for the same run
    resumed = new_run(state, tmp_path, after, run_id=run.run_id)
    state.add_input(run.run_id, "back", value_json=json.dumps("xy"))
    done = asyncio.run(_put(resumed, "back"))
    assert done["status"] == "succeeded" and done["output"] == {"total": 6}
    assert [c for c, _ in after.calls] == ["measure", "decide"]  # measure-front was not run again
    assert after.calls[-1][1] == {"a": 4, "b": 2}


def test_finished_runs_past_their_retention_are_forgotten_with_their_blobs(state: FlowState) -> None:
    done, running = state.create_run(documents_flow(), "k1"), state.create_run(documents_flow(), "k1")
    for run_id in (done, running):
        assert state.add_input(run_id, "front", blob_key=f"blobs/{run_id}/inputs/front")
    state.finish_run(done, output_json="1")
    assert state.active_runs(owner="k1") == 1 and state.active_runs(flow="unit-docs") == 1
    assert state.expire_runs(datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)) == []  # not old enough
    assert state.expire_runs(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)) == [f"blobs/{done}/inputs/front"]
    assert state.run(done) is None
    record = state.run(running)
    assert record is not None and record.owner == "k1" and "front" in record.values  # unfinished: kept


# faults: checkpoint writes and loads that fail, step calls that never answer ----------------------

@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's waits, shrunk so a failure path takes well under a second."""
    monkeypatch.setattr(flow_run, "CHECKPOINT_BACKOFF_S", 0.01)
    monkeypatch.setattr(flow_run, "WATCHDOG_INTERVAL_S", 0.05)
    monkeypatch.setattr(flow_run, "STEP_PLACEMENT_S", 0.2)
    monkeypatch.setattr(flow_run, "STEP_TIMEOUT_FALLBACK_S", 0.0)  # the test's functions are not in the registry


def failing(write: Callable[..., Any], times: int | None) -> tuple[Callable[..., Any], list[int]]:
    """``write`` that fails ``times`` times (None: always) as a locked SQLite database does, then works."""
    calls: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if times is None or len(calls) <= times:
            raise OperationalError("UPDATE flow_values", {}, Exception("database is locked"))
        return write(*args, **kwargs)

    return wrapper, calls


def no_step_running(snapshot: dict[str, Any]) -> bool:
    return all(step["status"] != "running" for step in snapshot["steps"].values())


@pytest.mark.timeout(20)
def test_checkpoint_writes_that_fail_a_few_times_are_retried_and_the_run_succeeds(
        state: FlowState, tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    local = runtime(measure=lambda text: text.encode() * 2, decide=lambda a, b: {"total": len(a) + len(b)})
    run = new_run(state, tmp_path, local)
    record_step, steps = failing(run._db.record_step, 2)
    finish_run, finishes = failing(run._db.finish_run, 1)
    store_write, writes = failing(run._store.write, 2)
    monkeypatch.setattr(run._db, "record_step", record_step)
    monkeypatch.setattr(run._db, "finish_run", finish_run)
    monkeypatch.setattr(run._store, "write", store_write)
    give(state, run, "front", "abcd")
    done = give(state, run, "back", "xy")
    assert done["status"] == "succeeded" and done["output"] == {"total": 12}
    assert len(steps) == 2 + 3 and len(writes) == 2 + 2 and len(finishes) == 1 + 1  # each failure was tried again
    record = state.run(run.run_id)
    assert record is not None and record.status == "succeeded" and record.output == {"total": 12}


@pytest.mark.timeout(20)
def test_a_checkpoint_write_that_keeps_failing_fails_the_run_with_what_could_not_be_written(
        state: FlowState, tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    local = runtime()
    run = new_run(state, tmp_path, local)
    record_step, calls = failing(run._db.record_step, None)
    monkeypatch.setattr(run._db, "record_step", record_step)
    failed = give(state, run, "front", "abcd")
    assert len(calls) == flow_run.CHECKPOINT_ATTEMPTS
    assert failed["status"] == "failed" and no_step_running(failed)
    assert failed["steps"]["measure-front"]["status"] == "failed"
    error = failed["error"]
    assert error["type"] == "CheckpointFailed" and error["step"] == "measure-front"
    assert "could not write the result of step 'measure-front' after 4 attempts" in error["message"]
    assert "database is locked" in error["message"]
    record = state.run(run.run_id)
    assert record is not None and record.status == "failed" and record.error == error


@pytest.mark.timeout(20)
def test_an_exception_anywhere_in_a_step_fails_the_step_and_the_run(state: FlowState, tmp_path: Path,
                                                                    fast: None) -> None:
    run = new_run(state, tmp_path, runtime(measure=lambda text: object()))  # the call works; its result cannot be stored
    failed = give(state, run, "front", "abcd")
    assert failed["status"] == "failed" and no_step_running(failed)
    assert failed["steps"]["measure-front"]["status"] == "failed"
    assert failed["error"]["step"] == "measure-front" and "object" in failed["error"]["message"]
    record = state.run(run.run_id)
    assert record is not None and record.status == "failed"


@pytest.mark.timeout(20)
def test_a_failure_that_cannot_be_recorded_is_failed_in_memory_and_recorded_later(
        state: FlowState, tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(state, tmp_path, runtime())
    record_step, _ = failing(run._db.record_step, None)
    finish_run, finishes = failing(run._db.finish_run, flow_run.CHECKPOINT_ATTEMPTS + 2)
    monkeypatch.setattr(run._db, "record_step", record_step)
    monkeypatch.setattr(run._db, "finish_run", finish_run)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        failed = await _put(run, "front")
        assert failed["status"] == "failed" and run._unrecorded  # the database still says running
        record = state.run(run.run_id)
        assert record is not None and record.status == "running"
        while run._unrecorded:  # the watchdog writes it once the database answers again
            await asyncio.sleep(0.02)
        return failed, await run.wait(1)

    assert state.add_input(run.run_id, "front", value_json=json.dumps("abcd"))
    failed, later = asyncio.run(scenario())
    assert no_step_running(failed) and later["status"] == "failed" and later["error"]["type"] == "CheckpointFailed"
    assert len(finishes) > flow_run.CHECKPOINT_ATTEMPTS + 2
    record = state.run(run.run_id)
    assert record is not None and record.status == "failed" and record.error == later["error"]


@pytest.mark.timeout(20)
def test_a_checkpoint_load_that_fails_is_tried_again_by_the_next_call(state: FlowState, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(state, tmp_path, runtime())
    read, calls = failing(run._db.run, 1)
    monkeypatch.setattr(run._db, "run", read)

    async def scenario() -> dict[str, Any]:
        with pytest.raises(OperationalError, match="database is locked"):
            await run.state()
        return await run.state()

    snapshot = asyncio.run(scenario())
    assert snapshot["status"] == "pending" and len(calls) == 2
    assert state.add_input(run.run_id, "front", value_json=json.dumps("abcd"))
    assert asyncio.run(_put(run, "front"))["steps"]["measure-front"]["status"] == "succeeded"


class SilentRuntime(LocalRuntime):
    """A cluster where ``measure`` can be placed nowhere: its calls are queued and never answered."""

    async def call(self, function: str, request_id: str, kwargs: dict[str, Any], version: int | None = None) -> Any:
        if function == "measure":
            self.calls.append((function, kwargs))
            await asyncio.Event().wait()
        return await super().call(function, request_id, kwargs)


@pytest.mark.timeout(20)
def test_a_step_call_that_never_returns_times_out_is_retried_then_fails_the_run(state: FlowState, tmp_path: Path,
                                                                                fast: None) -> None:
    local = SilentRuntime(runtime().functions)
    run = new_run(state, tmp_path, local)
    failed = give(state, run, "front", "abcd")
    assert len(local.calls) == 2  # retries=1: the deadline failed the first attempt, the second was tried
    assert failed["status"] == "failed" and no_step_running(failed)
    error = failed["error"]
    assert error["type"] == "Timeout" and error["step"] == "measure-front" and error["attempts"] == 2
    assert "step 'measure-front': measure could not be placed or did not answer within 0.2 s" in error["message"]
    record = state.run(run.run_id)
    assert record is not None and record.status == "failed"


# optional inputs and closing a run's inputs ------------------------------------------------------

def optional_flow() -> fn.FlowSpec:
    flow = fn.Flow("unit-optional", inputs=["front", "back"], optional=["back"], retries=0)
    front = flow.step("measure", inputs={"text": "front"}, name="measure-front")
    back = flow.step("maybe", inputs={"text": "back"}, name="measure-back")
    flow.output("decide", inputs={"a": front, "b": back})
    return flow.spec()


def optional_runtime() -> LocalRuntime:
    return runtime(maybe=lambda text: None if text is None else len(text), decide=lambda a, b: {"front": a, "back": b})


def close(state: FlowState, run: FlowRun) -> dict[str, Any]:
    assert state.close_inputs(run.run_id)
    return asyncio.run(_settled(run, run.close()))


async def _settled(run: FlowRun, call: Any) -> dict[str, Any]:
    snapshot = await call
    deadline = asyncio.get_running_loop().time() + 30
    while run._tasks and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert not run._tasks, f"steps still running after 30 s: {sorted(run._tasks)}"
    return {**snapshot, **run.snapshot()}


def test_an_optional_input_never_put_is_none_once_the_inputs_are_closed(state: FlowState, tmp_path: Path) -> None:
    local = optional_runtime()
    run = new_run(state, tmp_path, local, run_id=state.create_run(optional_flow()))
    first = give(state, run, "front", "abcd")
    assert first["steps"]["measure-back"]["status"] == "waiting", "an optional input is waited for until the close"
    assert first["inputs_closed"] is False and first["optional"] == ["back"]
    done = close(state, run)
    assert done["status"] == "succeeded" and done["output"] == {"front": 4, "back": None}
    assert done["inputs_closed"] is True and done["inputs"] == {"front": True, "back": False}
    assert ("maybe", {"text": None}) in local.calls
    record = state.run(run.run_id)
    assert record is not None and record.inputs_closed and "back" not in record.values  # nothing stored for it
    assert snapshot_from_record(record)["inputs_closed"] is True


def test_closing_with_a_required_input_missing_is_a_conflict_naming_it(state: FlowState) -> None:
    run_id = state.create_run(optional_flow())
    assert state.add_input(run_id, "back", value_json=json.dumps("xy"))
    expected = r"required input\(s\) 'front' not given yet \(only its optional inputs \['back'\] may be missing\)"
    with pytest.raises(fn.Conflict, match=expected) as err:
        state.close_inputs(run_id)
    assert err.value.status == 409
    record = state.run(run_id)
    assert record is not None and not record.inputs_closed  # the run stays open for the missing input
    assert state.add_input(run_id, "front", value_json=json.dumps("abcd"))


def test_a_put_after_the_close_is_refused_and_closing_again_or_after_the_end_changes_nothing(state: FlowState) -> None:
    run_id = state.create_run(optional_flow())
    assert state.add_input(run_id, "front", value_json=json.dumps("abcd"))
    assert state.close_inputs(run_id) and state.close_inputs(run_id)  # idempotent
    with pytest.raises(fn.Conflict, match=f"inputs of run {run_id} are closed: input 'back' is refused") as err:
        state.add_input(run_id, "back", value_json=json.dumps("xy"))
    assert err.value.status == 409
    record = state.run(run_id)
    assert record is not None and "back" not in record.values

    finished = state.create_run(optional_flow())
    state.finish_run(finished, error={"type": "Abandoned", "message": "no progress"})
    assert state.close_inputs(finished)  # its required input is missing, but a close racing the end is no error
    record = state.run(finished)
    assert record is not None and not record.inputs_closed and record.status == "failed"
    assert not state.close_inputs("no-such-run")


def test_a_run_recreated_after_its_inputs_were_closed_runs_its_steps_with_none(state: FlowState, tmp_path: Path) -> None:
    before = optional_runtime()
    run = new_run(state, tmp_path, before, run_id=state.create_run(optional_flow()))
    give(state, run, "front", "abcd")
    assert state.close_inputs(run.run_id)  # checkpointed; the host died before it was told

    after = optional_runtime()
    resumed = new_run(state, tmp_path, after, run_id=run.run_id)
    done = asyncio.run(_settled(resumed, resumed.state()))
    assert done["status"] == "succeeded" and done["output"] == {"front": 4, "back": None}
    assert [c for c, _ in after.calls] == ["maybe", "decide"]  # measure-front was not run again
    assert after.calls[0] == ("maybe", {"text": None})


def test_a_close_picks_up_an_input_checkpointed_before_it_even_if_its_put_has_not_arrived(
        state: FlowState, tmp_path: Path) -> None:
    local = optional_runtime()
    run = new_run(state, tmp_path, local, run_id=state.create_run(optional_flow()))
    give(state, run, "front", "abcd")
    assert state.add_input(run.run_id, "back", value_json=json.dumps("xy"))  # the host is not told (yet)
    done = close(state, run)
    assert done["output"] == {"front": 4, "back": 2}, "a given input must never be replaced by None"


def test_a_database_from_before_closing_inputs_gains_the_column_and_its_runs_load(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    spec = documents_flow().model_dump(mode="json")
    del spec["optional"]  # a spec stored before optional inputs existed
    with engine.begin() as connection:  # the flow_runs table as an earlier release created it
        connection.execute(text("CREATE TABLE flow_runs (id VARCHAR(32) PRIMARY KEY, flow VARCHAR(63), spec TEXT, "
                                "status VARCHAR(16), owner VARCHAR(16), output TEXT, error TEXT, created_at DATETIME, "
                                "updated_at DATETIME)"))
        connection.execute(text("INSERT INTO flow_runs VALUES ('old1', 'unit-docs', :spec, 'running', NULL, NULL, "
                                "NULL, '2026-01-01', '2026-01-01')"), {"spec": json.dumps(spec)})
    engine.dispose()
    state = FlowState(url)
    record = state.run("old1")
    assert record is not None and record.spec.optional == () and not record.inputs_closed
    assert state.add_input("old1", "front", value_json=json.dumps("abcd"))
    with pytest.raises(fn.Conflict, match=r"'back' not given yet \(flow 'unit-docs' has no optional inputs\)"):
        state.close_inputs("old1")


def test_a_put_and_a_close_take_the_runs_lock_so_neither_slips_past_the_other(state: FlowState) -> None:
    run_id = state.create_run(optional_flow())
    assert state.add_input(run_id, "front", value_json=json.dumps("abcd"))

    def racing(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
        outcome: list[Any] = []

        def attempt() -> None:
            try:
                outcome.append(call())
            except fn.Conflict as exc:
                outcome.append(exc)

        thread = threading.Thread(target=attempt)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive(), "it must wait for the lock the other holds"
        return thread, outcome

    with state._session() as session:  # a put between taking the lock and writing its input
        assert _lock_run(session, run_id) is not None
        closing, closed = racing(lambda: state.close_inputs(run_id))
        session.add(_Value(run_id=run_id, name="back", kind="input", value=json.dumps("xy")))
    closing.join(10)
    record = state.run(run_id)
    assert closed == [True] and record is not None and record.inputs_closed and "back" in record.values

    other = state.create_run(optional_flow())
    assert state.add_input(other, "front", value_json=json.dumps("abcd"))
    with state._session() as session:  # a close between taking the lock and writing it
        row = _lock_run(session, other)
        assert row is not None
        putting, put = racing(lambda: state.add_input(other, "back", value_json=json.dumps("xy")))
        row.inputs_closed_at = utcnow()
    putting.join(10)
    assert len(put) == 1 and isinstance(put[0], fn.Conflict), put
    record = state.run(other)
    assert record is not None and "back" not in record.values
