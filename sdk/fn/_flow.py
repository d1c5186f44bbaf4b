"""Flows: a small dataflow graph over deployed functions, whose inputs may arrive in separate requests.

::

    flow = fn.Flow("kyc", inputs=["front", "back", "selfie"])
    front = flow.step("read-front", inputs=["front"])            # runs when 'front' arrives
    back = flow.step("read-back", inputs=["back"])
    face = flow.step("match-face", inputs=["selfie", front])     # needs the selfie and read-front's result
    flow.output("decide", inputs=[front, back, face])

A step calls the deployed function of that name. Each input becomes the keyword argument of the
same name (a step's result: the step name with ``-`` -> ``_``); pass a dict to choose the
parameter names: ``inputs={"image": "front", "card": front}``.

``optional=["back"]`` names inputs a run may finish without: once a caller closes the run's inputs
(``run.close_inputs()``), a step that takes an optional input never given gets ``None`` for it, so
its parameter must say so (``back: bytes | None``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._errors import SpecError
from ._spec import NAME_PATTERN

_INPUT_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
_flows: dict[str, Flow] = {}


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    function: str = Field(pattern=NAME_PATTERN)
    inputs: dict[str, str]  # parameter -> "input:<name>" | "step:<name>"
    retries: int = Field(ge=0, le=10)


class FlowSpec(BaseModel):
    """The declaration the registry stores; checked again on the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    inputs: tuple[str, ...]
    # Inputs a run may finish without, once its inputs are closed; a spec stored before optional inputs has none.
    optional: tuple[str, ...] = ()
    steps: tuple[StepSpec, ...]
    output: str
    ttl_s: float = Field(gt=0, le=7 * 86400)
    max_input_bytes: int = Field(gt=0)
    prewarm: bool = True

    @model_validator(mode="after")
    def _graph(self) -> FlowSpec:
        steps = {s.name: s for s in self.steps}
        if len(steps) != len(self.steps):
            raise ValueError(f"flow {self.name!r} declares a step name twice")
        if self.output not in steps:
            raise ValueError(f"flow {self.name!r}: the output step {self.output!r} is not declared")
        for name in self.optional:
            if name not in self.inputs:
                raise ValueError(f"flow {self.name!r}: optional input {name!r} is not one of the flow's inputs "
                                 f"{list(self.inputs)}")
        if len(set(self.optional)) != len(self.optional):
            raise ValueError(f"flow {self.name!r}: optional={list(self.optional)} names an input twice")
        for step in self.steps:
            for param, source in step.inputs.items():
                kind, _, ref = source.partition(":")
                if kind == "input" and ref not in self.inputs:
                    raise ValueError(f"flow {self.name!r}: step {step.name!r} reads input {ref!r}, "
                                     f"which is not one of the flow's inputs {list(self.inputs)}")
                if kind == "step" and ref not in steps:
                    raise ValueError(f"flow {self.name!r}: step {step.name!r} needs step {ref!r}, which is missing")
                if kind not in {"input", "step"}:
                    raise ValueError(f"flow {self.name!r}: step {step.name!r} has a bad source {source!r} for {param!r}")
        self.order()  # raises on a cycle
        return self

    def order(self) -> list[str]:
        """Step names in an order that respects dependencies; raises ValueError on a cycle."""
        needs = {s.name: {src[5:] for src in s.inputs.values() if src.startswith("step:")} for s in self.steps}
        done: list[str] = []
        while len(done) < len(needs):
            ready = sorted(n for n, deps in needs.items() if n not in done and deps <= set(done))
            if not ready:
                stuck = sorted(set(needs) - set(done))
                raise ValueError(f"flow {self.name!r} has a cycle between steps {stuck}")
            done += ready
        return done


class StepRef:
    """A step's result, to be used as another step's input."""

    def __init__(self, flow: Flow, name: str) -> None:
        self.flow = flow
        self.name = name

    def __repr__(self) -> str:
        return f"<step {self.name!r} of flow {self.flow.name!r}>"


class Flow:
    """Declare a flow; see the module docstring. Options: ``retries`` per step (default 2),
    ``ttl_s`` (a run with no progress for this long is abandoned, default 3600) and
    ``max_input_mb`` (largest accepted input, default 20), ``prewarm`` (scale every step's function
    up from zero when a run starts, so cold starts overlap; default True) and ``optional`` (inputs a
    run may finish without once its inputs are closed: their steps get ``None``; default none)."""

    def __init__(self, name: str, *, inputs: list[str], optional: list[str] | tuple[str, ...] = (), retries: int = 2,
                 ttl_s: float = 3600, max_input_mb: float = 20, prewarm: bool = True) -> None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise SpecError(f"fn.Flow: name={name!r} is invalid: lowercase letters, digits and '-', starting with a letter")
        if not inputs or len(set(inputs)) != len(inputs):
            raise SpecError(f"fn.Flow({name!r}): inputs={inputs!r} must be a non-empty list of distinct names")
        for item in inputs:
            if not isinstance(item, str) or not re.fullmatch(_INPUT_PATTERN, item):
                raise SpecError(f"fn.Flow({name!r}): input {item!r} must be a lowercase name like 'front'")
        if isinstance(optional, str):  # tuple("back") would silently become four inputs
            raise SpecError(f"fn.Flow({name!r}): optional={optional!r} must be a list of input names, "
                            f"e.g. optional=[{optional!r}]")
        for item in optional:
            if item not in inputs:
                raise SpecError(f"fn.Flow({name!r}): optional input {item!r} is not one of its inputs {list(inputs)}; "
                                f"optional lists only names from inputs")
        if len(set(optional)) != len(optional):
            raise SpecError(f"fn.Flow({name!r}): optional={list(optional)!r} names an input twice")
        if not 0 <= retries <= 10:
            raise SpecError(f"fn.Flow({name!r}): retries={retries} must be between 0 and 10")
        self.name = name
        self.inputs = tuple(inputs)
        self.optional = tuple(optional)
        self.retries = retries
        self.ttl_s = ttl_s
        self.max_input_bytes = int(max_input_mb * 1024 * 1024)
        self.prewarm = prewarm
        self._steps: list[StepSpec] = []
        self._output: str | None = None
        previous = _flows.get(name)
        if previous is not None and previous is not self:
            _flows.pop(name)
        _flows[name] = self

    def step(self, function: str, *, inputs: list[str | StepRef] | dict[str, str | StepRef], name: str | None = None,
             retries: int | None = None) -> StepRef:
        """A step that calls the deployed *function* once its *inputs* exist; returns its result's reference."""
        where = f"flow {self.name!r}, step {name or function!r}"
        step_name = name or function
        if any(s.name == step_name for s in self._steps):
            raise SpecError(f"{where}: a step named {step_name!r} already exists; pass name='...' to tell them apart")
        pairs = inputs.items() if isinstance(inputs, dict) else ((None, item) for item in inputs)
        mapped: dict[str, str] = {}
        for param, source in pairs:
            if isinstance(source, StepRef):
                if source.flow is not self:
                    raise SpecError(f"{where}: {source!r} belongs to another flow")
                key, ref = param or source.name.replace("-", "_"), f"step:{source.name}"
            elif isinstance(source, str) and source in self.inputs:
                key, ref = param or source, f"input:{source}"
            else:
                raise SpecError(f"{where}: input {source!r} is neither one of the flow's inputs {list(self.inputs)} "
                                f"nor a step of this flow")
            if key in mapped:
                raise SpecError(f"{where}: two inputs map to the parameter {key!r}; pass a dict to name them")
            mapped[key] = ref
        try:
            spec = StepSpec(name=step_name, function=function, inputs=mapped,
                            retries=self.retries if retries is None else retries)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        self._steps.append(spec)
        return StepRef(self, step_name)

    def output(self, function: str, *, inputs: list[str | StepRef] | dict[str, str | StepRef],
               name: str | None = None) -> StepRef:
        """The last step: its result is the run's output."""
        if self._output is not None:
            raise SpecError(f"flow {self.name!r} already has an output step ({self._output!r})")
        ref = self.step(function, inputs=inputs, name=name)
        self._output = ref.name
        return ref

    def spec(self) -> FlowSpec:
        if self._output is None:
            raise SpecError(f"flow {self.name!r} has no output step: end it with flow.output('function', inputs=[...])")
        try:
            return FlowSpec(name=self.name, inputs=self.inputs, optional=self.optional, steps=tuple(self._steps),
                            output=self._output, ttl_s=self.ttl_s, max_input_bytes=self.max_input_bytes,
                            prewarm=self.prewarm)
        except ValueError as exc:
            raise SpecError(str(exc)) from None


def declared_flows() -> dict[str, Flow]:
    return dict(_flows)
