"""Documents on the client side: a PDF is sent one page per item, each page a PDF of its own.

PDFium opens the file from disk and reads what each page needs, so a PDF of any size is never read
whole into memory, and every call to ``vector-ingest`` carries whole pages. Each page is its own item
(``<file>:page<N>``) with its own content hash: an unchanged page is skipped by the store, and a
changed one re-done alone. The one-page PDF's bytes are made deterministic (PDFium draws its file
identifier at random and dates it), so the same page always has the same hash.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAX_DOCUMENT_BYTES = 20_000_000  # vector-ingest's limit for one item's file
PDF_SUFFIXES = {".pdf"}
SCAN_SUFFIXES = {".png", ".jpg", ".jpeg"}
_TRAILER_ID = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]*)>\s*<([0-9A-Fa-f]*)>\s*\]")
_DATE = re.compile(rb"/(?:CreationDate|ModDate)\s*\(([^)]*)\)")
_PDFIUM = threading.Lock()

Load = Callable[[], "dict[str, Any] | str"]  # an item, or the reason this input failed


def stable(data: bytes) -> bytes:
    """*data* (a PDF PDFium wrote) with what PDFium draws anew each time fixed: the trailer's /ID (random) becomes a
    hash of the rest of the file, and the /Info dictionary's dates a constant. Each value keeps its length, so the
    cross-reference offsets stay valid: the same page always gives the same bytes."""
    out = bytearray(data)
    tail_at = max(0, len(data) - 2048)
    info = re.search(rb"/Info\s+(\d+)\s+0\s+R", data[tail_at:])
    if info is not None:
        head = re.search(rb"(?:^|\s)" + info.group(1) + rb"\s+0\s+obj(.{0,1024}?)endobj", data, re.DOTALL)
        if head is not None:
            for date in _DATE.finditer(data, head.start(1), head.end(1)):
                start, end = date.span(1)
                out[start:end] = (b"D:20000101000000Z" + b" " * end)[:end - start]
    found = list(_TRAILER_ID.finditer(data, tail_at))
    if found:
        spans = [found[-1].span(1), found[-1].span(2)]
        for start, end in spans:
            out[start:end] = b"0" * (end - start)
        digest = hashlib.sha256(out).hexdigest().upper().encode() * 4
        for start, end in spans:
            out[start:end] = digest[:end - start]
    return bytes(out)


def _open(path: Path) -> Any:
    """PDFium's document for *path*, read from disk as needed; a str with the reason when it cannot be opened."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    with path.open("rb") as head:
        start = head.read(1024)
    if b"%PDF-" not in start:
        shown = start[:16].decode("ascii", "replace") if start[:16].isascii() else start[:16].hex(" ")
        return f"not a PDF (it starts with {shown!r})"
    try:
        with _PDFIUM:
            return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == raw.FPDF_ERR_PASSWORD:
            return "the PDF is encrypted and needs a password; ingest a decrypted copy (qpdf --decrypt)"
        return f"cannot read the PDF: {exc}"


def one_page(document: Any, index: int) -> bytes:
    """Page *index* of *document* as a PDF of its own (the page's fonts and images come with it)."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        single = pdfium.PdfDocument.new()
        try:
            single.import_pages(document, [index])
            buffer = io.BytesIO()
            single.save(buffer)
        finally:
            single.close()
    return stable(buffer.getvalue())


def page_item(rel: str, where: str, number: int, data: bytes) -> dict[str, Any] | str:
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"page {number} is {len(data):,} bytes as a PDF of its own, over vector-ingest's limit of " \
               f"{MAX_DOCUMENT_BYTES:,}"
    return {"id": f"{rel}:page{number}", "source": where, "page": number,
            "document_b64": base64.b64encode(data).decode()}


def pdf_entries(path: Path, rel: str, where: str) -> Iterator[tuple[str, Load]]:
    """``(where, load)`` for every page of the PDF at *path*, in order; a PDF that cannot be opened is one entry
    whose load gives the reason. Nothing is read until an entry is loaded, beyond the PDF's page tree."""
    document = _open(path)
    if isinstance(document, str):
        reason = document
        yield where, lambda: reason
        return
    try:
        with _PDFIUM:
            count = len(document)
        for index in range(count):
            number = index + 1

            def load(index: int = index, number: int = number) -> dict[str, Any] | str:
                try:
                    return page_item(rel, where, number, one_page(document, index))
                except Exception as exc:  # noqa: BLE001 - PDFium raises several types for a damaged page
                    return f"page {number}: cannot copy it out of the PDF: {exc}"

            yield f"{where}:page{number}", load
    finally:
        with _PDFIUM:
            document.close()


def scan_item(rel: str, where: str, data: bytes) -> dict[str, Any] | str:
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"the scan is {len(data):,} bytes, over vector-ingest's limit of {MAX_DOCUMENT_BYTES:,}"
    return {"id": rel, "source": where, "page": 1, "document_b64": base64.b64encode(data).decode()}
