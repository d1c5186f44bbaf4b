"""Reading a machine-readable zone from OCR lines: clean-up, position-aware fixes, check digits.

Three formats (ICAO 9303 parts 4-6): TD1 (identity cards: 3 lines of 30), TD2 (2 lines of 36) and
TD3 (passports: 2 lines of 44); which one is told by the number and length of the lines found.

OCR confuses glyphs that look alike (O/0, I/1, S/5, B/8, Z/2, G/6) and renders the filler ``<``
as ``K``, ``«`` or drops one in a long run. The TD1 layout (ICAO 9303 part 5) says, for every
position, whether a letter, a digit or either may stand there, so most confusions are fixed by
position: a digit field maps O->0, a letter field maps 0->O. The document number may mix letters
and digits; there, a letter standing after the first digit (issuers put letters first) may be
turned into its look-alike digit, but only when exactly one such reading satisfies both the
field's check digit and the composite one. Digits are never turned into letters: that would let
a tampered digit "repair" itself. Validation then uses ``mrz``'s ``TD1CodeChecker`` (every check digit:
document number, birth date, expiry, composite), and a hand check for each field says which one
failed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .ocr import TextLine

LINE_LENGTH = 30
TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6",
            "T": "7", "A": "4"}
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "3": "E", "7": "T"}
LETTER_FOR_DIGIT = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "S": "5", "B": "8", "Z": "2", "G": "6"}
_FILLER_LOOKALIKES = str.maketrans({"\u00ab": "<<", "\u2039": "<", "\u3008": "<", "\u304f": "<", "(": "<", "[": "<", "{": "<"})
# Greek and Cyrillic capitals the recogniser sometimes returns for their Latin twins.
_SCRIPT_LOOKALIKES = str.maketrans("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7"
                                   "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425",
                                   "ABEZHIKMNOPTYXABEKMHOPCTX")

# Character classes per position of each TD1 line: A letter/filler, N digit, X either, F sex.
_LINE1 = "AA" + "AAA" + "XXXXXXXXX" + "N" + "XXXXXXXXXXXXXXX"
_LINE2 = "NNNNNN" + "N" + "F" + "NNNNNN" + "N" + "AAA" + "XXXXXXXXXXX" + "N"
_LINE3 = "A" * 30
LAYOUT = (_LINE1, _LINE2, _LINE3)
_WEIGHTS = (7, 3, 1)


@dataclass(frozen=True)
class Format:
    """Where each field of one MRZ format is: (line, start, end) slices, 0-based, end excluded."""

    name: str
    length: int
    layout: tuple[str, ...]
    number: tuple[int, int, int]      # the document number; its check digit follows it
    birth: tuple[int, int, int]       # YYMMDD, check digit after
    expiry: tuple[int, int, int]
    sex: tuple[int, int]
    nationality: tuple[int, int, int]
    names: tuple[int, int, int]
    composite: tuple[tuple[int, int], ...]  # slices of the data line the composite check digit covers
    composite_at: int                 # on the data line (the last line for TD1, the second otherwise)


TD1 = Format("TD1", 30, LAYOUT, number=(0, 5, 14), birth=(1, 0, 6), expiry=(1, 8, 14), sex=(1, 7),
             nationality=(1, 15, 18), names=(2, 0, 30), composite=(), composite_at=29)
# TD2 and TD3 share a data line: number, check, nationality, birth, check, sex, expiry, check, optional, composite.
_DATA = "XXXXXXXXX" + "N" + "AAA" + "NNNNNN" + "N" + "F" + "NNNNNN" + "N"
TD2 = Format("TD2", 36, ("AA" + "AAA" + "A" * 31, _DATA + "X" * 7 + "N"), number=(1, 0, 9), birth=(1, 13, 19),
             expiry=(1, 21, 27), sex=(1, 20), nationality=(1, 10, 13), names=(0, 5, 36),
             composite=((0, 10), (13, 20), (21, 35)), composite_at=35)
TD3 = Format("TD3", 44, ("AA" + "AAA" + "A" * 39, _DATA + "X" * 15 + "N"), number=(1, 0, 9), birth=(1, 13, 19),
             expiry=(1, 21, 27), sex=(1, 20), nationality=(1, 10, 13), names=(0, 5, 44),
             composite=((0, 10), (13, 20), (21, 43)), composite_at=43)
FORMATS = (TD1, TD2, TD3)


def check_digit(text: str) -> str:
    """ICAO 9303 check digit of *text* (digits, A-Z = 10-35, '<' = 0; weights 7, 3, 1)."""
    total = 0
    for i, char in enumerate(text):
        value = int(char) if char.isdigit() else (ord(char) - 55 if "A" <= char <= "Z" else 0)
        total += value * _WEIGHTS[i % 3]
    return str(total % 10)


def clean(text: str) -> str:
    """Upper-case, filler look-alikes to '<', spaces and anything outside [A-Z0-9<] removed."""
    text = text.upper().translate(_FILLER_LOOKALIKES).translate(_SCRIPT_LOOKALIKES)
    return re.sub(r"[^A-Z0-9<]", "", text)


def _fit_length(line: str, pattern: str) -> str:
    """Make *line* 30 characters: trim or pad the trailing filler, or the filler run before a final check digit."""
    if len(line) == LINE_LENGTH:
        return line
    if pattern.endswith("N") and len(line) > 20 and re.search(r"<{2,}[0-9A-Z]$", line):  # line 2: keep the last char
        head, last = line[:-1], line[-1]
        head = head.rstrip("<")
        return head + "<" * (LINE_LENGTH - 1 - len(head)) + last if len(head) < LINE_LENGTH - 1 else head[:29] + last
    if len(line) > LINE_LENGTH:
        return line[:LINE_LENGTH]
    return line + "<" * (LINE_LENGTH - len(line))


def fix_positions(line: str, pattern: str) -> tuple[str, list[str]]:
    """Apply letter/digit fixes by position; returns the fixed line and a note per change."""
    chars, notes = list(line), []
    for i, (char, kind) in enumerate(zip(line, pattern, strict=True)):
        new = char
        if kind == "N" and not char.isdigit():
            new = TO_DIGIT.get(char, "<" if char in "K<" else char)
        elif kind in "AF" and char.isdigit():
            new = TO_LETTER.get(char, char)
        if kind == "A" and char == "K" and _between_fillers(line, i):
            new = "<"
        if new != char:
            chars[i] = new
            notes.append(f"{i + 1}:{char}->{new}")
    return "".join(chars), notes


_FILLER_AS_LETTERS = frozenset("<CEK")


def _names_tail(names: str) -> tuple[str, list[str]]:
    """The filler run after the last name, where OCR read many '<' as C, E or K (``FELIX<CECE<<EE<E``): from
    the first name-separator after which only fillers and those letters stand, everything is filler."""
    for start in range(1, len(names)):
        tail = names[start:]
        # Letters between fillers (CECE<<EE<E), not one name followed by its fillers (a given name ECE).
        if (names[start - 1] == "<" and len(tail) >= 5 and set(tail) <= _FILLER_AS_LETTERS and set(tail) != {"<"}
                and "<" in tail.strip("<")):
            return names[:start] + "<" * len(tail), [f"{start + 1}-{len(names)}: {tail} -> fillers"]
    return names, []


def _between_fillers(line: str, i: int) -> bool:
    before = line[i - 1] if i > 0 else "<"
    after = line[i + 1] if i + 1 < len(line) else "<"
    return before == "<" and after == "<"


def _composite(l1: str, l2: str) -> str:
    return check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])


def _resolve_document_number(line1: str, line2: str) -> tuple[str, list[str]]:
    """If the document number fails its check digit, try look-alike digits for letters after its first digit."""
    return _resolve_in(line1, 5, 14, lambda candidate: _composite(candidate, line2) == line2[29])


def _resolve_in(line: str, start: int, end: int, composite_holds: Callable[[str], bool]) -> tuple[str, list[str]]:
    """The number at line[start:end] (its check digit at *end*) with letters after its first digit turned into
    their look-alike digits, when exactly one such reading satisfies its check digit and the composite one."""
    number, check = line[start:end], line[end]
    if check_digit(number) == check:
        return line, []
    first_digit = next((i for i, c in enumerate(number) if c.isdigit()), len(number))
    spots = [i for i, c in enumerate(number) if c in LETTER_FOR_DIGIT and i > first_digit]
    solutions = []
    for count in (1, 2):
        for combo in itertools.combinations(spots, count):
            trial = list(number)
            for i in combo:
                trial[i] = LETTER_FOR_DIGIT[trial[i]]
            candidate = line[:start] + "".join(trial) + line[end:]
            if check_digit("".join(trial)) == check and composite_holds(candidate):
                solutions.append((candidate, combo))
        if solutions:
            break
    if len(solutions) != 1:
        return line, []
    fixed, combo = solutions[0]
    return fixed, [f"{start + i + 1}:{number[i]}->{fixed[start + i]}" for i in combo]


@dataclass
class MrzResult:
    """A read MRZ: its lines, the fields, which check digits failed and what was corrected."""

    lines: list[str]
    valid: bool
    failed_checks: list[str]
    fields: dict[str, str]
    corrections: list[str] = field(default_factory=list)
    format: str = "TD1"
    # A line was read longer or shorter than its format: failed checks then say more of the reading than of
    # the document (a changed document keeps its lines' lengths).
    misread_length: bool = False


# The first line of a TD2 or TD3 MRZ: a document code (P passport, I/A/C identity or travel, V visa), a
# second letter or filler, the issuing state; two long lines of caption text are not an MRZ.
_TWO_LINE_HEAD = re.compile(r"^[PIACV][A-Z<][A-Z<]{3}")


def find_mrz_lines(lines: list[TextLine]) -> list[str] | None:
    """The MRZ lines among OCR lines: the last two (TD2, TD3) or three (TD1) long lines rich in '<', merged per row."""
    rows = find_mrz_rows(lines)
    return [text for text, _ in rows] if rows else None


def find_mrz_rows(lines: list[TextLine]) -> list[tuple[str, tuple[float, float, float, float]]] | None:
    """Like :func:`find_mrz_lines`, with each row's box (x0, y0, x1, y1) for a second, line-by-line reading."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda t: t.cy):
        text = clean(line.text)
        if len(text) < 4:
            continue
        if rows and abs(rows[-1][0].cy - line.cy) < 0.5 * max(line.height, rows[-1][0].height):
            rows[-1].append(line)
        else:
            rows.append([line])
    merged = []
    for row in rows:
        text = "".join(clean(t.text) for t in sorted(row, key=lambda t: t.box[0]))
        box = (min(t.box[0] for t in row), min(t.box[1] for t in row), max(t.box[2] for t in row), max(t.box[3] for t in row))
        merged.append((text, box))
    candidates = [(t, b) for t, b in merged if len(t) >= 24 and (t.count("<") >= 2 or len(t) >= 28)]
    last_two = candidates[-2:]
    if (len(last_two) == 2 and min(len(t) for t, _ in last_two) >= 33 and all(t.count("<") >= 2 for t, _ in last_two)
            and _TWO_LINE_HEAD.match(last_two[0][0])):  # TD2 or TD3: two long lines, the first a document's
        return last_two
    if len(candidates) < 3:
        return None
    return candidates[-3:]


def format_of(raw_lines: list[str]) -> Format:
    """TD1 for three lines; for two, TD3 (44 characters) or TD2 (36), whichever length they are nearer."""
    if len(raw_lines) >= 3:
        return TD1
    mean = sum(len(line) for line in raw_lines) / max(len(raw_lines), 1)
    return TD3 if mean >= 40 else TD2


def parse(raw_lines: list[str]) -> MrzResult:
    """Fix and validate the raw lines of an MRZ: three of TD1, or two of TD2 or TD3."""
    fmt = format_of(raw_lines)
    if fmt is not TD1:
        return _parse_two_lines(raw_lines[-2:], fmt)
    from mrz.checker.td1 import TD1CodeChecker

    corrections: list[str] = []
    fixed = []
    for n, (raw, pattern) in enumerate(zip(raw_lines, LAYOUT, strict=True)):
        line, notes = fix_positions(_fit_length(raw, pattern), pattern)
        fixed.append(line)
        corrections += [f"line {n + 1} {note}" for note in notes]
    fixed[0], notes = _resolve_document_number(fixed[0], fixed[1])
    corrections += [f"line 1 {note} (check digit)" for note in notes]
    fixed[2], notes = _names_tail(fixed[2])
    corrections += [f"line 3 {note}" for note in notes]
    l1, l2 = fixed[0], fixed[1]
    failed = []
    if check_digit(l1[5:14]) != l1[14]:
        failed.append("document_number")
    if check_digit(l2[0:6]) != l2[6]:
        failed.append("birth_date")
    if check_digit(l2[8:14]) != l2[14]:
        failed.append("expiry_date")
    if _composite(l1, l2) != l2[29]:
        failed.append("composite")
    checker = TD1CodeChecker("\n".join(fixed), check_expiry=False, compute_warnings=False)
    valid = bool(checker) and not failed
    if not valid and not failed:
        failed.append("format")
    surname, _, given = fixed[2].partition("<<")
    fields = {
        "document_type": l1[0:2].rstrip("<"), "issuing_state": l1[2:5].rstrip("<"),
        "document_number": l1[5:14].rstrip("<"), "birth_date": _date(l2[0:6], past=True),
        "sex": l2[7].replace("<", "X"), "expiry_date": _date(l2[8:14], past=False),
        "nationality": l2[15:18].rstrip("<"), "surname": surname.replace("<", " ").strip(),
        "given_names": " ".join(given.replace("<", " ").split()),
    }
    return MrzResult(lines=fixed, valid=valid, failed_checks=failed, fields=fields, corrections=corrections,
                     misread_length=any(len(raw) != LINE_LENGTH for raw in raw_lines))


def _fit(line: str, length: int) -> str:
    """Make *line* *length* characters by growing or shrinking its last run of fillers (OCR drops or adds
    one in a long run), else at its end."""
    if len(line) == length:
        return line
    runs = list(re.finditer(r"<{2,}", line))
    if runs:
        run = runs[-1]
        size = max(1, run.end() - run.start() + length - len(line))
        line = line[:run.start()] + "<" * size + line[run.end():]
    return line[:length] + "<" * (length - len(line))


def _check(line: str, start: int, end: int) -> bool:
    return check_digit(line[start:end]) == line[end]


def _composite_of(data: str, fmt: Format) -> str:
    return check_digit("".join(data[a:b] for a, b in fmt.composite))


def _resolve_number(data: str, fmt: Format) -> tuple[str, list[str]]:
    """As :func:`_resolve_document_number`, for a two-line format (the number on the data line)."""
    _, start, end = fmt.number
    return _resolve_in(data, start, end, lambda candidate: _composite_of(candidate, fmt) == candidate[fmt.composite_at])


def _parse_two_lines(raw_lines: list[str], fmt: Format) -> MrzResult:
    """Parse, and when OCR read a character twice on the data line (one too many), the reading without
    each character in turn: if exactly one distinct reading then passes every check digit, it is taken.
    Several can (removing the 8 or the 9 of L898902C3 both give a number whose check digit holds): then
    the reading is unclear, not a changed document."""
    result = _parse_two_lines_as_read(raw_lines, fmt)
    head, data = raw_lines
    if result.valid or len(data) != fmt.length + 1:
        return result
    valid: dict[tuple[str, ...], MrzResult] = {}
    for i in range(len(data)):
        trial = _parse_two_lines_as_read([head, data[:i] + data[i + 1:]], fmt)
        if trial.valid:
            trial.corrections.append(f"line 2 {i + 1}:{data[i]} read twice, removed")
            valid.setdefault(tuple(trial.lines), trial)
    if len(valid) == 1:
        return next(iter(valid.values()))
    result.corrections.append(f"line 2 has one character too many; {len(valid)} readings without one hold")
    return result


def _parse_two_lines_as_read(raw_lines: list[str], fmt: Format) -> MrzResult:
    from mrz.checker.td2 import TD2CodeChecker
    from mrz.checker.td3 import TD3CodeChecker

    corrections: list[str] = []
    fixed = []
    for n, (raw, pattern) in enumerate(zip(raw_lines, fmt.layout, strict=True)):
        line, notes = fix_positions(_fit(raw, fmt.length), pattern)
        fixed.append(line)
        corrections += [f"line {n + 1} {note}" for note in notes]
    fixed[1], notes = _resolve_number(fixed[1], fmt)
    corrections += [f"line 2 {note} (check digit)" for note in notes]
    _, a, b = fmt.names
    names, notes = _names_tail(fixed[0][a:b])
    fixed[0] = fixed[0][:a] + names
    corrections += [f"line 1 {note}" for note in notes]
    head, data = fixed
    failed = [name for name, (_, a, b) in (("document_number", fmt.number), ("birth_date", fmt.birth),
                                           ("expiry_date", fmt.expiry)) if not _check(data, a, b)]
    if _composite_of(data, fmt) != data[fmt.composite_at]:
        failed.append("composite")
    checker_type = TD3CodeChecker if fmt is TD3 else TD2CodeChecker
    valid = bool(checker_type("\n".join(fixed), check_expiry=False, compute_warnings=False)) and not failed
    if not valid and not failed:
        failed.append("format")
    _, a, b = fmt.names
    surname, _, given = head[a:b].partition("<<")
    fields = {
        "document_type": head[0:2].rstrip("<"), "issuing_state": head[2:5].rstrip("<"),
        "document_number": data[fmt.number[1]:fmt.number[2]].rstrip("<"),
        "birth_date": _date(data[fmt.birth[1]:fmt.birth[2]], past=True), "sex": data[fmt.sex[1]].replace("<", "X"),
        "expiry_date": _date(data[fmt.expiry[1]:fmt.expiry[2]], past=False),
        "nationality": data[fmt.nationality[1]:fmt.nationality[2]].rstrip("<"),
        "surname": surname.replace("<", " ").strip(), "given_names": " ".join(given.replace("<", " ").split()),
    }
    return MrzResult(lines=fixed, valid=valid, failed_checks=failed, fields=fields, corrections=corrections,
                     format=fmt.name, misread_length=any(len(raw) != fmt.length for raw in raw_lines))


def _date(yymmdd: str, *, past: bool, today: dt.date | None = None) -> str:
    """ISO date of an MRZ YYMMDD; birth dates lie in the past, expiry dates within the next 50 years."""
    today = today or dt.date.today()
    try:
        yy, mm, dd = int(yymmdd[0:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
        year = 2000 + yy
        if year > (today.year if past else today.year + 50):
            year -= 100
        return dt.date(year, mm, dd).isoformat()
    except ValueError:
        return ""
