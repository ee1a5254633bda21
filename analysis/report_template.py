"""The HTML template and stylesheet of ``report.html`` (rendered by :func:`analysis.report.render_html`).

One self-contained file: the CSS and one small script (the copy buttons) inline, figures as base64
PNG, no external resources. Layout rules: the page never scrolls sideways (tables scroll inside their
own box, long words break, images shrink to the column); the print stylesheet keeps every figure, the
flow diagram and each sentence on one page and drops the buttons.
"""

CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.45; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
code { background: #f5f5f5; padding: 0 .2em; }
nav.toc ol { columns: 2 16em; padding-left: 1.2em; }
.table-box { width: fit-content; max-width: 100%; overflow-x: auto; margin: .4em 0 1.2em; }
table { border-collapse: collapse; font-size: .85em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; overflow-wrap: normal; }
td { white-space: nowrap; }
.table-box.wrap td { white-space: normal; min-width: 4.5em; }
.table-box.wrap td:first-child { min-width: 12em; }
th { background: #f2f4f7; font-weight: 600; min-width: 3em; }
th.num, td.num { text-align: right; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .9em; color: #555; margin-top: .3em; }
.sentences { list-style: none; padding: 0; }
.sentence { display: flex; gap: .6em; align-items: flex-start; padding: .55em .7em; margin: .5em 0;
            background: #f6f8fb; border-left: 3px solid #4c72b0; }
.sentence p { margin: 0; flex: 1 1 auto; min-width: 0; }
.sentence .topic { display: block; font-size: .8em; color: #555; text-transform: uppercase; letter-spacing: .03em; }
button.copy { flex: 0 0 auto; font: inherit; font-size: .85em; padding: .2em .7em; border: 1px solid #4c72b0;
              background: #fff; color: #234; border-radius: 3px; cursor: pointer; }
button.copy:focus-visible { outline: 2px solid #dd8452; }
.note { background: #fff8e6; padding: .4em .7em; border-left: 3px solid #dd8452; }
.methods p { margin: .5em 0; }
@media (max-width: 600px) {
  body { padding: 0 .6em; margin: .8em auto; }
  .sentence { flex-direction: column; }
  h1 { font-size: 1.3em; }
}
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10.5pt; }
  nav.toc, button.copy { display: none; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  figure, .sentence, tr { break-inside: avoid; page-break-inside: avoid; }
  figure img { max-height: 24cm; width: auto; }
  .table-box { overflow: visible; border: 0; width: auto; }
  table { font-size: 8pt; }
  th, td { padding: 1px 3px; }
  th { min-width: 0; overflow-wrap: anywhere; }
  td { white-space: normal; }  /* a page cannot scroll: wide tables wrap their cells instead */
  a { color: inherit; text-decoration: none; }
}
@page { size: A4; margin: 15mm; }
"""

# Copy buttons: the Clipboard API where allowed, else a selection and execCommand("copy") (file:// pages).
SCRIPT = """
document.querySelectorAll("button.copy").forEach(function (button) {
  button.addEventListener("click", function () {
    var text = document.getElementById(button.dataset.target).textContent.trim();
    function done(ok) {
      button.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
      document.body.appendChild(area); area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area); done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else { fallback(); }
  });
});
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<p>Study <code>{{ study }}</code>, task <code>{{ task }}</code>. Every number is also in <code>results.json</code>;
tables are in <code>tables/</code> (all columns), figures (PNG, PDF) in <code>figures/</code>.</p>
{% for w in warnings %}<p class="note"><strong>Note:</strong> {{ w }}</p>{% endfor %}
<nav class="toc" aria-label="Contents"><ol>
{% if analysed %}<li><a href="#what-was-analysed">What was analysed and why</a></li>{% endif %}
<li><a href="#results-in-words">Results in words</a></li><li><a href="#methods">Methods</a></li>
<li><a href="#participant-flow">Participant flow and exclusions</a></li>
{% if paper %}<li><a href="#compared-with-the-paper">Compared with the paper</a></li>{% endif %}
{% for section in sections %}<li><a href="#{{ section.id }}">{{ section.title }}</a></li>{% endfor %}
</ol></nav>
{% if analysed %}<h2 id="what-was-analysed">What was analysed and why</h2>
<div class="methods">{% for p in analysed %}<p>{{ p }}</p>{% endfor %}</div>{% endif %}
<h2 id="results-in-words">Results in words</h2>
<p>One sentence per test, generated from the numbers below (APA style; significance at .05). The
<em>Copy</em> button copies the sentence as plain text.</p>
<ul class="sentences">{% for s in sentences %}
<li class="sentence"><p><span class="topic">{{ s.topic }}</span><span id="s-{{ loop.index }}">{{ s.text }}</span></p>
<button type="button" class="copy" data-target="s-{{ loop.index }}" aria-label="Copy: {{ s.topic }}">Copy</button></li>
{% endfor %}</ul>
<h2 id="methods">Methods</h2>
<div class="methods">{% for p in methods %}<p>{{ p }}</p>{% endfor %}</div>
<h2 id="participant-flow">Participant flow and exclusions</h2>
{% if flow_figure %}<figure>
<img alt="{{ flow_figure.alt }}" width="{{ flow_figure.width }}" src="data:image/png;base64,{{ flow_figure.data }}">
<figcaption>{{ flow_figure.alt }}</figcaption></figure>{% endif %}
<p>{{ flow_text }}</p>
<h3>Exclusions</h3>
<div class="table-box wrap" role="region" aria-label="Exclusions" tabindex="0">{{ counts_table }}</div>
{% if paper %}
<h2 id="compared-with-the-paper">Compared with the paper</h2>
{% for n in paper.notes %}<p>{{ n }}</p>{% endfor %}
<div class="table-box wrap" role="region" aria-label="Compared with the paper" tabindex="0">{{ paper.html }}</div>
{% endif %}
{% for section in sections %}
<h2 id="{{ section.id }}">{{ section.title }}</h2>
{% if section.text %}<p>{{ section.text }}</p>{% endif %}
{% for fig in section.figures %}<figure>
<img alt="{{ fig.alt }}" width="{{ fig.width }}" src="data:image/png;base64,{{ fig.data }}">
<figcaption>{{ fig.alt }}</figcaption></figure>{% endfor %}
{% for t in section.tables %}<h3>{{ t.title }}</h3>
<div class="table-box" role="region" aria-label="{{ t.title }}" tabindex="0">{{ t.html }}</div>
{% if t.more %}<p class="more"><small>All columns: <code>tables/{{ t.name }}.csv</code>.</small></p>{% endif %}
{% endfor %}
{% endfor %}
<script>{{ script }}</script>
</body></html>
"""
