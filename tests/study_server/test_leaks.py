"""No label leaks: what a participant's browser receives never names a trial's emotion, source or condition.

Collected: the arrival redirect, the ad page, the study page, its scripts and stylesheet, the state JSON
(minus the answer options and the labelled familiarisation examples, which name emotions on purpose),
every media URL and its response headers, the API's acknowledgements and the completion page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stimuli.emotions import EMOTIONS
from studykit import SOURCES, TASK1, TASK2, import_study, make_plan, valid_values

EMOTION_WORDS = set(EMOTIONS) | {"angry", "disgusted", "fearful", "afraid", "happy", "joy", "sad", "ANG", "DIS",
                                 "FEA", "HAP", "NEU", "SAD"}


def _forbidden(media_set: Path) -> tuple[re.Pattern, re.Pattern]:
    manifest = json.loads((media_set / "manifest.json").read_text())
    exact = set(SOURCES) | {"WARP", "LIPS", "STILL", "recording"}
    for row in manifest["stimuli"]:
        exact |= {row["stimulus_id"], Path(row["media"]).name, Path(row["media"]).stem, row["sha256"],
                  row["identity"], row["media"]}
    words = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(map(re.escape, EMOTION_WORDS))) + r")(?![A-Za-z])",
                       re.IGNORECASE)
    labels = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(map(re.escape, exact), key=len, reverse=True))
                        + r")(?![A-Za-z0-9_])")
    return words, labels


@pytest.mark.parametrize("task", [TASK1, TASK2])
def test_participant_receives_no_labels(client, app, media_set, tmp_path, task):
    name = import_study(app, make_plan(media_set, task, out=tmp_path / "p.json"), media_set)
    received: list[tuple[str, str]] = []

    def get(url: str, **kw):
        r = client.get(url, **kw)
        received.append((url, url))
        received.append((f"headers of {url}", "\n".join(f"{k}: {v}" for k, v in r.headers.items())))
        return r

    ad = get(f"/s/{name}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    received.append(("ad page", ad.get_data(as_text=True)))
    arrival = get(f"/s/{name}?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https://workersandbox.mturk.com")
    page_url = arrival.headers["Location"]
    token = page_url.rsplit("/", 1)[-1]
    page = get(page_url)
    html = page.get_data(as_text=True)
    received.append(("study page", html))
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        received.append((asset, get(asset).get_data(as_text=True)))
    assert any(a.endswith("study.js") for a, _ in received)
    client.post(f"/api/v1/a/{token}/start")
    state = get(f"/api/v1/a/{token}").get_json()
    if state["audio_check"]["enabled"]:
        from study_server.study.audio_check import expected_word

        client.post(f"/api/v1/a/{token}/audio-check", json={"answer": expected_word("test-secret", token, 0)})
    for ex in state["examples"]:
        get(ex["media_url"], headers={"Range": "bytes=0-10"})
    for it in state["items"]:
        get(it["media_url"], headers={"Range": "bytes=0-10"})
        ack = client.post(f"/api/v1/a/{token}/answers", json={
            "answer_id": f"leak-{it['position']:04d}", "position": it["position"],
            "values": valid_values(state["questions"], 0)})
        assert ack.status_code == 200
        received.append(("ack", ack.get_data(as_text=True)))
    done = client.post(f"/api/v1/a/{token}/complete")
    received.append(("complete", done.get_data(as_text=True)))
    received.append(("done page", get(f"/a/{token}/done").get_data(as_text=True)))
    final = get(f"/api/v1/a/{token}").get_json()
    for key in ("questions", "examples"):  # answer options and labelled examples name emotions by design
        final.pop(key)
    received.append(("state", json.dumps(final)))

    words, labels = _forbidden(media_set)
    for where, text in received:
        m = words.search(text)
        assert m is None, f"{where} names an emotion: ...{text[max(0, m.start() - 60):m.end() + 60]}..."
        m = labels.search(text)
        assert m is None, f"{where} names a label/stimulus: ...{text[max(0, m.start() - 60):m.end() + 60]}..."
    # Examples: labelled, but their URLs are as opaque as the trials'.
    assert all(words.search(ex["media_url"]) is None for ex in state["examples"])
