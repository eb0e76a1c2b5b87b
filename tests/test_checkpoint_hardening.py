"""Checkpoints under attack and faults (issue 12, items 9-12 and 14), against real files and runs.

- a resume that fails changes nothing, in a live run too (all or nothing);
- ``last_checkpoint`` is followed only into the run's own folders, never searched from;
- rotation after resumes keeps ``max_keep_ckpts`` files, not one more per resume;
- a flipped bit is caught by the checksum and auto-resume falls back past it;
- a full or read-only disk ends in a CheckpointError that names the folder and the last good file.
"""

from __future__ import annotations

import copy
import io
import math
import os
import random
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support import ToyNet, child_env, tiny_cfg, wait_for, write_child_config

from cockpit import CheckpointError, Hook, Runner
from cockpit import checksum as checksums
from cockpit.channel import RunClient
from cockpit.checkpoint import load_checkpoint, read_pointer, save_checkpoint

EPOCH = 8  # iterations per epoch of tiny_cfg and of write_child_config's defaults


def cockpit(*args: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run the real CLI to its end (a timeout fails the test instead of hanging it)."""
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], cwd=cwd, env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def quiet_cfg(work: Path, **overrides: Any) -> dict[str, Any]:
    """tiny_cfg with momentum (an optimizer state), a scheduler, dropout (an RNG state) and no logger."""
    keys: dict[str, Any] = dict(model=dict(type=ToyNet, dropout=0.2),
                                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
                                param_scheduler=dict(type="StepLR", step_size=1, gamma=0.5, by_epoch=True),
                                default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)))
    keys.update(overrides)
    return tiny_cfg(work, **keys)


def train(cfg: dict[str, Any]) -> Runner:
    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    runner.train()
    return runner


def weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- 9: a resume is all or nothing ----------------------------------------------------------------
class Counter(Hook):
    """A hook with state: it counts iterations and refuses a negative count."""

    def __init__(self) -> None:
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["count"] < 0:
            raise ValueError("a negative count")
        self.count = state["count"]


def _no_epoch(c: dict) -> str:
    del c["meta"]["epoch"]
    return "meta.epoch"


def _iter_text(c: dict) -> str:
    c["meta"]["iter"] = "12"
    return "meta.iter"


def _optimizer_groups(c: dict) -> str:
    c["optimizer"]["param_groups"][0]["params"].pop()
    return "parameter group 0"


def _optimizer_shapes(c: dict) -> str:
    state = c["optimizer"]["state"]
    first = next(iter(state))
    state[first]["momentum_buffer"] = torch.zeros(2, 2)
    return "momentum_buffer"


def _schedulers(c: dict) -> str:
    c["param_schedulers"].append(c["param_schedulers"][0])
    return "2 parameter schedulers"


def _hub(c: dict) -> str:
    hub = c["message_hub"]
    hub.get("log_scalars", hub.get("scalars"))["train/loss"]["recent"] = "not a list"
    return "message_hub"


def _rng(c: dict) -> str:
    c["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    return "random states"


def _hook(c: dict) -> str:
    c["hooks"]["Counter"] = {"count": -1}
    return "hook Counter"


DAMAGES = [_no_epoch, _iter_text, _optimizer_groups, _optimizer_shapes, _schedulers, _hub, _rng, _hook]


def run_state(runner: Runner) -> dict[str, Any]:
    """What a resume may change, copied."""
    hub = runner.message_hub
    return {
        "weights": weights(runner.model.state_dict()),
        "optimizer": copy.deepcopy(runner.optim_wrapper.state_dict()),
        "schedulers": copy.deepcopy([s.state_dict() for s in runner.param_schedulers]),
        "hub": copy.deepcopy(hub.state_dict()),
        "position": runner.position(),
        "records": runner.checkpointer.state_dict(),
        "counter": next(h for h in runner.hooks if isinstance(h, Counter)).count,
        "rng": (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()),
    }


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert same(before["weights"], after["weights"]), "the weights changed"
    for key in ("optimizer", "schedulers", "hub"):
        assert checksums.digest({"x": before[key]}) == checksums.digest({"x": after[key]}), f"the {key} changed"
    for key in ("position", "records", "counter"):
        assert before[key] == after[key], f"the {key} changed"
    assert torch.equal(before["rng"][0], after["rng"][0]) and before["rng"][1] == after["rng"][1]
    assert np.array_equal(before["rng"][2], after["rng"][2]), "the random state changed"


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__.strip("_"))
def test_a_refused_resume_changes_nothing(tmp_path, damage):
    cfg = quiet_cfg(tmp_path / "work", custom_hooks=[Counter()])
    source = train(cfg)
    checkpoint = load_checkpoint(tmp_path / "work" / "epoch_1.pth")
    checkpoint["state_dict"] = {k: v + 1 for k, v in checkpoint["state_dict"].items()}  # would be visible
    what = damage(checkpoint)
    bad = tmp_path / "bad.pth"
    save_checkpoint(checkpoint, bad)

    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    runner.train()  # a run with a state of its own, at its end
    before = run_state(runner)
    with pytest.raises(CheckpointError) as error:
        runner.resume(bad)
    assert str(bad) in str(error.value) and what in str(error.value), str(error.value)
    assert_same_state(before, run_state(runner))
    del source


def test_the_same_files_undamaged_resume(tmp_path):
    """The control case of the test above: the undamaged file resumes, and changes what it should."""
    cfg = quiet_cfg(tmp_path / "work", custom_hooks=[Counter()])
    train(cfg)
    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    runner.train()
    runner.resume(tmp_path / "work" / "epoch_1.pth")
    assert runner.position() == {"epoch": 1, "iter": EPOCH, "batch_in_epoch": 0}
    assert next(h for h in runner.hooks if isinstance(h, Counter)).count == EPOCH


COUNTER_HOOK = """
from cockpit import Hook


class Counter(Hook):
    def __init__(self):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        if state["count"] < 0:
            raise ValueError("a negative count")
        self.count = state["count"]


custom_hooks.append(dict(type=Counter))
"""


class LiveRun:
    """A ``cockpit run`` child process that trains slowly until stopped, and a client attached to it."""

    def __init__(self, folder: Path) -> None:
        config = write_child_config(folder, max_epochs=500, seconds=0.02, momentum=0.9, dropout=0.2,
                                    val_interval=None, body_extra=COUNTER_HOOK)
        self.work = folder / "w"
        self.output = open(folder / "output.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui",
                                         "--work-dir", str(self.work)], cwd=folder, env=child_env(),
                                        stdout=self.output, stderr=subprocess.STDOUT)
        self.log = folder / "output.log"

        def serving() -> Path | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended early: {self.log.read_text()[-3000:]}")
            found = list(self.work.glob("*/cockpit.json"))
            return found[0].parent if found else None

        self.client = RunClient.connect(wait_for(serving, 120, "the run to serve"), timeout=10)

    def command(self, *words: str) -> dict[str, Any]:
        answer = self.client.command(*words)
        assert answer["done"], answer
        return answer

    def stop(self) -> None:
        try:
            self.client.close()
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(60)
            self.output.close()


def test_a_live_resume_that_fails_leaves_the_running_model_untouched(tmp_path):
    live = LiveRun(tmp_path)
    try:
        wait_for(lambda: int(live.client.snapshot(max_points=1)["info"].get("iter", 0)) > 3, 60, "a few iterations")
        assert live.command("pause")["outcome"] == "applied"
        first = Path(live.command("save")["message"].removeprefix("saved "))
        saved = load_checkpoint(first)
        bad_files = []
        for damage in (_no_epoch, _optimizer_groups, _hook):
            checkpoint = copy.deepcopy(saved)
            checkpoint["state_dict"] = {k: v + 1 for k, v in checkpoint["state_dict"].items()}
            damage(checkpoint)
            bad_files.append(save_checkpoint(checkpoint, tmp_path / f"{damage.__name__.strip('_')}.pth"))
        for bad in bad_files:
            answer = live.command("resume", str(bad))
            assert answer["outcome"] == "rejected", answer
            assert str(bad) in answer["message"]
        again = load_checkpoint(Path(live.command("save")["message"].removeprefix("saved ")))
        assert again["meta"]["iter"] == saved["meta"]["iter"]
        assert same(again["state_dict"], saved["state_dict"]), "a refused resume changed the live model"
        assert checksums.digest({"x": again["optimizer"]}) == checksums.digest({"x": saved["optimizer"]})
        assert again["hooks"] == saved["hooks"]
        hub_before, hub_after = saved["message_hub"], again["message_hub"]
        for key in ("log_scalars", "markers", "resumed_keys"):  # checkpoints: the second save adds itself
            assert checksums.digest({"x": hub_after[key]}) == checksums.digest({"x": hub_before[key]}), \
                f"a refused resume changed the hub's {key}"
    finally:
        live.stop()


# --- 10: the pointer goes nowhere but the run's own folders ------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A child config, the work dir of its one-epoch run, and a checkpoint of another run (other weights)."""
    folder = tmp_path_factory.mktemp("finished")
    config = write_child_config(folder, max_epochs=1, val_interval=None)
    result = cockpit("run", str(config), "--work-dir", str(folder / "w"), cwd=folder)
    assert result.returncode == 0, result.stderr
    other = folder / "other.pth"
    train(quiet_cfg(folder / "other", train_cfg=dict(by_epoch=True, max_epochs=1)))
    (folder / "other" / "epoch_1.pth").rename(other)
    return config, folder / "w", other


@pytest.mark.parametrize("pointer", ["outside", "work_dir", "root", "garbage"])
def test_auto_resume_never_follows_the_pointer_out_of_the_run(tmp_path, finished_run, pointer):
    config, template, other = finished_run
    work = tmp_path / "w"
    shutil.copytree(template, work)
    # Planted: checkpoints of another run where the old recursive search reached them (another
    # user's folder in /tmp, another run's folder inside this work dir).
    planted = [tmp_path / "shared" / "deep" / "epoch_9.pth", work / "other_run" / "epoch_9.pth"]
    for path in planted:
        path.parent.mkdir(parents=True)
        shutil.copy(other, path)
    text = {"outside": str(tmp_path / "shared" / "x"), "work_dir": str(work), "root": "/x"}.get(pointer)
    (work / "last_checkpoint").write_bytes(os.urandom(64) + b"\xff\xfe" if text is None else text.encode())

    result = cockpit("run", str(config), "--work-dir", str(work), "--resume", "--cfg-options",
                     "train_cfg.max_epochs=2", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(work / "last_checkpoint") in result.stderr
    assert "Traceback" not in result.stderr
    assert all(path.is_file() for path in planted)
    assert not (work / "epoch_2.pth").exists(), "the run went on from a checkpoint it should not have followed"


def test_fallback_candidates_are_only_the_run_folders_own_files(tmp_path, finished_run):
    work = tmp_path / "work"
    train(quiet_cfg(work, train_cfg=dict(by_epoch=True, max_epochs=2)))
    (work / "epoch_2.pth").write_bytes(b"damaged")
    newer = work / "sub" / "epoch_7.pth"  # newer, but in a subfolder
    newer.parent.mkdir()
    shutil.copy(finished_run[2], newer)
    runner = train(quiet_cfg(work, train_cfg=dict(by_epoch=True, max_epochs=3), resume=True))
    assert Path(runner.resumed_from) == work / "epoch_1.pth"
    assert newer.is_file()


def test_read_pointer_reads_a_relative_path_from_the_work_dir(tmp_path):
    (tmp_path / "last_checkpoint").write_text("epoch_3.pth\n")
    assert read_pointer(tmp_path) == tmp_path / "epoch_3.pth"
    (tmp_path / "last_checkpoint").write_text("")
    assert read_pointer(tmp_path) is None
    (tmp_path / "last_checkpoint").write_text("a\nb")
    with pytest.raises(CheckpointError, match="does not hold a checkpoint path"):
        read_pointer(tmp_path)


# --- 11: rotation after resumes ----------------------------------------------------------------
def test_resume_cycles_keep_max_keep_ckpts_files(tmp_path):
    config = write_child_config(tmp_path, max_epochs=1, max_keep_ckpts=1, val_interval=None)
    work = tmp_path / "w"
    for epochs in range(1, 5):  # each run resumes the previous one and trains one epoch more
        resume = ["--resume"] if epochs > 1 else []
        result = cockpit("run", str(config), "--work-dir", str(work), *resume, "--cfg-options",
                         f"train_cfg.max_epochs={epochs}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in work.glob("*.pth")) == ["epoch_4.pth"]


# --- 12: a checksum catches silent corruption -----------------------------------------------------
def flip_a_bit_in(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of ``tensor``'s bytes inside the checkpoint file."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().numpy().tobytes()
    offset = data.find(raw)
    assert offset >= 0 and data.find(raw, offset + 1) < 0, "the tensor's bytes are not in the file exactly once"
    data[offset + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_tensor_is_caught(tmp_path):
    train(quiet_cfg(tmp_path / "work", train_cfg=dict(by_epoch=True, max_epochs=1)))
    path = tmp_path / "work" / "epoch_1.pth"
    saved = load_checkpoint(path)
    flip_a_bit_in(path, saved["state_dict"]["net.0.weight"])
    flipped = torch.load(path, weights_only=True)  # torch itself reads the altered weights silently
    assert not torch.equal(flipped["state_dict"]["net.0.weight"], saved["state_dict"]["net.0.weight"])
    with pytest.raises(CheckpointError, match="is corrupt: its contents give checksum") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert saved["meta"]["checksum"].startswith("crc32c:")


def test_auto_resume_falls_back_past_a_flipped_bit(tmp_path):
    config = write_child_config(tmp_path, max_epochs=3, val_interval=None, momentum=0.9)
    work = tmp_path / "w"
    assert cockpit("run", str(config), "--work-dir", str(work), cwd=tmp_path).returncode == 0
    newest = work / "epoch_3.pth"
    flip_a_bit_in(newest, load_checkpoint(newest)["optimizer"]["state"][0]["momentum_buffer"])
    result = cockpit("run", str(config), "--work-dir", str(work), "--resume", "--cfg-options",
                     "train_cfg.max_epochs=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "epoch_3.pth is corrupt" in log and "resumed from the previous good checkpoint" in log
    assert load_checkpoint(work / "epoch_4.pth")["meta"]["epoch"] == 4


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    train(quiet_cfg(tmp_path / "work", train_cfg=dict(by_epoch=True, max_epochs=1)))
    old = load_checkpoint(tmp_path / "work" / "epoch_1.pth")
    del old["meta"]["checksum"]
    torch.save(old, tmp_path / "old.pth")  # as Cockpit wrote them before checksums
    runner = Runner.from_cfg(quiet_cfg(tmp_path / "again", resume=str(tmp_path / "old.pth")), log_to_console=False)
    runner.train()
    assert runner.resumed_from == str(tmp_path / "old.pth")


def _round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_the_checksum_is_stable_across_save_and_load_and_sees_every_change():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    checkpoint = {
        "meta": {"epoch": 1, "iter": 8, "time": 1.5, "nan": math.nan, "inf": -math.inf, "none": None, "flag": True},
        "state_dict": OrderedDict(a=base, view=base.t(), bf16=base.to(torch.bfloat16), empty=torch.zeros(0),
                                  scalar=torch.tensor(3), ints=torch.arange(5, dtype=torch.int64)),
        "nested": [(1, "x"), {"k": b"bytes", "s": {3, 1, 2}}, torch.Size([2, 3]), torch.float16],
    }
    value = checksums.digest(checkpoint)
    assert checksums.digest(_round_trip(checkpoint)) == value
    checkpoint["meta"]["checksum"] = value
    assert checksums.mismatch(_round_trip(checkpoint)) is None
    for change in (lambda c: c["state_dict"]["a"].__setitem__((0, 0), 0.5),
                   lambda c: c["meta"].__setitem__("epoch", 2),
                   lambda c: c["nested"][1].__setitem__("k", b"bytez"),
                   lambda c: c["state_dict"].__setitem__("bf16", c["state_dict"]["bf16"].float())):
        changed = copy.deepcopy(checkpoint)
        change(changed)
        assert checksums.mismatch(changed) is not None


# --- 14: a full or read-only disk ---------------------------------------------------------------------
def test_a_full_disk_with_every_checkpoint_kept_names_the_folder_and_the_last_good_one(small_disk):
    # 32 kB of weights a checkpoint: the disk takes two; the third fails inside a tensor's write,
    # where torch's own error is an "unexpected pos" RuntimeError.
    cfg = tiny_cfg(small_disk / "work", model=dict(type=ToyNet, hidden=1000), val_dataloader=None,
                   val_evaluator=None, val_cfg=None, train_cfg=dict(by_epoch=True, max_epochs=40),
                   default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)))
    runner = Runner.from_cfg(cfg, log_to_console=False)
    with pytest.raises(CheckpointError) as error:
        runner.train()
    message = str(error.value)
    work = small_disk / "work"
    last = read_pointer(work)
    assert "No space left on device" in message and f"the disk holding {work} is full" in message
    assert f"The last good checkpoint is {last}" in message
    load_checkpoint(last)
    assert not list(work.glob(".tmp-*"))


class ReadOnlyAfterFirstSave(Hook):
    """Remounts the checkpoint folder's file system read-only once the first checkpoint is complete."""

    priority = "LOWEST"  # after CheckpointHook's save

    def __init__(self, mount: Path) -> None:
        self.mount = mount

    def after_train_epoch(self, runner) -> None:
        if runner.epoch == 0:
            subprocess.run(["mount", "-o", "remount,ro", str(self.mount)], check=True)


def test_a_read_only_checkpoint_folder_names_the_folder_and_the_last_good_one(small_disk, tmp_path):
    cfg = tiny_cfg(tmp_path / "work", val_dataloader=None, val_evaluator=None, val_cfg=None,
                   train_cfg=dict(by_epoch=True, max_epochs=3),
                   default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1,
                                                                   out_dir=str(small_disk), max_keep_ckpts=1)),
                   custom_hooks=[ReadOnlyAfterFirstSave(small_disk)])
    runner = Runner.from_cfg(cfg, log_to_console=False)
    try:
        with pytest.raises(CheckpointError) as error:
            runner.train()
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=False)
    folder = small_disk / "work"
    message = str(error.value)
    assert f"{folder} is on a read-only file system" in message
    assert f"The last good checkpoint is {folder / 'epoch_1.pth'}" in message
    load_checkpoint(folder / "epoch_1.pth")


def test_a_save_skips_torchs_zip_crc_and_leaves_the_option_as_it_was(tmp_path):
    # The checkpoint's CRC32C covers the contents; torch's software zip CRC-32 was half of a save.
    from cockpit.checkpoint import load_checkpoint as load_checked
    from cockpit.checkpoint import save_checkpoint as save_atomic

    before = torch.serialization.get_crc32_options()
    path = save_atomic({"meta": {}, "state_dict": {"w": torch.arange(10.0)}}, tmp_path / "a.pth")
    assert torch.serialization.get_crc32_options() == before
    import zipfile

    assert all(record.CRC == 0 for record in zipfile.ZipFile(path).infolist()), "torch's zip CRC-32 was computed"
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.arange(10.0))
    assert load_checked(path)["meta"]["checksum"].startswith("crc32c:")


def test_the_fast_encodings_of_histories_give_the_digest_of_the_item_by_item_walk(monkeypatch):
    # Checkpoints written before a fast path existed must still verify: the same bytes, faster.
    history = {"floats": [0.5, math.nan, -1e300, 3.0] * 5000, "ints": list(range(-3, 20_000)),
               "recent": [[step, step / 7 if step % 11 else math.nan] for step in range(30_000)],
               "mixed": [[1, 0.5], [2, 1], (3, 0.25), [True, 0.5]],  # not all [int, float] lists: walked
               "triples": [[1, 0.5, 2.0]]}
    fast = checksums.digest(history)
    monkeypatch.setattr(checksums._Digest, "_numbers", lambda self, items: False)
    assert checksums.digest(history) == fast
    history["recent"][12_345][1] += 1e-9  # and a change inside the pairs is seen
    monkeypatch.undo()
    assert checksums.digest(history) != fast
