"""Study plan: the frozen JSON compiled from a spec + a stimulus set + a seed (docs/contracts.md, section 3).

Same inputs, same bytes: the randomness is ``stimuli.rng.StableRng``, the JSON is written with sorted keys
and fixed separators, and nothing in it depends on the time, the machine or the paths. The server imports
a plan; the analysis reads it. ``load_plan`` validates a plan file and, given the manifest, checks that the
plan was made from it.

Participant-visible text (``participant_texts``: the participant title, intro and instructions, the study
name in the link, every question id, prompt, option value and label) is linted when a plan is compiled
(and again when the server imports it): a source label of the set or a word that names the design
(``DESIGN_WORDS``: repeats, consistency, conditions, mismatched or paired emotions...) is refused with
the field and the word (``participant_text_problems``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stimuli.demographics import check_plan_demographics
from stimuli.designs import DESIGN_KINDS, ORDERS, build_design, stimulus_emotion
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError, PlanError, SpecError
from stimuli.factors import FactorDesign
from stimuli.manifest import Manifest, atomic_write_bytes
from stimuli.norming import plan_questions
from stimuli.spec import (
    AUDIO_CHECK_KINDS,
    BONUS_RULES,
    BONUS_TRUTHS,
    LANGUAGES,
    MEASURES,
    QUESTION_TYPES,
    RULE_KINDS,
    Spec,
)
from stimuli.trial_list import TrialListDesign

PLAN_SCHEMA_VERSION = 1


def compile_plan(spec: Spec, manifest: Manifest, seed: int, *, exclude_flagged: bool = False) -> dict[str, Any]:
    """Build the plan (a JSON-ready dict). Raises ``DesignError`` when the set cannot fill the design.

    ``exclude_flagged`` leaves out the clips that `emostudy check` flagged; the plan's notes say how many
    and why."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DesignError(f"seed {seed!r} must be a non-negative integer")
    stimuli, excluded_notes = manifest.stimuli, []
    if exclude_flagged:
        stimuli, excluded_notes = _without_flagged(manifest)
    try:
        result = build_design(spec.design, stimuli, seed, spec.examples)
    except DesignError as exc:
        if not exclude_flagged:
            raise
        raise DesignError(f"{exc} ({'; '.join(excluded_notes)})") from None
    questions = spec.questions
    if spec.design.kind == "norming":  # the emotion question is cut to the set's emotions (stimuli/norming.py)
        questions = plan_questions(spec.design, questions, stimuli)  # type: ignore[arg-type]
    if isinstance(spec.design, (FactorDesign, TrialListDesign)):
        design = {"kind": spec.design.kind, **spec.design.as_plan()}
    else:
        design = {"kind": spec.study.task, **_plain(dataclasses.asdict(spec.design))}
    design["examples"] = _plain(dataclasses.asdict(spec.examples))
    bonus = spec.payment.bonus
    plan = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "study": {
            "name": spec.study.name,
            "title": spec.study.title,
            "task": spec.study.task,
            "description": spec.study.description,
            "exclude_studies": list(spec.study.exclude_studies),
            # the time zone only when not UTC, so plans of other specs keep their bytes
            **({"timezone": spec.study.timezone} if spec.study.timezone != "UTC" else {}),
            # authors, license, ... only when the spec has them, so plans of other specs keep their bytes.
            **({"dataset": spec.study.dataset_metadata()} if spec.study.dataset_metadata() else {}),
            # [recruitment] only when the spec has one, so plans of other specs keep their bytes.
            **({"recruitment": spec.recruitment.as_plan()} if spec.recruitment != type(spec.recruitment)() else {}),
        },
        "participant": {
            "title": spec.participant.title,
            "intro": spec.participant.intro,
            "instructions": spec.participant.instructions,
            "allow_words": list(spec.participant.allow_words),
            **_participant_extras(spec),
        },
        "design": design,
        "questions": [
            {"id": q.id, "type": q.type, "prompt": q.prompt, "required": q.required,
             "options": [{"value": o.value, "label": o.label, "score": _num(o.score), "exclusive": o.exclusive}
                         for o in q.options],
             # What the question measures, only when the spec says (plans of older specs keep their bytes).
             **({"measures": q.measures} if q.measures else {}),
             **({"secondary_of": q.secondary_of} if q.secondary_of else {}),
             **({"compare": [list(c) for c in q.compare]} if q.compare else {})}
            for q in questions
        ],
        "consistency": {
            "max_inconsistent": spec.consistency.max_inconsistent,
            "rules": [{"question": r.question, "kind": r.kind, "tolerance": _num(r.tolerance)}
                      for r in spec.consistency.rules],
            "watch_flags": spec.consistency.watch_flags,
        },
        "quota_per_batch": spec.quota_per_batch,
        "payment": {
            "reward_usd": _num(spec.payment.reward_usd),
            "bonus": {"rule": bonus.rule, "question": bonus.question, "truth": bonus.truth,
                      "amount_usd": _num(bonus.amount_usd), "max_usd": _num(bonus.max_usd),
                      "count_repeats": bonus.count_repeats},
        },
        "audio_check": _audio_check(spec),
        **({"demographics": spec.demographics} if spec.demographics else {}),
        "examples": [{"stimulus_id": e.stimulus_id, "emotion": e.emotion, "size_variant": e.size_variant}
                     for e in result.examples],
        "batches": [
            {"batch_id": b.batch_id, "index": b.index,
             "items": [{"position": i.position, "stimulus_id": i.stimulus_id, "repeat_of": i.repeat_of}
                       for i in b.items]}
            for b in result.batches
        ],
        "notes": [*excluded_notes, *result.notes],
        "seed": seed,
        "spec_sha256": spec.sha256,
        "manifest_sha256": manifest.sha256(),
        "set_name": manifest.name,
    }
    problems = participant_text_problems(plan, manifest)
    if problems:
        raise SpecError(f"{spec.source}: " + "; ".join(problems))
    return plan


def _participant_extras(spec: Spec) -> dict[str, Any]:
    """The [participant] keys added after the first plans: only when the spec sets them, so that the plans
    of other specs keep their bytes."""
    p, out = spec.participant, {}
    if p.consent is not None:
        out["consent"] = {**p.consent.as_plan(), "statements": list(p.consent_statements)}
    if p.debrief is not None:
        out["debrief"] = p.debrief.as_plan()
    if p.language != "en":
        out["language"] = p.language
    if p.video_width is not None:
        out["video_width"] = p.video_width
    return out


def _without_flagged(manifest: Manifest) -> tuple[tuple[Any, ...], list[str]]:
    """The stimuli that `emostudy check` did not flag, and a note on the others (count per reason)."""
    if not any(s.check is not None for s in manifest.stimuli):
        raise DesignError(f"--exclude-flagged: no clip of {manifest.root} has check results; run "
                          f"`emostudy check {manifest.root}` first")
    unchecked = [s.stimulus_id for s in manifest.stimuli if s.check is None]
    if unchecked:
        raise DesignError(f"--exclude-flagged: {len(unchecked)} clip(s) of {manifest.root} were not checked "
                          f"(e.g. {unchecked[0]}); run `emostudy check {manifest.root}` again")
    flagged = [s for s in manifest.stimuli if s.flagged]
    reasons = Counter(r.split(":")[0] for s in flagged for r in (s.check or {}).get("reasons", []) or ["flagged"])
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    kept = tuple(s for s in manifest.stimuli if not s.flagged)
    emptied = emptied_cells(manifest.stimuli, kept)
    note = (f"exclude-flagged: {len(flagged)} of {len(manifest.stimuli)} clips left out as flagged by "
            f"emostudy check" + (f" (reasons: {why})" if flagged else "")
            + (f"; cells (visual x audio emotion) left with no clip: {', '.join(emptied)}" if emptied else
               "; every visual x audio emotion cell keeps at least one clip"))
    return kept, [note]


def emptied_cells(before: Any, after: Any) -> list[str]:
    """The (visual emotion x audio emotion) cells that had clips in ``before`` and have none in ``after``."""
    def cells(rows: Any) -> set[tuple[str, str]]:
        return {(str(s.visual_emotion), str(s.audio_emotion)) for s in rows}

    gone = cells(before) - cells(after)
    return [f"{v} x {a}" for v, a in sorted(gone)]


def _num(x: float | int | None) -> float | int | None:
    """Integral floats as ints (5.0 -> 5) so that the JSON reads as the spec was written."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def plan_to_bytes(plan: dict[str, Any]) -> bytes:
    """Canonical bytes of a plan: sorted keys, indent 1, UTF-8, trailing newline."""
    return (json.dumps(plan, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_plan(plan: dict[str, Any], path: str | os.PathLike) -> Path:
    """Validate, then write atomically."""
    validate_plan(plan, where=str(path))
    atomic_write_bytes(path, plan_to_bytes(plan))
    return Path(path)


# ------------------------------------------------------------------------------------------- lint

# Words that tell a participant about the design, matched as whole words, any case, with these endings.
# Why each is here: what a participant who read it would learn.
DESIGN_WORDS: dict[str, str] = {
    r"repeat(?:s|ed|ing)?|repetitions?|twice|again": "that some videos are shown twice (the consistency check)",
    r"consisten(?:t|cy)|inconsisten(?:t|cy)|attention check|catch trials?": "the consistency check",
    r"conditions?|conditioned|manipulat(?:ed|ion|ions)": "that the videos differ by condition",
    r"sources?|baselines?|ground[ -]truth|proposed": "that the videos come from different sources or methods",
    r"batch(?:es)?": "how the study is split",
    r"(?:mis)?match(?:es|ed|ing)?|(?:in)?congruen(?:t|ce|cy)|pair(?:s|ed|ing)?": "how face and voice emotions are paired",
    r"(?:different|same|two|both) emotions?": "how face and voice emotions are paired",
    r"(?:visual|facial|audio|vocal|voice|speech) emotions?": "that face and voice emotions are set separately",
}


def participant_texts(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (field, text) of a plan that a participant's browser receives, the labels of the trials aside.

    The study name travels in the participant's link (``/s/<name>``). Plans compiled before the
    ``participant`` table existed show ``study.title`` and ``study.instructions``.
    """
    texts = [("study.name", plan["study"]["name"])]
    part = plan.get("participant")
    if part is None:
        texts += [("study.title", plan["study"]["title"]),
                  ("study.instructions", plan["study"].get("instructions", ""))]
    else:
        texts += [(f"participant.{k}", part[k]) for k in ("title", "intro", "instructions")]
        # The consent text is read before the study and linted like the instructions. The debrief is not:
        # it is read after the last answer, and telling the design then is what a debrief is for.
        if part.get("consent"):
            texts.append(("participant.consent", part["consent"]["text"]))
            texts += [(f"participant.consent.statements[{i}]", t)
                      for i, t in enumerate(part["consent"].get("statements", []))]
    for i, q in enumerate(plan["questions"]):
        texts += [(f"questions[{i}].id", q["id"]), (f"questions[{i}].prompt", q["prompt"])]
        for j, o in enumerate(q["options"]):
            texts += [(f"questions[{i}].options[{j}].value", o["value"]),
                      (f"questions[{i}].options[{j}].label", o["label"])]
    return texts


def _word_pattern(alternatives: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


_DESIGN_PATTERNS = [(_word_pattern(p), why) for p, why in DESIGN_WORDS.items()]


def participant_text_problems(plan: dict[str, Any], manifest: Manifest | None = None) -> list[str]:
    """The participant-visible texts of ``plan`` that name a source of the set or the design, one message each
    ("key 'participant.instructions': the word 'repeated' ..."). Source labels: the set's (``manifest``), the
    design's and the examples'. ``participant.allow_words`` are let through."""
    design = plan.get("design", {})
    sources = set(design.get("sources") or ()) | set((design.get("examples") or {}).get("sources") or ())
    if manifest is not None:
        sources |= {s.source for s in manifest.stimuli}
    patterns = list(_DESIGN_PATTERNS)
    if sources:
        patterns.append((_word_pattern("|".join(sorted(map(re.escape, sources), key=len, reverse=True))),
                         "the source of a video (a label of the set)"))
    allowed = {w.lower() for w in (plan.get("participant") or {}).get("allow_words", ())}
    problems = []
    for field, text in participant_texts(plan):
        for pattern, why in patterns:
            hit = next((m for m in pattern.finditer(text) if m.group(0).lower() not in allowed), None)
            if hit is not None:
                around = text[max(0, hit.start() - 30):hit.end() + 30].replace("\n", " ")
                problems.append(f"key '{field}': the word {hit.group(0)!r} (\"...{around}...\") tells participants "
                                f"{why}; rephrase it, or list it in [participant] allow_words if it is harmless here")
                break
    return problems


# What a text says about how the videos were made. A set made only by a generator (no "recording" backend)
# contradicts a text that calls its videos recordings, and a set of recordings one that calls them rendered.
_SAYS_RECORDED = _word_pattern(r"recordings?|recorded|real (?:people|persons?|actors?|speakers?)|filmed|"
                               r"actors? (?:were|was) filmed|aufnahmen?|aufgenommen|grabaci(?:o|ó)n(?:es)?|grabad[oa]s?")
_SAYS_SYNTHETIC = _word_pattern(r"(?:artificial intelligence|AI)|rendered|synthesi[sz]ed|synthetic|computer[- ]"
                                r"(?:generated|program|made)|generated|deepfakes?|k(?:ü|ue)nstliche(?:r|n)? "
                                r"intelligenz|KI|generiert|inteligencia artificial|IA|generad[oa]s?|sintetizad[oa]s?")


def disclosure_warnings(plan: dict[str, Any], manifest: Manifest) -> list[str]:
    """Warnings (not errors) when what participants are told about the videos contradicts the set: a text that
    says "recordings" of a set made only by generators, or "rendered by AI" of a set of recordings only.

    The sentence is the researcher's (the platform adds none); a mixed set may say both."""
    backends = {s.provenance.backend for s in manifest.stimuli}
    if not backends or "unknown" in backends:
        return []  # a set that does not say how its clips were made: nothing to hold the text against
    all_recorded, none_recorded = backends == {"recording"}, "recording" not in backends
    part = plan.get("participant") or {}
    texts = [(f"participant.{k}", part.get(k) or "") for k in ("intro", "instructions")]
    texts += [(f"participant.{k}", (part.get(k) or {}).get("text", "")) for k in ("consent", "debrief")]
    warnings = []
    for field, text in texts:
        if none_recorded and (hit := _SAYS_RECORDED.search(text)):
            warnings.append(f"key '{field}' says {hit.group(0)!r}, but every clip of the set was made by a "
                            f"generator ({', '.join(sorted(backends))}), none is a recording: tell participants "
                            f"what they will see")
        elif all_recorded and (hit := _SAYS_SYNTHETIC.search(text)):
            warnings.append(f"key '{field}' says {hit.group(0)!r}, but every clip of the set is a recording: "
                            f"tell participants what they will see")
    return warnings


# ------------------------------------------------------------------------------------------ loading

_TOP = {"schema_version": int, "study": dict, "design": dict, "questions": list, "consistency": dict,
        "quota_per_batch": int, "payment": dict, "audio_check": dict, "examples": list, "batches": list,
        "notes": list, "seed": int, "spec_sha256": str, "manifest_sha256": str, "set_name": str}
# Added after the first plans were written: optional, so that those plans still load.
_OPTIONAL = {"participant": dict, "demographics": dict}


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str, path: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise PlanError(f"{where}: key '{path}{key}' is missing")
    v = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
        raise PlanError(f"{where}: key '{path}{key}' is {v!r}, expected {' or '.join(k.__name__ for k in kinds)}")
    return v


def validate_plan(plan: Any, where: str = "plan", manifest: Manifest | None = None) -> dict[str, Any]:
    """Check a plan's structure and invariants; with ``manifest``, also that it was made from that set."""
    if not isinstance(plan, dict):
        raise PlanError(f"{where}: a plan is a JSON object")
    for key, kind in _TOP.items():
        _need(plan, key, kind, where, "")
    for key, kind in _OPTIONAL.items():
        if key in plan:
            _need(plan, key, kind, where, "")
    unknown = sorted(set(plan) - set(_TOP) - set(_OPTIONAL))
    if unknown:
        raise PlanError(f"{where}: key '{unknown[0]}' is not part of plan schema {PLAN_SCHEMA_VERSION}")
    if plan["schema_version"] != PLAN_SCHEMA_VERSION:
        raise PlanError(f"{where}: key 'schema_version' is {plan['schema_version']}; this emostudy reads "
                        f"version {PLAN_SCHEMA_VERSION}: compile the plan again with `emostudy plan`")
    study = plan["study"]
    for k in ("name", "title", "task", "description"):
        _need(study, k, str, where, "study.")
    _need(study, "exclude_studies", list, where, "study.")
    if "timezone" in study:
        tz = _need(study, "timezone", str, where, "study.")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PlanError(f"{where}: key 'study.timezone' is {tz!r}, not a time zone name (IANA, e.g. "
                            "\"Europe/Berlin\")") from None
    if study["task"] not in DESIGN_KINDS:
        raise PlanError(f"{where}: key 'study.task' is {study['task']!r}; known: {', '.join(DESIGN_KINDS)}")
    if "participant" in plan:
        for k in ("title", "intro", "instructions"):
            _need(plan["participant"], k, str, where, "participant.")
        words = _need(plan["participant"], "allow_words", list, where, "participant.")
        if not all(isinstance(w, str) for w in words):
            raise PlanError(f"{where}: key 'participant.allow_words' must be a list of strings")
        _check_participant_extras(plan["participant"], where)
    else:
        _need(study, "instructions", str, where, "study.")  # a plan from before the participant table
    if "demographics" in plan:
        check_plan_demographics(plan["demographics"], where)
    order = plan["design"].get("order", "per-batch")
    if order not in ORDERS:
        raise PlanError(f"{where}: key 'design.order' is {order!r}; known: {', '.join(ORDERS)}")
    if order == "per-participant":
        gap = _need(plan["design"], "min_repeat_gap", int, where, "design.")
        if gap < 1:
            raise PlanError(f"{where}: key 'design.min_repeat_gap' must be >= 1")
    # Questions.
    qids: dict[str, dict[str, Any]] = {}
    for i, q in enumerate(plan["questions"]):
        p = f"questions[{i}]."
        qid = _need(q, "id", str, where, p)
        if qid in qids:
            raise PlanError(f"{where}: key '{p}id': {qid!r} is used twice")
        if _need(q, "type", str, where, p) not in QUESTION_TYPES:
            raise PlanError(f"{where}: key '{p}type' is {q['type']!r}; known: {', '.join(QUESTION_TYPES)}")
        _need(q, "prompt", str, where, p)
        _need(q, "required", bool, where, p)
        if "measures" in q and q["measures"] not in MEASURES:
            raise PlanError(f"{where}: key '{p}measures' is {q['measures']!r}; known: {', '.join(MEASURES)}")
        if "secondary_of" in q and q["secondary_of"] not in qids:
            raise PlanError(f"{where}: key '{p}secondary_of' is {q['secondary_of']!r}: not an earlier question id")
        opts = _need(q, "options", list, where, p)
        for j, o in enumerate(opts):
            op = f"{p}options[{j}]."
            _need(o, "value", str, where, op)
            _need(o, "label", str, where, op)
            _need(o, "exclusive", bool, where, op)
            if "score" not in o or (o["score"] is not None and (isinstance(o["score"], bool)
                                                               or not isinstance(o["score"], (int, float)))):
                raise PlanError(f"{where}: key '{op}score' must be a number or null")
        qids[qid] = q
    cons = plan["consistency"]
    mi = _need(cons, "max_inconsistent", int, where, "consistency.")
    if mi < 0:
        raise PlanError(f"{where}: key 'consistency.max_inconsistent' must be >= 0")
    for i, r in enumerate(_need(cons, "rules", list, where, "consistency.")):
        p = f"consistency.rules[{i}]."
        if _need(r, "question", str, where, p) not in qids:
            raise PlanError(f"{where}: key '{p}question': {r['question']!r} is not a question id")
        if _need(r, "kind", str, where, p) not in RULE_KINDS:
            raise PlanError(f"{where}: key '{p}kind' is {r['kind']!r}; known: {', '.join(RULE_KINDS)}")
        _need(r, "tolerance", (int, float), where, p)
    mmf = cons.get("max_media_failures", 2)  # optional (issue 29): clips that may fail before a technical failure
    if type(mmf) is not int or mmf < 0:
        raise PlanError(f"{where}: key 'consistency.max_media_failures' must be a whole number >= 0 (default 2)")
    if cons.get("watch_flags", "inconsistent") not in ("inconsistent", "ignore"):  # absent in older plans
        raise PlanError(f"{where}: key 'consistency.watch_flags' is {cons['watch_flags']!r}; known: inconsistent, ignore")
    pay = plan["payment"]
    _need(pay, "reward_usd", (int, float), where, "payment.")
    bonus = _need(pay, "bonus", dict, where, "payment.")
    if _need(bonus, "rule", str, where, "payment.bonus.") not in BONUS_RULES:
        raise PlanError(f"{where}: key 'payment.bonus.rule' is {bonus['rule']!r}; known: {', '.join(BONUS_RULES)}")
    if bonus["rule"] != "none":
        if _need(bonus, "question", str, where, "payment.bonus.") not in qids:
            raise PlanError(f"{where}: key 'payment.bonus.question': {bonus['question']!r} is not a question id")
        if _need(bonus, "truth", str, where, "payment.bonus.") not in BONUS_TRUTHS:
            raise PlanError(f"{where}: key 'payment.bonus.truth' is {bonus['truth']!r}; "
                            f"known: {', '.join(BONUS_TRUTHS)}")
        _need(bonus, "amount_usd", (int, float), where, "payment.bonus.")
    _need(plan["audio_check"], "enabled", bool, where, "audio_check.")
    _check_audio_check(plan["audio_check"], where)
    if plan["quota_per_batch"] < 1:
        raise PlanError(f"{where}: key 'quota_per_batch' must be >= 1")
    # Examples and batches.
    ids: set[str] = set()
    for i, e in enumerate(plan["examples"]):
        p = f"examples[{i}]."
        ids.add(_need(e, "stimulus_id", str, where, p))
        if _need(e, "emotion", str, where, p) not in EMOTIONS:
            raise PlanError(f"{where}: key '{p}emotion' is {e['emotion']!r}; known: {', '.join(EMOTIONS)}")
        _need(e, "size_variant", (str, type(None)), where, p)
    if not plan["batches"]:
        raise PlanError(f"{where}: key 'batches' is empty; a plan needs at least one batch")
    seen_batches: set[str] = set()
    for bi, b in enumerate(plan["batches"]):
        p = f"batches[{bi}]."
        bid = _need(b, "batch_id", str, where, p)
        if bid in seen_batches:
            raise PlanError(f"{where}: key '{p}batch_id': {bid!r} is used twice")
        seen_batches.add(bid)
        if _need(b, "index", int, where, p) != bi:
            raise PlanError(f"{where}: key '{p}index' is {b['index']}, expected {bi} (batches in index order)")
        items = _need(b, "items", list, where, p)
        if not items:
            raise PlanError(f"{where}: key '{p}items' is empty")
        shown: dict[str, int] = {}
        for ii, it in enumerate(items):
            ip = f"{p}items[{ii}]."
            if _need(it, "position", int, where, ip) != ii:
                raise PlanError(f"{where}: key '{ip}position' is {it['position']}, expected {ii}")
            sid = _need(it, "stimulus_id", str, where, ip)
            ids.add(sid)
            rep = _need(it, "repeat_of", (int, type(None)), where, ip)
            if rep is None:
                if sid in shown:
                    raise PlanError(f"{where}: key '{ip}stimulus_id': {sid!r} is already shown at position "
                                    f"{shown[sid]} of this batch; a second showing must be a repeat (repeat_of)")
                shown[sid] = ii
            elif rep >= ii or items[rep].get("stimulus_id") != sid or items[rep].get("repeat_of") is not None:
                raise PlanError(f"{where}: key '{ip}repeat_of' is {rep}: it must be the earlier position of the "
                                f"original showing of {sid!r} in this batch")
    if manifest is not None:
        if plan["manifest_sha256"] != manifest.sha256():
            raise PlanError(f"{where}: key 'manifest_sha256' does not match the manifest of {manifest.root} "
                            "(the set changed after the plan was compiled): compile the plan again")
        absent = sorted(i for i in ids if i not in manifest)
        if absent:
            raise PlanError(f"{where}: stimulus ids not in the manifest of {manifest.root}: "
                            f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
    return plan


def load_plan(path: str | os.PathLike, manifest: Manifest | None = None) -> dict[str, Any]:
    """Read and validate a plan file; with ``manifest``, check it was compiled from that set."""
    p = Path(path)
    if not p.is_file():
        raise PlanError(f"{p}: no plan here; compile one with `emostudy plan`")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PlanError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return validate_plan(data, where=str(p), manifest=manifest)


# ------------------------------------------------------------------------------------------ summary

@dataclass(frozen=True)
class BatchSummary:
    batch_id: str
    n_items: int
    n_repeats: int
    by_source: dict[str, int]  # original showings per source
    repeats_by_source: dict[str, int]


@dataclass(frozen=True)
class PlanSummary:
    """Counts for people (the CLI tables) and tests. Emotion and pair counts are of original showings."""

    batches: tuple[BatchSummary, ...]
    by_source_emotion: dict[str, dict[str, int]]  # source -> emotion -> count
    repeats_by_source: dict[str, int]
    pairs: dict[tuple[str, str], int]  # (visual, audio) -> count
    n_examples: int


def summarize_plan(plan: dict[str, Any], manifest: Manifest) -> PlanSummary:
    rows = []
    by_se: dict[str, Counter[str]] = {}
    reps: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for b in plan["batches"]:
        src: Counter[str] = Counter()
        brep: Counter[str] = Counter()
        for it in b["items"]:
            s = manifest[it["stimulus_id"]]
            if it["repeat_of"] is not None:
                brep[s.source] += 1
                continue
            src[s.source] += 1
            by_se.setdefault(s.source, Counter())[stimulus_emotion(s) or "-"] += 1
            if s.visual_emotion and s.audio_emotion:
                pairs[(s.visual_emotion, s.audio_emotion)] += 1
        reps.update(brep)
        rows.append(BatchSummary(batch_id=b["batch_id"], n_items=len(b["items"]), n_repeats=sum(brep.values()),
                                 by_source=dict(src), repeats_by_source=dict(brep)))
    return PlanSummary(batches=tuple(rows), by_source_emotion={k: dict(v) for k, v in by_se.items()},
                       repeats_by_source=dict(reps), pairs=dict(pairs), n_examples=len(plan["examples"]))


__all__ = ["PLAN_SCHEMA_VERSION", "compile_plan", "plan_to_bytes", "write_plan", "validate_plan", "load_plan",
           "summarize_plan", "PlanSummary", "BatchSummary", "participant_texts", "participant_text_problems",
           "disclosure_warnings",
           "DESIGN_WORDS"]


def _check_participant_extras(part: dict[str, Any], where: str) -> None:
    for key in ("consent", "debrief"):
        if key not in part:
            continue
        doc = _need(part, key, dict, where, "participant.")
        text = _need(doc, "text", str, where, f"participant.{key}.")
        digest = _need(doc, "sha256", str, where, f"participant.{key}.")
        _need(doc, "file", str, where, f"participant.{key}.")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
            raise PlanError(f"{where}: key 'participant.{key}.text' does not match its sha256: the {key} text was "
                            f"changed after the plan was compiled; compile the plan again with `emostudy plan`")
    if "consent" in part:
        st = _need(part["consent"], "statements", list, where, "participant.consent.")
        if not all(isinstance(t, str) and t.strip() for t in st):
            raise PlanError(f"{where}: key 'participant.consent.statements' must be a list of non-empty strings")
    if "language" in part and part["language"] not in LANGUAGES:
        raise PlanError(f"{where}: key 'participant.language' is {part['language']!r}; known: {', '.join(LANGUAGES)}")
    if "video_width" in part:
        w = _need(part, "video_width", int, where, "participant.")
        if not 64 <= w <= 1920:
            raise PlanError(f"{where}: key 'participant.video_width' is {w}; expected 64..1920")
    unknown = sorted(set(part) - {"title", "intro", "instructions", "allow_words", "consent", "debrief",
                                  "language", "video_width"})
    if unknown:
        raise PlanError(f"{where}: key 'participant.{unknown[0]}' is not part of plan schema {PLAN_SCHEMA_VERSION}")


def _audio_check(spec: Spec) -> dict[str, Any]:
    """The plan's ``audio_check``: ``{"enabled"}`` for the word check (as in plans before headphone screens,
    so their bytes do not change), plus kind, trials, pass_at and attempts for a screen."""
    ac = spec.listening
    if not ac.screen:
        return {"enabled": spec.audio_check}
    return {"enabled": True, "kind": ac.kind, "trials": ac.trials, "pass_at": ac.pass_at, "attempts": ac.attempts}


def _check_audio_check(ac: dict[str, Any], where: str) -> None:
    kind = ac.get("kind", "words")
    if kind not in AUDIO_CHECK_KINDS:
        raise PlanError(f"{where}: key 'audio_check.kind' is {kind!r}; known: {', '.join(AUDIO_CHECK_KINDS)}")
    if kind == "words":
        return
    for key in ("trials", "pass_at", "attempts"):
        if type(ac.get(key)) is not int or ac[key] < 1:
            raise PlanError(f"{where}: key 'audio_check.{key}' must be a whole number >= 1")
    if ac["pass_at"] > ac["trials"]:
        raise PlanError(f"{where}: key 'audio_check.pass_at' ({ac['pass_at']}) is more than trials ({ac['trials']})")
