"""Study spec: the TOML file a researcher writes (design, questions, consistency, quota, payment).

Ready-made specs: ``stimuli/specs/paper-task1.toml`` and ``paper-task2.toml`` (the paper's two tasks),
``norming.toml`` (a validation study of any set: ``stimuli/norming.py``) and the demo's; ``resolve_spec``
accepts their names. Layout (every key is checked; errors name the file and the key)::

    schema_version = 1
    quota_per_batch = 10                 # valid participants per batch
    [study]    name, title, task ("emotion-realness" | "av-mismatch" | "norming"), description,
               exclude_studies = [names]  # who took one of these studies may not take this one
               timezone = "Europe/Berlin"  # the admin pages show times in it (IANA name; default UTC)
               authors = [names], license, citation, url, funder   # the data set's (Psych-DS export), optional
    [participant] title, intro, instructions, allow_words = [words],
               consent = "consent.md", consent_statements = [..], debrief = "debrief.md" (Markdown files
               beside the spec), language ("en" | "de" | "es"), video_width (CSS pixels)
    [design]   the design by its factors and levels (stimuli.factors: [design.factors], counterbalance,
               clips_per_cell, repeats, order), or the numbers of a paper task's design (stimuli.designs)
    [examples] per_emotion, sources, size_variants, allow_example_reuse
    [[questions]] id, type ("single" | "multi" | "scale"), prompt, required,
                  options = [{value, label, score, exclusive}, ...] or "emotions" or "emotions+none"
                  (or "design-emotions" / "design-emotions+none": the emotions of the design's factors),
                  measures ("perceived_emotion" | "realness" | "intensity" | "valence" | "scale" | "choices"),
                  secondary_of (the id of the perceived-emotion question this one is the second label of),
                  compare = [[a, b], ...] (scale questions: pairwise Wilcoxon tests of two levels of a factor)
    [consistency] max_inconsistent, rules = [{question, kind ("equal" | "max_abs_diff" | "max_set_diff"), tolerance}],
                  watch_flags ("inconsistent" | "ignore")
    [payment]  reward_usd, [payment.bonus] rule ("per_correct" | "none"), question, truth, amount_usd,
               max_usd, count_repeats
    [audio_check] enabled, kind ("words" | "huggins" | "antiphase" | "huggins+words"), trials, pass_at,
               attempts   # listening checks before the trials (docs/running-a-study.md)
    [demographics] (optional) when, items, required, age   # standard items (stimuli.demographics)
    [recruitment] (optional) estimated_minutes, requires_audio, screeners = [{filter_id, selected_values
                  | selected_range}]  # what recruiting platforms are told (Prolific filters, minimum pay)

Researcher and participant: ``[study]`` is the researcher's (``title`` names the study on the admin
pages, ``description`` is a note that is never sent to a participant); everything a participant may
read is in ``[participant]`` (``title`` on the ad, consent page and recruiting post, default the study's
title; ``intro`` on the ad, consent page and as the post's description; ``instructions`` before the
videos) and in the questions. The plan compiler lints all of it (``stimuli.plan.participant_text_problems``).
The platform adds no sentence of its own about the study or its videos: what participants are told about
how the videos were made is the researcher's (``stimuli.plan.disclosure_warnings`` warns when it
contradicts the set). ``consent`` and ``debrief`` name Markdown files beside the spec; the plan stores
their text and sha256, so the server shows exactly what was planned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stimuli.batches import read_order
from stimuli.demographics import read_demographics
from stimuli.designs import DESIGN_KINDS, AvMismatchDesign, EmotionRealnessDesign, ExamplesDesign
from stimuli.emotions import EMOTIONS
from stimuli.errors import SpecError
from stimuli.factors import FactorDesign, read_factor_design
from stimuli.norming import read_design as read_norming_design
from stimuli.trial_list import read_trial_list

SPEC_SCHEMA_VERSION = 1
QUESTION_TYPES = ("single", "multi", "scale")
# What a question measures (``measures``): the analysis chooses its tests from this and the design's factors.
MEASURES = ("perceived_emotion", "realness", "intensity", "valence", "scale", "choices")
_MEASURE_TYPES = {"perceived_emotion": ("single",), "realness": ("scale",), "intensity": ("scale",),
                  "valence": ("scale",), "scale": ("scale",), "choices": ("multi",)}
RULE_KINDS = ("equal", "max_abs_diff", "max_set_diff")
BONUS_RULES = ("per_correct", "none")
# What a correct answer to the bonus question matches: the stimulus' visual emotion, its audio emotion,
# "target" (visual, or audio when the visual emotion is null: a baseline without emotion condition),
# or "either" (visual or audio: Task 2, where they differ on purpose).
BONUS_TRUTHS = ("visual_emotion", "audio_emotion", "target", "either")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SPECS_DIR = Path(__file__).resolve().parent / "specs"  # the ready-made specs (package data)
# The languages whose message catalogues the server ships (study_server/participant/translations).
LANGUAGES = ("en", "de", "es")


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    score: float | None = None
    exclusive: bool = False  # multi-choice: selecting it clears the others ("None")


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    prompt: str
    options: tuple[Option, ...]
    required: bool = True
    measures: str | None = None  # what the answer measures; the analysis chooses its tests from it
    secondary_of: str | None = None  # a second emotion label of that perceived-emotion question
    compare: tuple[tuple[str, str], ...] = ()  # scale: declared pairwise tests (two levels of one factor)

    def option(self, value: str) -> Option:
        for o in self.options:
            if o.value == value:
                return o
        raise KeyError(value)


@dataclass(frozen=True)
class ConsistencyRule:
    question: str
    kind: str
    tolerance: float = 0


WATCH_FLAG_RULES = ("inconsistent", "ignore")


@dataclass(frozen=True)
class Consistency:
    max_inconsistent: int
    rules: tuple[ConsistencyRule, ...]
    # The server's evidence of watching flags an answer given without (or too soon after) fetching its
    # video: "inconsistent" counts each flagged answer as an inconsistent one, "ignore" only records it.
    watch_flags: str = "inconsistent"


@dataclass(frozen=True)
class Bonus:
    rule: str = "none"
    question: str | None = None
    truth: str | None = None
    amount_usd: float = 0.0
    max_usd: float | None = None  # cap on the total bonus; None: no cap
    count_repeats: bool = True


@dataclass(frozen=True)
class Payment:
    reward_usd: float = 1.0
    bonus: Bonus = Bonus()


@dataclass(frozen=True)
class StudyInfo:
    """The researcher's: ``title`` on the admin pages, ``description`` a note never sent to participants."""

    name: str
    title: str
    task: str
    description: str = ""
    exclude_studies: tuple[str, ...] = ()
    timezone: str = "UTC"  # an IANA name; the admin pages show times in it
    # What the Psych-DS export's dataset_description.json recommends (author, license, citation, url, funder);
    # optional: `emostudy plan` names the missing ones.
    authors: tuple[str, ...] = ()
    license: str = ""
    citation: str = ""
    url: str = ""
    funder: str = ""

    def dataset_metadata(self) -> dict[str, Any]:
        """The given ones of authors, license, citation, url, funder (for the plan and the export)."""
        out: dict[str, Any] = {"authors": list(self.authors)} if self.authors else {}
        out.update({k: getattr(self, k) for k in ("license", "citation", "url", "funder") if getattr(self, k)})
        return out

    def missing_dataset_metadata(self) -> list[str]:
        """Which of the keys a Psych-DS dataset should have (authors, license, citation, url) are not given."""
        return [k for k in ("authors", "license", "citation", "url") if not getattr(self, k)]


AUDIO_CHECK_KINDS = ("words", "huggins", "antiphase", "huggins+words")


@dataclass(frozen=True)
class AudioCheck:
    """``[audio_check]``: what the participant's sound is checked with before the trials.

    ``words``: type a spoken word (sound plays). ``huggins`` / ``antiphase``: a volume calibration, then a
    headphone screen of ``trials`` three-interval trials, passed with ``pass_at`` correct, ``attempts``
    blocks allowed (Milne et al. 2021; Woods et al. 2017). ``huggins+words``: both, the screen first."""

    enabled: bool = False
    kind: str = "words"
    trials: int = 6
    pass_at: int = 5
    attempts: int = 1

    @property
    def screen(self) -> bool:
        return self.enabled and self.kind != "words"


@dataclass(frozen=True)
class Recruitment:
    """``[recruitment]``: estimated minutes (Prolific's minimum-pay check and listing), whether participants
    need audio (also implied by ``[audio_check] enabled``), Prolific screener filters (passed as written)."""

    estimated_minutes: int | None = None
    requires_audio: bool = False
    screeners: tuple[dict[str, Any], ...] = ()

    def as_plan(self) -> dict[str, Any]:
        return {"estimated_minutes": self.estimated_minutes, "requires_audio": self.requires_audio,
                "screeners": [dict(s) for s in self.screeners]}


@dataclass(frozen=True)
class ParticipantFile:
    """A Markdown text the researcher wrote (consent, debrief), read from a file beside the spec."""

    file: str  # as the spec names it
    text: str
    sha256: str  # of the file's bytes

    def as_plan(self) -> dict[str, str]:
        return {"file": self.file, "text": self.text, "sha256": self.sha256}


@dataclass(frozen=True)
class ParticipantText:
    """What a participant reads besides the questions (``[participant]``); linted by the plan compiler.
    ``allow_words``: words the lint lets through here (a harmless "still" in "sit still")."""

    title: str
    intro: str = ""
    instructions: str = ""
    allow_words: tuple[str, ...] = ()
    consent: ParticipantFile | None = None  # shown before the study; the participant agrees or declines
    consent_statements: tuple[str, ...] = ()  # each a checkbox the participant must tick to agree
    debrief: ParticipantFile | None = None  # shown after the last answer, with the completion code
    language: str = "en"  # the platform's own words (buttons, progress, errors) in this language
    video_width: int | None = None  # CSS pixels; None: the clip's own width (never more than 2x it)


@dataclass(frozen=True)
class Spec:
    study: StudyInfo
    participant: ParticipantText
    design: EmotionRealnessDesign | AvMismatchDesign | FactorDesign
    examples: ExamplesDesign
    questions: tuple[Question, ...]
    consistency: Consistency
    quota_per_batch: int
    payment: Payment
    audio_check: bool
    source: str  # the file it came from (or "<string>")
    sha256: str  # of the TOML bytes
    listening: AudioCheck = AudioCheck()  # the [audio_check] table in full (``audio_check`` = its ``enabled``)
    recruitment: Recruitment = Recruitment()
    demographics: dict[str, Any] | None = None  # [demographics] as the plan stores it (stimuli.demographics)

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)


# ------------------------------------------------------------------------------------------ reading

class _Table:
    """A TOML table being read; every error names the file and the dotted key."""

    def __init__(self, data: dict[str, Any], where: str, prefix: str = "") -> None:
        self.data, self.where, self.prefix = data, where, prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}" if not self.prefix else f"{self.prefix}.{name}"

    def error(self, name: str, msg: str) -> SpecError:
        return SpecError(f"{self.where}: key '{self.key(name)}': {msg}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING,
            what: str = "") -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is dataclasses.MISSING:
                raise self.error(name, f"missing; it is required{(' (' + what + ')') if what else ''}")
            return default
        v = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            names = " or ".join({str: "a string", int: "an integer", float: "a number", bool: "true/false",
                                 list: "a list", dict: "a table"}[k] for k in kinds)
            raise self.error(name, f"{v!r} must be {names}{(' (' + what + ')') if what else ''}")
        return v

    def int(self, name: str, default: Any = dataclasses.MISSING, minimum: int = 0) -> int:
        v = self.get(name, int, default)
        if v < minimum:
            raise self.error(name, f"{v} must be >= {minimum}")
        return v

    def number(self, name: str, default: Any = dataclasses.MISSING, minimum: float = 0.0) -> float:
        v = self.get(name, float, default)
        if not math.isfinite(v) or v < minimum:
            raise self.error(name, f"{v!r} must be a finite number >= {minimum}")
        return float(v)

    def text(self, name: str, default: Any = dataclasses.MISSING, nonempty: bool = True) -> str:
        v = self.get(name, str, default)
        if nonempty and not v.strip():
            raise self.error(name, "must not be empty")
        return v

    def strings(self, name: str, default: Any = dataclasses.MISSING) -> tuple[str, ...]:
        v = self.get(name, list, default)
        for i, x in enumerate(v):
            if not isinstance(x, str) or not x.strip():
                raise SpecError(f"{self.where}: key '{self.key(name)}[{i}]': {x!r} must be a non-empty string")
        return tuple(v)

    def table(self, name: str, required: bool = False) -> "_Table":
        v = self.get(name, dict, dataclasses.MISSING if required else {})
        return _Table(v, self.where, self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise self.error(unknown[0], f"unknown key; allowed here: {allowed}")


def _emotion_options(with_none: bool) -> tuple[Option, ...]:
    opts = tuple(Option(value=e, label=e.capitalize()) for e in EMOTIONS)
    return opts + ((Option(value="none", label="None"),) if with_none else ())


def _read_questions(root: _Table, emotions: tuple[str, ...] = EMOTIONS) -> tuple[Question, ...]:
    raw = root.get("questions", list, what="one [[questions]] table per question")
    if not raw:
        raise root.error("questions", "needs at least one question")
    questions: list[Question] = []
    for i, qraw in enumerate(raw):
        if not isinstance(qraw, dict):
            raise root.error(f"questions[{i}]", "must be a table ([[questions]])")
        q = _Table(qraw, root.where, f"questions[{i}]")
        qid = q.text("id")
        if not _ID_RE.match(qid):
            raise q.error("id", f"{qid!r} must be 1-40 lowercase letters, digits or '_', starting with a letter")
        if any(p.id == qid for p in questions):
            raise q.error("id", f"{qid!r} is used by an earlier question; ids must be unique")
        qtype = q.text("type")
        if qtype not in QUESTION_TYPES:
            raise q.error("type", f"{qtype!r} is not one of {', '.join(QUESTION_TYPES)}")
        prompt = q.text("prompt")
        required = q.get("required", bool, True)
        oraw = q.get("options", (list, str), what="a list of {value, label} tables, 'emotions' or 'emotions+none'")
        if isinstance(oraw, str):
            if oraw not in ("emotions", "emotions+none", "design-emotions", "design-emotions+none"):
                raise q.error("options", f"{oraw!r}: the only shorthands are 'emotions', 'emotions+none', "
                                         "'design-emotions' and 'design-emotions+none'")
            options = _emotion_options(oraw.endswith("+none"))
            if oraw.startswith("design-"):
                options = tuple(o for o in options if o.value in emotions or o.value == "none")
        else:
            opts: list[Option] = []
            for j, oitem in enumerate(oraw):
                if not isinstance(oitem, dict):
                    raise q.error(f"options[{j}]", "must be a table {value = ..., label = ...}")
                o = _Table(oitem, root.where, q.key(f"options[{j}]"))
                value = o.text("value")
                if not _ID_RE.match(value):
                    raise o.error("value", f"{value!r} must be 1-40 lowercase letters, digits or '_' "
                                           "(it is stored in the answers; the label is what people see)")
                label = o.text("label")
                score = o.number("score", None, minimum=-math.inf) if "score" in oitem else None
                exclusive = o.get("exclusive", bool, False)
                o.done()
                if any(p.value == value for p in opts):
                    raise o.error("value", f"{value!r} is used by an earlier option of this question")
                if exclusive and qtype != "multi":
                    raise o.error("exclusive", "only options of a 'multi' question can be exclusive")
                opts.append(Option(value=value, label=label, score=score, exclusive=exclusive))
            options = tuple(opts)
        if len(options) < 2:
            raise q.error("options", "a question needs at least two options")
        if qtype == "scale":
            for j, o in enumerate(options):
                if o.score is None:
                    raise q.error(f"options[{j}].score", "missing; every option of a 'scale' question needs a score")
        measures = q.get("measures", str, None)
        if measures is not None:
            if measures not in MEASURES:
                raise q.error("measures", f"{measures!r} is not one of {', '.join(MEASURES)}")
            if qtype not in _MEASURE_TYPES[measures]:
                raise q.error("measures", f"{measures!r} needs a question of type "
                                          f"{' or '.join(_MEASURE_TYPES[measures])}, not {qtype!r}")
            if measures == "perceived_emotion":
                odd = [o.value for o in options if o.value not in EMOTIONS and o.value != "none"]
                if odd:
                    raise q.error("options", f"a perceived_emotion question offers emotions (and 'none'); "
                                             f"{odd[0]!r} is not one of {', '.join(EMOTIONS)}")
        secondary_of = q.get("secondary_of", str, None)
        if secondary_of is not None:
            first = next((p for p in questions if p.id == secondary_of), None)
            if first is None or first.measures != "perceived_emotion" or measures != "perceived_emotion":
                raise q.error("secondary_of", f"{secondary_of!r} must be an earlier question with measures = "
                                              "\"perceived_emotion\", and this question must measure perceived_emotion too")
        compare: list[tuple[str, str]] = []
        for j, pair in enumerate(q.get("compare", list, [])):
            if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(x, str) for x in pair)
                    or pair[0] == pair[1]):
                raise q.error(f"compare[{j}]", f"{pair!r} must be two different levels, e.g. [\"OURS\", \"BL\"]")
            compare.append((pair[0], pair[1]))
        if compare and qtype != "scale":
            raise q.error("compare", "pairwise comparisons are Wilcoxon tests of a 'scale' question's scores")
        q.done()
        questions.append(Question(id=qid, type=qtype, prompt=prompt, options=options, required=required,
                                  measures=measures, secondary_of=secondary_of, compare=tuple(compare)))
    return tuple(questions)


def _read_consistency(root: _Table, questions: tuple[Question, ...]) -> Consistency:
    t = root.table("consistency", required=True)
    max_inc = t.int("max_inconsistent", minimum=0)
    raw = t.get("rules", list, [])
    rules: list[ConsistencyRule] = []
    by_id = {q.id: q for q in questions}
    for i, rraw in enumerate(raw):
        if not isinstance(rraw, dict):
            raise t.error(f"rules[{i}]", "must be a table {question = ..., kind = ..., tolerance = ...}")
        r = _Table(rraw, root.where, t.key(f"rules[{i}]"))
        qid = r.text("question")
        if qid not in by_id:
            raise r.error("question", f"{qid!r} is not a question id; ids: {', '.join(by_id)}")
        kind = r.text("kind")
        if kind not in RULE_KINDS:
            raise r.error("kind", f"{kind!r} is not one of {', '.join(RULE_KINDS)}")
        tol = r.number("tolerance", 0.0)
        r.done()
        q = by_id[qid]
        if kind == "max_abs_diff" and any(o.score is None for o in q.options):
            raise r.error("kind", f"max_abs_diff compares scores, but question {qid!r} has options without a score")
        if kind == "max_set_diff" and q.type != "multi":
            raise r.error("kind", f"max_set_diff compares option sets, but question {qid!r} is {q.type!r}, "
                                  "not 'multi'")
        if any(x.question == qid for x in rules):
            raise r.error("question", f"{qid!r} already has a rule")
        rules.append(ConsistencyRule(question=qid, kind=kind, tolerance=tol))
    watch_flags = t.text("watch_flags", "inconsistent")
    if watch_flags not in WATCH_FLAG_RULES:
        raise t.error("watch_flags", f"{watch_flags!r} is not one of {', '.join(WATCH_FLAG_RULES)}")
    t.done()
    return Consistency(max_inconsistent=max_inc, rules=tuple(rules), watch_flags=watch_flags)


def _read_recruitment(root: _Table) -> Recruitment:
    t = root.table("recruitment")
    minutes = t.int("estimated_minutes", None, minimum=1) if "estimated_minutes" in t.data else None
    audio = t.get("requires_audio", bool, False)
    screeners = t.get("screeners", list, [])
    for i, sc in enumerate(screeners):
        if not isinstance(sc, dict) or not isinstance(sc.get("filter_id"), str) or not sc["filter_id"].strip():
            raise t.error(f"screeners[{i}]", f"{sc!r} must be a table with a filter_id (a Prolific filter, see "
                                             "GET /api/v1/filters/) and selected_values or selected_range")
        if not ({"selected_values", "selected_range"} & set(sc)):
            raise t.error(f"screeners[{i}]", f"filter {sc['filter_id']!r} needs selected_values or selected_range")
    t.done()
    return Recruitment(estimated_minutes=minutes, requires_audio=audio, screeners=tuple(screeners))


def _read_payment(root: _Table, questions: tuple[Question, ...]) -> Payment:
    t = root.table("payment")
    reward = t.number("reward_usd", 1.0)
    b = t.table("bonus")
    rule = b.text("rule", "none")
    if rule not in BONUS_RULES:
        raise b.error("rule", f"{rule!r} is not one of {', '.join(BONUS_RULES)}")
    if rule == "none":
        b.used.update({"question", "truth", "amount_usd", "max_usd", "count_repeats"})
        b.done()
        t.done()
        return Payment(reward_usd=reward, bonus=Bonus())
    qid = b.text("question")
    q = next((x for x in questions if x.id == qid), None)
    if q is None:
        raise b.error("question", f"{qid!r} is not a question id; ids: {', '.join(x.id for x in questions)}")
    if q.type != "single" or not any(o.value in EMOTIONS for o in q.options):
        raise b.error("question", f"{qid!r} must be a single-choice question with emotion options "
                                  "(a correct answer is compared with the stimulus' emotion)")
    truth = b.text("truth")
    if truth not in BONUS_TRUTHS:
        raise b.error("truth", f"{truth!r} is not one of {', '.join(BONUS_TRUTHS)}")
    amount = b.number("amount_usd")
    max_usd = b.number("max_usd") if "max_usd" in b.data else None
    count_repeats = b.get("count_repeats", bool, True)
    b.done()
    t.done()
    return Payment(reward_usd=reward, bonus=Bonus(rule=rule, question=qid, truth=truth, amount_usd=amount,
                                                  max_usd=max_usd, count_repeats=count_repeats))


def _read_design(root: _Table, task: str) -> EmotionRealnessDesign | AvMismatchDesign | FactorDesign:
    t = root.table("design")
    if task == "norming":
        norming = read_norming_design(t)
        t.done()
        return norming  # type: ignore[return-value]
    if "factors" in t.data:
        fdesign = read_factor_design(t)
        t.done()
        return fdesign
    if "trial_list" in t.data:
        tdesign = read_trial_list(t, root.where)
        t.done()
        return tdesign  # type: ignore[return-value]
    if task == "factorial":
        raise t.error("factors", "missing; a factorial study declares its factors ([design.factors]) or a "
                                 "trial_list (a CSV of batches x trials); see docs/running-a-study.md")
    if task == "emotion-realness":
        dflt = EmotionRealnessDesign()
        design: EmotionRealnessDesign | AvMismatchDesign = EmotionRealnessDesign(
            batches=t.int("batches", dflt.batches, 1),
            sources=t.strings("sources", list(dflt.sources)),
            per_source=t.int("per_source", dflt.per_source, 1),
            repeats_per_source=t.int("repeats_per_source", dflt.repeats_per_source, 0),
            min_repeat_gap=t.int("min_repeat_gap", dflt.min_repeat_gap, 1),
            mix_size_variants=t.get("mix_size_variants", bool, dflt.mix_size_variants),
            order=read_order(t, dflt.order),
        )
        if not design.sources:
            raise t.error("sources", "must name at least one source (e.g. [\"GT\", \"BL\", \"OURS\"])")
        if len(set(design.sources)) != len(design.sources):
            raise t.error("sources", f"{list(design.sources)} names a source twice")
        if design.repeats_per_source > design.per_source:
            raise t.error("repeats_per_source", f"{design.repeats_per_source} is more than per_source "
                                                f"({design.per_source})")
    else:
        dflt2 = AvMismatchDesign()
        design = AvMismatchDesign(
            batches=t.int("batches", dflt2.batches, 1),
            per_pair=t.int("per_pair", dflt2.per_pair, 1),
            repeats_per_batch=t.int("repeats_per_batch", dflt2.repeats_per_batch, 0),
            min_repeat_gap=t.int("min_repeat_gap", dflt2.min_repeat_gap, 1),
            sources=t.strings("sources", list(dflt2.sources)),
            balanced=t.get("balanced", bool, dflt2.balanced),
            order=read_order(t, dflt2.order),
        )
    t.done()
    return design


def _read_examples(root: _Table) -> ExamplesDesign:
    t = root.table("examples")
    d = ExamplesDesign()
    ex = ExamplesDesign(per_emotion=t.int("per_emotion", d.per_emotion, 0),
                        sources=t.strings("sources", list(d.sources)),
                        size_variants=t.strings("size_variants", list(d.size_variants)),
                        allow_example_reuse=t.get("allow_example_reuse", bool, d.allow_example_reuse))
    if ex.per_emotion and not ex.sources:
        raise t.error("sources", "must name at least one source to draw examples from (or set per_emotion = 0)")
    t.done()
    return ex


def _timezone(st: _Table) -> str:
    name = st.text("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise st.error("timezone", f"{name!r} is not a time zone name; use an IANA name such as "
                                   "\"Europe/Berlin\" or \"UTC\"") from None
    return name


def parse_spec(text: str | bytes, *, where: str = "<string>", base_dir: str | os.PathLike | None = None) -> Spec:
    """Parse and validate a spec given as TOML text. Raises ``SpecError`` naming the key.

    ``base_dir``: the folder the spec's files (``consent``, ``debrief``) are read from."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where}: not UTF-8 text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: not valid TOML: {exc}") from None
    root = _Table(data, where)
    version = root.get("schema_version", int, SPEC_SCHEMA_VERSION)
    if version != SPEC_SCHEMA_VERSION:
        raise root.error("schema_version", f"{version}; this emostudy reads version {SPEC_SCHEMA_VERSION}")
    st = root.table("study", required=True)
    name = st.text("name")
    if not _NAME_RE.match(name):
        raise st.error("name", f"{name!r} must be 1-64 letters, digits, '_', '.', '-'")
    task = st.text("task")
    if task not in DESIGN_KINDS:
        raise st.error("task", f"{task!r} is not a known design; use one of {', '.join(DESIGN_KINDS)}")
    if "instructions" in st.data:
        raise st.error("instructions", "participant-facing text lives in the [participant] table now: move it to "
                                       "[participant] instructions ([study] is the researcher's)")
    study = StudyInfo(name=name, title=st.text("title", name), task=task,
                      description=st.text("description", "", nonempty=False),
                      exclude_studies=st.strings("exclude_studies", []), timezone=_timezone(st),
                      authors=st.strings("authors", []), license=st.text("license", "", nonempty=False),
                      citation=st.text("citation", "", nonempty=False), url=st.text("url", "", nonempty=False),
                      funder=st.text("funder", "", nonempty=False))
    st.done()
    pt = root.table("participant")
    participant = _read_participant(pt, study, base_dir)
    pt.done()
    design = _read_design(root, task)
    examples = _read_examples(root)
    emotions = (design.emotion_levels() if isinstance(design, FactorDesign) else None) or EMOTIONS
    questions = _read_questions(root, emotions)
    consistency = _read_consistency(root, questions)
    quota = root.int("quota_per_batch", 10, minimum=1)
    payment = _read_payment(root, questions)
    ac = root.table("audio_check")
    listening = _read_audio_check(ac)
    audio_check = listening.enabled
    ac.done()
    recruitment = _read_recruitment(root)
    demographics = read_demographics(root.get("demographics", dict, None), where)
    root.done()
    return Spec(study=study, participant=participant, design=design, examples=examples, questions=questions,
                consistency=consistency, quota_per_batch=quota, payment=payment, audio_check=audio_check,
                source=where, sha256=hashlib.sha256(raw).hexdigest(), listening=listening, recruitment=recruitment,
                demographics=demographics)


def _read_participant(pt: "_Table", study: StudyInfo, base_dir: str | os.PathLike | None) -> ParticipantText:
    language = pt.text("language", "en")
    if language not in LANGUAGES:
        raise pt.error("language", f"{language!r} has no message catalogue; use one of {', '.join(LANGUAGES)}")
    width = pt.get("video_width", int, None)
    if width is not None and not 64 <= width <= 1920:
        raise pt.error("video_width", f"{width} must be between 64 and 1920 (CSS pixels)")
    consent = _participant_file(pt, "consent", base_dir)
    statements = pt.strings("consent_statements", [])
    if statements and consent is None:
        raise pt.error("consent_statements", "needs consent = \"consent.md\" (the text the statements belong to)")
    return ParticipantText(title=pt.text("title", study.title), intro=pt.text("intro", "", nonempty=False),
                           instructions=pt.text("instructions", "", nonempty=False),
                           allow_words=pt.strings("allow_words", []), consent=consent,
                           consent_statements=statements, debrief=_participant_file(pt, "debrief", base_dir),
                           language=language, video_width=width)


def _participant_file(pt: "_Table", key: str, base_dir: str | os.PathLike | None) -> ParticipantFile | None:
    name = pt.get(key, str, None)
    if name is None:
        return None
    if base_dir is None:
        raise pt.error(key, f"{name!r} is a file beside the spec; load the spec from its file (not from a string)")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or rel.suffix.lower() not in (".md", ".txt"):
        raise pt.error(key, f"{name!r} must be a .md (Markdown) file in the spec's folder, e.g. \"{key}.md\"")
    path = Path(base_dir) / rel
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise pt.error(key, f"cannot read {path} ({exc.strerror or exc}); write the {key} text there") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise pt.error(key, f"{path} is not UTF-8 text; save it as UTF-8") from None
    if not text.strip():
        raise pt.error(key, f"{path} is empty; write the {key} text the ethics board approved")
    return ParticipantFile(file=name, text=text, sha256=hashlib.sha256(raw).hexdigest())


def _read_audio_check(ac: "_Table") -> AudioCheck:
    enabled = ac.get("enabled", bool, False)
    kind = ac.get("kind", str, "words")
    if kind not in AUDIO_CHECK_KINDS:
        raise ac.error("kind", f"{kind!r} is not a listening check; use one of {', '.join(AUDIO_CHECK_KINDS)}")
    trials = ac.int("trials", 6, minimum=1)
    pass_at = ac.int("pass_at", min(5, trials), minimum=1)
    attempts = ac.int("attempts", 1, minimum=1)
    if trials > 20:
        raise ac.error("trials", f"{trials} trials is more than a screen needs (at most 20; the papers use 6)")
    if attempts > 5:
        raise ac.error("attempts", f"{attempts} attempts is too many for a screen (at most 5)")
    if pass_at > trials:
        raise ac.error("pass_at", f"pass_at = {pass_at} is more than trials = {trials}; lower it or add trials")
    if kind != "words" and not enabled:
        raise ac.error("enabled", f"kind = {kind!r} needs enabled = true (or remove kind)")
    return AudioCheck(enabled=enabled, kind=kind, trials=trials, pass_at=pass_at, attempts=attempts)


def builtin_specs() -> list[str]:
    """Names of the ready-made specs (``paper-task1``, ``paper-task2``)."""
    return sorted(p.stem for p in _SPECS_DIR.glob("*.toml"))


def resolve_spec(name_or_path: str | os.PathLike) -> tuple[str, bytes]:
    """(where, bytes) of a spec given by a path or the name of a ready-made spec."""
    p = Path(name_or_path)
    if p.is_file():
        return str(p), p.read_bytes()
    name = str(name_or_path)
    if name in builtin_specs():
        return f"{name} (stimuli/specs/{name}.toml)", (_SPECS_DIR / f"{name}.toml").read_bytes()
    raise SpecError(f"{name}: no such spec file, and not a ready-made spec (those are: "
                    f"{', '.join(builtin_specs())})")


def load_spec(name_or_path: str | os.PathLike) -> Spec:
    """Load a spec from a TOML file, or a ready-made one by name (``paper-task1``)."""
    where, raw = resolve_spec(name_or_path)
    p = Path(name_or_path)
    base = p.parent if p.is_file() else _SPECS_DIR
    return parse_spec(raw, where=where, base_dir=base)
