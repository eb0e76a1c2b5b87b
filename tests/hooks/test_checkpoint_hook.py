"""CheckpointHook: MMEngine's options and semantics, checked on real tiny trainings.

Each test trains a tiny run (mostly 2 iterations per epoch, to stay fast) and then
looks at what is on disk (file names, ``last_checkpoint``, file contents) and in
the message hub, against MMEngine's ``CheckpointHook`` semantics plus Cockpit's
safety promises (rotation and best updates never lose a good checkpoint, NaN
never becomes the best, auto-resume falls back to the previous good checkpoint).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from support import ToyData, ToyNet

from cockpit import BaseMetric, CheckpointError, CheckpointHook, Hook
from cockpit.checkpoint import load_checkpoint

# --- helpers -----------------------------------------------------------------------

#: 16 points at batch size 8: two iterations per epoch (the default tiny config has eight).
SHORT_TRAIN = dict(dataset=dict(type=ToyData, size=16), sampler=dict(type="DefaultSampler", shuffle=True),
                   batch_size=8)
ITERS_PER_EPOCH = 2
#: The default tiny train dataloader: eight iterations per epoch.
TINY_TRAIN = dict(dataset=dict(type=ToyData, size=64), sampler=dict(type="DefaultSampler", shuffle=True),
                  batch_size=8)


def hooks(**checkpoint):
    """default_hooks with the given CheckpointHook options and no logger."""
    return dict(checkpoint=dict(type="CheckpointHook", **checkpoint), logger=None)


def epochs(n: int) -> dict:
    return dict(by_epoch=True, max_epochs=n, val_interval=1)


def pth_files(folder: Path) -> list[str]:
    """Names of the ``.pth`` files directly in ``folder``."""
    return sorted(p.name for p in Path(folder).glob("*.pth"))


def periodic(folder: Path, prefix: str = "epoch_") -> list[str]:
    return [name for name in pth_files(folder) if re.fullmatch(rf"{prefix}\d+\.pth", name)]


def pointer(work: Path) -> Path:
    return Path((work / "last_checkpoint").read_text().strip())


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def warnings_of(runner) -> list[str]:
    return [message for _, level, message in runner.message_hub.logs() if level == "WARNING"]


class SeqMetric(BaseMetric):
    """Reports ``values[i]`` under ``key`` at the i-th evaluation (scripted metric histories)."""

    def __init__(self, values, key: str = "score", prefix: str | None = None) -> None:
        super().__init__(prefix)
        self.values = list(values)
        self.key = key
        self.calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict[str, float]:
        value = self.values[self.calls]
        self.calls += 1
        return {self.key: value}


class LossMetric(BaseMetric):
    """Mean cross-entropy of the predictions, reported as ``loss`` (a less-is-better metric)."""

    def process(self, data_batch, data_samples) -> None:
        logits, labels = data_samples
        self.results.append((float(F.cross_entropy(logits, labels, reduction="sum")), int(labels.numel())))

    def compute_metrics(self, results) -> dict[str, float]:
        return {"loss": sum(s for s, _ in results) / sum(n for _, n in results)}


class Probe(Hook):
    """Runs after every other hook and records what the checkpoint hook left behind.

    Args:
        save_at: call ``runner.save_now()`` after this (1-based) iteration.
    """

    priority = "LOWEST"

    def __init__(self, save_at: int | None = None) -> None:
        self.save_at = save_at
        self.start: dict = {}
        self.pointers: list[tuple[int, str | None]] = []
        self.metrics: list[dict] = []
        self.best_files: list[list[str]] = []
        self.best_scores: list = []
        self.iters = 0
        self.saved_now: tuple[Path, Path] | None = None
        self.temporaries_before_train: list[str] | None = None

    def before_train(self, runner) -> None:
        # Called after load_or_resume() (which follows before_run, as in MMEngine).
        self.temporaries_before_train = sorted(p.name for p in runner.work_dir.glob(".tmp-*"))
        optimizer = runner.optim_wrapper.optimizer
        self.start = dict(
            epoch=runner.epoch, iter=runner.iter, resumed_from=runner.resumed_from,
            keep_ckpt_ids=runner.message_hub.get_info("keep_ckpt_ids"),
            optimizer_state={k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.state.items()},
            weights={k: v.clone() for k, v in runner.model.state_dict().items()},
        )

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.iters += 1
        if self.save_at is not None and runner.iter + 1 == self.save_at:
            path = runner.save_now("test")
            self.saved_now = (Path(path), pointer(runner.work_dir))

    def after_train_epoch(self, runner) -> None:
        file = runner.work_dir / "last_checkpoint"
        self.pointers.append((runner.epoch + 1, file.read_text().strip() if file.exists() else None))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))
        self.best_files.append(sorted(p.name for p in runner.work_dir.glob("best_*.pth")))
        self.best_scores.append(runner.message_hub.get_info("best_score"))


def probe(runner) -> Probe:
    return next(h for h in runner.hooks if isinstance(h, Probe))


def train(make_runner, **overrides):
    overrides.setdefault("train_dataloader", SHORT_TRAIN)
    runner = make_runner(**overrides)
    runner.train()
    return runner


@pytest.fixture
def work(tmp_path) -> Path:
    """The work_dir ``make_runner`` uses."""
    return (tmp_path / "work").resolve()


# --- interval, by_epoch, save_last, save_begin ---------------------------------------

@pytest.mark.parametrize(("save_last", "expected"), [
    (True, ["epoch_2.pth", "epoch_4.pth", "epoch_5.pth"]),
    (False, ["epoch_2.pth", "epoch_4.pth"]),
])
def test_interval_by_epoch_saves_every_n_epochs_and_the_last(make_runner, work, save_last, expected):
    runner = train(make_runner, train_cfg=epochs(5), default_hooks=hooks(interval=2, save_last=save_last))
    assert pth_files(work) == expected
    for name in expected:
        meta = load_checkpoint(work / name)["meta"]
        n = int(name[len("epoch_"):-len(".pth")])
        assert (meta["epoch"], meta["iter"], meta["batch_in_epoch"]) == (n, n * ITERS_PER_EPOCH, 0)
    assert pointer(work) == work / expected[-1]
    assert runner.message_hub.get_info("last_ckpt") == str(work / expected[-1])


def test_interval_by_iteration_saves_iter_files(make_runner, work):
    # 8 iterations per epoch: saves at 4 and 8 (an epoch end) and the last (10), never an epoch file.
    runner = train(make_runner, train_dataloader=TINY_TRAIN,
                   train_cfg=dict(by_epoch=False, max_iters=10, val_interval=5),
                   default_hooks=hooks(interval=4, by_epoch=False))
    assert pth_files(work) == ["iter_10.pth", "iter_4.pth", "iter_8.pth"]
    for n in (4, 8, 10):
        assert load_checkpoint(work / f"iter_{n}.pth")["meta"]["iter"] == n
    assert pointer(work) == work / "iter_10.pth"
    assert runner.iter == 10


@pytest.mark.parametrize("save_last", [True, False])
def test_interval_minus_one_saves_only_the_last(make_runner, work, save_last):
    train(make_runner, train_cfg=epochs(3), default_hooks=hooks(interval=-1, save_last=save_last))
    if save_last:
        assert pth_files(work) == ["epoch_3.pth"]
        assert pointer(work) == work / "epoch_3.pth"
    else:
        assert pth_files(work) == []
        assert not (work / "last_checkpoint").exists()


def test_save_begin_starts_periodic_saving_at_that_epoch(make_runner, work):
    # MMEngine: (count - save_begin) % interval == 0 and count >= save_begin -> 3, 5 (not 1).
    train(make_runner, train_cfg=epochs(6), default_hooks=hooks(interval=2, save_begin=3, save_last=False))
    assert pth_files(work) == ["epoch_3.pth", "epoch_5.pth"]


def test_save_begin_with_save_last(make_runner, work):
    train(make_runner, train_cfg=epochs(4), default_hooks=hooks(interval=2, save_begin=3))
    assert pth_files(work) == ["epoch_3.pth", "epoch_4.pth"]


def test_negative_save_begin_raises():
    with pytest.raises(ValueError, match="save_begin"):
        CheckpointHook(interval=1, save_begin=-1)


# --- filename_tmpl, out_dir --------------------------------------------------------------

def test_filename_tmpl_names_the_checkpoints(make_runner, work):
    train(make_runner, default_hooks=hooks(interval=1, filename_tmpl="ckpt_{}.pth"))
    assert pth_files(work) == ["ckpt_1.pth", "ckpt_2.pth"]
    assert pointer(work) == work / "ckpt_2.pth"
    assert load_checkpoint(work / "ckpt_2.pth")["meta"]["epoch"] == 2


def test_filename_tmpl_rotation_uses_the_template(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3),
                   default_hooks=hooks(interval=1, max_keep_ckpts=1, filename_tmpl="ckpt_{}.pth"))
    assert pth_files(work) == ["ckpt_3.pth"]
    assert runner.message_hub.get_info("keep_ckpt_ids") == [3]


@pytest.mark.parametrize("template", ["ckpt.pth", "ckpt_{}_{}.pth"])
def test_filename_tmpl_without_exactly_one_placeholder_raises(template):
    with pytest.raises(ValueError, match="filename_tmpl"):
        CheckpointHook(interval=1, filename_tmpl=template)


def test_out_dir_saves_under_out_dir_slash_work_dir_name(make_runner, work, tmp_path):
    store = tmp_path / "store"
    runner = train(make_runner, default_hooks=hooks(interval=1, out_dir=str(store)))
    target = store / work.name
    assert pth_files(target) == ["epoch_1.pth", "epoch_2.pth"]
    assert pth_files(work) == []
    assert pointer(work) == target / "epoch_2.pth"
    assert not (target / "last_checkpoint").exists()
    assert runner.message_hub.get_info("last_ckpt") == str(target / "epoch_2.pth")
    assert load_checkpoint(pointer(work))["meta"]["epoch"] == 2


# --- save_optimizer, save_param_scheduler --------------------------------------------------

@pytest.mark.parametrize(("save_optimizer", "save_param_scheduler"), [(True, True), (False, True), (True, False)])
def test_save_optimizer_and_param_scheduler_flags(make_runner, work, save_optimizer, save_param_scheduler):
    train(make_runner, train_cfg=epochs(1),
          param_scheduler=dict(type="StepLR", step_size=1, gamma=0.5, by_epoch=True),
          default_hooks=hooks(interval=1, save_optimizer=save_optimizer,
                              save_param_scheduler=save_param_scheduler))
    checkpoint = load_checkpoint(work / "epoch_1.pth")
    assert ("optimizer" in checkpoint) is save_optimizer
    assert ("param_schedulers" in checkpoint) is save_param_scheduler
    assert "state_dict" in checkpoint and "meta" in checkpoint


# --- max_keep_ckpts --------------------------------------------------------------------------

def test_max_keep_ckpts_keeps_the_newest_and_never_touches_foreign_files(make_runner, work):
    work.mkdir(parents=True)
    (work / "mine.pth").write_bytes(b"the user's own file")
    (work / "notes.txt").write_text("keep me")
    runner = train(make_runner, train_cfg=epochs(5), default_hooks=hooks(interval=1, max_keep_ckpts=2),
                   custom_hooks=[Probe()])
    assert periodic(work) == ["epoch_4.pth", "epoch_5.pth"]
    assert runner.message_hub.get_info("keep_ckpt_ids") == [4, 5]
    assert (work / "mine.pth").read_bytes() == b"the user's own file"
    assert (work / "notes.txt").read_text() == "keep me"
    # The pointer always names a file that exists (rotation never removes the newest).
    for epoch, named in probe(runner).pointers:
        assert named == str(work / f"epoch_{epoch}.pth")
    assert pointer(work).is_file()


def test_rotation_never_deletes_a_file_it_did_not_write(make_runner, work):
    # interval=2 never writes epoch_1.pth / epoch_3.pth: the user's files of those names survive.
    work.mkdir(parents=True)
    (work / "epoch_1.pth").write_bytes(b"foreign 1")
    (work / "epoch_3.pth").write_bytes(b"foreign 3")
    train(make_runner, train_cfg=epochs(6), default_hooks=hooks(interval=2, max_keep_ckpts=1))
    assert (work / "epoch_1.pth").read_bytes() == b"foreign 1"
    assert (work / "epoch_3.pth").read_bytes() == b"foreign 3"
    assert periodic(work) == ["epoch_1.pth", "epoch_3.pth", "epoch_6.pth"]


def test_rotation_never_deletes_the_current_best(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(4),
                   val_evaluator=dict(type=SeqMetric, values=[0.9, 0.1, 0.2, 0.3]),
                   default_hooks=hooks(interval=1, max_keep_ckpts=1, save_best="score", rule="greater"))
    assert (work / "best_score_epoch_1.pth").is_file()
    assert periodic(work) == ["epoch_4.pth"]
    assert runner.message_hub.get_info("best_ckpt") == str(work / "best_score_epoch_1.pth")
    assert runner.message_hub.get_info("best_score") == 0.9


class SourceWatch(Hook):
    """Notes whether the checkpoint a run resumed from is on disk when training starts and after each save."""

    priority = "LOWEST"  # after CheckpointHook (which configures, rotates and saves)

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def before_train(self, runner) -> None:
        self.seen.append(("before_train", Path(runner.resumed_from).is_file()))

    def after_train_epoch(self, runner) -> None:
        self.seen.append((f"epoch {runner.epoch + 1}", Path(runner.resumed_from).is_file()))


def test_rotation_spares_the_checkpoint_the_run_resumed_from_only_while_it_is_the_newest(make_runner, work):
    train(make_runner, train_cfg=epochs(3), default_hooks=hooks(interval=1, max_keep_ckpts=2))
    assert periodic(work) == ["epoch_2.pth", "epoch_3.pth"]
    source = work / "epoch_2.pth"
    runner = train(make_runner, train_cfg=epochs(5), resume=str(source), custom_hooks=[SourceWatch()],
                   default_hooks=hooks(interval=1, max_keep_ckpts=1))
    assert runner.resumed_from == str(source)
    # Kept until this run has a newer good checkpoint (epoch 3), then rotated like any other.
    assert next(h for h in runner.hooks if isinstance(h, SourceWatch)).seen == [
        ("before_train", True), ("epoch 3", False), ("epoch 4", False), ("epoch 5", False)]
    assert periodic(work) == ["epoch_5.pth"]
    assert runner.message_hub.get_info("keep_ckpt_ids") == [5]


def test_resumed_run_keeps_rotating_from_the_checkpoint_hub(make_runner, work):
    train(make_runner, train_cfg=epochs(3), default_hooks=hooks(interval=1, max_keep_ckpts=2))
    assert periodic(work) == ["epoch_2.pth", "epoch_3.pth"]
    runner = train(make_runner, train_cfg=epochs(5), resume=True,
                   default_hooks=hooks(interval=1, max_keep_ckpts=2), custom_hooks=[Probe()])
    start = probe(runner).start
    assert start["epoch"] == 3
    assert start["keep_ckpt_ids"] == [2, 3], "keep_ckpt_ids were not restored from the checkpoint's hub"
    # epoch_2 and then epoch_3 (the resume source, once epoch_4 exists) are rotated away, as in MMEngine.
    assert periodic(work) == ["epoch_4.pth", "epoch_5.pth"]
    assert runner.message_hub.get_info("keep_ckpt_ids") == [4, 5]


# --- save_best ------------------------------------------------------------------------------

def test_save_best_on_a_key(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3), custom_hooks=[Probe()],
                   default_hooks=hooks(interval=1, save_best="accuracy/top1"))
    history = [m["accuracy/top1"] for m in probe(runner).metrics]
    best_epoch = history.index(max(history)) + 1  # the first of equal values stays (strictly better only)
    name = f"best_accuracy_top1_epoch_{best_epoch}.pth"
    assert [n for n in pth_files(work) if n.startswith("best_")] == [name]
    hub = runner.message_hub
    assert hub.get_info("best_score") == max(history)
    assert hub.get_info("best_ckpt") == str(work / name)
    best = load_checkpoint(work / name)
    assert best["meta"]["epoch"] == best_epoch
    assert "optimizer" not in best  # MMEngine saves best checkpoints without the optimizer
    assert same_weights(best["state_dict"], load_checkpoint(work / f"epoch_{best_epoch}.pth")["state_dict"])
    # The hub's best score never decreased and always matched the history so far.
    assert probe(runner).best_scores == [max(history[: i + 1]) for i in range(len(history))]


def test_new_best_replaces_the_old_file(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3), custom_hooks=[Probe()],
                   val_evaluator=dict(type=SeqMetric, values=[0.1, 0.2, 0.3]),
                   default_hooks=hooks(interval=1, save_best="score", rule="greater"))
    assert probe(runner).best_files == [["best_score_epoch_1.pth"], ["best_score_epoch_2.pth"],
                                        ["best_score_epoch_3.pth"]]
    assert runner.message_hub.get_info("best_score") == 0.3


def test_save_best_auto_uses_the_first_metric(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3), custom_hooks=[Probe()],
                   val_evaluator=[dict(type=SeqMetric, values=[0.2, 0.5, 0.5], key="my_acc"),
                                  dict(type="Accuracy")],
                   default_hooks=hooks(interval=1, save_best="auto"))
    # A tie is not an improvement (strictly better only, as MMEngine).
    assert probe(runner).best_files[-1] == ["best_my_acc_epoch_2.pth"]
    assert [n for n in pth_files(work) if n.startswith("best_")] == ["best_my_acc_epoch_2.pth"]
    assert runner.message_hub.get_info("best_score") == 0.5
    assert runner.message_hub.get_info("best_ckpt") == str(work / "best_my_acc_epoch_2.pth")


def test_save_best_two_keys_with_inferred_rules(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3), custom_hooks=[Probe()],
                   val_evaluator=[dict(type="Accuracy"), dict(type=LossMetric)],
                   default_hooks=hooks(interval=1, save_best=["accuracy/top1", "loss"]))
    metrics = probe(runner).metrics
    accuracy = [m["accuracy/top1"] for m in metrics]
    loss = [m["loss"] for m in metrics]
    acc_epoch = accuracy.index(max(accuracy)) + 1
    loss_epoch = loss.index(min(loss)) + 1  # 'loss' is less-is-better
    hub = runner.message_hub
    assert hub.get_info("best_score_accuracy/top1") == max(accuracy)
    assert hub.get_info("best_score_loss") == min(loss)
    assert hub.get_info("best_ckpt_accuracy/top1") == str(work / f"best_accuracy_top1_epoch_{acc_epoch}.pth")
    assert hub.get_info("best_ckpt_loss") == str(work / f"best_loss_epoch_{loss_epoch}.pth")
    assert hub.get_info("best_score") is None  # single-key names are not used with several keys
    bests = [n for n in pth_files(work) if n.startswith("best_")]
    assert sorted(bests) == sorted([f"best_accuracy_top1_epoch_{acc_epoch}.pth", f"best_loss_epoch_{loss_epoch}.pth"])


def test_save_best_two_keys_with_per_key_rules(make_runner, work):
    # The same history under two keys: 'greater' picks epoch 1, 'less' picks epoch 2.
    runner = train(make_runner, train_cfg=epochs(3),
                   val_evaluator=[dict(type=SeqMetric, values=[0.3, 0.1, 0.2], key="foo"),
                                  dict(type=SeqMetric, values=[0.3, 0.1, 0.2], key="bar")],
                   default_hooks=hooks(interval=1, save_best=["foo", "bar"], rule=["greater", "less"]))
    assert [n for n in pth_files(work) if n.startswith("best_")] == ["best_bar_epoch_2.pth", "best_foo_epoch_1.pth"]
    hub = runner.message_hub
    assert (hub.get_info("best_score_foo"), hub.get_info("best_score_bar")) == (0.3, 0.1)


@pytest.mark.parametrize(("key", "kwargs", "rule"), [
    ("accuracy/top1", {}, "greater"),  # substring 'acc'
    ("mAP", {}, "greater"),
    ("loss", {}, "less"),
    ("Val_LOSS", {}, "less"),  # case-insensitive substring
    ("TOP1", {}, "greater"),
    ("top_loss", {"less_keys": ["top_loss"]}, "less"),  # exact match wins over the substring 'top'
    ("acc_loss", {"less_keys": ["ACC_LOSS"]}, "less"),  # exact match, case-insensitive
    ("foo", {"greater_keys": ["foo"]}, "greater"),
    ("foo_metric", {"less_keys": "foo"}, "less"),
])
def test_rule_inference(key, kwargs, rule):
    hook = CheckpointHook(interval=1, save_best=key, **kwargs)
    assert hook.rules == [rule]
    better = hook.is_better_than[key]
    assert better(2.0, 1.0) is (rule == "greater")


def test_rule_that_cannot_be_inferred_raises_naming_the_key():
    with pytest.raises(ValueError, match="foo"):
        CheckpointHook(interval=1, save_best="foo")


def test_rule_list_length_mismatch_raises():
    with pytest.raises((ValueError, AssertionError)):
        CheckpointHook(interval=1, save_best=["foo", "bar"], rule=["greater", "less", "less"])


def test_invalid_rule_raises():
    with pytest.raises((ValueError, KeyError)):
        CheckpointHook(interval=1, save_best="accuracy/top1", rule="bigger")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("rule", "values", "best_scores", "best_epoch"), [
    ("greater", [0.2, NAN, 0.5, INF], [0.2, 0.2, 0.5, 0.5], 3),
    ("less", [NAN, 0.5, -INF, 0.7], [None, 0.5, 0.5, 0.5], 2),
])
def test_nan_or_inf_never_becomes_the_best(make_runner, work, rule, values, best_scores, best_epoch):
    runner = train(make_runner, train_cfg=epochs(4), custom_hooks=[Probe()],
                   val_evaluator=dict(type=SeqMetric, values=values),
                   default_hooks=hooks(interval=1, save_best="score", rule=rule))
    assert probe(runner).best_scores == best_scores
    best = runner.message_hub.get_info("best_score")
    assert math.isfinite(best) and best == 0.5
    name = f"best_score_epoch_{best_epoch}.pth"
    assert [n for n in pth_files(work) if n.startswith("best_")] == [name]
    assert runner.message_hub.get_info("best_ckpt") == str(work / name)


def test_validation_outside_training_saves_no_best(make_runner, work):
    # after_val_epoch only keeps a best checkpoint during training; runner.val() alone
    # must neither fail nor write one.
    runner = make_runner(default_hooks=hooks(interval=1, save_best="accuracy/top1"))
    metrics = runner.val()
    assert "accuracy/top1" in metrics
    assert pth_files(work) == []
    assert runner.message_hub.get_info("best_score") is None


# --- published_keys -----------------------------------------------------------------------

def test_published_keys_writes_hashed_slim_copies(make_runner, work):
    runner = train(make_runner, default_hooks=hooks(interval=1, save_best="accuracy/top1",
                                                    published_keys=["meta", "state_dict"]))
    best = Path(runner.message_hub.get_info("best_ckpt"))
    for source in (work / "epoch_2.pth", best):
        published = [p for p in work.glob(f"{source.stem}-*.pth")]
        assert len(published) == 1, f"expected one published copy of {source.name}, got {published}"
        match = re.fullmatch(rf"{re.escape(source.stem)}-([0-9a-f]{{8}})\.pth", published[0].name)
        assert match, published[0].name
        assert match.group(1) == hashlib.sha256(published[0].read_bytes()).hexdigest()[:8]
        content = load_checkpoint(published[0])
        assert sorted(content) == ["meta", "state_dict"]
        assert same_weights(content["state_dict"], load_checkpoint(source)["state_dict"])
    assert not list(work.glob("epoch_1-*.pth"))


# --- last_checkpoint ------------------------------------------------------------------------

def test_last_checkpoint_points_at_the_newest_complete_checkpoint(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(4), custom_hooks=[Probe()], default_hooks=hooks(interval=2))
    assert probe(runner).pointers == [
        (1, None),
        (2, str(work / "epoch_2.pth")),
        (3, str(work / "epoch_2.pth")),
        (4, str(work / "epoch_4.pth")),
    ]
    assert load_checkpoint(pointer(work))["meta"]["epoch"] == 4


def test_last_checkpoint_follows_the_resave_after_a_new_best(make_runner, work):
    runner = train(make_runner, train_cfg=epochs(3), custom_hooks=[Probe()],
                   val_evaluator=dict(type=SeqMetric, values=[0.1, 0.2, 0.3]),
                   default_hooks=hooks(interval=1, save_best="score", rule="greater"))
    for epoch, named in probe(runner).pointers:
        assert named == str(work / f"epoch_{epoch}.pth")
    # The periodic checkpoint is saved again after a new best, so its hub knows the new best.
    hub_state = load_checkpoint(pointer(work))["message_hub"]["runtime_info"]
    assert hub_state["best_ckpt"] == str(work / "best_score_epoch_3.pth")
    assert hub_state["best_score"] == 0.3


# --- resume ----------------------------------------------------------------------------------

def test_resume_true_continues_from_last_checkpoint(make_runner, work):
    sgd = dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9))
    train(make_runner, optim_wrapper=sgd, default_hooks=hooks(interval=1))
    saved = load_checkpoint(work / "epoch_2.pth")
    # The pointer decides, not the newest file on disk.
    later = time.time() + 60
    os.utime(work / "epoch_1.pth", (later, later))
    runner = train(make_runner, optim_wrapper=sgd, train_cfg=epochs(4), resume=True,
                   default_hooks=hooks(interval=1), custom_hooks=[Probe()])
    start = probe(runner).start
    assert (start["epoch"], start["iter"]) == (2, 2 * ITERS_PER_EPOCH)
    assert start["resumed_from"] is not None and Path(start["resumed_from"]) == work / "epoch_2.pth"
    assert same_weights(start["weights"], saved["state_dict"])
    buffers = [s["momentum_buffer"] for s in start["optimizer_state"].values()]
    saved_buffers = [s["momentum_buffer"] for s in saved["optimizer"]["state"].values()]
    assert len(buffers) == len(saved_buffers) > 0
    assert all(torch.equal(a, b) for a, b in zip(buffers, saved_buffers, strict=True))
    assert probe(runner).iters == 2 * ITERS_PER_EPOCH
    assert periodic(work) == ["epoch_1.pth", "epoch_2.pth", "epoch_3.pth", "epoch_4.pth"]
    assert load_checkpoint(pointer(work))["meta"]["epoch"] == 4


def test_resume_true_with_nothing_to_resume_raises(make_runner, work):
    runner = make_runner(train_dataloader=SHORT_TRAIN, resume=True, default_hooks=hooks(interval=1))
    with pytest.raises(CheckpointError) as info:
        runner.train()
    assert str(work) in str(info.value)
    assert pth_files(work) == [], "resume=True with nothing to resume must not start a fresh run"
    assert not (work / "last_checkpoint").exists()


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a checkpoint\xff" * 10)


def test_auto_resume_falls_back_when_last_checkpoint_is_corrupt(make_runner, work):
    train(make_runner, train_cfg=epochs(3), default_hooks=hooks(interval=1))
    assert pointer(work) == work / "epoch_3.pth"
    _corrupt(work / "epoch_3.pth")
    runner = train(make_runner, train_cfg=epochs(4), resume=True, default_hooks=hooks(interval=1),
                   custom_hooks=[Probe()])
    # The previous good checkpoint: epoch_2, not the older epoch_1.
    assert Path(runner.resumed_from) == work / "epoch_2.pth"
    assert probe(runner).start["epoch"] == 2
    assert any("epoch_3.pth" in w for w in warnings_of(runner)), warnings_of(runner)
    # The run went on from epoch 2 and wrote good checkpoints again.
    assert load_checkpoint(work / "epoch_3.pth")["meta"]["epoch"] == 3
    assert load_checkpoint(pointer(work))["meta"]["epoch"] == 4


def test_auto_resume_fallback_skips_best_checkpoints(make_runner, work):
    # best_*.pth files have no optimizer state: they are not the previous *training* checkpoint.
    train(make_runner, val_evaluator=dict(type=SeqMetric, values=[0.1, 0.2]),
          default_hooks=hooks(interval=1, save_best="score", rule="greater"))
    _corrupt(work / "epoch_2.pth")
    runner = train(make_runner, train_cfg=epochs(3), resume=True, val_evaluator=dict(type=SeqMetric, values=[0.3, 0.4]),
                   default_hooks=hooks(interval=1, save_best="score", rule="greater"))
    assert Path(runner.resumed_from) == work / "epoch_1.pth"


def test_auto_resume_fallback_skips_published_checkpoints(make_runner, work):
    # Published copies hold only the published keys: they cannot be resumed from.
    train(make_runner, default_hooks=hooks(interval=1, published_keys=["meta", "state_dict"]))
    assert len(list(work.glob("epoch_2-*.pth"))) == 1
    _corrupt(work / "epoch_2.pth")
    runner = train(make_runner, train_cfg=epochs(3), resume=True, default_hooks=hooks(interval=1))
    assert Path(runner.resumed_from) == work / "epoch_1.pth"


def test_auto_resume_fallback_with_out_dir(make_runner, work, tmp_path):
    store = tmp_path / "store"
    train(make_runner, default_hooks=hooks(interval=1, out_dir=str(store)))
    target = store / work.name
    assert pointer(work) == target / "epoch_2.pth"
    _corrupt(target / "epoch_2.pth")
    runner = train(make_runner, train_cfg=epochs(3), resume=True,
                   default_hooks=hooks(interval=1, out_dir=str(store)))
    assert Path(runner.resumed_from) == target / "epoch_1.pth"


def test_auto_resume_ignores_and_removes_leftover_temporaries(make_runner, work):
    train(make_runner, default_hooks=hooks(interval=1))
    leftover = work / ".tmp-epoch_3.pth.xyz"
    leftover.write_bytes(b"half a checkpoint")
    later = time.time() + 60
    os.utime(leftover, (later, later))
    runner = train(make_runner, train_cfg=epochs(3), resume=True, default_hooks=hooks(interval=1),
                   custom_hooks=[Probe()])
    assert Path(runner.resumed_from) == work / "epoch_2.pth"
    assert probe(runner).start["epoch"] == 2
    assert probe(runner).temporaries_before_train == [], "auto-resume did not remove the leftover"
    assert not leftover.exists()
    assert any(".tmp-epoch_3.pth.xyz" in w for w in warnings_of(runner)), warnings_of(runner)


# --- load_from --------------------------------------------------------------------------------

def test_load_from_loads_weights_only(make_runner, work, tmp_path):
    sgd = dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9))
    train(make_runner, optim_wrapper=sgd, default_hooks=hooks(interval=1))
    source = tmp_path / "trained.pth"
    (work / "epoch_2.pth").rename(source)
    saved = load_checkpoint(source)
    assert saved["optimizer"]["state"], "the source checkpoint should hold momentum buffers"
    runner = train(make_runner, optim_wrapper=sgd, load_from=str(source), custom_hooks=[Probe()],
                   default_hooks=hooks(interval=1))
    start = probe(runner).start
    assert (start["epoch"], start["iter"]) == (0, 0)
    assert start["optimizer_state"] == {}
    assert start["resumed_from"] is None
    assert same_weights(start["weights"], saved["state_dict"])
    assert probe(runner).iters == 2 * ITERS_PER_EPOCH  # the full schedule, from the start
    assert load_checkpoint(work / "epoch_1.pth")["meta"]["epoch"] == 1


@pytest.mark.parametrize("layout", ["plain", "module_prefix", "wrapped_module_prefix"])
def test_load_from_a_state_dict_file(make_runner, tmp_path, layout):
    torch.manual_seed(123)
    weights = {k: torch.randn_like(v) for k, v in ToyNet().state_dict().items()}
    if layout == "plain":
        content = weights
    elif layout == "module_prefix":
        content = {f"module.{k}": v for k, v in weights.items()}
    else:
        content = {"state_dict": {f"module.{k}": v for k, v in weights.items()}}
    source = tmp_path / "weights.pth"
    torch.save(content, source)
    runner = train(make_runner, train_cfg=epochs(1), load_from=str(source), custom_hooks=[Probe()],
                   default_hooks=hooks(interval=1))
    start = probe(runner).start
    assert same_weights(start["weights"], weights)
    assert (start["epoch"], start["iter"]) == (0, 0)


# --- save_now -----------------------------------------------------------------------------------

def test_save_now_mid_epoch_writes_a_never_rotated_iter_checkpoint(make_runner, work):
    # Default loader: 8 iterations per epoch; save after iteration 5 of epoch 1.
    runner = make_runner(train_cfg=epochs(3), custom_hooks=[Probe(save_at=5)],
                         default_hooks=hooks(interval=1, max_keep_ckpts=1))
    runner.train()
    path, named = probe(runner).saved_now
    assert path == work / "iter_5.pth"
    assert named == path, "last_checkpoint was not updated by save_now"
    checkpoint = load_checkpoint(path)
    assert (checkpoint["meta"]["epoch"], checkpoint["meta"]["iter"], checkpoint["meta"]["batch_in_epoch"]) == (0, 5, 5)
    assert "optimizer" in checkpoint
    assert path.is_file(), "rotation removed the save_now checkpoint"
    assert periodic(work) == ["epoch_3.pth"]
    assert pth_files(work) == ["epoch_3.pth", "iter_5.pth"]
    assert pointer(work) == work / "epoch_3.pth"
