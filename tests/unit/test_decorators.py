"""@fn.function and @fn.model: keyword-only options, validated when the decorator runs."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

import fn
from fn import _decorators


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_decorators, "_registry", {})


def define(source: str, module: str = "user_module") -> dict[str, Any]:
    """Run *source* as the body of module *module*: its functions are module-level, as in a real project."""
    namespace: dict[str, Any] = {"__name__": module, "fn": fn}
    exec(textwrap.dedent(source), namespace)
    return namespace


def test_function_with_options_keeps_the_function_and_attaches_its_spec() -> None:
    ns = define("""
        @fn.function(pool="cpu", cpus=0.5, max_replicas=3)
        def resize_image(width: int) -> int:
            return width * 2
    """)
    target = ns["resize_image"]
    assert target(4) == 8  # still plain Python locally
    spec = target.__fn_spec__
    assert isinstance(spec, fn.FunctionSpec)
    assert (spec.name, spec.kind, spec.entrypoint) == ("resize-image", "function", "user_module:resize_image")
    assert (spec.cpus, spec.max_replicas) == (0.5, 3)
    assert _decorators.registered() == {"resize-image": (spec, target)}


def test_function_without_parentheses() -> None:
    ns = define("""
        @fn.function
        def add(a: int, b: int) -> int:
            return a + b
    """)
    assert ns["add"](2, 3) == 5
    assert ns["add"].__fn_spec__ == fn.FunctionSpec(name="add", entrypoint="user_module:add")


def test_function_with_empty_parentheses_and_a_custom_name() -> None:
    ns = define("""
        @fn.function()
        def plain(): return 1

        @fn.function(name="named-one")
        def other(): return 2
    """)
    assert ns["plain"].__fn_spec__.name == "plain"
    assert ns["other"].__fn_spec__.name == "named-one"
    assert set(_decorators.registered()) == {"plain", "named-one"}


def test_model_with_and_without_parentheses() -> None:
    ns = define("""
        @fn.model(pool="gpu", gpus=0.5, idle_timeout_s=30)
        class Reverser:
            def setup(self):
                self.prefix = ">"
            def __call__(self, text: str) -> str:
                return self.prefix + text[::-1]

        @fn.model
        class Echo:
            def __call__(self, x):
                return x
    """)
    spec = ns["Reverser"].__fn_spec__
    assert (spec.name, spec.kind, spec.entrypoint, spec.pool, spec.gpus) == (
        "reverser", "model", "user_module:Reverser", "gpu", 0.5)
    assert ns["Echo"].__fn_spec__.kind == "model"
    instance = ns["Reverser"]()
    instance.setup()
    assert instance("abc") == ">cba"


def test_invalid_option_fails_at_decoration_naming_function_parameter_and_value() -> None:
    with pytest.raises(fn.SpecError) as info:
        define("""
            @fn.function(cpus=-1)
            def add(a, b): return a + b
        """)
    message = str(info.value)
    assert "@fn.function on 'add'" in message
    assert "cpus=-1 is invalid" in message
    assert "e.g. cpus=0.5" in message
    assert _decorators.registered() == {}


def test_typo_in_an_option_lists_the_allowed_options() -> None:
    with pytest.raises(fn.SpecError, match=r"unknown option 'replicas'\. Allowed options: .*max_replicas"):
        define("""
            @fn.function(replicas=2)
            def add(a, b): return a + b
        """)


def test_positional_argument_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(fn.SpecError) as info:
        fn.function("add")
    message = str(info.value)
    assert "keyword-only options, got 'add'" in message
    assert "Suggestion: @fn.function() or @fn.function(name='...')" in message
    with pytest.raises(fn.SpecError, match=r"Suggestion: @fn.model\(\)"):
        fn.model("Reverser")


def test_bare_decorator_with_options_is_rejected() -> None:
    def add(a: int) -> int:
        return a

    with pytest.raises(fn.SpecError, match="keyword-only options"):
        fn.function(add, cpus=1)


def test_function_decorator_on_a_class_points_to_model() -> None:
    with pytest.raises(fn.SpecError, match=r"for a class with setup\(\) use @fn.model"):
        define("""
            @fn.function()
            class Thing:
                def __call__(self): return 1
        """)


def test_model_decorator_on_a_function_points_to_function() -> None:
    with pytest.raises(fn.SpecError, match=r"for a plain function use @fn.function"):
        define("""
            @fn.model()
            def thing(): return 1
        """)


def test_function_decorator_on_a_non_function_object() -> None:
    with pytest.raises(fn.SpecError, match="keyword-only options, got 42"):
        fn.function()(42)


def test_model_needs_call() -> None:
    with pytest.raises(fn.SpecError, match=r"needs a __call__\(self, \.\.\.\) method"):
        define("""
            @fn.model()
            class NoCall:
                def setup(self): pass
        """)


def test_model_call_may_be_inherited() -> None:
    ns = define("""
        class Base:
            def __call__(self, x): return x

        @fn.model()
        class Child(Base):
            pass
    """)
    assert ns["Child"].__fn_spec__.name == "child"


def test_model_init_must_not_require_arguments() -> None:
    with pytest.raises(fn.SpecError, match=r"__init__ takes required arguments \['path'\]; load state in setup"):
        define("""
            @fn.model()
            class Loader:
                def __init__(self, path): self.path = path
                def __call__(self, x): return x
        """)


def test_positional_only_parameters_are_rejected() -> None:
    with pytest.raises(fn.SpecError, match=r"parameter 'a' is positional-only.*remove the '/'"):
        define("""
            @fn.function()
            def add(a, /, b): return a + b
        """)


def test_var_positional_parameters_are_rejected() -> None:
    with pytest.raises(fn.SpecError, match=r"\*items is not supported.*items: list\[str\]"):
        define("""
            @fn.function()
            def total(*items): return sum(items)
        """)


def test_model_call_signature_is_checked_too() -> None:
    with pytest.raises(fn.SpecError, match=r"\*args is not supported"):
        define("""
            @fn.model()
            class M:
                def __call__(self, *args): return args
        """)


def test_nested_function_is_rejected() -> None:
    def outer() -> None:
        @fn.function()
        def inner() -> int:
            return 1

    with pytest.raises(fn.SpecError, match=r"defined inside a function or is a lambda; .* module level"):
        outer()


def test_lambda_is_rejected() -> None:
    with pytest.raises(fn.SpecError, match="is a lambda"):
        fn.function(lambda: 1)


def test_same_name_for_two_functions_is_rejected() -> None:
    define("""
        @fn.function(name="add")
        def add(a, b): return a + b
    """, module="first")
    with pytest.raises(fn.SpecError) as info:
        define("""
            @fn.function(name="add")
            def plus(a, b): return a + b
        """, module="second")
    message = str(info.value)
    assert "the name 'add' is already used by first:add" in message
    assert "name='add-2'" in message


def test_redecorating_the_same_entrypoint_is_allowed() -> None:
    source = """
        @fn.function()
        def add(a, b): return a + b
    """
    define(source)
    define(source)  # e.g. the module imported twice
    assert list(_decorators.registered()) == ["add"]


def test_decorators_are_documented_with_units_and_an_example() -> None:
    assert fn.function.__doc__ is not None and fn.model.__doc__ is not None
    assert "MiB" in fn.function.__doc__
    assert "Example::" in fn.function.__doc__
    assert "Example::" in fn.model.__doc__
