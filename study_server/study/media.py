"""Media delivery: opaque URLs signed per assignment, padded copies, Range requests, or presigned S3 URLs.

A participant's media URL is ``/m/<token>/<slot>/<sig>``: ``slot`` names a place in *their* session
(``t3`` = trial at position 3, ``x0`` = first familiarisation example, ``a1`` = second audio-check word),
``sig`` an HMAC-SHA256 of the token and slot under the server secret. Nothing in it, in a file name or a
header names a stimulus, an emotion, a source or a condition; a repeated item gets its own URL.

Nothing the browser receives may tell the design either (issue 15):

- Bytes and sizes. What is served for an item of a batch or an example is its *copy* (``MediaCopy``, made
  by ``emostudy study import``): the stimulus file followed by a padding box of pseudo-random bytes, an mp4
  ``free`` box (ISO BMFF) or a WebM ``Void`` element, which players skip. Every copy of a study has the same
  size (``padded_size``: the study's largest file plus at least ``PAD_MIN`` bytes, rounded up to
  ``SIZE_STEP``), so ``Content-Length`` is one number for every trial and example; and every copy has its
  own padding, so a repeat and its original are different bytes. The picture and sound inside are the
  stimulus' own, unchanged: a repeat must show the same video, and a participant who demuxes two files (or
  watches them) can still tell they are the same video, as the design intends.
- Headers. No ``Last-Modified`` (a file's time gives away the order in which files were written) and no
  file-derived ``ETag``: the ETag is an HMAC of the token and slot, private to that URL. Range requests,
  ``If-None-Match`` and private caching work as before.

With ``MEDIA_BACKEND = "s3"`` the route answers ``302`` to a presigned GET of the copy uploaded under its
sha256 (``S3_PREFIX + sha256 + suffix``); ``upload_study_media`` uploads the copies in a random order, so
that the objects' ``Last-Modified`` says nothing either. Studies imported before copies existed are served
their files unpadded (re-import them while nobody has taken part to pad them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from flask import Flask, Response, current_app, redirect, request
from sqlalchemy import select
from sqlalchemy.orm import object_session
from werkzeug.wsgi import FileWrapper

from study_server.core.errors import NotFound, StudyImportError
from study_server.store.models import MediaCopy, StudyStimulus
from study_server.study.audio_check import wav_path, word_index, words

_SLOT_RE = re.compile(r"^([txa])(\d{1,4})$")
MIMETYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
             ".mkv": "video/x-matroska", ".wav": "audio/wav", ".m4a": "audio/mp4", ".mp3": "audio/mpeg",
             ".png": "image/png", ".jpg": "image/jpeg"}
ISOBMFF, EBML = "isobmff", "ebml"
PAD_MIN = 32  # bytes of padding at least: a box header and 16 or more pseudo-random bytes
SIZE_STEP = 4096  # copies are padded to a multiple of this
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def signature(secret_key: str, token: str, slot: str) -> str:
    mac = hmac.new(secret_key.encode(), f"media:{token}/{slot}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def media_url(secret_key: str, token: str, slot: str) -> str:
    return f"/m/{token}/{slot}/{signature(secret_key, token, slot)}"


def check_signature(secret_key: str, token: str, slot: str, sig: str) -> None:
    if not _SLOT_RE.match(slot) or not hmac.compare_digest(signature(secret_key, token, slot), sig):
        raise NotFound("media_not_found", "this media link is not valid; reload the study page")


# ------------------------------------------------------------------------------------------ padding

@dataclass(frozen=True)
class Copy:
    """How a copy is made from its stimulus file (a ``MediaCopy`` row)."""

    container: str  # ISOBMFF | EBML
    size: int  # bytes served
    sha256: str  # of the served bytes
    pad_key: str  # hex


def media_container(path: Path) -> str:
    """``ISOBMFF`` (mp4, m4v, mov, m4a) or ``EBML`` (WebM, Matroska), read from the file's bytes.

    Raises ``StudyImportError`` for a file that cannot carry a padding box (another format, or an mp4 whose
    last box runs to the end of the file without a size)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head.startswith(_EBML_MAGIC):
            return EBML
        offset, types = 0, []
        while offset < size:
            fh.seek(offset)
            header = fh.read(16)
            if len(header) < 8:
                break
            box, kind = struct.unpack(">I4s", header[:8])
            if box == 1 and len(header) == 16:
                box = struct.unpack(">Q", header[8:16])[0]
            if box == 0:
                raise StudyImportError(
                    f"{path}: its last mp4 box ({kind!r}) has no size (it runs to the end of the file), so no "
                    "padding can follow it; re-mux the file (ffmpeg -i IN -c copy -movflags +faststart OUT)")
            if box < 8 or not kind.isascii() or not kind.decode("ascii").isprintable():
                break
            types.append(kind)
            offset += box
        if offset == size and b"moov" in types:
            return ISOBMFF
    raise StudyImportError(f"{path}: not an mp4 (ISO BMFF) or WebM file; the server pads every clip so that "
                           "sizes and bytes tell participants nothing, which needs one of these formats: "
                           "convert it (ffmpeg -i IN -c:v libx264 -c:a aac -movflags +faststart OUT.mp4)")


def padded_size(sizes: Iterable[int]) -> int:
    """The one size of every copy of a study: its largest file + ``PAD_MIN``, rounded up to ``SIZE_STEP``."""
    largest = max(sizes)
    return -(-(largest + PAD_MIN) // SIZE_STEP) * SIZE_STEP


def trailer(container: str, pad_key: str, length: int, total: int) -> bytes:
    """The padding box of ``length`` bytes for a copy of ``total`` bytes: a header and pseudo-random bytes
    drawn from ``pad_key``. The stream is drawn to ``total`` bytes whatever ``length`` is, so that making
    the padding takes as long for a small file as for a large one (no timing difference by file size)."""
    if container == ISOBMFF:
        header = struct.pack(">I4s", length, b"free") if length <= 0xFFFFFFFF else \
            struct.pack(">I4sQ", 1, b"free", length)
    elif container == EBML:
        # A Void element (ID 0xEC) with an 8-byte size: marker 0x01 and 56 bits of data length.
        header = b"\xec\x01" + (length - 9).to_bytes(7, "big")
    else:
        raise ValueError(f"unknown container {container!r}")
    if length < len(header) + 16 or length > total:
        raise ValueError(f"padding of {length} bytes does not fit (at least {len(header) + 16}, at most {total})")
    return header + hashlib.shake_256(bytes.fromhex(pad_key)).digest(total)[total - length + len(header):]


def strip_padding(data: bytes) -> bytes:
    """A served copy without its padding box: the stimulus file's bytes (for tests and the simulation)."""
    if data.startswith(_EBML_MAGIC):  # the Void element whose length runs exactly to the end
        cut = len(data)
        while (cut := data.rfind(b"\xec\x01", 0, cut)) > 0:
            if cut + 9 + int.from_bytes(data[cut + 2:cut + 9], "big") == len(data):
                return data[:cut]
        return data
    offset, last = 0, None
    while offset + 8 <= len(data):
        box, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if box == 1:
            box = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        if box < 8:
            return data
        last = (offset, kind)
        offset += box
    if last is not None and last[1] == b"free" and offset == len(data):
        return data[:last[0]]
    return data


class PaddedFile:
    """A read-only, seekable file: ``path``'s bytes followed by ``tail`` (no ``fileno``: a WSGI server's
    sendfile must not send the file alone)."""

    def __init__(self, path: Path, tail: bytes = b"") -> None:
        self._fh = open(path, "rb")
        self._n = os.fstat(self._fh.fileno()).st_size
        self._tail = tail
        self._pos = 0

    @property
    def size(self) -> int:
        return self._n + len(self._tail)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = max(self._pos, self.size if n is None or n < 0 else min(self.size, self._pos + n))
        out = b""
        if self._pos < self._n:
            self._fh.seek(self._pos)
            out = self._fh.read(min(end, self._n) - self._pos)
        if end > self._n:
            out += self._tail[max(self._pos, self._n) - self._n:end - self._n]
        self._pos = end
        return out

    def close(self) -> None:
        self._fh.close()


class MediaChanged(Exception):
    """A stimulus file is not the size it had when the study was imported."""


def copy_bytes_reader(path: Path, copy: Copy | None) -> PaddedFile:
    """The bytes served for ``path``: its copy (file + padding) or, without one, the file itself."""
    if copy is None:
        return PaddedFile(path)
    length = copy.size - path.stat().st_size
    if length < PAD_MIN:
        raise MediaChanged(path)
    return PaddedFile(path, trailer(copy.container, copy.pad_key, length, copy.size))


def make_copy(path: Path, container: str, size: int, pad_key: str) -> Copy:
    """The copy of ``path`` padded to ``size`` bytes with ``pad_key``'s padding (its sha256 computed)."""
    reader = copy_bytes_reader(path, Copy(container, size, "", pad_key))
    digest = hashlib.sha256()
    try:
        while block := reader.read(1 << 20):
            digest.update(block)
    finally:
        reader.close()
    return Copy(container, size, digest.hexdigest(), pad_key)


# ------------------------------------------------------------------------------------------ serving

@dataclass(frozen=True)
class MediaFile:
    path: Path  # local file
    sha256: str | None  # content hash of the file (S3 key without a copy); None for shipped files
    s3_key_suffix: str  # for shipped files: a stable opaque key part
    copy: Copy | None = None  # what is served instead of the bare file
    etag: str = ""  # opaque, per URL


def resolve_slot(slot: str, *, token: str, secret_key: str, set_root: str,
                 trial_media: dict[int, tuple[str, str, Copy | None]],
                 example_media: list[tuple[str, str, Copy | None]], n_audio_attempts: int) -> MediaFile:
    """Map a slot of an assignment to a file. ``trial_media``: position -> (relative path, sha256, copy)."""
    m = _SLOT_RE.match(slot)
    if not m:
        raise NotFound("media_not_found", "this media link is not valid; reload the study page")
    kind, n = m.group(1), int(m.group(2))
    etag = signature(secret_key, token, f"etag-{slot}")
    if kind == "t" and n in trial_media:
        rel, sha, copy = trial_media[n]
        return MediaFile(Path(set_root) / rel, sha, "", copy, etag)
    if kind == "x" and n < len(example_media):
        rel, sha, copy = example_media[n]
        return MediaFile(Path(set_root) / rel, sha, "", copy, etag)
    if kind == "a" and n < n_audio_attempts:
        index = word_index(secret_key, token, n)
        return MediaFile(wav_path(index), None, f"audio-check/{_file_digest(wav_path(index))}.wav", None, etag)
    raise NotFound("media_not_found", "this media link is not valid; reload the study page")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def send_media(app: Flask, media: MediaFile) -> Response:
    """The response for a resolved slot: the copy's bytes (Range, opaque ETag, private caching, no
    Last-Modified) or a presigned redirect."""
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
    unavailable = NotFound("media_not_found", "this video is not available at the moment; please tell the "
                           "researchers (contact on the consent page)")
    if not media.path.is_file():
        current_app.logger.error("media file missing: %s (was the stimulus set moved?)", media.path)
        raise unavailable
    try:
        reader = copy_bytes_reader(media.path, media.copy)
    except MediaChanged:
        current_app.logger.error("media file %s changed size since the study was imported", media.path)
        raise unavailable from None
    resp = app.response_class(FileWrapper(reader), mimetype=mimetype, direct_passthrough=True)
    resp.content_length = reader.size
    resp.cache_control.private = True
    resp.cache_control.max_age = max_age
    resp.set_etag(media.etag)
    return resp.make_conditional(request.environ, accept_ranges=True, complete_length=reader.size)


def s3_key(app: Flask, media: MediaFile) -> str:
    prefix = str(app.config.get("S3_PREFIX") or "")
    if media.copy is not None:
        return f"{prefix}{media.copy.sha256}{media.path.suffix.lower()}"
    if media.sha256:
        return f"{prefix}{media.sha256}{media.path.suffix.lower()}"
    return prefix + media.s3_key_suffix


def s3_client(app: Flask) -> Any:
    client = app.extensions.get("emostudy_s3")
    if client is None:
        import boto3  # optional heavy dependency: boto3 loads only for MTurk/S3 work

        client = boto3.client("s3", region_name=app.config.get("S3_REGION"),
                              endpoint_url=app.config.get("S3_ENDPOINT_URL") or None)
        app.extensions["emostudy_s3"] = client
    return client


def upload_study_media(app: Flask, study: Any, *, client: Any = None) -> int:
    """Upload a study's copies (and the audio-check words) under opaque keys; return the number of objects.

    Objects already present with the same key are skipped (keys are content hashes). The order is random,
    so that the objects' upload times (S3's ``Last-Modified``) follow no condition. A study imported before
    copies existed has its bare files uploaded.
    """

    client = client or s3_client(app)
    bucket = app.config["S3_BUCKET"]
    rows = object_session(study).execute(
        select(StudyStimulus.media, MediaCopy.container, MediaCopy.size, MediaCopy.sha256, MediaCopy.pad_key)
        .join(StudyStimulus, StudyStimulus.id == MediaCopy.stimulus_pk).where(MediaCopy.study_id == study.id)).all()
    files = [MediaFile(Path(study.set_root) / media, None, "", Copy(container, size, sha, key))
             for media, container, size, sha, key in rows]
    if not files:
        files = [MediaFile(Path(study.set_root) / s.media, s.sha256, "") for s in study.stimuli]
    files += [MediaFile(wav_path(i), None, f"audio-check/{_file_digest(wav_path(i))}.wav") for i in range(len(words()))]
    random.SystemRandom().shuffle(files)
    n = 0
    for media in files:
        key = s3_key(app, media)
        try:
            client.head_object(Bucket=bucket, Key=key)
            continue
        except client.exceptions.ClientError:
            pass
        reader = copy_bytes_reader(media.path, media.copy)
        try:
            body = reader.read()
        finally:
            reader.close()
        client.put_object(Bucket=bucket, Key=key, Body=body,
                          ContentType=MIMETYPES.get(media.path.suffix.lower(), "application/octet-stream"))
        n += 1
    return n
