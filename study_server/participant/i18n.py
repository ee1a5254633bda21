"""The platform's own words on the participant's pages, from message catalogues (Flask-Babel).

Every string the platform writes for a participant (buttons, progress, errors, the listening checks, the
media failure, the end page) is a msgid in ``translations/<lang>/LC_MESSAGES/messages.po``; the plan's
``participant.language`` (``[participant] language`` in the spec) picks the catalogue. The templates call
``_()``; ``study.js`` reads its strings from a JSON blob that the page carries (``ui_strings``), made here
from the same catalogue, and writes no sentence of its own. What the researcher wrote (title, intro,
instructions, consent, debrief, questions) is shown as written, never translated.

The compiled ``.mo`` files are committed next to their ``.po`` and shipped as package data, so a plain
``pip install`` has working catalogues; ``tests/study_server/test_catalogue.py`` fails when a ``.mo`` is
older than its ``.po``, a catalogue misses a msgid, or a page writes a string that is not in them.
A new or changed string: ``pybabel extract -F study_server/participant/translations/babel.cfg -k N_ -k T
--no-location --omit-header -o study_server/participant/translations/messages.pot study_server/participant``,
``pybabel update -i .../messages.pot -d study_server/participant/translations``, translate every language,
then ``pybabel compile -d study_server/participant/translations`` and commit the .po and .mo files.

The JSON API keeps English error messages for programs; the pages show the catalogue's sentence for the
error's code (``ERROR_MESSAGES``), never the API's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import Babel, force_locale, gettext


def N_(msgid: str) -> str:
    """Marks a msgid for the catalogue (``pybabel extract`` knows ``N_``); translated where it is shown."""
    return msgid


TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("en", "de", "es")  # the catalogues shipped (stimuli.spec.LANGUAGES names the same)

# An API error's code -> what the page tells the participant. Codes not listed get GENERIC_ERROR.
ERROR_MESSAGES: dict[str, str] = {
    "study_full": N_("This study has all the participants it needs right now. Please return the task; "
                     "places may open again later."),
    "study_closed": N_("This study is not open at the moment. Please check back later or choose another task."),
    "excluded": N_("You have already taken part in a related study, so this one is not open to you. "
                   "Please return the task."),
    "lab_token_invalid": N_("This lab link is not valid for this study. Please ask the researcher for a new link."),
    "slot_expired": N_("Your place in this study was released after a long pause and has since been taken by "
                       "someone else. Please return the task. Thank you for your time."),
    "study_not_found": N_("There is no study at this address. Please check the link you were given."),
    "assignment_not_found": N_("This study link is not valid. Please open the study again from the page that "
                               "sent you here."),
    "bad_arrival": N_("This study link is incomplete. Please open the study again from the page that sent you "
                      "here."),
    "audio_check_failed": N_("This study needs working sound, and the sound check did not succeed. Please return "
                             "the task. Thank you for trying."),
    "assignment_closed": N_("This session has ended. Thank you for your time."),
    "consent_required": N_("Please tick every statement to take part, or choose that you do not consent."),
    "demographics_invalid": N_("Please answer every question marked as required, in the form asked."),
    "demographics_missing": N_("Please answer the questions about yourself first."),
    "already_started": N_("You have already given consent. To stop, please return the task on the platform."),
    "address_full": N_("Several people at your internet address are taking part in this study right now, so it "
                       "cannot take one more from there at the moment. Please try again later."),
}
GENERIC_ERROR = N_("Something went wrong. Please reload the page.")
KIND_TITLES = {"study_full": N_("Thank you for your interest"), "study_closed": N_("Thank you for your interest"),
               "excluded": N_("Thank you for your interest"), "address_full": N_("Thank you for your interest")}

# The strings study.js shows, by msgid (the English text). Placeholders are %(name)s, filled in by study.js.
SCRIPT_STRINGS = (
    N_("Sorry"), N_("Thank you"), N_("Connection problem"),
    N_("The study's server is briefly unavailable. Nothing is lost: this page keeps your answers and will try "
       "again by itself in a few seconds."),
    N_("Saving %(n)s answer(s)\u2026"),
    N_("The study could not be loaded. Please check your connection and reload the page."),
    N_("You chose not to take part. You may close this page and return the task."),
    N_("You chose not to take part. Your place has been given back; you may close this page."),
    N_("Your place in this study was released after a long pause. Please open the study again from the page "
       "that sent you here."),
    N_("This study needs headphones, and the headphone check did not succeed. Please return the task (you will "
       "not be penalised for it). Thank you for trying."),
    N_("This study needs working sound, and the sound check did not succeed. Please return the task. Thank you "
       "for trying."),
    N_("Play the noise"), N_("Stop the noise"),
    N_("Press Play: you will hear three tones, one after the other. Which tone is the softest (quietest): 1, 2 "
       "or 3?"),
    N_("Press Play: you will hear three noises, one after the other. One of them has a faint tone hidden in "
       "it. Which one: 1, 2 or 3?"),
    N_("Sound %(n)s of %(total)s"),
    N_("The sound could not be loaded. Please check your connection and press Play again."),
    N_("Connection problem; please choose again."),
    N_("That round did not pass. Please make sure you are wearing headphones (both sides), then try again "
       "(rounds left: %(n)s)."),
    N_("That was not the word. Please listen to a new word (tries left: %(n)s)."),
    N_("Connection problem; please try again."),
    N_("Example %(n)s: %(label)s"), N_("Example %(n)s of %(total)s"),
    N_("This example could not be loaded (%(n)s tries). You can try again, or press Next to go on."),
    N_("This example could not be loaded. Please check your internet connection and press Try again."),
    N_("Video %(n)s of %(total)s"), N_("Play"), N_("Play again"),
    N_("This video could not be loaded (%(n)s tries). You can try once more, or go on without it: it will be "
       "recorded as a video that did not load, not as an answer."),
    N_("This video could not be loaded. Please check your internet connection and press Try again (try %(n)s "
       "of %(total)s)."),
    N_("Saving\u2026"), N_("Saving your answers\u2026"),
    N_("Some answers are not saved yet (connection problem). Please keep this page open; press Try again."),
    N_("Connection problem. Please press Try again."),
    N_("Several videos could not be loaded, so this study cannot go on. The researchers have been told and will "
       "review your session. Thank you for your time."),
)


def select_language(plan: dict[str, Any] | None) -> str:
    lang = ((plan or {}).get("participant") or {}).get("language", "en")
    return lang if lang in LANGUAGES else "en"


def ui_strings() -> dict[str, Any]:
    """The script's strings and error texts in the current locale: ``{"text": {msgid: str}, "errors": ...}``."""
    return {"text": {s: _translate(s) for s in SCRIPT_STRINGS},
            "errors": {code: _translate(m) for code, m in ERROR_MESSAGES.items()},
            "generic_error": _translate(GENERIC_ERROR)}


def _translate(msgid: str) -> str:
    # gettext() without variables leaves %(name)s placeholders for study.js to fill
    return gettext(msgid)


def error_text(code: str) -> tuple[str, str]:
    """(title, message) of an API error for the participant, in the current locale."""
    return _translate(KIND_TITLES.get(code, N_("Sorry"))), _translate(ERROR_MESSAGES.get(code, GENERIC_ERROR))


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app)  # the locale is set per page with ``force_locale`` (the plan's language), never guessed


__all__ = ["LANGUAGES", "ERROR_MESSAGES", "SCRIPT_STRINGS", "select_language", "ui_strings", "error_text",
           "init_app", "force_locale", "gettext"]
