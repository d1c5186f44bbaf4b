"""The documents pipeline: PDFs with and without a text layer and scanned images, page by page, into the store with
each chunk's page number; bad documents and failed pages reported alone. In this process (fn.testing.local()): the
real MiniLM, RapidOCR and Milvus Lite, no Ray."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from documents_helpers import b64, ingest, local_functions, samples, search
from vectorize.documents import MIN_TEXT_LAYER_CHARS, has_text, kind_of, needs_ocr, pages
from vectorize.pipeline import Item, ItemError, Pipeline, Report

DOCS = samples()
TEXTS = [p["text"] for p in DOCS.passages()]


def _pages(data: bytes, first: int = 1) -> list[tuple[Any, dict[str, Any]]]:
    return list(pages(data, {"page": first}))


def test_a_text_layer_gives_its_text_and_a_page_without_one_is_rendered_for_ocr() -> None:
    data = DOCS.text_pdf([DOCS.wrap(TEXTS[0]), DOCS.scanned_page([TEXTS[1]], dpi=72), ["7"]])
    (first, m1), (second, m2), (third, m3) = _pages(data, first=4)
    assert isinstance(first, str) and first.startswith("A volcano forms where molten rock")
    assert "\r" not in first and "Earth" not in first  # CRLF line ends made LF; only this page's text
    assert m1 == {"page": 4, "text_layer": True}
    assert needs_ocr(second) and second.startswith(b"\x89PNG") and m2 == {"page": 5, "text_layer": False}
    from PIL import Image

    assert Image.open(io.BytesIO(second)).size in {(1275, 1650), (1275, 1651)}  # letter at 150 dpi (PDFium rounds up)
    assert needs_ocr(third) and m3["page"] == 6  # a page number alone is under MIN_TEXT_LAYER_CHARS: a scan
    assert MIN_TEXT_LAYER_CHARS > 1


def test_a_scanned_image_is_one_page_for_ocr() -> None:
    buffer = io.BytesIO()
    DOCS.scanned_page(["Short scan."], dpi=50).save(buffer, "PNG")
    assert _pages(buffer.getvalue(), first=2) == [(buffer.getvalue(), {"page": 2, "text_layer": False})]


@pytest.mark.parametrize(("data", "message"), [
    (b"PK\x03\x04 a zip file", "not a PDF, PNG or JPEG document \\(it starts with"),
    (b"", "not a PDF, PNG or JPEG document"),
    (b"%PDF-1.4\nthis is not really a PDF", "cannot read the PDF"),
    (b"\x89PNG\r\n\x1a\n but broken", "cannot decode the image"),
])
def test_what_is_not_a_readable_document_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ItemError, match=message):
        _pages(data)


def test_an_encrypted_pdf_is_refused_with_the_reason() -> None:
    with pytest.raises(ItemError, match="the PDF is encrypted and needs a password"):
        _pages(DOCS.encrypted_pdf())
    assert kind_of(DOCS.encrypted_pdf()) == "pdf"


def test_a_page_that_fails_fails_alone_and_ocr_runs_only_on_rendered_pages() -> None:
    """flat_map outputs that are exceptions fail that page; map(when=...) sends only the values it accepts."""
    def explode(value: str, meta: dict[str, Any]) -> Any:
        yield "page one text", {"page": 1}
        yield ItemError("page 2: cannot read or render it: damaged"), {"page": 2}
        yield b"png of page three", {"page": 3}

    ocr_calls = []

    def fake_ocr(image: bytes) -> str:
        ocr_calls.append(image)
        return ""  # OCR read nothing: a blank page, filtered out

    pipe = Pipeline("d").flat_map(explode).map(fake_ocr, when=needs_ocr).filter(has_text)
    report = Report()
    out = asyncio.run(pipe.run([Item("doc", b"...", {"source": "d.pdf"})], report))
    assert [(i.value, i.meta["page"]) for i in out] == [("page one text", 1)]
    assert ocr_calls == [b"png of page three"]
    assert report.failed == [{"id": "doc", "source": "d.pdf", "error": "page 2: cannot read or render it: damaged",
                              "page": 2}]
    assert report.filtered == 1  # the blank page


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FN_HOME", str(tmp_path))
    monkeypatch.delenv("FN_MILVUS_URI", raising=False)
    return tmp_path


def test_pdfs_and_scans_are_stored_with_their_page_numbers_and_bad_ones_fail_alone(models: Path, home: Path) -> None:
    png, jpeg = io.BytesIO(), io.BytesIO()
    DOCS.scanned_page([TEXTS[40]], seed=40).save(png, "PNG")  # vaccines
    DOCS.scanned_page([TEXTS[56]], seed=56).convert("RGB").save(jpeg, "JPEG", quality=85)  # history
    items = [
        {"id": "report", "source": "report.pdf", "page": 11, "topic": "science",
         "document_b64": b64(DOCS.text_pdf([DOCS.wrap(TEXTS[8]), DOCS.wrap(TEXTS[24]), []]))},  # eclipse; tuning; blank
        {"id": "mixed", "source": "mixed.pdf",
         "document_b64": b64(DOCS.text_pdf([DOCS.wrap(TEXTS[16]), DOCS.scanned_page([TEXTS[0]], seed=1)]))},
        {"id": "scan-png", "source": "scan.png", "document_b64": b64(png.getvalue())},
        {"id": "scan-jpg", "source": "scan.jpg", "document_b64": b64(jpeg.getvalue())},
        {"id": "locked", "source": "locked.pdf", "document_b64": b64(DOCS.encrypted_pdf())},
        {"id": "zip", "source": "a.zip", "document_b64": b64(b"PK\x03\x04 not a document")},
        {"id": "damaged", "source": "damaged.pdf", "document_b64": b64(b"%PDF-1.7\n1 0 obj <<")},
        {"id": "blank", "source": "blank.pdf", "document_b64": b64(DOCS.text_pdf([[]]))},
        {"id": "bad-page", "page": 0, "document_b64": b64(DOCS.text_pdf([["x"]]))},
    ]
    with local_functions(home):
        report = ingest("documents", items)
        errors = {e["id"]: e["error"] for e in report["errors"]}
        assert errors == {
            "locked": "the PDF is encrypted and needs a password; send a decrypted copy (e.g. qpdf --password=... "
                      "--decrypt in.pdf out.pdf)",
            "zip": "not a PDF, PNG or JPEG document (it starts with 'PK\\x03\\x04 not a docum')",
            "damaged": errors["damaged"],
            "blank": "nothing to store: no page has text (blank, or OCR read nothing)",
            "bad-page": "'page' is the number of the document's first page, a whole number >= 1; got 0",
        }
        assert errors["damaged"].startswith("cannot read the PDF: Failed to load document")
        assert (report["stored"], report["failed"], report["partial"]) == (4, 5, 0)
        assert (report["skipped"], report["filtered"]) == (0, 2)  # the blank pages: report.pdf's third, blank.pdf's

        hits = search("documents", "a total eclipse of the Sun by the Moon", top_k=3)
        assert hits[0]["metadata"] | {"text": ""} == {
            "id": "report", "source": "report.pdf", "page": 11, "topic": "science", "text_layer": True,
            "position": 0, "start": 0, "end": hits[0]["metadata"]["end"], "text": ""}
        assert hits[0]["metadata"]["text"].startswith("A solar eclipse happens")
        tuning = search("documents", "a tuning system that divides the octave into equal steps", top_k=1)[0]
        assert (tuning["id"], tuning["metadata"]["page"], tuning["metadata"]["position"]) == ("report#1", 12, 1)

        scanned = search("documents", "molten rock rising from the mantle to the surface", top_k=1)[0]
        assert (scanned["id"], scanned["metadata"]["page"], scanned["metadata"]["text_layer"]) == ("mixed#1", 2, False)
        assert "magma" in scanned["metadata"]["text"].lower()  # read by OCR from the rendered page
        for query, expected in (("how vaccines train the immune system", "scan-png"), (TEXTS[56][:80], "scan-jpg")):
            hit = search("documents", query, top_k=1)[0]
            assert (hit["metadata"]["id"], hit["metadata"]["page"]) == (expected, 1), query

        only = search("documents", "volcano", top_k=5, filter={"page": {"gte": 2}, "source": "mixed.pdf"})
        assert {(h["metadata"]["source"], h["metadata"]["page"]) for h in only} == {("mixed.pdf", 2)}

        again = ingest("documents", items)  # unchanged documents are skipped, nothing is OCR'd again
        assert (again["stored"], again["skipped"]) == (0, 4)


def test_a_failed_page_is_reported_the_rest_stored_and_the_document_redone_next_time(
        models: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vectorize import service

    ocr_works = False

    def ocr(self: Any, image: bytes) -> str:
        if not ocr_works:
            raise RuntimeError("the OCR model ran out of memory")
        return "Glaciers carve U-shaped valleys as they move downhill."

    monkeypatch.setattr(service.OcrText, "setup", lambda self: None)
    monkeypatch.setattr(service.OcrText, "__call__", ocr)
    document = {"id": "guide", "source": "guide.pdf",
                "document_b64": b64(DOCS.text_pdf([DOCS.wrap(TEXTS[0]), DOCS.scanned_page(["x"], dpi=36)]))}
    with local_functions(home):
        first = ingest("documents", [document])
        assert first["errors"] == [{"id": "guide", "source": "guide.pdf", "page": 2,
                                    "error": "RuntimeError: the OCR model ran out of memory"}]
        assert (first["stored"], first["partial"], first["rows"]) == (1, 1, 1)
        assert [h["metadata"]["page"] for h in search("documents", "volcano", top_k=5)] == [1]

        ocr_works = True
        second = ingest("documents", [document])  # not skipped: the stored copy is partial
        assert (second["stored"], second["skipped"], second["partial"], second["failed"]) == (1, 0, 0, 0)
        hits = search("documents", "glaciers and valleys", top_k=5)
        assert sorted((h["id"], h["metadata"]["page"]) for h in hits) == [("guide#0", 1), ("guide#1", 2)]
        assert ingest("documents", [document])["skipped"] == 1  # complete now: skipped


def test_the_cli_sends_a_pdf_one_page_per_item_with_the_same_bytes_each_time(tmp_path: Path) -> None:
    from fnctl_vectorize.sources import entries

    def _entries(source: str, kind: str) -> list[tuple[str, Any]]:
        return [(where, load()) for where, load in entries(source, kind)]

    pdf = tmp_path / "guide.pdf"
    pdf.write_bytes(DOCS.text_pdf([DOCS.wrap(TEXTS[0]), DOCS.wrap(TEXTS[1]), DOCS.scanned_page(["x"], dpi=36)]))
    (tmp_path / "locked.pdf").write_bytes(DOCS.encrypted_pdf())
    (tmp_path / "fake.pdf").write_bytes(b"just text")
    (tmp_path / "notes.txt").write_text("not a document")
    found = _entries(str(tmp_path), "document")
    assert [where for where, _ in found] == [str(tmp_path / "fake.pdf"), *(f"{pdf}:page{n}" for n in (1, 2, 3)),
                                               str(tmp_path / "locked.pdf")]
    assert found[0][1] == "not a PDF (it starts with 'just text')"
    assert found[4][1].startswith("the PDF is encrypted and needs a password")
    items = [entry for _, entry in found[1:4]]
    assert [(i["id"], i["source"], i["page"]) for i in items] == [(f"guide.pdf:page{n}", str(pdf), n) for n in (1, 2, 3)]
    import pypdfium2 as pdfium

    for number, item in enumerate(items, 1):
        page = pdfium.PdfDocument(base64.b64decode(item["document_b64"]))
        assert len(page) == 1
        text = page[0].get_textpage().get_text_range()
        assert (text[:30] == TEXTS[number - 1][:30]) if number < 3 else text == ""
        page.close()
    again = [entry for _, entry in _entries(str(pdf), "document")]
    assert again == items  # PDFium's random file id and dates are fixed: an unchanged page has the same hash



def test_fnctl_ingests_a_folder_of_documents_a_page_per_item_into_the_functions(models: Path, home: Path,
                                                                                tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner
    from fnctl_vectorize import vectorize

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.pdf").write_bytes(DOCS.text_pdf([DOCS.wrap(TEXTS[0]), DOCS.wrap(TEXTS[8]), DOCS.wrap(TEXTS[24])]))
    (folder / "locked.pdf").write_bytes(DOCS.encrypted_pdf())
    with local_functions(home):
        first = CliRunner().invoke(vectorize, ["ingest", "documents", str(folder), "--batch-size", "2", "--json"])
        report = json.loads(first.output[:first.output.rindex("}") + 1])
        assert first.exit_code == 1 and "1 of 4 entries (or pages) failed" in first.output
        assert (report["stored"], report["rows"], report["entries"]) == (3, 3, 4)
        assert report["errors"][0]["error"].startswith("the PDF is encrypted and needs a password")
        hit = search("documents", "the Moon passes between the Sun and Earth", top_k=1)[0]
        assert (hit["id"], hit["metadata"]["page"], hit["metadata"]["source"]) == \
            ("guide.pdf:page2#0", 2, str(folder / "guide.pdf"))
        again = CliRunner().invoke(vectorize, ["ingest", "documents", str(folder / "guide.pdf"), "--json"])
        assert again.exit_code == 0 and json.loads(again.output)["skipped"] == 3  # same pages, same bytes: skipped


def test_a_text_item_with_a_page_field_still_fails_whole(models: Path, home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the documents pipeline stores a document without its failed pages; a text item's `page` is metadata."""
    from vectorize import service

    def embed(self: Any, text: list[str]) -> list[list[float]]:
        if "second" in text[0]:
            raise RuntimeError("the model is gone")
        return [[1.0] + [0.0] * 383]

    monkeypatch.setattr(service.EmbedText, "setup", lambda self: None)
    monkeypatch.setattr(service.EmbedText, "__call__", embed)
    long_text = "first words " * 150 + "second part " * 150  # two chunks or more
    with local_functions(home):
        report = ingest("text", [{"id": "book", "text": long_text, "page": 3}])
    assert (report["stored"], report["partial"], report["rows"]) == (0, 0, 0)
    assert report["errors"][0]["error"] == "RuntimeError: the model is gone"
