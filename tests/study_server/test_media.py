"""Media delivery: signed opaque URLs, Range requests, caching, refusal of forged links, S3 presigned URLs."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from studykit import arrive


@pytest.fixture
def session_state(client, task1_study):
    token = arrive(client, task1_study, lab="m1")
    client.post(f"/api/v1/a/{token}/start")
    return token, client.get(f"/api/v1/a/{token}").get_json()


def _file_of(app, media_set, token, position):
    """The set's file shown at ``position`` of the assignment's batch (looked up independently of the route)."""
    from sqlalchemy import select

    from study_server.extensions import db
    from study_server.models import Assignment, Item, StudyStimulus

    with app.app_context():
        sid = db.session.scalar(
            select(StudyStimulus.stimulus_id).join(Item, Item.stimulus_pk == StudyStimulus.id)
            .join(Assignment, Assignment.batch_id == Item.batch_id)
            .where(Assignment.token == token, Item.position == position))
    manifest = json.loads((media_set / "manifest.json").read_text())
    row = next(r for r in manifest["stimuli"] if r["stimulus_id"] == sid)
    return media_set / row["media"]


def test_full_and_range_requests(client, app, session_state, media_set):
    token, state = session_state
    url = state["items"][0]["media_url"]
    data = _file_of(app, media_set, token, 0).read_bytes()
    full = client.get(url)
    assert full.status_code == 200 and full.data == data and full.mimetype == "video/mp4"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert "private" in full.headers["Cache-Control"] and "max-age=3600" in full.headers["Cache-Control"]
    assert "Content-Disposition" not in full.headers
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == data[-50:]
    etag = full.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_repeat_has_its_own_url_same_bytes(client, session_state):
    _, state = session_state
    urls = [it["media_url"] for it in state["items"]]
    assert len(set(urls)) == len(urls)  # a repeat (position 6 repeats 0) is not recognisable by its URL
    assert client.get(urls[6]).data == client.get(urls[0]).data


def test_forged_or_foreign_links_are_refused(client, session_state, task1_study):
    token, state = session_state
    url = state["items"][0]["media_url"]
    _, _, tok, slot, sig = url.split("/")
    other = arrive(client, task1_study, lab="m2")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for bad in (f"/m/{tok}/{slot}/{flipped}", f"/m/{tok}/t1/{sig}", f"/m/{other}/{slot}/{sig}",
                f"/m/{tok}/t99/{sig}", f"/m/{tok}/zz/{sig}"):
        r = client.get(bad)
        assert r.status_code == 404, bad
    from study_server.media import media_url

    # A correctly signed slot outside the batch is refused too.
    r = client.get(media_url("test-secret", token, "t99"))
    assert r.status_code == 404


def test_audio_check_word_is_served_opaquely(client, task2_study):
    token = arrive(client, task2_study, lab="m3")
    client.post(f"/api/v1/a/{token}/start")
    state = client.get(f"/api/v1/a/{token}").get_json()
    r = client.get(state["audio_check"]["media_url"])
    assert r.status_code == 200 and r.mimetype == "audio/wav" and r.data[:4] == b"RIFF"


@pytest.mark.parametrize("app_config", [{"MEDIA_BACKEND": "s3", "S3_BUCKET": "emo-bucket", "S3_REGION": "us-east-1",
                                         "S3_PREFIX": "media/"}])
def test_s3_backend_redirects_to_presigned_url(client, app, session_state, media_set, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    token, state = session_state
    r = client.get(state["items"][0]["media_url"])
    assert r.status_code == 302
    loc = r.headers["Location"]
    sha = hashlib.sha256(_file_of(app, media_set, token, 0).read_bytes()).hexdigest()
    assert loc.startswith("https://emo-bucket.s3.amazonaws.com/media/" + sha + ".mp4?")
    assert "X-Amz-Signature=" in loc or "Signature=" in loc
    # The page's CSP lets the browser load media from the bucket.
    page = client.get(f"/a/{token}")
    assert "https://emo-bucket.s3.amazonaws.com" in page.headers["Content-Security-Policy"]


def test_upload_study_media_uses_opaque_keys(app, task1_study, monkeypatch):
    import boto3
    from botocore.stub import Stubber
    from sqlalchemy import select

    from study_server.audio_check import words
    from study_server.extensions import db
    from study_server.media import upload_study_media
    from study_server.models import Study

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    app.config.update(S3_BUCKET="emo-bucket", S3_PREFIX="m/")
    client = boto3.client("s3", region_name="us-east-1")
    keys: list[str] = []
    with app.app_context():
        study = db.session.scalar(select(Study).where(Study.name == task1_study))
        n_files = len(study.stimuli) + len(words())
        with Stubber(client) as stub:
            for _ in range(n_files):
                stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
                stub.add_response("put_object", {})
            original = client.put_object

            def record(**kw):
                keys.append(kw["Key"])
                return original(**kw)

            monkeypatch.setattr(client, "put_object", record)
            assert upload_study_media(app, study, client=client) == n_files
    shas = {s.sha256 for s in study.stimuli}
    assert len(keys) == n_files
    for key in keys:
        stem = key.removeprefix("m/").removeprefix("audio-check/").rsplit(".", 1)[0]
        assert re.fullmatch(r"[0-9a-f]{64}", stem), key  # content hashes only: no names, no labels
    assert {k[2:-4] for k in keys if not k.startswith("m/audio-check/")} == shas
