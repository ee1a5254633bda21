"""Cleaning: from every exported answer to the answers the statistics use, with every count reported.

Steps (each counted in :attr:`Cleaned.counts`):

1. Answer values are checked against the plan's options (a single choice is one option value; a
   multi choice is option values joined by ``;`` in option order, an exclusive option such as ``none``
   alone). Scale answers get the option's score from the plan (an exported ``score`` that disagrees is
   an error). ``none`` is an answer; only the empty string is missing.
2. A survey (one assignment) is *complete* when every required question of every item of its batch has
   a non-empty answer. Surveys listed in participants.csv without any answer are incomplete.
3. Consistency is recomputed from the raw answers with the plan's rules: for each repeat item and each
   question with a rule, the answer to the repeat is compared with the answer to its original
   (``equal``: values differ; ``max_abs_diff``: scores differ by more than the tolerance;
   ``max_set_diff``: the symmetric difference of the selected option sets is larger than the
   tolerance). A pair with a missing side counts as inconsistent. Each answer the server flagged
   (``watch_flag``: its clip never requested, or answered sooner than it lasts) counts as one more
   inconsistent answer unless the plan's ``consistency.watch_flags`` is ``"ignore"``. Items recorded as
   "media failed" (participants.csv ``media_failed_positions``) are not expected; a repeat pair with a
   failed side counts as inconsistent (one per rule); more failures than the plan's
   ``consistency.max_media_failures`` (default 2), or a whole failed pair, make a ``technical_failure``.
   A complete survey is *rejected* when more than ``max_inconsistent`` answers are inconsistent, otherwise
   *valid*; an incomplete survey is *incomplete*. The recomputed verdicts are compared with the
   server's stored ones.
4. Surveys that are not valid (by the recomputed verdict unless ``verdict_source="server"``) are excluded;
   answers to repeat items are excluded from the statistics (they served the consistency check);
   missing answers are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from analysis.errors import AnalysisOptionError, ExportFormatError
from analysis.io import Export

SURVEY_COLUMNS = ("assignment", "participant", "batch_id", "n_expected", "n_answered", "n_missing", "complete",
                  "n_repeat_answers", "n_inconsistent", "server_n_inconsistent", "verdict", "server_verdict",
                  "verdicts_agree")


@dataclass
class Cleaned:
    """Result of :func:`clean`.

    answers: valid surveys, original (non-repeat) items, non-missing answers; the export's columns
    plus ``score`` filled from the plan for scale questions. repeats: answers to repeat items of valid
    surveys (excluded from statistics). surveys: one row per assignment with the columns of
    :data:`SURVEY_COLUMNS`. pairs: one row per (repeat item, rule question) with the verdict of the pair.
    counts: every count of the cleaning (keys documented in docs/analysis.md).
    """

    answers: pd.DataFrame
    repeats: pd.DataFrame
    surveys: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, int]
    plan: Mapping[str, Any] = field(repr=False, default_factory=dict)
    verdict_source: str = "recomputed"


def _row_error(df: pd.DataFrame, mask: pd.Series | np.ndarray, column: str, message: str) -> ExportFormatError:
    i = int(np.flatnonzero(np.asarray(mask))[0])
    row = int(df.index[i])
    return ExportFormatError(f"answers.csv row {row + 1} (line {row + 2}), column {column!r}: "
                             f"{df[column].iloc[i]!r} {message}")


def check_answer_values(answers: pd.DataFrame, plan: Mapping[str, Any]) -> pd.DataFrame:
    """Check every non-empty answer against its question's options; fill ``score`` for scale questions.

    Returns a copy with ``score`` set from the plan (NaN for non-scale questions and missing answers).
    """
    questions = {q["id"]: q for q in plan["questions"]}
    unknown = ~answers["question"].isin(questions.keys())
    if unknown.any():
        raise _row_error(answers, unknown, "question", f"is not a question of the plan ({', '.join(questions)})")
    out = answers.copy()
    score = pd.Series(np.nan, index=out.index)
    for qid, q in questions.items():
        sel = (out["question"] == qid).to_numpy()
        if not sel.any():
            continue
        sub = out.loc[sel, "answer"]
        present = sub != ""
        values = [o["value"] for o in q.get("options", [])]
        if q["type"] in ("single", "scale"):
            bad = present & ~sub.isin(values)
            if bad.any():
                raise _row_error(out.loc[sel], bad, "answer",
                                 f"is not an option of question {qid!r} ({', '.join(values)})")
        else:
            order = {v: i for i, v in enumerate(values)}
            exclusive = {o["value"] for o in q.get("options", []) if o.get("exclusive")}
            for val in pd.unique(sub[present]):
                parts = str(val).split(";")
                why = None
                if any(p not in order for p in parts):
                    why = f"holds a value that is not an option of {qid!r} ({', '.join(values)})"
                elif len(set(parts)) != len(parts) or [order[p] for p in parts] != sorted(order[p] for p in parts):
                    why = "must list distinct options joined by ';' in option order"
                elif len(parts) > 1 and exclusive & set(parts):
                    why = f"combines the exclusive option {sorted(exclusive & set(parts))[0]!r} with others"
                if why:
                    raise _row_error(out.loc[sel], (sub == val), "answer", why)
        if q["type"] == "scale":
            table = {o["value"]: o.get("score") for o in q["options"]}
            if any(v is None for v in table.values()):
                raise ExportFormatError(f"plan.json: scale question {qid!r} has an option without a score")
            s = sub.map(lambda v: table.get(v, np.nan)).astype(float)
            given = out.loc[sel, "score"]
            clash = present & given.notna() & (given != s)
            if clash.any():
                raise _row_error(out.loc[sel], clash, "score",
                                 f"does not match the plan's score of the answer ({qid!r})")
            score.loc[sel] = s.to_numpy()
    out["score"] = score
    return out


def _set_diff(a: str, b: str) -> int:
    sa = set(a.split(";")) if a else set()
    sb = set(b.split(";")) if b else set()
    return len(sa ^ sb)


def consistency_pairs(answers: pd.DataFrame, plan: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (survey, repeat item, rule question): the two answers and whether they are inconsistent.

    Columns: assignment, position, repeat_of, question, kind, tolerance, answer, answer_original,
    score, score_original, inconsistent (bool).
    """
    rules = plan["consistency"].get("rules", [])
    batch_items = {b["batch_id"]: b["items"] for b in plan["batches"]}
    # Expected repeat pairs come from the plan, so an unanswered repeat still counts (as inconsistent).
    expected = []
    for (assignment, batch_id) in answers[["assignment", "batch_id"]].drop_duplicates().itertuples(index=False):
        for it in batch_items[batch_id]:
            if it.get("repeat_of") is None:
                continue
            for r in rules:
                expected.append((assignment, int(it["position"]), int(it["repeat_of"]), r["question"], r["kind"],
                                 float(r.get("tolerance", 0))))
    cols = ["assignment", "position", "repeat_of", "question", "kind", "tolerance"]
    pairs = pd.DataFrame(expected, columns=cols)
    if pairs.empty:
        for c in ("answer", "answer_original"):
            pairs[c] = pd.Series(dtype=str)
        pairs["score"] = pairs["score_original"] = pd.Series(dtype=float)
        pairs["inconsistent"] = pd.Series(dtype=bool)
        return pairs
    val = answers[["assignment", "position", "question", "answer", "score"]]
    pairs = pairs.merge(val, on=["assignment", "position", "question"], how="left")
    pairs = pairs.merge(val.rename(columns={"position": "repeat_of", "answer": "answer_original",
                                            "score": "score_original"}),
                        on=["assignment", "repeat_of", "question"], how="left")
    pairs["answer"] = pairs["answer"].fillna("").astype(str)
    pairs["answer_original"] = pairs["answer_original"].fillna("").astype(str)
    missing = (pairs["answer"] == "") | (pairs["answer_original"] == "")
    bad = np.zeros(len(pairs), dtype=bool)
    kind = pairs["kind"].to_numpy()
    eq = kind == "equal"
    bad[eq] = (pairs["answer"] != pairs["answer_original"]).to_numpy()[eq]
    ab = kind == "max_abs_diff"
    diff = (pairs["score"] - pairs["score_original"]).abs().to_numpy()
    bad[ab] = diff[ab] > pairs["tolerance"].to_numpy()[ab]
    st = kind == "max_set_diff"
    if st.any():
        sd = np.array([_set_diff(a, b) for a, b in zip(pairs["answer"].to_numpy()[st],
                                                        pairs["answer_original"].to_numpy()[st])])
        bad[st] = sd > pairs["tolerance"].to_numpy()[st]
    pairs["inconsistent"] = bad | missing.to_numpy()
    return pairs


def media_failed(participants: pd.DataFrame | None) -> dict[Any, set[int]]:
    """assignment -> positions recorded as "media failed" (participants.csv ``media_failed_positions``)."""
    if participants is None or "media_failed_positions" not in participants:
        return {}
    return {a: {int(p) for p in str(text).split(";")}
            for a, text in zip(participants["assignment"], participants["media_failed_positions"]) if str(text)}


def without_media_failed(pairs: pd.DataFrame, failed: Mapping[Any, set[int]]) -> pd.DataFrame:
    """The repeat pairs neither of whose items is recorded as "media failed"."""
    if not failed or pairs.empty:
        return pairs
    gone = [a in failed and (p in failed[a] or r in failed[a])
            for a, p, r in zip(pairs["assignment"], pairs["position"], pairs["repeat_of"])]
    return pairs[~np.asarray(gone, dtype=bool)].reset_index(drop=True)


TECHNICAL_FAILURE = "technical_failure"


def _technical_failure(items: list[dict[str, Any]], failed: set[int], plan: Mapping[str, Any]) -> bool:
    """More "media failed" items than the plan's ``consistency.max_media_failures`` (default 2), or both of a
    repeat pair: the server ended the survey as a technical failure (issue 29)."""
    if not failed:
        return False
    if len(failed) > int(plan["consistency"].get("max_media_failures", 2)):
        return True
    return any(it.get("repeat_of") is not None and int(it["position"]) in failed and int(it["repeat_of"]) in failed
               for it in items)


def survey_verdicts(answers: pd.DataFrame, plan: Mapping[str, Any], participants: pd.DataFrame | None = None,
                    pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Recompute every survey's verdict (see the module docstring) and put the server's beside it."""
    batch_items = {b["batch_id"]: b["items"] for b in plan["batches"]}
    unknown = ~answers["batch_id"].isin(batch_items.keys())
    if unknown.any():
        raise _row_error(answers, unknown, "batch_id", "is not a batch of plan.json")
    required = [q["id"] for q in plan["questions"] if q.get("required", True)]
    if pairs is None:
        pairs = consistency_pairs(answers, plan)  # a pair with a "media failed" side counts inconsistent
    g = answers.assign(_answered=(answers["answer"] != "").astype(int)).groupby("assignment", sort=True)
    surveys = g.agg(participant=("participant", "first"), batch_id=("batch_id", "first"),
                    n_answered=("_answered", "sum"))
    if participants is not None:
        # Surveys abandoned before the first answer have a participants.csv row and no answers: incomplete.
        extra = participants[~participants["assignment"].isin(surveys.index)]
        bad = ~extra["batch_id"].isin(batch_items.keys())
        if bad.any():
            i = int(extra.index[np.flatnonzero(bad.to_numpy())[0]])
            raise ExportFormatError(f"participants.csv row {i + 1} (line {i + 2}), column 'batch_id': "
                                    f"{extra.loc[i, 'batch_id']!r} is not a batch of plan.json")
        if len(extra):
            add = pd.DataFrame({"participant": extra["participant"].to_numpy(),
                                "batch_id": extra["batch_id"].to_numpy(),
                                "n_answered": 0}, index=pd.Index(extra["assignment"].to_numpy(), name="assignment"))
            surveys = pd.concat([surveys, add]).sort_index()
    failed = media_failed(participants)
    surveys["n_expected"] = [(len(batch_items[b]) - len(failed.get(a, ()))) * len(required)
                             for a, b in zip(surveys.index, surveys["batch_id"])]
    req = answers[answers["question"].isin(required) & (answers["answer"] != "")]
    n_req = req.groupby("assignment").size().reindex(surveys.index, fill_value=0)
    surveys["complete"] = n_req.to_numpy() >= surveys["n_expected"].to_numpy()
    surveys["n_missing"] = (surveys["n_expected"] - n_req).clip(lower=0).astype(int)
    pg = pairs.groupby("assignment")["inconsistent"]
    surveys["n_repeat_answers"] = pg.size().reindex(surveys.index, fill_value=0).astype(int)
    surveys["n_inconsistent"] = pg.sum().reindex(surveys.index, fill_value=0).astype(int)
    if (plan["consistency"].get("watch_flags") or "inconsistent") != "ignore" and "watch_flag" in answers:
        flagged = answers[answers["watch_flag"].fillna("") != ""].drop_duplicates(["assignment", "position"])
        surveys["n_inconsistent"] += flagged.groupby("assignment").size().reindex(surveys.index,
                                                                                  fill_value=0).astype(int)
    max_bad = int(plan["consistency"]["max_inconsistent"])
    surveys["verdict"] = np.where(~surveys["complete"], "incomplete",
                                  np.where(surveys["n_inconsistent"] > max_bad, "rejected", "valid"))
    technical = [_technical_failure(batch_items[b], failed.get(a, set()), plan)
                 for a, b in zip(surveys.index, surveys["batch_id"])]
    surveys.loc[np.asarray(technical, dtype=bool), "verdict"] = TECHNICAL_FAILURE
    if participants is not None:
        server = participants.set_index("assignment")["verdict"]
        surveys["server_verdict"] = surveys.index.map(lambda a: server.get(a, "")).astype(str)
        counted = participants.set_index("assignment")["n_inconsistent"]
        surveys["server_n_inconsistent"] = counted.reindex(surveys.index).astype(float).to_numpy()
    else:
        surveys["server_n_inconsistent"] = np.nan
        server = answers.groupby("assignment")["verdict"].first()
        surveys["server_verdict"] = server.reindex(surveys.index).fillna("").astype(str)
    surveys["verdicts_agree"] = surveys["verdict"] == surveys["server_verdict"]
    surveys = surveys.reset_index()
    return surveys[list(SURVEY_COLUMNS)]


def clean(export: Export | None = None, *, answers: pd.DataFrame | None = None,
          plan: Mapping[str, Any] | None = None, participants: pd.DataFrame | None = None,
          verdict_source: Literal["recomputed", "server"] = "recomputed") -> Cleaned:
    """Apply the cleaning steps of the module docstring.

    Parameters
    ----------
    export : a loaded export (or give ``answers``/``plan``/``participants`` directly, validated as by
        :func:`analysis.io.validate_answers`).
    verdict_source : which verdict excludes surveys: ``"recomputed"`` (default, from the raw answers) or
        ``"server"`` (the stored one).

    Examples
    --------
    >>> cleaned = clean(load_export("study-export"))  # doctest: +SKIP
    >>> cleaned.counts["n_surveys_valid"]  # doctest: +SKIP
    60
    """
    if export is not None:
        answers, plan, participants = export.answers, export.plan, export.participants
    if answers is None or plan is None:
        raise AnalysisOptionError("clean() needs an export, or answers and a plan")
    if verdict_source not in ("recomputed", "server"):
        raise AnalysisOptionError(f"verdict_source {verdict_source!r}: use 'recomputed' or 'server'")
    checked = check_answer_values(answers, plan)
    pairs = consistency_pairs(checked, plan)  # a pair with a "media failed" side counts inconsistent
    surveys = survey_verdicts(checked, plan, participants, pairs)
    col = "verdict" if verdict_source == "recomputed" else "server_verdict"
    valid_assign = set(surveys.loc[surveys[col] == "valid", "assignment"])
    in_valid = checked["assignment"].isin(valid_assign)
    is_rep = checked["is_repeat"] == 1
    missing = checked["answer"] == ""
    kept = checked[in_valid & ~is_rep & ~missing].reset_index(drop=True)
    repeats = checked[in_valid & is_rep & ~missing].reset_index(drop=True)
    valid_participants = set(surveys.loc[surveys[col] == "valid", "participant"])
    counts = {
        "n_answers_total": int(len(checked)),
        "n_surveys_total": int(len(surveys)),
        "n_participants_total": int(surveys["participant"].nunique()),
        "n_surveys_valid": int((surveys[col] == "valid").sum()),
        "n_surveys_rejected": int((surveys[col] == "rejected").sum()),
        "n_surveys_incomplete": int((surveys[col] == "incomplete").sum()),
        "n_surveys_other": int((~surveys[col].isin(["valid", "rejected", "incomplete"])).sum()),
        "n_surveys_recomputed_valid": int((surveys["verdict"] == "valid").sum()),
        "n_surveys_recomputed_rejected": int((surveys["verdict"] == "rejected").sum()),
        "n_surveys_recomputed_incomplete": int((surveys["verdict"] == "incomplete").sum()),
        "n_verdict_disagreements": int((~surveys["verdicts_agree"]).sum()),
        # complete surveys whose server count of inconsistent answers differs from the recomputed one
        "n_inconsistency_count_disagreements": int((surveys["complete"] & surveys["server_n_inconsistent"].notna()
                                                    & (surveys["server_n_inconsistent"]
                                                       != surveys["n_inconsistent"])).sum()),
        "n_participants_valid": int(len(valid_participants)),
        "n_answers_excluded_surveys": int((~in_valid).sum()),
        "n_answers_repeats_excluded": int((in_valid & is_rep).sum()),
        "n_answers_missing_dropped": int((in_valid & ~is_rep & missing).sum()),
        "n_answers_missing_total": int(missing.sum()),
        "n_answers_used": int(len(kept)),
        "n_repeat_pairs": int(len(pairs)),
        "n_repeat_pairs_inconsistent": int(pairs["inconsistent"].sum()) if len(pairs) else 0,
        **listening_counts(participants),
    }
    return Cleaned(answers=kept, repeats=repeats, surveys=surveys, pairs=pairs, counts=counts, plan=plan,
                   verdict_source=verdict_source)


def listening_counts(participants: pd.DataFrame | None) -> dict[str, int]:
    """Participants who left at the listening checks, before any trial (they have no answers, so no survey):
    ``n_participants_screen_failed`` (headphone screen), ``n_participants_audio_check_failed`` (word check
    after a passed or absent screen). Empty without a participants table."""
    if participants is None or not len(participants):
        return {}
    def col(name: str) -> pd.Series:
        return (participants[name].astype(str) if name in participants.columns
                else pd.Series([""] * len(participants), index=participants.index))
    screen, words = col("screen_passed"), col("audio_check_passed")
    return {"n_participants_screen_failed": int((screen == "0").sum()),
            "n_participants_audio_check_failed": int(((words == "0") & (screen != "0")).sum())}


def responses(answers: pd.DataFrame, questions: list[str]) -> pd.DataFrame:
    """One row per response (assignment x item position) with one column per question id.

    Keeps the item columns (participant, batch_id, stimulus_id, source, visual_emotion, audio_emotion,
    identity, sentence); a question not answered for an item holds "".
    """
    keys = ["assignment", "position"]
    items = answers.drop_duplicates(keys)[keys + ["participant", "batch_id", "stimulus_id", "source",
                                                  "visual_emotion", "audio_emotion", "identity", "sentence"]]
    sub = answers[answers["question"].isin(questions)]
    wide = sub.pivot(index=keys, columns="question", values="answer")
    for q in questions:
        if q not in wide.columns:
            wide[q] = ""
    wide = wide[questions].fillna("").reset_index()
    wide.columns.name = None
    return items.merge(wide, on=keys, how="left").fillna({q: "" for q in questions}).reset_index(drop=True)
