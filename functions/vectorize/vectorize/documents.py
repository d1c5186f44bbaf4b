"""Documents: PDFs and scanned pages into page texts, for the ``documents`` pipeline.

A PDF page with a text layer gives that text; a page without one (a scan) is rendered with PDFium at
``RENDER_DPI`` and its PNG goes to the ``ocr-text`` function. A PNG or JPEG is one scanned page. Every
page carries its number (``page``: the item's ``page`` field, 1 by default, plus its index), so a chunk
says where it came from. A bad document fails its item with the reason (not a PDF or an image, an
encrypted or damaged PDF, too many pages); a page that cannot be read or rendered fails that page only.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from typing import Any

from .ops import MAX_IMAGE_BYTES, decode_image
from .pipeline import ItemError

MAX_DOCUMENT_BYTES = MAX_IMAGE_BYTES  # 20 MB, an upload's limit; fnctl sends a PDF one page per item
MAX_PAGES = 200  # per item: a scanned page costs an OCR call, a few seconds on a CPU
RENDER_DPI = 150  # a letter page is 1275 x 1650 pixels: 11 pt text is 23 px high, which OCR reads reliably
MAX_RENDER_PIXELS = 25_000_000  # a page larger than this (e.g. a poster) is rendered at a lower resolution
MIN_TEXT_LAYER_CHARS = 16  # fewer non-space characters than this: a scan (perhaps with a page number), so OCR
BLANK_LEVEL = 250  # a rendered page with no pixel darker than this is blank (a scan's paper noise is not)
_PDFIUM = threading.Lock()  # PDFium is not thread-safe; its calls here are short (one page at a time)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def kind_of(data: bytes) -> str:
    """``pdf``, ``image`` (PNG or JPEG), or ItemError naming what the bytes look like."""
    if b"%PDF-" in data[:1024]:  # a PDF reader looks for the header in the first kilobyte
        return "pdf"
    if data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return "image"
    head = data[:16]
    shown = head.decode("ascii", "replace") if head.isascii() else head.hex(" ")
    raise ItemError(f"not a PDF, PNG or JPEG document (it starts with {shown!r})")


def open_pdf(data: bytes) -> Any:
    """A PDFium document; ItemError for an encrypted (password) or unreadable PDF."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    try:
        with _PDFIUM:
            return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == raw.FPDF_ERR_PASSWORD:
            raise ItemError("the PDF is encrypted and needs a password; send a decrypted copy "
                            "(e.g. qpdf --password=... --decrypt in.pdf out.pdf)") from None
        if code == raw.FPDF_ERR_SECURITY:
            raise ItemError("the PDF uses an unsupported security handler; send a decrypted copy") from None
        raise ItemError(f"cannot read the PDF: {exc}") from None


def clean(text: str) -> str:
    """A text layer's text as plain text: PDFium's CRLF line ends as LF, control characters dropped."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def _page(document: Any, index: int) -> str | bytes:
    """Page *index*'s text layer, or, without one, the page rendered to a PNG for OCR."""
    with _PDFIUM:
        page = document[index]
        try:
            textpage = page.get_textpage()
            try:
                text = clean(textpage.get_text_range())
            finally:
                textpage.close()
            if sum(1 for ch in text if not ch.isspace()) >= MIN_TEXT_LAYER_CHARS:
                return text
            width, height = page.get_size()
            scale = RENDER_DPI / 72
            scale = min(scale, (MAX_RENDER_PIXELS / max(1.0, width * height)) ** 0.5)
            image = page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()
    if image.getextrema()[0] >= BLANK_LEVEL:  # no ink at all: a blank page, not worth an OCR call
        return ""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # 0.09 s a page, not level 6's 0.55 s, for 15% more bytes
    return buffer.getvalue()


def pages(data: bytes, meta: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A flat_map operator: each page of a document as ``(text | png bytes, {"page": n, "text_layer": bool})``.

    A page that fails yields an ItemError as its value: the pipeline fails that page alone."""
    first = int(meta.get("page", 1))
    if kind_of(data) == "image":
        decode_image(data)  # the size and pixel limits, and a clear error for a damaged file
        yield data, {"page": first, "text_layer": False}
        return
    document = open_pdf(data)
    try:
        count = len(document)
        if count > MAX_PAGES:
            raise ItemError(f"the PDF has {count} pages, over the limit of {MAX_PAGES} per item; send it a page per "
                            f"item (fnctl vectorize ingest documents does)")
        for index in range(count):
            extra = {"page": first + index}
            try:
                value = _page(document, index)
            except Exception as exc:  # noqa: BLE001 - PDFium raises several types for a damaged page
                yield ItemError(f"page {first + index}: cannot read or render it: {exc}"), extra
                continue
            yield value, {**extra, "text_layer": isinstance(value, str)}
    finally:
        with _PDFIUM:
            document.close()


def needs_ocr(value: Any) -> bool:
    return isinstance(value, bytes | bytearray)


def has_text(value: Any) -> bool:
    """A blank page (or one where OCR read nothing) has nothing to store: filtered out, not failed."""
    return isinstance(value, str) and bool(value.strip())
