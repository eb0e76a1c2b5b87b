"""Remake the README's screenshots of the terminal cockpit on runs of other frameworks.

``python docs/screenshots.py [mmengine|lightning|hf ...]``: starts the adapter tests' tiny training
script of each framework, attaches ``cockpit attach`` in a private tmux server (120x34), waits until
the plot has a few hundred steps, captures the screen with its colours, and renders it with Rich
(ANSI to SVG) and Chromium (SVG to PNG) into ``docs/adapter-<framework>.png``. Needs tmux,
Debian's Chromium and the framework installed (``make test`` installs them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "adapters"
WIDTH, HEIGHT = 120, 34


def script(framework: str, folder: Path) -> list[str]:
    if framework == "mmengine":
        sys.path[:0] = [str(ROOT / "tests")]
        from adapters.helpers import mmengine_config

        (folder / "gate").touch()
        config = mmengine_config(folder, by_epoch=False, gate=folder / "gate", seconds=0.02)
        return [str(TESTS / "mm_train.py"), str(config)]
    name = {"lightning": "lightning_train.py", "hf": "hf_train.py"}[framework]
    return [str(TESTS / name), str(folder / "w")]


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-u", "-L", socket, *args], check=True, capture_output=True, text=True).stdout


def live_run(work: Path, process: subprocess.Popen, timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the training script exited with {process.returncode}")
        for record in work.glob("*/run.json"):
            with open(record) as file:
                if json.load(file).get("status") == "running" and (record.parent / "cockpit.json").is_file():
                    return record.parent
        time.sleep(0.2)
    raise SystemExit("the run never served")


def shoot(framework: str) -> Path:
    from rich.console import Console
    from rich.text import Text

    folder = Path(tempfile.mkdtemp(prefix=f"cockpit-shot-{framework}-"))
    argv = script(framework, folder)
    env = {"PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(folder), "PYTHONUNBUFFERED": "1"}
    with open(folder / "output.txt", "w") as output:
        process = subprocess.Popen([sys.executable, *argv], cwd=folder, stdout=output, stderr=subprocess.STDOUT,
                                   env=env)
    socket = f"cockpit-shot-{uuid.uuid4().hex[:8]}"
    try:
        run_dir = live_run(folder / "w", process)
        cockpit = Path(sys.executable).parent / "cockpit"
        tmux(socket, "new-session", "-d", "-s", "app", "-x", str(WIDTH), "-y", str(HEIGHT),
             f"env -u COLUMNS -u LINES TERM=xterm-256color LANG=C.UTF-8 {cockpit} attach {run_dir}")
        time.sleep(25)  # a screenshot, not a test: let the plot fill
        ansi = tmux(socket, "capture-pane", "-e", "-p", "-t", "app")
        console = Console(record=True, width=WIDTH, force_terminal=True, color_system="truecolor")
        console.print(Text.from_ansi(ansi), end="")
        svg = folder / "screen.svg"
        svg.write_text(console.export_svg(title=f"cockpit attach - {framework}"))
        target = ROOT / "docs" / f"adapter-{framework}.png"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=["--no-sandbox"])
            page = browser.new_page(device_scale_factor=1)
            page.goto(svg.as_uri())
            page.locator("svg").screenshot(path=str(target))
            browser.close()
        return target
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        process.terminate()  # the adapter saves, then stops
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["mmengine", "lightning", "hf"]:
        print(shoot(name))
