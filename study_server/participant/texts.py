"""What the researcher wrote for participants, as the plan stores it: the consent and debrief texts
(Markdown, rendered safely), the consent statements, the language and the video width.

Markdown is rendered by markdown-it-py in CommonMark mode with raw HTML off: a ``<script>`` or any other
tag in the file is shown as text, and link targets that are not web or mail links (``javascript:``,
``data:``) are refused by markdown-it's own link check. Nothing here adds a sentence of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image")


def render_markdown(text: str) -> Markup:
    """HTML of a researcher's Markdown text: headings, paragraphs, lists, emphasis, links; no raw HTML."""
    return Markup(_MD.render(text))


@dataclass(frozen=True)
class ParticipantDocs:
    consent_html: Markup | None
    statements: tuple[str, ...]
    debrief_html: Markup | None
    language: str
    video_width: int | None


def docs_of(plan: dict[str, Any]) -> ParticipantDocs:
    """The researcher's texts of a plan (``participant.consent``, ``.debrief``...), exactly as planned."""
    part = plan.get("participant") or {}
    consent, debrief = part.get("consent"), part.get("debrief")
    return ParticipantDocs(consent_html=render_markdown(consent["text"]) if consent else None,
                           statements=tuple(consent.get("statements", ())) if consent else (),
                           debrief_html=render_markdown(debrief["text"]) if debrief else None,
                           language=part.get("language", "en"), video_width=part.get("video_width"))


def required_statements(plan: dict[str, Any]) -> int:
    """How many consent statements a participant must tick before starting."""
    consent = (plan.get("participant") or {}).get("consent") or {}
    return len(consent.get("statements", ()))
