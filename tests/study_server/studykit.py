"""Helpers of the study-server tests (imported by conftest.py and by test modules: ``from studykit import ...``).

See conftest.py's docstring for what each one does.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stimuli.emotions import EMOTIONS

SOURCES = ("GT", "BL", "OURS")
N_STIMULI = 12

# ----------------------------------------------------------------------------------------- media set


def write_tiny_mp4(path: Path, seed: int, n_frames: int = 10, size: int = 64, fps: int = 25) -> None:
    """A real browser-playable mp4 (H.264 + AAC), different bytes per seed."""
    import av

    rng = np.random.default_rng(seed)
    container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
    try:
        vs = container.add_stream("libx264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast"}
        vs.codec_context.time_base = Fraction(1, fps)
        rate = 44100
        astream = container.add_stream("aac", rate=rate)
        astream.layout = "mono"
        base = rng.integers(0, 255, size=3)
        for i in range(n_frames):
            frame = np.empty((size, size, 3), np.uint8)
            frame[:] = (base + i * 7) % 255
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            for packet in vs.encode(vf):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        n = int(n_frames / fps * rate)
        t = np.arange(n) / rate
        samples = (0.2 * np.sin(2 * np.pi * (220 + 20 * seed) * t)).astype(np.float32)
        pts = 0
        for start in range(0, n, 1024):
            block = samples[start:start + 1024]
            af = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            af.sample_rate = rate
            af.pts = pts
            pts += len(block)
            for packet in astream.encode(af):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    finally:
        container.close()


def build_media_set(root: Path, n: int = N_STIMULI) -> Path:
    from stimuli.manifest import build_manifest, save_manifest

    root.mkdir(parents=True, exist_ok=True)
    (root / "media").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        source = SOURCES[i % 3]
        visual = EMOTIONS[i % 6]
        audio = EMOTIONS[(i + (0 if source == "GT" else i // 6)) % 6]
        # File names that DO carry labels, as real sets do: the server must never show them.
        rel = f"media/{source}_{visual}_{i:02d}.mp4"
        write_tiny_mp4(root / rel, seed=i)
        rows.append({
            "stimulus_id": f"stim{i:02d}", "media": rel,
            "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
            "duration_s": 0.4, "fps": 25.0, "width": 64, "height": 64, "audio_rate": 44100,
            "source": source, "visual_emotion": visual, "audio_emotion": audio,
            "identity": f"spk{i % 4}", "sentence": "IEO", "intensity": "MD",
            "size_variant": "128x128" if i % 2 == 0 else "96x128",
            "provenance": {"backend": "recording" if source == "GT" else "warp", "seed": i},
        })
    save_manifest(build_manifest(root, rows, name="tiny-set", check_media=True))
    return root


# ------------------------------------------------------------------------------------------- plans

TASK1, TASK2 = "emotion-realness", "av-mismatch"


def _questions(task: str) -> list[dict[str, Any]]:
    emo = [{"value": e, "label": e.capitalize(), "score": None, "exclusive": False} for e in EMOTIONS]
    if task == TASK1:
        real = [{"value": v, "label": lab, "score": s, "exclusive": False} for v, lab, s in (
            ("definitely-real", "Definitely real", 5), ("somewhat-real", "Somewhat real", 4),
            ("not-sure", "Not sure", 3), ("somewhat-unreal", "Somewhat unreal", 2),
            ("definitely-unreal", "Definitely unreal", 1))]
        aspects = [{"value": v, "label": lab, "score": None, "exclusive": v == "none"} for v, lab in (
            ("image-quality", "Image quality"), ("lip-sync", "Lip synchronization"),
            ("head-movement", "Head movement"), ("other", "Other"), ("none", "None"))]
        return [
            {"id": "emotion", "type": "single", "prompt": "Which emotion does the person express?",
             "required": True, "options": emo},
            {"id": "realness", "type": "scale", "prompt": "How real does the video look?", "required": True,
             "options": real},
            {"id": "aspects", "type": "multi", "prompt": "What would make the video more real?",
             "required": True, "options": aspects},
        ]
    none = {"value": "none", "label": "None", "score": None, "exclusive": False}
    return [
        {"id": "primary", "type": "single", "prompt": "Which is the primary emotion expressed by the person?",
         "required": True, "options": emo},
        {"id": "secondary", "type": "single", "prompt": "Which is the secondary emotion expressed by the person?",
         "required": True, "options": [*emo, none]},
    ]


def make_plan(set_dir: Path, task: str = TASK1, *, name: str | None = None, n_batches: int = 2, quota: int = 2,
              exclude_studies: tuple[str, ...] | list[str] = (), audio_check: bool | dict | None = None,
              out: Path | None = None) -> Path:
    """Write a valid plan for the tiny set (see the module docstring) and return its path."""
    from stimuli.manifest import load_manifest
    from stimuli.plan import plan_to_bytes, validate_plan

    manifest = load_manifest(set_dir, check_media=False)
    ids = [s.stimulus_id for s in manifest.stimuli]
    n_orig, repeats = (6, 3) if task == TASK1 else (4, 2)
    batches = []
    for b in range(n_batches):
        chosen = [ids[(b * n_orig + k) % len(ids)] for k in range(n_orig)]
        items = [{"position": k, "stimulus_id": sid, "repeat_of": None} for k, sid in enumerate(chosen)]
        for r in range(repeats):
            items.append({"position": len(items), "stimulus_id": chosen[r], "repeat_of": r})
        batches.append({"batch_id": f"b{b + 1:02d}", "index": b, "items": items})
    if task == TASK1:
        rules = [{"question": "emotion", "kind": "equal", "tolerance": 0},
                 {"question": "realness", "kind": "max_abs_diff", "tolerance": 1},
                 {"question": "aspects", "kind": "max_set_diff", "tolerance": 1}]
        max_inc, instructions = 5, ("Some of the videos are recordings of real people, and some were rendered "
                                    "by artificial intelligence (AI).")
    else:
        rules = [{"question": "primary", "kind": "equal", "tolerance": 0},
                 {"question": "secondary", "kind": "equal", "tolerance": 0}]
        max_inc, instructions = 2, "All of the videos were rendered by artificial intelligence (AI)."
    name = name or ("tiny-task1" if task == TASK1 else "tiny-task2")
    examples = [{"stimulus_id": ids[k], "emotion": EMOTIONS[k % 6], "size_variant": None} for k in (0, 3)]
    plan = {
        "schema_version": 1,
        "study": {"name": name, "title": f"Tiny {task} study", "task": task,
                  "description": "A test study (a note for the researcher: never shown).",
                  "exclude_studies": list(exclude_studies)},
        "participant": {"title": "Tiny study", "intro": "Short videos and a few questions.",
                        "instructions": instructions, "allow_words": []},
        "design": {"kind": task},
        "questions": _questions(task),
        "consistency": {"max_inconsistent": max_inc, "rules": rules},
        "quota_per_batch": quota,
        "payment": {"reward_usd": 1.0, "bonus": {"rule": "none", "question": None, "truth": None,
                                                 "amount_usd": 0, "max_usd": 0}},
        "audio_check": (dict(audio_check) if isinstance(audio_check, dict)  # a listening screen's settings
                        else {"enabled": (task == TASK2) if audio_check is None else audio_check}),
        "examples": examples,
        "batches": batches,
        "notes": [],
        "seed": 1,
        "spec_sha256": "0" * 64,
        "manifest_sha256": manifest.sha256(),
        "set_name": manifest.name,
    }
    validate_plan(plan, manifest=manifest)
    out = out or set_dir.parent / f"plan-{name}.json"
    out.write_bytes(plan_to_bytes(plan))
    return out


def import_study(app, plan_path: Path, set_dir: Path, **kwargs) -> str:
    from study_server.store.extensions import db
    from study_server.study.studies import import_plan

    with app.app_context():
        study = import_plan(db.session, plan_path, set_dir, secret_key=app.config["SECRET_KEY"], **kwargs)
        return study.name


# ------------------------------------------------------------------------------------ API helpers

def arrive(client, study: str, **query: str) -> str:
    """Arrive through the JSON API (a plain link when no query is given); return the token."""
    resp = client.post(f"/api/v1/studies/{study}/arrive", json={"query": query})
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()["token"]


def valid_values(plan_or_questions: dict | list, variant: int = 0) -> dict[str, Any]:
    """A valid answer to every question: the ``variant``-th option (same variant, same answer)."""
    questions = plan_or_questions["questions"] if isinstance(plan_or_questions, dict) else plan_or_questions
    out: dict[str, Any] = {}
    for q in questions:
        values = [o["value"] for o in q["options"] if not o["exclusive"]]
        v = values[variant % len(values)]
        out[q["id"]] = [v] if q["type"] == "multi" else v
    return out


def watch(client, item: dict) -> None:
    """Fetch a trial's video as the page does before its answer (the server's evidence of watching; the
    tiny clips last 0.4 s, under WATCH_TOLERANCE_S, so an answer right after is not too fast)."""
    r = client.get(item["media_url"])
    assert r.status_code == 200, r.status_code
    r.close()


def complete_session(client, token: str, variant_for: Callable[[int], int] | None = None) -> dict:
    """Start, pass the audio check if any, answer every item, complete; return the completion JSON."""
    from study_server.study.audio_check import expected_word

    state = client.get(f"/api/v1/a/{token}").get_json()
    assert client.post(f"/api/v1/a/{token}/start").status_code == 200
    if state.get("listening"):
        pass_screen(client, token)
    if state["audio_check"]["enabled"] and (not state.get("listening") or state["listening"]["words"]):
        attempt = client.application.config["AUDIO_CHECK_ATTEMPTS"] - state["audio_check"]["attempts_left"]
        word = expected_word(client.application.config["SECRET_KEY"], token, attempt)
        r = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": word})
        assert r.get_json()["passed"], r.get_json()
    for item in state["items"]:
        pos = item["position"]
        variant = variant_for(pos) if variant_for else 0
        watch(client, item)
        r = client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"{token[:8]}-{pos}", "position": pos,
            "values": valid_values(state["questions"], variant), "rt_ms": 900, "played_fraction": 1.0})
        assert r.status_code == 200, (r.get_json(), token, pos)
    r = client.post(f"/api/v1/a/{token}/complete")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def pass_screen(client, token: str, *, wrong: int = 0) -> dict:
    """Calibrate and answer the headphone screen from the server's secret (``wrong`` answers wrong on
    purpose, from the first trial); return the last reply."""
    from study_server.participant.listening import expected_answers

    secret = client.application.config["SECRET_KEY"]
    r = client.post(f"/api/v1/a/{token}/listening/calibrated", json={})
    assert r.status_code == 200, r.get_json()
    listening = r.get_json()["listening"]
    screen = listening["screen"]
    attempt = 0  # a fresh screen
    right = expected_answers(secret, token, screen["kind"], attempt, screen["trials"])
    reply: dict = {}
    for trial, answer in enumerate(right):
        if trial < wrong:
            answer = answer % 3 + 1
        r = client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": trial, "answer": answer})
        assert r.status_code == 200, r.get_json()
        reply = r.get_json()
    return reply


# ------------------------------------------------------------------------------------ browser tests

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


@contextlib.contextmanager
def serve_in_thread(app):
    """A real HTTP server for ``app`` on a free local port, in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def word_check_and_examples(page, state: dict, secret: str, token: str) -> None:
    """In a Playwright ``page`` after the instructions: type the audio-check word (when the study has one),
    then play every familiarisation example to its end and go on."""
    from study_server.study.audio_check import expected_word

    if state["audio_check"]["enabled"]:
        page.wait_for_selector("#step-audio:not([hidden])")
        page.fill("#audio-answer", expected_word(secret, token, 0))
        page.click("#audio-submit")
    for _ in state["examples"]:
        page.wait_for_selector("#step-examples:not([hidden])")
        page.click("#example-play")
        page.wait_for_function("() => !document.getElementById('example-next').disabled", timeout=15000)
        page.click("#example-next")
