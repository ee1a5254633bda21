"""Media delivery: opaque URLs signed per assignment, Range requests and caching, or presigned S3 URLs.

A participant's media URL is ``/m/<token>/<slot>/<sig>``: ``slot`` names a place in *their* session
(``t3`` = trial at position 3, ``x0`` = first familiarisation example, ``a1`` = second audio-check word),
``sig`` an HMAC-SHA256 of the token and slot under the server secret. Nothing in it, in a file name or a
header names a stimulus, an emotion, a source or a condition; a repeated item gets its own URL. URLs are
stable for an assignment, so the browser may cache them (``Cache-Control: private``).

With ``MEDIA_BACKEND = "s3"`` the route answers ``302`` to a presigned GET of an object whose key is
the file's sha256 (``S3_PREFIX + sha256 + suffix``); ``upload_study_media`` puts the objects there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, redirect, send_file

from study_server.audio_check import wav_path, word_index
from study_server.errors import NotFound

_SLOT_RE = re.compile(r"^([txa])(\d{1,4})$")
MIMETYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".wav": "audio/wav", ".m4a": "audio/mp4",
             ".mp3": "audio/mpeg", ".png": "image/png", ".jpg": "image/jpeg"}


def signature(secret_key: str, token: str, slot: str) -> str:
    mac = hmac.new(secret_key.encode(), f"media:{token}/{slot}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def media_url(secret_key: str, token: str, slot: str) -> str:
    return f"/m/{token}/{slot}/{signature(secret_key, token, slot)}"


def check_signature(secret_key: str, token: str, slot: str, sig: str) -> None:
    if not _SLOT_RE.match(slot) or not hmac.compare_digest(signature(secret_key, token, slot), sig):
        raise NotFound("media_not_found", "this media link is not valid; reload the study page")


@dataclass(frozen=True)
class MediaFile:
    path: Path  # local file
    sha256: str | None  # content hash (S3 key); None for shipped files
    s3_key_suffix: str  # for shipped files: a stable opaque key part


def resolve_slot(slot: str, *, token: str, secret_key: str, set_root: str, trial_media: dict[int, tuple[str, str]],
                 example_media: list[tuple[str, str]], n_audio_attempts: int) -> MediaFile:
    """Map a slot of an assignment to a file. ``trial_media``: position -> (relative path, sha256)."""
    m = _SLOT_RE.match(slot)
    if not m:
        raise NotFound("media_not_found", "this media link is not valid; reload the study page")
    kind, n = m.group(1), int(m.group(2))
    if kind == "t" and n in trial_media:
        rel, sha = trial_media[n]
        return MediaFile(Path(set_root) / rel, sha, "")
    if kind == "x" and n < len(example_media):
        rel, sha = example_media[n]
        return MediaFile(Path(set_root) / rel, sha, "")
    if kind == "a" and n < n_audio_attempts:
        index = word_index(secret_key, token, n)
        return MediaFile(wav_path(index), None, f"audio-check/{_file_digest(wav_path(index))}.wav")
    raise NotFound("media_not_found", "this media link is not valid; reload the study page")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def send_media(app: Flask, media: MediaFile) -> Response:
    """The response for a resolved slot: the file (Range, ETag, private caching) or a presigned redirect."""
    suffix = media.path.suffix.lower()
    mimetype = MIMETYPES.get(suffix, "application/octet-stream")
    max_age = int(app.config.get("MEDIA_MAX_AGE_S", 3600))
    if app.config.get("MEDIA_BACKEND") == "s3":
        key = s3_key(app, media)
        url = s3_client(app).generate_presigned_url(
            "get_object", Params={"Bucket": app.config["S3_BUCKET"], "Key": key, "ResponseContentType": mimetype},
            ExpiresIn=int(app.config.get("S3_URL_EXPIRES_S", 3600)))
        resp = redirect(url, code=302)
        resp.headers["Cache-Control"] = "private, no-store"
        return resp
    if not media.path.is_file():
        current_app.logger.error("media file missing: %s (was the stimulus set moved?)", media.path)
        raise NotFound("media_not_found", "this video is not available at the moment; please tell the "
                       "researchers (contact on the consent page)")
    resp = send_file(media.path, mimetype=mimetype, conditional=True, etag=True, max_age=max_age)
    resp.cache_control.public = False
    resp.cache_control.private = True
    resp.headers.pop("Content-Disposition", None)
    return resp


def s3_key(app: Flask, media: MediaFile) -> str:
    prefix = str(app.config.get("S3_PREFIX") or "")
    if media.sha256:
        return f"{prefix}{media.sha256}{media.path.suffix.lower()}"
    return prefix + media.s3_key_suffix


def s3_client(app: Flask) -> Any:
    client = app.extensions.get("emostudy_s3")
    if client is None:
        import boto3

        client = boto3.client("s3", region_name=app.config.get("S3_REGION"),
                              endpoint_url=app.config.get("S3_ENDPOINT_URL") or None)
        app.extensions["emostudy_s3"] = client
    return client


def upload_study_media(app: Flask, study: Any, *, client: Any = None) -> int:
    """Upload a study's media (and the audio-check words) under opaque keys; return the number of objects.

    Objects already present with the same key are skipped (keys are content hashes).
    """
    from study_server.audio_check import words

    client = client or s3_client(app)
    bucket = app.config["S3_BUCKET"]
    files = [MediaFile(Path(study.set_root) / s.media, s.sha256, "") for s in study.stimuli]
    files += [MediaFile(wav_path(i), None, f"audio-check/{_file_digest(wav_path(i))}.wav") for i in range(len(words()))]
    n = 0
    for media in files:
        key = s3_key(app, media)
        try:
            client.head_object(Bucket=bucket, Key=key)
            continue
        except client.exceptions.ClientError:
            pass
        client.upload_file(str(media.path), bucket, key,
                           ExtraArgs={"ContentType": MIMETYPES.get(media.path.suffix.lower(),
                                                                   "application/octet-stream")})
        n += 1
    return n


def example_media(plan: dict[str, Any], stimuli: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """(relative path, sha256) of the plan's examples, in order."""
    return [stimuli[e["stimulus_id"]] for e in plan["examples"]]

