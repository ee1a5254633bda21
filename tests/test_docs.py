"""The documentation cannot go stale silently.

Every ``emostudy ...`` command line quoted in README.md and docs/*.md (fenced and indented code blocks,
and inline code spans) must name an existing subcommand path and only options that this command's
``--help`` lists; relative links must point to files that exist. ``torchrun ... -m emostudy.cli train ...``
lines count as ``emostudy train``. Also: bench/run_all.py finds the benchmark scripts and passes
``--quick`` only to scripts that accept it.
"""

from __future__ import annotations

import re
import shlex
import sys
from functools import lru_cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from emostudy.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# fenced blocks with one of these info strings are not shell (diagrams, Python, config files)
_NOT_SHELL = {"text", "python", "py", "ini", "toml", "json", "nginx", "csv", "r", "sql"}
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_FENCE_RE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)")
_INLINE_RE = re.compile(r"`([^`\n]+)`")
_OPTION_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of the shell lines in code blocks and inline code spans; ``\\``-continued
    lines are joined."""
    out: list[tuple[int, str]] = []
    lines = text.splitlines()
    in_fence = skip = False
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE_RE.match(line)
        if fence:
            in_fence = not in_fence
            skip = in_fence and fence.group(3).lower() in _NOT_SHELL
            i += 1
            continue
        indented = not in_fence and line.startswith("    ") and indented_block(lines, i)
        if (in_fence and not skip) or indented:
            start = i
            joined = line.strip()
            while joined.endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined[:-1].rstrip() + " " + lines[i].strip()
            out.append((start + 1, joined))
        else:
            for m in _INLINE_RE.finditer(line):
                out.append((i + 1, m.group(1)))
        i += 1
    return out


def indented_block(lines: list[str], i: int) -> bool:
    """An indented line is a code block when the paragraph it belongs to started after a blank line with
    indentation (not a continued list item)."""
    j = i
    while j > 0 and lines[j - 1].strip():
        if not lines[j - 1].startswith("    "):
            return False
        j -= 1
    return True


def command_argv(segment: str) -> list[str] | None:
    """The arguments after `emostudy` when ``segment`` runs emostudy (after ``VAR=value`` assignments and
    ``sudo``/``time``; ``torchrun``/``python`` with ``-m emostudy.cli``), else None."""
    if "emostudy" not in segment and "stimuli" not in segment:
        return None
    try:
        tokens = shlex.split(segment, comments=True)
    except ValueError as exc:
        raise AssertionError(f"cannot parse {segment!r}: {exc}") from None
    while tokens and (_ENV_RE.match(tokens[0]) or tokens[0] in {"$", "time", "nohup", "exec", "env"}):
        tokens.pop(0)
    if tokens[:1] == ["sudo"]:
        tokens.pop(0)
        while tokens and tokens[0].startswith("-"):
            tokens = tokens[2:] if tokens[0] in {"-u", "-g"} else tokens[1:]
    if not tokens:
        return None
    exe = tokens[0].rsplit("/", 1)[-1]
    if exe == "emostudy":
        return tokens[1:]
    if exe in {"torchrun", "python", "python3", "python3.11"}:
        for i, tok in enumerate(tokens[:-1]):
            if tok == "-m" and tokens[i + 1] in {"emostudy.cli", "emostudy"}:
                return tokens[i + 2:]
    return None


def emostudy_invocations(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv after `emostudy`) for each quoted command line."""
    found = []
    for lineno, line in code_lines(text):
        for segment in re.split(r"\s(?:&&|\|\||;|\|)\s", line):
            try:
                argv = command_argv(segment.strip())
            except AssertionError as exc:
                raise AssertionError(f"line {lineno}: {exc}") from None
            if argv is not None:
                found.append((lineno, argv))
    return found


@lru_cache(maxsize=None)
def help_text(path: tuple[str, ...]) -> tuple[int, str]:
    res = CliRunner().invoke(main, [*path, "--help"])
    return res.exit_code, res.output


def resolve(argv: list[str]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """Split argv into the subcommand path and the rest; raise AssertionError for an unknown subcommand."""
    ctx = click.Context(main)
    cmd: click.Command = main
    path: list[str] = []
    rest = list(argv)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            if path and getattr(cmd, "invoke_without_command", False):
                break  # a group that is also a command (generate): the token is an argument
            known = ", ".join(cmd.list_commands(ctx))
            raise AssertionError(f"`emostudy {' '.join(path + [rest[0]])}`: no such subcommand (known: {known})")
        path.append(rest.pop(0))
        cmd = sub
    return tuple(path), cmd, rest


def check_invocation(argv: list[str]) -> list[str]:
    """Problems of one quoted command line (empty: fine)."""
    if not argv:
        return []  # `emostudy` alone prints its help
    try:
        path, cmd, rest = resolve(argv)
    except AssertionError as exc:
        return [str(exc)]
    code, text = help_text(path)
    if code != 0:
        return [f"`emostudy {' '.join(path)} --help` failed (exit code {code}): {text[-300:]}"]
    listed = set(_OPTION_RE.findall(text))
    problems = []
    for raw in rest:
        for tok in raw.strip("[](){},").split("|"):  # usage style: [--seed 0], [--amp|--no-amp]
            if tok.startswith("-") and tok != "-" and not re.fullmatch(r"-\d+(\.\d+)?", tok):
                opt = tok.split("=", 1)[0]
                if opt not in listed:
                    problems.append(f"`emostudy {' '.join(path)}` has no option {opt} (its --help lists: "
                                    f"{', '.join(sorted(o for o in listed if o.startswith('--')))})")
    if isinstance(cmd, click.Group) and not getattr(cmd, "invoke_without_command", False) \
            and not any(t in ("--help", "-h") for t in rest) and rest:
        problems.append(f"`emostudy {' '.join(path)}` needs a subcommand before {rest[0]!r}")
    return problems


def _doc_params():
    return [pytest.param(p, id=str(p.relative_to(REPO))) for p in DOCS]


# --------------------------------------------------------------------------- the parser itself

def test_code_lines_finds_fenced_indented_inline_and_continued_lines():
    text = ("Intro with `emostudy serve --port 5000` inline.\n\n```\nemostudy plan --spec paper-task1 \\\n"
            "    --set sets/t1 --seed 1 --out p.json   # a comment --not-an-option\n```\n\n"
            "    EMOSTUDY_ENV=production .venv/bin/emostudy db upgrade\n\n"
            "- a list item\n    continued `not code`\n\n```text\nemostudy plan  ->  server\n```\n\n"
            "    sudo -u postgres createdb --owner emostudy emostudy\n"
            "    torchrun --nproc_per_node 2 -m emostudy.cli train --resume runs/x\n")
    got = emostudy_invocations(text)
    assert got == [(1, ["serve", "--port", "5000"]),
                   (4, ["plan", "--spec", "paper-task1", "--set", "sets/t1", "--seed", "1", "--out", "p.json"]),
                   (8, ["db", "upgrade"]), (18, ["train", "--resume", "runs/x"])]


def test_checker_catches_unknown_subcommands_and_options():
    assert check_invocation(["plan", "--spec", "x", "--set", "y", "--seed", "1", "--out", "z"]) == []
    assert check_invocation(["recruit", "open", "--platform", "mturk", "--study", "s", "--base-url", "u"]) == []
    assert check_invocation(["train", "--amp"]) == [] and check_invocation(["train", "--no-amp"]) == []
    assert check_invocation(["generate", "merge", "out", "--name", "n"]) == []
    assert "no such subcommand" in check_invocation(["plann"])[0]
    assert "no such subcommand" in check_invocation(["recruit", "pay"])[0]
    assert "has no option --verbose" in check_invocation(["serve", "--verbose"])[0]
    assert "has no option --nope" in check_invocation(["serve", "[--port", "5000]", "[--debug|--nope]"])[0]
    assert check_invocation(["train", "[--amp|--no-amp]", "[--steps=1,2,3]"]) == []
    # an option of another subcommand does not count
    assert "has no option --spec" in check_invocation(["study", "import", "p.json", "--spec", "x"])[0]
    # hidden options are not listed by --help, so documenting them fails
    assert check_invocation(["recruit", "status", "--prolific-url", "x", "--platform", "lab", "--study", "s"])
    assert "needs a subcommand" in check_invocation(["db", "somewhere"])[0] or \
        "no such subcommand" in check_invocation(["db", "somewhere"])[0]


# --------------------------------------------------------------------------- the real documents

@pytest.mark.parametrize("doc", _doc_params())
def test_every_quoted_emostudy_command_exists(doc: Path):
    problems = []
    for lineno, argv in emostudy_invocations(doc.read_text(encoding="utf-8")):
        problems += [f"{doc.relative_to(REPO)}:{lineno}: {p}" for p in check_invocation(argv)]
    assert not problems, "\n".join(problems)


def test_the_documents_quote_commands_at_all():
    # guards the parser: if it silently found nothing, the test above would pass on stale docs
    n = {doc.name: len(emostudy_invocations(doc.read_text(encoding="utf-8"))) for doc in DOCS}
    for name in ("README.md", "running-a-study.md", "training.md", "deployment.md", "reproducing-the-paper.md"):
        assert n.get(name, 0) >= 3, n


@pytest.mark.parametrize("doc", _doc_params())
def test_relative_links_resolve(doc: Path):
    missing = []
    for m in _LINK_RE.finditer(doc.read_text(encoding="utf-8")):
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-z]+:", target):
            continue
        if not (doc.parent / target).exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(REPO)} links to missing files: {missing}"


def test_readme_keeps_the_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    for target in ("demo:", "test:", "bench:"):
        assert re.search(rf"^{target}", (REPO / "Makefile").read_text(), re.M), target


# --------------------------------------------------------------------------- bench/run_all.py

def test_run_all_discovers_the_scripts_and_passes_quick_only_where_accepted(tmp_path):
    sys.path.insert(0, str(REPO))
    try:
        from bench import run_all
    finally:
        sys.path.remove(str(REPO))
    found = run_all.discover()
    assert [p.name for p in found if p.name.startswith("bench_")] == sorted(
        p.name for p in (REPO / "bench").glob("bench_*.py"))
    assert all(p.is_file() for p in found)
    with_quick = tmp_path / "bench_a.py"
    with_quick.write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--quick', "
                          "action='store_true')\na = p.parse_args()\nprint('quick' if a.quick else 'full')\n")
    without = tmp_path / "bench_b.py"
    without.write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--quickly')\n"
                       "p.parse_args()\nprint('ran')\n")
    assert run_all.supports_quick(with_quick) and not run_all.supports_quick(without)
    assert run_all.command(with_quick, quick=True)[-1] == "--quick"
    assert run_all.command(with_quick, quick=False)[-1] == str(with_quick)
    assert run_all.command(without, quick=True)[-1] == str(without)
    out = tmp_path / "out"
    out.mkdir()
    o = run_all.run_one(with_quick, run_all.command(with_quick, quick=True), out)
    assert o.returncode == 0 and (out / "a.log").read_text().strip().endswith("quick")
    assert [s.name for s in run_all.select(run_all.discover(), ["warp"])] == ["bench_warp.py"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.select(run_all.discover(), ["no-such-bench"])


# --------------------------------------------------------------------------- deployment settings

def test_deployment_lists_every_setting_of_the_server_config():
    from study_server.core.config import Config, config_keys

    text = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    missing = [k for k in config_keys(Config) if f"`EMOSTUDY_{k}`" not in text]
    assert not missing, f"docs/deployment.md does not document: {', '.join('EMOSTUDY_' + k for k in missing)}"
    # and documents no EMOSTUDY_ variable that nothing reads
    documented = set(re.findall(r"`EMOSTUDY_([A-Z0-9_]+)`", text))
    read_elsewhere = {"ENV", "PUBLIC_URL", "PROLIFIC_API_TOKEN", "TEST_POSTGRES_URL"}
    unknown = documented - set(config_keys(Config)) - read_elsewhere
    assert not unknown, f"docs/deployment.md documents unknown variables: {sorted(unknown)}"
    for name in read_elsewhere - {"ENV"}:
        hits = [p for p in (REPO / "study_server").rglob("*.py") if f"EMOSTUDY_{name}" in p.read_text()] + \
            [p for p in (REPO / "tests").rglob("conftest.py") if f"EMOSTUDY_{name}" in p.read_text()]
        assert hits, f"EMOSTUDY_{name} is documented but no code reads it"


def test_readme_screenshots_exist_and_are_small():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", text)
    assert len(images) >= 3, images
    for rel in images:
        path = REPO / rel
        assert path.is_file(), rel
        assert path.stat().st_size < 300 * 1024, f"{rel} is {path.stat().st_size // 1024} KB"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel


def test_running_a_study_explains_every_key_of_the_ready_made_specs():
    import tomllib

    def keys(obj, out):
        if isinstance(obj, dict):
            for k, v in obj.items():
                out.add(k)
                keys(v, out)
        elif isinstance(obj, list):
            for v in obj:
                keys(v, out)
        return out

    used = set()
    for spec in sorted((REPO / "stimuli" / "specs").glob("*.toml")):
        keys(tomllib.loads(spec.read_text(encoding="utf-8")), used)
    text = (REPO / "docs" / "running-a-study.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in text.splitlines() if line.startswith("| "))  # the spec key table
    missing = sorted(k for k in used if not re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", table))
    assert not missing, f"docs/running-a-study.md does not explain the spec keys {missing}"


def test_benchmarks_md_names_every_benchmark_script_and_its_anchors_exist():
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "make bench" in text
    scripts = [p.name for p in (REPO / "bench").glob("bench_*.py")] + ["server_load.py"]
    missing = [name for name in scripts if (REPO / "bench" / name).is_file() and f"bench/{name}" not in text]
    assert not missing, f"docs/benchmarks.md does not name {missing}"

    def anchor(heading: str) -> str:  # GitHub's rule: lower case, drop punctuation but - and _, spaces -> -
        return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    broken = [a for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors]
    assert not broken, f"docs/benchmarks.md links to missing sections: {broken}"


def test_run_all_main_writes_logs_and_summary(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(REPO))
    try:
        from bench import run_all
    finally:
        sys.path.remove(str(REPO))
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_ok.py").write_text("print('42 frames/s')\n")
    (bench / "bench_bad.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", bench)
    monkeypatch.setattr(run_all, "discover", lambda bench_dir=bench: sorted(bench.glob("bench_*.py")))
    out = tmp_path / "results"
    assert run_all.main(["--out", str(out)]) == 1  # one benchmark failed
    printed = capsys.readouterr().out
    assert f"benchmark results go to {out}" in printed and "FAILED: bad" in printed
    assert "42 frames/s" in (out / "ok.log").read_text() and "boom" in (out / "bad.log").read_text()
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert {r["name"]: r["returncode"] for r in summary["results"]} == {"bad": 3, "ok": 0}
    assert run_all.main(["--out", str(tmp_path / "only"), "--only", "ok"]) == 0


def test_screenshot_helpers(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("screenshots", REPO / "docs" / "screenshots.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    for rel in ("reports/task2-1/figures/task1_confusion.png", "reports/task1-1/figures/task1_confusion.png",
                "reports/task1-1/figures/task1_accuracy.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"png")
    assert shots.pick_figure(tmp_path, "task1_confusion") == tmp_path / "reports/task1-1/figures/task1_confusion.png"
    with pytest.raises(shots.ScreenshotError, match="task1_accuracy, task1_confusion"):
        shots.pick_figure(tmp_path, "nope")
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    big = tmp_path / "big.png"
    # a smooth picture with fine noise: large as truecolour PNG, small with a 256-colour palette
    y, x = np.mgrid[0:600, 0:1000]
    img = np.stack([(x / 4) % 256, (y / 3) % 256, (x + y) / 7 % 256], -1) + rng.integers(0, 3, (600, 1000, 3))
    Image.fromarray(img.astype(np.uint8)).save(big)
    before = big.stat().st_size
    shots.shrink_png(big, max_kb=before // 1024 - 1)
    assert big.stat().st_size < before
    with Image.open(big) as im:
        assert im.size == (1000, 600)
