"""Search filters: a JSON object checked against the collection's declared metadata fields and rendered to a
Milvus boolean expression by this code, never taken from the caller as text.

    {"topic": "music"}                          topic == "music"
    {"topic": {"in": ["music", "art"]}}         topic in ["music", "art"]
    {"position": {"gte": 0, "lt": 3}}           (position >= 0 and position < 3)

Clauses on several fields are joined by ``and``. Every value is type-checked against its field's declared
type and written as a literal (strings quoted and escaped), and the filter is capped in fields, values
and string length, so its size and the store's work stay bounded. A raw expression is refused: its
cost is unbounded and it reaches every field, declared or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FIELD_TYPES = ("str", "int", "float")
RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPERATORS = ("in", *RANGE_OPERATORS)
MAX_FIELDS = 8
MAX_IN_VALUES = 32
MAX_VALUES = 64  # in the whole filter
MAX_STRING_CHARS = 1024  # a file path or an s3:// key as `source`
INT64 = 2**63
EXAMPLE = '{"topic": "music"}, {"topic": {"in": ["music", "art"]}} or {"position": {"gte": 0, "lt": 3}}'


class FilterError(ValueError):
    """The filter is not one this collection accepts; the message says what is allowed."""


def build_filter(value: Any, collection: str, fields: Mapping[str, str]) -> str:
    """The Milvus expression for *value*, a structured filter on the declared *fields* (name -> type); "" for none."""
    if value is None or value == {}:
        return ""
    declared = ", ".join(f"{name} ({kind})" for name, kind in sorted(fields.items())) or "none"
    if isinstance(value, str):
        raise FilterError(f"filter must be a JSON object of field conditions, e.g. {EXAMPLE}; a Milvus expression "
                          f"string is not accepted. Fields of {collection!r}: {declared}")
    if not isinstance(value, dict):
        raise FilterError(f"filter must be a JSON object, e.g. {EXAMPLE}; got {type(value).__name__}")
    if len(value) > MAX_FIELDS:
        raise FilterError(f"filter names {len(value)} fields, over the limit of {MAX_FIELDS}")
    clauses = []
    budget = [MAX_VALUES]
    for name in sorted(value, key=str):
        if name not in fields:
            raise FilterError(f"filter field {str(name)[:MAX_STRING_CHARS]!r} is not a declared field of {collection!r}; "
                              f"fields: {declared}")
        clauses.append(_clause(name, fields[name], value[name], budget))
    return " and ".join(clauses)


def _clause(name: str, kind: str, condition: Any, budget: list[int]) -> str:
    if isinstance(condition, list):
        raise FilterError(f'filter on {name!r}: for several values write {{"{name}": {{"in": [...]}}}}')
    if not isinstance(condition, dict):
        return f"{name} == {_literal(name, kind, condition, budget)}"
    unknown = sorted(str(op) for op in condition if op not in OPERATORS)
    if unknown or not condition:
        got = f"got {', '.join(repr(op[:20]) for op in unknown)}" if unknown else "got none"
        raise FilterError(f"filter on {name!r}: operators are {', '.join(OPERATORS)}; {got}")
    if "in" in condition:
        if len(condition) > 1:
            raise FilterError(f"filter on {name!r}: 'in' cannot be combined with a range; use one or the other")
        values = condition["in"]
        if not isinstance(values, list) or not values:
            raise FilterError(f"filter on {name!r}: 'in' takes a non-empty list of values")
        if len(values) > MAX_IN_VALUES:
            raise FilterError(f"filter on {name!r}: 'in' has {len(values)} values, over the limit of {MAX_IN_VALUES}")
        return f"{name} in [{', '.join(_literal(name, kind, item, budget) for item in values)}]"
    if kind == "str":
        raise FilterError(f"filter on {name!r}: ranges ({', '.join(RANGE_OPERATORS)}) need a number field and {name!r} "
                          f"is a string field; match a value or {{\"in\": [...]}}")
    if {"gt", "gte"} <= condition.keys() or {"lt", "lte"} <= condition.keys():
        raise FilterError(f"filter on {name!r}: give at most one lower bound (gt or gte) and one upper bound (lt or lte)")
    bounds = [f"{name} {RANGE_OPERATORS[op]} {_literal(name, kind, condition[op], budget)}"
              for op in RANGE_OPERATORS if op in condition]
    return bounds[0] if len(bounds) == 1 else f"({' and '.join(bounds)})"


def plain_text(value: str) -> bool:
    """No control characters and no lone surrogates: what a Milvus string literal holds without escapes."""
    return not any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def string_literal(value: str) -> str:
    """A Milvus string literal: only the backslash and the double quote are escaped. (JSON's \\uXXXX escapes
    are not Milvus syntax: a search for "é" written that way fails.)"""
    if not plain_text(value):
        raise FilterError(f"{value[:40]!r} holds control characters, which a filter cannot match")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(name: str, kind: str, value: Any, budget: list[int]) -> str:
    """*value* as a Milvus literal of the field's type; the caller's text never reaches the expression otherwise."""
    budget[0] -= 1
    if budget[0] < 0:
        raise FilterError(f"filter has more than {MAX_VALUES} values in all; narrow it")
    if kind == "str":
        if not isinstance(value, str):
            raise FilterError(f"filter on {name!r}: {name!r} is a string field, got {type(value).__name__}")
        if len(value) > MAX_STRING_CHARS:
            raise FilterError(f"filter on {name!r}: a value is {len(value)} characters, over the limit of "
                              f"{MAX_STRING_CHARS}")
        if not plain_text(value):
            raise FilterError(f"filter on {name!r}: a value holds control characters; send plain text")
        return string_literal(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind == "int" and not isinstance(value, int)):
        wanted = "a whole number" if kind == "int" else "a number"
        raise FilterError(f"filter on {name!r}: {name!r} is {wanted} field, got {type(value).__name__}")
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise FilterError(f"filter on {name!r}: {value} is outside the 64-bit range")
        return str(value)
    if not math.isfinite(value):
        raise FilterError(f"filter on {name!r}: the value must be a finite number")
    return repr(value)
