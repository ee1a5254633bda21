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


# --- Inside generator/: rooms on floors (issue 26). ---
# A room is a sub-package of generator/; the modules at generator/'s top level (errors, audio, mediaio,
# align, faces, renderers) are the floor every room stands on ("base"). Imports run only downward: a room
# may import the rooms listed here (besides itself), never one above it. The map is generator/__init__.py's.
# (renderers.get_renderer loads the warp/neural backends by name from its BACKENDS registry, on demand:
# a plugin table, not an import statement, so production never names the renderer it runs.)
GENERATOR_FLOORS = {
    "base": set(),
    "data": {"base"},
    "warp": {"base"},
    "check": {"base"},
    "neural": {"base", "data"},
    "evaluate": {"base", "data", "neural"},
    "produce": {"base", "data", "check"},
}


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str, bool]]:
    """(line, full dotted name, inside a function?) for every import of ours in ``path``, at any depth.
    ``from a.b import c`` gives ``a.b.c`` (c may be a module or a name in it); a relative import is
    resolved against ``path``'s package (generator/ uses none, but a relative one must not slip through)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root)
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = list(rel.with_suffix("").parts)
                parts = parts[:len(parts) - node.level]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in OURS:
                found.append((node.lineno, name, id(node) in in_function))
    return sorted(found)


def generator_room(dotted: str) -> str | None:
    """The room of a dotted name under generator (a module, or a name in one); None outside generator."""
    parts = dotted.split(".")
    if parts[0] != "generator":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in GENERATOR_FLOORS and parts[1] != "base" else "base"


def _file_room(root: Path, f: Path) -> str:
    rel = f.relative_to(root).parts  # ("generator", "align.py") or ("generator", "neural", "train.py")
    return rel[1] if len(rel) > 2 else "base"


def generator_floor_violations(root: Path = ROOT) -> list[str]:
    bad = []
    for f in sorted((root / "generator").rglob("*.py")):
        room = _file_room(root, f)
        for line, name, _ in imported_modules(f, root):
            target = generator_room(name)
            if target is not None and target != room and target not in GENERATOR_FLOORS[room]:
                bad.append(f"{f.relative_to(root)}:{line} ({room}) imports {name} ({target})")
    return bad


def is_command_module(f: Path) -> bool:
    return f.name == "cli.py" or f.name.endswith("_cli.py")


def function_level_imports_of_ours(root: Path = ROOT) -> list[str]:
    """Imports of our packages inside a function of a generator/ module that is not a command module.
    (Command modules keep their imports lazy so that the command table stays light; each says so.)"""
    bad = []
    for f in sorted((root / "generator").rglob("*.py")):
        if is_command_module(f):
            continue
        bad += [f"{f.relative_to(root)}:{line} imports {name} inside a function"
                for line, name, inside in imported_modules(f, root) if inside]
    return bad


def _module_file(root: Path, dotted: str) -> str | None:
    """The generator module a dotted name lives in (``generator.align.template`` -> ``generator.align``)."""
    parts = dotted.split(".")
    while parts:
        p = root.joinpath(*parts)
        if p.with_suffix(".py").is_file() or (p / "__init__.py").is_file():
            return ".".join(parts)
        parts = parts[:-1]
    return None


def generator_import_circles(root: Path = ROOT) -> list[list[str]]:
    """Circles among generator/'s modules, every import statement counted (top-level or in a function)."""
    graph: dict[str, set[str]] = {}
    for f in sorted((root / "generator").rglob("*.py")):
        mod = ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        graph[mod] = {m for _, name, _ in imported_modules(f, root)
                      if name.startswith("generator.") and (m := _module_file(root, name)) not in (None, mod)}
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return circles


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_generator_checkers_catch_planted_bad_imports(tmp_path):
    # The old layout's faults, planted: align and faces importing each other (one inside a function), a data
    # module reaching up into the network inside a function, a floor module importing a room.
    _plant(tmp_path, {
        "generator/__init__.py": "from generator.errors import GeneratorError\n",
        "generator/errors.py": "class GeneratorError(Exception): ...\n",
        "generator/align.py": "import numpy\n\ndef build():\n    from generator.faces import detect\n",
        "generator/faces.py": "from generator.align import build\n",
        "generator/renderers.py": "from generator.neural.renderer import NeuralRenderer\n",
        "generator/data/__init__.py": "",
        "generator/data/prepare.py": "def f():\n    from generator.neural import model as m\n    import cv2\n",
        "generator/data/cli.py": "def g():\n    from generator.data.prepare import f  # lazy\n",
        "generator/neural/__init__.py": "",
        "generator/neural/model.py": "from generator.data.prepare import f\n",
        "generator/neural/renderer.py": "from . import model\n",
    })
    assert generator_floor_violations(tmp_path) == [
        "generator/data/prepare.py:2 (data) imports generator.neural.model (neural)",
        "generator/renderers.py:1 (base) imports generator.neural.renderer.NeuralRenderer (neural)",
    ]
    assert function_level_imports_of_ours(tmp_path) == [
        "generator/align.py:4 imports generator.faces.detect inside a function",
        "generator/data/prepare.py:2 imports generator.neural.model inside a function",
    ]
    circles = generator_import_circles(tmp_path)
    assert ["generator.align", "generator.faces", "generator.align"] in circles
    assert ["generator.data.prepare", "generator.neural.model", "generator.data.prepare"] in circles
    assert imported_modules(tmp_path / "generator/neural/renderer.py", tmp_path) == [(1, "generator.neural.model", False)]


def test_generator_rooms_are_the_floor_table():
    rooms = {p.parent.name for p in (ROOT / "generator").glob("*/__init__.py")}
    assert rooms == set(GENERATOR_FLOORS) - {"base"}, rooms
    for room, below in GENERATOR_FLOORS.items():  # the table itself runs downward: no room reaches back up
        for other in below:
            assert room not in GENERATOR_FLOORS[other], (room, other)
    doc = __import__("generator").__doc__
    for room in rooms:
        assert f"{room}/" in doc, f"generator/__init__.py's map does not name {room}/"


def test_generator_rooms_import_downward():
    bad = generator_floor_violations()
    assert not bad, "generator/ imports a room above it (GENERATOR_FLOORS):\n" + "\n".join(bad)


def test_generator_no_function_level_imports_of_ours():
    bad = function_level_imports_of_ours()
    assert not bad, ("an import of ours inside a function outside a command module (cli.py / *_cli.py): "
                     "move it to the top\n" + "\n".join(bad))


def test_generator_lazy_imports_say_why():
    """Every import left inside a function of generator/ carries a comment: a heavy optional dependency,
    or a command module keeping the command table light."""
    silent = []
    for f in sorted((ROOT / "generator").rglob("*.py")):
        lines = f.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        span = lines[node.lineno - 2:node.end_lineno]  # the line above, and the statement
                        if not any("#" in s for s in span):
                            silent.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(sorted(set(silent)))


def test_generator_has_no_import_circle():
    assert generator_import_circles() == []
