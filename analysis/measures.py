"""Which analysis each question gets, chosen from what the spec says it measures and from the design's
factors, never from question ids (issue 27).

A plan's questions carry ``measures`` (stimuli.spec.MEASURES). :func:`choose` reads them with the plan's
design and the answers and returns a :class:`Choice`: the role of every question and the tests it gets,
with the reason, which the report prints first ("What was analysed and why"). A combination the analysis
cannot handle is refused with an :class:`~analysis.errors.AnalysisOptionError` that names the question and
the fix. A plan whose questions declare nothing (plans compiled before ``measures`` existed) returns None:
the report then runs as it always did.

Roles:

``perceived_emotion``
    in a design whose clips show a visual emotion different from the audio one (mismatched clips in the
    answers): which modality people follow: confusion of the label against the visual and against the audio
    emotion over the options offered, match fractions with CIs against chance 1/k (k = emotions offered),
    Hu per emotion, the visual-vs-audio dominance test (Wilcoxon over participants); "primary or secondary"
    counts only when a question declares ``secondary_of`` it. Otherwise (every clip congruent): accuracy
    against the shown emotion per source with CIs and a binomial test against 1/k, confusion matrices, Hu.
``realness`` / ``intensity`` / ``valence`` / ``scale``
    means per cell of the design's crossed factors with participant-bootstrap CIs; the pairwise tests the
    question declares (``compare``): Wilcoxon signed-rank over participants when both levels are of a
    within-participant factor, Mann-Whitney U over participant means for a between-participant factor; a
    linear mixed model of the score on the crossed factors with participant and item random intercepts (one
    formula, :func:`stimuli.model_formulas.design_scale_formula`, fitted here and written into the R script).
    A ``realness`` question in a design with a within-participant ``source`` factor also gets the paper's
    Task 1 realness tables (sources paired within participants).
``choices``
    option counts per source (the paper's improvement aspects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis.errors import AnalysisOptionError
from stimuli.emotions import EMOTIONS

SCALE_MEASURES = ("realness", "intensity", "valence", "scale")
# Factor names of a plan's design -> the answers column that holds them.
FACTOR_COLUMNS = {"source": "source", "condition": "source", "visual_emotion": "visual_emotion",
                  "audio_emotion": "audio_emotion", "emotion": "emotion", "identity": "identity",
                  "sentence": "sentence", "intensity": "intensity", "size_variant": "size_variant",
                  "congruence": "congruence"}


@dataclass
class QuestionChoice:
    question: str
    measures: str
    role: str  # "emotion" (congruent clips), "modality" (mismatched), "secondary", "scale", "choices"
    options: list[str]
    tests: list[str]
    why: str
    compare: list[tuple[str, str, str, str]] = field(default_factory=list)  # (factor column, a, b, test)


@dataclass
class Choice:
    questions: list[QuestionChoice]
    factors: list[str]  # answer columns of the design's crossed factors
    within: dict[str, bool]
    mismatched: bool

    def by_role(self, role: str) -> list[QuestionChoice]:
        return [q for q in self.questions if q.role == role]

    def text(self) -> list[str]:
        """The report's opening section, one paragraph per line."""
        fac = ", ".join(f"{f} ({'within' if self.within.get(f, True) else 'between'} participants)"
                        for f in self.factors) or "none declared"
        out = [f"Design factors: {fac}. Clips with a visual emotion different from the audio one: "
               f"{'yes' if self.mismatched else 'no'}."]
        for q in self.questions:
            out.append(f"Question '{q.question}' measures {q.measures} (options: {', '.join(q.options)}): "
                       f"{q.why} Tests: {'; '.join(q.tests)}.")
        return out


def _design_factors(plan: Mapping[str, Any]) -> tuple[list[str], dict[str, bool]]:
    d = plan.get("design") or {}
    if isinstance(d.get("factors"), list):
        names = [FACTOR_COLUMNS[f["name"]] for f in d["factors"] if f.get("crossed", True)]
        within = {FACTOR_COLUMNS[f["name"]]: bool(f.get("within", True)) for f in d["factors"]}
        return list(dict.fromkeys(names)), within
    task = (plan.get("study") or {}).get("task")
    names = ["visual_emotion", "audio_emotion"] if task == "av-mismatch" else ["source", "emotion"]
    # A trial list (or an older plan) declares no factors: the paper's, source and emotion (or visual x audio).
    return names, {n: True for n in names}


def choose(plan: Mapping[str, Any], answers: pd.DataFrame) -> Choice | None:
    """The analysis of every question (module docstring); None when no question declares ``measures``."""
    qs = list(plan.get("questions") or [])
    if not any(q.get("measures") for q in qs):
        return None
    undeclared = [q["id"] for q in qs if not q.get("measures")]
    if undeclared:
        raise AnalysisOptionError(
            f"question '{undeclared[0]}' does not say what it measures while others do; add measures = "
            "\"perceived_emotion\" | \"realness\" | \"intensity\" | \"valence\" | \"scale\" | \"choices\" to it in "
            "the spec and compile the plan again")
    factors, within = _design_factors(plan)
    shown = answers.drop_duplicates("stimulus_id")
    both = shown[(shown["visual_emotion"] != "") & (shown["audio_emotion"] != "")]
    mismatched = bool((both["visual_emotion"] != both["audio_emotion"]).any())
    out: list[QuestionChoice] = []
    primaries = [q for q in qs if q["measures"] == "perceived_emotion" and not q.get("secondary_of")]
    if len(primaries) > 1:
        raise AnalysisOptionError(
            f"questions '{primaries[0]['id']}' and '{primaries[1]['id']}' both measure perceived_emotion: the "
            f"analysis reports one perceived emotion per study. If '{primaries[1]['id']}' is a second label of the "
            f"same video, declare secondary_of = \"{primaries[0]['id']}\" on it; otherwise set its measures to "
            "what it asks (e.g. \"scale\") or analyse the studies apart")
    scales = [q for q in qs if q["measures"] in SCALE_MEASURES]
    choices = [q for q in qs if q["measures"] == "choices"]
    if len(choices) > 1:
        raise AnalysisOptionError(f"questions '{choices[0]['id']}' and '{choices[1]['id']}' both measure choices; "
                                  "the report counts the options of one multi-choice question: keep one")
    # The paper's Task 1 realness tables pair sources within participants: only for a within-participant source.
    realness_paper = [q for q in scales if q["measures"] == "realness" and "source" in factors
                      and within.get("source", True)]
    for q in qs:
        opts = [o["value"] for o in q.get("options", [])]
        m = q["measures"]
        if m == "perceived_emotion":
            emos = [o for o in opts if o in EMOTIONS]
            k = len(emos)
            if q.get("secondary_of"):
                if not mismatched:
                    raise AnalysisOptionError(
                        f"question '{q['id']}' is declared secondary_of '{q['secondary_of']}', but no clip of the "
                        "study has different visual and audio emotions, and the second label is analysed only as "
                        "the other modality of such clips: remove secondary_of (and give it its own measures) or "
                        "add mismatched clips to the design")
                out.append(QuestionChoice(q["id"], m, "secondary", opts,
                                          [f"'primary or secondary' and 'all labels' match fractions of "
                                           f"'{q['secondary_of']}'", "the dominance test on primary or secondary"],
                                          f"It is the second label of '{q['secondary_of']}' (secondary_of)."))
            elif mismatched:
                sec = [s["id"] for s in qs if s.get("secondary_of") == q["id"]]
                out.append(QuestionChoice(q["id"], m, "modality", opts, [
                    f"confusion of the label against the visual and against the audio emotion over the {k} "
                    f"emotions offered", f"match fractions with participant-bootstrap CIs, binomial tests against "
                    f"chance 1/{k}", "Hu per emotion (visual and audio as the truth)",
                    "visual-vs-audio dominance: Wilcoxon signed-rank over participants of the visual minus the audio "
                    "match fraction on mismatched clips"],
                    f"The design shows clips whose visual and audio emotions differ, so the question asks which "
                    f"modality people follow{'; its second label is ' + repr(sec[0]) if sec else ' (one label per video: no primary-or-secondary counting)'}."))
            else:
                out.append(QuestionChoice(q["id"], m, "emotion", opts, [
                    f"confusion matrices per source over the {k} emotions offered",
                    f"accuracy with participant-bootstrap CIs and binomial tests against chance 1/{k}",
                    "Hu per emotion", "agreement (kappa, alpha)"],
                    "Every clip shows one emotion (visual = audio, or one of them absent), so the answer is "
                    "scored against it."))
        elif m in SCALE_MEASURES:
            cmp = []
            for a, b in (tuple(c) for c in q.get("compare", [])):
                col = next((f for f in factors if {a, b} <= set(answers.loc[answers["question"] == q["id"], f])
                            ), None) if factors else None
                if col is None:
                    raise AnalysisOptionError(
                        f"question '{q['id']}': compare [{a!r}, {b!r}]: no factor of the design ({', '.join(factors)}) "
                        "has both levels among the answers; name two levels of one crossed factor")
                test = "wilcoxon" if within.get(col, True) else "mann-whitney"
                cmp.append((col, a, b, test))
            tests = [f"means per cell of {' x '.join(factors)} with participant-bootstrap CIs"]
            tests += [f"{a} vs {b} ({col}): " + ("Wilcoxon signed-rank over participants (within)" if t == "wilcoxon"
                                                  else "Mann-Whitney U over participant means (between)")
                      for col, a, b, t in cmp]
            tests.append("linear mixed model of the score on the crossed factors with participant and item random "
                         "intercepts (the same formula in the R script)")
            if q in realness_paper[:1]:
                tests.append("the paper's Task 1 realness tables per source (Wilcoxon, ordinal model)")
            out.append(QuestionChoice(q["id"], m, "scale", opts, tests,
                                      "A scored scale: the scores are compared across the design's factors.", cmp))
        else:
            out.append(QuestionChoice(q["id"], m, "choices", opts, ["option counts and votes per response per source"],
                                      "A multi-choice question: each chosen option is counted."))
    return Choice(questions=out, factors=factors, within=within, mismatched=mismatched)


def report_options(choice: Choice, opt: Any, defaults: Any, answers: pd.DataFrame | None = None) -> Any:
    """The report's options with each part pointed at the question whose role it is (ids come from the roles,
    never the roles from ids). A question id the user gave with --question wins."""
    from dataclasses import replace

    def pick(field_name: str, qid: str | None) -> Any:
        given = getattr(opt, field_name)
        return given if given != getattr(defaults, field_name) else qid

    emotion = next((q.question for q in choice.by_role("emotion")), "")
    modality = next((q.question for q in choice.by_role("modality")), "")
    secondary = next((q.question for q in choice.by_role("secondary")), None)
    paper_real = next((q for q in choice.by_role("scale") if q.measures == "realness" and "source" in choice.factors
                       and choice.within.get("source", True)), None)
    aspects = next((q.question for q in choice.by_role("choices")), "")
    compare = opt.compare
    if paper_real is not None and compare is None:
        src = [(a, b) for col, a, b, _ in paper_real.compare if col == "source"]
        compare = src[0] if src else None
        if compare is not None and answers is not None:
            from analysis.task1 import choose_comparison

            present = list(answers.loc[answers["question"] == paper_real.question, "source"].unique())
            if len(present) >= 2 and choose_comparison(present)[:2] == compare:
                compare = None  # the declared pair is the paper's own choice: reported as such
    return replace(opt, emotion_question=pick("emotion_question", emotion),
                   primary_question=pick("primary_question", modality),
                   secondary_question=pick("secondary_question", secondary),
                   realness_question=pick("realness_question", paper_real.question if paper_real else ""),
                   aspects_question=pick("aspects_question", aspects), compare=compare)


def scale_section(out: Any, answers: pd.DataFrame, qc: QuestionChoice, choice: Choice, opt: Any) -> None:
    """Means per cell, the declared comparisons and the mixed model of one scale question, into the
    analysis ``out`` (results["scales"][qid], tables scale_<qid>_*, a methods paragraph)."""
    from analysis import scales

    sub = answers[answers["question"] == qc.question]
    factors = [f for f in choice.factors if f in sub.columns]
    means = scales.cell_means(answers, question=qc.question, factors=factors, n_boot=opt.n_boot, ci=opt.ci,
                              random_state=opt.seed)
    cmp = scales.declared_comparisons(answers, question=qc.question, compare=qc.compare,
                                      zero_method=opt.zero_method, alternative=opt.alternative)
    formula = scales.model_formula(answers, question=qc.question, factors=factors)
    entry: dict[str, Any] = {"measures": qc.measures, "factors": factors,
                             "model_formula": {"name": formula.name, "response": formula.response,
                                               "fixed": list(formula.fixed), "random": list(formula.random)}}
    try:
        mm = scales.mixed_model(answers, question=qc.question, formula=formula)
    except (AnalysisOptionError, ValueError, np.linalg.LinAlgError) as exc:
        entry["mixed_model"] = {"fitted": False, "reason": str(exc), "formula": formula.formula}
    else:
        entry["mixed_model"] = {"fitted": True, **mm}
        out.tables[f"scale_{qc.question}_mixed_model"] = pd.DataFrame(mm["fixed"])
    q = next((x for x in (out.export.plan.get("questions") if out.export is not None else []) or []
              if x.get("id") == qc.question), {})
    if scales.is_likert(q.get("options", [])):
        of = scales.ordinal_formula(formula)
        entry["ordinal_formula"] = {"name": of.name, "response": of.response, "fixed": list(of.fixed),
                                    "random": list(of.random)}
        try:
            om = scales.ordinal_model(answers, question=qc.question, formula=of)
        except (AnalysisOptionError, ValueError, np.linalg.LinAlgError) as exc:
            entry["ordinal_model"] = {"fitted": False, "reason": str(exc), "formula": of.formula}
        else:
            entry["ordinal_model"] = {"fitted": True, **om}
            out.tables[f"scale_{qc.question}_ordinal_model"] = pd.DataFrame(om["coefficients"])
    entry["means"] = means.to_dict(orient="records")
    entry["comparisons"] = cmp.to_dict(orient="records")
    out.results.setdefault("scales", {})[qc.question] = entry
    out.tables[f"scale_{qc.question}_means"] = means
    out.tables[f"scale_{qc.question}_comparisons"] = cmp
    between = [f for f in factors if not choice.within.get(f, True)]
    out.methods.append(
        f"Scale '{qc.question}' ({qc.measures}). Options scored as in the plan; mean score per cell of "
        f"{' x '.join(factors) or 'the study'} with a percentile bootstrap {100 * opt.ci:g}% CI resampling participants "
        f"({opt.n_boot} resamples). "
        + (f"Declared comparisons: {'; '.join(f'{a} vs {b} ({c}, {t})' for c, a, b, t in qc.compare)}; a factor "
           "within participants is tested by the Wilcoxon signed-rank test of participant means, a factor between "
           "participants by the Mann-Whitney U test of participant means. " if qc.compare else "")
        + f"Linear mixed model {formula.formula}, fitted by REML (statsmodels MixedLM; the item as a variance "
        f"component), the same formula as in analysis_scales.R (lme4::lmer)"
        + (f"; between-participant factor(s): {', '.join(between)}" if between else "") + "."
        + (f" The options are a Likert scale, so a proportional-odds (cumulative logit) model "
           f"{scales.ordinal_formula(formula).formula} was fitted too (statsmodels "
           "OrderedModel, participant-clustered standard errors; ordinal::clm in the R script)."
           if "ordinal_formula" in entry else ""))





def extra_sentences(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """APA-style sentences of what :mod:`analysis.report_text` does not cover: the face-vs-voice match against
    chance 1/k, and every scale question's declared comparisons and mixed-model terms."""
    from analysis.report_text import fmt_num, fmt_pct
    from analysis.report_text import p_clause as fmt_p

    out: list[dict[str, str]] = []
    t2 = results.get("task2") or {}
    k = len(t2.get("emotions_offered") or [])
    for r in t2.get("vs_chance", []):
        if r["subset"] == "mismatched" and r["n"]:
            out.append({"id": f"chance-{r['modality']}", "topic": f"Label vs the {r['modality']} emotion",
                        "text": f"On mismatched videos the label matched the {r['modality']} emotion in "
                                f"{fmt_pct(r['fraction'])} of {r['n']} responses, against chance {fmt_num(r['chance'])} "
                                f"(1/{k} of the emotions offered), exact binomial test {fmt_p(r['p'])}."})
    for qid, sc in (results.get("scales") or {}).items():
        for c in sc.get("comparisons", []):
            stat = (f"Wilcoxon signed-rank test over {c['n_a']} participants, z = {fmt_num(c['z'])}"
                    if c["test"].startswith("wilcoxon") else
                    f"Mann-Whitney U = {fmt_num(c['statistic'])}, n = {c['n_a']} and {c['n_b']} participants")
            out.append({"id": f"scale-{qid}-{c['a']}-{c['b']}", "topic": f"Scale {qid}: {c['a']} vs {c['b']}",
                        "text": f"The mean {qid} score was {fmt_num(c['mean_a'])} for {c['a']} and "
                                f"{fmt_num(c['mean_b'])} for {c['b']} ({c['factor']}; {stat}, {fmt_p(c['p'])})."})
        mm = sc.get("mixed_model") or {}
        for t in mm.get("fixed", []) if mm.get("fitted") else []:
            if t["term"] == "Intercept":
                continue
            out.append({"id": f"scale-{qid}-model-{t['term']}", "topic": f"Scale {qid}: mixed model",
                        "text": f"In the linear mixed model {mm['formula']}, the term {t['term']} was "
                                f"b = {fmt_num(t['estimate'])}, SE = {fmt_num(t['se'])}, z = {fmt_num(t['z'])}, "
                                f"{fmt_p(t['p'])}."})
    return out
