"""Packages meet only at files: the server and the analysis never import torch or the generator, the
analysis never imports the server, and stimuli imports none of them (ARCHITECTURE.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = """
import sys
class _Blocked:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.names:
            raise ImportError(name + ' must not be imported here')
        return None
sys.meta_path.insert(0, _Blocked(BLOCKED))
"""


def _run(code: str, blocked: set[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"BLOCKED = {sorted(blocked)!r}\n" + BLOCK + code],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("blocked,code", [
    ({"torch", "generator", "cv2", "dlib"},
     "from emostudy.cli import main\n"
     "from click.testing import CliRunner\n"
     "for args in (['serve', '--help'], ['export', '--help'], ['study', 'import', '--help'], ['db', 'upgrade', '--help'],"
     " ['recruit', 'sync', '--help']):\n"
     "    r = CliRunner().invoke(main, args)\n"
     "    assert r.exit_code == 0, (args, r.output, r.exception)\n"
     "from study_server.app import create_app\n"
     "import tempfile, os\n"
     "d = tempfile.mkdtemp()\n"
     "app = create_app({'TESTING': True, 'INSTANCE_PATH': d, 'SECRET_KEY': 'x'})\n"
     "import study_server.simulate, study_server.recruit.service, study_server.export\n"),
    ({"torch", "generator", "study_server", "flask", "sqlalchemy", "cv2"},
     "from emostudy.cli import main\n"
     "from click.testing import CliRunner\n"
     "r = CliRunner().invoke(main, ['analyze', '--help'])\n"
     "assert r.exit_code == 0, (r.output, r.exception)\n"
     "import analysis.report, analysis.io, analysis.figures, analysis.models, analysis.power\n"),
    ({"torch", "generator", "study_server", "analysis", "flask", "pandas"},
     "import stimuli.manifest, stimuli.plan, stimuli.spec, stimuli.designs, stimuli.imports, stimuli.commands\n"),
])
def test_package_does_not_import_across_boundaries(blocked, code):
    proc = _run(code, blocked)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- The same rule read from the source: every import statement, top-level or inside a function. ---

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OURS = ("emostudy", "stimuli", "generator", "study_server", "analysis")
# package -> the packages of ours it may import (besides itself). emostudy is the shell: it may import all.
ALLOWED = {
    "stimuli": set(),
    "generator": {"stimuli"},
    "study_server": {"stimuli"},
    "analysis": {"stimuli"},
    "emostudy": {"stimuli", "generator", "study_server", "analysis"},
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package of ours) for every import statement in ``path``, at any depth,
    including ``importlib.import_module("x.y")`` calls with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            top = name.split(".")[0]
            if top in OURS:
                found.add((node.lineno, top))
    return found


def test_imported_packages_reads_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from generator.model import X\n    import analysis.io as a\n"
                   "    importlib.import_module('study_server.app')\n")
    assert imported_packages(src) == {(4, "generator"), (5, "analysis"), (6, "study_server")}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    bad = [f"{f.relative_to(ROOT)}:{line} imports {top}"
           for f in files for line, top in sorted(imported_packages(f))
           if top != package and top not in ALLOWED[package]]
    assert not bad, "imports across a package boundary (ARCHITECTURE.md):\n" + "\n".join(bad)


def test_only_the_shell_imports_every_package():
    for package in OURS:
        reached = {top for f in (ROOT / package).rglob("*.py") for _, top in imported_packages(f)} - {package}
        if package == "emostudy":
            assert reached >= {"stimuli", "study_server"}, reached  # the shell wires the packages together
        else:
            assert not {"generator", "study_server", "analysis"} <= reached, (package, reached)


def test_the_command_table_lives_in_the_shell():
    from emostudy.cli import COMMANDS
    assert COMMANDS["demo"][0].startswith("emostudy.")
    assert not (ROOT / "stimuli" / "cli.py").exists() and not (ROOT / "stimuli" / "demo.py").exists()
