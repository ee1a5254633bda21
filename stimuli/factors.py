"""A design declared by its factors: the researcher's own study (``task = "factorial"``) and the paper's two.

A factor is a stimulus attribute of the manifest with the levels to use::

    [design]
    batches = 3
    clips_per_cell = 1          # distinct clips per cell over the whole study
    repeats_per_batch = 2       # consistency repeats per batch (repeats_per = "source": that many per level)
    min_repeat_gap = 2
    order = "per-participant"   # or "per-batch"
    counterbalance = "latin-square"
    counterbalance_factors = ["visual_emotion", "audio_emotion"]

    [design.factors]
    visual_emotion = { levels = ["anger", "happiness", "sadness"] }
    audio_emotion = { levels = ["anger", "happiness", "sadness"] }
    identity = { levels = "all" }                       # every value the set has
    source = { levels = ["OURS"], crossed = false }     # a filter, not a cell dimension
    condition = ...                                     # see ATTRIBUTES

Factors (``ATTRIBUTES``): ``visual_emotion``, ``audio_emotion``, ``emotion`` (visual, or audio when the
visual one is null), ``congruence`` (matched / mismatched), ``source`` (alias ``condition``), ``identity``,
``sentence``, ``intensity``, ``size_variant``. ``crossed`` (default true): the cells are the crossing of the
crossed factors' levels; a factor with ``crossed = false`` only restricts the clips. ``within`` (default
true): every participant sees every level; ``within = false`` (between participants): each batch shows one
level combination of the between factors, the combinations assigned to batches in turn (complete
counterbalancing: ``batches`` must be a multiple of their number).

How the clips of the cells go into batches (``counterbalance``):

``none``
    every batch shows every clip (a fully within design; batches differ only in order).
``complete``
    the clips of every cell are dealt to the batches in turn: each batch holds every cell
    ``clips_per_cell / batches`` times.
``latin-square``
    the paper's Task 2 (``counterbalance_factors`` = two factors with the same number n of levels, default
    visual and audio emotion): the copies of each (a, b) pair are laid out in Latin-square blocks
    (pi(a) + rho(b) + c = k mod n) and cut into equal batches, so that each batch holds every level of both
    factors equally often when its size is a multiple of n.
``rotation``
    the paper's Task 1 (``counterbalance_factors`` = [blocks, balanced], e.g. source and emotion): within each
    level of the first factor, batches take ``clips_per_cell * n / batches`` clips whose levels of the second
    factor rotate, so that a batch never holds a level twice per block and every level gets its share.
``shuffle``
    all clips shuffled and cut into equal batches (no balance; the paper's ``balanced = false``).

The two paper methods draw from the same random streams as before (``emotion-realness`` and
``av-mismatch``), so the ready-made specs written in this language give the same batches for the same seed.
A design that cannot be filled raises ``DesignError`` with every missing cell AND what would fill it
(``suggestions``): fewer clips per cell, fewer levels, or a factor not crossed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from itertools import product
from typing import Any, Callable, Sequence

from stimuli.batches import ORDERS, Batch, _check_ids, batch_id, clip_key, order_with_repeats
from stimuli.emotions import EMOTIONS
from stimuli.errors import DesignError
from stimuli.manifest import Stimulus
from stimuli.rng import StableRng


def _emotion(s: Stimulus) -> str | None:
    return s.visual_emotion if s.visual_emotion is not None else s.audio_emotion


def _congruence(s: Stimulus) -> str | None:
    if s.visual_emotion is None or s.audio_emotion is None:
        return None
    return "matched" if s.visual_emotion == s.audio_emotion else "mismatched"


ATTRIBUTES: dict[str, Callable[[Stimulus], str | None]] = {
    "visual_emotion": lambda s: s.visual_emotion,
    "audio_emotion": lambda s: s.audio_emotion,
    "emotion": _emotion,
    "congruence": _congruence,
    "source": lambda s: s.source,
    "condition": lambda s: s.source,
    "identity": lambda s: s.identity,
    "sentence": lambda s: s.sentence,
    "intensity": lambda s: s.intensity,
    "size_variant": lambda s: s.size_variant,
}
"""The stimulus attributes a factor can name, and how each is read from a manifest row."""

EMOTION_FACTORS = ("visual_emotion", "audio_emotion", "emotion")
COUNTERBALANCE = ("none", "complete", "latin-square", "rotation", "shuffle")


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, ...] | None = None  # None: every value of the set ("all")
    crossed: bool = True
    within: bool = True


@dataclass(frozen=True)
class FactorDesign:
    """A design declared by factors and levels (module docstring). ``kind`` is "factorial"."""

    factors: tuple[Factor, ...]
    batches: int = 1
    clips_per_cell: int = 1
    counterbalance: str = "none"
    counterbalance_factors: tuple[str, ...] = ()
    repeats_per_batch: int = 0
    repeats_per: str | None = None
    min_repeat_gap: int = 2
    order: str = "per-batch"
    mix_size_variants: bool = True

    kind = "factorial"

    def factor(self, name: str) -> Factor:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def crossed(self) -> tuple[Factor, ...]:
        return tuple(f for f in self.factors if f.crossed)

    @property
    def between(self) -> tuple[Factor, ...]:
        return tuple(f for f in self.factors if f.crossed and not f.within)

    def emotion_levels(self) -> tuple[str, ...] | None:
        """The emotions the design shows (the levels of its first emotion factor), None when it has none."""
        for f in self.factors:
            if f.name in EMOTION_FACTORS and f.levels is not None:
                return f.levels
        return None

    def as_plan(self) -> dict[str, Any]:
        return {"batches": self.batches, "clips_per_cell": self.clips_per_cell,
                "counterbalance": self.counterbalance, "counterbalance_factors": list(self.counterbalance_factors),
                "factors": [{"name": f.name, "levels": list(f.levels) if f.levels is not None else "all",
                             "crossed": f.crossed, "within": f.within} for f in self.factors],
                "min_repeat_gap": self.min_repeat_gap, "mix_size_variants": self.mix_size_variants,
                "order": self.order, "repeats_per": self.repeats_per, "repeats_per_batch": self.repeats_per_batch}


# ----------------------------------------------------------------------------------------- reading

def read_factor_design(t: Any) -> FactorDesign:
    """``[design]`` with a ``factors`` table, read from the spec's ``_Table`` ``t`` (errors name the key)."""
    raw = t.get("factors", dict, what="one entry per factor: name = { levels = [...] | \"all\", crossed, within }")
    if not raw:
        raise t.error("factors", "declare at least one factor, e.g. visual_emotion = { levels = \"all\" }")
    factors: list[Factor] = []
    for name, fraw in raw.items():
        key = f"factors.{name}"
        if name not in ATTRIBUTES:
            raise t.error(key, f"{name!r} is not a stimulus attribute; factors can be {', '.join(ATTRIBUTES)}")
        if not isinstance(fraw, dict):
            raise t.error(key, "must be a table { levels = [...] or \"all\", crossed = true, within = true }")
        unknown = sorted(set(fraw) - {"levels", "crossed", "within"})
        if unknown:
            raise t.error(f"{key}.{unknown[0]}", "unknown key; allowed here: crossed, levels, within")
        lv = fraw.get("levels", "all")
        if lv == "all":
            levels = None
        elif isinstance(lv, list) and lv and all(isinstance(x, str) and x.strip() for x in lv):
            levels = tuple(lv)
            if len(set(levels)) != len(levels):
                raise t.error(f"{key}.levels", f"{lv} names a level twice")
            if name in EMOTION_FACTORS:
                bad = [x for x in levels if x not in EMOTIONS]
                if bad:
                    raise t.error(f"{key}.levels", f"{bad[0]!r} is not an emotion; use {', '.join(EMOTIONS)}")
        else:
            raise t.error(f"{key}.levels", f"{lv!r} must be a non-empty list of level names or \"all\"")
        crossed, within = fraw.get("crossed", True), fraw.get("within", True)
        if not isinstance(crossed, bool) or not isinstance(within, bool):
            raise t.error(key, "crossed and within are true or false")
        if not within and not crossed:
            raise t.error(f"{key}.within", "a between-participant factor must be crossed (each batch shows one of "
                                           "its levels); remove within = false or crossed = false")
        factors.append(Factor(name=name, levels=levels, crossed=crossed, within=within))
    cb = t.text("counterbalance", "none")
    if cb not in COUNTERBALANCE:
        raise t.error("counterbalance", f"{cb!r} is not one of {', '.join(COUNTERBALANCE)}")
    cbf = t.strings("counterbalance_factors", [])
    design = FactorDesign(
        factors=tuple(factors), batches=t.int("batches", 1, 1), clips_per_cell=t.int("clips_per_cell", 1, 1),
        counterbalance=cb, counterbalance_factors=cbf, repeats_per_batch=t.int("repeats_per_batch", 0, 0),
        repeats_per=t.get("repeats_per", str, None), min_repeat_gap=t.int("min_repeat_gap", 2, 1),
        order=t.text("order", "per-batch"), mix_size_variants=t.get("mix_size_variants", bool, True))
    if design.order not in ORDERS:
        raise t.error("order", f"{design.order!r} is not one of {', '.join(ORDERS)}")
    try:
        check_factor_design(design)
    except DesignError as exc:
        raise t.error("factors" if "factor" in str(exc) else "counterbalance", str(exc)) from None
    return design


def _cb_factors(d: FactorDesign) -> tuple[str, ...]:
    if d.counterbalance_factors:
        return d.counterbalance_factors
    if d.counterbalance == "latin-square":
        return ("visual_emotion", "audio_emotion")
    if d.counterbalance == "rotation":
        return ("source", "emotion")
    return ()


def check_factor_design(d: FactorDesign) -> None:
    """The structural rules that do not need the set (raises ``DesignError``)."""
    names = [f.name for f in d.factors]
    crossed = [f.name for f in d.crossed]
    if not crossed:
        raise DesignError("no crossed factor: at least one factor must define the cells")
    for name in _cb_factors(d):
        if name not in crossed:
            raise DesignError(f"counterbalance {d.counterbalance!r} balances factor {name!r}, which is not a crossed "
                              f"factor of the design (crossed: {', '.join(crossed)})")
    if d.counterbalance in ("latin-square", "rotation") and len(_cb_factors(d)) != 2:
        raise DesignError(f"counterbalance {d.counterbalance!r} needs two factors in counterbalance_factors")
    if d.counterbalance == "rotation":
        extra = [n for n in crossed if n not in _cb_factors(d)]
        if extra:
            raise DesignError(f"counterbalance \"rotation\" balances one factor within the levels of another; the "
                              f"crossed factor(s) {', '.join(extra)} have no place in it: make them crossed = false "
                              "(a filter) or use counterbalance = \"complete\" / \"latin-square\"")
    if d.repeats_per is not None and d.repeats_per not in names:
        raise DesignError(f"repeats_per {d.repeats_per!r} is not a factor of the design ({', '.join(names)})")
    if any(not f.within for f in d.factors) and d.counterbalance in ("latin-square", "rotation"):
        for name in _cb_factors(d):
            if not d.factor(name).within:
                raise DesignError(f"factor {name!r} is between participants but counterbalanced within batches")


# ------------------------------------------------------------------------------------------- cells

def resolve_levels(d: FactorDesign, stimuli: Sequence[Stimulus]) -> dict[str, tuple[str, ...]]:
    """Levels per factor: the declared ones, or (``"all"``) every value (sorted) of the clips that have the
    declared levels of the other factors."""
    out: dict[str, tuple[str, ...]] = {}
    fixed = [f for f in d.factors if f.levels is not None]
    stimuli = [s for s in stimuli if all(ATTRIBUTES[f.name](s) in f.levels for f in fixed)]  # type: ignore[operator]
    for f in d.factors:
        if f.levels is not None:
            out[f.name] = f.levels
        else:
            get = ATTRIBUTES[f.name]
            out[f.name] = tuple(sorted({v for s in stimuli if (v := get(s)) is not None}))
            if not out[f.name]:
                raise DesignError(f"factor {f.name!r} (levels = \"all\"): no stimulus of the set has a {f.name}")
    return out


def _eligible(d: FactorDesign, levels: dict[str, tuple[str, ...]], stimuli: Sequence[Stimulus]) -> list[Stimulus]:
    return [s for s in stimuli if all(ATTRIBUTES[f.name](s) in levels[f.name] for f in d.factors)]


def cell_pools(d: FactorDesign, levels: dict[str, tuple[str, ...]],
               stimuli: Sequence[Stimulus]) -> dict[tuple[str, ...], list[Stimulus]]:
    """Cell (levels of the crossed factors, in declared order) -> its stimuli, sorted by id."""
    crossed = d.crossed
    pools: dict[tuple[str, ...], list[Stimulus]] = {c: [] for c in product(*(levels[f.name] for f in crossed))}
    for s in _eligible(d, levels, stimuli):
        pools[tuple(ATTRIBUTES[f.name](s) for f in crossed)].append(s)  # type: ignore[index]
    return {c: sorted(v, key=lambda s: s.stimulus_id) for c, v in pools.items()}


def missing_cells(d: FactorDesign, levels: dict[str, tuple[str, ...]],
                  stimuli: Sequence[Stimulus]) -> list[tuple[tuple[str, ...], int]]:
    """(cell, clips it has) for every cell with fewer than ``clips_per_cell`` stimuli."""
    return [(c, len(p)) for c, p in cell_pools(d, levels, stimuli).items() if len(p) < d.clips_per_cell]


def _describe(d: FactorDesign, cell: tuple[str, ...]) -> str:
    return ", ".join(f"{f.name} {v}" for f, v in zip(d.crossed, cell))


def suggestions(d: FactorDesign, stimuli: Sequence[Stimulus]) -> list[str]:
    """What would fill a design the set cannot fill: fewer clips per cell, fewer levels of a factor, or a
    factor not crossed (balanced over instead of split into cells). Each suggestion was checked against
    the set (its cells are all filled); the batch arithmetic is checked when the plan is compiled."""
    levels = resolve_levels(d, stimuli)
    pools = cell_pools(d, levels, stimuli)
    out: list[str] = []
    have = min((len(p) for p in pools.values()), default=0)
    if 1 <= have < d.clips_per_cell:
        out.append(f"clips_per_cell = {have} (every cell has at least {have})")
    crossed = [f.name for f in d.crossed]
    tried: set[tuple[str, ...]] = set()
    for f in d.crossed:
        # Drop, one at a time, the level with the most short cells (for a Latin square: of both factors).
        names = (tuple(_cb_factors(d)) if d.counterbalance == "latin-square" and f.name in _cb_factors(d)
                 else (f.name,))
        if names in tried:
            continue
        tried.add(names)
        keep = list(levels[names[0]])
        tl = dict(levels)
        least = 2 if f.name in EMOTION_FACTORS or len(names) == 2 else 1
        while True:
            short = [c for c, p in cell_pools(d, tl, stimuli).items() if len(p) < d.clips_per_cell]
            if not short or len(keep) <= least:
                break
            bad = Counter(c[crossed.index(n)] for c in short for n in names)
            worst = max(keep, key=lambda v: (bad[v], -keep.index(v)))
            if not bad[worst]:
                break
            keep.remove(worst)
            tl = {**tl, **{n: tuple(x for x in tl[n] if x != worst) for n in names}}
        if not short and len(keep) < len(levels[names[0]]):
            dropped = [v for v in levels[names[0]] if v not in keep]
            out.append(f"levels of {' and '.join(names)} = {keep} (without {', '.join(dropped)})")
    for f in d.crossed:
        if f.name in _cb_factors(d) or len(d.crossed) < 2:
            continue
        trial = replace(d, factors=tuple(replace(g, crossed=False, within=True) if g.name == f.name else g
                                         for g in d.factors))
        if not missing_cells(trial, resolve_levels(trial, stimuli), stimuli):
            out.append(f"{f.name} = {{ ..., crossed = false }} (balance over {f.name} instead of splitting cells "
                       f"by it: {len(pools) // max(1, len(levels[f.name]))} cells of {d.clips_per_cell} clip(s))")
    return out


def _fill_error(d: FactorDesign, stimuli: Sequence[Stimulus], short: list[tuple[tuple[str, ...], int]],
                n_cells: int) -> DesignError:
    listed = "; ".join(f"{_describe(d, c)}: have {n}, need {d.clips_per_cell}" for c, n in short[:12])
    more = f"; ... {len(short) - 12} more" if len(short) > 12 else ""
    fixes = suggestions(d, stimuli)
    fix = (" What would fill it: " + "; or ".join(fixes) + "." if fixes else
           " No smaller version of this design fits the set: add clips for the missing cells (emostudy generate "
           "--design factorial --emotions ...).")
    return DesignError(f"the set cannot fill the design ({n_cells} cells x {d.clips_per_cell} clip(s)); missing "
                       f"{len(short)} of {n_cells} cells: {listed}{more}.{fix}")


# ------------------------------------------------------------------------------------------ batches

def _repeats(ids: Sequence[str], d: FactorDesign, by_id: dict[str, Stimulus], levels: dict[str, tuple[str, ...]],
             brng: StableRng) -> list[str]:
    if d.repeats_per is None:
        if d.repeats_per_batch > len(ids):
            raise DesignError(f"design 'repeats_per_batch' ({d.repeats_per_batch}) is larger than a batch "
                              f"({len(ids)})")
        return brng.child("repeat").sample(sorted(ids), d.repeats_per_batch)
    get = ATTRIBUTES[d.repeats_per]
    out: list[str] = []
    for lv in levels[d.repeats_per]:
        mine = sorted(i for i in ids if get(by_id[i]) == lv)
        if len(mine) < d.repeats_per_batch:
            raise DesignError(f"design 'repeats_per_batch' ({d.repeats_per_batch} per {d.repeats_per}) is more than "
                              f"the {len(mine)} clip(s) of {d.repeats_per} {lv} in a batch")
        out.extend(brng.child(f"repeat/{lv}").sample(mine, d.repeats_per_batch))
    return out


def build_factorial(stimuli: Sequence[Stimulus], d: FactorDesign, seed: int) -> tuple[tuple[Any, ...], list[str]]:
    """Batches of a factor design (module docstring). Returns (batches, notes)."""
    _check_ids(stimuli)
    check_factor_design(d)
    levels = resolve_levels(d, stimuli)
    by_id = {s.stimulus_id: s for s in stimuli}
    between = d.between
    combos = list(product(*(levels[f.name] for f in between))) if between else [()]
    if d.batches % len(combos):
        raise DesignError(f"{len(combos)} combination(s) of the between-participant factor(s) "
                          f"{', '.join(f.name for f in between)} need a number of batches that is a multiple of "
                          f"{len(combos)} (each combination the same number of batches); batches = {d.batches}")
    per_group = d.batches // len(combos)
    if d.counterbalance == "rotation":
        groups, notes = _rotation(stimuli, d, levels, seed)
    else:
        pools = cell_pools(d, levels, stimuli)
        short = [(c, len(p)) for c, p in pools.items() if len(p) < d.clips_per_cell]
        if short:
            raise _fill_error(d, stimuli, short, len(pools))
        notes = []
        groups = [[] for _ in range(d.batches)]
        idx = {f.name: i for i, f in enumerate(d.crossed)}
        for g, combo in enumerate(combos):
            sub = {c: p for c, p in pools.items() if all(c[idx[f.name]] == v for f, v in zip(between, combo))}
            label = "" if not between else "between/" + "/".join(combo) + "/"
            gg, gnotes = _split(d, sub, levels, seed, per_group, label)
            for j, ids in enumerate(gg):
                groups[j * len(combos) + g] = ids
            notes += [n for n in gnotes if n not in notes]
        if between:
            notes.append(f"between participants: {', '.join(f.name for f in between)}; batch b shows combination "
                         f"b mod {len(combos)} of ({' x '.join(str(len(levels[f.name])) for f in between)}) levels")
    root = {"rotation": "emotion-realness", "latin-square": "av-mismatch", "shuffle": "av-mismatch"}.get(
        d.counterbalance, "factorial")
    rng = StableRng(seed, root)
    batches = []
    for b, ids in enumerate(groups):
        brng = rng.child(f"batch{b}")
        repeated = _repeats(ids, d, by_id, levels, brng)
        items = order_with_repeats(ids, repeated, d.min_repeat_gap, brng.child("order"))
        batches.append(Batch(batch_id=batch_id(b), index=b, items=items))
    return tuple(batches), notes


def _split(d: FactorDesign, pools: dict[tuple[str, ...], list[Stimulus]], levels: dict[str, tuple[str, ...]],
           seed: int, n_batches: int, label: str) -> tuple[list[list[str]], list[str]]:
    """The clips of ``pools`` (cells) cut into ``n_batches`` lists of ids."""
    cells = list(pools)
    if d.counterbalance in ("latin-square", "shuffle"):
        rng = StableRng(seed, "av-mismatch")
        chosen = {c: rng.child(label + "pair/" + "/".join(c)).sample(pools[c], d.clips_per_cell) for c in cells}
    else:
        rng = StableRng(seed, "factorial")
        chosen = {c: rng.child(label + "cell/" + "/".join(c)).sample(pools[c], d.clips_per_cell) for c in cells}
    total = len(cells) * d.clips_per_cell
    if d.counterbalance == "none":
        ids = [s.stimulus_id for c in cells for s in chosen[c]]
        return [list(ids) for _ in range(n_batches)], [f"counterbalance none: every batch shows all {len(ids)} clips"]
    if d.counterbalance == "complete":
        if d.clips_per_cell % n_batches:
            raise DesignError(f"counterbalance \"complete\" deals each cell's {d.clips_per_cell} clip(s) to "
                              f"{n_batches} batches: clips_per_cell must be a multiple of {n_batches}; use "
                              f"clips_per_cell = {n_batches * max(1, round(d.clips_per_cell / n_batches))} or "
                              "counterbalance = \"none\" / \"latin-square\"")
        groups = [[] for _ in range(n_batches)]
        for c in cells:
            for k, s in enumerate(rng.child(label + "deal/" + "/".join(c)).shuffled(chosen[c])):
                groups[k % n_batches].append(s.stimulus_id)
        return groups, [f"counterbalance complete: each batch holds every one of the {len(cells)} cells "
                        f"{d.clips_per_cell // n_batches} time(s)"]
    if total % n_batches:
        raise DesignError(f"cannot split {len(cells)} cells x {d.clips_per_cell} = {total} clips evenly over "
                          f"{n_batches} batches; choose a number of batches that divides {total}")
    size = total // n_batches
    if d.counterbalance == "shuffle":
        seq = rng.child(label + "shuffle").shuffled([s.stimulus_id for c in cells for s in chosen[c]])
        return ([seq[i * size:(i + 1) * size] for i in range(n_batches)],
                ["av-mismatch: plain shuffle and split (balanced = false)"])
    # latin-square
    fa, fb = _cb_factors(d)
    crossed = [f.name for f in d.crossed]
    ia, ib = crossed.index(fa), crossed.index(fb)
    la, lb = levels[fa], levels[fb]
    n = len(la)
    if len(lb) != n:
        raise DesignError(f"counterbalance \"latin-square\" needs {fa} and {fb} to have as many levels each "
                          f"({len(la)} and {len(lb)}); use the same number, or counterbalance = \"complete\"")
    copies: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in cells:  # cells in declared order: the copies of a pair over the other crossed factors
        copies[(c[ia], c[ib])].extend(s.stimulus_id for s in chosen[c])
    n_copies = len(cells) // (n * n) * d.clips_per_cell
    pi = rng.child(label + "pi").shuffled(range(n))
    rho = rng.child(label + "rho").shuffled(range(n))
    seq: list[str] = []
    for k in range(n):
        for cc in range(n_copies):
            block = [copies[(va, vb)][cc] for va in la for vb in lb
                     if (pi[la.index(va)] + rho[lb.index(vb)] + cc) % n == k]
            seq.extend(rng.child(label + f"block/{k}/{cc}").shuffled(block))
    groups = [seq[i * size:(i + 1) * size] for i in range(n_batches)]
    groups = [groups[j] for j in rng.child(label + "batch-order").shuffled(range(n_batches))]
    if (fa, fb) == ("visual_emotion", "audio_emotion"):
        note = ("av-mismatch: balanced split (Latin squares): each batch holds every visual and every audio "
                f"emotion equally often when the batch size is a multiple of {n}")
    else:
        note = (f"latin-square split over {fa} x {fb}: each batch holds every level of both equally often when "
                f"the batch size is a multiple of {n}")
    return groups, [note]


def _rotation(stimuli: Sequence[Stimulus], d: FactorDesign, levels: dict[str, tuple[str, ...]],
              seed: int) -> tuple[list[list[str]], list[str]]:
    """The paper's Task 1 split, generalised from six emotions to any levels (module docstring)."""
    fb, fe = _cb_factors(d)
    blocks, emos = levels[fb], levels[fe]
    get_b, get_e = ATTRIBUTES[fb], ATTRIBUTES[fe]
    n_emo = len(emos)
    total = d.clips_per_cell * n_emo
    if total % d.batches:
        raise DesignError(f"cannot rotate {n_emo} levels of {fe} x {d.clips_per_cell} clips per cell = {total} clips "
                          f"per {fb} over {d.batches} batches; choose clips_per_cell so that {n_emo} x clips_per_cell "
                          f"is a multiple of {d.batches} (the paper: 6 x 5 = 30 over 6 batches)")
    per_batch = total // d.batches
    per_emotion = d.clips_per_cell
    rng = StableRng(seed, "emotion-realness")
    notes: list[str] = []
    eligible = _eligible(d, levels, stimuli)
    missing: list[str] = []
    plan_per_block: dict[str, list[list[Stimulus]]] = {}
    for src in blocks:
        pool = [s for s in eligible if get_b(s) == src and get_e(s) is not None]
        if not pool:
            known = ", ".join(sorted({get_b(s) or "-" for s in stimuli})) or "none"
            missing.append(f"{fb} {src!r} has no stimuli with a {fe} (values in the set: {known})")
            continue
        variants = sorted({s.size_variant for s in pool if s.size_variant is not None})
        mix = d.mix_size_variants and len(variants) > 1
        if mix:
            notes.append(f"{src}: mixes size variants {', '.join(variants)} evenly within each emotion")
        srng = rng.child(src)
        perm = srng.shuffled(list(emos))
        slots: list[tuple[str, str | None]] = []
        seen: Counter[str] = Counter()
        for i in range(total):
            emo = perm[i % n_emo]
            t = seen[emo]
            seen[emo] += 1
            variant = variants[(emos.index(emo) * per_emotion + t) % len(variants)] if mix else None
            slots.append((emo, variant))
        need = Counter(slots)
        chosen: dict[tuple[str, str | None], list[Stimulus]] = {}
        for key in sorted(need, key=lambda k: (emos.index(k[0]), k[1] or "")):
            emo, variant = key
            cands = sorted((s for s in pool if get_e(s) == emo and (variant is None or s.size_variant == variant)),
                           key=lambda s: s.stimulus_id)
            if len(cands) < need[key]:
                size = f", size variant {variant}" if variant else ""
                missing.append(f"{fb} {src!r}, {fe} {emo}{size}: have {len(cands)}, need {need[key]}")
                continue
            taken_clips = {clip_key(x) for k2, xs in chosen.items() if k2[0] == emo for x in xs}
            distinct = [s for s in cands if clip_key(s) not in taken_clips]
            if len(distinct) >= need[key]:
                cands = distinct
            elif taken_clips:
                notes.append(f"{src}: some {emo} clips appear in two size variants (too few distinct clips)")
            chosen[key] = srng.child(f"{emo}/{variant}").sample(cands, need[key])
        if missing:
            continue
        taken: Counter[tuple[str, str | None]] = Counter()
        per_b: list[list[Stimulus]] = [[] for _ in range(d.batches)]
        for i, key in enumerate(slots):
            per_b[i // per_batch].append(chosen[key][taken[key]])
            taken[key] += 1
        order = srng.shuffled(range(d.batches))
        plan_per_block[src] = [per_b[j] for j in order]
    if missing:
        fixes = suggestions(d, stimuli)
        fix = (" What would fill it: " + "; or ".join(fixes) + "." if fixes else "")
        raise DesignError(f"the set cannot fill the design ({d.batches} batches x {per_batch} per {fb}, "
                          f"{per_emotion} per {fe} and {fb}): " + "; ".join(missing) + fix)
    groups = [[s.stimulus_id for src in blocks for s in plan_per_block[src][b]] for b in range(d.batches)]
    return groups, notes


# ------------------------------------------------------------------------------------------ preview

def design_table(plan: dict[str, Any], manifest: Any) -> dict[str, Any]:
    """The design table of a compiled plan: cells (crossed factors' levels) with their clips per cell over
    the study, per-batch counts of every cell, and the balance achieved (min/max per batch of every level of
    every crossed factor). Works for any plan; the factors are the plan's, or source and emotion."""
    d = plan.get("design", {})
    if isinstance(d.get("factors"), list):
        names = [f["name"] for f in d["factors"] if f.get("crossed", True)]
    elif plan["study"]["task"] == "av-mismatch":
        names = ["visual_emotion", "audio_emotion"]
    else:
        names = ["source", "emotion"]
    cells: dict[tuple[str, ...], list[int]] = {}
    nb = len(plan["batches"])
    per_level: dict[str, dict[str, list[int]]] = {n: {} for n in names}
    n_items, n_rep = [], []
    for b in plan["batches"]:
        n_items.append(len(b["items"]))
        n_rep.append(sum(i["repeat_of"] is not None for i in b["items"]))
        for it in b["items"]:
            if it["repeat_of"] is not None:
                continue
            s = manifest[it["stimulus_id"]]
            key = tuple(str(ATTRIBUTES[n](s)) for n in names)
            cells.setdefault(key, [0] * nb)[b["index"]] += 1
            for n, v in zip(names, key):
                per_level[n].setdefault(v, [0] * nb)[b["index"]] += 1
    balance = {n: {v: {"min": min(c), "max": max(c)} for v, c in sorted(lv.items())} for n, lv in per_level.items()}
    return {"factors": names, "batches": [b["batch_id"] for b in plan["batches"]],
            "cells": [{"cell": list(k), "clips": sum(c), "per_batch": c} for k, c in sorted(cells.items())],
            "items_per_batch": n_items, "repeats_per_batch": n_rep, "balance": balance,
            "balanced": {n: all(x["min"] == x["max"] for x in lv.values()) for n, lv in balance.items()}}


def format_design_table(table: dict[str, Any]) -> str:
    """The design table as text (``emostudy plan --preview``)."""
    names, bids = table["factors"], table["batches"]
    head = [*names, "clips", *bids]
    rows = [[*c["cell"], str(c["clips"]), *map(str, c["per_batch"])] for c in table["cells"]]
    rows.append(["items per batch", *[""] * len(names), *map(str, table["items_per_batch"])])
    rows.append(["repeats per batch", *[""] * len(names), *map(str, table["repeats_per_batch"])])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    out = [f"Design: {' x '.join(names)}: {len(table['cells'])} cells over {len(bids)} batch(es)", line(head),
           line(["-" * w for w in widths]), *map(line, rows), "", "Balance (originals per batch, min..max per level):"]
    for n in names:
        lv = table["balance"][n]
        parts = ", ".join(f"{v} {x['min']}..{x['max']}" for v, x in lv.items())
        out.append(f"  {n}: {'balanced' if table['balanced'][n] else 'NOT balanced'} ({parts})")
    return "\n".join(out) + "\n"


__all__ = ["ATTRIBUTES", "COUNTERBALANCE", "Factor", "FactorDesign", "read_factor_design", "build_factorial",
           "resolve_levels", "cell_pools", "missing_cells", "suggestions", "design_table", "format_design_table"]
