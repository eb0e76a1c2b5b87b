"""The demo configs build and train, shrunk with ``--cfg-options``-style overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cockpit import Config, Runner

DEMOS = Path(__file__).resolve().parents[1] / "demos"

# A charlm small enough for a unit test: short windows, a one-block model, a little text,
# and the warm-up and cosine squeezed into the 40 iterations.
CHARLM_SMALL = [
    "train_cfg.max_iters=40", "train_cfg.val_interval=20",
    "model.block_size=32", "model.dim=32", "model.depth=1", "model.heads=2",
    "train_dataloader.dataset.block_size=32", "train_dataloader.dataset.max_chars=50000",
    "train_dataloader.batch_size=16",
    "val_dataloader.dataset.block_size=32", "val_dataloader.dataset.max_chars=4000",
    "param_scheduler.0.end=5", "param_scheduler.1.begin=5", "param_scheduler.1.end=40",
    "default_hooks.logger.interval=10", "default_hooks.checkpoint.interval=20",
    # Validation lines of scalars.json at the iteration (MMEngine's default step, the epoch, is 0 here).
    "default_hooks.logger.log_metric_by_epoch=False",
]


def _train(config: str, options: list[str], work_dir: Path) -> Runner:
    cfg = Config.fromfile(DEMOS / config, options)
    cfg["work_dir"] = str(work_dir)
    runner = Runner.from_cfg(cfg, log_to_console=False)
    runner.train()
    return runner


def _scalar_lines(runner: Runner) -> list[dict]:
    path = runner.log_dir / "vis_data" / "scalars.json"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _val_lines(runner: Runner) -> list[dict]:
    # MMEngine's layout: train lines carry "lr", validation lines the metrics and "step".
    return [line for line in _scalar_lines(runner) if "lr" not in line]


def test_digits_trains(tmp_path):
    runner = _train("digits.py", ["train_cfg.max_epochs=2"], tmp_path)

    assert runner.epoch == 2
    assert runner.iter == 2 * len(runner.train_dataloader)
    accuracies = [line["accuracy/top1"] for line in _val_lines(runner)]
    assert len(accuracies) == 2
    assert accuracies[-1] > 0.5
    assert (tmp_path / "epoch_2.pth").is_file()


def test_charlm_trains_and_its_loss_falls(tmp_path):
    runner = _train("charlm.py", CHARLM_SMALL, tmp_path)

    assert runner.iter == 40
    losses = runner.message_hub.get_scalar("train/loss").series()[1]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first > 4.0  # a uniform guess over 97 characters is ln(97) = 4.57
    assert last < first - 0.7
    val = _val_lines(runner)
    assert [line["step"] for line in val] == [20, 40]
    assert val[-1]["loss"] < val[0]["loss"]
    assert val[-1]["bits_per_char"] == pytest.approx(val[-1]["loss"] / 0.6931471805599453)
    assert (tmp_path / "iter_40.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text().strip().endswith("iter_40.pth")
    assert list(tmp_path.glob("best_loss_iter_*.pth"))


def test_charlm_text_is_deterministic_and_split_by_file(tmp_path):
    cfg = Config.fromfile(DEMOS / "charlm.py")
    text_cls = cfg.train_dataloader.dataset.type
    train_a = text_cls("train", block_size=32, max_chars=20000)
    train_b = text_cls("train", block_size=32, max_chars=20000)
    val = text_cls("val", block_size=32, max_chars=20000)

    assert train_a.ids.equal(train_b.ids)
    assert not train_a.ids[:1000].equal(val.ids[:1000])
    inputs, targets = train_a[3]
    assert inputs.shape == targets.shape == (32,)
    assert inputs[1:].equal(targets[:-1])
    assert int(train_a.ids.max()) < text_cls.vocab_size
    assert text_cls.decode(text_cls.encode("def f(x):\n\treturn 'é'")) == "def f(x):\n?return '?'"
