"""The database under the registry and flow checkpoints: one declarative base, one connection class.

SQLite (a file under FN_HOME, in WAL mode) by default, PostgreSQL by URL, through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from fnplatform.deadlines import DB_CONNECT_TIMEOUT_S, DB_POOL_TIMEOUT_S

# The platform's actors and gateways (flows, jobs) find the database here, in their own environment, never in
# their init arguments: those are kept by Serve's controller and Ray's GCS and shown by their APIs, and the URL
# carries the database password. The local platform sets it before it starts Ray (workers inherit it); on
# Kubernetes the api-pool Ray pods get it from a Secret (terraform/modules/ray).
DATABASE_URL_ENV = "FN_DATABASE_URL"


def database_url_from_env() -> str:
    url = os.environ.get(DATABASE_URL_ENV, "")
    if not url:
        from fn import ConfigError

        raise ConfigError(f"{DATABASE_URL_ENV} is not set in this Ray worker's environment; the flows and jobs "
                          f"gateways and their actors read the database URL from it. The local platform sets it when it "
                          f"starts Ray; on a cluster, give every Ray pod of the api pool {DATABASE_URL_ENV} (on "
                          f"Kubernetes from a Secret, as terraform/modules/ray does)")
    return url


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """A connection to the registry database (SQLite file or PostgreSQL URL); creates missing tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        connect_args: dict[str, Any] = {"check_same_thread": False} if url.startswith("sqlite") else {}
        if url.startswith("sqlite"):
            _private_sqlite_file(url)
        elif url.startswith("postgresql") and "connect_timeout" not in url:
            connect_args["connect_timeout"] = int(DB_CONNECT_TIMEOUT_S)  # a silent server fails a request, not hangs it
        # pool_pre_ping: a connection a restarted server dropped is replaced before use, so service resumes by itself.
        self.engine: Engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True,
                                            pool_timeout=DB_POOL_TIMEOUT_S)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_new_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _delete(self, model: type[Base], key: Any) -> bool:
        """Delete the row of *model* with primary key *key*; whether it was there."""
        with self._session() as session:
            row = session.get(model, key)
            if row is None:
                return False
            session.delete(row)
            return True


def _add_new_columns(engine: Engine) -> None:
    """Columns added to a table after a database was created: nullable ones only, added in place, so a
    registry from an earlier release keeps working (create_all creates missing tables, never columns)."""
    existing_tables = set(inspect(engine).get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        present = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as connection:
                    connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask, often 0644); SQLite gives its
    -wal and -shm files the database file's mode. A file made earlier with a wider mode is narrowed."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # a missing folder: SQLite says so, as before
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(name)
            if info.st_uid == os.getuid() and info.st_mode & 0o077 and not os.path.islink(name):
                os.chmod(name, 0o600)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
