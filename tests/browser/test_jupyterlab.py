"""The dashboard in the frontend users run: JupyterLab, headless, in Debian's Chromium.

A JupyterLab server starts on 127.0.0.1 (a free port, a token, a temporary root holding a
copy of ``notebooks/dashboard.ipynb``); Chromium, driven by Playwright's Python package
(Debian's binary, no browser download), opens the notebook and runs it top to bottom. The
test then checks in the DOM that the dashboard's widgets rendered the topic's partitions
and the group's members (and, with $STREAMLAB_JOBS_PYTHON, the streaming job's view, live
table and live plot), clicks *Add consumer* and sees the new member appear, and saves
a screenshot (to ``$STREAMLAB_SCREENSHOTS`` when set, else pytest's temporary directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# a fresh JupyterLab asks which kernel to start and whether to fetch news: answer up front
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with status {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"JupyterLab did not answer {url} within {timeout} s")


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server with a copy of the dashboard notebook (outputs cleared: the page
    runs it); yields the notebook's URL and stops the server after."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / "dashboard.ipynb")

    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path / "jupyter"
    for plugin, settings in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
    ]  # fmt: skip
    log = open(tmp_path / "jupyterlab.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/api/status?token={token}", proc)
        yield f"{base}/lab/tree/dashboard.ipynb?token={token}"
    finally:
        with contextlib.suppress(OSError, urllib.error.URLError):  # shuts kernels down too
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def _screenshot_path(tmp_path: Path) -> Path:
    chosen = os.environ.get("STREAMLAB_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "jupyterlab-dashboard.png"


def test_dashboard_runs_and_renders_in_jupyterlab(jupyterlab: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    started = time.monotonic()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2600})
            page.set_default_timeout(30_000)
            page.goto(jupyterlab)
            page.locator(".jp-Notebook").first.wait_for()
            page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for()  # the kernel is up
            page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has the focus

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            dashboard = page.locator(".widget-vbox", has_text="streamlab dashboard: topic clicks, group analytics")
            dashboard.first.wait_for()
            lag = page.locator(".widget-vbox", has_text="Offsets and lag: analytics on clicks").last
            timeline = page.locator(".widget-vbox", has_text="Rebalance timeline: analytics").last
            # the last cell waits for the generator and the group to catch up: then all is drawn
            page.get_by_text("300 of 300 generated at 200 records/s").first.wait_for(timeout=45_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.widget-html')].some(e => e.innerText.includes('total lag: 0'))"
            )

            lag_text = lag.inner_text()
            for p in range(3):
                assert f"partition {p}" in lag_text
            header = timeline.inner_text()
            assert "state Stable, generation 2, assignor range, 2 member(s)" in header
            assert "ana: clicks[0], clicks[1]" in header and "ben: clicks[2]" in header
            tail = page.locator(".widget-vbox", has_text="Live tail of clicks").last.inner_text()
            assert all(f"partition {p} (end offset" in tail for p in range(3))
            assert "clicks" in page.locator(".widget-vbox", has_text="Topics").last.inner_text()
            # lag and throughput over time, drawn live from the history the dashboard samples
            history = page.locator(".widget-vbox", has_text="History: analytics on clicks").last
            assert "Lag over time" in history.inner_text() and "Throughput over time" in history.inner_text()
            # attached, not visible: a partition whose lag stayed 0 is a flat line, a polyline
            # with no height, which Playwright calls hidden
            history.locator("svg polyline").first.wait_for(state="attached", timeout=15_000)
            assert history.locator("svg polyline").count() >= 4  # a line per partition, and the rates

            # the streaming job's section (it needs the Quix environment CI names): the job view,
            # the live table and the live plot drawn; the kernel is idle again for the click below
            if os.environ.get("STREAMLAB_JOBS_PYTHON"):
                page.get_by_text("1 late record(s) dropped").first.wait_for(timeout=90_000)
                assert "late records dropped" in page.locator(".widget-vbox", has_text="Job: revenue").last.inner_text()
                table = page.locator(".widget-vbox", has_text="Live table: revenue").last
                assert "88 key(s), 209 records read" in table.inner_text()
                plot = page.locator(".widget-vbox", has_text="Live plot: revenue").last
                assert plot.locator("svg polyline").count() >= 8  # a line per category

            # a click in the browser runs a consumer in the kernel: the group rebalances
            timeline.get_by_role("button", name="Add consumer").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.widget-html')]"
                ".some(e => e.innerText.includes('generation 3') && e.innerText.includes('notebook-1:'))"
            )
            assert "3 member(s)" in timeline.inner_text()

            shot = _screenshot_path(tmp_path)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
        except Exception:
            with contextlib.suppress(Exception):  # what the page looked like, for the failure report
                page.screenshot(path=str(_screenshot_path(tmp_path).with_name("jupyterlab-failure.png")))
            raise
        finally:
            browser.close()
    assert time.monotonic() - started < 150  # the dashboard, then the streaming job section (a Quix job)
