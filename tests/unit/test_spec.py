"""FunctionSpec: one typed model for every option, and error messages that name the parameter and the fix."""

from __future__ import annotations

import pydantic
import pytest

import fn
from fn._spec import FunctionSpec, build_spec, default_name


def test_defaults_scale_to_zero_on_the_cpu_pool() -> None:
    spec = FunctionSpec(name="add")
    assert (spec.pool, spec.cpus, spec.gpus, spec.min_replicas, spec.max_replicas) == ("cpu", 0.25, 0, 0, 4)
    assert (spec.target_concurrency, spec.max_concurrency, spec.idle_timeout_s, spec.timeout_s) == (2, 100, 60, 300)
    assert spec.public is False
    assert spec.requirements == ()
    assert spec.env == {}


def test_spec_is_frozen_and_forbids_unknown_fields() -> None:
    spec = FunctionSpec(name="add")
    with pytest.raises(pydantic.ValidationError):
        spec.cpus = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="cpu"):
        FunctionSpec(name="add", cpu=1)  # type: ignore[call-arg]


def test_spec_round_trips_through_json() -> None:
    spec = FunctionSpec(name="resize-image", kind="model", entrypoint="pkg.mod:Resizer", pool="gpu", gpus=0.5,
                        memory_mb=2048, requirements=("numpy>=2",), env={"MODEL": "small"}, public=True)
    assert FunctionSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("name", ["a", "add", "resize-image", "x1", "a" * 63])
def test_valid_names(name: str) -> None:
    assert FunctionSpec(name=name).name == name


@pytest.mark.parametrize("name", ["", "Add", "1add", "-add", "add_one", "add.one", "a" * 64, "ädd"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("@fn.function on 'f'", name=name)
    message = str(info.value)
    assert f"name={name!r} is invalid" in message
    assert "lowercase letters, digits and '-'" in message


@pytest.mark.parametrize("gpus", [0, 0.25, 0.5, 1, 2, 8])
def test_gpu_counts_allowed(gpus: float) -> None:
    assert FunctionSpec(name="g", gpus=gpus).gpus == gpus


@pytest.mark.parametrize("gpus", [1.5, 9, -1])
def test_gpu_counts_rejected(gpus: float) -> None:
    with pytest.raises(fn.SpecError, match=rf"gpus={gpus!r} is invalid"):
        build_spec("here", name="g", gpus=gpus)


def test_fractional_gpus_above_one_say_why() -> None:
    with pytest.raises(fn.SpecError, match="above 1 must be a whole number"):
        build_spec("here", name="g", gpus=1.5)


@pytest.mark.parametrize(
    ("option", "value"),
    [("cpus", 0), ("cpus", -0.5), ("memory_mb", 0), ("min_replicas", -1), ("max_replicas", 0),
     ("target_concurrency", 0), ("max_concurrency", 0), ("idle_timeout_s", -1), ("timeout_s", 0),
     ("timeout_s", 86401), ("min_replicas", 1.5), ("pool", "GPU"), ("public", "maybe"),
     ("internal", "maybe"), ("internal", None)],
)
def test_bad_values_name_the_option_the_value_and_what_is_allowed(option: str, value: object) -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("@fn.function on 'f'", name="f", **{option: value})
    message = str(info.value)
    assert message.startswith("@fn.function on 'f': ")
    assert f"{option}={value!r} is invalid" in message


def test_hint_is_appended_to_the_error() -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("here", name="f", cpus=0)
    assert "(CPU cores per replica, > 0, fractions allowed, e.g. cpus=0.5)" in str(info.value)


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("here", name="f", cpu=1)
    message = str(info.value)
    assert "unknown option 'cpu'" in message
    assert "Allowed options: artifacts, callback_url, cpus, env, gpus," in message
    assert "entrypoint" not in message  # internal fields are not options


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("here", name="f", cpus=-1, max_replicas=0)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert any("cpus=-1" in line for line in lines)
    assert any("max_replicas=0" in line for line in lines)


def test_cross_field_errors_quote_both_values() -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("here", name="f", min_replicas=5, max_replicas=2)
    assert "max_replicas (2) must be >= min_replicas (5)" in str(info.value)
    with pytest.raises(fn.SpecError) as info:
        build_spec("here", name="f", target_concurrency=8, max_concurrency=4)
    assert "max_concurrency (4) must be >= target_concurrency (8.0)" in str(info.value)


def test_internal_defaults_to_false_and_round_trips() -> None:
    assert FunctionSpec(name="add").internal is False
    spec = FunctionSpec(name="vector-store", internal=True)
    assert FunctionSpec.model_validate_json(spec.model_dump_json()) == spec
    assert FunctionSpec.model_validate({"name": "old"}).internal is False  # specs stored before the option


@pytest.mark.parametrize(("other", "quoted"), [({"public": True}, "public=True"),
                                               ({"route": "/search/{q}"}, "route='/search/{q}'")])
def test_internal_contradicts_public_and_route_and_says_which_to_drop(other: dict[str, object], quoted: str) -> None:
    with pytest.raises(fn.SpecError) as info:
        fn.function(internal=True, **other)(lambda_free_function)
    message = str(info.value)
    assert message.startswith("@fn.function on 'lambda_free_function': internal=True and " + quoted)
    assert "an internal function has no HTTP endpoint" in message
    assert "drop internal=True" in message


class InternalStore:
    def __call__(self, op: str) -> str:
        return op


def test_internal_is_accepted_by_both_decorators() -> None:
    assert fn.function(internal=True, name="spec-internal-fn")(lambda_free_function).__fn_spec__.internal is True
    assert fn.model(internal=True, name="spec-internal-model")(InternalStore).__fn_spec__.internal is True


@pytest.mark.parametrize("requirement", ["", "  ", "-e .", "--index-url http://x"])
def test_requirements_reject_blank_and_pip_options(requirement: str) -> None:
    with pytest.raises(fn.SpecError, match="requirements="):
        build_spec("here", name="f", requirements=[requirement])


def test_requirements_are_stripped() -> None:
    assert build_spec("here", name="f", requirements=[" numpy>=2 "]).requirements == ("numpy>=2",)


def test_requirements_must_be_a_list_not_a_string() -> None:
    with pytest.raises(fn.SpecError, match="requirements='numpy' is invalid"):
        build_spec("here", name="f", requirements="numpy")


@pytest.mark.parametrize("env", [{"1BAD": "x"}, {"has space": "x"}, {"A-B": "x"}])
def test_env_names_must_be_valid_variable_names(env: dict[str, str]) -> None:
    with pytest.raises(fn.SpecError, match="is not a valid environment variable name"):
        build_spec("here", name="f", env=env)


def test_env_values_must_be_strings() -> None:
    with pytest.raises(fn.SpecError, match="env="):
        build_spec("here", name="f", env={"N": 1})


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cpus"):
        build_spec("here", name="f", cpus=0)


@pytest.mark.parametrize(
    ("python_name", "expected"),
    [("add", "add"), ("resize_image", "resize-image"), ("_private_fn_", "private-fn"), ("Reverser", "reverser")],
)
def test_default_name(python_name: str, expected: str) -> None:
    assert default_name(python_name) == expected


@pytest.mark.parametrize("name", ["flows", "search", "v1", "healthz"])
def test_platform_route_names_are_reserved(name: str) -> None:
    with pytest.raises(fn.SpecError, match="reserved"):
        fn.function(name=name)(lambda_free_function)


def lambda_free_function() -> int:
    return 1


def test_the_options_table_in_the_docs_is_generated_from_the_fields() -> None:
    from fn._spec import FunctionSpec, options_table

    from .conftest import REPO_ROOT

    assert options_table() in (REPO_ROOT / "docs" / "sdk.md").read_text(), "regenerate it: fn._spec.options_table()"
    options = set(FunctionSpec.model_fields) - {"kind", "entrypoint"}  # set by the decorator, not options
    described = {n for n in options if FunctionSpec.model_fields[n].description}
    assert described == options, "every option needs its description (the docs and the error hints)"


def test_secrets_are_a_tuple_of_names() -> None:
    spec = build_spec("here", name="f", secrets=["openai", "db-main"])
    assert spec.secrets == ("openai", "db-main")
    assert FunctionSpec(name="f").secrets == ()
    assert FunctionSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(("value", "problem"), [
    ("openai", "must be a list of secret names, e.g. secrets=['openai']"),
    (["OpenAI"], "secret name 'OpenAI' must be lowercase letters, digits and '-'"),
    (["a_b"], "secret name 'a_b' must be lowercase"),
    (["x", "x"], "'x' is named more than once"),
    ([f"s{i}" for i in range(21)], "at most 20"),
])
def test_bad_secrets_name_the_option_and_the_fix(value: object, problem: str) -> None:
    with pytest.raises(fn.SpecError) as info:
        build_spec("@fn.function on 'f'", name="f", secrets=value)
    message = str(info.value)
    assert "secrets=" in message and "is invalid" in message
    assert problem in message
    assert "fnctl secrets set" in message  # the option's hint follows the error

