"""``@fn.function`` and ``@fn.model``: declare deployable functions.

The decorators validate their options at once and return the decorated object unchanged (it
still runs locally as plain Python), with its spec attached as ``__fn_spec__`` and recorded in a
per-process registry that packaging reads.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._errors import SpecError
from ._spec import FunctionSpec, build_spec, default_name

T = TypeVar("T")

SPEC_ATTRIBUTE = "__fn_spec__"
_registry: dict[str, tuple[FunctionSpec, object]] = {}


def registered() -> dict[str, tuple[FunctionSpec, object]]:
    """Every function decorated in this process so far, by name."""
    return dict(_registry)


def _check_parameters(where: str, target: Callable[..., Any]) -> None:
    for param in inspect.signature(target).parameters.values():
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SpecError(
                f"{where}: parameter {param.name!r} is positional-only; calls pass arguments by name, "
                f"so remove the '/' from the signature"
            )
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise SpecError(
                f"{where}: *{param.name} is not supported; calls pass arguments by name, "
                f"so take a list parameter instead (e.g. items: list[str])"
            )


def _check_batched(where: str, target: Callable[..., Any]) -> None:
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable hints are checked again when the replica loads
        hints = {}
    names = [p.name for p in inspect.signature(target).parameters.values() if p.name != "self"]
    if not names:
        raise SpecError(f"{where}: max_batch_size > 1 needs at least one parameter, a list of one input per call")
    for name in names:
        hint = hints.get(name)
        if hint is not None and typing.get_origin(hint) is not list:
            raise SpecError(
                f"{where}: with max_batch_size > 1 the function receives a batch, so parameter {name!r} must be "
                f"annotated as a list (e.g. {name}: list[str]) and the function must return a list of one result "
                f"per input; callers still pass one value"
            )


def _check_no_arguments_needed(where: str, target: Callable[..., Any]) -> None:
    required = [p.name for p in inspect.signature(target).parameters.values() if p.name != "self"
                and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if required:
        raise SpecError(f"{where}: schedule= runs the function with no arguments, but it requires "
                        f"{', '.join(repr(n) for n in required)}; give them defaults, or drop schedule=")


def _register(where: str, obj: Any, kind: str, options: dict[str, Any]) -> None:
    qualname = getattr(obj, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise SpecError(
            f"{where}: {qualname!r} is defined inside a function or is a lambda; "
            f"a deployed function must be defined at module level so its replica can import it"
        )
    options.setdefault("name", default_name(obj.__name__))
    spec = build_spec(where, kind=kind, entrypoint=f"{obj.__module__}:{qualname}", **options)
    previous = _registry.get(spec.name)
    if previous is not None and previous[0].entrypoint != spec.entrypoint:
        raise SpecError(
            f"{where}: the name {spec.name!r} is already used by {previous[0].entrypoint}; "
            f"give one of them another name, e.g. name='{spec.name}-2'"
        )
    if spec.max_batch_size > 1:
        _check_batched(where, obj.__call__ if kind == "model" else obj)
    if spec.schedule is not None:
        _check_no_arguments_needed(where, obj.__call__ if kind == "model" else obj)
    _registry[spec.name] = (spec, obj)
    setattr(obj, SPEC_ATTRIBUTE, spec)


def _wrong_target(decorator: str, target: object) -> SpecError:
    return SpecError(
        f"@fn.{decorator} takes keyword-only options, got {target!r} as a positional argument. "
        f"Suggestion: @fn.{decorator}() or @fn.{decorator}(name='...')"
    )


@overload
def function(target: T, /) -> T: ...
@overload
def function(**options: Any) -> Callable[[T], T]: ...


def function(target: Any = None, /, **options: Any) -> Any:
    """Declare a plain Python function as a deployable, autoscaling function.

    Options (all keyword-only; see ``fn.FunctionSpec`` for limits):
    ``name`` (default: the function name with ``_`` -> ``-``), ``pool`` ("cpu" | "gpu" | "api" or a
    configured pool, default "cpu"), ``cpus`` (cores, fractions allowed, default 0.25), ``gpus``
    (0-8, default 0), ``memory_mb`` (MiB), ``min_replicas`` (default 0: scale to zero),
    ``max_replicas`` (default 4), ``target_concurrency`` (default 2), ``max_concurrency``
    (default 100), ``idle_timeout_s`` (seconds at zero load before scaling to zero, default 60),
    ``timeout_s`` (per call, default 300), ``requirements`` (pip strings), ``env`` (plain-text
    variables), ``secrets`` (names of secrets made with ``fnctl secrets set``; their keys are
    environment variables before the module is imported), ``public`` (HTTP without an API key,
    default False), ``internal`` (no HTTP route: only other functions and flows call it, default False).

    Example::

        @fn.function(pool="cpu", cpus=0.5, max_replicas=4)
        def add(a: int, b: int) -> int:
            return a + b
    """
    def decorate(obj: T) -> T:
        where = f"@fn.function on {getattr(obj, '__qualname__', obj)!r}"
        if inspect.isclass(obj):
            raise SpecError(f"{where}: @fn.function decorates functions; for a class with setup() use @fn.model(...)")
        if not inspect.isfunction(obj):
            raise _wrong_target("function", obj)
        _check_parameters(where, obj)
        _register(where, obj, "function", dict(options))
        return obj

    return _bare_or_called("function", target, options, decorate, inspect.isfunction)


@overload
def model(target: T, /) -> T: ...
@overload
def model(**options: Any) -> Callable[[T], T]: ...


def model(target: Any = None, /, **options: Any) -> Any:
    """Declare a class as a deployable model: ``setup()`` runs once per replica, ``__call__`` per request.

    Takes the same keyword-only options as ``@fn.function``. The class must be constructible
    without arguments.

    Example::

        @fn.model(pool="gpu", gpus=0.5, idle_timeout_s=30)
        class Reverser:
            def setup(self) -> None:
                self.prefix = ">"
            def __call__(self, text: str) -> str:
                return self.prefix + text[::-1]
    """
    def decorate(obj: T) -> T:
        where = f"@fn.model on {getattr(obj, '__qualname__', obj)!r}"
        if not inspect.isclass(obj):
            raise SpecError(f"{where}: @fn.model decorates classes; for a plain function use @fn.function(...)")
        if not any("__call__" in vars(klass) for klass in obj.__mro__ if klass is not object):
            raise SpecError(f"{where}: the class needs a __call__(self, ...) method that serves one request")
        init = inspect.signature(obj)
        required = [p.name for p in init.parameters.values() if p.default is inspect.Parameter.empty
                    and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        if required:
            raise SpecError(f"{where}: __init__ takes required arguments {required}; load state in setup() instead")
        _check_parameters(where, obj.__call__)
        _register(where, obj, "model", dict(options))
        return obj

    return _bare_or_called("model", target, options, decorate, inspect.isclass)


def _bare_or_called(kind: str, target: Any, options: dict[str, Any], decorate: Callable[[T], T],
                    fits: Callable[[Any], bool]) -> Any:
    """``@fn.KIND`` (the target given at once, no options) or ``@fn.KIND(...)`` (the decorator to apply)."""
    if target is None:
        return decorate
    if options or not fits(target):
        raise _wrong_target(kind, target)
    return decorate(target)


@overload
def asgi(target: T, /) -> T: ...
@overload
def asgi(**options: Any) -> Callable[[T], T]: ...


def asgi(target: Any = None, /, **options: Any) -> Any:
    """Serve a whole web app (FastAPI, Starlette or any ASGI app) as one autoscaling function.

    Decorates a function with no required parameters that builds and returns the app; each replica calls it
    once. Every path under ``/<name>/`` goes to the app: its routes, path parameters, query strings, streaming
    responses and WebSockets. The platform checks the API key (unless ``public=True``) and the body limit before
    the app sees a request, and counts its calls like any function's. Takes the options of ``@fn.function``
    except ``max_batch_size``, ``route``, ``schedule`` and ``internal``. Inside the app, call other functions
    with ``fn.call`` / ``await fn.acall``.

    Example::

        @fn.asgi(pool="api", min_replicas=1)
        def shop():
            from fastapi import FastAPI
            app = FastAPI()

            @app.get("/items/{item_id}")
            async def item(item_id: int) -> dict:
                return {"id": item_id, "score": await fn.acall("ranker", item=item_id)}

            return app
    """
    def decorate(obj: T) -> T:
        where = f"@fn.asgi on {getattr(obj, '__qualname__', obj)!r}"
        if not inspect.isfunction(obj):
            raise SpecError(f"{where}: @fn.asgi decorates a function that builds and returns the app, e.g. "
                            f"def api(): app = FastAPI(); ...; return app")
        required = [p.name for p in inspect.signature(obj).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if required:
            raise SpecError(f"{where}: the app builder is called with no arguments, but it requires "
                            f"{', '.join(repr(n) for n in required)}; read settings from fn.artifact, env= or secrets=")
        _register(where, obj, "asgi", dict(options))
        return obj

    return _bare_or_called("asgi", target, options, decorate, inspect.isfunction)
