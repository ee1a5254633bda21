"""`emostudy db|study|serve|export` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from emostudy.cli import main
from studykit import TASK1, TASK2, make_plan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    for name in ("EMOSTUDY_DATABASE_URL", "EMOSTUDY_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMOSTUDY_SECRET_KEY", "cli-test-secret")
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"

    def run(*args: str, ok: bool = True, input: str | None = None):
        result = CliRunner().invoke(main, [*args, "--db", url], input=input)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result
    run.url = url
    return run


def test_db_upgrade_current_downgrade(cli):
    from study_server.store import schema as db

    out = cli("db", "current").output
    assert "base (empty)" in out and "behind" in out
    cli("db", "upgrade")
    assert db.current(cli.url) == db.head_revisions()
    assert "up to date" in cli("db", "current").output
    refused = cli("db", "downgrade", "base", ok=False, input="n\n")
    assert refused.exit_code != 0 and db.current(cli.url) == db.head_revisions()
    cli("db", "downgrade", "base", "--yes")
    assert db.current(cli.url) == ()


def test_study_import_list_export(cli, media_set, tmp_path):
    plan = make_plan(media_set, TASK1, out=tmp_path / "p1.json")
    refused = cli("study", "import", str(plan), "--set", str(media_set), ok=False)
    assert refused.exit_code != 0 and "emostudy db upgrade" in refused.output
    cli("db", "upgrade")
    imported = cli("study", "import", str(plan), "--set", str(media_set))
    study_id = imported.stdout.strip().splitlines()[-1]
    assert study_id.isdigit()
    assert "imported study 'tiny-task1'" in imported.stderr
    second = cli("study", "import", str(make_plan(media_set, TASK2, out=tmp_path / "p2.json")), "--set",
                 str(media_set))
    assert int(second.stdout.strip()) != int(study_id)
    again = cli("study", "import", str(plan), "--set", str(media_set), ok=False)
    assert again.exit_code == 1 and "already imported" in again.output
    listing = cli("study", "list").output
    assert "tiny-task1" in listing and "tiny-task2" in listing and "0/4" in listing
    out = tmp_path / "export"
    done = cli("export", "tiny-task1", "--out", str(out))
    assert "0 answer rows" in done.output
    assert (out / "answers.csv").read_text().startswith("answer_id,study,task,batch_id,participant,")
    assert json.loads((out / "plan.json").read_text())["study"]["name"] == "tiny-task1"
    refused = cli("export", study_id, "--out", str(out), ok=False)  # by id, into a non-empty folder
    assert refused.exit_code == 1 and "never overwrite" in refused.output
    missing = cli("export", "no-such-study", "--out", str(tmp_path / "e2"), ok=False)
    assert missing.exit_code == 1 and "no study named 'no-such-study'" in missing.output
    assert not (tmp_path / "e2").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_http_and_never_imports_torch(cli, tmp_path):
    cli("db", "upgrade")
    port = _free_port()
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['emostudy', 'serve', '--host', '127.0.0.1', '--port', sys.argv[1]]\n"
        "import study_server.commands.server, study_server.app\n"
        "import flask\n"
        "orig = flask.Flask.run\n"
        "def run(self, *a, **k):\n"
        "    print('torch imported:', 'torch' in sys.modules, flush=True)\n"
        "    return orig(self, *a, **k)\n"
        "flask.Flask.run = run\n"
        "from emostudy.cli import main\n"
        "main()\n")
    env = {**os.environ, "EMOSTUDY_DATABASE_URL": cli.url, "EMOSTUDY_SECRET_KEY": "cli-test-secret"}
    proc = subprocess.Popen([sys.executable, "-c", probe, str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as response:
                    assert response.status == 200
                    headers = response.headers
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not come up: {proc.stdout.read()}")
                time.sleep(0.2)
        assert "frame-ancestors" in headers["Content-Security-Policy"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "torch imported: False" in output
    assert f"http://127.0.0.1:{port}/" in output
