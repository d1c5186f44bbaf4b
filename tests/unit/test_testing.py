"""fn.testing.local(): the functions and flows a process declares, called in-process as on the platform."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import fn
import fn.testing

SOURCE = '''
import time
import fn

class Rejected(fn.BadRequest):
    pass

@fn.function(name="t-add")
def add(a: int, b: int = 10) -> int:
    return a + b

@fn.function(name="t-boom")
def boom(x: int) -> int:
    return {}["missing"]

@fn.function(name="t-refuse")
def refuse(x: int) -> int:
    raise Rejected(f"{x} is not allowed", status=400)

@fn.function(name="t-slow", timeout_s=0.2)
def slow(x: int) -> int:
    time.sleep(2)
    return x

@fn.function(name="t-double", max_batch_size=8)
async def double(xs: list[int]) -> list[int]:
    return [2 * x for x in xs]

@fn.model(name="t-counter")
class Counter:
    setups = 0
    def setup(self) -> None:
        type(self).setups += 1
        self.prefix = ">"
    def __call__(self, text: str) -> str:
        return self.prefix + text

FLAKY = {"left": 1}

@fn.function(name="t-count")
def count(n: int):
    for i in range(n):
        yield i

@fn.function(name="t-acount")
async def acount(n: int):
    for i in range(n):
        yield f"t{i}"

@fn.function(name="t-flaky")
def flaky(x: int) -> int:
    if FLAKY["left"]:
        FLAKY["left"] -= 1
        raise RuntimeError("transient")
    return x

flow = fn.Flow("t-sum", inputs=["a", "b"], retries=1)
first = flow.step("t-flaky", inputs={"x": "a"})
flow.output("t-add", inputs={"a": first, "b": "b"})

broken = fn.Flow("t-broken", inputs=["x"], retries=2)
broken.output("t-boom", inputs=["x"])

@fn.function(name="t-maybe")
def maybe(x: int | None) -> int:
    return -1 if x is None else x

partial = fn.Flow("t-partial", inputs=["a", "b"], optional=["b"])
left = partial.step("t-add", inputs={"a": "a"}, name="left")
right = partial.step("t-maybe", inputs={"x": "b"})
partial.output("t-add", inputs={"a": left, "b": right}, name="total")
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    path = tmp_path_factory.mktemp("proj") / "fn_testing_subject.py"
    path.write_text(textwrap.dedent(SOURCE))
    spec = importlib.util.spec_from_file_location("fn_testing_subject", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules["fn_testing_subject"] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def test_calls_go_to_the_declared_functions(module: ModuleType) -> None:
    with fn.testing.local():
        assert fn.call("t-add", a=2, b=3) == 5
        assert fn.call("t-add", a="2") == 12  # validated and coerced as on the platform
        assert asyncio.run(fn.acall("t-add", a=1, b=1)) == 2
        assert fn.map("t-add", [{"a": i, "b": i} for i in range(5)]) == [0, 2, 4, 6, 8]
        pending = fn.ref("t-add").remote(a=1, b=2)
        assert fn.call("t-add", a=pending, b=4) == 7  # a pending result handed on


def test_bad_arguments_name_the_field(module: ModuleType) -> None:
    with fn.testing.local(), pytest.raises(fn.ValidationFailed) as info:
        fn.call("t-add", b="x")
    assert info.value.status == 422
    assert {d["field"] for d in info.value.detail} == {"a", "b"}


def test_errors_reach_the_caller_as_on_the_platform(module: ModuleType) -> None:
    with fn.testing.local():
        with pytest.raises(fn.RemoteError) as remote:
            fn.call("t-boom", x=1)
        assert (remote.value.status, remote.value.error_type, remote.value.message) == (500, "KeyError", "'missing'")
        with pytest.raises(module.Rejected, match="1 is not allowed"):
            fn.call("t-refuse", x=1)
        with pytest.raises(fn.Timeout, match=r"t-slow ran past its timeout_s of 0\.2 s"):
            fn.call("t-slow", x=1)
        with pytest.raises(fn.NotFound, match="no function named 'nope' is declared in this process"):
            fn.call("nope")


def test_a_model_is_set_up_once_and_a_batched_function_gets_lists(module: ModuleType) -> None:
    with fn.testing.local():
        assert [fn.call("t-counter", text=t) for t in ("a", "b")] == [">a", ">b"]
        assert fn.call("t-double", xs=21) == 42
    assert module.Counter.setups == 1


def test_a_flow_runs_its_steps_as_inputs_arrive_and_retries(module: ModuleType) -> None:
    with fn.testing.local():
        run = fn.flows.start("t-sum")
        assert run.put("a", 5)["steps"]["t-flaky"] == {"status": "succeeded", "attempts": 2}  # retried once
        assert run.status()["status"] == "running"
        with pytest.raises(fn.Conflict, match="already given"):
            run.put("a", 6)
        with pytest.raises(fn.NotFound, match="has no input 'c'"):
            run.put("c", 1)
        run.put("b", 7)
        assert run.result() == 12
        assert fn.flows.run("t-sum", run.id).status()["output"] == 12


def test_a_step_failing_every_retry_fails_the_run_with_its_error(module: ModuleType) -> None:
    with fn.testing.local():
        run = fn.flows.start("t-broken")
        run.put("x", 1)
        state = run.status()
        assert state["status"] == "failed" and state["steps"]["t-boom"]["attempts"] == 3
        with pytest.raises(fn.RemoteError, match="'missing'") as info:
            run.result()
        assert info.value.error_type == "KeyError"


def test_outside_the_block_calls_go_to_the_platform_again(module: ModuleType, isolated_env: Path) -> None:
    with fn.testing.local():
        pass
    with pytest.raises(fn.ConfigError, match="no platform configured"):
        fn.call("t-add", a=1)


def test_a_flow_finishes_without_its_optional_input_once_the_inputs_are_closed(module: ModuleType) -> None:
    with fn.testing.local():
        run = fn.flows.start("t-partial")
        state = run.put("a", 5)
        assert state["steps"]["t-maybe"]["status"] == "waiting" and state["inputs_closed"] is False
        with pytest.raises(fn.Timeout, match=r"optional inputs b were never put .* call run\.close_inputs\(\)"):
            run.result()
        closed = run.close_inputs()
        assert closed["status"] == "succeeded" and closed["inputs_closed"] is True
        assert run.result() == 15 - 1  # t-maybe got None for b
        assert run.close_inputs()["output"] == 14  # again, and after the end: its state, no error
        with pytest.raises(fn.Conflict, match=f"inputs of run {run.id} are closed: input 'b' is refused") as info:
            run.put("b", 2)
        assert info.value.status == 409

        given = fn.flows.start("t-partial")
        given.put("b", 2)
        with pytest.raises(fn.Conflict, match=r"required input\(s\) 'a' not given yet") as refused:
            given.close_inputs()
        assert refused.value.status == 409 and given.status()["inputs_closed"] is False
        given.put("a", 1)
        assert given.result() == 13  # both given: no close needed


def test_a_generator_function_streams_its_chunks(module: ModuleType) -> None:
    with fn.testing.local():
        assert list(fn.stream("t-count", n=3)) == [0, 1, 2]
        assert list(fn.stream("t-acount", n=2)) == ["t0", "t1"]

        async def read() -> list[object]:
            return [chunk async for chunk in fn.stream("t-acount", n=3)]

        assert asyncio.run(read()) == ["t0", "t1", "t2"]
        with pytest.raises(TypeError, match="not a generator function"):
            list(fn.stream("t-add", a=1))
