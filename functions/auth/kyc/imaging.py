"""Decoding untrusted uploads safely, and small image helpers shared by the steps.

Uploads come straight from users: they may be empty, not an image, truncated, or a tiny file that
claims to be 30,000 x 30,000 pixels (a decompression bomb). The header is read first with Pillow
(without decoding the pixels) so that an oversized image is refused before any memory is spent,
then OpenCV decodes it. Every failure becomes a :class:`BadImage` with a reason a person can read.
"""

from __future__ import annotations

import base64
import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .config import CONFIG, Config

# Formats a phone or a browser uploads; anything else is refused (no TIFF, PSD, ... parsers exposed).
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})


class BadImage(ValueError):
    """The upload cannot be used as an image; ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode(data: bytes | None, *, what: str, config: Config = CONFIG) -> np.ndarray:
    """Decode an uploaded image to a BGR uint8 array, refusing empty, non-image and oversized input.

    Images larger than ``config.work_max_side`` on their longer side are downscaled (area
    interpolation), so later steps see bounded work whatever the phone's resolution.
    """
    if not data:
        raise BadImage("empty", f"the {what} upload is empty")
    if len(data) > config.max_upload_bytes:
        raise BadImage("too_large", f"the {what} upload is {len(data):,} bytes, over the limit of {config.max_upload_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
                fmt = header.format or ""
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BadImage("too_large", f"the {what} image has too many pixels (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadImage("not_an_image", f"the {what} upload is not a readable JPEG or PNG image") from None
    if fmt not in ALLOWED_FORMATS:
        raise BadImage("not_an_image", f"the {what} upload is a {fmt or 'unknown'} file; send a JPEG or PNG photo")
    if width * height > config.max_pixels:
        raise BadImage("too_large", f"the {what} image is {width} x {height} pixels, over the limit of "
                                    f"{config.max_pixels / 1e6:.0f} megapixels")
    if min(width, height) < config.min_side:
        raise BadImage("too_small", f"the {what} image is {width} x {height} pixels; at least {config.min_side} "
                                    f"pixels on each side are needed")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise BadImage("not_an_image", f"the {what} image could not be decoded (truncated or corrupt file)")
    return limit_side(image, config.work_max_side)


def limit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most *max_side* (never upscale)."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_jpeg_b64(image: np.ndarray, quality: int = 92) -> str:
    """JPEG-encode a BGR image and return base64 text, small enough to travel in a JSON step result."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return base64.b64encode(buffer.tobytes()).decode("ascii")


def decoded_size(text: str) -> int:
    """The byte count *text* decodes to, from its length alone (exact for valid base64)."""
    return len(text) * 3 // 4 - min(2, len(text) - len(text.rstrip("=")))


def decode_b64(text: str, *, what: str, config: Config = CONFIG) -> np.ndarray:
    """Inverse of :func:`encode_jpeg_b64`, for an image that arrives inside JSON (a step's result): the same limits
    as an upload, the size checked from the text's length before the base64 is decoded, then :func:`decode`
    (format and pixel count from the header before the pixels)."""
    size = decoded_size(text)
    if size > config.max_upload_bytes:
        raise BadImage("too_large", f"the {what} is {size:,} bytes once decoded, over the limit of {config.max_upload_bytes:,}")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise BadImage("not_an_image", f"the {what} is not valid base64") from None
    return decode(raw, what=what, config=config)


def gray(image: np.ndarray) -> np.ndarray:
    """Grayscale view of a BGR or already-gray image."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
