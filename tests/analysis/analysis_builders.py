"""Builders of tiny hand-made exports for the analysis tests (imported by the test modules)."""

from __future__ import annotations

from typing import Any

from analysis.simulate import TASK1_QUESTIONS, TASK2_QUESTIONS


def tiny_task1_plan() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One batch: positions 0-5 are GT, GT, BL, BL, OURS, OURS; 6, 7, 8 repeat positions 0, 2, 4.
    3 repeats x 3 rules = 9 repeated answers; rejected when more than 5 are inconsistent (the paper)."""
    emotions = ["anger", "happiness", "anger", "happiness", "anger", "happiness"]
    sources = ["GT", "GT", "BL", "BL", "OURS", "OURS"]
    stimuli = []
    for k, (src, emo) in enumerate(zip(sources, emotions)):
        stimuli.append({"stimulus_id": f"s{k}", "media": f"media/s{k}.mp4", "sha256": "0" * 64, "duration_s": 2.0,
                        "fps": 25.0, "width": 128, "height": 128, "audio_rate": 8000, "source": src,
                        "visual_emotion": emo, "audio_emotion": emo, "identity": f"id{k % 2}",
                        "sentence": "S01", "provenance": {"backend": "test"}})
    items = [{"position": p, "stimulus_id": f"s{p}", "repeat_of": None} for p in range(6)]
    items += [{"position": 6 + j, "stimulus_id": f"s{o}", "repeat_of": o} for j, o in enumerate((0, 2, 4))]
    plan = {"schema_version": 1, "study": {"name": "tiny", "task": "emotion-realness"},
            "questions": TASK1_QUESTIONS,
            "consistency": {"max_inconsistent": 5, "rules": [
                {"question": "emotion", "kind": "equal", "tolerance": 0},
                {"question": "realness", "kind": "max_abs_diff", "tolerance": 1},
                {"question": "aspects", "kind": "max_set_diff", "tolerance": 1}]},
            "batches": [{"batch_id": "b01", "index": 0, "items": items}]}
    return plan, stimuli


def tiny_task2_plan(pairs: list[tuple[str, str]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One batch of OURS videos with the given (visual, audio) pairs and no repeats."""
    stimuli = [{"stimulus_id": f"t{k}", "media": f"media/t{k}.mp4", "sha256": "0" * 64, "duration_s": 2.0,
                "fps": 25.0, "width": 128, "height": 128, "audio_rate": 8000, "source": "OURS",
                "visual_emotion": v, "audio_emotion": a, "identity": "id0", "sentence": f"S{k}",
                "provenance": {"backend": "test"}} for k, (v, a) in enumerate(pairs)]
    items = [{"position": k, "stimulus_id": f"t{k}", "repeat_of": None} for k in range(len(pairs))]
    plan = {"schema_version": 1, "study": {"name": "tiny2", "task": "av-mismatch"}, "questions": TASK2_QUESTIONS,
            "consistency": {"max_inconsistent": 2, "rules": [{"question": "primary", "kind": "equal", "tolerance": 0}]},
            "batches": [{"batch_id": "b01", "index": 0, "items": items}]}
    return plan, stimuli


REALNESS_VALUE = {5: "definitely_real", 4: "somewhat_real", 3: "neutral", 2: "somewhat_unreal", 1: "definitely_unreal"}


def survey_rows(plan: dict, stimuli: list[dict], assignment: str, participant: str,
                answers: dict[tuple[int, str], str], verdict: str = "valid") -> list[dict[str, Any]]:
    """answers.csv rows of one survey; ``answers`` maps (position, question) -> value."""
    by_id = {s["stimulus_id"]: s for s in stimuli}
    items = {it["position"]: it for it in plan["batches"][0]["items"]}
    scores = {o["value"]: o["score"] for q in plan["questions"] if q["type"] == "scale" for o in q["options"]}
    rows = []
    for (pos, q), value in answers.items():
        it = items[pos]
        s = by_id[it["stimulus_id"]]
        rows.append({"answer_id": f"{assignment}-{pos}", "study": plan["study"]["name"],
                     "task": plan["study"]["task"], "batch_id": "b01", "participant": participant,
                     "assignment": assignment, "position": pos, "is_repeat": int(it["repeat_of"] is not None),
                     "repeat_of": "" if it["repeat_of"] is None else it["repeat_of"],
                     "stimulus_id": s["stimulus_id"], "source": s["source"], "visual_emotion": s["visual_emotion"],
                     "audio_emotion": s["audio_emotion"], "identity": s["identity"], "sentence": s["sentence"],
                     "intensity": "", "size_variant": "", "question": q, "answer": value,
                     "score": scores.get(value, "") if q == "realness" else "", "rt_ms": 1000,
                     "played_fraction": 1.0, "answered_at": "2026-01-01T00:00:00Z", "verdict": verdict})
    return rows


def participant_row(assignment: str, participant: str, verdict: str) -> dict[str, Any]:
    return {"participant": participant, "assignment": assignment, "batch_id": "b01", "platform": "lab",
            "status": "completed", "verdict": verdict}


def consistent_task1(emotion: dict[int, str], realness: dict[int, int], aspects: dict[int, str]) -> dict:
    """Answers for all 9 positions of the tiny Task 1 plan; repeats copy their originals unless given."""
    out = {}
    for pos in range(9):
        orig = {6: 0, 7: 2, 8: 4}.get(pos, pos)
        out[(pos, "emotion")] = emotion.get(pos, emotion.get(orig))
        out[(pos, "realness")] = REALNESS_VALUE[realness.get(pos, realness.get(orig))]
        out[(pos, "aspects")] = aspects.get(pos, aspects.get(orig))
    return out


