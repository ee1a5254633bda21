"""qc.html: the check's report, one self-contained page next to qc.json and the contact sheets.

Sections: what was checked (models with sha256, thresholds), flagged clips with their reasons, the
emotion rater's confusion matrix per source (rows: intended visual emotion; columns: the rater's top
class), expression measures per source and emotion (means over clips), clips per flag, and per clip
the video itself (a video element) beside its contact sheet.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from generator.check.measures import EXPRESSION_MEASURES
from generator.check.rater import FER_CLASSES
from stimuli.emotions import EMOTIONS
from stimuli.manifest import atomic_write_bytes

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse;
margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.flag{color:#b00}figure{margin:0 0 1em}
figcaption{font-size:12px}img{max-width:100%}code{font-size:12px}.clip{display:flex;gap:8px;align-items:flex-start}
.clip video{flex:none}.clip img{min-width:0}"""


def flag_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Clips per flag (the part of a reason before its colon), most frequent first."""
    counts: dict[str, int] = {}
    for r in records:
        for name in dict.fromkeys(x.split(":", 1)[0].strip() for x in r.get("reasons") or ()):
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def confusion(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """source -> intended visual emotion -> the rater's top class -> number of clips."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for r in records:
        if r.get("error") or r["rater"]["top"] is None or r["visual_emotion"] is None:
            continue
        out[r["source"]][r["visual_emotion"]][r["rater"]["top"]] += 1
    return out


def expression_table(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(source, visual emotion) -> measure -> mean over clips (eye distances, change from rest)."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("error") or r["visual_emotion"] is None:
            continue
        for k in EXPRESSION_MEASURES:
            v = (r.get("expression") or {}).get(k)
            if v is not None:
                acc[(r["source"], r["visual_emotion"])][k].append(v)
    return {key: {k: float(np.mean(v)) for k, v in d.items()} for key, d in acc.items()}


def intended_probability(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(source, visual emotion) -> the rater's mean probability of that emotion over the clips: finer than
    the top class (an expression can raise its class's probability without winning)."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if not r.get("error") and r["rater"].get("intended_prob") is not None:
            acc[(r["source"], r["visual_emotion"])].append(r["rater"]["intended_prob"])
    return {k: float(np.mean(v)) for k, v in acc.items()}


def _intended_html(table) -> str:
    sources = sorted({s for s, _ in table})
    rows = "".join(f"<tr><th class=l>{emo}</th>" + "".join(
        f"<td>{table[(s, emo)]:.3f}</td>" if (s, emo) in table else "<td>-</td>" for s in sources) + "</tr>"
        for emo in EMOTIONS if any((s, emo) in table for s in sources))
    return (f"<table><tr><th class=l>visual emotion</th>{''.join(f'<th>{_e(s)}</th>' for s in sources)}</tr>{rows}"
            "</table>" if rows else "")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _confusion_html(conf) -> str:
    parts = []
    for source in sorted(conf):
        rows = conf[source]
        head = "".join(f"<th>{c}</th>" for c in FER_CLASSES)
        body = []
        correct = total = 0
        for emo in EMOTIONS:
            if emo not in rows:
                continue
            n = sum(rows[emo].values())
            cells = []
            for c in FER_CLASSES:
                k = rows[emo].get(c, 0)
                shade = int(255 - 155 * k / n) if n else 255
                cells.append(f"<td style='background:rgb({shade},{shade},255)'>{k}</td>")
            hit = rows[emo].get({"anger": "angry", "happiness": "happy", "sadness": "sad"}.get(emo, emo), 0)
            correct, total = correct + hit, total + n
            body.append(f"<tr><th class=l>{emo}</th>{''.join(cells)}<td>{n}</td><td>{hit / n:.0%}</td></tr>")
        parts.append(f"<h3>{_e(source)}: rater agrees on {correct} of {total} clips</h3><table><tr><th class=l>"
                     f"intended \\ rater</th>{head}<th>clips</th><th>agree</th></tr>{''.join(body)}</table>")
    return "".join(parts) or "<p>No clip with a face and an intended emotion.</p>"


def _expression_html(table) -> str:
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in EXPRESSION_MEASURES)
    rows = []
    for (source, emo) in sorted(table, key=lambda k: (k[0], EMOTIONS.index(k[1]) if k[1] in EMOTIONS else 9)):
        vals = "".join(f"<td>{table[(source, emo)].get(k, float('nan')):+.3f}</td>" for k in EXPRESSION_MEASURES)
        rows.append(f"<tr><td class=l>{_e(source)}</td><td class=l>{emo}</td>{vals}</tr>")
    return (f"<table><tr><th class=l>source</th><th class=l>visual emotion</th>{head}</tr>{''.join(rows)}</table>"
            if rows else "<p>No measures.</p>")


def write_report(path: Path, qc: dict[str, Any]) -> Path:
    recs = qc["records"]
    flagged = [r for r in recs if r["flagged"]]
    th = qc["thresholds"]
    models = "".join(f"<tr><td class=l>{_e(m['name'])}</td><td class=l>{_e(m['file'])}</td>"
                     f"<td class=l><code>{m['sha256']}</code></td></tr>" for m in qc["models"])
    ths = "".join(f"<tr><td class=l>{k}</td><td>{v}</td></tr>" for k, v in th.items())
    flag_rows = "".join(
        f"<tr><td class=l><a href='#{_e(r['stimulus_id'])}'>{_e(r['stimulus_id'])}</a></td>"
        f"<td class=l>{_e(r.get('source', ''))}</td><td class=l>{_e(r.get('visual_emotion'))}</td>"
        f"<td class=l>{_e(r.get('audio_emotion'))}</td>"
        f"<td class='l flag'>{'<br>'.join(_e(x) for x in r['reasons'])}</td></tr>" for r in flagged)
    counts = flag_counts(recs)
    count_rows = "".join(f"<tr><td class=l>{_e(k)}</td><td>{v}</td><td>{v / max(len(recs), 1):.0%}</td></tr>"
                         for k, v in counts.items())
    sheets = []
    for r in recs:
        if r.get("error"):
            sheets.append(f"<figure id='{_e(r['stimulus_id'])}'><figcaption class=flag>{_e(r['stimulus_id'])}: "
                          f"{_e(r['error'])}</figcaption></figure>")
            continue
        ls, ident, rt = r["lipsync"], r["identity_check"], r["rater"]
        fmt = lambda x, f="{:.2f}": "-" if x is None else f.format(x)  # noqa: E731
        cap = (f"<b>{_e(r['stimulus_id'])}</b> {_e(r['source'])} / {_e(r['identity'])} / visual "
               f"{_e(r['visual_emotion'])} / audio {_e(r['audio_emotion'])} &mdash; face {r['face_fraction']:.0%}, "
               f"identity {fmt(ident['distance_max'])} ({ident['reference'].replace('_', ' ')}), lip sync r "
               f"{fmt(ls['corr'])} at lag {fmt(ls['lag_frames'], '{:+d}')}"
               f"{'' if ls['expected'] else ' (not expected)'}, rater {_e(rt['top'])}"
               f"{'' if rt.get('expected', True) else ' (no expression rendered)'}"
               + (f" <span class=flag>&mdash; {'; '.join(_e(x) for x in r['reasons'])}</span>" if r["flagged"] else ""))
        video = (f"<video controls preload=none width=192 src='{_e(r['media_url'])}' "
                 f"poster=''></video>" if r.get("media_url") else "")
        sheets.append(f"<figure id='{_e(r['stimulus_id'])}'><div class=clip>{video}<img src='{_e(r['sheet'])}' "
                      f"loading=lazy alt='contact sheet of {_e(r['stimulus_id'])}'></div>"
                      f"<figcaption>{cap}</figcaption></figure>")
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>emostudy check: {_e(qc['set_name'])}</title>
<style>{_CSS}</style></head><body>
<h1>Stimulus check: {_e(qc['set_name'] or qc['set'])}</h1>
<p>{len(recs)} clips checked, <b class=flag>{len(flagged)} flagged</b>. Measures per clip are in
<a href='qc.json'>qc.json</a>; what they mean: docs/running-a-study.md, "Check your stimuli".</p>
<h2>Clips per flag</h2>
{'<table><tr><th class=l>flag</th><th>clips</th><th>of all</th></tr>' + count_rows + '</table>' if counts
 else '<p>No clip flagged.</p>'}
<p><code>rater_disagrees</code>: the rater's top class is not the intended emotion;
<code>rater_probability</code>: the rater's probability of the intended emotion is below the threshold
(a clip can have both).</p>
<h2>Flagged clips</h2>
{'<table><tr><th class=l>clip</th><th class=l>source</th><th class=l>visual emotion</th><th class=l>audio emotion'
 '</th><th class=l>reasons</th></tr>' + flag_rows + '</table>' if flagged else '<p>None.</p>'}
<h2>Machine emotion rater: confusion per source</h2>
<p>Rows: the intended visual emotion; columns: the FER-2013 network's top class (mean over the clip's frames).
The rater is a 64x64 still-image classifier trained on FER-2013: a disagreement is a reason to look, not a verdict.</p>
{_confusion_html(confusion(recs))}
<p>The rater's mean probability of the intended emotion (per source; columns compare conditions):</p>
{_intended_html(intended_probability(recs))}
<h2>Expression measures per emotion</h2>
<p>Mean change from the face at rest, in eye distances (positive: brows raised, brows apart, lip corners
up, mouth wider, eyes wider open).</p>
{_expression_html(expression_table(recs))}
<h2>Contact sheets</h2>
{''.join(sheets)}
<h2>Models and thresholds</h2>
<table><tr><th class=l>model</th><th class=l>file</th><th class=l>sha256</th></tr>{models}</table>
<table><tr><th class=l>threshold</th><th>value</th></tr>{ths}</table>
</body></html>
"""
    atomic_write_bytes(path, page.encode())
    return path
