"""What reaches the vectorize functions from HTTP: which of them have an endpoint at all, base64 images held to
an upload's limits before decoding, ingested items' ids and metadata, and search's 400s before any model runs."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from typing import Any

import pytest
from vectorize import ops, service
from vectorize.ops import ItemError, b64_image, decode_image
from vectorize.pipeline import Report
from vectorize.pipelines import COLLECTIONS

import fn


def test_only_ingest_search_and_admin_have_an_http_endpoint() -> None:
    specs = {spec.name: spec for spec in (getattr(obj, "__fn_spec__", None) for obj in vars(service).values())
             if isinstance(spec, fn.FunctionSpec)}
    assert {name for name, spec in specs.items() if spec.internal} == {"embed-text", "embed-image", "ocr-text",
                                                                       "vector-store"}
    assert {name for name, spec in specs.items() if not spec.internal} == {"vector-ingest", "vector-search",
                                                                           "vector-admin"}
    assert not any(spec.public for spec in specs.values())  # the HTTP ones still need a key


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds no pixels: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_base64_size_is_refused_from_its_length_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "MAX_IMAGE_BYTES", 10)
    for size in range(12):  # the decoded size is exact from the text's length, with or without padding
        text = base64.b64encode(b"x" * size).decode()
        if size <= 10:
            assert b64_image(text) == b"x" * size
        else:
            with pytest.raises(ItemError, match=f"holds a {size}-byte image, over the limit of 10"):
                b64_image(text)

    def no_decoding(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("an oversized image must be refused before its base64 is decoded")

    monkeypatch.setattr(ops.base64, "b64decode", no_decoding)
    with pytest.raises(ItemError, match="over the limit of 10"):
        b64_image("A" * 4_000_000)


@pytest.mark.parametrize(("value", "message"), [
    (None, "must be a base64 string, got NoneType"), (b"aGk=", "must be a base64 string, got bytes"),
    ("not base64!", "not valid base64"), ("aGk=\n", "not valid base64"),
])
def test_bad_base64_is_refused_with_the_reason(value: object, message: str) -> None:
    with pytest.raises(ItemError, match=message):
        b64_image(value)


@pytest.mark.parametrize(("width", "height", "message"), [
    (40_000, 30_000, "too many pixels"),         # Pillow's own cap, met while reading the header
    (8_000, 6_000, "over 40,000,000 pixels"),   # ours, before the pixels are decoded
])
def test_a_base64_decompression_bomb_is_refused_from_its_header(width: int, height: int, message: str) -> None:
    data = b64_image(base64.b64encode(png_header(width, height)).decode())
    with pytest.raises(ItemError, match=message):
        decode_image(data)


def item(raw: Any, pipeline: str = "text") -> tuple[Any, Report]:
    report = Report()
    return service._item(service.KINDS[pipeline], COLLECTIONS[pipeline], 0, raw, report), report


def test_a_good_item_keeps_its_metadata() -> None:
    parsed, report = item({"id": "a-1", "text": "Some text.", "topic": "music", "year": 1999, "source": "f.jsonl:1"})
    assert parsed is not None and report.failed == []
    assert parsed[0].meta == {"topic": "music", "year": 1999, "source": "f.jsonl:1", "id": "a-1"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"id": "a\x00b", "text": "x"}, "'id' must be a non-empty string"),
    ({"id": "x" * 257, "text": "x"}, "'id' must be a non-empty string of at most 256"),
    ({"id": True, "text": "x"}, "'id' must be"),
    ({"text": "x", "topic": 5}, "metadata field 'topic' is a str field of 'text' (searches filter on it), got int"),
    ({"text": "x", "source": {"path": "a"}}, "metadata field 'source' is a str field"),
    ({"text": "x", "topic": "t" * 1025}, "metadata field 'topic': at most 1024 characters"),
    ({"text": "x", "topic": "a\nb"}, "without control characters"),
    ({"text": "x", "position": "abc"}, "not one the pipeline sets"),
    ({"text": "x", "vector": [1, 2]}, "not one the pipeline sets"),
    ({"text": "x", "$meta": {}}, "not starting with '$'"),
    ({"text": "x", "k" * 65: 1}, "a name is 1 to 64 characters"),
    ({"text": "x", **{f"f{i}": i for i in range(33)}}, "33 metadata fields, over the limit of 32"),
])
def test_bad_items_fail_alone_with_the_reason(raw: dict[str, Any], message: str) -> None:
    parsed, report = item(raw)
    assert parsed is None
    assert message in report.failed[0]["error"]


def test_an_image_item_over_the_limit_fails_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "MAX_IMAGE_BYTES", 100)
    parsed, report = item({"id": "big", "image_b64": base64.b64encode(b"x" * 101).decode()}, "images")
    assert parsed is None
    assert report.failed == [{"id": "big", "source": "", "error": "image_b64 holds a 101-byte image, over the limit of 100"}]


def search(**arguments: Any) -> Any:
    return asyncio.run(service.vector_search(**arguments))


@pytest.mark.parametrize(("arguments", "message"), [
    ({"collection": "text", "query": "x", "filter": 'topic == "music"'}, "a Milvus expression string is not accepted"),
    ({"collection": "text", "query": "x", "filter": '{"year": 1999}'}, "filter field 'year' is not a declared field"),
    ({"collection": "text", "query": "x", "filter": {"topic": {"in": "music"}}}, "'in' takes a non-empty list"),
    ({"collection": "text", "query": "x" * 4001}, "query is 4,001 characters, over the limit of 4,000"),
    ({"collection": "text", "query": " "}, "send a non-empty 'query'"),
    ({"collection": "images"}, "upload an 'image'"),
    ({"collection": "images", "image_b64": "%%%"}, "not valid base64"),
    ({"collection": "images", "image_b64": base64.b64encode(png_header(8_000, 6_000)).decode()}, "over 40,000,000 pixels"),
])
def test_search_refuses_bad_input_with_400_before_any_model_runs(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(fn.BadRequest) as info:  # no platform here: any call to a model would fail otherwise
        search(**arguments)
    assert info.value.status == 400
    assert message in info.value.message


def test_search_and_admin_know_only_the_pipelines_collections() -> None:
    with pytest.raises(fn.NotFound, match="collections: text, images"):
        search(collection="milvus_internal", query="x")
    with pytest.raises(fn.NotFound, match="collections: text, images"):
        asyncio.run(service.vector_admin(op="drop", collection="other"))


@pytest.mark.parametrize(("given", "message"), [
    ('topic == "music"', "Milvus expressions are not accepted"),
    ('["music"]', "must be a JSON object of field conditions"),
])
def test_the_cli_sends_only_a_structured_filter(given: str, message: str) -> None:
    from click.testing import CliRunner
    from fnctl_vectorize import vectorize

    result = CliRunner().invoke(vectorize, ["search", "text", "volcano", "--filter", given])
    assert result.exit_code == 2
    assert "--filter" in result.output and message in result.output
