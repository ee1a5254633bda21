"""`emostudy demo` checks its sets in the background (issue 34): the links do not wait for the check; until a
set's check is done its qc.html says so; a finished check is not run again for the same clips; a failed one
is reported with its log. The check command is replaced by a small script (the real one: tests/test_demo.py)."""

from __future__ import annotations

import json
import sys

from emostudy import demo


def _fake_check(tmp_path, exit_code: int = 0) -> list[str]:
    script = tmp_path / "fake_check.py"
    script.write_text(
        "import sys, pathlib, time\n"
        "set_dir = pathlib.Path(sys.argv[2])\n"
        "assert '--no-manifest' in sys.argv  # the plans were made from the manifest: it must not change\n"
        "time.sleep(0.3)\n"
        "(set_dir / 'qc' / 'qc.json').write_text('{}')\n"
        "(set_dir / 'qc' / 'qc.html').write_text('<h1>Stimulus check: done</h1>')\n"
        f"sys.exit({exit_code})\n")
    return [sys.executable, str(script)]


def _paths(tmp_path):
    paths = demo.DemoPaths(tmp_path / "demo")
    for task in demo.TASKS:
        (paths.sets / task).mkdir(parents=True)
        (paths.sets / task / "manifest.json").write_text(json.dumps(
            {"stimuli": [{"stimulus_id": f"{task}-a", "sha256": "0" * 64}]}))
    return paths


def test_checks_run_in_the_background_once_per_set_of_clips(tmp_path, monkeypatch):
    paths = _paths(tmp_path)
    monkeypatch.setattr(demo, "_emostudy", lambda: _fake_check(tmp_path))
    said: list[str] = []
    thread = demo.start_checks(paths, said.append)
    assert thread is not None
    for task in demo.TASKS:  # at once, before the check ends: the page says it is running
        assert "running" in (paths.sets / task / "qc" / "qc.html").read_text()
    thread.join(timeout=30)
    for task in demo.TASKS:
        assert "done" in (paths.sets / task / "qc" / "qc.html").read_text()
    assert sum("done" in s for s in said) == 2
    assert demo.start_checks(paths, said.append) is None  # same clips: nothing to check again
    rows = json.loads((paths.sets / "task2" / "manifest.json").read_text())
    rows["stimuli"].append({"stimulus_id": "task2-b", "sha256": "1" * 64})
    (paths.sets / "task2" / "manifest.json").write_text(json.dumps(rows))
    again = demo.start_checks(paths, said.append)  # a new clip: only that set is checked again
    assert again is not None
    assert "done" in (paths.sets / "task1" / "qc" / "qc.html").read_text()
    again.join(timeout=30)


def test_a_failed_check_is_reported_with_its_log(tmp_path, monkeypatch):
    paths = _paths(tmp_path)
    monkeypatch.setattr(demo, "_emostudy", lambda: _fake_check(tmp_path, exit_code=3))
    said: list[str] = []
    demo.start_checks(paths, said.append).join(timeout=30)
    assert all("failed (exit 3)" in s and "check-task" in s for s in said) and len(said) == 2
    assert not (paths.sets / "task1" / "qc" / demo.CHECK_STAMP).exists()
