"""Read and validate an export folder (docs/contracts.md section 4; docs/analysis.md column by column).

An export folder holds ``answers.csv`` (one row per answer), ``participants.csv`` (one row per
survey/assignment), ``plan.json`` (the study plan the server imported) and ``manifest.json``
(the stimulus set's manifest). Only ``answers.csv`` and ``plan.json`` are required; without
``participants.csv`` the server's verdicts are taken from the ``verdict`` column of the answers.

Every CSV is read with ``keep_default_na=False``: the aspect answer ``none`` (or ``None``) is an
answer, never a missing value. The only missing value is the empty string.

Every error names the file, the 1-based data row (and its line in the file) and the column, and says
how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.errors import ExportFormatError
from stimuli.emotions import EMOTIONS

ANSWER_COLUMNS: tuple[str, ...] = (
    "answer_id", "study", "task", "batch_id", "participant", "assignment", "position", "is_repeat",
    "repeat_of", "stimulus_id", "source", "visual_emotion", "audio_emotion", "identity", "sentence",
    "intensity", "size_variant", "question", "answer", "score", "rt_ms", "played_fraction",
    "answered_at", "verdict", "watch_flag", "media_requested_at", "media_bytes_served", "watched", "paced",
)
# Columns without which no analysis can run; the others are filled with "" when absent (answers
# collected elsewhere need not have rt_ms, answered_at...).
REQUIRED_ANSWER_COLUMNS: tuple[str, ...] = (
    "participant", "assignment", "batch_id", "position", "is_repeat", "stimulus_id", "source",
    "visual_emotion", "audio_emotion", "question", "answer",
)
PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant", "assignment", "batch_id", "platform", "status", "allocated_at", "started_at",
    "completed_at", "verdict", "n_inconsistent", "n_repeat_answers", "audio_check_passed", "n_answers",
    "n_watch_flags", "n_media_failed", "media_failed_positions",
    "screen_kind", "screen_calibrated", "screen_passed", "screen_n_correct", "screen_attempts",
)
REQUIRED_PARTICIPANT_COLUMNS: tuple[str, ...] = ("participant", "assignment", "batch_id", "verdict")
VERDICTS: tuple[str, ...] = ("valid", "rejected", "incomplete", "technical_failure")
WATCH_FLAGS: tuple[str, ...] = ("never_fetched", "too_few_bytes", "too_fast", "unpaced")
TASKS: tuple[str, ...] = ("emotion-realness", "av-mismatch", "norming", "factorial")  # factorial: a design of one's own


@dataclass
class Export:
    """A validated export. ``answers`` has the columns of :data:`ANSWER_COLUMNS` with ``position``,
    ``is_repeat`` as int, ``repeat_of`` as nullable Int64, ``score``/``rt_ms``/``played_fraction`` as
    float (NaN when empty) and every other column as str ("" when empty)."""

    path: Path
    answers: pd.DataFrame
    participants: pd.DataFrame | None
    plan: dict[str, Any]
    manifest: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.plan.get("study", {}).get("task", ""))

    def question(self, question_id: str) -> dict[str, Any] | None:
        for q in self.plan.get("questions", []):
            if q.get("id") == question_id:
                return q
        return None


def _fail(file: Path, row_index: int | None, column: str | None, message: str) -> ExportFormatError:
    where = str(file)
    if row_index is not None:
        # row_index is 0-based in the DataFrame; data row 1 is line 2 of the file (after the header).
        where += f" row {row_index + 1} (line {row_index + 2})"
    if column is not None:
        where += f", column {column!r}"
    return ExportFormatError(f"{where}: {message}")


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV as strings, with no value turned into NaN (``keep_default_na=False``)."""
    if not path.is_file():
        raise ExportFormatError(f"{path}: file not found; an export folder holds answers.csv, participants.csv, "
                                "plan.json and manifest.json (`emostudy export STUDY --out DIR`)")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ExportFormatError(f"{path}: not a readable UTF-8 CSV ({exc})") from None
    except pd.errors.EmptyDataError:
        raise ExportFormatError(f"{path}: the file is empty; it needs at least a header line") from None


def _numeric(df: pd.DataFrame, file: Path, column: str, *, integer: bool, allow_empty: bool,
             lo: float | None = None, hi: float | None = None) -> pd.Series:
    raw = df[column].astype(str)
    empty = raw == ""
    values = pd.to_numeric(raw.where(~empty, None), errors="coerce")
    bad = (~empty) & values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(file, i, column, f"{raw.iloc[i]!r} is not a number")
    if not allow_empty and empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise _fail(file, i, column, "empty; this column needs a value in every row")
    v = values.to_numpy(dtype=float)
    if integer:
        frac = (~np.isnan(v)) & (v != np.round(v))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise _fail(file, i, column, f"{raw.iloc[i]!r} is not a whole number")
    for bound, test, word in ((lo, lambda a, b: a < b, "below"), (hi, lambda a, b: a > b, "above")):
        if bound is not None:
            out = (~np.isnan(v)) & test(v, bound)
            if out.any():
                i = int(np.flatnonzero(out)[0])
                raise _fail(file, i, column, f"{raw.iloc[i]!r} is {word} the allowed {bound}")
    return pd.Series(v, index=df.index)


def _check_choice(df: pd.DataFrame, file: Path, column: str, allowed: tuple[str, ...], *,
                  allow_empty: bool, fix: str) -> None:
    col = df[column]
    ok = col.isin(allowed) | ((col == "") if allow_empty else False)
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise _fail(file, i, column, f"{col.iloc[i]!r} is not one of {', '.join(allowed)}; {fix}")


def validate_answers(df: pd.DataFrame, file: Path = Path("answers.csv")) -> pd.DataFrame:
    """Check and type the answers table (see the module docstring); returns a new DataFrame."""
    missing = [c for c in REQUIRED_ANSWER_COLUMNS if c not in df.columns]
    if missing:
        raise ExportFormatError(f"{file}: missing column(s) {', '.join(missing)}; the columns are documented "
                                "in docs/analysis.md (export format, answers.csv)")
    df = df.copy()
    for c in ANSWER_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    for c in ("participant", "assignment", "batch_id", "stimulus_id", "source", "question"):
        empty = df[c] == ""
        if empty.any():
            raise _fail(file, int(np.flatnonzero(empty.to_numpy())[0]), c, "empty; every answer needs it")
    if (df["answer_id"] != "").any():
        # One answer id per answered item, repeated on that item's question rows (docs/contracts.md).
        dup = df.duplicated(["answer_id", "question"]) & (df["answer_id"] != "")
        if dup.any():
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise _fail(file, i, "answer_id", f"{df['answer_id'].iloc[i]!r} appears twice for the same question; "
                        "an answer id names one item's answers")
    key = df.duplicated(["assignment", "position", "question"])
    if key.any():
        i = int(np.flatnonzero(key.to_numpy())[0])
        raise _fail(file, i, "question", f"a second answer of assignment {df['assignment'].iloc[i]!r} to question "
                    f"{df['question'].iloc[i]!r} at position {df['position'].iloc[i]}; keep one answer per "
                    "(assignment, position, question)")
    df["position"] = _numeric(df, file, "position", integer=True, allow_empty=False, lo=0).astype(int)
    rep = _numeric(df, file, "is_repeat", integer=True, allow_empty=False, lo=0, hi=1)
    df["is_repeat"] = rep.astype(int)
    rof = _numeric(df, file, "repeat_of", integer=True, allow_empty=True, lo=0)
    bad = (df["is_repeat"] == 1) & rof.isna()
    if bad.any():
        raise _fail(file, int(np.flatnonzero(bad.to_numpy())[0]), "repeat_of",
                    "empty for a repeat (is_repeat=1); give the position of the original item")
    df["repeat_of"] = rof.astype("Int64")
    df["score"] = _numeric(df, file, "score", integer=False, allow_empty=True)
    df["rt_ms"] = _numeric(df, file, "rt_ms", integer=False, allow_empty=True, lo=0)
    df["played_fraction"] = _numeric(df, file, "played_fraction", integer=False, allow_empty=True, lo=0, hi=1)
    for c in ("visual_emotion", "audio_emotion"):
        _check_choice(df, file, c, EMOTIONS, allow_empty=True,
                      fix="use the canonical emotion names (stimuli.emotions.EMOTIONS)")
    _check_choice(df, file, "verdict", VERDICTS, allow_empty=True, fix="the server writes valid/rejected/incomplete")
    _check_choice(df, file, "task", TASKS, allow_empty=True, fix="the plan's study.task")
    _check_choice(df, file, "watch_flag", WATCH_FLAGS, allow_empty=True,
                  fix="the server writes never_fetched or too_fast (empty: clear)")
    return df.reset_index(drop=True)


def validate_participants(df: pd.DataFrame, file: Path = Path("participants.csv")) -> pd.DataFrame:
    missing = [c for c in REQUIRED_PARTICIPANT_COLUMNS if c not in df.columns]
    if missing:
        raise ExportFormatError(f"{file}: missing column(s) {', '.join(missing)}; see docs/analysis.md")
    df = df.copy()
    for c in PARTICIPANT_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    dup = df["assignment"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail(file, i, "assignment", f"{df['assignment'].iloc[i]!r} appears twice; one row per assignment")
    _check_choice(df, file, "verdict", VERDICTS + ("pending",), allow_empty=True,
                  fix="the server writes valid/rejected/incomplete")
    for c in ("n_inconsistent", "n_repeat_answers", "n_answers", "n_watch_flags", "n_media_failed"):
        df[c] = _numeric(df, file, c, integer=True, allow_empty=True, lo=0)
    bad = ~df["media_failed_positions"].astype(str).str.fullmatch(r"(\d+(;\d+)*)?")
    if bad.any():
        raise _fail(file, int(np.flatnonzero(bad.to_numpy())[0]), "media_failed_positions",
                    "must be item positions joined with ';' (e.g. 3;7), or empty")
    return df.reset_index(drop=True)


def validate_plan(plan: Any, file: Path = Path("plan.json")) -> dict[str, Any]:
    """Check the plan fields the analysis uses: questions, consistency rules, batches."""
    if not isinstance(plan, dict):
        raise ExportFormatError(f"{file}: expected a JSON object (a study plan, docs/contracts.md section 3)")
    for key, kind in (("questions", list), ("consistency", dict), ("batches", list)):
        if not isinstance(plan.get(key), kind):
            raise ExportFormatError(f"{file}: field {key!r} is missing or not a {kind.__name__}; "
                                    "export the plan the server imported")
    qids = set()
    for i, q in enumerate(plan["questions"]):
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or q.get("type") not in ("single", "multi", "scale"):
            raise ExportFormatError(f"{file}: questions[{i}] needs an 'id' and a 'type' of single/multi/scale")
        if not isinstance(q.get("options", []), list):
            raise ExportFormatError(f"{file}: questions[{i}] ({q['id']}): 'options' must be a list")
        qids.add(q["id"])
    cons = plan["consistency"]
    if not isinstance(cons.get("max_inconsistent"), int) or isinstance(cons.get("max_inconsistent"), bool):
        raise ExportFormatError(f"{file}: consistency.max_inconsistent must be an integer")
    for i, r in enumerate(cons.get("rules", [])):
        if not isinstance(r, dict) or r.get("kind") not in ("equal", "max_abs_diff", "max_set_diff"):
            raise ExportFormatError(f"{file}: consistency.rules[{i}].kind must be equal, max_abs_diff or max_set_diff")
        if r.get("question") not in qids:
            raise ExportFormatError(f"{file}: consistency.rules[{i}].question {r.get('question')!r} is not a question id "
                                    f"({', '.join(sorted(qids))})")
        if not isinstance(r.get("tolerance", 0), (int, float)):
            raise ExportFormatError(f"{file}: consistency.rules[{i}].tolerance must be a number")
    for i, b in enumerate(plan["batches"]):
        if not isinstance(b, dict) or not isinstance(b.get("batch_id"), str) or not isinstance(b.get("items"), list):
            raise ExportFormatError(f"{file}: batches[{i}] needs a 'batch_id' and an 'items' list")
    return plan


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def check_labels_against_manifest(answers: pd.DataFrame, manifest: dict[str, Any], file: Path) -> None:
    """Each answer's stimulus labels must be the manifest's (the export copies them from it)."""
    rows = manifest.get("stimuli")
    if not isinstance(rows, list):
        raise ExportFormatError(f"{file}: field 'stimuli' must be a list of rows")
    table = {}
    for r in rows:
        if isinstance(r, dict) and "stimulus_id" in r:
            table[r["stimulus_id"]] = r
    ids = answers["stimulus_id"]
    unknown = ~ids.isin(table.keys())
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise _fail(file.parent / "answers.csv", i, "stimulus_id",
                    f"{ids.iloc[i]!r} is not in {file}; export answers and manifest of the same study")
    for col in ("source", "visual_emotion", "audio_emotion"):
        expected = ids.map({sid: (row.get(col) or "") for sid, row in table.items()})
        bad = answers[col] != expected
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(file.parent / "answers.csv", i, col,
                        f"{answers[col].iloc[i]!r} but {file} says {expected.iloc[i]!r} for stimulus "
                        f"{ids.iloc[i]!r}; the answers and the manifest disagree")


def load_export(path: str | Path) -> Export:
    """Read and validate an export folder.

    Parameters
    ----------
    path : folder holding answers.csv, plan.json and (optionally) participants.csv, manifest.json.

    Returns
    -------
    Export

    Examples
    --------
    >>> export = load_export("study-export")  # doctest: +SKIP
    >>> export.answers.columns[:3].tolist()  # doctest: +SKIP
    ['answer_id', 'study', 'task']
    """
    root = Path(path)
    if not root.is_dir():
        raise ExportFormatError(f"{root}: not a folder; give the folder written by `emostudy export STUDY --out DIR`")
    answers = validate_answers(read_csv(root / "answers.csv"), root / "answers.csv")
    plan = validate_plan(_read_json(root / "plan.json") if (root / "plan.json").is_file()
                         else _missing(root / "plan.json"), root / "plan.json")
    participants = None
    if (root / "participants.csv").is_file():
        participants = validate_participants(read_csv(root / "participants.csv"), root / "participants.csv")
    manifest = None
    warnings: list[str] = []
    if (root / "manifest.json").is_file():
        manifest = _read_json(root / "manifest.json")
        if not isinstance(manifest, dict):
            raise ExportFormatError(f"{root / 'manifest.json'}: expected a JSON object with a 'stimuli' list")
        check_labels_against_manifest(answers, manifest, root / "manifest.json")
    else:
        warnings.append("manifest.json absent: stimulus labels taken from answers.csv unchecked")
    if participants is None:
        warnings.append("participants.csv absent: server verdicts taken from answers.csv")
    task = plan.get("study", {}).get("task") if isinstance(plan.get("study"), dict) else None
    tasks = set(answers["task"]) - {""}
    if task and tasks and tasks != {task}:
        raise ExportFormatError(f"{root / 'answers.csv'}: column 'task' holds {sorted(tasks)} but plan.json says "
                                f"{task!r}; export one study per folder")
    return Export(path=root, answers=answers, participants=participants, plan=plan, manifest=manifest,
                  warnings=warnings)


def _missing(path: Path) -> Any:
    raise ExportFormatError(f"{path}: file not found; the analysis needs the plan the server imported "
                            "(its questions and consistency rules)")
