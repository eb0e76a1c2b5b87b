"""The notebook cockpit in a real browser: JupyterLab, Debian's Chromium, Playwright.

What a person does: open a notebook, run its first cell, watch the loss being drawn, click
"Save checkpoint" and "Pause", reload the tab (the widget comes back as it is), resume from an
older checkpoint (it asks first; the abandoned branch stays listed), continue, run the second
cell (``cockpit.wait()``, the kernel is busy: a click waits, and the widget says so), and
interrupt the kernel (the run saves and stops). The kernel's
side is checked on disk: the checkpoint files and the run's ``run.json``. A screenshot goes to ``$COCKPIT_SCREENSHOT_DIR`` (or the
test's tmp folder), and to ``docs/notebook.png`` when ``COCKPIT_UPDATE_DOCS=1``.

Every wait is for something the page or the run shows, with a deadline long enough for a busy
2-core machine (``PATIENCE``); the run is far longer than the test and ends when the test stops it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api
from support import free_port

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's Chromium (apt-get install -y chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOT_LINE = ".js-plotly-plot .scatterlayer .trace path.js-line"
#: Seconds any one step may take on a loaded machine (JupyterLab, a kernel and Chromium on 2 cores).
PATIENCE = 240
NOTEBOOK_CODE = """\
from cockpit.widgets.notebook import Cockpit

cockpit = Cockpit.from_cfg("digits.py", cfg_options={"train_cfg.max_epochs": 100000}, work_dir="work")
cockpit.train()
"""
#: The cell that keeps the kernel busy while the buttons are clicked.
BUSY_CODE = "cockpit.wait()"
pytestmark = pytest.mark.timeout(8 * PATIENCE)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def lab(tmp_path):
    """A private JupyterLab on 127.0.0.1 serving ``tmp_path/root``; yields ``(url, root)``."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(ROOT / "demos" / "digits.py", root / "digits.py")
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": cell, "metadata": {},
                           "outputs": [], "source": code} for cell, code in (("train", NOTEBOOK_CODE),
                                                                             ("busy", BUSY_CODE))],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    write_json(root / "live.ipynb", notebook)
    settings = tmp_path / "lab-settings"
    write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
               {"autoStartDefaultKernel": True})
    write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
               {"fetchNews": "false", "checkForUpdates": False})
    # The kernel is this interpreter (the venv), whatever else is installed.
    write_json(tmp_path / "jupyter-path" / "kernels" / "python3" / "kernel.json",
               {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3", "language": "python"})
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTER_PATH": str(tmp_path / "jupyter-path")}
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}"]
    with open(tmp_path / "jupyterlab.log", "wb") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
            deadline = time.monotonic() + PATIENCE
            while True:
                assert server.poll() is None, (tmp_path / "jupyterlab.log").read_text()[-3000:]
                try:
                    with direct.open(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, f"JupyterLab did not start in {PATIENCE} s"
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}/lab/tree/live.ipynb?token={token}", root
        finally:
            kernel_pids = [json.loads(p.read_text()).get("pid") for p in root.glob("work/*/run.json")]
            server.send_signal(signal.SIGTERM)  # the server shuts its kernels down
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
            for pid in kernel_pids:  # the training kernel, if the server left it behind
                if pid and pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def progress_text(page) -> str:
    return page.locator(".cockpit-progress").first.inner_text()


def shown_iteration(page) -> int:
    return int(re.search(r"iter (\d+)", progress_text(page)).group(1))


def run_record(root: Path) -> dict:
    return json.loads(next(root.glob("work/*/run.json")).read_text())


def wait_until(condition, timeout: float = PATIENCE, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def kernel_idle(page, timeout: float = PATIENCE * 1000) -> None:
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }", timeout=timeout)


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("COCKPIT_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_widget_in_jupyterlab(lab, tmp_path):
    url, root = lab
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(url)
            kernel_idle(page)
            # Run the first cell only (the second is selected next, for later).
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-cell-and-select-next'); }")
            page.wait_for_selector(PLOT_LINE, timeout=PATIENCE * 1000)
            # Two epochs in, the plot has validation points too (and the screenshot shows a real run).
            wait_until(lambda: shown_iteration(page) >= 100, what="two epochs of training")
            assert page.get_by_text("Hooks").first.is_visible()
            assert page.get_by_text("RuntimeInfoHook").first.is_visible()

            page.get_by_role("button", name="Save checkpoint").click()
            saved = page.get_by_text(re.compile(r"save ✓ applied: saved .*iter_\d+\.pth"))
            saved.wait_for(timeout=PATIENCE * 1000)
            name = re.search(r"iter_\d+\.pth", saved.inner_text()).group(0)
            assert (root / "work" / name).is_file()

            page.get_by_role("button", name="Pause").click()
            page.get_by_text(re.compile(r"pause ✓ applied: paused at iter \d+")).wait_for(timeout=PATIENCE * 1000)
            page.get_by_role("button", name="Continue").wait_for(timeout=PATIENCE * 1000)
            wait_until(lambda: run_record(root)["status"] == "paused", what="run.json to say paused")
            paused_at = shown_iteration(page)
            # The run writes run.json every second: two more writes, and the iteration has not moved.
            written = run_record(root)["updated"]
            wait_until(lambda: run_record(root)["updated"] > written + 1.0, what="run.json to be written again")
            assert shown_iteration(page) == paused_at
            assert run_record(root)["iter"] == paused_at

            # A new tab (here: a reload) shows the run as it is now: the state lives in the kernel.
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.reload()
            kernel_idle(page)
            page.wait_for_selector(PLOT_LINE, timeout=PATIENCE * 1000)
            page.get_by_role("button", name="Continue").wait_for(timeout=PATIENCE * 1000)
            assert shown_iteration(page) == paused_at

            # Resume asks first, and says where the run goes back to.
            page.locator("button[title*='/epoch_']", has_text="Resume").last.click()
            question = page.get_by_text(re.compile(r"Resume from .*epoch_\d+\.pth\? .*goes back from iter"))
            question.wait_for(timeout=PATIENCE * 1000)
            folder = screenshot_dir(tmp_path)
            page.locator(".jp-OutputArea-output").first.screenshot(path=str(folder / "notebook-resume-question.png"))
            page.get_by_role("button", name="Yes").click()
            page.get_by_text(re.compile(r"resume .*✓ applied: resumed from epoch_\d+\.pth")).wait_for(
                timeout=PATIENCE * 1000)
            page.get_by_text(re.compile(r"from an abandoned branch")).wait_for(timeout=PATIENCE * 1000)
            page.get_by_role("button", name="Continue").click()
            wait_until(lambda: run_record(root)["status"] == "running", what="run.json to say running")
            wait_until(lambda: shown_iteration(page) >= paused_at, what="training past the abandoned branch")
            page.locator(".jp-OutputArea-output").first.screenshot(path=str(folder / "notebook.png"))

            # The second cell, cockpit.wait(), keeps the kernel busy: the widget says clicks wait for it.
            page.evaluate("() => { const notebook = window.jupyterapp.shell.currentWidget.content;"
                          " notebook.activeCellIndex = 1;"
                          " window.jupyterapp.commands.execute('notebook:run-cell'); }")
            busy_prompt = page.locator(".jp-Cell").nth(1).locator(".jp-InputPrompt")
            playwright_api.expect(busy_prompt).to_have_text(re.compile(r"\[\*\]"), timeout=PATIENCE * 1000)
            assert page.get_by_text("While another cell runs, clicks wait for it to end.").is_visible()
            page.get_by_role("button", name="Save checkpoint").click()
            # The click waits in the kernel's queue while the run writes run.json twice more.
            written = run_record(root)["updated"]
            wait_until(lambda: run_record(root)["updated"] > written + 1.5, what="run.json to be written again")

            # Interrupting the kernel (in cockpit.wait()) saves a checkpoint and stops the run.
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:interrupt-kernel'); }")
            wait_until(lambda: run_record(root)["status"] == "stopped", what="run.json to say stopped")
            record = run_record(root)
            assert Path(record["last_checkpoint"]).name == f"iter_{record['iter']}.pth"
            assert Path(record["last_checkpoint"]).is_file()
            page.get_by_text("the kernel was interrupted: saving a checkpoint").wait_for(timeout=PATIENCE * 1000)
            page.get_by_text(re.compile(r"^stopped$")).first.wait_for(timeout=PATIENCE * 1000)
            for label in ("Pause", "Save checkpoint", "Validate", "Stop"):
                # The kernel redraws the widget on its next frame, and the browser then hears of it.
                playwright_api.expect(page.get_by_role("button", name=label)).to_be_disabled(timeout=PATIENCE * 1000)
            playwright_api.expect(busy_prompt).not_to_have_text(re.compile(r"\[\*\]"), timeout=PATIENCE * 1000)
            # The queued click reached the kernel once the cell ended, and the widget says how late.
            page.get_by_text(re.compile(r"save was clicked \d+\.\d s before the kernel could take it")).wait_for(
                timeout=PATIENCE * 1000)
            page.screenshot(path=str(folder / "notebook-page.png"), full_page=True)
        finally:
            browser.close()
    if os.environ.get("COCKPIT_UPDATE_DOCS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(folder / "notebook.png", ROOT / "docs" / "notebook.png")
