"""``demos/cockpit.ipynb`` runs top to bottom in a real kernel (this venv's Python), without a browser."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
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
