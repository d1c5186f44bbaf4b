"""Write sample documents for the ``documents`` pipeline: ``python functions/vectorize/samples/make_documents.py OUTDIR``.

Needs only numpy and pillow; downloads nothing. The texts are the hand-written passages of ``docs.jsonl``.

    text-layer.pdf      3 pages with a text layer (Helvetica, written by this script: no PDF library)
    scanned.pdf         3 image-only pages: the passages rendered as a scanner would see them, no text layer
    mixed.pdf           page 1 with a text layer, page 2 scanned (an image XObject)
    scan.png, scan.jpg  one scanned page each
    encrypted.pdf       a PDF that needs a password (refused, with the reason)
    not-a.pdf           text that only calls itself a PDF (refused, with the reason)

The functions are also what the tests and bench/vectors.py build their documents with: ``text_pdf`` (pages of
text lines and/or images), ``scanned_page`` (text rendered to a page image, slightly rotated and noisy),
``encrypted_pdf``. Output is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
PAGE_PT = (612, 792)  # US Letter, in points
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")  # the PDF standard handler's


def passages() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / "docs.jsonl").read_text().splitlines()]


def _pdf_string(text: str) -> bytes:
    data = text.encode("cp1252", "replace")
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _write(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF file of *objects* (object i + 1 is objects[i]; object 1 the catalog), with its cross-reference table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def _stream(head: bytes, data: bytes) -> bytes:
    return b"<< " + head + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def text_pdf(pages: list[list[str] | Image.Image], *, font_size: float = 11) -> bytes:
    """A PDF with one page per entry: a list of lines is written as text (a real text layer, base-14 Helvetica),
    an image is drawn over the whole page as a JPEG (a scanned page: no text layer)."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    kids = []
    for page in pages:
        if isinstance(page, Image.Image):
            gray = page.convert("L")
            jpeg = io.BytesIO()
            gray.save(jpeg, "JPEG", quality=85)
            objects.append(_stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                                   b"/BitsPerComponent 8 /Filter /DCTDecode" % gray.size, jpeg.getvalue()))
            image = len(objects)
            content = b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % PAGE_PT
            resources = b"<< /XObject << /Im1 %d 0 R >> >>" % image
        else:
            lines = b" T* ".join(_pdf_string(line) + b" Tj" for line in page)
            content = b"BT /F1 %g Tf %g TL 72 %d Td " % (font_size, font_size * 1.4, PAGE_PT[1] - 72) + lines + b" ET"
            resources = b"<< /Font << /F1 3 0 R >> >>"
        objects.append(_stream(b"", content))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources %s /Contents %d 0 R >>"
                       % (*PAGE_PT, resources, len(objects)))
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return _write(objects)


def wrap(text: str, width: int = 88) -> list[str]:
    return textwrap.wrap(text, width)


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def encrypted_pdf(user_password: str = "secret", owner_password: str = "owner") -> bytes:
    """A one-page PDF under the standard security handler (RC4, revision 2) that opens only with *user_password*.
    (The page is blank, so nothing needs encrypting: a reader stops at the password check.)"""
    def padded(password: str) -> bytes:
        return (password.encode("latin-1") + PAD)[:32]

    file_id = hashlib.md5(b"vectorize sample").digest()
    owner = _rc4(hashlib.md5(padded(owner_password)).digest()[:5], padded(user_password))
    permissions = -4
    key = hashlib.md5(padded(user_password) + owner + struct.pack("<i", permissions) + file_id).digest()[:5]
    user = _rc4(key, PAD)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
               b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (owner.hex().encode(), user.hex().encode(),
                                                                          permissions)]
    return _write(objects, b"/Encrypt 4 0 R /ID [<%s> <%s>] " % (file_id.hex().encode(), file_id.hex().encode()))


def scanned_page(texts: list[str], *, dpi: int = 150, angle: float = 0.6, noise: float = 6.0, seed: int = 0,
                 font_pt: float = 11) -> Image.Image:
    """A letter-size page as a scanner makes it: *texts* as paragraphs at *font_pt*, turned by *angle* degrees, with
    grey noise. Grey (mode L) and *dpi* dots per inch (150: 1275 x 1650 pixels)."""
    width, height = int(PAGE_PT[0] / 72 * dpi), int(PAGE_PT[1] / 72 * dpi)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=max(8, round(font_pt / 72 * dpi)))
    line_height = round(font.size * 1.45)
    y = dpi
    for text in texts:
        for line in wrap(text):
            draw.text((dpi, y), line, fill=20, font=font)
            y += line_height
        y += line_height
    if angle:
        page = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if noise:
        rng = np.random.default_rng(seed)
        pixels = np.asarray(page, dtype=np.float32) + rng.normal(0, noise, (height, width))
        page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    return page


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    texts = [p["text"] for p in passages()]
    scans = [scanned_page(texts[i:i + 2], seed=i) for i in (0, 2, 4)]
    files = {
        "text-layer.pdf": text_pdf([[*wrap(texts[i]), "", *wrap(texts[i + 1])] for i in (8, 10, 12)]),
        "scanned.pdf": text_pdf(list(scans)),
        "mixed.pdf": text_pdf([wrap(texts[16]), scanned_page([texts[17]], seed=17)]),
        "encrypted.pdf": encrypted_pdf(),
        "not-a.pdf": b"This is a text file that calls itself a PDF.\n",
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    scans[0].save(out / "scan.png")
    scanned_page(texts[6:8], seed=6).save(out / "scan.jpg", quality=85)
    for path in sorted(out.iterdir()):
        print(f"{path}  {path.stat().st_size} B")


if __name__ == "__main__":
    main()
