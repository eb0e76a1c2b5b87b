"""Checkpoints MMEngine 0.10.7 wrote load through ``load_from`` and ``resume``, without MMEngine and without trust.

The files in tests/data/mmengine/ were made by tests/data/make_mmengine_checkpoints.py (which
needs MMEngine; the suite does not run it): a ToyNet-shaped MLP trained by MMEngine's own
``Runner``, with the learning rate it used at each iteration. A Cockpit run of the same config
that resumes from one of them must continue exactly as MMEngine did. What cannot be mapped is
refused with an error that says what to do; a malicious file is refused as before.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support import TESTS_DIR, ToyData, ToyNet, child_env

from cockpit import CheckpointError, Hook, Runner
from cockpit.checkpoint import load_checkpoint, save_checkpoint
from cockpit.mmengine_unpickle import HISTORY_BUFFER

DATA = TESTS_DIR / "data" / "mmengine"


class RecordLr(Hook):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.lrs.append(runner.optim_wrapper.optimizer.param_groups[0]["lr"])


def mm_cfg(kind: str, work: Path, **overrides: Any) -> dict[str, Any]:
    """The config make_mmengine_checkpoints.py trained with, as a Cockpit config."""
    loader = dict(dataset=dict(type=ToyData, size=16), sampler=dict(type="DefaultSampler", shuffle=True), batch_size=8)
    if kind == "epoch":
        keys: dict[str, Any] = dict(
            train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
            param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=3),
                             dict(type="MultiStepLR", milestones=[2], gamma=0.5, by_epoch=True)],
            val_dataloader=dict(dataset=dict(type=ToyData, size=16), sampler=dict(type="DefaultSampler", shuffle=False),
                                batch_size=8),
            val_evaluator=dict(type="Accuracy"), val_cfg=dict(),
            default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)))
    else:
        keys = dict(train_cfg=dict(by_epoch=False, max_iters=6),
                    param_scheduler=[dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=6, eta_min=0.01)],
                    default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=3, by_epoch=False)))
    keys.update(overrides)
    return dict(model=dict(type=ToyNet), work_dir=str(work), train_dataloader=loader,
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)), randomness=dict(seed=0), **keys)


def run(cfg: dict[str, Any], *hooks: Hook) -> Runner:
    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


# --- reading ---------------------------------------------------------------------------------------
def test_an_mmengine_checkpoint_reads_as_plain_data_without_mmengine():
    # In a fresh process where importing MMEngine fails, whether it is installed or not.
    code = ("import sys; sys.modules['mmengine'] = None\n"
            "from cockpit.checkpoint import load_checkpoint\n"
            f"checkpoint = load_checkpoint({str(DATA / 'epoch_2.pth')!r})\n"
            "print(checkpoint['message_hub']['log_scalars']['train/loss']['log_history'])")
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    checkpoint = load_checkpoint(DATA / "epoch_2.pth")  # not trusted
    assert result.stdout.strip() == str(checkpoint["message_hub"]["log_scalars"]["train/loss"]["log_history"])
    hub = checkpoint["message_hub"]
    assert sorted(hub) == ["log_scalars", "resumed_keys", "runtime_info"]
    loss = hub["log_scalars"]["train/loss"]
    assert loss[HISTORY_BUFFER] and len(loss["log_history"]) == 4 and loss["count_history"] == [1.0] * 4
    assert all(type(v) is float for v in loss["log_history"])
    assert type(hub["runtime_info"]["eta"]) is float  # a numpy.float64 in the file
    assert checkpoint["meta"]["epoch"] == 2 and checkpoint["meta"]["mmengine_version"].startswith("0.10.7")
    trusted = load_checkpoint(DATA / "epoch_2.pth", trusted=True)  # needs MMEngine's classes: the same plain data
    assert trusted["message_hub"]["log_scalars"]["train/loss"] == loss


def test_load_from_an_mmengine_checkpoint_loads_its_weights(tmp_path):
    reference = load_checkpoint(DATA / "epoch_3.pth")["state_dict"]
    runner = Runner.from_cfg(mm_cfg("epoch", tmp_path / "w", load_from=str(DATA / "epoch_3.pth")),
                             log_to_console=False)
    runner.load_or_resume()
    assert close(runner.model.state_dict(), reference)
    assert runner.iter == 0 and runner.resumed_from is None


@pytest.mark.parametrize(("kind", "source", "reference", "done"), [
    ("epoch", "epoch_1.pth", "epoch_3.pth", 2),
    ("epoch", "epoch_2.pth", "epoch_3.pth", 4),
    ("iter", "iter_3.pth", "iter_6.pth", 3),
])
def test_resume_from_an_mmengine_checkpoint_continues_as_mmengine_did(tmp_path, kind, source, reference, done):
    record = RecordLr()
    runner = run(mm_cfg(kind, tmp_path / "w", resume=str(DATA / source)), record)
    # The learning rate at each iteration after the checkpoint, and the final weights, are MMEngine's.
    assert record.lrs == json.loads((DATA / f"lr_{kind}.json").read_text())[done:]
    assert close(runner.model.state_dict(), load_checkpoint(DATA / reference)["state_dict"])
    # MMEngine's history continues in the hub: one loss per iteration, the first from the file.
    steps, values, _, _ = runner.message_hub.get_scalar("train/loss").series()
    assert steps == list(range(6))
    assert values[:done] == load_checkpoint(DATA / source)["message_hub"]["log_scalars"]["train/loss"]["log_history"]


def test_cockpit_run_resumes_an_mmengine_checkpoint_without_trust(tmp_path):
    config = tmp_path / "mm_cfg.py"
    config.write_text(textwrap.dedent("""\
        from toys import ToyData, ToyNet

        model = dict(type=ToyNet)
        train_dataloader = dict(dataset=dict(type=ToyData, size=16), sampler=dict(type='DefaultSampler', shuffle=True),
                                batch_size=8)
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
        param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
                           dict(type='MultiStepLR', milestones=[2], gamma=0.5, by_epoch=True)]
        train_cfg = dict(by_epoch=True, max_epochs=3)
        default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
        randomness = dict(seed=0)
        """))
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", str(config), "--work-dir", str(tmp_path / "w"),
                             "--resume", str(DATA / "epoch_1.pth")], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    final = load_checkpoint(tmp_path / "w" / "epoch_3.pth")
    assert close(final["state_dict"], load_checkpoint(DATA / "epoch_3.pth")["state_dict"])
    assert final["meta"]["epoch"] == 3 and final["meta"]["iter"] == 6


# --- refusals ------------------------------------------------------------------------------------------
def resave(source: Path, target: Path, change: Any) -> Path:
    """``source`` read as plain data, changed, and saved again with plain ``torch.save`` (no checksum)."""
    checkpoint = load_checkpoint(source)
    change(checkpoint)
    torch.save(checkpoint, target)
    return target


def test_several_optimizers_are_refused_with_what_to_do(tmp_path):
    bad = resave(DATA / "epoch_1.pth", tmp_path / "two.pth",
                 lambda c: c.update(optimizer={"generator": c["optimizer"], "discriminator": c["optimizer"]}))
    runner = Runner.from_cfg(mm_cfg("epoch", tmp_path / "w", resume=str(bad)), log_to_console=False)
    with pytest.raises(CheckpointError, match="several optimizers .*use load_from"):
        runner.train()


def test_a_different_schedule_is_refused_with_what_to_do(tmp_path):
    cfg = mm_cfg("epoch", tmp_path / "w", resume=str(DATA / "epoch_1.pth"))
    cfg["param_scheduler"][1]["gamma"] = 0.1
    with pytest.raises(CheckpointError) as error:
        run(cfg)
    message = str(error.value)
    assert "parameter scheduler 1 (MultiStepLR) differs from the config's (gamma: 0.5 in the file, 0.1 in the config)" \
        in message and "load_from" in message


def test_a_different_number_of_schedulers_is_refused(tmp_path):
    cfg = mm_cfg("epoch", tmp_path / "w", resume=str(DATA / "epoch_1.pth"))
    cfg["param_scheduler"] = cfg["param_scheduler"][:1]
    with pytest.raises(CheckpointError, match="has 2 parameter schedulers but the config builds 1"):
        run(cfg)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pretend_mmengine(history_buffer: type) -> dict[str, types.ModuleType]:
    """Modules that make ``history_buffer`` pickle as ``mmengine.logging.history_buffer.HistoryBuffer``."""
    module = types.ModuleType("mmengine.logging.history_buffer")
    history_buffer.__module__, history_buffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = history_buffer
    return {"mmengine": types.ModuleType("mmengine"), "mmengine.logging": types.ModuleType("mmengine.logging"),
            module.__name__: module}


@pytest.mark.parametrize("payload", ["os.system", "getattr"])
def test_a_malicious_file_dressed_as_mmengine_is_refused_without_running_it(tmp_path, monkeypatch, payload):
    marker = tmp_path / "pwned"

    class HistoryBuffer:
        def __reduce__(self):
            if payload == "getattr":  # MMEngine's statistics table uses getattr(HistoryBuffer, 'mean'): nothing else
                return (getattr, (type(self), "__init__"))
            return (HistoryBuffer, (), {"_log_history": np.zeros(2), "exploit": _Exploit(marker)})

    for name, module in _pretend_mmengine(HistoryBuffer).items():
        monkeypatch.setitem(sys.modules, name, module)
    checkpoint = load_checkpoint(DATA / "epoch_1.pth")
    checkpoint["message_hub"]["log_scalars"] = {"train/loss": HistoryBuffer()}
    path = tmp_path / "evil.pth"
    torch.save(checkpoint, path)
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(CheckpointError, match="refused to load") as error:
        load_checkpoint(path)
    assert not marker.exists(), "the pickle's code ran"
    assert str(path) in str(error.value) and "--trust-checkpoint" in str(error.value)


def test_numpy_arrays_of_numbers_are_read_and_of_objects_refused(tmp_path):
    checkpoint = load_checkpoint(DATA / "epoch_1.pth")
    checkpoint["meta"]["dataset_meta"] = {"palette": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8),
                                          "scale": np.float32(0.5), "fortran": np.asfortranarray(np.eye(2))}
    torch.save(checkpoint, tmp_path / "numbers.pth")
    meta = load_checkpoint(tmp_path / "numbers.pth")["meta"]["dataset_meta"]
    assert meta == {"palette": [[1, 2, 3], [4, 5, 6]], "scale": 0.5, "fortran": [[1.0, 0.0], [0.0, 1.0]]}
    checkpoint["meta"]["dataset_meta"] = {"classes": np.array(["cat", "dog"], dtype=object)}
    torch.save(checkpoint, tmp_path / "objects.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(tmp_path / "objects.pth")


# --- Cockpit's own checkpoints: MMEngine's hub layout, plain data ------------------------------------------
def test_cockpit_files_get_no_stand_ins(tmp_path):
    """A NumPy array in a Cockpit checkpoint (a hook's state) still needs trust, and then stays an array."""
    run(mm_cfg("epoch", tmp_path / "w", train_cfg=dict(by_epoch=True, max_epochs=1)))
    checkpoint = load_checkpoint(tmp_path / "w" / "epoch_1.pth")
    checkpoint["hooks"]["Ema"] = {"weights": np.arange(3.0)}
    save_checkpoint(checkpoint, tmp_path / "arrays.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(tmp_path / "arrays.pth")
    loaded = load_checkpoint(tmp_path / "arrays.pth", trusted=True)  # and its checksum holds
    assert isinstance(loaded["hooks"]["Ema"]["weights"], np.ndarray)


def test_a_cockpit_checkpoint_has_mmengines_hub_layout_in_plain_data(tmp_path):
    run(mm_cfg("epoch", tmp_path / "w"))
    path = tmp_path / "w" / "epoch_3.pth"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # torch's own types only
    hub = torch.load(path, weights_only=True)["message_hub"]
    assert {"log_scalars", "runtime_info", "resumed_keys"} <= set(hub)
    assert hub["runtime_info"]["epoch"] == 2 and "train/loss" in hub["log_scalars"]
    assert all(hub["resumed_keys"][key] is True for key in [*hub["log_scalars"], *hub["runtime_info"]])


def test_a_checkpoint_in_cockpits_previous_hub_layout_still_resumes(tmp_path):
    run(mm_cfg("epoch", tmp_path / "w", train_cfg=dict(by_epoch=True, max_epochs=1)))
    checkpoint = load_checkpoint(tmp_path / "w" / "epoch_1.pth")
    hub = checkpoint["message_hub"]
    checkpoint["message_hub"] = OrderedDict(name=hub["name"], scalars=hub["log_scalars"], info=hub["runtime_info"],
                                            checkpoints=hub["checkpoints"], markers=hub["markers"])
    del checkpoint["meta"]["checksum"]  # those files had none
    torch.save(checkpoint, tmp_path / "previous.pth")
    runner = run(mm_cfg("epoch", tmp_path / "again", resume=str(tmp_path / "previous.pth")))
    assert runner.message_hub.get_scalar("train/loss").series()[0] == list(range(6))
