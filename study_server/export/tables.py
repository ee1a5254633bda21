"""Export a study to a folder: the analysis engineer's input (docs/contracts.md, section 4).

    DIR/answers.csv       one row per answer x question, joined to the stimulus labels
    DIR/participants.csv  one row per assignment, pseudonymous ids
    DIR/decisions.csv     the researcher's decisions on the admin pages (who, when, what, why)
    DIR/plan.json         the imported plan, byte for byte
    DIR/manifest.json     the stimulus set's manifest as imported
    DIR/codebook.md       every column of both CSVs
    DIR/documentation/consent.md, debrief.md   what participants read, exactly as planned (when the plan has them)

Rows come in a fixed order (batch index, assignment allocation time and id, item position, the plan's
question order), so the same database gives the same bytes. Participants appear only as their
pseudonym (HMAC-SHA256 of ``platform:worker_id`` keyed with the server secret, 16 hex); raw platform ids
stay in the database, for payments.

Values: multi-choice answers are joined with ``;`` in the question's option order; the answer ``none``
is written literally (read the CSVs with ``keep_default_na=False``); missing values are empty cells.

Errors: ``ExportError`` (a ``StudyServerError``) names the study or folder and the fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.core.errors import StudyServerError
from study_server.export import psychds
from study_server.store.models import (
    REAL,
    SIMULATED,
    AdminDecision,
    Answer,
    Assignment,
    Batch,
    Demographics,
    Item,
    ListeningCheck,
    MediaFailure,
    MediaFetch,
    Participant,
    ScreenTrial,
    Study,
    StudyStimulus,
    Verdict,
)
from study_server.study.studies import shown_order

LABEL_COLUMNS = ("stimulus_id", "source", "visual_emotion", "audio_emotion", "identity", "sentence", "intensity",
                 "size_variant")
ANSWER_COLUMNS = ("answer_id", "study", "task", "batch_id", "participant", "assignment", "position",
                  "shown_position", "is_repeat", "repeat_of", *LABEL_COLUMNS, "question", "answer", "score", "rt_ms",
                  "played_fraction", "answered_at", "verdict", "watch_flag", "media_requested_at",
                  "media_bytes_served", "watched", "paced")
PARTICIPANT_COLUMNS = ("participant", "assignment", "batch_id", "platform", "status", "allocated_at", "started_at",
                       "completed_at", "verdict", "n_inconsistent", "n_repeat_answers", "audio_check_passed",
                       "n_answers", "n_watch_flags", "n_media_failed", "media_failed_positions",
                       "screen_kind", "screen_calibrated", "screen_passed", "screen_n_correct",
                       "screen_attempts")
DECISION_COLUMNS = ("decided_at", "participant", "assignment", "kind", "action", "reason", "actor")
SCREEN_COLUMNS = ("participant", "assignment", "kind", "attempt", "trial", "answer", "correct", "answered_at")

ANSWER_CODEBOOK = {
    "answer_id": "the client-made id of the answer (unique per item answered; repeated on each question's row)",
    "study": "study name (from the plan)",
    "task": "emotion-realness (Task 1), av-mismatch (Task 2), norming (a validation study of a set) or factorial (a design of one's own)",
    "batch_id": "the batch the participant was assigned, e.g. b01",
    "participant": "pseudonym: HMAC-SHA256 (server secret) of platform:worker id, first 16 hex digits",
    "assignment": "opaque assignment id (unique per participant and study)",
    "position": "0-based position of the item in the batch (the plan's)",
    "shown_position": "0-based position at which this participant saw the item: the plan's position, or the "
                      "participant's own order when the plan's design.order is per-participant",
    "is_repeat": "1 if this item is a consistency repeat of an earlier item, else 0",
    "repeat_of": "position of the original for a repeat, else empty",
    "stimulus_id": "the stimulus (manifest row) shown",
    "source": "condition label from the manifest: GT, BL, OURS, ...",
    "visual_emotion": "emotion the face shows (manifest), empty if none",
    "audio_emotion": "emotion the voice carries (manifest), empty if none or silent",
    "identity": "speaker/face identity (manifest)",
    "sentence": "sentence code or text (manifest)",
    "intensity": "intensity label (manifest), empty if none",
    "size_variant": "size variant, e.g. 128x128 (manifest), empty if none",
    "question": "question id (Task 1: emotion, realness, aspects; Task 2: primary, secondary)",
    "answer": "the value given; multi-choice: the selected values joined with ';' in option order; "
              "the literal string 'none' is an answer, never a missing value",
    "score": "numeric score of the chosen option for scale questions (realness 5..1), else empty",
    "rt_ms": "response time from the end of the video to the answer, in ms (empty if not reported)",
    "played_fraction": "fraction of the video played before answering, 0..1 (empty if not reported)",
    "answered_at": "ISO 8601 UTC time the server stored the answer",
    "verdict": "server verdict of the participant's survey: valid, rejected, technical_failure (too many "
               "videos would not load) or incomplete (not completed)",
    "watch_flag": "server-side evidence of watching: empty (clear), unpaced (see paced), too_few_bytes (fewer "
                  "bytes of the video sent than it has), never_fetched (no byte of the item's video was sent "
                  "before the answer) or too_fast (answered sooner after the first request than the "
                  "video lasts, minus WATCH_TOLERANCE_S)",
    "media_requested_at": "ISO 8601 UTC time the item's video was first requested (empty if never)",
    "media_bytes_served": "bytes of the item's video the server sent, all requests (Range parts) summed; a GET "
                          "of a presigned S3 redirect counts as the clip's size; empty if never requested",
    "watched": "1 when the server had sent at least the clip's bytes and the clip's duration (minus "
               "WATCH_TOLERANCE_S) had passed since its first byte when the answer came; 0 if not; empty for "
               "answers stored before this was recorded",
    "paced": "1 when this and the earlier answers came no sooner after the first trial's first byte than their "
             "clips last one after another (each minus WATCH_TOLERANCE_S); 0 if not; empty as for watched",
}
PARTICIPANT_CODEBOOK = {
    "participant": "pseudonym, as in answers.csv",
    "assignment": "opaque assignment id, as in answers.csv",
    "batch_id": "the batch assigned",
    "platform": "recruiting platform: mturk, prolific, lab or link",
    "status": "assignment status: allocated, started, completed, submitted, approved, rejected, returned, "
              "abandoned, expired or declined (read the consent and did not consent)",
    "allocated_at": "ISO 8601 UTC time the batch was assigned",
    "started_at": "ISO 8601 UTC time the participant started the trials (empty if never)",
    "completed_at": "ISO 8601 UTC time the survey was completed (empty if not)",
    "verdict": "valid, rejected, technical_failure (too many videos would not load), or incomplete (no verdict: "
               "not completed)",
    "n_inconsistent": "repeated answers (repeats x questions with a rule) judged inconsistent; empty if incomplete",
    "n_repeat_answers": "repeated answers compared; empty if incomplete",
    "audio_check_passed": "1 passed, 0 failed, empty if not taken or not required",
    "n_answers": "items answered (rows in answers.csv / questions per item)",
    "n_watch_flags": "answers with a watch_flag (never_fetched or too_fast); unless the plan's "
                     "consistency.watch_flags is 'ignore', each counts in n_inconsistent",
    "n_media_failed": "items recorded as 'media failed': the video would not load after three tries and the "
                      "participant went on (no answer, no rows in answers.csv)",
    "media_failed_positions": "their positions, joined with ';' (empty if none)",
    "screen_kind": "headphone screen of the study: huggins or antiphase; empty if the study has none",
    "screen_calibrated": "1 if the participant set the volume on the calibration noise, 0 if not; empty without a "
                         "screen",
    "screen_passed": "1 passed the headphone screen, 0 failed it (the assignment then ends as abandoned, before any "
                     "trial), empty if not finished or no screen",
    "screen_n_correct": "correct screen trials in the last finished block (pass at the plan's audio_check.pass_at)",
    "screen_attempts": "screen blocks finished (at most the plan's audio_check.attempts)",
}
SCREEN_CODEBOOK = {
    "participant": "pseudonym, as in answers.csv",
    "assignment": "opaque assignment id, as in answers.csv",
    "kind": "huggins (Milne et al. 2021: which of three noises holds a faint tone) or antiphase (Woods et al. "
            "2017: which of three tones is the softest)",
    "attempt": "0-based block of trials (a new block after a failed one, when the plan allows more attempts)",
    "trial": "0-based trial within the block",
    "answer": "the interval chosen, 1-3",
    "correct": "1 if it was the right interval, else 0",
    "answered_at": "ISO 8601 UTC time the server stored the answer",
}
assert tuple(ANSWER_CODEBOOK) == ANSWER_COLUMNS and tuple(PARTICIPANT_CODEBOOK) == PARTICIPANT_COLUMNS
assert tuple(SCREEN_CODEBOOK) == SCREEN_COLUMNS
# participants.csv ends with one column per [demographics] item the plan asks (stimuli.demographics)
DEMOGRAPHIC_CODEBOOK = {
    "demo_age": "age in whole years, or an age band (18-24 ... 65+) when the plan's demographics.age is 'bands'",
    "demo_gender": "woman, man, non_binary, or self:<the participant's own words>",
    "demo_native_language": "native language(s), in the participant's words",
    "demo_country": "country of residence, in the participant's words",
    "demo_hearing": "normal, corrected (hearing aid or implant) or impaired",
    "demo_vision": "normal, corrected (glasses or contact lenses) or impaired",
    "demo_device": "computer, tablet or phone",
    "demo_headphones": "headphones (or earphones), speakers, or none (no sound)",
}
_DEMO_NOTE = ("; prefer_not: the participant preferred not to say; empty: not answered (optional item, or the "
              "survey ended before the questions)")

INCOMPLETE = "incomplete"


class ExportError(StudyServerError):
    """A study cannot be exported (unknown study, output folder not empty, stored answer unreadable)."""


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    n_answer_rows: int
    n_participant_rows: int


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def format_answer(question: dict[str, Any], value: Any, *, where: str) -> tuple[str, str]:
    """(answer, score) cells of one question's stored value."""
    options = [o["value"] for o in question["options"]]
    if question["type"] == "multi":
        chosen = value if isinstance(value, list) else [value]
        unknown = [v for v in chosen if v not in options]
        if unknown:
            raise ExportError(f"{where}: question {question['id']!r} holds {unknown!r}, not among its options "
                              f"{options}; the database was changed outside the server")
        return ";".join(v for v in options if v in chosen), ""
    if not isinstance(value, str) or value not in options:
        raise ExportError(f"{where}: question {question['id']!r} holds {value!r}, not among its options {options}; "
                          "the database was changed outside the server")
    if question["type"] == "scale":
        score = next(o.get("score") for o in question["options"] if o["value"] == value)
        return value, _number(score)
    return value, ""


def _csv_bytes(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def demographic_codebook(plan: dict[str, Any]) -> dict[str, str]:
    """The demographic columns of participants.csv for ``plan`` (none when it asks no such items)."""
    items = (plan.get("demographics") or {}).get("items", [])
    return {f"demo_{i['id']}": DEMOGRAPHIC_CODEBOOK[f"demo_{i['id']}"] + _DEMO_NOTE for i in items}


def _demographic_cells(session: Session, study: Study, plan: dict[str, Any],
                       participant_rows: list[list[str]]) -> None:
    """Append each row's demographic answers (participants.csv rows carry the assignment id in column 2)."""
    columns = [c[len("demo_"):] for c in demographic_codebook(plan)]
    if not columns:
        return
    stored = dict(session.execute(
        select(Demographics.assignment_id, Demographics.values)
        .join(Assignment, Assignment.id == Demographics.assignment_id)
        .where(Assignment.study_id == study.id)).all())
    for row in participant_rows:
        values = stored.get(int(row[1])) or {}
        row += [_label(values.get(c)) for c in columns]


def codebook_markdown(study: Study, plan: dict[str, Any]) -> str:
    lines = [f"# Codebook: {study.name}", "",
             f"Study {study.name!r} ({study.task}), exported by `emostudy export`. Read the CSV files with "
             "`pandas.read_csv(path, keep_default_na=False)`: the answer `none` is a value, and empty cells "
             "are missing values.", "", "## answers.csv", "",
             "One row per answer to a question (item x question), ordered by batch, assignment, position, "
             "question.", "", "| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in ANSWER_CODEBOOK.items()]
    lines += ["", "### Questions", ""]
    for q in plan["questions"]:
        opts = ", ".join(f"`{o['value']}`" + (f" (score {_number(o.get('score'))})" if o.get("score") is not None
                                               else "") for o in q["options"])
        lines.append(f"- `{q['id']}` ({q['type']}): {q['prompt']} Options: {opts}.")
    lines += ["", "## participants.csv", "", "One row per assignment (a participant's batch in this study).", "",
              "| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in {**PARTICIPANT_CODEBOOK, **demographic_codebook(plan)}.items()]
    if _screen_kind(plan):
        ac = plan["audio_check"]
        lines += ["", "## screen_trials.csv", "",
                  f"One row per answered trial of the headphone screen ({ac['kind']}: {ac['trials']} trials a block, "
                  f"passed with {ac['pass_at']} correct, {ac['attempts']} block(s) allowed).", "",
                  "| column | meaning |", "|---|---|"]
        lines += [f"| {name} | {text} |" for name, text in SCREEN_CODEBOOK.items()]
    lines += ["", "## decisions.csv", "", "The researcher's decisions on the admin pages, oldest first: a verdict "
              "overridden (`valid -> rejected`; participants.csv and answers.csv show the verdict after it), an "
              "arrival hold released, a queued submission decided. `reason` is the researcher's own words.", ""]
    lines += ["", "## plan.json, manifest.json", "",
              "The study plan as imported (batches, items, questions, consistency rules) and the stimulus set's "
              "manifest (every label of every stimulus).", ""]
    return "\n".join(lines)


def _rows(session: Session, study: Study, plan: dict[str, Any],
          kinds: tuple[str, ...] = (REAL,)) -> tuple[list[list[str]], list[list[str]]]:
    """The rows of answers.csv and participants.csv. ``kinds``: whose sessions (Assignment.kind) are data: real
    participants, and simulated ones when asked; a preview never is."""
    questions = plan["questions"]
    assignments = session.execute(
        select(Assignment, Batch.key, Participant.platform, Participant.pseudonym, Verdict)
        .join(Batch, Batch.id == Assignment.batch_id)
        .join(Participant, Participant.id == Assignment.participant_id)
        .outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
        .where(Assignment.study_id == study.id, Assignment.kind.in_(kinds))
        .order_by(Batch.index, Assignment.allocated_at, Assignment.id)).all()
    answers_by_assignment: dict[int, list[tuple[Answer, Item, StudyStimulus]]] = {}
    for answer, item, stimulus in session.execute(
            select(Answer, Item, StudyStimulus)
            .join(Item, Item.id == Answer.item_id).join(StudyStimulus, StudyStimulus.id == Item.stimulus_pk)
            .join(Assignment, Assignment.id == Answer.assignment_id)
            .where(Assignment.study_id == study.id, Assignment.kind.in_(kinds))
            .order_by(Answer.assignment_id, Item.position, Answer.created_at, Answer.answer_id)):
        answers_by_assignment.setdefault(answer.assignment_id, []).append((answer, item, stimulus))

    fetches = {(f.assignment_id, f.position): f for f in session.scalars(
        select(MediaFetch).join(Assignment, Assignment.id == MediaFetch.assignment_id)
        .where(Assignment.study_id == study.id))}
    failed: dict[int, list[int]] = {}
    for assignment_id, position in session.execute(
            select(MediaFailure.assignment_id, Item.position).join(Item, Item.id == MediaFailure.item_id)
            .join(Assignment, Assignment.id == MediaFailure.assignment_id)
            .where(Assignment.study_id == study.id).order_by(MediaFailure.assignment_id, Item.position)):
        failed.setdefault(assignment_id, []).append(position)

    checks = {c.assignment_id: c for c in session.scalars(
        select(ListeningCheck).join(Assignment, Assignment.id == ListeningCheck.assignment_id)
        .where(Assignment.study_id == study.id))}
    screen_kind = _screen_kind(plan)

    batch_items: dict[int, list[tuple[int, int | None]]] = {}
    for batch_id, position, repeat_of in session.execute(
            select(Item.batch_id, Item.position, Item.repeat_of).join(Batch, Batch.id == Item.batch_id)
            .where(Batch.study_id == study.id).order_by(Item.position)):
        batch_items.setdefault(batch_id, []).append((position, repeat_of))

    answer_rows: list[list[str]] = []
    participant_rows: list[list[str]] = []
    for assignment, batch_key, platform, pseudonym, verdict in assignments:
        verdict_text = verdict.verdict if verdict is not None else INCOMPLETE
        assignment_ref = str(assignment.id)
        given = answers_by_assignment.get(assignment.id, [])
        order = shown_order(plan, batch_items[assignment.batch_id], assignment.token)
        shown = {p: n for n, p in enumerate(order)} if order is not None else None
        for answer, item, stimulus in given:
            labels = stimulus.labels
            # media_fetches are kept by the position the participant saw (their order's)
            fetch = fetches.get((assignment.id, item.position if shown is None else shown[item.position]))
            where = f"study {study.name!r}, assignment {assignment.id}, position {item.position}"
            for q in questions:
                if q["id"] not in answer.values:
                    continue  # an optional question left unanswered: no row
                text, score = format_answer(q, answer.values[q["id"]], where=where)
                answer_rows.append([
                    answer.answer_id, study.name, study.task, batch_key, pseudonym, assignment_ref,
                    str(item.position), str(item.position if shown is None else shown[item.position]),
                    "0" if item.repeat_of is None else "1", _number(item.repeat_of),
                    stimulus.stimulus_id, *(_label(labels.get(c)) for c in LABEL_COLUMNS[1:]),
                    q["id"], text, score, _number(answer.rt_ms), _number(answer.played_fraction),
                    _iso(answer.created_at), verdict_text, answer.watch_flag or "",
                    _iso(fetch.first_requested_at if fetch else None), _number(fetch.bytes_served if fetch else None),
                    _number(answer.watched), _number(answer.paced)])
        participant_rows.append([
            pseudonym, assignment_ref, batch_key, platform, assignment.status, _iso(assignment.allocated_at),
            _iso(assignment.started_at), _iso(assignment.completed_at), verdict_text,
            _number(verdict.n_inconsistent if verdict else None),
            _number(verdict.n_repeat_answers if verdict else None), _number(assignment.audio_check_passed),
            str(len(given)), str(sum(a.watch_flag is not None for a, _, _ in given)),
            str(len(failed.get(assignment.id, []))), ";".join(map(str, failed.get(assignment.id, []))),
            *_screen_cells(screen_kind, checks.get(assignment.id))])
    return answer_rows, participant_rows


def _decision_rows(session: Session, study: Study) -> list[list[str]]:
    """decisions.csv: one row per AdminDecision of the study (pseudonym, never the worker id)."""
    rows = session.execute(
        select(AdminDecision, Participant.pseudonym)
        .outerjoin(Assignment, Assignment.id == AdminDecision.assignment_id)
        .outerjoin(Participant, Participant.id == Assignment.participant_id)
        .where(AdminDecision.study_id == study.id).order_by(AdminDecision.at, AdminDecision.id)).all()
    return [[_iso(d.at), pseudonym or "", _number(d.assignment_id), d.kind, d.action, d.reason, d.actor]
            for d, pseudonym in rows]


def _screen_kind(plan: dict[str, Any]) -> str:
    ac = plan.get("audio_check") or {}
    kind = str(ac.get("kind", "words")) if ac.get("enabled") else ""
    return {"huggins": "huggins", "antiphase": "antiphase", "huggins+words": "huggins"}.get(kind, "")


def _screen_cells(kind: str, check: ListeningCheck | None) -> list[str]:
    if not kind:
        return ["", "", "", "", ""]
    if check is None:
        return [kind, "0", "", "", "0"]
    return [kind, "1" if check.calibrated_at else "0", _number(check.passed), _number(check.n_correct),
            str(check.attempts_used)]


def _screen_rows(session: Session, study: Study, kinds: tuple[str, ...] = (REAL,)) -> list[list[str]]:
    """One row per answered headphone-screen trial (screen_trials.csv)."""
    rows = session.execute(
        select(ScreenTrial, Assignment.id, Participant.pseudonym)
        .join(Assignment, Assignment.id == ScreenTrial.assignment_id)
        .join(Participant, Participant.id == Assignment.participant_id)
        .where(Assignment.study_id == study.id, Assignment.kind.in_(kinds))
        .order_by(Assignment.id, ScreenTrial.kind, ScreenTrial.attempt, ScreenTrial.trial)).all()
    return [[pseudonym, str(aid), t.kind, str(t.attempt), str(t.trial), str(t.answer), _number(t.correct),
             _iso(t.created_at)] for t, aid, pseudonym in rows]


EXPORT_FORMATS = ("emostudy", "psych-ds")


def export_study(session: Session, study: str | int, out_dir: str | os.PathLike, *,
                 format: str = "emostudy", include_simulated: bool = False,
                 spec_text: bytes | None = None) -> ExportResult:
    """Write the export of ``study`` (its name or id) into ``out_dir`` (missing or empty; never overwritten).

    ``format``: ``emostudy`` (the files of the module docstring) or ``psych-ds`` (the same data as a
    Psych-DS dataset with an R script, :mod:`study_server.export.psychds`). ``spec_text``: the study's spec file
    (psych-ds only), copied into materials/ when its SHA-256 is the plan's spec_sha256.

    Preview sessions (the admin's "Preview as participant") are never exported; simulated participants
    (`emostudy simulate`) only with ``include_simulated``.

    Pseudonyms were computed with the server secret when each participant arrived
    (``platforms.pseudonym``) and are read from the database.
    """
    found = session.scalar(select(Study).where(Study.name == str(study)))
    if found is None and str(study).isdigit():
        found = session.get(Study, int(study))
    if found is None:
        names = session.scalars(select(Study.name).order_by(Study.name)).all()
        raise ExportError(f"no study named {study!r} in the database; known studies: "
                          f"{', '.join(names) or 'none (import one with `emostudy study import`)'}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; exports never overwrite: "
                          "choose a new folder")
    if format not in EXPORT_FORMATS:
        raise ExportError(f"export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    plan = json.loads(found.plan_json)
    if spec_text is not None:
        if format != "psych-ds":
            raise ExportError("a spec file goes only into a Psych-DS export (--format psych-ds)")
        if hashlib.sha256(spec_text).hexdigest() != plan.get("spec_sha256"):
            raise ExportError(f"the spec file given is not the one study {found.name!r} was planned from (its "
                              f"SHA-256 differs from the plan's spec_sha256 {plan.get('spec_sha256')}): give that "
                              "spec, or export without --spec")
    kinds = (REAL, SIMULATED) if include_simulated else (REAL,)
    answer_rows, participant_rows = _rows(session, found, plan, kinds)
    _demographic_cells(session, found, plan, participant_rows)
    files = {
        "answers.csv": _csv_bytes(ANSWER_COLUMNS, answer_rows),
        "participants.csv": _csv_bytes((*PARTICIPANT_COLUMNS, *demographic_codebook(plan)), participant_rows),
        "plan.json": found.plan_json.encode("utf-8"),
        "manifest.json": found.manifest_json.encode("utf-8"),
        "codebook.md": codebook_markdown(found, plan).encode("utf-8"),
    }
    files["decisions.csv"] = _csv_bytes(DECISION_COLUMNS, _decision_rows(session, found))
    files.update(participant_documents(plan))
    if _screen_kind(plan):
        files["screen_trials.csv"] = _csv_bytes(SCREEN_COLUMNS, _screen_rows(session, found, kinds))
    if format == "psych-ds":
        files = psychds_files(found, plan, files, len(answer_rows), len(participant_rows), spec_text=spec_text)
    # Write next to the target, then move into place: a crash leaves no half-written export.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    except BaseException:
        # Only our own staging folder: files first, then its (now empty) sub-folders, deepest first.
        for leftover in sorted(staging.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
        if staging.exists():
            staging.rmdir()
        raise
    return ExportResult(out, len(answer_rows), len(participant_rows))


def participant_documents(plan: dict[str, Any]) -> dict[str, bytes]:
    """The consent and debrief texts participants read (``documentation/consent.md``, ``debrief.md``), byte for
    byte as the plan stores them; the plan's sha256 of each is checked when the plan is loaded."""
    part = plan.get("participant") or {}
    return {f"documentation/{key}.md": part[key]["text"].encode("utf-8") for key in ("consent", "debrief")
            if part.get(key)}


def psychds_files(study: Study, plan: dict[str, Any], files: dict[str, bytes], n_answer_rows: int,
                  n_participant_rows: int, *, spec_text: bytes | None = None) -> dict[str, bytes]:
    """The plain export's ``files`` rearranged as a Psych-DS dataset (:mod:`study_server.export.psychds`): the CSVs
    under data/ with keyword-value names and a sidecar .json each, dataset_description.json, README.md,
    CHANGES.md, documentation/, materials/ (plan, participant texts, the spec when given), analysis/analysis.R,
    results/. Checked against the specification's rules before anything is written."""
    answers_file, participants_file = psychds.data_file_names(study.name, study.task, study.id)
    screen_file = participants_file.replace("description-participants", "description-headphonescreen")
    data = [psychds.DataFile(answers_file, "One row per answer to a question (an item shown to a participant, "
                                           "times the questions asked about it)",
                             ("assignment", "position", "question"), n_answer_rows, ANSWER_CODEBOOK),
            psychds.DataFile(participants_file, "One row per participant assignment (a survey taken)",
                             ("assignment",), n_participant_rows,
                             {**PARTICIPANT_CODEBOOK, **demographic_codebook(plan)})]
    if "screen_trials.csv" in files:  # the headphone screen's trials (study_server.participant.listening)
        n_screen = max(0, files["screen_trials.csv"].count(b"\n") - 1)
        data.append(psychds.DataFile(screen_file, "One row per trial of the headphone screen taken before the "
                                                  "videos (three intervals, the participant picks one)",
                                     ("assignment", "attempt", "trial"), n_screen, SCREEN_CODEBOOK))
    exported_at = _iso(dt.datetime.now(dt.timezone.utc))
    questions = plan.get("questions", [])
    description = psychds.dataset_description(
        study=study.name, task=study.task, files=data, questions=questions, plan_sha256=plan.get("spec_sha256"),
        exported_at=exported_at, metadata=plan.get("study", {}).get("dataset"))
    sources = {answers_file: files["answers.csv"], participants_file: files["participants.csv"]}
    if "screen_trials.csv" in files:
        sources[screen_file] = files["screen_trials.csv"]
    materials = {"materials/plan.json": files["plan.json"],
                 "materials/participant-texts.md": psychds.participant_texts(plan).encode("utf-8")}
    if spec_text is not None:
        materials["materials/spec.toml"] = spec_text
    else:
        materials["materials/spec.md"] = (
            "# The study's spec\n\nThe spec file itself is not stored on the server; its SHA-256 is "
            f"{plan.get('spec_sha256', 'unknown')} (the plan's spec_sha256). Export with `emostudy export STUDY "
            "--format psych-ds --spec FILE` to include it here (checked against that hash).\n").encode("utf-8")

    def js(obj: Any) -> bytes:
        return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    out = {
        "dataset_description.json": js(description),
        **{f"data/{name}": content for name, content in sources.items()},
        **{f"data/{psychds.sidecar_name(f.name)}": js(psychds.sidecar(f, questions, answers_file)) for f in data},
        "documentation/codebook.md": files["codebook.md"],
        "documentation/plan.json": files["plan.json"],
        "documentation/manifest.json": files["manifest.json"],
        **materials,
        "analysis/analysis.R": psychds.r_script(answers_file=answers_file, participants_file=participants_file,
                                                task=study.task, chance=_chance(plan)).encode("utf-8"),
        "results/README.md": b"# Results\n\n`Rscript analysis/analysis.R results/results_R.csv` writes every number "
                             b"the R script computes here (name,value rows).\n",
        "README.md": psychds.readme(study.name, study.task, data, title=plan.get("study", {}).get("title", ""),
                                    materials=sorted(materials)).encode("utf-8"),
        "CHANGES.md": psychds.changes(exported_at, plan.get("spec_sha256")).encode("utf-8"),
        ".psychds-ignore": b"# Files the Psych-DS validator may skip (none: every file of this export is described)\n",
    }
    out.update({k: v for k, v in files.items() if k.startswith("documentation/")})  # consent.md, debrief.md
    problems = psychds.psychds_problems(out)
    if problems:  # a bug of ours, not of the data: say what broke
        raise ExportError(f"the Psych-DS dataset of study {study.name!r} breaks the specification: "
                          + "; ".join(problems))
    return out


def _chance(plan: dict[str, Any], question: str = "emotion") -> float:
    """Accuracy under guessing: 1 / number of options of the emotion question (1/6 without one), as
    `emostudy analyze` uses by default."""
    q = next((q for q in plan.get("questions", []) if q.get("id") == question), None)
    n = len(q.get("options", [])) if q else 0
    return 1 / n if n else 1 / 6
