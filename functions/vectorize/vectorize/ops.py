"""Built-in operators: text checks and token chunking, image decode/resize, a classic image
descriptor, L2 normalization. Each raises ItemError for a bad input, which fails that item only.

The image descriptor is not a semantic model: colour histograms, gradient orientations and a
coarse layout, so it finds near-duplicates (resized, re-encoded, lightly cropped or brightened
copies), not "images of the same kind of thing": no package ships a general image model's weights.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .pipeline import ItemError

MAX_TEXT_BYTES = 1_000_000
MAX_IMAGE_BYTES = 20_000_000
MAX_IMAGE_PIXELS = 40_000_000


def check_text(text: Any) -> str:
    """Refuses what is not text worth embedding: wrong type, empty, binary or too large."""
    if not isinstance(text, str):
        raise ItemError(f"'text' must be a string, got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ItemError(f"text is {size:,} bytes, over the limit of {MAX_TEXT_BYTES:,}; split the item")
    if not text.strip():
        raise ItemError("text is empty")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if "\x00" in text or controls > max(2, len(text) // 100):
        raise ItemError("text looks binary (control characters); send decoded text, not file bytes")
    return text


def chunker(count_tokens: Callable[[str], int], token_spans: Callable[[str], list[tuple[int, int]]], *,
            max_tokens: int = 128, overlap: int = 32) -> Callable[[str, dict[str, Any]], Iterator[tuple[str, dict[str, Any]]]]:
    """Splits text into windows of *max_tokens* tokens overlapping by *overlap*, on token boundaries.

    Yields ``(chunk_text, {"text": chunk_text, "position": i, "start": char, "end": char})``; short texts
    give one chunk. The chunk's text rides in the metadata, so it is stored beside its vector.
    """
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be >= 0 and < max_tokens ({max_tokens}), got {overlap}")

    def chunk(text: str, meta: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        text = check_text(text)
        spans = token_spans(text)
        if len(spans) <= max_tokens:
            yield text.strip(), {"text": text.strip(), "position": 0, "start": 0, "end": len(text)}
            return
        step = max_tokens - overlap
        for position, first in enumerate(range(0, max(1, len(spans) - overlap), step)):
            window = spans[first:first + max_tokens]
            start, end = window[0][0], window[-1][1]
            yield text[start:end], {"text": text[start:end], "position": position, "start": start, "end": end}

    return chunk


def b64_image(text: Any, what: str = "image_b64", limit: int | None = None) -> bytes:
    """Base64 text (an image or a document in JSON) -> its bytes, with an upload's size limit applied before decoding:
    the decoded size follows from the text's length, so an oversized file costs no decoding. decode_image then
    checks the pixels from the header."""
    if not isinstance(text, str):
        raise ItemError(f"{what} must be a base64 string, got {type(text).__name__}")
    limit = MAX_IMAGE_BYTES if limit is None else limit
    size = len(text) * 3 // 4 - min(2, len(text) - len(text.rstrip("=")))  # exact for valid base64
    if size > limit:
        noun = "document" if what.startswith("document") else "image"
        raise ItemError(f"{what} holds a {size:,}-byte {noun}, over the limit of {limit:,}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ItemError(f"{what} is not valid base64: {exc}") from None


def decode_image(data: Any) -> Any:
    """Bytes -> an RGB PIL image; refuses what is not an image, too large or a decompression bomb."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, bytes | bytearray):
        raise ItemError(f"an image must be bytes, got {type(data).__name__}")
    if len(data) > MAX_IMAGE_BYTES:
        raise ItemError(f"the image is {len(data):,} bytes, over the limit of {MAX_IMAGE_BYTES:,}")
    if not data:
        raise ItemError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ItemError(f"the image is {image.width}x{image.height}, over {MAX_IMAGE_PIXELS:,} pixels")
        image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):  # Pillow's own caps, met in the header
        raise ItemError(f"the image has too many pixels (over {MAX_IMAGE_PIXELS:,})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ItemError(f"cannot decode the image: {exc}") from None
    return image.convert("RGB")


def resize(side: int = 224) -> Callable[[Any], Any]:
    """Fits the image into a *side* x *side* square, keeping its aspect ratio."""
    def op(image: Any) -> Any:
        copy = image.copy()
        copy.thumbnail((side, side))
        return copy
    return op


def l2_normalize(vector: Any) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0:
        raise ItemError("the vector is zero or not finite; nothing to normalize")
    return (array / norm).tolist()  # type: ignore[no-any-return]


DESCRIPTOR_DIM = 256


def image_descriptor(image: Any) -> list[float]:
    """A 256-d near-duplicate descriptor: HSV colour histogram, gradient orientations, 4x4 layout."""
    small = np.asarray(image.convert("RGB").resize((128, 128)), dtype=np.float32) / 255.0
    hsv = np.asarray(image.convert("HSV").resize((128, 128)), dtype=np.float32) / 255.0
    hist, _ = np.histogramdd(hsv.reshape(-1, 3), bins=(8, 4, 4), range=((0, 1), (0, 1), (0, 1)))  # 128
    gray = small.mean(axis=2)
    gy, gx = np.gradient(gray)
    magnitude = np.hypot(gx, gy)
    angle = (np.arctan2(gy, gx) % np.pi) / np.pi
    cells = []  # 4x4 grid x 4 orientations = 64: where the edges are and which way they run
    for rows in np.array_split(np.arange(128), 4):
        for cols in np.array_split(np.arange(128), 4):
            m = magnitude[np.ix_(rows, cols)].ravel()
            a = angle[np.ix_(rows, cols)].ravel()
            cells.append(np.bincount(np.minimum((a * 4).astype(int), 3), weights=m, minlength=4))
    layout = np.asarray(image.convert("L").resize((8, 8)), dtype=np.float32).ravel() / 255.0  # 64
    parts = [hist.ravel() / max(hist.sum(), 1.0), np.concatenate(cells) / max(magnitude.sum(), 1e-6),
             layout - layout.mean()]
    vector = np.concatenate([p / (np.linalg.norm(p) or 1.0) for p in parts])
    assert vector.shape == (DESCRIPTOR_DIM,)
    return l2_normalize(vector)
