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
     "import study_server.participant.simulate, study_server.recruit.service, study_server.export.tables\n"),
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


# --- Inside a package: rooms on floors (issue #26). Imports run only downward, never inside a function to
# dodge a cycle. ---

# room -> the rooms of the same package it may import (besides itself). A room is a sub-package, or a
# top-level module of the package (``app`` is study_server/app.py). Bottom to top.
STUDY_SERVER_FLOORS = {
    "core": set(),                                   # settings, errors
    "store": {"core"},                               # tables, engine, database faults, schema commands
    "web": {"core"},                                 # HTTP plumbing: bodies, security headers, rate limits
    "study": {"core", "store"},                      # the study's state and rules
    "export": {"core", "store", "study"},            # export folder, Psych-DS
    "recruit": {"core", "store", "study"},           # MTurk, Prolific, lab links, ledger
    "participant": {"core", "store", "study", "web"},  # the participant's pages and API
    "admin": {"core", "store", "study", "web", "export", "recruit"},  # the researcher's pages
    "app": {"core", "store", "study", "web", "participant", "admin"},  # the app factory wires the surfaces
    "commands": {"core", "store", "study", "web", "export", "recruit", "participant", "admin", "app"},
}
FLOORS = {"study_server": STUDY_SERVER_FLOORS}
# Function-level imports of third-party modules are allowed only for optional heavy dependencies.
OPTIONAL_HEAVY = {"torch", "cv2", "dlib", "scipy", "skimage", "matplotlib", "av", "h5py", "PIL", "espeakng_loader",
                  "rich", "boto3", "botocore", "psycopg", "requests", "alembic", "playwright", "librosa"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_command_module(module: str) -> bool:
    """Command modules (``*cli``, ``commands``) import their work when the command runs, so that the command
    table (``emostudy --help``) loads no Flask, SQLAlchemy or torch."""
    parts = module.split(".")
    return parts[-1] == "cli" or parts[-1].endswith("_cli") or "commands" in parts


def module_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module's full name, inside a function?) for every import statement of ``path``;
    ``from X import a`` gives ``X.a`` (a may be a module or a name), relative imports are resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                out.extend((child.lineno, f"{base}.{a.name}", in_function) for a in child.names)
            visit(child, inside)

    visit(tree, False)
    return out


def room_of(package: str, module: str) -> str | None:
    """The room of ``module`` inside ``package`` (None for the package's own ``__init__``)."""
    parts = module.split(".")
    if parts[0] != package or len(parts) < 2:
        return None
    return parts[1]


def test_module_imports_reads_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "study_server" / "store"
    pkg.mkdir(parents=True)
    src = pkg / "m.py"
    src.write_text("import os\nfrom . import models\n\ndef f():\n    from study_server.admin.pages import bp\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = module_imports(src)
    assert found == [(1, "os", False), (2, "study_server.store.models", False), (5, "study_server.admin.pages.bp", True)]
    assert [room_of("study_server", m) for _, m, _ in found] == [None, "store", "admin"]


def _violations(package: str) -> list[str]:
    floors = FLOORS[package]
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = _module_name(path)
        room = room_of(package, module)
        if room is None:
            continue
        assert room in floors, f"{path.relative_to(ROOT)}: room {room!r} is not in the floor table of {package}"
        for line, imported, in_function in module_imports(path):
            target = room_of(package, imported)
            where = f"{path.relative_to(ROOT)}:{line} ({module})"
            if target is not None and target != room and target not in floors[room]:
                bad.append(f"{where} imports {imported}: room {room!r} may not import {target!r}")
            if in_function and not _is_command_module(module):
                top = imported.split(".")[0]
                if top in OURS:
                    bad.append(f"{where} imports {imported} inside a function (move it to the top)")
                elif top not in OPTIONAL_HEAVY:
                    bad.append(f"{where} imports {imported} inside a function: only optional heavy "
                               f"dependencies may wait ({sorted(OPTIONAL_HEAVY)})")
    return bad


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_rooms_import_only_downward(package):
    bad = _violations(package)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_every_room_is_a_package_with_a_docstring(package):
    for child in sorted((ROOT / package).iterdir()):
        if child.is_dir() and (child / "__init__.py").exists():
            doc = ast.get_docstring(ast.parse((child / "__init__.py").read_text(encoding="utf-8")))
            assert doc and len(doc) > 40, f"{child.relative_to(ROOT)}/__init__.py needs a docstring saying what it owns"
            assert child.name in FLOORS[package], f"{child.name} is missing from the floor table of {package}"


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_no_import_cycle_between_modules(package):
    """Module-level imports of the package form no cycle (a cycle would have to be dodged by a late import)."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for _, imported, in_function in module_imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not in_function:
                deps.add(imported)
        graph[name] = deps
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1 and not name_is_parent(dep, node):
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def name_is_parent(parent: str, child: str) -> bool:
    """A package's ``__init__`` is imported before its modules: that edge is no cycle."""
    return child.startswith(parent + ".")


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_floor_checker_catches_a_planted_upward_import(package, tmp_path, monkeypatch):
    floors = FLOORS[package]
    low = next(r for r, allowed in floors.items() if not allowed)
    high = next(r for r in floors if r != low and low in floors[r])
    room = tmp_path / package / low
    room.mkdir(parents=True)
    (room / "planted.py").write_text(f"def f():\n    from {package}.{high} import anything\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = _violations(package)
    assert any("may not import" in b for b in bad) and any("inside a function" in b for b in bad), bad
