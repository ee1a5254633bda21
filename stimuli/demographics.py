"""The spec's ``[demographics]``: standard items about the participant that the researcher switches on.

    [demographics]
    when = "after_consent"     # or "end" (after the last video, before the completion code)
    items = ["age", "gender", "native_language", "country", "hearing", "vision", "device", "headphones"]
    required = ["age"]         # the others may be left empty; every item offers "prefer not to say"
    age = "years"              # or "bands" (18-24, 25-34, 35-44, 45-54, 55-64, 65+)

Values as stored and exported: ``age`` a whole number of years (16-110) or a band; ``gender`` woman, man,
non_binary or the participant's own words (``self:<text>``); ``native_language`` and ``country`` the
participant's words; ``hearing`` / ``vision`` normal, corrected, impaired; ``device`` computer, tablet,
phone; ``headphones`` headphones, speakers, none; and ``prefer_not`` for any of them. The words a participant
reads for each item are the server's message catalogue (study_server/participant/demographics.py).
"""

from __future__ import annotations

from typing import Any

from stimuli.errors import PlanError, SpecError

ITEMS = ("age", "gender", "native_language", "country", "hearing", "vision", "device", "headphones")
CHOICES: dict[str, tuple[str, ...]] = {
    "gender": ("woman", "man", "non_binary"),
    "hearing": ("normal", "corrected", "impaired"),
    "vision": ("normal", "corrected", "impaired"),
    "device": ("computer", "tablet", "phone"),
    "headphones": ("headphones", "speakers", "none"),
}
FREE_TEXT = ("native_language", "country")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_FORMATS = ("years", "bands")
WHEN = ("after_consent", "end")
PREFER_NOT = "prefer_not"
MAX_TEXT = 200


def read_demographics(data: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    """The plan's ``demographics`` from the spec's table (None when the spec has none)."""
    if not data:
        return None
    def fail(key: str, msg: str) -> SpecError:
        return SpecError(f"{where}: key 'demographics.{key}': {msg}")
    unknown = sorted(set(data) - {"when", "items", "required", "age"})
    if unknown:
        raise fail(unknown[0], "unknown key; allowed here: when, items, required, age")
    when = data.get("when", "after_consent")
    if when not in WHEN:
        raise fail("when", f"{when!r} must be one of {', '.join(WHEN)}")
    items = data.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise fail("items", f"must list the items to ask, from: {', '.join(ITEMS)}")
    for i in items:
        if i not in ITEMS:
            raise fail("items", f"{i!r} is not a standard item; use: {', '.join(ITEMS)}")
    if len(set(items)) != len(items):
        raise fail("items", "names an item twice")
    required = data.get("required", [])
    if not isinstance(required, list) or any(r not in items for r in required):
        raise fail("required", "must be a list of items that are also in items")
    age = data.get("age", "years")
    if age not in AGE_FORMATS:
        raise fail("age", f"{age!r} must be one of {', '.join(AGE_FORMATS)}")
    return {"when": when, "age": age,
            "items": [{"id": i, "required": i in required} for i in ITEMS if i in items]}


def check_plan_demographics(d: Any, where: str) -> None:
    if not isinstance(d, dict) or d.get("when") not in WHEN or d.get("age") not in AGE_FORMATS \
            or not isinstance(d.get("items"), list) or not d["items"]:
        raise PlanError(f"{where}: key 'demographics' must have when ({', '.join(WHEN)}), age "
                        f"({', '.join(AGE_FORMATS)}) and a non-empty items list")
    for k, item in enumerate(d["items"]):
        if not isinstance(item, dict) or item.get("id") not in ITEMS or not isinstance(item.get("required"), bool):
            raise PlanError(f"{where}: key 'demographics.items[{k}]' must be {{id: one of {', '.join(ITEMS)}, "
                            f"required: true/false}}")


def clean_values(d: dict[str, Any], values: Any) -> dict[str, Any]:
    """The participant's answers checked against the plan's items. Raises ValueError naming the item."""
    if not isinstance(values, dict):
        raise ValueError("values must be an object of item -> answer")
    known = {i["id"]: i for i in d["items"]}
    extra = sorted(set(values) - set(known))
    if extra:
        raise ValueError(f"{extra[0]!r} is not asked in this study")
    out: dict[str, Any] = {}
    for item_id, item in known.items():
        v = values.get(item_id)
        if v is None or v == "":
            if item["required"]:
                raise ValueError(f"{item_id} is required (choose prefer not to say if you prefer)")
            continue
        if v == PREFER_NOT:
            out[item_id] = v
        elif item_id == "age" and d["age"] == "years":
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v.strip())
            if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 110:
                raise ValueError("age must be a whole number of years between 16 and 110")
            out[item_id] = v
        elif item_id == "age":
            if v not in AGE_BANDS:
                raise ValueError(f"age must be one of {', '.join(AGE_BANDS)}")
            out[item_id] = v
        elif item_id == "gender" and isinstance(v, str) and v.startswith("self:"):
            text = " ".join(v[5:].split())[:MAX_TEXT]
            if not text:
                raise ValueError("gender: describe it in your own words, or choose another answer")
            out[item_id] = "self:" + text
        elif item_id in FREE_TEXT:
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{item_id} must be text")
            out[item_id] = " ".join(v.split())[:MAX_TEXT]
        else:
            if v not in CHOICES[item_id]:
                raise ValueError(f"{item_id} must be one of {', '.join(CHOICES[item_id])} or {PREFER_NOT}")
            out[item_id] = v
    return out
