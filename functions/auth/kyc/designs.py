"""Fronts of card designs B and C (``synth.DESIGNS`` says how they differ from A and why C is held out)."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .synth import PORTRAITS_MM, Identity, _card_base, _mm, portrait_crop

MONTHS_EN_FR = ("JAN/JAN", "FEB/FÉV", "MAR/MARS", "APR/AVR", "MAY/MAI", "JUN/JUIN", "JUL/JUIL", "AUG/AOÛT",
                "SEP/SEPT", "OCT/OCT", "NOV/NOV", "DEC/DÉC")
# How design C prints a surname where the national spelling has diacritics (the MRZ has none).
NATIONAL_SPELLING = {"NOVAK": "NOVÁK", "HAVEL": "HÁVEL", "KOWALSKA": "KOWALSKÁ", "MUELLER": "MÜLLER",
                     "JANSEN": "JÁNSEN", "DUBOIS": "DUBOIS"}


@cache
def _font_file(name: str) -> str:
    import matplotlib
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's font {name} is missing ({path})")
    return str(path)


def _font(name: str, size_mm: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_file(name), _mm(size_mm))


def _paste_portrait(card: Image.Image, identity: Identity, rng: np.random.Generator, box_mm: tuple[float, ...],
                    faded: bool = False) -> None:
    portrait = cv2.cvtColor(portrait_crop(identity.person, rng), cv2.COLOR_BGR2RGB)
    if faded:  # a ghost image: grey and light, as printed in a security feature
        grey = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY).astype(np.float32)
        portrait = np.repeat((160 + grey * 0.35).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    x, y, w, h = (_mm(v) for v in box_mm)
    card.paste(Image.fromarray(portrait).resize((w, h), Image.Resampling.LANCZOS), (x, y))


def render_front_b(identity: Identity, rng: np.random.Generator, text: Identity) -> np.ndarray:
    """Design B: bilingual English/French captions above their values, portrait on the right."""
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    ink, caption_ink = (25, 25, 35), (60, 80, 120)
    draw.text((_mm(4), _mm(2.2)), "ARCADIA", font=_font("DejaVuSans-Bold.ttf", 3.6), fill=(120, 20, 30))
    draw.text((_mm(30), _mm(3.0)), "IDENTITY CARD / CARTE D'IDENTITÉ", font=_font("DejaVuSans.ttf", 2.2),
              fill=(120, 20, 30))
    _paste_portrait(card, identity, rng, PORTRAITS_MM["B"])
    caption, value = _font("DejaVuSans.ttf", 1.8), _font("DejaVuSans.ttf", 3.0)

    def date(day: dt.date) -> str:
        return f"{day.day:02d} {MONTHS_EN_FR[day.month - 1]} {day.year}"

    number = text.document_number
    rows = [((4, 10), "Surname / Nom", text.surname),
            ((4, 17), "Given names / Prénoms", text.given_names.title()),
            ((4, 24), "Sex / Sexe      Nationality / Nationalité", f"{text.sex}            {text.nationality}"),
            ((4, 31), "Date of birth / Date de naissance", date(text.birth_date)),
            ((4, 38), "Document No. / No du document", f"{number[:3]} {number[3:]}"),
            ((4, 45), "Date of expiry / Date d'expiration", date(text.expiry_date))]
    for (x, y), name, val in rows:
        draw.text((_mm(x), _mm(y)), name, font=caption, fill=caption_ink)
        draw.text((_mm(x), _mm(y + 2.3)), val, font=value, fill=ink)
    draw.text((_mm(60), _mm(43)), "~" * 5, font=_font("DejaVuSans.ttf", 4.0), fill=(30, 30, 120))
    return cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR)


def render_front_c(identity: Identity, rng: np.random.Generator, text: Identity) -> np.ndarray:
    """Design C: bilingual Czech/English captions with the value on the same line, a ghost portrait."""
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    ink = (15, 30, 20)
    draw.text((_mm(5), _mm(2.5)), "OBČANSKÝ PRŮKAZ / IDENTITY CARD", font=_font("DejaVuSerif-Bold.ttf", 2.8),
              fill=(20, 70, 40))
    _paste_portrait(card, identity, rng, PORTRAITS_MM["C"])
    _paste_portrait(card, identity, rng, (76.5, 43.5, 7.0, 8.8), faded=True)
    font, small = _font("DejaVuSerif.ttf", 2.3), _font("DejaVuSerif.ttf", 1.8)
    issued = text.issue_date or text.expiry_date - dt.timedelta(days=3652)
    number = text.document_number
    lines = [((27, 9), f"PŘÍJMENÍ / SURNAME: {NATIONAL_SPELLING.get(text.surname, text.surname)}", font),
             ((27, 14), f"JMÉNA / GIVEN NAMES: {text.given_names}", font),
             ((27, 19), f"POHLAVÍ / SEX: {text.sex}   OBČANSTVÍ / NATIONALITY: {text.nationality}", small),
             ((27, 24), "DATUM NAROZENÍ / DATE OF BIRTH", small),
             ((27, 27.5), text.birth_date.isoformat(), font),
             ((27, 33), f"Č. DOKLADU / DOCUMENT NO.: {number[:4]} {number[4:]}", font),
             ((5, 44), f"VYDÁNO / ISSUED: {issued.strftime('%d %m %Y')}    "
                       f"PLATNOST DO / EXPIRY: {text.expiry_date.strftime('%d %m %Y')}", _font("DejaVuSerif.ttf", 1.9))]
    for (x, y), line, face in lines:
        draw.text((_mm(x), _mm(y)), line, font=face, fill=ink)
    draw.text((_mm(40), _mm(47.5)), "~" * 5, font=_font("DejaVuSerif.ttf", 4.0), fill=(30, 30, 120))
    return cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR)


RENDERERS = {"B": render_front_b, "C": render_front_c}
MONTHS_GA_EN = ("EAN/JAN", "FEA/FEB", "MÁR/MAR", "AIB/APR", "BEA/MAY", "MEI/JUN", "IÚIL/JUL", "LÚN/AUG", "MFÓM/SEP",
                "DFÓM/OCT", "SAM/NOV", "NOD/DEC")


def render_passport(identity: Identity, rng: np.random.Generator, text: Identity, mrz: list[str]) -> np.ndarray:
    """Design P: a passport's data page (ID-3, TD3 MRZ of two lines of 44 at the bottom), Irish/English
    captions above their values, dates with bilingual month names (``12 LÚN/AUG 1974``)."""
    from .synth import PASSPORT_MM, ocrb_font
    size = (_mm(PASSPORT_MM[0]), _mm(PASSPORT_MM[1]))
    page = _card_base(rng, size)
    draw = ImageDraw.Draw(page)
    ink, caption_ink = (20, 20, 30), (40, 90, 60)
    draw.text((_mm(6), _mm(4)), "ÉIRE / IRELAND", font=_font("DejaVuSans-Bold.ttf", 4.0), fill=(20, 80, 40))
    draw.text((_mm(70), _mm(5)), "PAS / PASSPORT", font=_font("DejaVuSans.ttf", 3.2), fill=(20, 80, 40))
    _paste_portrait(page, identity, rng, PORTRAITS_MM["P"])
    caption, value = _font("DejaVuSans.ttf", 2.0), _font("DejaVuSans.ttf", 3.2)

    def date(day: dt.date) -> str:
        return f"{day.day:02d} {MONTHS_GA_EN[day.month - 1]} {day.year}"

    issued = text.expiry_date - dt.timedelta(days=3652)
    rows = [((46, 12), "Cineál / Type", "P"), ((66, 12), "Cód / Code", text.nationality),
            ((86, 12), "Uimhir phas / Passport No.", text.document_number),
            ((46, 20), "Sloinne / Surname", text.surname), ((46, 28), "Réamhainm / Given names", text.given_names),
            ((46, 36), "Náisiúntacht / Nationality", "ÉIREANNACH / IRISH"),
            ((46, 44), "Dáta breithe / Date of birth", date(text.birth_date)), ((100, 44), "Gnéas / Sex", text.sex),
            ((46, 52), "Dáta eisiúna / Date of issue", date(issued)),
            ((46, 60), "Dáta éaga / Date of expiry", date(text.expiry_date))]
    for (x, y), name, val in rows:
        draw.text((_mm(x), _mm(y)), name, font=caption, fill=caption_ink)
        draw.text((_mm(x), _mm(y + 2.3)), val, font=value, fill=ink)
    draw.rectangle((0, _mm(67), size[0], size[1]), fill=(248, 248, 244))  # the MRZ's clear zone
    font, pitch = ocrb_font(_mm(3.3)), _mm(2.54)  # ICAO 9303: 2.54 mm per character
    for row, line in enumerate(mrz):
        for col, char in enumerate(line):
            draw.text((_mm(6.6) + col * pitch, _mm(71) + row * _mm(6.5)), char, font=font, fill=(15, 15, 15))
    return cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
