"""A function's signature as its input schema: keyword arguments validated by pydantic."""

from __future__ import annotations

import inspect
import typing
from collections import abc
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from fn import ValidationFailed

_STREAMS = frozenset({abc.Iterator, abc.Iterable, abc.AsyncIterator, abc.AsyncIterable, abc.Generator, abc.AsyncGenerator})


class Signature:
    """Validates keyword arguments against a callable's type hints; knows its ``bytes`` parameters."""

    def __init__(self, target: Callable[..., Any], name: str, *, batched: bool = False) -> None:
        """With *batched*, each ``list[X]`` parameter is validated as one ``X``: the shape of a single call."""
        signature = inspect.signature(target)
        try:
            hints = typing.get_type_hints(target, include_extras=True)  # keeps Annotated[..., Field(...)] limits
        except Exception:  # noqa: BLE001 - unresolvable annotations fall back to Any, not a crash
            hints = {}
        fields: dict[str, Any] = {}
        annotations: dict[str, Any] = {}
        self.accepts_extra = False
        for param in signature.parameters.values():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self.accepts_extra = True
                continue
            hint = hints.get(param.name, Any)
            if typing.get_origin(hint) in _STREAMS:  # a stream argument (serving.streams): read as it comes, not checked
                hint = Any
            if batched and typing.get_origin(hint) is list:
                hint = (typing.get_args(hint) or (Any,))[0]
            annotations[param.name] = hint
            default = ... if param.default is inspect.Parameter.empty else param.default
            # Fields get neutral names and the parameter as alias: pydantic treats '_x' as private and warns
            # about names such as 'json' or 'copy' that shadow BaseModel attributes.
            fields[f"p{len(fields)}"] = (annotations[param.name], Field(default, alias=param.name))
        self.names = list(annotations)
        self._fields = dict(zip(fields, self.names, strict=True))
        self.bytes_params = [n for n, ann in annotations.items() if ann is bytes or ann == bytes | None]
        config = ConfigDict(extra="allow" if self.accepts_extra else "forbid", arbitrary_types_allowed=True)
        self._model: type[BaseModel] = create_model(f"{name}-arguments", __config__=config, **fields)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self._model.model_validate(arguments)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "(body)"
                message = "unexpected argument" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append({"field": field, "message": message})
            summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            allowed = ", ".join(self.names) or "none"
            raise ValidationFailed(f"invalid arguments: {summary} (parameters: {allowed})", status=422,
                                   detail=problems) from None
        values = {name: getattr(model, field) for field, name in self._fields.items()}
        if self.accepts_extra and model.model_extra:
            values.update(model.model_extra)
        return values
