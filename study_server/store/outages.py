"""What a database fault is: ``classify`` names an exception *transient* (run the transaction again),
*unavailable* (the database is away: answer 503) or neither (a bug or a refusal, left alone).

Used by the request sessions (``extensions``) and by the app's answer to a fault (``faults``).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

TRANSIENT, UNAVAILABLE = "transient", "unavailable"
_TRANSIENT_STATES = frozenset({"40001", "40P01"})
# SQLSTATE classes/codes of a server that is away or refusing work for now (not a bug of ours). 25006
# (read_only_sql_transaction): a database set read-only, or a fail-over that left us on a standby (issue 29).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "53000", "53100", "53200", "57014",
                                 "58000", "58030", "25006"})


def _sqlstate(exc: BaseException) -> str | None:
    for e in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if state:
            return str(state)
    return None


def classify(exc: BaseException) -> str | None:
    """``TRANSIENT``, ``UNAVAILABLE`` or None (not a database fault: a bug or a refusal, left alone)."""
    state = _sqlstate(exc)
    if state in _TRANSIENT_STATES:
        return TRANSIENT
    if state is not None and (state in _UNAVAILABLE_STATES or state.startswith("08")):
        return UNAVAILABLE
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give within its timeout
        return UNAVAILABLE
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return UNAVAILABLE
    orig = getattr(exc, "orig", exc)
    module = type(orig).__module__ or ""
    if module.startswith("sqlite3"):
        text = str(orig).lower()
        if "locked" in text or "busy" in text:
            return TRANSIENT
        if "readonly database" in text or "read-only" in text:  # the file or its folder made read-only
            return UNAVAILABLE
        return None  # "no such table" and the like are bugs or a missing migration: a 500 with its traceback
    if module.startswith("psycopg"):
        import psycopg  # optional: only a PostgreSQL deployment has it, and only its errors get here

        if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) and state is None:
            return UNAVAILABLE  # no SQLSTATE: the connection failed or broke (refused, reset, closed)
    return None
