"""Whole verification cases (front, back, selfie + the truth) and bad inputs, built from ``synth``.

Kinds and what a correct decision says about them:

- ``genuine``: everything matches -> approve;
- ``mrz_digit``: one digit of the MRZ changed, check digits left alone -> reject (``mrz_invalid``);
- ``front_mismatch``: the front prints another surname, birth date or document number than the
  MRZ -> reject (``front_mrz_mismatch``);
- ``other_person``: the selfie shows someone else -> reject (``face_mismatch``);
- ``expired``: a valid card that expired -> reject (``document_expired``);
- ``replay``: the selfie is the card's own portrait, re-photographed -> reject (``replay``);
- ``low_quality``: a genuine case whose selfie is badly blurred or too dark -> review
  (``selfie_blurry`` or ``selfie_dark``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
import zlib

import cv2
import numpy as np

from . import synth
from .synth import DESIGNS, KINDS, LEVEL_PARAMS, PEOPLE, Case

EXPECTED = {
    "genuine": ("approve", ()),
    "mrz_digit": ("reject", ("mrz_invalid",)),
    "front_mismatch": ("reject", ("front_mrz_mismatch",)),
    "other_person": ("reject", ("face_mismatch",)),
    "expired": ("reject", ("document_expired",)),
    "replay": ("reject", ("replay",)),
    "low_quality": ("review", ()),  # the reason depends on the variant: see make_case
}


def make_case(seed: int, level: str = "easy", kind: str = "genuine", design: str = "A") -> Case:
    """The case of this seed, degradation level, kind and card design; the same arguments give the same bytes."""
    if level not in LEVEL_PARAMS or kind not in KINDS or design not in DESIGNS:
        raise ValueError(f"level must be one of {list(LEVEL_PARAMS)}, kind one of {list(KINDS)} and design one of "
                         f"{list(DESIGNS)}")
    key = [seed, list(LEVEL_PARAMS).index(level), KINDS.index(kind)]
    rng = np.random.default_rng(key if design == "A" else [*key, DESIGNS.index(design)])  # A's cases keep their bytes
    person = PEOPLE[int(rng.integers(0, len(PEOPLE)))].name
    identity = synth.random_identity(rng, person, expired=kind == "expired", nationality=synth.NATIONALITY[design])
    if design == "C":  # it prints the issue date too: one more date on the front that is not in the MRZ
        issued = identity.expiry_date - dt.timedelta(days=3652 - int(rng.integers(0, 60)))
        identity = dataclasses.replace(identity, issue_date=issued)
    passport = design in synth.PASSPORTS
    lines = synth.mrz_lines(identity, passport=passport)
    notes: dict[str, str] = {}
    shown = None
    if kind == "mrz_digit":
        lines, notes["tampered"] = _change_mrz_digit(lines, rng)
    elif kind == "front_mismatch":
        shown, notes["tampered"] = _other_front(identity, rng)
    quality = LEVEL_PARAMS[level][5]
    front_card = synth.render_front(identity, rng, shown=shown, design=design, mrz=lines)
    front = synth.encode(synth.phone_photo(front_card, level, rng), quality)
    # A passport has no back to photograph: its data page carries the MRZ.
    back = None if passport else synth.encode(synth.phone_photo(synth.render_back(lines, rng), level, rng), quality)
    selfie_person = person
    if kind == "other_person":
        others = [p.name for p in PEOPLE if p.name != person]
        selfie_person = others[int(rng.integers(0, len(others)))]
    if kind == "replay":  # noqa: SIM108 - the two ways of making a selfie read better apart
        selfie_image = replay_selfie(front_card, rng, design)
    else:
        selfie_image = synth.selfie(selfie_person, rng, level)
    decision, reasons = EXPECTED[kind]
    if kind == "low_quality":
        selfie_image, reason = degrade_selfie(selfie_image, rng)
        reasons, notes["degraded"] = (reason,), reason
    return Case(seed=seed, level=level, kind=kind, identity=identity, front=front, back=back,
                selfie=synth.encode(selfie_image, 88), expected_decision=decision, expected_reasons=reasons,
                selfie_person=selfie_person, mrz=tuple(lines), printed=shown, notes=notes, design=design)


def _change_mrz_digit(lines: list[str], rng: np.random.Generator) -> tuple[list[str], str]:
    """Change one digit of the birth date or the document number without fixing its check digit."""
    lines = list(lines)
    td1 = len(lines) == 3  # else TD3: both on the second line, the number first, the birth date at 13
    birth, number = (0, (0, 5)) if td1 else (13, (1, 0))
    if rng.random() < 0.5:
        row, positions = 1, list(range(birth, birth + 6))  # birth date YYMMDD
    else:
        row = number[0]
        positions = [i for i in range(number[1], number[1] + 9) if lines[row][i].isdigit()]  # document number digits
    pos = int(rng.choice(positions))
    old = lines[row][pos]
    new = str((int(old) + int(rng.integers(1, 9))) % 10)
    if row == 1 and pos - birth in (2, 4) and positions[0] == birth:  # keep the date a real date (month/day tens)
        new = str((int(old) + 1) % 2)
    lines[row] = lines[row][:pos] + new + lines[row][pos + 1:]
    return lines, f"MRZ line {row + 1} position {pos + 1}: {old} -> {new}"


def _other_front(identity: synth.Identity, rng: np.random.Generator) -> tuple[synth.Identity, str]:
    """The identity the tampered front prints: one of surname, birth date, document number differs."""
    which = ("surname", "birth_date", "document_number")[int(rng.integers(0, 3))]
    if which == "surname":
        value: object = str(rng.choice([s for s in synth.SURNAMES if s != identity.surname]))
    elif which == "birth_date":
        value = identity.birth_date + dt.timedelta(days=int(rng.integers(30, 3000)))
    else:
        number = identity.document_number
        i = max(k for k, c in enumerate(number) if c.isdigit())
        value = number[:i] + str((int(number[i]) + int(rng.integers(1, 9))) % 10) + number[i + 1:]
        i = min(k for k, c in enumerate(number) if c.isdigit())
        value = value[:i] + str((int(number[i]) + 3) % 10) + value[i + 1:]  # two digits: not an OCR slip
    return dataclasses.replace(identity, **{which: value}), f"front {which} differs"


def replay_selfie(front_card: np.ndarray, rng: np.random.Generator, design: str = "A") -> np.ndarray:
    """The card's portrait as a selfie: cut out of the card, enlarged, slightly re-lit and recompressed."""
    x, y, w, h = (round(v * synth.PX_PER_MM) for v in synth.PORTRAITS_MM[design])
    portrait = front_card[y:y + h, x:x + w]
    big = cv2.resize(portrait, (480, 600), interpolation=cv2.INTER_CUBIC)
    return np.clip(big.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)


def degrade_selfie(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A badly focused (or shaken) selfie, or one taken in the dark; returns the reason code it should get."""
    if rng.random() < 0.5:
        sigma = rng.uniform(4.0, 7.0)
        return cv2.GaussianBlur(image, (0, 0), sigma), "selfie_blurry"
    dark = image.astype(np.float32) * rng.uniform(0.12, 0.25) + rng.normal(0, 2, image.shape)
    return np.clip(dark, 0, 255).astype(np.uint8), "selfie_dark"


def case_plan(seeds: range, levels: tuple[str, ...] = synth.LEVELS) -> list[tuple[int, str, str]]:
    """(seed, level, kind) for a benchmark set: half genuine, the rest cycling through the tampered kinds."""
    plan = []
    tampered = [k for k in KINDS if k != "genuine"]
    for i, seed in enumerate(seeds):
        kind = "genuine" if i % 2 == 0 else tampered[(i // 2) % len(tampered)]
        plan.append((seed, levels[i % len(levels)], kind))
    return plan


# --- bad inputs ---------------------------------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims *width* x *height* pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def desk_photo(seed: int) -> bytes:
    """A photo of an empty desk: no card, no face."""
    rng = np.random.default_rng([seed, 99])
    return synth.encode(synth._background(rng, 960, 1280), 85)


def back_without_mrz(seed: int) -> bytes:
    """The back of a card whose MRZ has been scratched off (blanked)."""
    rng = np.random.default_rng([seed, 98])
    identity = synth.random_identity(rng, "astronaut")
    card = synth.render_back(synth.mrz_lines(identity), rng)
    card[round(34 * synth.PX_PER_MM):, :] = (248, 248, 244)
    return synth.encode(synth.phone_photo(card, "easy", rng), 90)


def two_face_selfie(seed: int) -> bytes:
    """A selfie with two people in it."""
    return synth.encode(synth.two_faces(np.random.default_rng([seed, 97])), 88)
