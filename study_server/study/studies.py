"""Import a compiled study plan (and its stimulus set's manifest) into the database.

``import_plan(session, plan_path, set_path)`` validates the plan against the set (the plan's
``manifest_sha256`` must be the manifest's, every media file must match its sha256) and lints the text a
participant will read (``stimuli.plan.participant_text_problems``), then stores the study, its stimuli
(with their labels), batches, items and the media copies served for them (``study_server.study.media``: one
per item and example, all of one size, each with its own padding) in one transaction. A second import of
the same study name is refused unless ``replace=True`` - and even then only while nobody has been assigned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stimuli.designs import participant_order
from stimuli.errors import StimuliError
from stimuli.manifest import load_manifest
from stimuli.plan import load_plan, participant_text_problems
from study_server.core.errors import StudyImportError
from study_server.store.models import Assignment, Batch, Item, MediaCopy, Study, StudyStimulus
from study_server.study.media import make_copy, media_container, padded_size


def import_plan(session: Session, plan_path: str | os.PathLike, set_path: str | os.PathLike, *,
                replace: bool = False, secret_key: str | None = None, commit: bool = True) -> Study:
    """Store the plan at ``plan_path`` (made from the set at ``set_path``) as a new study; return it."""

    plan_path, set_path = Path(plan_path), Path(set_path)
    try:
        manifest = load_manifest(set_path, check_media=True)
        plan = load_plan(plan_path, manifest=manifest)
    except StimuliError as exc:
        raise StudyImportError(str(exc)) from exc
    problems = participant_text_problems(plan, manifest)
    if problems:
        raise StudyImportError(f"{plan_path}: " + "; ".join(problems))
    plan_bytes = plan_path.read_bytes()
    name = plan["study"]["name"]
    existing = session.scalar(select(Study).where(Study.name == name))
    if existing is not None:
        if not replace:
            raise StudyImportError(
                f"{plan_path}: a study named {name!r} is already imported (id {existing.id}); rename the study "
                "in its spec, or pass replace=True (`--replace`) to replace it while nobody has taken part")
        n = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.study_id == existing.id))
        if n:
            raise StudyImportError(
                f"{plan_path}: study {name!r} already has {n} participant assignment(s); it cannot be replaced "
                "(their answers refer to it): give the new plan another study name")
        session.delete(existing)
        session.flush()
    code_key = (secret_key or "emostudy").encode()
    study = Study(
        name=name, title=plan["study"]["title"], task=plan["study"]["task"],
        plan_json=plan_bytes.decode("utf-8"), plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
        manifest_json=manifest.to_json_bytes().decode("utf-8"), manifest_sha256=manifest.sha256(),
        set_root=str(manifest.root.resolve()), quota_per_batch=plan["quota_per_batch"],
        completion_code=hmac.new(code_key, f"completion:{name}".encode(), hashlib.sha256).hexdigest()[:10].upper(),
    )
    session.add(study)
    used = {it["stimulus_id"] for b in plan["batches"] for it in b["items"]}
    used |= {e["stimulus_id"] for e in plan["examples"]}
    rows: dict[str, StudyStimulus] = {}
    for s in manifest.stimuli:
        if s.stimulus_id not in used:
            continue
        rows[s.stimulus_id] = StudyStimulus(study=study, stimulus_id=s.stimulus_id, media=s.media,
                                            sha256=s.sha256, labels=json.loads(json.dumps(s.to_dict())))
    session.add_all(rows.values())
    items: list[Item] = []
    for b in plan["batches"]:
        batch = Batch(study=study, key=b["batch_id"], index=b["index"], quota=plan["quota_per_batch"])
        session.add(batch)
        for it in b["items"]:
            items.append(Item(batch=batch, position=it["position"], stimulus=rows[it["stimulus_id"]],
                              repeat_of=it["repeat_of"]))
    session.add_all(items)
    session.flush()
    examples = [rows[e["stimulus_id"]] for e in plan["examples"]]
    session.add_all(media_copies(study, manifest.root, items, examples))
    session.flush()
    if commit:
        session.commit()
    return study


def media_copies(study: Study, set_root: Path, items: Sequence[Item],
                 examples: Sequence[StudyStimulus]) -> list[MediaCopy]:
    """One copy per item and per example (``study_server.study.media``), all padded to one size."""

    stimuli = {s.stimulus_id: s for s in [*(i.stimulus for i in items), *examples]}
    containers = {sid: media_container(set_root / s.media) for sid, s in stimuli.items()}
    size = padded_size((set_root / s.media).stat().st_size for s in stimuli.values())

    def copy(stimulus: StudyStimulus, **where: Any) -> MediaCopy:
        c = make_copy(set_root / stimulus.media, containers[stimulus.stimulus_id], size, secrets.token_hex(16))
        return MediaCopy(study_id=study.id, stimulus_pk=stimulus.id, container=c.container, size=c.size,
                         sha256=c.sha256, pad_key=c.pad_key, **where)
    return ([copy(i.stimulus, item_id=i.id) for i in items]
            + [copy(s, example_index=n) for n, s in enumerate(examples)])


def participant_text(plan: dict[str, Any]) -> dict[str, str]:
    """What a participant reads of the study: title, intro, instructions (never the researcher's
    description). Plans from before the ``participant`` table show their study title and instructions."""
    part = plan.get("participant")
    if part is None:
        study = plan["study"]
        return {"title": study["title"], "intro": "", "instructions": study.get("instructions", "")}
    return {k: part[k] for k in ("title", "intro", "instructions")}


def shown_order(plan: dict[str, Any], items: Sequence[tuple[int, int | None]], token: str) -> tuple[int, ...] | None:
    """The plan positions of a batch in the order the participant with ``token`` sees them, or None when
    the plan's order is per batch (everyone sees the plan's order). See ``stimuli.designs.participant_order``."""
    design = plan.get("design", {})
    if design.get("order", "per-batch") != "per-participant":
        return None

    return participant_order(items, int(design["min_repeat_gap"]), int(plan["seed"]), token)


@dataclass(frozen=True)
class PlanView:
    """What the request handlers need from a study's plan, parsed once per (study, plan sha)."""

    plan: dict[str, Any]
    questions: tuple[dict[str, Any], ...]
    question_by_id: dict[str, dict[str, Any]]
    options: dict[str, dict[str, dict[str, Any]]]  # question id -> option value -> option

    @property
    def study(self) -> dict[str, Any]:
        return self.plan["study"]

    @property
    def audio_check_enabled(self) -> bool:
        return bool(self.plan.get("audio_check", {}).get("enabled"))

    @property
    def per_participant_order(self) -> bool:
        return self.plan.get("design", {}).get("order") == "per-participant"

    @property
    def participant(self) -> dict[str, str]:
        return participant_text(self.plan)


@lru_cache(maxsize=64)
def parse_plan(plan_sha256: str, plan_json: str) -> PlanView:
    plan = json.loads(plan_json)
    questions = tuple(plan["questions"])
    return PlanView(plan=plan, questions=questions, question_by_id={q["id"]: q for q in questions},
                    options={q["id"]: {o["value"]: o for o in q["options"]} for q in questions})


def plan_view(study: Study) -> PlanView:
    """The parsed plan of ``study`` (cached by sha256: plans never change after import)."""
    return parse_plan(study.plan_sha256, study.plan_json)
