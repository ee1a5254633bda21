"""Test data for the admin and export tests, written straight into the database (no HTTP), so that the
counts and rows these tests expect are known exactly. ``add_assignment`` mirrors what the participant API
stores: a Participant (pseudonym keyed with the app's secret), an Assignment, one Answer per item, a Verdict.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select


def add_assignment(app, study: str, batch_key: str, *, worker: str, platform: str = "lab",
                   status: str = "started", verdict: str | None = None, n_inconsistent: int = 0,
                   answers: dict[int, dict[str, Any]] | None = None, idle_s: float = 0.0,
                   audio_check_passed: bool | None = None, rt_ms: int | None = 800,
                   played_fraction: float | None = 1.0) -> int:
    """Store one assignment of ``worker`` to ``batch_key``; return the assignment's id."""
    from study_server.store.extensions import db
    from study_server.store.models import Answer, Assignment, Batch, Item, Participant, Study, Verdict, utcnow
    from study_server.study.platforms import pseudonym

    with app.app_context():
        session = db.session
        s = session.scalar(select(Study).where(Study.name == study))
        batch = session.scalar(select(Batch).where(Batch.study_id == s.id, Batch.key == batch_key))
        now = utcnow()
        person = Participant(platform=platform, worker_id=worker,
                             pseudonym=pseudonym(app.config["SECRET_KEY"], platform, worker))
        session.add(person)
        assignment = Assignment(
            token=f"tok-{worker}", study_id=s.id, batch_id=batch.id, participant=person, status=status,
            allocated_at=now - dt.timedelta(seconds=idle_s + 5), last_seen_at=now - dt.timedelta(seconds=idle_s),
            started_at=None if status == "allocated" else now - dt.timedelta(seconds=idle_s + 4),
            completed_at=now if verdict else None, audio_check_passed=audio_check_passed)
        session.add(assignment)
        session.flush()
        items = {it.position: it for it in session.scalars(select(Item).where(Item.batch_id == batch.id))}
        for k, (position, values) in enumerate(sorted((answers or {}).items())):
            session.add(Answer(answer_id=f"{worker}-ans-{position:03d}", assignment_id=assignment.id,
                               item_id=items[position].id, values=values, rt_ms=rt_ms,
                               played_fraction=played_fraction,
                               created_at=now - dt.timedelta(seconds=60 - k)))
        if verdict:
            session.add(Verdict(assignment_id=assignment.id, verdict=verdict, n_inconsistent=n_inconsistent,
                                n_repeat_answers=9, details={}))
        session.commit()
        return assignment.id


def plan_of(app, study: str) -> dict[str, Any]:
    import json

    from study_server.store.extensions import db
    from study_server.store.models import Study

    with app.app_context():
        return json.loads(db.session.scalar(select(Study.plan_json).where(Study.name == study)))


def batch_positions(plan: dict[str, Any], batch_key: str) -> list[int]:
    batch = next(b for b in plan["batches"] if b["batch_id"] == batch_key)
    return [it["position"] for it in batch["items"]]


class fresh_postgres_database:  # noqa: N801 - used as a context manager
    """A new, empty PostgreSQL database next to ``base_url`` (dropped on exit): tests never share one."""

    def __init__(self, base_url: str, prefix: str = "emostudy_t") -> None:
        import uuid

        from sqlalchemy import create_engine

        from study_server.core.config import normalize_database_url

        self.admin = create_engine(normalize_database_url(base_url), isolation_level="AUTOCOMMIT")
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.url = self.admin.url.set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> str:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()
