"""Media delivery: signed opaque URLs, padded copies (one size, own bytes), Range requests, caching without
file-derived validators, refusal of forged links, S3 presigned URLs of the copies."""

from __future__ import annotations

import hashlib
import json
import re
import struct

import numpy as np
import pytest

from studykit import arrive, write_tiny_mp4


@pytest.fixture
def session_state(client, task1_study):
    token = arrive(client, task1_study, lab="m1")
    client.post(f"/api/v1/a/{token}/start")
    return token, client.get(f"/api/v1/a/{token}").get_json()


def _file_of(app, media_set, token, position):
    """The set's file shown at ``position`` of the assignment's batch (looked up independently of the route)."""
    from sqlalchemy import select

    from study_server.store.extensions import db
    from study_server.store.models import Assignment, Item, StudyStimulus

    with app.app_context():
        sid = db.session.scalar(
            select(StudyStimulus.stimulus_id).join(Item, Item.stimulus_pk == StudyStimulus.id)
            .join(Assignment, Assignment.batch_id == Item.batch_id)
            .where(Assignment.token == token, Item.position == position))
    manifest = json.loads((media_set / "manifest.json").read_text())
    row = next(r for r in manifest["stimuli"] if r["stimulus_id"] == sid)
    return media_set / row["media"]


def _copies(app, study: str) -> list:
    from sqlalchemy import select

    from study_server.store.extensions import db
    from study_server.store.models import MediaCopy, Study

    with app.app_context():
        sid = db.session.scalar(select(Study.id).where(Study.name == study))
        return db.session.scalars(select(MediaCopy).where(MediaCopy.study_id == sid)).all()


def test_full_and_range_requests_serve_the_padded_copy(client, app, session_state, media_set):
    from study_server.study.media import strip_padding

    token, state = session_state
    url = state["items"][0]["media_url"]
    data = _file_of(app, media_set, token, 0).read_bytes()
    full = client.get(url)
    assert full.status_code == 200 and full.mimetype == "video/mp4"
    served = full.data
    # the file, then one mp4 'free' box running to the end; the box carries no zeros-only run
    assert served.startswith(data) and strip_padding(served) == data
    size, kind = struct.unpack(">I4s", served[len(data):len(data) + 8])
    assert kind == b"free" and len(data) + size == len(served) == int(full.headers["Content-Length"])
    assert len(served) % 4096 == 0 and len(served) - len(data) >= 32
    assert full.headers["Accept-Ranges"] == "bytes"
    assert "private" in full.headers["Cache-Control"] and "max-age=3600" in full.headers["Cache-Control"]
    assert "Content-Disposition" not in full.headers
    assert "Last-Modified" not in full.headers  # a file's time tells the order files were written in
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == served[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(served)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == served[-50:]
    across = client.get(url, headers={"Range": f"bytes={len(data) - 10}-{len(data) + 9}"})  # file -> padding
    assert across.status_code == 206 and across.data == served[len(data) - 10:len(data) + 10]
    etag = full.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    # the ETag is made from the URL, not the file: nothing of the file's hash, size or time
    sha = hashlib.sha256(data).hexdigest()
    assert sha[:8] not in etag and str(len(data)) not in etag and hex(len(data))[2:] not in etag
    assert client.get(url).data == served  # the same position fetched again: the same bytes


def test_every_trial_and_example_is_one_size_and_its_own_bytes(client, app, session_state, task1_study):
    from study_server.study.media import strip_padding

    token, state = session_state
    urls = [it["media_url"] for it in state["items"]] + [ex["media_url"] for ex in state["examples"]]
    responses = [client.get(u) for u in urls]
    assert {r.headers["Content-Length"] for r in responses} == {str(len(responses[0].data))}
    bodies = [r.data for r in responses]
    assert len(set(bodies)) == len(bodies)  # position 6 repeats 0: different bytes all the same
    assert len(set(state["items"][i]["media_url"] for i in range(len(state["items"])))) == len(state["items"])
    assert strip_padding(bodies[6]) == strip_padding(bodies[0])  # ... and the same video inside
    etags = [r.headers["ETag"] for r in responses]
    assert len(set(etags)) == len(etags)
    # the copies are recorded: one per item of every batch and one per example, all of one size
    copies = _copies(app, task1_study)
    assert len({c.size for c in copies}) == 1 and len({c.sha256 for c in copies}) == len(copies)
    assert hashlib.sha256(bodies[0]).hexdigest() in {c.sha256 for c in copies}


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
    from study_server.study.media import media_url

    # A correctly signed slot outside the batch is refused too.
    r = client.get(media_url("test-secret", token, "t99"))
    assert r.status_code == 404


def test_audio_check_words_are_served_opaquely_and_alike(client, task2_study):
    from study_server.study.audio_check import words

    token = arrive(client, task2_study, lab="m3")
    client.post(f"/api/v1/a/{token}/start")
    state = client.get(f"/api/v1/a/{token}").get_json()
    r = client.get(state["audio_check"]["media_url"])
    assert r.status_code == 200 and r.mimetype == "audio/wav" and r.data[:4] == b"RIFF"
    assert "Last-Modified" not in r.headers
    # Every word file has the same size, so Content-Length says nothing about the word.
    from study_server.study.audio_check import wav_path

    assert len({wav_path(i).stat().st_size for i in range(len(words()))}) == 1
    assert r.headers["Content-Length"] == str(wav_path(0).stat().st_size)


def test_a_changed_file_is_not_served_with_a_wrong_length(client, app, tmp_path, study_importer, plan_factory):
    from studykit import build_media_set

    root = build_media_set(tmp_path / "own-set", n=12)
    name = study_importer(app, plan_factory(root, out=tmp_path / "p.json", name="changed"), root)
    token = arrive(client, name, lab="c1")
    client.post(f"/api/v1/a/{token}/start")
    url = client.get(f"/api/v1/a/{token}").get_json()["items"][0]["media_url"]
    path = _file_of(app, root, token, 0)
    path.write_bytes(path.read_bytes() * 40)  # larger than the padded size now
    r = client.get(url)
    assert r.status_code == 404 and r.data != path.read_bytes()[:len(r.data)]


@pytest.mark.parametrize("app_config", [{"MEDIA_BACKEND": "s3", "S3_BUCKET": "emo-bucket", "S3_REGION": "us-east-1",
                                         "S3_PREFIX": "media/"}])
def test_s3_backend_redirects_to_the_copy(client, app, session_state, task1_study, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    token, state = session_state
    r = client.get(state["items"][0]["media_url"])
    assert r.status_code == 302
    loc = r.headers["Location"]
    m = re.match(r"https://emo-bucket\.s3\.amazonaws\.com/media/([0-9a-f]{64})\.mp4\?", loc)
    assert m, loc
    assert m.group(1) in {c.sha256 for c in _copies(app, task1_study)}  # the padded copy, not the file
    repeat = client.get(state["items"][6]["media_url"]).headers["Location"]
    assert repeat.split("?")[0] != loc.split("?")[0]  # the repeat is another object
    assert "X-Amz-Signature=" in loc or "Signature=" in loc
    # The page's CSP lets the browser load media from the bucket.
    page = client.get(f"/a/{token}")
    assert "https://emo-bucket.s3.amazonaws.com" in page.headers["Content-Security-Policy"]


def test_upload_study_media_puts_the_copies_under_their_hashes(app, task1_study, monkeypatch):
    import boto3
    from botocore.stub import Stubber
    from sqlalchemy import select

    from study_server.study.audio_check import words
    from study_server.store.extensions import db
    from study_server.study.media import strip_padding, upload_study_media
    from study_server.store.models import Study

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    app.config.update(S3_BUCKET="emo-bucket", S3_PREFIX="m/")
    client = boto3.client("s3", region_name="us-east-1")
    put: dict[str, bytes] = {}
    copies = _copies(app, task1_study)
    with app.app_context():
        study = db.session.scalar(select(Study).where(Study.name == task1_study))
        n_files = len(copies) + len(words())
        with Stubber(client) as stub:
            for _ in range(n_files):
                stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
                stub.add_response("put_object", {})
            original = client.put_object

            def record(**kw):
                put[kw["Key"]] = kw["Body"]
                return original(**kw)

            monkeypatch.setattr(client, "put_object", record)
            assert upload_study_media(app, study, client=client) == n_files
        originals = {s.sha256 for s in study.stimuli}
    assert len(put) == n_files
    for key, body in put.items():
        stem = key.removeprefix("m/").removeprefix("audio-check/").rsplit(".", 1)[0]
        assert re.fullmatch(r"[0-9a-f]{64}", stem), key  # content hashes only: no names, no labels
        assert hashlib.sha256(body).hexdigest() == stem
    videos = {k: b for k, b in put.items() if not k.startswith("m/audio-check/")}
    assert {k[2:-4] for k in videos} == {c.sha256 for c in copies}
    assert len({len(b) for b in videos.values()}) == 1  # one size
    assert {hashlib.sha256(strip_padding(b)).hexdigest() for b in videos.values()} == originals


# ------------------------------------------------------------------------------------------ padding

def test_padded_size_rule():
    from study_server.study.media import PAD_MIN, SIZE_STEP, padded_size

    assert padded_size([100, 5000]) == 8192
    assert padded_size([4096 - PAD_MIN]) == 4096 and padded_size([4096 - PAD_MIN + 1]) == 8192
    assert padded_size([10, 20]) == SIZE_STEP


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_padded_copies_still_decode(tmp_path, container):
    """A player skips the padding: PyAV (FFmpeg) decodes a padded copy to the same frames and samples."""
    import av

    from study_server.study.media import PaddedFile, copy_bytes_reader, make_copy, media_container, padded_size, strip_padding

    path = tmp_path / f"clip.{container}"
    if container == "mp4":
        write_tiny_mp4(path, seed=3)
    else:
        with av.open(str(path), mode="w") as out:
            vs = out.add_stream("libvpx", rate=25)
            vs.width = vs.height = 32
            vs.pix_fmt = "yuv420p"
            for i in range(8):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
    kind = media_container(path)
    assert kind == ("isobmff" if container == "mp4" else "ebml")
    size = padded_size([path.stat().st_size])
    copy = make_copy(path, kind, size, "ab" * 16)
    reader = copy_bytes_reader(path, copy)
    data = reader.read()
    reader.close()
    assert len(data) == size and hashlib.sha256(data).hexdigest() == copy.sha256
    assert strip_padding(data) == path.read_bytes()
    other = make_copy(path, kind, size, "cd" * 16)
    assert other.sha256 != copy.sha256  # another key, other bytes
    padded = tmp_path / f"padded.{container}"
    padded.write_bytes(data)

    def frames(p):
        with av.open(str(p)) as c:
            return [f.to_ndarray().tobytes() for f in c.decode(video=0)]
    assert frames(padded) == frames(path) and frames(path)
    # the reader seeks and reads across the file/padding boundary
    r = PaddedFile(path, data[path.stat().st_size:])
    r.seek(path.stat().st_size - 3)
    assert r.read(6) == data[path.stat().st_size - 3:path.stat().st_size + 3]
    r.close()


def test_files_that_cannot_be_padded_are_refused_at_import(tmp_path):
    from study_server.core.errors import StudyImportError
    from study_server.study.media import media_container

    avi = tmp_path / "x.avi"
    avi.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 64)
    with pytest.raises(StudyImportError, match="not an mp4 .* or WebM"):
        media_container(avi)
    open_ended = tmp_path / "y.mp4"
    open_ended.write_bytes(struct.pack(">I4s", 16, b"ftyp") + b"isom\x00\x00\x00\x00"
                           + struct.pack(">I4s", 8, b"moov") + struct.pack(">I4s", 0, b"mdat") + b"\x00" * 20)
    with pytest.raises(StudyImportError, match="runs to the end of the file.*re-mux"):
        media_container(open_ended)


def test_a_replaced_study_gets_fresh_copies_and_leaves_none_behind(app, media_set, tmp_path, study_importer,
                                                                   plan_factory):
    from sqlalchemy import func, select

    from study_server.store.extensions import db
    from study_server.store.models import Item, MediaCopy

    plan = plan_factory(media_set, out=tmp_path / "p.json", name="replaced")
    name = study_importer(app, plan, media_set)
    before = {c.sha256 for c in _copies(app, name)}
    study_importer(app, plan, media_set, replace=True)
    after = _copies(app, name)
    n_examples = len(json.loads(plan.read_text())["examples"])
    with app.app_context():
        n_items = db.session.scalar(select(func.count()).select_from(Item))
        assert db.session.scalar(select(func.count()).select_from(MediaCopy)) == n_items + n_examples
    assert len(after) == n_items + n_examples
    assert not before & {c.sha256 for c in after}  # new padding: new bytes
