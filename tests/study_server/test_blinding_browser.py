"""A participant who reads everything the browser receives learns nothing of the design (issue 15).

A scripted participant in headless Chromium takes a whole Task 1 and a whole Task 2 session of demo-like
studies (plans compiled by ``emostudy plan`` from specs, on sets whose files differ in size by source and
were written condition by condition, so that file sizes, times and hashes *would* give the design away)
and records every response: status, headers, body, and the browser's timing of it.

Then, per trial, the features a participant could read - every header value but ``Date`` (names, ETag,
Last-Modified, Cache-Control, Content-Type, the total length in ``Content-Range``), the bytes received,
the hash of the body, and the browser's response time - feed a leave-one-out nearest-neighbour classifier
(``nearest``) of the trial's source (Task 1), visual emotion (Task 2), and original of each repeat (both).

The bound. Leave-one-out nearest-neighbour predictions are not independent (two trials that are each
other's nearest neighbour are right or wrong together), so a binomial bound would be too tight and the test
flaky. The null distribution is the one of the same classifier with the labels permuted among the trials
(``permutation_p``: 10,000 seeded permutations; the neighbours do not depend on the labels, so only the
labels move): "no better than chance" is p > 0.001 for each of the three targets, and the same classifier
on what the server used to send (each file's own size, modification time and hash: ``legacy_features``)
must reach p <= 0.001 - so the test can fail, and does for the old server. With 3 targets x 2 databases,
a clean server fails a run by chance with probability at most 0.6%. For the repeats, whose chance is
1 / (n - 1) per repeat, the bound is binomial (a repeat's neighbour is one draw): at most
``binomial_upper(5, 1/25, 0.001) - 1 = 2`` of the 5 repeats may be found.

What the features leave out on purpose: the time *between* two requests. It is the participant's own
pace plus the clip's duration, which a participant perceives by watching; the server cannot hide it
without hiding the clip. And no two trial responses share their bytes unless they are the same position
fetched again (a repeat is other bytes than its original).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from studykit import serve_in_thread, word_check_and_examples

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ALPHA = 0.001
SOURCES = ("FULL", "LIPS", "STILL")

TASK1_SPEC = """
[study]
name = "blind-task1"
title = "Task 1 (FULL, LIPS, STILL)"
task = "emotion-realness"
description = "FULL, LIPS, STILL: 2 batches of 3 + 3 + 3 and one consistency repeat per source."
[participant]
title = "Emotion and realness of talking-face videos"
intro = "Watch short videos and answer three questions about each."
instructions = "Watch each video to the end with the sound on."
[design]
batches = 2
sources = ["FULL", "LIPS", "STILL"]
per_source = 3
repeats_per_source = 1
mix_size_variants = false
[examples]
per_emotion = 1
sources = ["FULL"]
[[questions]]
id = "emotion"
type = "single"
prompt = "Which emotion is primarily expressed by the person?"
options = "emotions"
[[questions]]
id = "realness"
type = "scale"
prompt = "How realistic is the video?"
options = [{value = "real", label = "Real", score = 2}, {value = "unreal", label = "Unreal", score = 1}]
[consistency]
max_inconsistent = 5
rules = [{question = "emotion", kind = "equal"}]
[audio_check]
enabled = true
"""

TASK2_SPEC = """
[study]
name = "blind-task2"
title = "Task 2 (36 pairs)"
task = "av-mismatch"
description = "All 36 pairs once, 3 batches of 12 plus 2 consistency repeats."
[participant]
title = "Emotions of talking faces"
instructions = "Watch each video to the end with the sound on."
[design]
batches = 3
per_pair = 1
repeats_per_batch = 2
sources = ["WARP"]
[examples]
per_emotion = 1
sources = ["WARP"]
[[questions]]
id = "primary"
type = "single"
prompt = "Which is the primary emotion expressed by the person?"
options = "emotions"
[[questions]]
id = "secondary"
type = "single"
prompt = "Which is the secondary emotion expressed by the person?"
options = "emotions+none"
[consistency]
max_inconsistent = 2
rules = [{question = "primary", kind = "equal"}, {question = "secondary", kind = "equal"}]
"""


# ---------------------------------------------------------------------------------- the sets

def _clip(path: Path, *, motion: float, level: int, seed: int) -> None:
    """A 0.4 s, 64x64 H.264+AAC clip; more ``motion``, more bytes (as FULL > LIPS > STILL in the demo)."""
    from generator.mediaio import write_mp4

    rng = np.random.default_rng(seed)
    base = np.full((64, 64, 3), level, np.uint8)
    frames = np.stack([np.clip(base + motion * rng.normal(0, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
                       for _ in range(10)])
    t = np.arange(int(0.4 * 16000)) / 16000
    write_mp4(path, frames, fps=25, audio=(0.2 * np.sin(2 * np.pi * (180 + 7 * seed) * t)).astype(np.float32),
              audio_rate=16000)


def _set(root: Path, rows: list[dict]) -> Path:
    """Write the clips in the order of ``rows`` (condition by condition), one second apart in mtime."""
    import os

    from stimuli.manifest import build_manifest, save_manifest, sha256_file

    (root / "media").mkdir(parents=True)
    for k, r in enumerate(rows):
        path = root / r["media"]
        _clip(path, motion=r.pop("motion"), level=r.pop("level"), seed=k)
        os.utime(path, (1_700_000_000 + k, 1_700_000_000 + k))  # the order the files were written in
        r.update(sha256=sha256_file(path), duration_s=0.4, fps=25.0, width=64, height=64, audio_rate=48000,
                 identity=f"id{k % 2}", sentence=f"S{k}", provenance={"backend": "test"})
    save_manifest(build_manifest(root, rows, name=root.name, check_media=True))
    return root


def task1_set(root: Path) -> Path:
    from stimuli.emotions import EMOTIONS

    motion = {"FULL": 1.0, "LIPS": 0.5, "STILL": 0.0}
    rows = []
    for src in SOURCES:  # condition by condition, as the generator writes them
        for copy in range(2 if src == "FULL" else 1):  # FULL: trials + unused examples
            for e in EMOTIONS:
                rows.append({"stimulus_id": f"{src.lower()}-{e}-{copy}", "media": f"media/{src}_{e}_{copy}.mp4",
                             "source": src, "visual_emotion": e, "audio_emotion": e, "motion": motion[src],
                             "level": 60 + 20 * EMOTIONS.index(e)})
    return _set(root, rows)


def task2_set(root: Path) -> Path:
    from stimuli.emotions import EMOTIONS

    rows = []
    for v in EMOTIONS:  # visual emotion by visual emotion
        for a in EMOTIONS:
            for copy in range(2 if v == a else 1):  # congruent: a trial clip and an example clip
                rows.append({"stimulus_id": f"{v}-{a}-{copy}", "media": f"media/{v}_{a}_{copy}.mp4",
                             "source": "WARP", "visual_emotion": v, "audio_emotion": a,
                             "motion": 0.2 + 0.15 * EMOTIONS.index(v), "level": 100})
    return _set(root, rows)


def _plan(spec_text: str, set_dir: Path, out: Path) -> Path:
    from stimuli.manifest import load_manifest
    from stimuli.plan import compile_plan, write_plan
    from stimuli.spec import parse_spec

    write_plan(compile_plan(parse_spec(spec_text, where="spec.toml"), load_manifest(set_dir), seed=3), out)
    return out


# ------------------------------------------------------------------------------ the statistics

def binomial_upper(n: int, p: float, alpha: float = ALPHA) -> int:
    """The smallest k with P[Binomial(n, p) >= k] <= alpha: k or more right is not chance."""
    tail = 1.0
    for k in range(n + 1):
        if tail <= alpha:
            return k
        tail -= math.comb(n, k) * p ** k * (1 - p) ** (n - k)
    return n + 1


def _distance(a: dict, b: dict, scale: dict[str, float]) -> float:
    d = 0.0
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            d += abs(x - y) / scale[key]
        else:
            d += x != y
    return d


def nearest(features: list[dict], seed: int = 0) -> list[int]:
    """Each trial's leave-one-out nearest neighbour (numbers scaled by their range; other values count 1 when
    they differ; ties broken at random)."""
    rng = random.Random(seed)
    numeric = {k for f in features for k, v in f.items() if isinstance(v, (int, float))}
    scale = {k: (max(f.get(k, 0) for f in features) - min(f.get(k, 0) for f in features)) or 1.0 for k in numeric}
    out = []
    for i, fi in enumerate(features):
        dist = [(_distance(fi, f, scale), j) for j, f in enumerate(features) if j != i]
        best = min(d for d, _ in dist)
        out.append(rng.choice([j for d, j in dist if d == best]))
    return out


def permutation_p(features: list[dict], labels: list, n_perm: int = 10_000, seed: int = 0) -> tuple[int, float]:
    """(right, p): nearest-neighbour predictions of ``labels`` right, and the permutation p-value of that."""
    nn = nearest(features, seed)
    right = sum(labels[j] == labels[i] for i, j in enumerate(nn))
    rng = random.Random(seed + 1)
    perm = list(labels)
    at_least = 0
    for _ in range(n_perm):
        rng.shuffle(perm)
        at_least += sum(perm[j] == perm[i] for i, j in enumerate(nn)) >= right
    return right, (1 + at_least) / (1 + n_perm)


def repeats_found(features: list[dict], pairs: dict[int, int], seed: int = 0) -> tuple[int, int]:
    """(right, bound) for finding each repeat's original as its nearest neighbour (chance 1 / (n - 1))."""
    nn = nearest(features, seed)
    return sum(nn[r] == o for r, o in pairs.items()), binomial_upper(len(pairs), 1 / (len(features) - 1))


def test_the_bounds():
    # By hand: P[Bin(10, 0.5) >= 9] = 11/1024 = 0.0107 > 0.01, P[>= 10] = 1/1024: 10 right is not chance.
    assert binomial_upper(10, 0.5, 0.01) == 10
    assert binomial_upper(20, 0.05, 0.01) == 5  # P[>= 4] = 0.0159, P[>= 5] = 0.0026
    assert binomial_upper(5, 1 / 25) == 3  # P[>= 2] = 0.0148, P[>= 3] = 0.00060
    leak = [{"x": i % 3} for i in range(12)]
    assert permutation_p(leak, [i % 3 for i in range(12)])[1] <= ALPHA  # a perfect leak is found
    right, p = permutation_p([{"x": 0}] * 12, [i % 3 for i in range(12)])
    assert p > ALPHA  # nothing to go on: chance


# --------------------------------------------------------------------------------- the session

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_app(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


@pytest.fixture
def served(any_app):
    with serve_in_thread(any_app) as base:
        yield any_app, base




def _take_session(browser, base: str, study: str, secret: str) -> tuple[str, list[dict]]:
    """Consent to completion in Chromium; every response recorded (url, status, headers, body, timing)."""
    context = browser.new_context()
    page = context.new_page()
    records: list[dict] = []

    def record(response) -> None:
        rec = {"url": response.url, "status": response.status, "headers": response.all_headers(),
               "request_range": response.request.headers.get("range")}
        try:
            rec["body"] = response.body()
        except Exception:  # a redirect has no body; Chromium may keep no copy of a media range response
            rec["body"] = b""
            if "/m/" in response.url:  # then read the same range again (the server's bytes are fixed)
                headers = {"range": rec["request_range"]} if rec["request_range"] else {}
                rec["body"] = context.request.get(response.url, headers=headers).body()
        timing = response.request.timing
        rec["ms"] = max(0.0, timing["responseEnd"] - timing["requestStart"])
        records.append(rec)

    page.on("response", record)
    page.goto(f"{base}/s/{study}?lab=blind-{study}")
    token = page.url.rsplit("/", 1)[1]
    page.click("#consent-yes")
    page.click("#instructions-next")
    state = page.evaluate("(api) => fetch(api).then(r => r.json())", page.eval_on_selector("#app", "el => el.dataset.api"))
    word_check_and_examples(page, state, secret, token)
    for _ in state["items"]:
        page.wait_for_selector("#step-trial:not([hidden])")
        page.click("#trial-play")
        page.wait_for_function("() => !document.querySelector('#questions fieldset').disabled", timeout=15000)
        for q in state["questions"]:
            page.click(f"label[for='q-{q['id']}-0']")
        page.click("#trial-next")
    page.wait_for_url(re.compile(r"/a/[^/]+/done$"), timeout=30000)
    context.close()
    return token, records


def _features(records: list[dict], slot_kind: str = "t") -> dict[int, dict]:
    """Per slot (trial position): what the browser received for it, as a participant could read it."""
    per: dict[int, dict] = defaultdict(dict)
    for rec in records:
        m = re.search(rf"/m/[^/]+/{slot_kind}(\d+)/", rec["url"])
        if not m:
            continue
        f = per[int(m.group(1))]
        h = rec["headers"]
        total = re.search(r"/(\d+)$", h.get("content-range", ""))
        f.setdefault("status", rec["status"])
        f.setdefault("ms", rec["ms"])
        f["size"] = int(total.group(1)) if total else int(h.get("content-length", len(rec["body"])))
        f["bytes_received"] = f.get("bytes_received", 0) + len(rec["body"])
        f["body"] = hashlib.sha256(rec["body"]).hexdigest()
        for name, value in h.items():
            if name not in ("date", "content-range", "content-length"):
                f[f"h:{name}"] = value
        if "h:last-modified" in f:
            from email.utils import parsedate_to_datetime

            f["last_modified"] = parsedate_to_datetime(f["h:last-modified"]).timestamp()
    return per


def _truth(app, token: str) -> tuple[list[dict], dict[int, int]]:
    """Per shown position: the stimulus' manifest labels; and repeat position -> original position."""
    from study_server.study.context import load
    from study_server.store.extensions import db
    from study_server.store.models import StudyStimulus

    with app.test_request_context():
        ctx = load(db.session, token)
        labels = dict(db.session.execute(select(StudyStimulus.media, StudyStimulus.labels)
                                         .where(StudyStimulus.study_id == ctx.study_id)).all())
        items = sorted(ctx.batch.items, key=lambda i: i.position)
        db.session.rollback()
    return ([labels[i.media] for i in items],
            {i.position: i.repeat_of for i in items if i.repeat_of is not None})


def legacy_features(set_dir: Path, truth: list[dict]) -> list[dict]:
    """What the server used to send for each trial: the file's size, mtime (Last-Modified) and hash (ETag)."""
    out = []
    for labels in truth:
        path = set_dir / labels["media"]
        st = path.stat()
        out.append({"size": st.st_size, "last_modified": st.st_mtime, "etag": labels["sha256"]})
    return out


def test_nothing_received_tells_source_emotion_or_repeat(served, browser, tmp_path):
    from study_server.store.extensions import db
    from study_server.study.studies import import_plan

    app, base = served
    sets = {"blind-task1": task1_set(tmp_path / "set1"), "blind-task2": task2_set(tmp_path / "set2")}
    with app.app_context():
        for (name, set_dir), spec in zip(sets.items(), (TASK1_SPEC, TASK2_SPEC)):
            import_plan(db.session, _plan(spec, set_dir, tmp_path / f"{name}.json"), set_dir)
    results = {}
    all_repeat_features, all_repeat_legacy, all_pairs = [], [], {}
    for name, set_dir in sets.items():
        token, records = _take_session(browser, base, name, app.config["SECRET_KEY"])
        truth, pairs = _truth(app, token)
        per = _features(records)
        n = len(truth)
        assert sorted(per) == list(range(n)), "every trial's media was requested"
        feats = [per[p] for p in range(n)]

        # Direct checks: no validator from the file, one size for every trial and example, own bytes.
        media = [r for r in records if "/m/" in r["url"]]
        assert media and all("last-modified" not in r["headers"] for r in media)
        examples = _features(records, "x")
        assert {f["size"] for f in feats} | {f["size"] for f in examples.values()} == {feats[0]["size"]}
        bodies: dict[str, set[str]] = defaultdict(set)
        for r in media:
            if re.search(r"/m/[^/]+/[tx]\d+/", r["url"]):
                bodies[hashlib.sha256(r["body"]).hexdigest()].add(r["url"])
        assert all(len(urls) == 1 for urls in bodies.values()), "two positions share their bytes"
        etags = {r["headers"].get("etag") for r in media}
        assert len(etags) == len({r["url"] for r in media})  # one opaque ETag per URL

        label = "source" if name == "blind-task1" else "visual_emotion"
        results[(name, label)] = permutation_p(feats, [t[label] for t in truth])
        results[(name, f"{label} (old server)")] = permutation_p(legacy_features(set_dir, truth),
                                                                [t[label] for t in truth])
        offset = len(all_repeat_features)
        all_repeat_features += feats
        all_repeat_legacy += legacy_features(set_dir, truth)
        all_pairs.update({offset + r: offset + o for r, o in pairs.items()})
    # Repeat pairs, over both sessions (5 repeats among 26 trials).
    found, bound = repeats_found(all_repeat_features, all_pairs)
    found_old, _ = repeats_found(all_repeat_legacy, all_pairs)
    report = {f"{k[0]} {k[1]}": f"{right} of its trials right, p = {p:.4f}" for k, (right, p) in results.items()}
    report["repeats found"] = f"{found} of {len(all_pairs)} (old server: {found_old}); {bound} or more is not chance"
    assert found < bound and found_old >= bound, report
    for (study, what), (right, p) in results.items():
        if "old server" in what:
            assert p <= ALPHA, f"the classifier misses the old server's leak of {what}: {report}"
        else:
            assert p > ALPHA, f"{study}: the {what} of a trial is predictable from what the browser got: {report}"
