"""[study] authors, license, citation, url, funder (issue 33): optional keys for the Psych-DS export; `emostudy
plan` warns (never refuses) when the ones the specification recommends are absent."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from stimuli_factories import task2_rows

from emostudy.cli import main
from stimuli.errors import SpecError
from stimuli.spec import parse_spec, resolve_spec

KEYS = '''authors = ["A. Researcher"]
license = "CC-BY-4.0"
citation = "Researcher, A. (2026). Talking faces."
url = "https://example.org/data"
'''


def _with_keys(text: str, keys: str = KEYS) -> str:
    return text.replace("[study]\n", "[study]\n" + keys, 1)


def test_keys_are_read_and_reach_the_plan(tmp_path, write_set):
    _, raw = resolve_spec("paper-task2")
    spec = tmp_path / "spec.toml"
    spec.write_text(_with_keys(raw.decode()))
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(main, ["plan", "--spec", str(spec), "--set", str(write_set(task2_rows(), "s")), "--seed",
                                  "1", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    assert json.loads(out.read_text())["study"]["dataset"] == {
        "authors": ["A. Researcher"], "license": "CC-BY-4.0", "citation": "Researcher, A. (2026). Talking faces.",
        "url": "https://example.org/data"}


def test_missing_keys_are_a_warning_not_a_refusal(tmp_path, write_set):
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(main, ["plan", "--spec", "paper-task2", "--set", str(write_set(task2_rows(), "s")),
                                  "--seed", "1", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0 and out.exists()
    assert "warning: [study] of" in r.output and "authors, license, citation, url" in r.output
    assert "dataset" not in json.loads(out.read_text())["study"]  # old specs: the plan's bytes are unchanged


def test_bad_values_name_the_key():
    _, raw = resolve_spec("paper-task2")
    with pytest.raises(SpecError, match=r"study.authors"):
        parse_spec(_with_keys(raw.decode(), 'authors = "A. Researcher"\n'))
    with pytest.raises(SpecError, match=r"study.licence"):
        parse_spec(_with_keys(raw.decode(), 'licence = "MIT"\n'))
