"""``demos/cockpit.ipynb`` runs top to bottom in a real kernel (this venv's Python), without a browser."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.manager import KernelManager

DEMOS = Path(__file__).resolve().parents[2] / "demos"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    """A ``python3`` kernelspec that runs this interpreter, found first through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cockpit venv)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


@pytest.fixture
def connection_file():
    """An absolute connection file in a short folder: the ipc sockets are named after it, and Unix
    socket paths must be short and must not depend on the kernel's working folder."""
    folder = tempfile.mkdtemp(prefix="nb-")
    yield str(Path(folder) / "kernel.json")
    shutil.rmtree(folder, ignore_errors=True)


def test_the_demo_notebook_runs_and_reads_results_back(tmp_path, venv_kernel, connection_file):
    folder = tmp_path / "demos"
    folder.mkdir()
    for name in ("cockpit.ipynb", "digits.py"):
        shutil.copy(DEMOS / name, folder / name)
    notebook = nbformat.read(folder / "cockpit.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "demos/cockpit.ipynb is committed without outputs"

    kernel = KernelManager(kernel_name=venv_kernel, transport="ipc", connection_file=connection_file)
    client = nbclient.NotebookClient(notebook, km=kernel, timeout=120, store_widget_state=True,
                                     resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    finally:
        # nbclient leaves a kernel it was handed running: stop exactly that one.
        if client.kc is not None:
            client.kc.stop_channels()
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=True)
        kernel.context.destroy(linger=0)

    outputs = {cell.id: cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"}
    text = {key: "".join(o.get("text", "") for o in value) for key, value in outputs.items()}
    assert any(WIDGET_VIEW in o.get("data", {}) for o in outputs["train"]), "cockpit.train() shows the widget"
    assert "pause: applied" in text["steer"] and "save: applied" in text["steer"], text["steer"]
    assert "continuing from iter" in text["steer"]
    assert "finished after 270 iterations" in text["results"], text["results"]
    accuracy = float(text["results"].split("validation accuracy ")[1].split()[0])
    assert accuracy > 0.8
    work_dir = folder / "work_dirs" / "digits_notebook"
    assert (work_dir / "epoch_6.pth").is_file() and list(work_dir.glob("iter_*.pth"))

    # The widget state was saved with the notebook: the figure holds the run's points.
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    figures = [s["state"] for s in states.values() if "_widget_data" in s["state"]]
    assert figures
    traces = {trace["name"]: trace for trace in figures[0]["_widget_data"]}
    assert len(traces["train/loss"]["x"]) > 200
    assert traces["train/lr"]["yaxis"] == "y2"


# --- a busy, paused or interrupted kernel ----------------------------------------------------------
#: Seconds any one step may take on a loaded 2-core machine.
PATIENCE = 180
TRAIN_CELL = """\
from cockpit.widgets.notebook import Cockpit
cockpit = Cockpit.from_cfg("digits.py", cfg_options={"train_cfg.max_epochs": 100000}, work_dir="work",
                           clicks_while_busy=True)
cockpit.train()
print("lane", cockpit.lane.open, cockpit.lane.reason)
"""


class Kernel:
    """A real kernel (this venv's Python) driven cell by cell, as a notebook front end does."""

    def __init__(self, folder: Path, connection_file: str) -> None:
        self.manager = KernelManager(kernel_name="python3", transport="ipc", connection_file=connection_file)
        self.manager.start_kernel(cwd=str(folder))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(PATIENCE)

    def run(self, code: str) -> dict:
        """Run a cell to its end: ``{'status', 'stdout', 'ename'}``."""
        out: list[str] = []

        def on_output(message: dict) -> None:
            if message["msg_type"] == "stream":
                out.append(message["content"]["text"])

        reply = self.client.execute_interactive(code, timeout=PATIENCE, output_hook=on_output)
        return {"status": reply["content"]["status"], "stdout": "".join(out),
                "ename": reply["content"].get("ename", ""), "evalue": reply["content"].get("evalue", "")}

    def start(self, code: str) -> str:
        """Start a cell and return at once (its reply comes later); its message id."""
        return self.client.execute(code)

    def finished(self, msg_id: str) -> dict | None:
        """The reply of cell ``msg_id`` if it came (other replies are dropped), else None."""
        while self.client.shell_channel.msg_ready():
            reply = self.client.get_shell_msg(timeout=1)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]
        return None

    def click(self, model_id: str) -> None:
        """What a browser sends when a button is clicked."""
        content = {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    def value(self, expression: str) -> str:
        return self.run(f"print({expression})")["stdout"].strip()

    def close(self) -> None:
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=True)
        self.manager.context.destroy(linger=0)


def run_record(folder: Path) -> dict:
    records = list(folder.glob("work/*/run.json"))
    return json.loads(records[0].read_text()) if records else {}


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_busy_paused_or_interrupted_kernel_steers_and_stops_the_run_cleanly(tmp_path, venv_kernel,
                                                                             connection_file):
    shutil.copy(DEMOS / "digits.py", tmp_path / "digits.py")
    kernel = Kernel(tmp_path, connection_file)
    try:
        assert "lane True" in kernel.run(TRAIN_CELL)["stdout"]
        wait_until(lambda: run_record(tmp_path).get("status") == "running", "the run to train")
        pause = kernel.value('cockpit.view.controls.button("pause").model_id')

        # A click while another cell runs acts at once: the run pauses, the cell still runs.
        busy = kernel.start("import time; time.sleep(100000)")
        kernel.click(pause)
        wait_until(lambda: run_record(tmp_path).get("status") == "paused", "the click to pause the run")
        assert kernel.finished(busy) is None, "the busy cell ended before the click acted"
        kernel.manager.interrupt_kernel()
        wait_until(lambda: kernel.finished(busy) is not None, "the busy cell to end")

        # wait() on a paused run refuses to block for ever.
        refused = kernel.run("cockpit.wait()")
        assert refused["ename"] == "RunPausedError", refused
        assert "the run is paused at iter" in refused["evalue"] and "continue it first" in refused["evalue"]

        # An interrupt of wait() saves and stops the run, and run.json says so.
        waiting = kernel.start("cockpit.continue_training(); cockpit.wait()")
        wait_until(lambda: run_record(tmp_path).get("status") == "running", "the run to continue")
        kernel.manager.interrupt_kernel()
        wait_until(lambda: run_record(tmp_path).get("status") == "stopped", "run.json to say stopped")
        wait_until(lambda: kernel.finished(waiting) is not None, "the interrupted cell to end")
        record = run_record(tmp_path)
        assert record["last_checkpoint"] and Path(record["last_checkpoint"]).is_file()
        assert Path(record["last_checkpoint"]).name == f"iter_{record['iter']}.pth"
        assert kernel.value("cockpit.status") == "stopped"
        assert kernel.value("cockpit.view.header.value").count("stopped")
    finally:
        kernel.close()
