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

# room -> the rooms of the same package it may import (besides itself), bottom to top. A room is a
# sub-package; a module at the package's top level belongs to the room TOP_LEVEL_ROOM names.
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
# generator/'s map is generator/__init__.py's. renderers.get_renderer loads the warp/neural backends by name
# from its BACKENDS registry, on demand: a plugin table, not an import, so production never names the
# renderer it runs.
GENERATOR_FLOORS = {
    "base": set(),                                   # errors, audio and video files, alignment, faces, renderers
    "data": {"base"},
    "warp": {"base"},
    "check": {"base"},
    "neural": {"base", "data"},
    "evaluate": {"base", "data", "neural"},
    "produce": {"base", "data", "check"},
}
FLOORS = {"study_server": STUDY_SERVER_FLOORS, "generator": GENERATOR_FLOORS}
TOP_LEVEL_ROOM = {"study_server": {"app": "app"}, "generator": {}}  # others: generator's floor, "base"
DEFAULT_TOP_ROOM = {"study_server": None, "generator": "base"}
# Function-level imports of third-party modules are allowed only for optional heavy dependencies.
OPTIONAL_HEAVY = {"torch", "cv2", "dlib", "scipy", "skimage", "matplotlib", "av", "h5py", "PIL", "espeakng_loader",
                  "rich", "boto3", "botocore", "psycopg", "requests", "alembic", "playwright", "librosa", "numpy",
                  "multiprocessing", "concurrent", "torchvision", "sklearn", "pandas", "tqdm", "imageio"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_command_module(module: str) -> bool:
    """Command modules (``cli``, ``*_cli``, ``commands``) import their work when the command runs, so that the
    command table (``emostudy --help``) loads no Flask, SQLAlchemy or torch."""
    parts = module.split(".")
    return parts[-1] == "cli" or parts[-1].endswith("_cli") or "commands" in parts


def module_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module's full name, inside a function?) for every import statement of ``path`` and every
    ``importlib.import_module("...")`` with a literal name; ``from X import a`` gives ``X.a`` (a may be a
    module or a name), relative imports are resolved."""
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
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", None))
                  in {"import_module", "__import__"} and child.args and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)):
                out.append((child.lineno, child.args[0].value, in_function))
            visit(child, inside)

    visit(tree, False)
    return sorted(out)


def room_of(package: str, module: str) -> str | None:
    """The room of ``module`` (a module, or a name in one) inside ``package``; None outside the package and
    for the package's own ``__init__``."""
    parts = module.split(".")
    if parts[0] != package or len(parts) < 2:
        return None
    if parts[1] in FLOORS[package] and (ROOT / package / parts[1] / "__init__.py").exists():
        return parts[1]
    return TOP_LEVEL_ROOM[package].get(parts[1], DEFAULT_TOP_ROOM[package] or parts[1])


def test_module_imports_reads_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "study_server" / "store"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (tmp_path / "study_server" / "admin").mkdir()
    (tmp_path / "study_server" / "admin" / "__init__.py").write_text("")
    src = pkg / "m.py"
    src.write_text("import os\nfrom . import models\n\ndef f():\n    from study_server.admin.pages import bp\n"
                   "    importlib.import_module('study_server.app')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = module_imports(src)
    assert found == [(1, "os", False), (2, "study_server.store.models", False),
                     (5, "study_server.admin.pages.bp", True), (6, "study_server.app", True)]
    assert [room_of("study_server", m) for _, m, _ in found] == [None, "store", "admin", "app"]


def floor_violations(package: str) -> list[str]:
    """Imports of a room above (or beside and not allowed), and late imports that are neither an optional
    heavy dependency nor in a command module; every late import must say why in a comment."""
    floors = FLOORS[package]
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = _module_name(path)
        room = room_of(package, module)
        if room is None:
            continue
        assert room in floors, f"{path.relative_to(ROOT)}: room {room!r} is not in the floor table of {package}"
        lines = path.read_text(encoding="utf-8").splitlines()
        ends = {n.lineno: n.end_lineno for n in ast.walk(ast.parse("\n".join(lines)))
                if isinstance(n, (ast.Import, ast.ImportFrom, ast.Call))}
        for line, imported, in_function in module_imports(path):
            target = room_of(package, imported)
            where = f"{path.relative_to(ROOT)}:{line}"
            if target is not None and target != room and target not in floors[room]:
                bad.append(f"{where} ({room}) imports {imported} ({target})")
            if not in_function:
                continue
            top = imported.split(".")[0]
            if _is_command_module(module):
                pass
            elif top in OURS:
                bad.append(f"{where} imports {imported} inside a function (move it to the top)")
            elif top not in OPTIONAL_HEAVY:
                bad.append(f"{where} imports {imported} inside a function: only optional heavy dependencies wait")
            if not any("#" in s for s in lines[max(0, line - 2):ends.get(line, line)]):  # the line above, the statement
                bad.append(f"{where} imports {imported} inside a function without a comment saying why")
    return bad


def import_cycles(package: str) -> list[list[str]]:
    """Cycles among the package's modules, every import statement counted (top level or in a function)."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for _, imported, _ in module_imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            # a package's __init__ is imported before its modules: that edge is no cycle
            if imported and imported != name and not name.startswith(imported + "."):
                deps.add(imported)
        graph[name] = deps
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                walk(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [])
    return cycles


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_rooms_import_only_downward(package):
    bad = floor_violations(package)
    assert not bad, f"{package}: imports against the floor table ({package.upper()}_FLOORS):\n" + "\n".join(bad)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_no_import_cycle_between_modules(package):
    assert import_cycles(package) == []


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_rooms_are_the_floor_table_and_say_what_they_own(package):
    rooms = {p.parent.name for p in (ROOT / package).glob("*/__init__.py")}
    top_rooms = set(TOP_LEVEL_ROOM[package].values()) | ({DEFAULT_TOP_ROOM[package]} - {None})
    assert rooms | top_rooms == set(FLOORS[package]), rooms
    for room, below in FLOORS[package].items():  # the table itself runs downward: no room reaches back up
        for other in below:
            assert room not in FLOORS[package][other], (room, other)
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))) or ""
    for room in rooms:
        init = ast.get_docstring(ast.parse((ROOT / package / room / "__init__.py").read_text(encoding="utf-8")))
        assert init and len(init) > 40, f"{package}/{room}/__init__.py needs a docstring saying what it owns"
        assert f"{room}/" in doc, f"{package}/__init__.py's map does not name {room}/"


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_the_checkers_catch_planted_bad_imports(tmp_path, monkeypatch):
    # The old layouts' faults, planted: align and faces importing each other (one inside a function), a data
    # module reaching up into the network inside a function, a floor module importing a room, a store module
    # importing the admin pages, and a late import with no reason given.
    _plant(tmp_path, {
        "generator/__init__.py": "from generator.errors import GeneratorError\n",
        "generator/errors.py": "class GeneratorError(Exception): ...\n",
        "generator/align.py": "import numpy\n\ndef build():\n    from generator.faces import detect\n",
        "generator/faces.py": "from generator.align import build\n",
        "generator/renderers.py": "from generator.neural.renderer import NeuralRenderer\n",
        "generator/data/__init__.py": "",
        "generator/data/prepare.py": "def f():\n    from generator.neural import model as m\n    import cv2  # heavy\n",
        "generator/data/cli.py": "def g():\n    from generator.data.prepare import f  # lazy\n",
        "generator/neural/__init__.py": "",
        "generator/neural/model.py": "from generator.data.prepare import f\n",
        "generator/neural/renderer.py": "from . import model\n",
        "study_server/__init__.py": "",
        "study_server/store/__init__.py": "",
        "study_server/admin/__init__.py": "",
        "study_server/store/models.py": "def f():\n    import json  # why\n    from study_server.admin.pages import bp  # dodge\n",
        "study_server/admin/pages.py": "from study_server.store import models\n",
    })
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert floor_violations("generator") == [
        "generator/align.py:4 imports generator.faces.detect inside a function (move it to the top)",
        "generator/align.py:4 imports generator.faces.detect inside a function without a comment saying why",
        "generator/data/prepare.py:2 (data) imports generator.neural.model (neural)",
        "generator/data/prepare.py:2 imports generator.neural.model inside a function (move it to the top)",
        "generator/data/prepare.py:2 imports generator.neural.model inside a function without a comment saying why",
        "generator/renderers.py:1 (base) imports generator.neural.renderer.NeuralRenderer (neural)",
    ]
    cycles = import_cycles("generator")
    assert ["generator.align", "generator.faces", "generator.align"] in cycles
    assert ["generator.data.prepare", "generator.neural.model", "generator.data.prepare"] in cycles
    assert module_imports(tmp_path / "generator/neural/renderer.py") == [(1, "generator.neural.model", False)]
    assert floor_violations("study_server") == [
        "study_server/store/models.py:2 imports json inside a function: only optional heavy dependencies wait",
        "study_server/store/models.py:3 (store) imports study_server.admin.pages.bp (admin)",
        "study_server/store/models.py:3 imports study_server.admin.pages.bp inside a function (move it to the top)",
    ]
    assert ["study_server.admin.pages", "study_server.store.models", "study_server.admin.pages"] in \
        import_cycles("study_server")
