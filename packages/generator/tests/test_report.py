"""The main job's report (avtok.generator.job.report) on real clips: user text is escaped, media are linked
by bare names inside one folder, tiny clips are upscaled by a labelled integer factor, every reference row is
explained; the folder logged to MLflow is served with working links by ``mlflow server``; headless Chromium
loads it with no failed media request and no console error."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import torch

from avtok.generator.job.report import generator_sections, tokenizer_sections, write_report
from avtok.media_io import AVClip, read_clip, sample_path, write_clip

PROMPT = '<script>document.title="pwned"</script> a band <AUDCAP>drums, cheering<ENDAUDCAP>'
EVIL_NAME = "<img src=x onerror=alert(1)>.mp4"
LINK = re.compile(r'(?:src|poster|href)="(?!data:)([^"]+)"')


def _noisy(clip: AVClip, seed: int) -> AVClip:
    g = torch.Generator().manual_seed(seed)
    video = clip.video_float() + 0.1 * torch.randn(clip.video.shape, generator=g)
    return AVClip.from_float(
        video=video,
        audio=clip.audio * 0.3,
        fps=clip.fps,
        sample_rate=clip.sample_rate,
        start=clip.start,
        source=clip.source,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report built from a 1 s window of the real concert clip read back from a file with a hostile name."""
    root = tmp_path_factory.mktemp("report")
    src = read_clip(sample_path("concert"), start=5.0, duration=1.0, size=(32, 32), resize_mode="crop")
    clip = read_clip(write_clip(root / EVIL_NAME, src))
    rec, gen = _noisy(clip, 0), _noisy(clip, 1)
    out = root / "out"
    out.mkdir()
    outputs = {"avtok-av": {id(clip): rec}, "ceiling:hifigan(true mel)": {id(clip): clip}}
    recon = pl.DataFrame(
        {
            "model": ["avtok-av", "baseline:identity", "baseline:mean_frame+silence"],
            "clips": [1, 1, 1],
            "psnr": [18.5, float("inf"), 12.0],
            "ssim": [0.5, 1.0, 0.2],
        }
    )
    generation = pl.DataFrame(
        {
            "model": ["t2av", "a2v (held-out audio)", "ceiling:latent round trip", "real held-out clips"],
            "clips": [1, 1, 1, 1],
            "frame_fid": [90.0, 80.0, 20.0, 0.0],
            "fad": [3.0, 1.0, 1.0, None],
        }
    )
    write_report(
        out, title="avtok — test", intro=f"Data {clip.source}, prompt {PROMPT}", facts={"prompt": PROMPT},
        recon=recon, recon_sections=tokenizer_sections(out, [clip], outputs, (clip, rec)),
        generation=generation, notes=[f"made from {EVIL_NAME}"],
        gen_sections=generator_sections(out, [clip], {"t2av": [gen], "a2v (held-out audio)": [gen],
                                                      "ceiling:latent round trip": [clip]}),
    )  # fmt: skip
    return out / "report.html"


def test_user_text_is_escaped_and_links_stay_in_the_folder(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;document.title=" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.mp4" in page
    assert "&lt;AUDCAP&gt;drums, cheering&lt;ENDAUDCAP&gt;" in page  # the prompt's markers are shown
    links = LINK.findall(page)
    assert len(links) >= 12 and all("/" not in link for link in links)
    for link in links:
        assert (report.parent / link).is_file(), link
    # 32x32 frames: shown x6 (192 // 32) with nearest-neighbour upscaling, and labelled so
    assert 'width="192" height="192"' in page and "shown ×6 with nearest-neighbour upscaling" in page
    assert page.count('class="nearest"') == page.count("<video") + page.count('<img class="nearest"')
    # every reference row is explained; the a2v FAD caveat is stated; identity PSNR is ∞
    for row in (
        "baseline:identity",
        "baseline:mean_frame+silence",
        "ceiling:latent round trip",
        "a2v (held-out audio)",
        "real held-out clips",
    ):
        assert f"<dt>{row}</dt>" in page, row
    assert "its FAD equals the ceiling&#39;s by construction" in page and "<td>∞</td>" in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 300.0, log: Path | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"mlflow server did not answer {url} in {seconds} s")


@pytest.fixture(scope="module")
def served(report: Path, tmp_path_factory):
    """The report folder logged as the artifact folder ``report/`` of an MLflow run in an embedded store
    (as the job does), served by ``mlflow server`` on 127.0.0.1; yields (server root, report URL)."""
    pytest.importorskip("mlflow")
    from avtok.eval.artifacts import log_html_folder
    from avtok.eval.tracking import MlflowTracker

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowTracker(experiment="report", tracking_uri=uri, run_name="report")
    log_html_folder(tracker, report.parent, page="report.html", artifact_path="report")
    tracker.close()
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        str(root / "mlartifacts"),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "w")  # noqa: SIM115 - a file, not a pipe nobody drains
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{server}/health", proc, log=root / "server.log")
        yield server, tracker.artifact_url("report/report.html", server=server)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers (its own process group)
        proc.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_logged_report_links_work_through_mlflow_server(served, report: Path) -> None:
    """The logged page names its artifact folder in <base> (the MLflow UI previews HTML in an srcdoc
    frame, where bare relative names would resolve against the UI's URL); every link resolved against
    that base fetches the very file of the report folder."""
    server, url = served
    with urllib.request.urlopen(url, timeout=30) as r:
        page = r.read().decode("utf-8")
    base = re.search(r'<base href="([^"]+)">', page).group(1)
    assert page.replace(f'\n<base href="{base}">', "", 1) == report.read_text(encoding="utf-8")
    assert server + base + "report.html" == url
    for link in sorted(set(LINK.findall(page)) - {base}):
        with urllib.request.urlopen(
            urllib.parse.urljoin(server + base, urllib.parse.quote(link)), timeout=30
        ) as r:
            assert r.status == 200 and r.read() == (report.parent / link).read_bytes(), link


def _browser():
    """Playwright driving the system Chromium (apt ``chromium``) or Playwright's own, else a skip reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return (
            None,
            "needs playwright (pip install 'avtok-generator[test]') and Chromium (apt-get install chromium)",
        )
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    return (sync_playwright, exe), None


CHECK_MEDIA = """els => Promise.all(els.map(e => new Promise(done => {
    const ok = () => done([e.currentSrc, e.error ? e.error.code : 0, e.duration]);
    if (e.readyState >= 1 || e.error) return ok();
    e.addEventListener('loadedmetadata', ok); e.addEventListener('error', ok); e.load();
})))"""
BROKEN_IMAGES = "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src)"
SRCDOC_FRAME = """html => new Promise(done => {
    const f = document.createElement('iframe');
    f.sandbox = 'allow-scripts'; f.width = 1200; f.height = 900; f.onload = done; f.srcdoc = html;
    document.body.appendChild(f);
})"""


def _media_problems(frame) -> list:
    broken = frame.eval_on_selector_all("img", BROKEN_IMAGES)
    media = frame.eval_on_selector_all("video, audio", CHECK_MEDIA)
    bad = [m for m in media if m[1] != 0 or not m[2] > 0.5]
    return broken + bad + ([] if media else ["no players"])


def _console(message, problems: list[str]) -> None:
    """Console errors, except the browser's own favicon probe of the server's /health helper page."""
    where = message.location.get("url", "")
    if message.type == "error" and not where.endswith("/favicon.ico"):
        problems.append(f"console: {message.text} ({where})")


@pytest.mark.slow
def test_headless_chromium_loads_every_medium_without_errors(served, report: Path) -> None:
    """Two views: the report folder itself over HTTP, and the logged page as the MLflow UI shows it (an
    sandboxed srcdoc iframe on the server's origin). No failed request, no console error, every image
    decoded, every player's mp4 loaded (its duration known)."""
    found, reason = _browser()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    server, url = served
    with urllib.request.urlopen(url, timeout=30) as r:
        logged = r.read().decode("utf-8")
    local = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port := _free_port())],
        cwd=report.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    problems: list[str] = []
    try:
        _wait(f"http://127.0.0.1:{port}/report.html", local)
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            except Exception as err:  # noqa: BLE001 - no browser binary: say which and how to get one
                pytest.skip(
                    f"no headless Chromium ({str(err).splitlines()[0]}); apt-get install chromium "
                    "or playwright install chromium"
                )
            page = browser.new_page()
            page.on("console", lambda m: _console(m, problems))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
            page.on(
                "response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else 0
            )
            page.goto(f"http://127.0.0.1:{port}/report.html", wait_until="load")
            assert page.title() == "avtok — test"  # the prompt's <script> did not run
            assert "<script>document.title" in page.inner_text("body")  # it is shown as text
            problems += _media_problems(page.main_frame)
            page.goto(f"{server}/health", wait_until="load")
            page.evaluate(SRCDOC_FRAME, logged)
            problems += _media_problems(page.frames[1])
            browser.close()
    finally:
        local.terminate()
        local.wait(timeout=30)
    assert not problems, problems
