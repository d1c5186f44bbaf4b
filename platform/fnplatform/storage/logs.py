"""Durable log lines: replicas' (drained from the hub), and the control plane's own, in the registry database.

One table, ``log_lines``: the id is the reader's cursor, ``source`` is a function's name (or
``control-plane``, or ``flow:<flow>``), the other columns are a shipped line's parts (``fnplatform.logtext``).
Lines from the hub are stored together with the hub's sequence number they were read up to
(``log_cursors``, in the same transaction), so a control plane that restarts reads on where it stopped
and stores no line twice. Retention: lines older than a cutoff, and the oldest lines past a size budget
(text length plus a per-row estimate), are deleted in bounded batches.

One writer: the control-plane process (its drain and its own log handler share one lock), so ids are
committed in order and a reader that continues after the last id it saw misses nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from fnplatform.logtext import ParsedLine, parse_line

from .db import Base, Database, utcnow

ROW_OVERHEAD_BYTES = 120  # columns, indexes and page slack per row, beside its text: a size estimate
PRUNE_BATCH = 20_000  # rows deleted per statement: a long delete would hold SQLite's write lock


class _LogLine(Base):
    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_source_id", "source", "id"), Index("ix_log_lines_source_at", "source", "at"),
                      Index("ix_log_lines_source_request", "source", "request_id"), Index("ix_log_lines_at", "at"))
    # BIGINT on PostgreSQL (years of lines); SQLite's INTEGER PRIMARY KEY is already 64-bit and the rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(16))
    replica: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)


class _LogCursor(Base):
    __tablename__ = "log_cursors"
    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    hub_start_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class LogQuery:
    """What to read: lines of *source* after the cursor *after* (the oldest *limit* of them), or, with no
    cursor, the newest *limit*; narrowed by age, request id and a plain, case-sensitive substring."""
    source: str
    after: int = 0
    limit: int = 200
    since: datetime | None = None
    request_id: str | None = None
    grep: str | None = None


@dataclass(frozen=True)
class StoredLine:
    id: int
    source: str
    line: ParsedLine

    def to_json(self) -> dict[str, Any]:
        at = self.line.at.isoformat(timespec="milliseconds") + "Z" if self.line.at else None
        return {"id": self.id, "at": at, "level": self.line.level, "replica": self.line.replica,
                "request_id": self.line.request_id, "text": self.line.text}


class LogStore(Database):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.write_lock = threading.Lock()  # the one writer's lock: the drain and the control plane's own lines
        self._bytes: int | None = None  # the size estimate, summed once, then kept up to date by this writer

    def _rows(self, source: str, lines: list[str]) -> list[dict[str, Any]]:
        # Plain rows for one bulk INSERT: ORM objects cost several times the CPU per line, and a replica
        # under load logs a line per call, which the control plane stores while sharing the cores with it.
        now = utcnow()
        rows = []
        for raw in lines:
            parsed = parse_line(raw)
            rows.append({"source": source, "at": parsed.at or now, "level": parsed.level[:16],
                         "replica": parsed.replica[:128] if parsed.replica is not None else None,
                         "request_id": parsed.request_id[:128] if parsed.request_id else None,
                         "text": raw if parsed.at is None else parsed.text})
        return rows

    def add(self, source: str, lines: list[str]) -> int:
        """Store *lines* of *source* (lines that come from no hub: the control plane's own)."""
        rows = self._rows(source, lines)
        if rows:
            with self.write_lock, self._session() as session:
                session.execute(insert(_LogLine), rows)
        self._count(rows)
        return len(rows)

    def add_drained(self, source: str, lines: list[str], hub_start_id: str, after: int, seq: int) -> bool:
        """Store *lines*, read from the hub *hub_start_id* after *after* up to *seq*, and move the cursor to *seq*,
        in one transaction, unless the stored cursor is no longer at *after* (another drain stored them
        first): False then, and nothing is stored. So a crash, or two control planes, never store a line twice."""
        rows = self._rows(source, lines)
        with self.write_lock, self._session() as session:
            cursor = session.scalar(select(_LogCursor).where(_LogCursor.source == source).with_for_update())
            stored = cursor.seq if cursor is not None and cursor.hub_start_id == hub_start_id else 0
            if stored != after:
                return False
            if rows:
                session.execute(insert(_LogLine), rows)
            if cursor is None:
                session.add(_LogCursor(source=source, hub_start_id=hub_start_id, seq=seq))
            else:
                cursor.hub_start_id, cursor.seq = hub_start_id, seq
        self._count(rows)
        return True

    def _count(self, rows: list[dict[str, Any]]) -> None:
        if self._bytes is not None:
            self._bytes += sum(len(r["text"]) + ROW_OVERHEAD_BYTES for r in rows)

    def cursors(self) -> dict[str, tuple[str, int]]:
        """{source: (hub start id, sequence number read up to)} for every source drained from a hub."""
        with self._session() as session:
            return {c.source: (c.hub_start_id, c.seq) for c in session.scalars(select(_LogCursor))}

    def head(self, source: str) -> int:
        """The id of *source*'s newest line (0: none): where a reader with nothing to show continues from."""
        with self._session() as session:
            return int(session.scalar(select(func.max(_LogLine.id)).where(_LogLine.source == source)) or 0)

    def query(self, q: LogQuery) -> list[StoredLine]:
        stmt = select(_LogLine).where(_LogLine.source == q.source, _LogLine.id > q.after)
        if q.since is not None:
            stmt = stmt.where(_LogLine.at >= q.since)
        if q.request_id is not None:
            stmt = stmt.where(_LogLine.request_id == q.request_id)
        if q.grep is not None:
            # instr/strpos, not LIKE: no wildcard in the caller's text means anything, and case counts on both databases
            stmt = stmt.where(func.strpos(_LogLine.text, q.grep) > 0 if self.engine.dialect.name == "postgresql"
                              else func.instr(_LogLine.text, q.grep) > 0)
        newest_first = q.after == 0
        stmt = stmt.order_by(_LogLine.id.desc() if newest_first else _LogLine.id).limit(q.limit)
        with self._session() as session:
            rows = list(session.scalars(stmt))
        if newest_first:
            rows.reverse()
        return [StoredLine(r.id, r.source, ParsedLine(r.at, r.level, r.replica, r.request_id, r.text)) for r in rows]

    def size_bytes(self) -> int:
        """The estimated size of every stored line (summed once per process, then kept by this writer)."""
        if self._bytes is None:
            with self._session() as session:
                count, chars = session.execute(select(func.count(), func.coalesce(func.sum(func.length(_LogLine.text)), 0))
                                               ).one()
            self._bytes = int(chars) + int(count) * ROW_OVERHEAD_BYTES
        return self._bytes

    def prune(self, older_than: datetime, max_bytes: int) -> int:
        """Delete lines stamped before *older_than*, then the oldest lines until the store fits 90% of
        *max_bytes* (headroom, so it is not pruned again on every pass); at most PRUNE_BATCH rows per
        statement. Returns the number of lines deleted."""
        deleted = 0
        while True:
            removed = self._delete_batch(select(_LogLine.id).where(_LogLine.at < older_than)
                                         .order_by(_LogLine.id).limit(PRUNE_BATCH))
            deleted += removed
            if removed < PRUNE_BATCH:
                break
        while self.size_bytes() > max_bytes:
            excess = self.size_bytes() - int(max_bytes * 0.9)
            cutoff = self._id_freeing(excess)
            removed = self._delete_batch(select(_LogLine.id).where(_LogLine.id <= cutoff)
                                         .order_by(_LogLine.id).limit(PRUNE_BATCH))
            deleted += removed
            if removed == 0:
                break
        return deleted

    def _id_freeing(self, excess: int) -> int:
        """The id up to which deleting the oldest lines frees about *excess* bytes (within one batch)."""
        stmt = select(_LogLine.id, func.length(_LogLine.text)).order_by(_LogLine.id).limit(PRUNE_BATCH)
        freed, last = 0, 0
        with self._session() as session:
            for row_id, chars in session.execute(stmt):
                freed += int(chars or 0) + ROW_OVERHEAD_BYTES
                last = int(row_id)
                if freed >= excess:
                    break
        return last

    def _delete_batch(self, ids: Any) -> int:
        with self.write_lock, self._session() as session:
            chosen = ids.subquery()
            count, chars = session.execute(
                select(func.count(), func.coalesce(func.sum(func.length(_LogLine.text)), 0))
                .where(_LogLine.id.in_(select(chosen.c.id)))).one()
            if count:
                session.execute(delete(_LogLine).where(_LogLine.id.in_(select(chosen.c.id))))
            if self._bytes is not None:
                self._bytes -= int(chars) + int(count) * ROW_OVERHEAD_BYTES
            return int(count)
