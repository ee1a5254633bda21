"""The participant pages' message catalogues (issue 28): every string the platform writes for a participant
is a msgid of the catalogue, every shipped catalogue has every msgid translated (placeholders kept), the
committed .mo files are the compiled .po files, and study.js asks the page for every sentence it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2] / "study_server" / "participant"
TRANSLATIONS = ROOT / "translations"
LANGS = ("en", "de", "es")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _extracted() -> set[str]:
    """The msgids the code uses: templates (_()), i18n.py (N_()), study.js (T()), as pybabel extracts them."""
    method_map = [("**/templates/**.html", "jinja2"), ("**/i18n.py", "python"), ("**/demographics.py", "python"),
                  ("**/static/study.js", "javascript"), ("**.py", "ignore"), ("**.js", "ignore")]
    ids = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(str(ROOT), method_map,
                                                                    keywords={"_": None, "N_": None, "T": None,
                                                                              "gettext": None}):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def _po(lang: str):
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f)


@pytest.mark.parametrize("lang", LANGS)
def test_every_catalogue_has_every_string_translated(lang):
    used = _extracted()
    assert len(used) > 80  # the extraction found the pages' strings
    catalogue = {m.id: m.string for m in _po(lang) if m.id}
    missing = sorted(used - set(catalogue))
    assert not missing, f"{lang}: not in the catalogue (run the extraction, translate): {missing[:5]}"
    unused = sorted(set(catalogue) - used)
    assert not unused, f"{lang}: in the catalogue but no page uses it: {unused[:5]}"
    empty = sorted(k for k, v in catalogue.items() if not v)
    assert not empty, f"{lang}: untranslated: {empty[:5]}"
    for msgid, text in catalogue.items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), (lang, msgid, text)
    if lang != "en":  # a catalogue that copies the English is not a translation
        same = [k for k, v in catalogue.items() if k == v and not PLACEHOLDER.fullmatch(k.split()[-1])]
        assert len(same) <= 3, (lang, same)


@pytest.mark.parametrize("lang", LANGS)
def test_the_committed_mo_is_the_compiled_po(lang):
    po = {m.id: m.string for m in _po(lang) if m.id}
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert mo == po, f"{lang}: messages.mo is stale; run pybabel compile -d {TRANSLATIONS.relative_to(ROOT.parents[1])}"


def test_study_js_shows_no_sentence_of_its_own():
    """Every msgid study.js looks up is sent by the page (SCRIPT_STRINGS), and no other string literal in it
    reads like a sentence or a button label (a capitalised word outside T())."""
    from study_server.participant.i18n import SCRIPT_STRINGS

    js = (ROOT / "static" / "study.js").read_text()
    code = re.sub(r"//[^\n]*", "", js)
    code = re.sub(r"T\((\s*\"(?:[^\"\\]|\\.)*\"\s*\+?\s*)+", "T(", code)  # the msgids themselves
    literals = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", code)
    sentences = [s for s in literals if re.match(r"[A-Z][a-z]+[ ,.:]", s) or re.fullmatch(r"[A-Z][a-z]+", s)]
    allowed = {"Accept", "Content-Type", "Retry-After"}
    assert [s for s in sentences if s not in allowed] == []
    # and the msgids T() asks for are the ones the page sends
    asked = set()
    for m in re.finditer(r"T\(((?:\s*\"(?:[^\"\\]|\\.)*\"\s*\+?)+)", js):
        asked.add("".join(re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1))).replace("\\u2026", "\u2026"))
    assert asked and asked <= set(SCRIPT_STRINGS), sorted(asked - set(SCRIPT_STRINGS))
