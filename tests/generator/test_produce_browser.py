"""A produced clip plays in a real browser: headless Debian Chromium (playwright) says it can play
H.264 + AAC mp4 and plays the file, served over HTTP, to its 'ended' event."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from generator.produce.batch import DesignOptions, RendererSpec, plan_items, plan_jobs, produce
from stimuli.manifest import load_manifest
from test_produce import fake_factory, make_face, make_speech

pytestmark = pytest.mark.browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture()
def served_set(tmp_path):
    (tmp_path / "in").mkdir()
    face = make_face(tmp_path / "in" / "face.png", 3)
    speech = make_speech(tmp_path / "in" / "1001_IEO_HAP_XX.wav", 2, seconds=1.0)
    items = plan_items(plan_jobs(DesignOptions("matched", faces=(str(face),), speech=(str(speech),))),
                       RendererSpec("fake"), 0)
    out = tmp_path / "set"
    produce(items, out, RendererSpec("fake"), workers=1, renderer_factory=fake_factory)
    (out / "index.html").write_text("<!doctype html><title>t</title><body></body>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", load_manifest(out)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_produced_mp4_plays_to_the_end_in_chromium(served_set, chromium_path):
    from playwright.sync_api import sync_playwright

    base, manifest = served_set
    stim = manifest.stimuli[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/index.html")
            can = page.evaluate("""() => document.createElement('video')
                .canPlayType('video/mp4; codecs="avc1.640028, mp4a.40.2"')""")
            assert can in ("probably", "maybe")
            result = page.evaluate("""async (url) => {
                const v = document.createElement('video');
                v.src = url; v.preload = 'auto'; document.body.appendChild(v);
                const ended = new Promise((resolve, reject) => {
                    v.onended = () => resolve('ended');
                    v.onerror = () => reject('media error ' + (v.error && v.error.code));
                    setTimeout(() => reject('timeout at ' + v.currentTime), 20000);
                });
                await v.play();
                const how = await ended;
                return {how, duration: v.duration, width: v.videoWidth, height: v.videoHeight,
                        t: v.currentTime};
            }""", f"{base}/{stim.media}")
        finally:
            browser.close()
    assert result["how"] == "ended"
    assert (result["width"], result["height"]) == (stim.width, stim.height)
    assert abs(result["duration"] - stim.duration_s) < 0.05
    assert result["t"] == pytest.approx(result["duration"], abs=0.05)
