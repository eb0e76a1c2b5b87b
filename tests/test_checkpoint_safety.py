"""Nothing is lost: unsafe and broken files are refused clearly, crashes and signals leave a good checkpoint."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import child_env, tiny_cfg, wait_for, write_child_config

from cockpit import CheckpointError, Runner
from cockpit.checkpoint import FAULT_POINTS, load_checkpoint, read_pointer


def write_config(folder: Path, max_epochs: int = 4, max_keep: int = 1, slow: bool = False) -> Path:
    """A child run's config: dropout and momentum (resuming must restore the RNG and the optimizer), a
    checkpoint each epoch, ~0.01 s an iteration when ``slow`` (so a signal lands mid-run)."""
    return write_child_config(folder, max_epochs=max_epochs, seconds=0.01 if slow else 0.0, dropout=0.2,
                              momentum=0.9, max_keep_ckpts=max_keep, seed=5, deterministic=True)


def cockpit(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cockpit.cli", *args], env=child_env(**(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def complete_checkpoints(work_dir: Path) -> list[Path]:
    """Every checkpoint file under a real name; each must load."""
    files = sorted(p for p in work_dir.glob("*.pth") if not p.name.startswith(".tmp-"))
    for path in files:
        load_checkpoint(path)
    return files


# --- loading safely ---------------------------------------------------------------------
class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"meta": {}, "state_dict": {}, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert not marker.exists(), "the pickle's code ran"
    message = str(error.value)
    assert str(path) in message and "trusted=True" in message and "--trust-checkpoint" in message


def test_trusted_loading_is_an_explicit_opt_in(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"when": pickle.PickleError("an arbitrary object")}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert isinstance(load_checkpoint(path, trusted=True)["when"], pickle.PickleError)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_broken_files_get_a_clear_error_naming_them(tmp_path, make_runner, damage):
    runner = make_runner(default_hooks=dict(logger=None))
    runner.train()
    path = tmp_path / "work" / "epoch_2.pth"
    data = path.read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": os.urandom(2048), "empty": b""}[damage]
    path.write_bytes(broken)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_a_foreign_file_cannot_be_resumed_from_but_its_weights_can_be_loaded(tmp_path, make_runner):
    weights = tmp_path / "weights.pth"
    donor = make_runner(default_hooks=dict(logger=None, checkpoint=None))
    torch.save(donor.model.state_dict(), weights)
    with pytest.raises(CheckpointError, match="not a Cockpit training checkpoint"):
        make_runner(resume=str(weights)).train()
    runner = make_runner(load_from=str(weights), default_hooks=dict(logger=None, checkpoint=None))
    runner.train()  # load_from accepts a plain state_dict


def test_cli_refuses_a_missing_resume_file_with_exit_2(tmp_path):
    config = write_config(tmp_path)
    code, _, err = finish(cockpit("run", str(config), "--work-dir", str(tmp_path / "w"), "--resume",
                                  str(tmp_path / "nope.pth"), cwd=tmp_path))
    assert code == 2
    assert "nope.pth does not exist" in err


# --- crashes ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_weights(tmp_path_factory):
    """The final weights of an uninterrupted 4-epoch child run."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder, max_keep=-1)
    code, _, err = finish(cockpit("run", str(config), "--work-dir", str(folder / "w"), cwd=folder))
    assert code == 0, err
    return load_checkpoint(folder / "w" / "epoch_4.pth")["state_dict"]


@pytest.mark.parametrize(("point", "max_keep"), [*((p, 1) for p in FAULT_POINTS), ("before_pointer", -1)])
def test_kill_9_during_a_save_always_leaves_a_resumable_run(tmp_path, reference_weights, point, max_keep):
    config = write_config(tmp_path, max_keep=max_keep)
    work = tmp_path / "w"
    # Crash inside the second save (the first one has something to rotate away afterwards).
    crashed = cockpit("run", str(config), "--work-dir", str(work), cwd=tmp_path,
                      env={"COCKPIT_FAULT": point, "COCKPIT_FAULT_SKIP": "1"})
    code, _, err = finish(crashed)
    assert code == -signal.SIGKILL, f"the fault point {point} was not reached: {err[-2000:]}"

    files = complete_checkpoints(work)  # every file under a real name is complete
    assert files, "no complete checkpoint survived"
    pointer = read_pointer(work)
    assert pointer is not None and pointer.is_file(), "last_checkpoint does not name an existing file"
    load_checkpoint(pointer)

    code, out, err = finish(cockpit("run", str(config), "--work-dir", str(work), "--resume", cwd=tmp_path))
    assert code == 0, err
    assert not list(work.glob(".tmp-*")), "temporary files of the crashed save were not cleaned up"
    final = load_checkpoint(work / "epoch_4.pth")["state_dict"]
    for name, tensor in reference_weights.items():
        assert final[name].equal(tensor), f"resumed run diverged from the uninterrupted one at {name}"


# --- signals ------------------------------------------------------------------------------
def _wait_for_progress(work: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    def progressed() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        return bool(list(work.glob("*/vis_data/scalars.json")) and list(work.glob("epoch_1.pth")))

    wait_for(progressed, timeout, "the run to make progress")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_one_complete_checkpoint_and_exits_0(tmp_path, signum):
    config = write_config(tmp_path, max_epochs=200, max_keep=1, slow=True)
    work = tmp_path / "w"
    process = cockpit("run", str(config), "--work-dir", str(work), "--no-tui", cwd=tmp_path)
    _wait_for_progress(work, process)
    process.send_signal(signum)
    code, out, err = finish(process)
    assert code == 0, err
    assert "stopped (received" in out and "--resume" in out
    pointer = read_pointer(work)
    assert pointer.name.startswith("iter_"), f"no checkpoint of the interrupted position: {pointer}"
    saved = load_checkpoint(pointer)
    assert saved["meta"]["iter"] > 0
    # The run's own hooks finished: the log says training stopped, and the JSON writer was closed cleanly.
    log = next(work.glob("*/*.log")).read_text()
    assert "stopping: received" in log

    code, out, err = finish(cockpit("run", str(config), "--work-dir", str(work), "--resume",
                                    "--cfg-options", f"train_cfg.max_epochs={saved['meta']['epoch'] + 1}",
                                    cwd=tmp_path))
    assert code == 0, err
    assert f"iter {saved['meta']['iter']}" in out or "resumed from" in out


def test_sigusr1_saves_and_training_carries_on(tmp_path):
    config = write_config(tmp_path, max_epochs=30, max_keep=1, slow=True)
    work = tmp_path / "w"
    process = cockpit("run", str(config), "--work-dir", str(work), cwd=tmp_path)
    _wait_for_progress(work, process)
    process.send_signal(signal.SIGUSR1)
    code, out, err = finish(process)
    assert code == 0, err
    saved_on_request = list(work.glob("iter_*.pth"))
    assert len(saved_on_request) == 1, "SIGUSR1 did not save exactly one checkpoint"
    assert (work / "epoch_30.pth").is_file(), "training did not carry on to the end"


# --- non-finite losses and a full disk -------------------------------------------------------
def _nan_hook(at: int):
    """A hook that poisons the input batch at iteration ``at``, so the loss is NaN."""
    from cockpit import Hook

    class PoisonBatch(Hook):
        priority = "HIGHEST"

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter + 1 == at:
                data_batch[0][:] = float("nan")

    return PoisonBatch()


def test_a_nan_loss_stops_the_run_before_it_reaches_the_weights(make_runner, tmp_path):
    # Without the health guard (which pauses such a run instead, see tests/hooks/test_health_guard.py).
    runner = make_runner(custom_hooks=[_nan_hook(12)], default_hooks=dict(logger=None), health_guard=False)
    with pytest.raises(FloatingPointError, match="on_nonfinite='skip'"):
        runner.train()
    assert runner.message_hub.status == "failed"
    last = read_pointer(tmp_path / "work")
    assert last.name == "epoch_1.pth", "the last good checkpoint was not left in place"
    weights = load_checkpoint(last)["state_dict"]
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert all(torch.isfinite(p).all() for p in runner.model.parameters()), "NaN reached the weights"


def test_on_nonfinite_skip_drops_the_step_and_trains_on(make_runner):
    runner = make_runner(custom_hooks=[_nan_hook(12)], default_hooks=dict(logger=None),
                         optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), on_nonfinite="skip"))
    runner.train()
    assert runner.message_hub.status == "finished"
    assert runner.message_hub.get_info("skipped_steps") == 1
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_out_of_disk_while_saving_is_a_clear_error_and_deletes_nothing_good(small_disk, make_runner):
    # Each checkpoint of this model is ~10 kB with its optimizer; the disk fits a handful.
    cfg = tiny_cfg(small_disk / "work", train_cfg=dict(by_epoch=True, max_epochs=40),
                   default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3)),
                   model=dict(type="toys.ToyNet", hidden=64))
    cfg.pop("val_dataloader"), cfg.pop("val_evaluator"), cfg.pop("val_cfg")
    runner = Runner.from_cfg(cfg, log_to_console=False)
    with pytest.raises(CheckpointError, match="free some disk space") as error:
        runner.train()
    assert "No space left" in str(error.value)
    work = small_disk / "work"
    files = complete_checkpoints(work)
    assert files, "the good checkpoints were deleted"
    pointer = read_pointer(work)
    assert pointer in files
    assert not list(work.glob(".tmp-*")), "the half-written temporary file was left behind"
