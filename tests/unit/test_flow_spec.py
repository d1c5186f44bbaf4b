"""Flow declarations: what reads plainly is accepted, every mistake is named at declaration time."""

from __future__ import annotations

import pytest

import fn
from fn._flow import FlowSpec, StepSpec


def _spec(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"name": "f", "inputs": ("a",), "output": "two", "ttl_s": 60, "max_input_bytes": 10,
                               "steps": (StepSpec(name="one", function="one", inputs={"a": "input:a"}, retries=0),
                                         StepSpec(name="two", function="two", inputs={"one": "step:one"}, retries=0))}
    body.update(overrides)
    return body


def test_the_issue_example_declares_the_expected_graph() -> None:
    flow = fn.Flow("kyc-example", inputs=["front", "back", "selfie"])
    front = flow.step("read-front", inputs=["front"])
    back = flow.step("read-back", inputs=["back"])
    face = flow.step("match-face", inputs=["selfie", front])
    flow.output("decide", inputs=[front, back, face])
    spec = flow.spec()
    steps = {s.name: s.inputs for s in spec.steps}
    assert steps["match-face"] == {"selfie": "input:selfie", "read_front": "step:read-front"}
    assert steps["decide"] == {"read_front": "step:read-front", "read_back": "step:read-back",
                               "match_face": "step:match-face"}
    assert spec.output == "decide"
    assert all(step.retries == 2 for step in spec.steps)
    assert spec.order().index("read-front") < spec.order().index("match-face") < spec.order().index("decide")


def test_dict_inputs_choose_parameter_names() -> None:
    flow = fn.Flow("renamed", inputs=["front"])
    first = flow.step("ocr", inputs={"image": "front"})
    flow.output("decide", inputs={"text": first})
    assert [s.inputs for s in flow.spec().steps] == [{"image": "input:front"}, {"text": "step:ocr"}]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: fn.Flow("Bad Name", inputs=["a"]), "name='Bad Name' is invalid"),
    (lambda: fn.Flow("f", inputs=[]), "non-empty list"),
    (lambda: fn.Flow("f", inputs=["a", "a"]), "distinct"),
    (lambda: fn.Flow("f", inputs=["a"], retries=11), "retries=11"),
    (lambda: fn.Flow("f", inputs=["a"]).step("s", inputs=["b"]), "neither one of the flow's inputs"),
    (lambda: fn.Flow("f", inputs=["a", "b"], optional=["c"]),
     r"fn.Flow\('f'\): optional input 'c' is not one of its inputs \['a', 'b'\]"),
    (lambda: fn.Flow("f", inputs=["a", "b"], optional=["b", "b"]), r"optional=\['b', 'b'\] names an input twice"),
    (lambda: fn.Flow("f", inputs=["a", "b"], optional="b"), r"optional='b' must be a list of input names"),
])
def test_declaration_mistakes_are_named(build: object, message: str) -> None:
    with pytest.raises(fn.SpecError, match=message):
        build()  # type: ignore[operator]


def test_steps_of_another_flow_duplicate_steps_and_missing_output_are_refused() -> None:
    other = fn.Flow("other", inputs=["a"]).step("s", inputs=["a"])
    flow = fn.Flow("mine", inputs=["a"])
    with pytest.raises(fn.SpecError, match="belongs to another flow"):
        flow.step("t", inputs=[other])
    flow.step("t", inputs=["a"])
    with pytest.raises(fn.SpecError, match="already exists"):
        flow.step("t", inputs=["a"])
    with pytest.raises(fn.SpecError, match="no output step"):
        flow.spec()
    flow.output("u", inputs=["a"])
    with pytest.raises(fn.SpecError, match="already has an output"):
        flow.output("v", inputs=["a"])


def test_server_side_spec_rejects_cycles_missing_steps_and_unknown_inputs() -> None:
    assert FlowSpec(**_spec()).order() == ["one", "two"]  # type: ignore[arg-type]
    cycle = (StepSpec(name="one", function="one", inputs={"two": "step:two"}, retries=0),
             StepSpec(name="two", function="two", inputs={"one": "step:one"}, retries=0))
    with pytest.raises(ValueError, match="cycle"):
        FlowSpec(**_spec(steps=cycle))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        FlowSpec(**_spec(steps=(StepSpec(name="two", function="two", inputs={"x": "step:gone"}, retries=0),)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of the flow's inputs"):
        FlowSpec(**_spec(steps=(StepSpec(name="two", function="two", inputs={"x": "input:zz"}, retries=0),)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output step 'nope' is not declared"):
        FlowSpec(**_spec(output="nope"))  # type: ignore[arg-type]


def test_optional_inputs_are_declared_checked_on_the_server_and_older_specs_still_load() -> None:
    flow = fn.Flow("with-optional", inputs=["front", "back"], optional=["back"])
    flow.output("decide", inputs=["front", "back"])
    spec = flow.spec()
    assert spec.optional == ("back",)
    assert FlowSpec.model_validate_json(spec.model_dump_json()) == spec
    with pytest.raises(ValueError, match=r"optional input 'zz' is not one of the flow's inputs \['a'\]"):
        FlowSpec(**_spec(optional=("zz",)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="names an input twice"):
        FlowSpec(**_spec(optional=("a", "a")))  # type: ignore[arg-type]
    stored = FlowSpec(**_spec()).model_dump(mode="json")  # type: ignore[arg-type]
    del stored["optional"]  # as a registry stored it before optional inputs existed
    assert FlowSpec.model_validate(stored).optional == ()
