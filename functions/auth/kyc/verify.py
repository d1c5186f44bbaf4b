"""The printed front checked against the MRZ, wherever on the front its values appear.

The MRZ is the source of truth (its check digits make it self-verifying); the front must show the
same person and document. Each of the MRZ's values is looked for anywhere in the front's OCR text,
whatever the card's layout, caption language or date format, tolerating OCR look-alikes. A value
found is ``found``. A value not found is ``differs`` only on positive evidence that the front shows
another value: what the front prints under that field's caption (``front.read_fields``) is clearly
something else, or a document number that is the MRZ's with digits changed. Anything else is
``not_found``: the reader is unsure, which is a review, never a reject, so a genuine customer
holding a card of a design the reader has not seen is not turned away on a misreading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .dates import find_dates, plain
from .front import canonical_number, edit_distance, is_caption, is_caption_word

FIELDS = ("surname", "given_names", "document_number", "birth_date", "expiry_date")
FOUND, DIFFERS, NOT_FOUND = "found", "differs", "not_found"
_AS_LETTERS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G", "4": "A", "|": "I"})
# MRZs transliterate (ICAO 9303-3): Ä may be written AE or A, Ö OE or O, Ü UE or U, Å AA or A.
_GERMANIC = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "Å": "AA", "Æ": "AE", "Ø": "OE"})


@dataclass(frozen=True)
class FieldCheck:
    status: str       # found, differs or not_found
    front: str = ""   # what the front shows instead (differs only)

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, **({"front": self.front} if self.front else {})}


def is_mrz_line(text: str) -> bool:
    """A line (or a piece of one) of a machine-readable zone, which passport pages print on the front: not a
    printed value. OCR splits MRZ lines and reads some fillers as letters, so two fillers are enough."""
    return text.count("<") >= 2 or (text.count("<") == 1 and len(text.replace(" ", "")) >= 15)


def _letters(text: str) -> list[str]:
    """*text*'s letters only, as the MRZ would spell them: both transliterations where they differ."""
    forms = {plain(text), plain(text.upper().translate(_GERMANIC))}
    return [re.sub(r"[^A-Z]", "", form.translate(_AS_LETTERS)) for form in forms]


def _words(texts: list[str]) -> list[str]:
    """The front's words in reading order, captions' words left out (a name is not found inside ``BIRTH``)."""
    words = []
    for text in texts:
        for word in re.split(r"[\s/:,;]+", text):
            if word and not is_caption_word(word):
                words.append(word)
    return words


def _name_found(value: str, texts: list[str], max_edits: int) -> bool:
    """The name as whole words (one to four in a row, a long name may wrap onto the next line), within
    *max_edits* edits: ``MARTIN`` is not found in ``MARTINEZ``, nor ``LI`` in ``NATIONALITY``."""
    target = re.sub(r"[^A-Z]", "", value)
    if not target:
        return False
    allowed = max_edits if len(target) >= 4 else 0
    words = _words(texts)
    for start in range(len(words)):
        for end in range(start + 1, min(start + 4, len(words)) + 1):
            for form in _letters(" ".join(words[start:end])):
                if abs(len(form) - len(target)) <= allowed and edit_distance(form, target) <= allowed:
                    return True
    return False


def _number_tokens(texts: Iterable[str]) -> list[str]:
    tokens = []
    for text in texts:
        upper = plain(text)
        tokens += [canonical_number(t) for t in re.findall(r"[A-Z0-9]+", upper)]
        tokens.append(canonical_number(re.sub(r"[^A-Z0-9]", "", upper)))  # printed with spaces: AB 123 456
    return tokens


def _check_number(value: str, texts: list[str], claim: str) -> FieldCheck:
    target = canonical_number(value)
    tokens = _number_tokens(texts)
    if not target or any(target in token for token in tokens):
        return FieldCheck(FOUND if target else NOT_FOUND)
    # The MRZ's number with two or more characters changed, printed where a number is: a changed document.
    near = [t for t in [canonical_number(claim), *tokens]
            if len(t) == len(target) and 2 <= sum(a != b for a, b in zip(t, target, strict=True)) <= len(target) // 3]
    return FieldCheck(DIFFERS, near[0]) if near else FieldCheck(NOT_FOUND)


def _same_day(reading: str, value: str) -> bool:
    """Dates agree; the MRZ writes two-digit years, so its century is a guess: compare years modulo 100."""
    return len(reading) == len(value) == 10 and reading[2:] == value[2:]


def _check_date(value: str, texts: list[str], claim: str) -> FieldCheck:
    readings = [r for text in texts for date in find_dates(text) for r in date.readings]
    if any(_same_day(r, value) for r in readings):
        return FieldCheck(FOUND)
    # What its caption shows, if it is not the MRZ's date with one digit misread (that is a review).
    claimed = [r for date in find_dates(claim) for r in date.readings] if claim else []
    if claimed and all(_digits_apart(r, value) >= 2 for r in claimed):
        return FieldCheck(DIFFERS, claimed[0])
    return FieldCheck(NOT_FOUND)


def _digits_apart(a: str, b: str) -> int:
    if len(a) != 10 or len(b) != 10:  # not both ISO dates: as far apart as can be
        return 8
    return sum(x != y for x, y in zip(a[2:], b[2:], strict=True))


def _check_name(value: str, texts: list[str], claim: str, max_edits: int) -> FieldCheck:
    if _name_found(value, texts, max_edits):
        return FieldCheck(FOUND)
    shown = re.sub(r"[^A-Z ]", "", plain(claim).translate(_AS_LETTERS)).strip()
    compact_value, compact_shown = value.replace(" ", ""), shown.replace(" ", "")
    if len(compact_shown) >= 2 and not is_caption(shown) and edit_distance(compact_value, compact_shown) > max_edits:
        return FieldCheck(DIFFERS, shown)
    return FieldCheck(NOT_FOUND)


def check_front(text: list[str], claims: dict[str, str], mrz: dict[str, str], *,
                max_name_edits: int = 1) -> dict[str, FieldCheck]:
    """Each MRZ value (fields the MRZ has) against the front's text lines and the values under its captions."""
    texts = [line for line in text if isinstance(line, str) and not is_mrz_line(line)]
    checks: dict[str, FieldCheck] = {}
    for name in FIELDS:
        value, claim = mrz.get(name), claims.get(name)
        value, claim = value if isinstance(value, str) else "", claim if isinstance(claim, str) else ""
        if not value:
            continue
        if name.endswith("_date") and len(value) != 10:  # not a date the MRZ reader makes: unverifiable
            checks[name] = FieldCheck(NOT_FOUND)
            continue
        if name in ("surname", "given_names"):
            checks[name] = _check_name(value, texts, claim, max_name_edits)
        elif name == "document_number":
            checks[name] = _check_number(value, texts, claim)
        else:
            checks[name] = _check_date(value, texts, claim)
    return checks
