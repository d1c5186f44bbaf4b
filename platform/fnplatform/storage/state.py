"""Shared state as stored: ``fn.Dict`` entries and ``fn.Queue`` items, rows of the registry database.

The state server (``fnplatform.state``) keeps a copy in memory and writes every change here before it
answers, several changes to one transaction when they arrive together (``apply``). Values are JSON text,
exactly as the SDK encoded them: nothing here ever unpickles what a user stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, utcnow


class _Entry(Base):
    __tablename__ = "state_entries"
    dict_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class _Item(Base):
    __tablename__ = "state_queue_items"
    queue_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # FIFO order
    value: Mapped[str] = mapped_column(Text)  # JSON


@dataclass(frozen=True)
class Write:
    """One change: ``set``/``delete`` of a dict entry, ``push``/``pop`` of a queue item."""

    op: str
    name: str
    key: str = ""
    seq: int = 0
    value: str = ""


class StateStore(Database):
    def load_dict(self, name: str) -> dict[str, str]:
        with self._session() as session:
            return {row.key: row.value for row in session.scalars(select(_Entry).where(_Entry.dict_name == name))}

    def load_queue(self, name: str) -> list[tuple[int, str]]:
        with self._session() as session:
            rows = session.scalars(select(_Item).where(_Item.queue_name == name).order_by(_Item.seq))
            return [(row.seq, row.value) for row in rows]

    def dict_names(self) -> list[tuple[str, int]]:
        with self._session() as session:
            query = select(_Entry.dict_name, func.count()).group_by(_Entry.dict_name).order_by(_Entry.dict_name)
            return [(str(name), int(count)) for name, count in session.execute(query)]

    def queue_names(self) -> list[tuple[str, int]]:
        with self._session() as session:
            query = select(_Item.queue_name, func.count()).group_by(_Item.queue_name).order_by(_Item.queue_name)
            return [(str(name), int(count)) for name, count in session.execute(query)]

    def apply(self, writes: list[Write]) -> None:
        """Every change in one transaction: all of them are stored, or none."""
        with self._session() as session:
            for write in writes:
                if write.op == "set":
                    row = session.get(_Entry, (write.name, write.key))
                    if row is None:
                        session.add(_Entry(dict_name=write.name, key=write.key, value=write.value))
                    else:
                        row.value, row.updated = write.value, utcnow()
                    session.flush()  # a later write of the same key in this batch finds this row
                elif write.op == "delete":
                    session.execute(delete(_Entry).where(_Entry.dict_name == write.name, _Entry.key == write.key))
                elif write.op == "push":
                    session.add(_Item(queue_name=write.name, seq=write.seq, value=write.value))
                    session.flush()
                elif write.op == "pop":
                    session.execute(delete(_Item).where(_Item.queue_name == write.name, _Item.seq == write.seq))
                else:
                    raise ValueError(f"unknown state write {write.op!r}")
