"""Which database errors mean the registry is unreachable rather than wrong, and the 503 they become.

SQLite's "database is locked" or "unable to open database file", PostgreSQL refusing connections or
dropping them, and a full connection pool are outages: the control plane and the flows gateway answer
503 with ``Retry-After`` and the next request tries again (``pool_pre_ping`` replaces connections a restarted server dropped).
The bundle store and Ray are turned into 503s where they are called (``storage.blobs``,
``fnplatform.deadlines``). Only the driver's own first line is quoted, never the SQL or its
parameters (a key's hash is one).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fn import ClientError, RemoteError, Unavailable
from fnplatform.deadlines import unavailable

REGISTRY = "the registry database"


def registry_outage(exc: SQLAlchemyError) -> Unavailable | None:
    """The 503 for *exc* when it means the database cannot be reached or used now; None for any other error."""
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return unavailable(REGISTRY, type(exc).__name__)
    if isinstance(exc, OperationalError | InterfaceError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines()
        return unavailable(REGISTRY, f"{type(cause).__name__}: {lines[0] if lines else 'no message'}")
    return None


def database_error(exc: BaseException, database: str) -> ClientError | None:
    """What a gateway answers for a database error: its outage's 503, or a 500 that names *database* and hides the
    SQL and its parameters; None for an error that is not the database's."""
    if not isinstance(exc, SQLAlchemyError):
        return None
    return registry_outage(exc) or RemoteError(f"{database} refused the request", status=500,
                                               error_type=type(exc).__name__)
