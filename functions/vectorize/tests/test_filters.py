"""Search filters from HTTP: the structured form on declared fields, rendered by the code (every operator,
quoting, caps, injection attempts), and checked against a real Milvus Lite store: an injected string matches
only rows holding that very string."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vectorize.filters import MAX_FIELDS, MAX_IN_VALUES, MAX_STRING_CHARS, MAX_VALUES, FilterError, build_filter
from vectorize.milvus_store import StoreError, VectorStore, milvus

FIELDS = {"topic": "str", "source": "str", "position": "int", "score": "float"}


def build(value: Any) -> str:
    return build_filter(value, "text", FIELDS)


@pytest.mark.parametrize(("value", "expression"), [
    (None, ""),
    ({}, ""),
    ({"topic": "music"}, 'topic == "music"'),
    ({"position": 3}, "position == 3"),
    ({"score": 0.5}, "score == 0.5"),
    ({"score": 2}, "score == 2"),  # an int is a number
    ({"topic": {"in": ["music", "art"]}}, 'topic in ["music", "art"]'),
    ({"position": {"in": [1, 2]}}, "position in [1, 2]"),
    ({"position": {"gte": 0, "lt": 3}}, "(position >= 0 and position < 3)"),
    ({"position": {"gt": -1, "lte": 3}}, "(position > -1 and position <= 3)"),
    ({"score": {"lt": 1e-7}}, "score < 1e-07"),
    ({"topic": "music", "position": {"gte": 1}}, 'position >= 1 and topic == "music"'),  # fields in name order
])
def test_every_operator_renders_its_expression(value: Any, expression: str) -> None:
    assert build(value) == expression


@pytest.mark.parametrize(("value", "rendered"), [
    ('x" or 1==1', r'topic == "x\" or 1==1"'),
    ('x\\" or 1==1 or "', r'topic == "x\\\" or 1==1 or \""'),
    ("é ünï 😀", 'topic == "é ünï 😀"'),  # not JSON's \u escapes, which Milvus does not read
    ("it's", 'topic == "it\'s"'),
])
def test_strings_are_quoted_and_escaped_by_the_code(value: str, rendered: str) -> None:
    assert build({"topic": value}) == rendered


@pytest.mark.parametrize(("value", "message"), [
    ('topic == "music"', "a Milvus expression string is not accepted"),
    ('x" or 1==1', "a Milvus expression string is not accepted"),
    (["topic"], "filter must be a JSON object"),
    ({"text": "x"}, "filter field 'text' is not a declared field of 'text'; fields: position (int), score (float)"),
    ({"topic or 1==1": "x"}, "is not a declared field"),
    ({"topic": ["a", "b"]}, 'for several values write {"topic": {"in": [...]}}'),
    ({"topic": {"like": "a%"}}, "operators are in, gt, gte, lt, lte; got 'like'"),
    ({"topic": {}}, "got none"),
    ({"topic": {"in": "music"}}, "'in' takes a non-empty list"),
    ({"topic": {"in": []}}, "'in' takes a non-empty list"),
    ({"position": {"in": [1], "gte": 0}}, "'in' cannot be combined with a range"),
    ({"topic": {"gte": "a"}}, "ranges (gt, gte, lt, lte) need a number field and 'topic' is a string field"),
    ({"position": {"gt": 1, "gte": 2}}, "at most one lower bound"),
    ({"position": {"lt": 1, "lte": 2}}, "one upper bound"),
    ({"topic": 5}, "'topic' is a string field, got int"),
    ({"topic": None}, "'topic' is a string field, got NoneType"),
    ({"position": "3"}, "'position' is a whole number field, got str"),
    ({"position": 1.5}, "'position' is a whole number field, got float"),
    ({"position": True}, "got bool"),
    ({"position": {"gte": "0 or 1==1"}}, "got str"),
    ({"score": float("nan")}, "finite"),
    ({"score": float("inf")}, "finite"),
    ({"position": 2**63}, "outside the 64-bit range"),
    ({"topic": "a\x00b"}, "control characters"),
    ({"topic": "line\nbreak"}, "control characters"),
    ({"topic": "\ud800"}, "control characters"),
])
def test_bad_filters_are_refused_saying_what_is_allowed(value: Any, message: str) -> None:
    with pytest.raises(FilterError) as info:
        build(value)
    assert message in str(info.value)


def test_a_raw_expression_is_refused_with_the_structured_form_and_the_fields() -> None:
    with pytest.raises(FilterError) as info:
        build('topic == "music"')
    message = str(info.value)
    assert '{"topic": {"in": ["music", "art"]}}' in message and '{"position": {"gte": 0, "lt": 3}}' in message
    assert "Fields of 'text': position (int), score (float), source (str), topic (str)" in message


def test_caps_bound_the_filter() -> None:
    many = {f"f{i}": "str" for i in range(MAX_FIELDS + 1)}
    with pytest.raises(FilterError, match=f"names {MAX_FIELDS + 1} fields, over the limit of {MAX_FIELDS}"):
        build_filter(dict.fromkeys(many, "x"), "c", many)
    assert build({"topic": {"in": ["x"] * MAX_IN_VALUES}}).count('"x"') == MAX_IN_VALUES
    with pytest.raises(FilterError, match=f"over the limit of {MAX_IN_VALUES}"):
        build({"topic": {"in": ["x"] * (MAX_IN_VALUES + 1)}})
    assert build({"topic": "x" * MAX_STRING_CHARS})
    with pytest.raises(FilterError, match=f"{MAX_STRING_CHARS + 1} characters, over the limit of {MAX_STRING_CHARS}"):
        build({"topic": "x" * (MAX_STRING_CHARS + 1)})
    wide = {f"f{i}": "str" for i in range(MAX_FIELDS)}
    per_field = MAX_VALUES // MAX_FIELDS + 1
    with pytest.raises(FilterError, match=f"more than {MAX_VALUES} values in all"):
        build_filter({name: {"in": ["x"] * per_field} for name in wide}, "c", wide)
    longest = build_filter({name: {"in": ["\"" * MAX_STRING_CHARS] * (MAX_VALUES // MAX_FIELDS)} for name in wide},
                           "c", wide)
    assert len(longest) < 160 * 1024  # the store caps expressions at 256 KiB; a built filter stays under


@pytest.fixture
def store(tmp_path: Path) -> VectorStore:
    store = VectorStore(str(tmp_path / "milvus.db"))
    store.ensure(milvus("c", dim=2, index="FLAT", fields=FIELDS))
    values = ["music", 'x" or 1==1', "back\\slash", "é ünï 😀", "art"]
    store.replace_items("c", [{"pk": f"k{i}#0", "item_key": f"k{i}", "content_sha": "s", "vector": [1.0, 0.1 * i],
                               "position": i, "topic": value, "source": "s", "score": i / 10}
                              for i, value in enumerate(values)])
    return store


def topics(store: VectorStore, value: Any) -> list[str]:
    hits = store.search("c", [1.0, 0.0], 10, build_filter(value, "c", FIELDS))
    return sorted(hit["metadata"]["topic"] for hit in hits)


def test_rendered_filters_select_exactly_the_matching_rows_in_milvus(store: VectorStore) -> None:
    assert topics(store, {"topic": "music"}) == ["music"]
    assert topics(store, {"topic": 'x" or 1==1'}) == ['x" or 1==1']  # its own row, not every row
    assert topics(store, {"topic": 'music" or 1==1 or topic == "'}) == []
    assert topics(store, {"topic": "back\\slash"}) == ["back\\slash"]
    assert topics(store, {"topic": "é ünï 😀"}) == ["é ünï 😀"]
    assert topics(store, {"topic": {"in": ["music", "art"]}}) == ["art", "music"]
    assert topics(store, {"position": {"gte": 1, "lt": 3}}) == ["back\\slash", 'x" or 1==1']
    assert topics(store, {"score": {"gt": 0.25}, "source": "s"}) == ["art", "é ünï 😀"]
    store.client.close()


def test_the_store_refuses_an_oversized_expression(store: VectorStore) -> None:
    with pytest.raises(StoreError, match="over 262,144") as info:
        store.search("c", [1.0, 0.0], 3, "position == 1 or " * 20000 + "position == 1")
    assert info.value.status == 400
    store.client.close()
