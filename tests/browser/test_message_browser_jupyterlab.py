"""The message browser in JupyterLab, headless in Debian's Chromium: filter, page, open a message.

A JupyterLab server on 127.0.0.1 (a free port, a token) opens a two-cell notebook written
here: it fills a topic with the clickstream and shows ``streamlab.widgets.MessageBrowser``.
Playwright types a ``where`` filter, applies it, pages on, clicks a row of the itables grid
and reads the message's pretty JSON in the detail pane, then saves a screenshot (to
``$STREAMLAB_SCREENSHOTS`` when set, else pytest's temporary directory).
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
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}
CELLS = [
    "import tempfile\nimport streamlab\nfrom streamlab import datasets\n"
    "lab = streamlab.connect(tempfile.mkdtemp())\n"
    "lab.create_topic('clicks', partitions=3, config={'retention.ms': -1})\n"
    "with lab.producer() as p:\n    p.send_many('clicks', datasets.clickstream(600), key='user', timestamp='ts')",
    "browser = streamlab.widgets.MessageBrowser(lab, 'clicks', limit=10)\nbrowser",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def notebook_url(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / "browse.ipynb")
    port, token, home = _free_port(), secrets.token_hex(16), tmp_path / "jupyter"
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
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    log = open(tmp_path / "jupyterlab.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, f"JupyterLab exited with status {proc.returncode}"
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                break
            assert time.monotonic() < deadline, "JupyterLab did not start within 40 s"
            time.sleep(0.2)
        yield f"{base}/lab/tree/browse.ipynb?token={token}"
    finally:
        with contextlib.suppress(OSError, urllib.error.URLError):  # shuts the kernel down too
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                                   timeout=10).close()  # fmt: skip
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _screenshot(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("STREAMLAB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_message_browser_filters_pages_and_opens_a_message(notebook_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    started = time.monotonic()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1600, "height": 1200})
        page.set_default_timeout(30_000)
        try:
            page.goto(notebook_url)
            page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for()
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.get_by_text("clicks page 1: 10 record(s)").first.wait_for(timeout=45_000)
            rows = page.locator("table.dataTable tbody tr")
            assert rows.count() == 10

            page.locator(".widget-text", has_text="where").locator("input").fill("amount > 100")
            page.get_by_role("button", name="Apply").click()
            page.get_by_text("(where amount > 100)").first.wait_for()
            assert 1 <= rows.count() <= 10
            amounts = [float(t) for t in page.locator("table.dataTable tbody td:nth-child(11)").all_inner_texts() if t]
            assert amounts and all(a > 100 for a in amounts), amounts

            where = page.locator(".widget-text", has_text="where").locator("input")
            where.fill("")
            where.press("Enter")  # Enter applies, as the Apply button does
            page.get_by_text("clicks page 1: 10 record(s), partition 0 offset 0").first.wait_for()
            page.get_by_role("button", name="Next").click()
            page.get_by_text("clicks page 2: 10 record(s), partition 0 offset 10").first.wait_for()

            rows.nth(2).click()  # offset 12 of partition 0
            detail = page.locator(".widget-html", has_text="headers").last
            detail.get_by_text('"event_id"').first.wait_for()
            text = detail.inner_text()
            assert "partition\t0" in text and "offset\t12" in text and '"amount"' in text, text
            shot = _screenshot(tmp_path, "jupyterlab-message-browser.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
        except Exception:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(_screenshot(tmp_path, "jupyterlab-message-browser-failure.png")))
            raise
        finally:
            chromium.close()
    assert time.monotonic() - started < 90
