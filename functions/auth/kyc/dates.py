"""Dates as ID documents print them, found anywhere in OCR'd text.

Issuers print dates as ``DD.MM.YYYY``, ``DD MM YYYY``, ``DD/MM/YYYY``, ``YYYY-MM-DD``, ``DDMMYYYY`` or
with the month's name (``12 MAR 1985``, bilingual ``12 MAR/MARS 1985``, ``12 März 1985``), and OCR
reads ``0`` as ``O`` and ``1`` as ``I``. A found date keeps every reading the text allows: ``03.04.1985``
is the 3rd of April (day first, as ICAO documents print it) or, on a US-style document, the 4th of
March. Which one is meant is settled by comparing with the MRZ, never by guessing here.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

# Month names and their usual abbreviations (accents removed) in the languages of most ID documents'
# captions: English, French, German, Spanish, Italian, Dutch, Portuguese, Polish.
_MONTH_NAMES: dict[int, tuple[str, ...]] = {
    1: ("JAN", "JANUARY", "JANV", "JANVIER", "JANUAR", "ENE", "ENERO", "GEN", "GENNAIO", "JANUARI", "JANEIRO",
        "STY", "STYCZNIA", "STYCZEN"),
    2: ("FEB", "FEBRUARY", "FEV", "FEVR", "FEVRIER", "FEBRUAR", "FEBRERO", "FEBBRAIO", "FEBRUARI", "FEVEREIRO",
        "LUT", "LUTEGO", "LUTY"),
    3: ("MAR", "MARCH", "MARS", "MAERZ", "MARZ", "MARZO", "MRT", "MAART", "MARCO", "MARZEC", "MARCA"),
    4: ("APR", "APRIL", "AVR", "AVRIL", "ABR", "ABRIL", "APRILE", "KWI", "KWIETNIA", "KWIECIEN"),
    5: ("MAY", "MAI", "MAYO", "MAG", "MAGGIO", "MEI", "MAIO", "MAJ", "MAJA"),
    6: ("JUN", "JUNE", "JUIN", "JUNI", "JUNIO", "GIU", "GIUGNO", "JUNHO", "CZE", "CZERWCA", "CZERWIEC"),
    7: ("JUL", "JULY", "JUIL", "JUILLET", "JULI", "JULIO", "LUG", "LUGLIO", "JULHO", "LIP", "LIPCA", "LIPIEC"),
    8: ("AUG", "AUGUST", "AOU", "AOUT", "AGO", "AGOSTO", "AUGUSTUS", "SIE", "SIERPNIA", "SIERPIEN"),
    9: ("SEP", "SEPT", "SEPTEMBER", "SEPTEMBRE", "SEPTIEMBRE", "SET", "SETTEMBRE", "SETEMBRO", "WRZ", "WRZESNIA",
        "WRZESIEN"),
    10: ("OCT", "OCTOBER", "OCTOBRE", "OKT", "OKTOBER", "OCTUBRE", "OTT", "OTTOBRE", "OUT", "OUTUBRO", "PAZ",
         "PAZDZIERNIKA", "PAZDZIERNIK"),
    11: ("NOV", "NOVEMBER", "NOVEMBRE", "NOVIEMBRE", "NOVEMBRO", "LIS", "LISTOPADA", "LISTOPAD"),
    12: ("DEC", "DECEMBER", "DECEMBRE", "DEZ", "DEZEMBER", "DIC", "DICIEMBRE", "DICEMBRE", "DEZEMBRO", "GRU",
         "GRUDNIA", "GRUDZIEN"),
}
MONTHS: dict[str, int] = {name: number for number, names in _MONTH_NAMES.items() for name in names}

# OCR look-alikes: in a run of digits, letters that are probably digits; in a month's name, the reverse.
_AS_DIGITS = str.maketrans({"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "|": "1", "!": "1",
                            "Z": "2", "S": "5", "B": "8", "G": "6", "T": "7"})
_AS_LETTERS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G", "4": "A"})
_SEP = r"\s*[./\-\s,]\s*"
_NUMERIC_DMY = re.compile(rf"(?<!\d)(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}})(?!\d)")
_NUMERIC_YMD = re.compile(rf"(?<!\d)(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?!\d)")
_COMPACT_DMY = re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{4})(?!\d)")
_NAMED = re.compile(r"(?<![0-9A-Z])([0-9OIL]{1,2})[\s.\-/]*([A-Z0-9]{3,12}\.?(?:\s*/\s*[A-Z0-9]{3,12}\.?)?)"
                    r"[\s.\-/,]*(\d{4}|[0-9OIL]{4})(?![0-9])")


@dataclass(frozen=True)
class FoundDate:
    """A date in a text: what was read and every real date it can mean (ISO, the likeliest first)."""

    text: str
    readings: tuple[str, ...]


def plain(text: str) -> str:
    """Upper case without accents (``Prénom`` -> ``PRENOM``, ``März`` -> ``MARZ``)."""
    folded = unicodedata.normalize("NFKD", text.upper().replace("ß", "SS"))
    return "".join(ch for ch in folded if not unicodedata.combining(ch)).replace("Ł", "L").replace("Ø", "O")


def _digit_runs(text: str) -> str:
    """Letters inside mostly-digit runs read as the digits they resemble (``O1.I2.2O30`` -> ``01.12.2030``)."""
    def fix(match: re.Match[str]) -> str:
        run = match.group(0)
        digits = sum(ch.isdigit() for ch in run)
        return run.translate(_AS_DIGITS) if digits and digits >= len(run) / 2 else run
    return re.sub(r"[0-9A-Z|!]+", fix, text)


def _date(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def months_of(token: str) -> tuple[int, ...]:
    """The months a name may mean, in any of the languages above; none when no part is a month's name.
    Bilingual names (``MAR/MARS``, ``LUN/AUG``): a half in a language not listed is ignored, and halves
    that mean different months here (``MEI`` is May in Dutch, June in Irish: ``MEI/JUN``) give each."""
    months: list[int] = []
    for part in token.split("/"):
        number = MONTHS.get(part.strip(" .").translate(_AS_LETTERS))
        if number is not None and number not in months:
            months.append(number)
    return tuple(months)


def find_dates(text: str) -> list[FoundDate]:
    """Every date in *text*, in the order they appear."""
    upper = plain(text)
    found: list[tuple[int, FoundDate]] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], readings: list[str | None]) -> None:
        unique = tuple(dict.fromkeys(r for r in readings if r))
        if unique and not any(a < match.end() and match.start() < b for a, b in taken):
            taken.append((match.start(), match.end()))
            found.append((match.start(), FoundDate(match.group(0).strip(), unique)))

    for match in _NAMED.finditer(upper):
        months = months_of(match.group(2))
        if months:
            day, year = int(match.group(1).translate(_AS_DIGITS)), int(match.group(3).translate(_AS_DIGITS))
            add(match, [_date(year, month, day) for month in months])
    numeric = _digit_runs(upper)
    for match in _NUMERIC_YMD.finditer(numeric):
        add(match, [_date(int(match.group(1)), int(match.group(2)), int(match.group(3)))])
    for pattern in (_NUMERIC_DMY, _COMPACT_DMY):
        for match in pattern.finditer(numeric):
            a, b, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
            add(match, [_date(year, b, a), _date(year, a, b)])  # day first, else month first
    return [date for _, date in sorted(found, key=lambda item: item[0])]


def parse_date(raw: str) -> str:
    """The first date in *raw* as ISO ``YYYY-MM-DD`` (its likeliest reading); '' when there is none."""
    dates = find_dates(raw)
    return dates[0].readings[0] if dates else ""
