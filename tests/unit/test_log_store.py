"""Durable logs below the control plane: the line format's parser, the query checks, and the log store on a
real SQLite database (insert, query by cursor, age, request id and text; retention by age and size)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fnplatform.control.logbook import OwnLogHandler, scrub
from fnplatform.logtext import InvalidQuery, check_grep, check_request_id, format_line, parse_line, parse_since
from fnplatform.storage.db import utcnow
from fnplatform.storage.logs import ROW_OVERHEAD_BYTES, LogQuery, LogStore


def line(text: str, request: str = "-", at: datetime | None = None, level: str = "INFO", replica: str = "r1") -> str:
    return format_line(level, replica, request, text, at)


def test_a_shipped_line_parses_into_its_parts_and_renders_back_unchanged() -> None:
    shipped = "2026-01-02T03:04:05.678Z STDOUT  replica=abc123 request=req-1 greeting world  (two spaces kept)"
    parsed = parse_line(shipped)
    assert parsed.at == datetime(2026, 1, 2, 3, 4, 5, 678000)
    assert (parsed.level, parsed.replica, parsed.request_id) == ("STDOUT", "abc123", "req-1")
    assert parsed.text == "greeting world  (two spaces kept)"
    assert parsed.render() == shipped


def test_the_replicas_own_format_round_trips() -> None:
    shipped = line("adding 1 and 2", "r-9", level="WARNING")
    assert parse_line(shipped).render() == shipped
    assert parse_line(line("no request")).request_id is None  # "-": not tied to a request


@pytest.mark.parametrize("odd", ["", "plain text from somewhere else", "2026-13-45T99:99:99.000Z INFO replica=a request=b x",
                                 "2026-01-02T03:04:05.678Z info replica=a request=b lower-case level",
                                 "2026-01-02T03:04:05.678Z INFO no replica field", "line\nwith a newline"])
def test_an_odd_line_is_kept_whole_as_text(odd: str) -> None:
    parsed = parse_line(odd)
    assert (parsed.at, parsed.replica, parsed.request_id, parsed.text) == (None, None, None, odd)
    assert parsed.render() == odd


def test_a_multi_line_message_stays_one_line_of_the_log() -> None:
    parsed = parse_line(line("Traceback (most recent call last):\n  File x\nKeyError: 'a'"))
    assert parsed.text.endswith("KeyError: 'a'") and parsed.replica == "r1"


@pytest.mark.parametrize(("value", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400),
                                                ("1.5h", 5400), (" 5M ", 300)])
def test_since_forms(value: str, seconds: float) -> None:
    assert parse_since(value) == seconds


@pytest.mark.parametrize(("value", "problem"), [("abc", r"is not a duration: use seconds \(e.g. 90\) or a number with s, m, h"),
                                                ("10x", "is not a duration"), ("-5m", "is not a duration"),
                                                ("0", "must be more than 0 s"), ("400d", "at most 366 days")])
def test_bad_since_names_the_forms(value: str, problem: str) -> None:
    with pytest.raises(InvalidQuery, match=problem) as raised:
        parse_since(value)
    assert raised.value.parameter == "since"


def test_grep_and_request_id_are_bounded_plain_text() -> None:
    assert check_grep("a.*(b+)+$") == "a.*(b+)+$"  # taken literally, never compiled
    for bad, problem in (("", "is empty"), ("x" * 201, "has 201 characters; at most 200"), ("a\nb", "control character")):
        with pytest.raises(InvalidQuery, match=problem):
            check_grep(bad)
    for bad in ("", "a b", "x" * 129, "a\x00"):
        with pytest.raises(InvalidQuery, match="is not a request id"):
            check_request_id(bad)


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(f"sqlite:///{tmp_path / 'registry.db'}")


def texts(store: LogStore, **query: object) -> list[str]:
    return [r.line.text for r in store.query(LogQuery(source=str(query.pop("source", "add")), **query))]  # type: ignore[arg-type]


def test_lines_are_stored_parsed_and_read_back_as_shipped(store: LogStore) -> None:
    shipped = [line("one", "req-1"), line("two", "req-2"), "an odd line"]
    assert store.add("add", shipped) == 3
    rows = store.query(LogQuery(source="add"))
    assert [r.line.render() for r in rows] == shipped
    assert rows[0].to_json()["request_id"] == "req-1" and rows[2].to_json()["replica"] is None
    assert rows[2].to_json()["at"] is not None  # an odd line is stamped when stored
    assert store.query(LogQuery(source="other")) == []


def test_no_cursor_reads_the_newest_and_a_cursor_reads_on_in_order(store: LogStore) -> None:
    store.add("add", [line(f"n{i}") for i in range(10)])
    assert texts(store, limit=3) == ["n7", "n8", "n9"]  # the newest, oldest first
    first = store.query(LogQuery(source="add", limit=3))
    assert texts(store, after=first[0].id - 6, limit=4) == ["n2", "n3", "n4", "n5"]  # after a cursor (n1): the oldest next
    assert texts(store, after=first[-1].id) == []
    assert store.head("add") == first[-1].id and store.head("other") == 0


def test_queries_by_age_request_id_and_plain_case_sensitive_text(store: LogStore) -> None:
    now = datetime.now(UTC)
    store.add("add", [line("old one", "req-1", now - timedelta(hours=3)), line("recent Adding", "req-1", now),
                      line("recent adding", "req-2", now), line("50% done_", "req-2", now)])
    assert texts(store, since=utcnow() - timedelta(hours=1)) == ["recent Adding", "recent adding", "50% done_"]
    assert texts(store, request_id="req-1") == ["old one", "recent Adding"]
    assert texts(store, grep="adding") == ["recent adding"]  # case counts
    assert texts(store, grep="%") == ["50% done_"] and texts(store, grep="_") == ["50% done_"]  # no LIKE wildcards
    assert texts(store, grep="(a+)+$") == []
    assert texts(store, request_id="req-2", grep="recent", since=utcnow() - timedelta(minutes=5)) == ["recent adding"]


def test_retention_deletes_lines_older_than_the_cutoff(store: LogStore) -> None:
    now = datetime.now(UTC)
    store.add("add", [line("ancient", at=now - timedelta(days=4)), line("fresh", at=now)])
    store.add("platform:control-plane", [line("old platform", at=now - timedelta(days=5))])
    assert store.prune(utcnow() - timedelta(hours=72), max_bytes=2**30) == 2
    assert texts(store) == ["fresh"] and texts(store, source="platform:control-plane") == []


def test_retention_by_size_deletes_the_oldest_lines_down_to_90_percent(store: LogStore,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fnplatform.storage.logs.PRUNE_BATCH", 7)  # several batches
    store.add("add", [line("x" * 80 + f"{i:04}") for i in range(50)])
    per_line = 84 + ROW_OVERHEAD_BYTES
    assert store.size_bytes() == 50 * per_line
    budget = 20 * per_line
    deleted = store.prune(utcnow() - timedelta(days=1), budget)
    left = texts(store, limit=5000)
    assert deleted == 50 - len(left) and store.size_bytes() == len(left) * per_line <= budget * 0.9
    assert left[-1].endswith("0049") and len(left) == 18  # the newest kept
    assert LogStore(store.url).size_bytes() == store.size_bytes()  # the estimate matches a fresh count


def test_the_cursor_is_stored_with_the_lines(store: LogStore) -> None:
    assert store.add_drained("add", [line("a")], "hub1", 0, 7)
    assert store.add_drained("add", [line("b")], "hub1", 7, 9)
    assert not store.add_drained("add", [line("b again")], "hub1", 7, 9)  # another drain stored it first
    assert store.add_drained("add", [line("c")], "hub2", 0, 1)  # a restarted hub: from 0
    store.add("platform:control-plane", [line("own")])
    assert LogStore(store.url).cursors() == {"add": ("hub2", 1)}
    assert texts(store) == ["a", "b", "c"]


def test_the_control_planes_records_are_buffered_scrubbed_and_bounded() -> None:
    handler = OwnLogHandler(max_pending=3)
    logger = logging.getLogger("fnplatform.test-own-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("dropped: the buffer holds the newest 3")
        logger.warning("registry at postgresql+psycopg://fn:hunter2@db:5432/fn unreachable")
        logger.info("sent Authorization: Bearer fn_secretkey123")
        logger.info("record %d", 1)
    finally:
        logger.removeHandler(handler)
    taken = handler.take()
    assert [parse_line(t).text for t in taken] == [
        "1 control-plane log records dropped: more than 3 waited to be stored",
        "fnplatform.test-own-logs: registry at postgresql+psycopg://fn:***@db:5432/fn unreachable",
        "fnplatform.test-own-logs: sent Authorization: Bearer ***", "fnplatform.test-own-logs: record 1"]
    assert [parse_line(t).level for t in taken[1:3]] == ["WARNING", "INFO"]
    assert parse_line(taken[1]).replica == "control-plane" and handler.take() == []


def test_scrub_removes_passwords_tokens_and_sql_parameters() -> None:
    assert scrub("postgresql://fn:hunter2@db/fn") == "postgresql://fn:***@db/fn"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    message = ("(sqlite3.IntegrityError) UNIQUE constraint failed: api_keys.hash\n[SQL: INSERT INTO api_keys "
               "VALUES (?, ?)]\n[parameters: ('k1', 'deadbeef[0]')]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)")
    cleaned = scrub(message)
    assert "deadbeef" not in cleaned and "INSERT" not in cleaned
    assert cleaned.startswith("(sqlite3.IntegrityError) UNIQUE constraint failed") and "(Background on this error" in cleaned
