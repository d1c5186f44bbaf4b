"""Log lines as text: the one line format replicas ship and the control plane writes, its parser, and
the forms a log query accepts (``since``, ``grep``, ``request_id``). A shared leaf: replicas format
with it, the control plane parses and validates with it, ``fnctl logs`` checks its options with it.

A line is ``<stamp> <LEVEL> replica=<id> request=<rid> <text>``, the stamp UTC to the millisecond
(``2026-01-02T03:04:05.678Z``) and the level padded to 7 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

SPAN_LEVEL = "SPAN"  # a line of trace spans (serving.tracing), stored with the logs, read apart from them
MAX_GREP_CHARS = 200
MAX_REQUEST_ID_CHARS = 128
MAX_SINCE_S = 366 * 86400
SINCE_FORMS = "seconds (e.g. 90) or a number with s, m, h or d (e.g. 10m, 2h, 1d)"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SINCE = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_LINE = re.compile(r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z) (?P<level>[A-Z]+) +"
                   r"replica=(?P<replica>\S*) request=(?P<request>\S*) ?(?P<text>.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidQuery(ValueError):
    """A log query's parameter is malformed; the message names it, the value and the allowed forms."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def stamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_line(level: str, replica: str, request_id: str, text: str, at: datetime | None = None) -> str:
    return f"{stamp(at)} {level:<7} replica={replica} request={request_id} {text}"


@dataclass(frozen=True)
class ParsedLine:
    at: datetime | None  # UTC, naive (as the database stores it); None: the line carried no stamp
    level: str
    replica: str | None  # None: the line did not parse, and text is all of it
    request_id: str | None
    text: str

    def render(self) -> str:
        """The line as it was shipped; one that did not parse is its text alone, as it arrived."""
        if self.replica is None or self.at is None:
            return self.text
        return format_line(self.level, self.replica, self.request_id or "-", self.text, self.at)


def parse_line(line: str) -> ParsedLine:
    """Split a shipped line into its parts. Never raises: a line in another shape (a foreign producer, an
    older replica) is kept whole as the text, with no stamp, level ``-`` and no replica or request id."""
    match = _LINE.fullmatch(line)
    if match is None:
        return ParsedLine(None, "-", None, None, line)
    try:
        at = datetime.fromisoformat(match["stamp"][:-1])
    except ValueError:  # shaped like a stamp but not a date (month 13)
        return ParsedLine(None, "-", None, None, line)
    request = match["request"]
    return ParsedLine(at, match["level"], match["replica"], None if request in {"", "-"} else request, match["text"])


def parse_since(value: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1d``: how far back a query reads."""
    match = _SINCE.fullmatch(value.strip().lower())
    if match is None:
        raise InvalidQuery("since", f"{value[:40]!r} is not a duration: use {SINCE_FORMS}")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not 0 < seconds <= MAX_SINCE_S:
        raise InvalidQuery("since", f"{value!r} must be more than 0 s and at most {MAX_SINCE_S // 86400} days")
    return seconds


def check_grep(value: str) -> str:
    """A plain substring, matched case-sensitively; never a pattern (a caller's regex could take forever)."""
    if not value:
        raise InvalidQuery("grep", "is empty: give the text to look for, or leave it out")
    if len(value) > MAX_GREP_CHARS:
        raise InvalidQuery("grep", f"has {len(value)} characters; at most {MAX_GREP_CHARS} are allowed")
    if _CONTROL.search(value):
        raise InvalidQuery("grep", "contains a control character (a newline?): give text from within one line")
    return value


def check_request_id(value: str) -> str:
    if not value or len(value) > MAX_REQUEST_ID_CHARS or any(c.isspace() for c in value) or _CONTROL.search(value):
        raise InvalidQuery("request_id", f"{value[:40]!r} is not a request id: 1 to {MAX_REQUEST_ID_CHARS} characters "
                                         f"without spaces or control characters (the x-request-id of a call's answer)")
    return value
