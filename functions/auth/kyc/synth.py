"""Synthetic ID cards, phone photos of them and selfies: test data with no download and nothing private.

A case is fully determined by its seed (``numpy.random.default_rng(seed)``; Pillow and OpenCV
render and encode deterministically), so tests and the benchmark can name cases by seed and a
separate *tuning* seed range never overlaps the reported one.

Cards are ID-1 cards of three designs (``DESIGNS``), each with a TD1 machine-readable zone on the back
made by ``mrz``'s generator and set in OCR-B (Debian package ``fonts-ocr-b``; ``KYC_OCRB_FONT`` may
point at another copy):

- ``A``: the fictional "UTOPIA" card, English captions with the value below, dates ``DD.MM.YYYY``,
  portrait on the left, the font that ships inside Pillow;
- ``B``: a bilingual English/French card (``Surname / Nom``), given names in mixed case, sex and
  nationality on one line, dates ``07 MAR/MARS 1985``, a spaced document number, portrait on the
  right, DejaVu Sans;
- ``C``: a bilingual Czech/English card, the value on the caption's line (``PRIJMENI / SURNAME:
  NOVAK``, with the national spelling ``NOVÁK``), birth date ``YYYY-MM-DD``, an issue date and the
  expiry ``DD MM YYYY`` side by side, a smaller portrait lower down and a faded second portrait,
  DejaVu Serif. C is held out: the reading rules and thresholds are tuned on A and B only
  (bench/kyc.py reports C apart).

B and C use fonts that ship inside matplotlib, a test requirement. Portraits and selfies come from
the real photos that ship with scikit-image (astronaut Eileen Collins, the cameraman) and matplotlib
(Grace Hopper): only three real people, and only one photo of each, so a "same person" selfie is
another crop of the *same* photo with new pose, exposure, lighting, mirroring and noise. That makes
same-person face distances look better than real life will; README says so.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .config import CARD_HEIGHT_MM, CARD_WIDTH_MM

OCRB_PATHS = ("/usr/share/fonts/opentype/ocr-b/OCRB.otf", "/usr/share/fonts/truetype/ocr-b/OCRB.ttf")
PX_PER_MM = 12.0  # card rendering resolution (1027 x 648 px)
CARD_W, CARD_H = round(CARD_WIDTH_MM * PX_PER_MM), round(CARD_HEIGHT_MM * PX_PER_MM)
LEVELS = ("easy", "medium", "hard")
DESIGNS = ("A", "B", "C", "P")  # three ID-1 card designs and a passport data page
PASSPORTS = ("P",)
TUNING_DESIGNS = ("A", "B")  # C is held out of all tuning
KINDS = ("genuine", "mrz_digit", "front_mismatch", "other_person", "expired", "replay", "low_quality")
# Expiry dates are absolute (not relative to today), so a case is the same whenever it is generated:
# valid cards expire in 2031-2036, expired ones expired in 2018-2025.
VALID_FROM, EXPIRED_UNTIL = dt.date(2031, 1, 1), dt.date(2025, 6, 1)

SURNAMES = ("ERIKSSON", "MARTIN", "NOVAK", "OKAFOR", "TANAKA", "LINDQVIST", "ROSSI", "KOWALSKA", "FERREIRA",
            "MUELLER", "HOPPER", "COLLINS", "DUBOIS", "JANSEN", "HAVEL", "PETERS", "SANTOS", "WEBER")
GIVEN = ("ANNA", "MARIA", "GRACE", "EILEEN", "LUCAS", "JOHN", "SOFIA", "ELENA", "PETER", "NORA", "HUGO",
         "IRIS", "MARTA", "FELIX", "CLARA", "JONAS", "LEA", "TOMAS")
DOC_LETTERS = "ACEFHJKLMNPRTUVWXY"  # like real issuers: no O/I/Q/S/B/Z/G/D, which OCR confuses with digits


@dataclass(frozen=True)
class Person:
    """A real person in a photo that ships in an installed package, with a face box (x, y, w, h)."""

    name: str
    box: tuple[int, int, int, int]


PEOPLE = (Person("astronaut", (178, 63, 89, 112)), Person("grace_hopper", (182, 121, 171, 211)),
          Person("cameraman", (195, 113, 60, 80)))


@cache
def person_photo(name: str) -> np.ndarray:
    """The source photo of a person, BGR."""
    if name == "astronaut":
        from skimage import data
        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if name == "cameraman":
        from skimage import data
        return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    if name == "grace_hopper":
        import matplotlib
        image = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
        if image is None:
            raise FileNotFoundError("matplotlib's sample_data/grace_hopper.jpg is missing")
        return image
    raise KeyError(name)


@dataclass(frozen=True)
class Identity:
    """What the card says (and the MRZ encodes)."""

    surname: str
    given_names: str
    document_number: str
    birth_date: dt.date
    expiry_date: dt.date
    sex: str
    nationality: str
    person: str
    issue_date: dt.date | None = None

    def document(self) -> dict[str, str]:
        """The ``document`` block a correct decision reports (dates ISO)."""
        return {"surname": self.surname, "given_names": self.given_names, "document_number": self.document_number,
                "birth_date": self.birth_date.isoformat(), "expiry_date": self.expiry_date.isoformat(),
                "nationality": self.nationality, "sex": self.sex}


@dataclass
class Case:
    """One verification attempt and its truth: the expected decision and the reason codes that must appear."""

    seed: int
    level: str
    kind: str
    identity: Identity
    front: bytes
    back: bytes | None  # None for a passport: its data page (the front) carries the MRZ
    selfie: bytes
    expected_decision: str
    expected_reasons: tuple[str, ...]
    selfie_person: str
    mrz: tuple[str, ...] = ()            # the MRZ lines as printed (tampered ones included)
    printed: Identity | None = None      # what the front prints, when it differs from the identity
    notes: dict[str, str] = field(default_factory=dict)
    design: str = "A"


def ocrb_font(size: int) -> ImageFont.FreeTypeFont:
    """OCR-B at *size* px; raises with the install command when the font is missing."""
    candidates = [os.environ.get("KYC_OCRB_FONT", ""), *OCRB_PATHS]
    for path in candidates:
        if path and Path(path).is_file():
            return ImageFont.truetype(path, size)
    raise FileNotFoundError("OCR-B font not found: apt-get install -y fonts-ocr-b (or set KYC_OCRB_FONT)")


def _sans(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def random_identity(rng: np.random.Generator, person: str, *, expired: bool = False,
                    nationality: str = "UTO") -> Identity:
    """A fictional identity; its card is valid until 2031 at least, or expired before mid-2025."""
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 50)))
    days = int(rng.integers(0, 365 * 5))
    expiry = EXPIRED_UNTIL - dt.timedelta(days=days + 1) if expired else VALID_FROM + dt.timedelta(days=days)
    letters = "".join(rng.choice(list(DOC_LETTERS), size=int(rng.integers(1, 3))))
    digits = "".join(str(d) for d in rng.integers(0, 10, size=9 - len(letters)))
    given = " ".join(rng.choice(GIVEN, size=int(rng.integers(1, 3)), replace=False))
    return Identity(surname=str(rng.choice(SURNAMES)), given_names=given, document_number=letters + digits,
                    birth_date=birth, expiry_date=expiry, sex=str(rng.choice(["F", "M"])), nationality=nationality,
                    person=person)


def mrz_lines(identity: Identity, passport: bool = False) -> list[str]:
    """The three 30-character TD1 lines for *identity* (a passport's: two TD3 lines of 44), from ``mrz``'s generator."""
    if passport:
        from mrz.generator.td3 import TD3CodeGenerator
        td3 = TD3CodeGenerator("P", identity.nationality, identity.surname, identity.given_names,
                               identity.document_number, identity.nationality, identity.birth_date.strftime("%y%m%d"),
                               identity.sex, identity.expiry_date.strftime("%y%m%d"))
        return str(td3).split("\n")
    from mrz.generator.td1 import TD1CodeGenerator
    code = TD1CodeGenerator("ID", identity.nationality, identity.document_number, identity.birth_date.strftime("%y%m%d"),
                            identity.sex, identity.expiry_date.strftime("%y%m%d"), identity.nationality,
                            identity.surname, identity.given_names)
    return str(code).split("\n")


def _card_base(rng: np.random.Generator, size: tuple[int, int] = (CARD_W, CARD_H)) -> Image.Image:
    """Pastel background with guilloche-like wavy lines, as security prints have (*size*: width, height px)."""
    width, height = size
    hue = int(rng.integers(0, 180))
    hsv = np.zeros((height, width, 3), np.uint8)
    hsv[..., 0] = hue
    hsv[..., 1] = np.linspace(25, 55, width, dtype=np.uint8)[None, :]
    hsv[..., 2] = 238
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    xs = np.arange(width)
    for k in range(14):
        ys = (height * (k + 0.5) / 14 + 9 * np.sin(xs / (35 + 3 * k) + k)).astype(np.int32)
        pts = np.stack([xs, ys], axis=1).reshape(-1, 1, 2)
        color = tuple(int(c) for c in np.clip(rgb[0, 0].astype(int) - 28, 0, 255))
        cv2.polylines(rgb, [pts], False, color, 1, cv2.LINE_AA)
    return Image.fromarray(rgb)


def _mm(value: float) -> int:
    return round(value * PX_PER_MM)


PORTRAIT_MM = (4.0, 11.0, 26.0, 33.0)  # design A's portrait box, in mm (x, y, w, h) from the top-left corner
# Where each design prints the portrait, in mm (x, y, w, h); the reader finds it by face detection.
PORTRAITS_MM = {"A": PORTRAIT_MM, "B": (59.0, 12.0, 22.0, 28.0), "C": (5.0, 17.0, 19.0, 24.0), "P": (6.0, 17.0, 34.0, 43.0)}
NATIONALITY = {"A": "UTO", "B": "CAN", "C": "CZE", "P": "IRL"}  # the issuer, and its citizens' nationality
PASSPORT_MM = (125.0, 88.0)  # ID-3, a passport's data page


def portrait_crop(person: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """The card's portrait of *person*: a passport-style crop around the face, BGR, 26:33."""
    photo = person_photo(person)
    x, y, w, h = next(p.box for p in PEOPLE if p.name == person)
    jitter = rng.uniform(-0.04, 0.04, size=2) if rng is not None else np.zeros(2)
    crop_h = h * 2.0
    crop_w = crop_h * PORTRAIT_MM[2] / PORTRAIT_MM[3]
    cx, cy = x + w / 2 + jitter[0] * w, y + h * 0.45 + jitter[1] * h
    return _crop(photo, cx - crop_w / 2, cy - crop_h * 0.45, crop_w, crop_h)


def _crop(image: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray:
    """Crop with border replication where the box leaves the image."""
    pad = int(max(w, h))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = round(x) + pad, round(y) + pad
    return padded[y0:y0 + round(h), x0:x0 + round(w)].copy()


def render_front(identity: Identity, rng: np.random.Generator, *, shown: Identity | None = None,
                 design: str = "A", mrz: list[str] | None = None) -> np.ndarray:
    """The front of the card (BGR). *shown* prints other text than the MRZ carries (a tampered front);
    a passport page prints its MRZ (*mrz*, the TD3 lines) too."""
    if design in PASSPORTS:
        from .designs import render_passport
        return render_passport(identity, rng, shown or identity, mrz or mrz_lines(identity, passport=True))
    if design != "A":
        from .designs import RENDERERS
        return RENDERERS[design](identity, rng, shown or identity)
    text = shown or identity
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    draw.text((_mm(4), _mm(2.5)), "UTOPIA", font=_sans(_mm(4.2)), fill=(20, 40, 90))
    draw.text((_mm(36), _mm(3.3)), "IDENTITY CARD", font=_sans(_mm(3.0)), fill=(20, 40, 90))
    portrait = cv2.cvtColor(portrait_crop(identity.person, rng), cv2.COLOR_BGR2RGB)
    px, py, pw, ph = (_mm(v) for v in PORTRAIT_MM)
    card.paste(Image.fromarray(portrait).resize((pw, ph), Image.Resampling.LANCZOS), (px, py))
    label, value = _sans(_mm(2.1)), _sans(_mm(3.4))
    rows = [((33, 11), "Surname", text.surname), ((33, 18), "Given names", text.given_names),
            ((33, 25), "Date of birth", text.birth_date.strftime("%d.%m.%Y")), ((63, 25), "Sex", text.sex),
            ((71, 25), "Nationality", text.nationality), ((33, 32), "Document No.", text.document_number),
            ((60, 32), "Date of expiry", text.expiry_date.strftime("%d.%m.%Y"))]
    for (x, y), name, val in rows:
        draw.text((_mm(x), _mm(y)), name, font=label, fill=(70, 70, 90))
        draw.text((_mm(x), _mm(y + 2.6)), val, font=value, fill=(10, 10, 10))
    draw.text((_mm(33), _mm(44)), "~" * 6, font=_sans(_mm(5)), fill=(30, 30, 120))  # a "signature"
    return cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR)


def render_back(lines: list[str], rng: np.random.Generator) -> np.ndarray:
    """The back of the card (BGR): some printed text, a barcode-like strip and the MRZ in OCR-B."""
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    small = _sans(_mm(2.4))
    draw.text((_mm(5), _mm(4)), "Address: 1 Example Street, Utopia City", font=small, fill=(40, 40, 60))
    draw.text((_mm(5), _mm(8)), "Issued by: Civil Registry of Utopia", font=small, fill=(40, 40, 60))
    for i in range(60):
        x = _mm(5) + i * _mm(0.9)
        if rng.random() < 0.6:
            draw.rectangle((x, _mm(14), x + _mm(0.45), _mm(22)), fill=(40, 40, 40))
    draw.rectangle((0, _mm(34), CARD_W, CARD_H), fill=(248, 248, 244))  # the MRZ's clear zone
    font = ocrb_font(_mm(3.3))
    pitch = _mm(2.54)  # ICAO 9303: 2.54 mm per character
    for row, line in enumerate(lines):
        for col, char in enumerate(line):
            draw.text((_mm(4.6) + col * pitch, _mm(36.5) + row * _mm(5.3)), char, font=font, fill=(15, 15, 15))
    return cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR)


LEVEL_PARAMS = {  # perspective jitter (fraction of card width), rotation (deg), light range, blur sigma, noise, JPEG q
    "easy": (0.03, 4, (0.9, 1.05), 0.5, 2.0, 92),
    "medium": (0.06, 9, (0.75, 1.1), 1.0, 4.5, 80),
    "hard": (0.10, 15, (0.55, 1.15), 1.5, 8.0, 65),
}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A desk: a dark-ish colour with wood-like stripes and noise."""
    base = rng.uniform(40, 120, size=3)
    ys = np.arange(h, dtype=np.float32)[:, None]
    stripes = 12 * np.sin(ys / rng.uniform(8, 30) + np.arange(w)[None, :] / rng.uniform(200, 600))
    img = base[None, None, :] + stripes[..., None] + rng.normal(0, 6, size=(h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def phone_photo(card: np.ndarray, level: str, rng: np.random.Generator) -> np.ndarray:
    """Simulate a phone photo of *card* on a desk: perspective, rotation, lighting, blur, noise (BGR)."""
    jitter, max_rot, light, sigma, noise, _ = LEVEL_PARAMS[level]
    out_w, out_h = 1280, 960
    bg = _background(rng, out_h, out_w)
    card_h, card_w = card.shape[:2]
    # A passport page is taller than a card: photographed from a little further, so it stays in the frame.
    scale = rng.uniform(0.6, 0.78) * out_w / card_w * (1.0 if card_w / card_h > 1.5 else 0.85)
    cw, ch = card_w * scale, card_h * scale
    angle = np.deg2rad(rng.uniform(-max_rot, max_rot))
    corners = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    center = np.array([out_w / 2, out_h / 2]) + rng.uniform(-0.05, 0.05, size=2) * [out_w, out_h]
    dst = corners @ rot.T + center + rng.uniform(-jitter, jitter, size=(4, 2)) * cw
    src = np.array([[0, 0], [card_w, 0], [card_w, card_h], [0, card_h]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(card, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((card_h, card_w), 255, np.uint8), matrix, (out_w, out_h))
    mask = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255
    photo = warped * mask + bg * (1 - mask)
    return _camera(photo, light, sigma, noise, rng)


def _camera(photo: np.ndarray, light: tuple[float, float], sigma: float, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """Uneven lighting (a linear gradient in a random direction), optics blur and sensor noise."""
    h, w = photo.shape[:2]
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(theta) * np.linspace(-1, 1, w)[None, :] + np.sin(theta) * np.linspace(-1, 1, h)[:, None])
    low, high = light
    gain = low + (high - low) * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    photo = photo.astype(np.float32) * gain[..., None]
    photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    photo = photo + rng.normal(0, noise, size=photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes, as a phone uploads them."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return buf.tobytes()


def selfie(person: str, rng: np.random.Generator, level: str = "easy") -> np.ndarray:
    """Another shot of *person*: a different crop, pose (rotation), exposure, lighting and maybe mirrored."""
    photo = person_photo(person)
    x, y, w, h = next(p.box for p in PEOPLE if p.name == person)
    size = h * rng.uniform(2.6, 3.4)
    cx, cy = x + w / 2 + rng.uniform(-0.25, 0.25) * w, y + h / 2 + rng.uniform(-0.1, 0.25) * h
    crop = _crop(photo, cx - size * 0.4, cy - size / 2, size * 0.8, size)
    crop = cv2.resize(crop, (480, 600), interpolation=cv2.INTER_CUBIC)
    angle = rng.uniform(-10, 10)
    matrix = cv2.getRotationMatrix2D((240, 300), angle, rng.uniform(0.95, 1.05))
    crop = cv2.warpAffine(crop, matrix, (480, 600), borderMode=cv2.BORDER_REFLECT)
    crop = _reshape(crop, rng)
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)  # front cameras mirror
    exposure = rng.uniform(0.75, 1.25)
    sigma, noise = LEVEL_PARAMS[level][3:5]
    lit = _camera(crop.astype(np.float32) * exposure, (0.7, 1.2), sigma * 0.6, noise * 0.6, rng)
    return lit


def _reshape(image: np.ndarray, rng: np.random.Generator, amplitude: float = 0.025) -> np.ndarray:
    """A smooth random displacement field (a few % of the size): a stand-in for another pose/expression."""
    h, w = image.shape[:2]
    field = rng.normal(0, amplitude, size=(4, 4, 2)).astype(np.float32)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + field[..., 0] * w, ys + field[..., 1] * h, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def two_faces(rng: np.random.Generator) -> np.ndarray:
    """A selfie with two people in it (side by side)."""
    a, b = selfie("astronaut", rng), selfie("grace_hopper", rng)
    return np.hstack([a, b])
