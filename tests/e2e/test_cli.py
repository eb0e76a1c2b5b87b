"""The real ``cockpit`` command, run in subprocesses from a scratch folder."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from support import child_env, write_child_config

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "demos" / "digits.py"


def cockpit_command() -> list[str]:
    """The installed console script beside this interpreter, or ``python -m cockpit.cli``."""
    script = Path(sys.executable).parent / "cockpit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cockpit.cli"]


def run_cockpit(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*cockpit_command(), *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)


def run_folder(work_dir: Path) -> Path:
    """The one ``<work_dir>/<timestamp>`` folder a run made."""
    folders = [path for path in work_dir.iterdir() if path.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def scalar_lines(work_dir: Path) -> list[dict]:
    path = run_folder(work_dir) / "vis_data" / "scalars.json"
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_tfrecords(path: Path) -> list[bytes]:
    """The payloads of a TFRecord file, checking each record's framing and checksums.

    A record is: length (8 bytes, little-endian), masked CRC-32C of the length,
    the payload, masked CRC-32C of the payload.
    """
    from tensorboardX.record_writer import masked_crc32c

    data, offset, payloads = path.read_bytes(), 0, []
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        payload = data[offset + 12 : offset + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
        assert header_crc == masked_crc32c(header), f"bad length checksum at byte {offset} of {path}"
        assert payload_crc == masked_crc32c(payload), f"bad payload checksum at byte {offset} of {path}"
        payloads.append(payload)
        offset += 16 + length
    return payloads


def event_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` from a tensorboardX event file, without TensorBoard."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for payload in read_tfrecords(path):
        event = Event.FromString(payload)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


# --- a full run of the digits demo, shared by the tests that read what it wrote -------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    cwd = tmp_path_factory.mktemp("digits")
    work_dir = cwd / "work"
    result = run_cockpit("run", str(DIGITS), "--no-tui", "--work-dir", str(work_dir), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result, work_dir


def test_run_prints_progress_lines(digits_run):
    result, work_dir = digits_run
    # MMEngine's layout: the epoch is padded to the width of the last one.
    assert re.search(r"Epoch\(train\) +\[1\]\[\s*\d+/\d+\]  lr: ", result.stdout)
    assert re.search(r"Epoch\(train\) +\[10\]\[\s*\d+/\d+\]  lr: ", result.stdout)
    assert re.search(r"Epoch\(val\) +\[10\]\[\d+/\d+\] +accuracy/top1: ", result.stdout)
    assert f"cockpit: finished; checkpoints in {work_dir}" in result.stdout


def test_run_reaches_accuracy_in_scalars_json(digits_run):
    _, work_dir = digits_run
    lines = scalar_lines(work_dir)  # MMEngine's layout: training lines carry epoch and iter, validation lines not
    accuracies = [line["accuracy/top1"] for line in lines if "accuracy/top1" in line]
    assert len(accuracies) == 10
    assert accuracies[-1] > 0.9
    assert max(line["epoch"] for line in lines if "epoch" in line) == 10


def test_run_writes_tensorboard_events(digits_run):
    _, work_dir = digits_run
    event_files = list((run_folder(work_dir) / "vis_data").glob("events.out.tfevents.*"))
    assert len(event_files) == 1
    scalars = event_scalars(event_files[0])
    assert "train/loss" in scalars
    assert "val/accuracy/top1" in scalars
    json_losses = [(line["step"], line["loss"]) for line in scalar_lines(work_dir) if "loss" in line]
    assert [step for step, _ in scalars["train/loss"]] == [step for step, _ in json_losses]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([v for _, v in json_losses], rel=1e-6)


def test_run_writes_checkpoints_config_and_log(digits_run):
    _, work_dir = digits_run
    assert (work_dir / "epoch_10.pth").is_file()
    assert Path((work_dir / "last_checkpoint").read_text().strip()) == work_dir / "epoch_10.pth"
    folder = run_folder(work_dir)
    assert (folder / "digits.py").is_file()
    assert "DigitsNet" in (folder / "digits.py").read_text()
    log = folder / f"{folder.name}.log"
    assert log.is_file()
    assert "Epoch(val) [10]" in log.read_text()


# --- the other commands and the exit codes ---------------------------------------------------
def test_hooks_prints_the_order_and_trains_nothing(tmp_path):
    result = run_cockpit("hooks", str(DIGITS), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "before_train_iter:" in result.stdout
    assert "(VERY_HIGH   ) RuntimeInfoHook" in result.stdout
    assert "(VERY_LOW    ) CheckpointHook" in result.stdout
    assert "Epoch(train)" not in result.stdout
    assert not list(tmp_path.rglob("*.pth"))
    assert not list(tmp_path.rglob("scalars.json"))


def test_unknown_type_exits_2_naming_the_key(tmp_path):
    config = write_child_config(tmp_path, name="unknown_type.py", body_extra='model = dict(type="NoSuchNet")\n')
    result = run_cockpit("run", str(config), "--no-tui", "--work-dir", str(tmp_path / "work"), cwd=tmp_path)

    assert result.returncode == 2
    assert "model.type" in result.stderr
    assert "NoSuchNet" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_in_forward_exits_1_with_the_traceback(tmp_path):
    config = write_child_config(tmp_path, name="exploding.py", body_extra="""
        import torch
        from cockpit import BaseModel

        class Exploding(BaseModel):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(64, 10)

            def forward(self, inputs, data_samples=None, mode="tensor"):
                raise RuntimeError("forward exploded on purpose")

        model = dict(type=Exploding)
        """)
    result = run_cockpit("run", str(config), "--no-tui", "--work-dir", str(tmp_path / "work"), cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: forward exploded on purpose" in result.stderr
    assert "exploding.py" in result.stderr


def test_no_arguments_exits_2(tmp_path):
    result = run_cockpit(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: cockpit" in result.stderr


def test_run_help_exits_0(tmp_path):
    result = run_cockpit("run", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--cfg-options" in result.stdout
    assert "--work-dir" in result.stdout


def test_cfg_options_change_the_number_of_epochs(tmp_path):
    work_dir = tmp_path / "work"
    result = run_cockpit("run", str(DIGITS), "--no-tui", "--work-dir", str(work_dir),
                         "--cfg-options", "train_cfg.max_epochs=2", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = scalar_lines(work_dir)
    assert max(line["epoch"] for line in lines if "epoch" in line) == 2
    assert [line["step"] for line in lines if "accuracy/top1" in line] == [1, 2]  # a validation line's step: its epoch
    assert re.search(r"Epoch\(train\) +\[2\]\[", result.stdout)
    assert not re.search(r"Epoch\(train\) +\[3\]\[", result.stdout)
    assert (work_dir / "epoch_2.pth").is_file()
    assert not (work_dir / "epoch_3.pth").exists()


def test_import_loads_no_ui_package():
    code = ("import json, sys, cockpit; "
            "print(json.dumps(sorted({name.partition('.')[0] for name in sys.modules} "
            "& {'textual', 'ipywidgets', 'plotly'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
