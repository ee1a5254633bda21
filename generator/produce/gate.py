"""The face gate over a whole set's photos, before any rendering (``emostudy generate --dry-run``): one
console line per photo (a run's failures are printed the same way by ``generator.produce.batch.produce``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from generator.errors import GeneratorError
from generator.faces import FaceRejected, find_face
from generator.produce.batch import load_face


def gate_photos(paths: Iterable[str], *, policy: str = "single", force: bool = False) -> list[dict[str, Any]]:
    """One row per distinct photo: {face, status (ok, forced, refused, unreadable), problems, message}."""
    rows = []
    for path in dict.fromkeys(paths):
        name = Path(path).name
        try:
            checked = find_face(load_face(path), policy=policy, force=force, where=name)
        except FaceRejected as exc:
            rows.append({"face": name, "status": "refused", "problems": [c for c, _ in exc.problems],
                         "message": str(exc)})
            continue
        except (GeneratorError, ValueError, OSError) as exc:
            rows.append({"face": name, "status": "unreadable", "problems": [], "message": str(exc)})
            continue
        status = "forced" if checked.overridden else "ok"
        rows.append({"face": name, "status": status, "problems": list(checked.overridden),
                     "message": f"{name}: faces found {checked.faces_found}"
                                + (f"; rendered despite {', '.join(checked.overridden)} (--force)"
                                   if checked.overridden else "")})
    return rows


def gate_line(row: dict[str, Any]) -> str:
    return f"{row['status']:>10}  {row['message']}"
