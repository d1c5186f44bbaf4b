"""Find an ID-1 card (or an ID-3 passport page) in a photo and straighten it (contours + perspective warp).

Why this approach: a card is the largest convex quadrilateral in a document photo, with a known
aspect ratio (85.60 / 53.98 = 1.586). Classic geometry needs no model weights, runs in a few
milliseconds and fails loudly (no quad of the right shape) rather than hallucinating one.
Several binarisations are tried (edges, Otsu, adaptive on saturation/lightness) because the
card/background contrast varies; the candidate whose straightened aspect is closest to ID-1 wins.
A passport's data page (ID-3, 125 x 88 mm, aspect 1.42; a TD2 document's is the same shape) is
looked for where the front of any document may be given, and straightened to its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import CARD_HEIGHT_MM, CARD_WIDTH_MM, CONFIG, Config
from .imaging import gray

ID1_ASPECT = CARD_WIDTH_MM / CARD_HEIGHT_MM
ID3_WIDTH_MM = 125.0
ID3_ASPECT = ID3_WIDTH_MM / 88.0


@dataclass(frozen=True)
class FoundCard:
    """The straightened card (BGR, ID-1 proportions), the quad it came from and a confidence score."""

    image: np.ndarray
    corners: np.ndarray  # 4 x 2, tl tr br bl, in the input image's pixels
    area_fraction: float
    aspect_error: float
    aspect: float = ID1_ASPECT  # the document shape it was straightened to


def order_corners(points: np.ndarray) -> np.ndarray:
    """Order 4 points as top-left, top-right, bottom-right, bottom-left, landscape (long side first)."""
    pts = points.reshape(4, 2).astype(np.float32)
    center = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - center[1], pts[:, 0] - center[0])
    pts = pts[np.argsort(angles)]                          # clockwise from the left (image y points down)
    start = int(np.argmin(pts.sum(axis=1)))                 # top-left: smallest x + y
    pts = np.roll(pts, -start, axis=0)
    top, left = np.linalg.norm(pts[1] - pts[0]), np.linalg.norm(pts[3] - pts[0])
    if left > top * 1.05:  # the card stands on its short side: make the long side the top
        pts = np.roll(pts, -1, axis=0)
    return pts


def _candidates(image: np.ndarray) -> list[np.ndarray]:
    """Binary masks in which the card may be one blob (or bounded by one contour)."""
    g = cv2.GaussianBlur(gray(image), (5, 5), 0)
    edges = cv2.dilate(cv2.Canny(g, 30, 90), np.ones((5, 5), np.uint8), iterations=2)
    _, otsu = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hls = cv2.cvtColor(image, cv2.COLOR_BGR2HLS)
    _, light = cv2.threshold(cv2.GaussianBlur(hls[..., 1], (7, 7), 0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = np.ones((9, 9), np.uint8)
    return [edges, cv2.morphologyEx(otsu, cv2.MORPH_CLOSE, kernel), cv2.morphologyEx(light, cv2.MORPH_CLOSE, kernel)]


def _quad(contour: np.ndarray) -> np.ndarray:
    """A 4-corner approximation of a contour: polygon simplification, else the min-area rectangle."""
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.015, 0.02, 0.03, 0.045):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            return approx.reshape(4, 2).astype(np.float32)
    return cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)


def _target_size(config: Config, aspect: float = ID1_ASPECT) -> tuple[int, int]:
    """Pixels at the same scale for every shape: an ID-3 page (125 mm wide) is wider than a card."""
    width = round((ID3_WIDTH_MM if aspect == ID3_ASPECT else CARD_WIDTH_MM) * config.card_px_per_mm)
    return width, round(width / aspect)


def find_card(image: np.ndarray, config: Config = CONFIG, aspects: tuple[float, ...] = (ID1_ASPECT,)) -> FoundCard | None:
    """The card in *image*, straightened to the nearest of *aspects* (ID-1 by default); None when no
    card-shaped quad is found."""
    height, width = image.shape[:2]
    scale = 800 / max(height, width)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    scale = min(scale, 1.0)
    total = small.shape[0] * small.shape[1]
    best: tuple[float, np.ndarray, float, float, float] | None = None
    for mask in _candidates(small):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
            area = cv2.contourArea(contour) / total
            if area < config.card_min_area_fraction or area > 0.97:
                continue
            quad = order_corners(_quad(contour))
            sides = [np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]
            aspect = (sides[0] + sides[2]) / max(sides[1] + sides[3], 1e-6)
            target = min(aspects, key=lambda a: abs(aspect / a - 1))
            aspect_error = abs(aspect / target - 1)
            fill = cv2.contourArea(contour) / max(cv2.contourArea(quad), 1e-6)  # a card fills its quad
            if aspect_error > config.card_max_aspect_error or fill < 0.85:
                continue
            score = aspect_error + abs(1 - fill) - 0.2 * area
            if best is None or score < best[0]:
                best = (score, quad / scale, area, aspect_error, target)
    if best is None:
        return None
    _, corners, area, aspect_error, target = best
    corners = np.clip(corners, [0, 0], [width - 1, height - 1]).astype(np.float32)
    return FoundCard(image=warp(image, corners, config, target), corners=corners, area_fraction=float(area),
                     aspect_error=float(aspect_error), aspect=target)


def warp(image: np.ndarray, corners: np.ndarray, config: Config = CONFIG, aspect: float = ID1_ASPECT) -> np.ndarray:
    """Perspective-warp the quad *corners* (tl tr br bl) to a straight image of the document's shape."""
    width, height = _target_size(config, aspect)
    dst = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def as_shape(image: np.ndarray, found: FoundCard, aspect: float, config: Config = CONFIG) -> FoundCard:
    """*found* straightened again from *image* to another document shape (perspective makes a photo's
    proportions a poor guide: what is printed on it, an MRZ of two lines, tells better)."""
    return FoundCard(image=warp(image, found.corners, config, aspect), corners=found.corners,
                     area_fraction=found.area_fraction, aspect_error=found.aspect_error, aspect=aspect)


def crop_mm(card: np.ndarray, box_mm: tuple[float, float, float, float]) -> np.ndarray:
    """Crop a box given in millimetres (x, y, w, h) from a straightened card."""
    px = card.shape[1] / CARD_WIDTH_MM
    x, y, w, h = (round(v * px) for v in box_mm)
    return card[max(0, y):y + h, max(0, x):x + w].copy()


def sharpness(image: np.ndarray, side: int = 512) -> float:
    """Variance of the Laplacian at a fixed size: low means blurred (a standard focus measure)."""
    g = gray(image)
    scale = side / max(g.shape[:2])
    g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(g, cv2.CV_64F).var())
