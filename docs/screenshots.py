"""Make the README's screenshots from a real demo: the participant trial page, the admin dashboard, the
top of a report and a report figure.

    python docs/screenshots.py                      # builds a small demo in a temporary folder
    python docs/screenshots.py --dir emostudy-demo  # reuses a demo folder (built if it has no report yet)
    python docs/screenshots.py --dir emostudy-demo --report-only   # only the two report images
    python docs/screenshots.py --dir emostudy-demo --norms-only    # only the norms report (norms-report.png)

What it does, in order:

1. builds the demo (``emostudy demo --dir DIR --simulate 20 --no-serve``) unless ``--dir`` already holds
   a finished one (``DIR/reports/*/figures/*.png``);
2. starts the demo's study server (``emostudy.demo.make_app``) on a free local port in a thread;
3. drives Debian's Chromium with Playwright through a plain participant link of ``--study``: consent,
   instructions, the audio check (the expected word is derived from the server secret, as the server does),
   the familiarisation examples, ``--answered`` trials, then stops mid-trial with the video shown and
   answers selected, and takes the screenshot;
4. logs in to the admin pages with the password in ``DIR/instance/admin_password`` and takes the dashboard;
5. opens the Task 1 report (``reports/<task1 report>/report.html``) and shoots its top (title, contents and
   the results in words) at ``--width``;
6. copies one report figure (``reports/<task1 report>/figures/<--figure>.png``);
7. opens the norms report of the demo's norming study (``reports/norming-*/report.html``, ``emostudy norms``)
   and shoots its top (``OUT/norms-report.png``), when the demo made one.

The screenshot participant is a real arrival: it stays in the demo database as one more active (then
expired) assignment of the study, next to the simulated ones. Writes ``OUT/participant-trial.png``,
``OUT/admin-dashboard.png``, ``OUT/report.png`` and ``OUT/report-figure.png`` (default ``OUT``: ``docs/img``)
and prints their sizes (``--report-only``: the last two, no server); PNGs over ``--max-kb`` are re-encoded with a reduced palette.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


class ScreenshotError(Exception):
    """A step of the screenshot run failed; the message says which and how to fix it."""


def _emostudy() -> list[str]:
    exe = Path(sys.executable).with_name("emostudy")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stimuli"]


def _report_figures(root: Path) -> list[Path]:
    return sorted(root.glob("reports/*/figures/*.png"))


def ensure_demo(root: Path, simulate: int) -> None:
    """Build the demo into ``root`` unless it already has report figures."""
    if _report_figures(root):
        print(f"reusing the demo in {root}")
        return
    argv = [*_emostudy(), "demo", "--dir", str(root), "--simulate", str(simulate), "--no-serve"]
    print("building the demo:", " ".join(argv[len(_emostudy()) - 1:]))
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    if not _report_figures(root):
        raise ScreenshotError(f"the demo in {root} wrote no report figures (reports/*/figures/*.png); "
                              "run `emostudy demo --dir DIR --simulate 20 --no-serve` and read its output")


@contextmanager
def demo_server(root: Path) -> Iterator[tuple[str, str, str]]:
    """The demo's study server on a free port: yields (base URL, admin password, server secret)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from emostudy.demo import DemoPaths, make_app

    paths = DemoPaths(root.resolve())
    pw_file = paths.instance / "admin_password"
    if not pw_file.is_file():
        raise ScreenshotError(f"{pw_file} is missing: the demo in {root} was not finished; run "
                              f"`emostudy demo --dir {root} --no-serve` first")
    password = pw_file.read_text(encoding="utf-8").strip()
    app = make_app(paths, password)

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", password, app.config["SECRET_KEY"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _play_and_answer(page, questions: list[dict], n: int) -> None:
    """Play the current trial's video to its end, then pick one option per question (varied by ``n``)."""
    page.wait_for_selector("#step-trial:not([hidden])")
    page.click("#trial-play")
    page.wait_for_function("() => !document.querySelector('#questions fieldset').disabled", timeout=30000)
    for q in questions:
        options = q["options"]
        plain = [i for i, o in enumerate(options) if not o.get("exclusive")]
        index = plain[(n * 2 + len(q["id"])) % len(plain)]
        page.click(f"label[for='q-{q['id']}-{index}']")


def shoot_participant(page, base: str, study: str, secret: str, answered: int, out: Path) -> None:
    from study_server.study.audio_check import expected_word

    page.goto(f"{base}/s/{study}")
    if "/a/" not in page.url:
        raise ScreenshotError(f"{base}/s/{study} did not start a participant session (landed on {page.url}); "
                              f"is {study!r} imported in the demo database?")
    token = page.url.rsplit("/", 1)[1]
    page.click("#consent-yes")
    page.click("#instructions-next")
    state = page.evaluate("(api) => fetch(api).then(r => r.json())",
                          page.eval_on_selector("#app", "el => el.dataset.api"))
    if state["audio_check"]["enabled"]:
        page.wait_for_selector("#step-audio:not([hidden])")
        page.fill("#audio-answer", expected_word(secret, token, 0))
        page.click("#audio-submit")
    for _ in state["examples"]:
        page.wait_for_selector("#step-examples:not([hidden])")
        page.click("#example-play")
        page.wait_for_function("() => !document.getElementById('example-next').disabled", timeout=30000)
        page.click("#example-next")
    for n in range(answered):
        _play_and_answer(page, state["questions"], n)
        page.click("#trial-next")
    _play_and_answer(page, state["questions"], answered)
    # show a frame from the middle of the clip (mouth moving), not the last one
    page.evaluate("""() => new Promise(done => {
        const v = document.getElementById('trial-video');
        v.addEventListener('seeked', () => done(), {once: true});
        v.currentTime = v.duration * 0.45; })""")
    page.wait_for_timeout(300)
    page.screenshot(path=str(out), full_page=True)


def shoot_admin(page, base: str, password: str, out: Path) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("#user", "admin")
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/", timeout=30000)
    page.screenshot(path=str(out), full_page=True)


def pick_figure(root: Path, name: str) -> Path:
    figures = _report_figures(root)
    for f in figures:
        if f.stem == name and f.parent.parent.name.startswith("task1"):
            return f
    for f in figures:
        if f.stem == name:
            return f
    raise ScreenshotError(f"no report figure named {name}.png under {root}/reports/*/figures/; there are: "
                          f"{', '.join(sorted({f.stem for f in figures})) or 'none'} (choose one with --figure)")


def pick_report(root: Path) -> Path:
    """The newest Task 1 report of the demo (else the newest report)."""
    reports = sorted(root.glob("reports/*/report.html"))
    task1 = [r for r in reports if r.parent.name.startswith("task1")]
    if not reports:
        raise ScreenshotError(f"no report under {root}/reports/; build the demo with --simulate first")
    return (task1 or reports)[-1]


def shoot_report(page, report: Path, out: Path, height: int = 1250) -> None:
    """The top of the report: title, contents and the first sentences of the results in words."""
    page.set_viewport_size({"width": page.viewport_size["width"], "height": height})
    page.goto(report.resolve().as_uri())
    page.screenshot(path=str(out), full_page=False)


def pick_norms_report(root: Path) -> Path | None:
    """The newest norms report of the demo's norming study, or None."""
    reports = sorted(root.glob("reports/norming-*/report.html"))
    return reports[-1] if reports else None


def shoot_qc(qc_html: Path, out: Path, *, width: int = 1100, height: int = 1100, max_kb: int = 300) -> Path:
    """The top of a stimulus check's qc.html (clips per flag, the flagged table), e.g. ``SET/qc/qc.html``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(qc_html.resolve().as_uri())
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()
    shrink_png(out, max_kb)
    return out


def shrink_png(path: Path, max_kb: int) -> None:
    """Re-encode ``path`` with an adaptive 256-colour palette when it is larger than ``max_kb``."""
    if path.stat().st_size <= max_kb * 1024:
        return
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def run(root: Path, out: Path, *, study: str, answered: int, figure: str, max_kb: int, width: int,
        report_only: bool = False, norms_only: bool = False) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise ScreenshotError(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    shots = [out / "participant-trial.png", out / "admin-dashboard.png"]
    written = ([] if report_only else shots) + [out / "report.png", out / "report-figure.png"]
    norms = pick_norms_report(root)
    if norms_only:
        if norms is None:
            raise ScreenshotError(f"no norms report under {root}/reports/norming-*/; run the demo with --simulate")
        written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if norms is not None:
                shoot_report(browser.new_page(viewport={"width": width, "height": 800}), norms,
                             out / "norms-report.png", height=1500)
            if norms_only:
                pass
            elif not report_only:
                with demo_server(root) as (base, password, secret):
                    page = browser.new_page(viewport={"width": width, "height": 800})
                    shoot_participant(page, base, study, secret, answered, shots[0])
                    admin = browser.new_page(viewport={"width": width, "height": 360})
                    shoot_admin(admin, base, password, shots[1])
            if not norms_only:
                shoot_report(browser.new_page(viewport={"width": width, "height": 800}), pick_report(root),
                             written[-2])
        finally:
            browser.close()
    if not norms_only:
        shutil.copyfile(pick_figure(root, figure), written[-1])
    if norms is not None:
        written.append(out / "norms-report.png")
    for path in written:
        shrink_png(path, max_kb)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None,
                        help="Demo folder to reuse (built there when it has no report yet); default: a temporary one.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="Where the PNGs go.")
    parser.add_argument("--simulate", type=int, default=20, help="Simulated participants when the demo is built.")
    parser.add_argument("--study", default="demo-task1", help="Study whose trial page is shown.")
    parser.add_argument("--answered", type=int, default=2, help="Trials answered before the screenshot.")
    parser.add_argument("--figure", default="task1_confusion",
                        help="Stem of the report figure to copy (reports/*/figures/STEM.png).")
    parser.add_argument("--width", type=int, default=1100, help="Browser window width (px).")
    parser.add_argument("--max-kb", type=int, default=300, help="Re-encode PNGs larger than this.")
    parser.add_argument("--report-only", action="store_true",
                        help="Only the report images (report.png, report-figure.png); no server, no participant.")
    parser.add_argument("--norms-only", action="store_true",
                        help="Only the norms report of the demo's norming study (norms-report.png).")
    parser.add_argument("--qc", type=Path, default=None,
                        help="Only shoot this qc.html (a stimulus check's report) into OUT/qc-flags.png.")
    args = parser.parse_args(argv)
    if args.qc is not None:
        path = shoot_qc(args.qc, args.out / "qc-flags.png", width=args.width, max_kb=args.max_kb)
        print(f"{path} ({path.stat().st_size // 1024} KB)")
        return 0
    with tempfile.TemporaryDirectory(prefix="emostudy-shots-") as tmp:
        root = args.dir if args.dir is not None else Path(tmp) / "demo"
        try:
            ensure_demo(root, args.simulate)
            written = run(root, args.out, study=args.study, answered=args.answered, figure=args.figure,
                          max_kb=args.max_kb, width=args.width, report_only=args.report_only,
                          norms_only=args.norms_only)
        except (ScreenshotError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for path in written:
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
