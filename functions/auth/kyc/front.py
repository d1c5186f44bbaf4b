"""Reading the printed fields of a card's front from OCR lines, by their labels.

Why labels and not fixed boxes: the label text ("Surname", "Date of birth", ...) is what a
person reads too, and finding it tolerates small layout shifts and imperfect straightening. The
value is the text line just below its label, left-aligned with it (how ID cards print fields),
or the rest of the label's own line when OCR merged the two. Values are normalised per field
type (names: letters; dates: DD.MM.YYYY -> ISO; document number: letters and digits), so they
compare directly with the MRZ.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re

from .ocr import TextLine

LABELS = {
    "surname": ("surname", "family name"),
    "given_names": ("given names", "given name", "prenoms", "forenames"),
    "birth_date": ("date of birth", "birth date"),
    "sex": ("sex",),
    "nationality": ("nationality",),
    "document_number": ("document no.", "document no", "document number", "card no."),
    "expiry_date": ("date of expiry", "expiry date", "valid until"),
}
_LETTERS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G", "4": "A"})
_DIGITS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "L": "1", "|": "1", "Z": "2",
                         "S": "5", "B": "8", "G": "6", "T": "7", "A": "4", ",": ".", " ": ""})


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower().strip(" .:"), b.lower().strip(" .:")).ratio()


def _label_of(line: TextLine) -> tuple[str, float, str]:
    """(field, similarity, rest of the line after the label) of the best-matching label, or ('', 0, '')."""
    best = ("", 0.0, "")
    lowered = line.text.lower()
    for name, labels in LABELS.items():
        for label in labels:
            score = _similarity(line.text, label)
            rest = ""
            if lowered.startswith(label) and len(lowered) > len(label) + 1:  # OCR merged label and value
                score, rest = 0.95, line.text[len(label):].strip(" .:")
            if score > best[1]:
                best = (name, score, rest)
    return best


def read_fields(lines: list[TextLine]) -> dict[str, str]:
    """Field name -> normalised value ('' when its label or value was not found)."""
    labels: dict[str, tuple[TextLine, str]] = {}
    label_lines: set[int] = set()
    for i, line in enumerate(lines):
        name, score, rest = _label_of(line)
        if score >= 0.8 and (name not in labels or score > _label_of(labels[name][0])[1]):
            labels[name] = (line, rest)
            label_lines.add(i)
    values: dict[str, str] = {}
    for name in LABELS:
        raw = ""
        if name in labels:
            label, rest = labels[name]
            raw = rest or _value_below(label, [t for i, t in enumerate(lines) if i not in label_lines])
        values[name] = normalise(name, raw)
    return values


def _value_below(label: TextLine, lines: list[TextLine]) -> str:
    """The line just below *label*, starting near its left edge."""
    best, best_gap = "", float("inf")
    for line in lines:
        gap = line.box[1] - label.box[1]
        aligned = abs(line.box[0] - label.box[0]) < max(2.5 * label.height, 0.3 * (label.box[2] - label.box[0]))
        if 0.3 * label.height < gap < 4.0 * label.height and aligned and gap < best_gap:
            best, best_gap = line.text, gap
    return best


def normalise(name: str, raw: str) -> str:
    """A field's value in the form the MRZ comparison uses."""
    raw = raw.strip()
    if not raw:
        return ""
    if name in ("surname", "given_names"):
        return " ".join(re.sub(r"[^A-Z ]", " ", raw.upper().translate(_LETTERS)).split())
    if name in ("birth_date", "expiry_date"):
        return parse_date(raw)
    if name == "document_number":
        return re.sub(r"[^A-Z0-9]", "", raw.upper())
    if name == "sex":
        letter = re.sub(r"[^A-Z]", "", raw.upper())[:1]
        return letter if letter in ("M", "F", "X") else ""
    if name == "nationality":
        return re.sub(r"[^A-Z]", "", raw.upper().translate(_LETTERS))[:3]
    return raw


def parse_date(raw: str) -> str:
    """'DD.MM.YYYY' (with OCR confusions) -> ISO 'YYYY-MM-DD'; '' when it is not a real date."""
    text = raw.translate(_DIGITS)
    match = re.search(r"(\d{1,2})[./-]?(\d{1,2})[./-]?(\d{4})", text)
    if not match:
        return ""
    try:
        return dt.date(int(match.group(3)), int(match.group(2)), int(match.group(1))).isoformat()
    except ValueError:
        return ""


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
