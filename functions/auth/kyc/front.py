"""What a card's front prints under each caption, read from OCR lines: evidence, not the check itself.

The front is verified against the MRZ by looking for the MRZ's values anywhere on it (``verify``); the
values under the captions are what the front *claims* a field is, used only as evidence that it shows
another value. Captions come in the languages most ID documents use, often two at once (``Surname /
Nom``, ``NAZWISKO / SURNAME``); the value is the rest of the caption's line or the line just below it,
left-aligned with it (how ID cards print fields). A caption is never taken for a value.
"""

from __future__ import annotations

import difflib
import functools
import re

from .dates import parse_date, plain
from .ocr import TextLine

__all__ = ["LABELS", "canonical_number", "caption_of", "edit_distance", "is_caption", "is_caption_word", "normalise",
           "parse_date", "read_fields"]

# Captions (upper case, no accents) in English, French, German, Spanish, Italian, Dutch, Portuguese, Polish.
LABELS = {
    "surname": ("SURNAME", "FAMILY NAME", "LAST NAME", "NAME", "NOM", "NOM DE FAMILLE", "NACHNAME", "FAMILIENNAME",
                "APELLIDOS", "APELLIDO", "COGNOME", "ACHTERNAAM", "NAAM", "SOBRENOME", "APELIDO", "NAZWISKO"),
    "given_names": ("GIVEN NAMES", "GIVEN NAME", "FIRST NAME", "FIRST NAMES", "FORENAMES", "PRENOMS", "PRENOM",
                    "VORNAMEN", "VORNAME", "NOMBRE", "NOMBRES", "NOME", "NOMI", "VOORNAMEN", "IMIONA", "IMIE"),
    "birth_date": ("DATE OF BIRTH", "BIRTH DATE", "BORN", "DATE DE NAISSANCE", "NE LE", "NEE LE", "GEBURTSDATUM",
                   "FECHA DE NACIMIENTO", "DATA DI NASCITA", "GEBOORTEDATUM", "DATA DE NASCIMENTO", "DATA URODZENIA"),
    "sex": ("SEX", "SEXE", "GESCHLECHT", "SEXO", "SESSO", "GESLACHT", "PLEC"),
    "nationality": ("NATIONALITY", "NATIONALITE", "STAATSANGEHORIGKEIT", "NACIONALIDAD", "CITTADINANZA",
                    "NAZIONALITA", "NATIONALITEIT", "NACIONALIDADE", "OBYWATELSTWO"),
    "document_number": ("DOCUMENT NO.", "DOCUMENT NO", "DOCUMENT NUMBER", "CARD NO.", "CARD NO", "CARD NUMBER",
                        "PASSPORT NO.", "PASSPORT NO", "NO. DU DOCUMENT", "NO DU DOCUMENT", "N DU DOCUMENT",
                        "DOKUMENTNUMMER", "AUSWEISNUMMER", "NUMERO DE DOCUMENTO", "NUMERO DOCUMENTO",
                        "DOCUMENTNUMMER", "NUMER DOKUMENTU"),
    "expiry_date": ("DATE OF EXPIRY", "EXPIRY DATE", "EXPIRES", "VALID UNTIL", "DATE D'EXPIRATION",
                    "DATE D EXPIRATION", "EXPIRATION", "GULTIG BIS", "ABLAUFDATUM", "FECHA DE CADUCIDAD", "CADUCIDAD",
                    "VALIDO FINO AL", "SCADENZA", "GELDIG TOT", "VERVALDATUM", "DATA DE VALIDADE",
                    "TERMIN WAZNOSCI", "DATA WAZNOSCI"),
}
# Captions of fields the reader does not use, so that they are not taken for a value either.
OTHER_CAPTIONS = ("DATE OF ISSUE", "ISSUE DATE", "DATE DE DELIVRANCE", "AUSSTELLUNGSDATUM", "DATA WYDANIA",
                  "PLACE OF BIRTH", "LIEU DE NAISSANCE", "GEBURTSORT", "MIEJSCE URODZENIA", "SIGNATURE",
                  "HOLDER'S SIGNATURE", "AUTHORITY", "AUTORITE", "BEHORDE", "ORGAN WYDAJACY", "HEIGHT",
                  "TAILLE", "IDENTITY CARD", "CARTE D'IDENTITE", "PERSONALAUSWEIS", "DOWOD OSOBISTY", "PASSPORT")
_ALL_CAPTIONS = sorted({c for captions in LABELS.values() for c in captions} | set(OTHER_CAPTIONS), key=len,
                       reverse=True)
_LETTERS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G", "4": "A"})


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.strip(" .:"), b.strip(" .:")).ratio()


def is_caption(text: str) -> bool:
    """Whether *text* is a caption (in one language or several: ``Surname / Nom``), allowing an OCR slip."""
    parts = [p.strip(" .:;,") for p in plain(text).split("/")]
    return all(p and any(_similarity(p, caption) >= 0.8 for caption in _ALL_CAPTIONS) for p in parts)


_CAPTION_WORDS = frozenset(word for caption in _ALL_CAPTIONS for word in re.split(r"[\s.']+", caption) if len(word) > 2)


@functools.lru_cache(maxsize=4096)
def is_caption_word(word: str) -> bool:
    """Whether *word* is a word of a caption (``BIRTH``, ``NOM``), allowing one OCR slip in a long one."""
    folded = plain(word).strip(" .:;,'")
    if folded in _CAPTION_WORDS:
        return True
    return len(folded) >= 6 and any(abs(len(w) - len(folded)) <= 1 and edit_distance(w, folded) <= 1
                                    for w in _CAPTION_WORDS if len(w) >= 6)


def _caption_prefix(part: str) -> tuple[str, str] | None:
    """(field or '', the rest) when *part* starts with a caption; the field is '' for captions not read."""
    for caption in _ALL_CAPTIONS:
        if part.startswith(caption) and (len(part) == len(caption) or not part[len(caption)].isalnum()):
            field = next((name for name, captions in LABELS.items() if caption in captions), "")
            return field, part[len(caption):].strip(" .:;,")
    return None


def caption_of(line: TextLine) -> tuple[str, float, str]:
    """(field, similarity, value on the same line) of the caption(s) the line starts with, or ('', 0, '').

    A line may hold a caption in two languages (``Surname / Nom``), then maybe the value (``NAZWISKO /
    SURNAME: NOVAK``): every part that is a caption is skipped, what follows is the value. A part before
    a slash that is no caption listed here is taken for one in another language (``PRIJMENI / SURNAME``).
    """
    field, score, value = "", 0.0, ""
    parts = re.split(r"\s*/\s*", plain(line.text).strip())
    for index, part in enumerate(parts):
        prefix = _caption_prefix(part)
        if prefix is not None:
            field = field or prefix[0]
            score = max(score, 1.0 if prefix[0] else 0.0)
            if prefix[1]:
                value = prefix[1]
                break
            continue
        best = max(((name, _similarity(part, caption)) for name, captions in LABELS.items() for caption in captions),
                   key=lambda item: item[1])
        if best[1] >= 0.8:
            field, score = field or best[0], max(score, best[1])
            continue
        if field:  # not a caption: the value, on the caption's own line
            value = part
        elif index + 1 < len(parts):  # a caption in a language not listed, before its translation
            continue
        break
    return field, score, value.strip(" .:;,")


def read_fields(lines: list[TextLine]) -> dict[str, str]:
    """Field name -> normalised value under its caption ('' when no caption or value was found)."""
    labels: dict[str, tuple[TextLine, str, float]] = {}
    caption_lines: set[int] = set()
    for i, line in enumerate(lines):
        name, score, rest = caption_of(line)
        if score >= 0.8 and not rest:
            caption_lines.add(i)
        if score >= 0.8 and (name not in labels or score > labels[name][2]):
            labels[name] = (line, rest, score)
    values: dict[str, str] = {}
    for name in LABELS:
        raw = ""
        if name in labels:
            label, rest, _ = labels[name]
            raw = rest or _value_below(label, [t for t in lines if t is not label],
                                       {id(t) for i, t in enumerate(lines) if i in caption_lines or is_caption(t.text)})
        values[name] = normalise(name, raw)
    return values


def _value_below(label: TextLine, lines: list[TextLine], captions: set[int]) -> str:
    """The line just below *label*, starting near its left edge; nothing when that line is another caption
    (the value was not read: the next field's value must not be taken for this one's)."""
    best, best_gap = "", float("inf")
    for line in lines:
        gap = line.box[1] - label.box[1]
        aligned = abs(line.box[0] - label.box[0]) < max(2.5 * label.height, 0.3 * (label.box[2] - label.box[0]))
        if 0.3 * label.height < gap < 4.0 * label.height and aligned and gap < best_gap:
            best, best_gap = ("" if id(line) in captions else line.text), gap
    return best


def normalise(name: str, raw: str) -> str:
    """A field's value in the form the MRZ comparison uses."""
    raw = raw.strip()
    if not raw:
        return ""
    if name in ("surname", "given_names"):
        return " ".join(re.sub(r"[^A-Z ]", " ", plain(raw).translate(_LETTERS)).split())
    if name in ("birth_date", "expiry_date"):
        return parse_date(raw)
    if name == "document_number":
        return re.sub(r"[^A-Z0-9]", "", raw.upper())
    if name == "sex":
        letter = re.sub(r"[^A-Z]", "", raw.upper())[:1]
        return letter if letter in ("M", "F", "X") else ""
    if name == "nationality":
        return re.sub(r"[^A-Z]", "", plain(raw).translate(_LETTERS))[:3]
    return raw


def canonical_number(value: str) -> str:
    """A document number with look-alike letters folded onto digits, for OCR-tolerant comparison."""
    return value.upper().translate(str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2",
                                                  "S": "5", "B": "8", "G": "6"}))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (names may differ by an OCR slip without being different names)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
