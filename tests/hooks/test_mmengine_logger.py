"""LoggerHook and vis_data/scalars.json as MMEngine 0.10.7 makes them (issue 11, items 18 and 20).

Every expectation below is what MMEngine 0.10.7 printed and wrote for the same run: its Runner with
the same toy model, data and schedule as ``tiny_cfg`` (2 epochs x 8 batches of 8, validation of 2
batches after each epoch), run in a throwaway venv (torch 2.13.0, mmengine 0.10.7). Values differ
(another model init); the positions, the text around them and the keys are MMEngine's.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from support import ToyData

from cockpit import ConfigError, LoggerHook

HEADER = re.compile(r"^(Epoch|Iter)\((train|val|test)\) *(\[\d+\])?\[ *\d+/\d+\]")
# MMEngine's scalars.json keys, in its order: the hub's train scalars, then position, then "step".
TRAIN_KEYS = ["lr", "data_time", "loss", "time", "epoch", "iter", "step"]
VAL_KEYS = ["accuracy/top1", "data_time", "time", "step"]
TEST_PARTS = dict(test_dataloader=dict(dataset=dict(type=ToyData, size=32, seed=2),
                                       sampler=dict(type="DefaultSampler", shuffle=False), batch_size=8),
                  test_evaluator=dict(type="Accuracy"), test_cfg=dict())


def logger(**arguments) -> dict:
    return dict(logger=dict(type="LoggerHook", backends=("json",), **arguments))


def lines(runner) -> list[str]:
    """The progress lines the run logged (train, val, test and ``Exp name``), in order."""
    return [message for _, _, message in runner.message_hub.logs()
            if HEADER.match(message) or message.startswith("Exp name: ")]


def headers(runner) -> list[str]:
    """``Epoch(train) [1][3/8]``... of each progress line; ``Exp name`` lines as they are."""
    return [match.group(0) if (match := HEADER.match(line)) else line for line in lines(runner)]


def scalar_lines(runner, name: str = "scalars.json") -> list[dict]:
    return [json.loads(line) for line in (runner.log_dir / "vis_data" / name).read_text().splitlines()]


# --- which iterations are logged --------------------------------------------------------------------

# MMEngine 0.10.7, LoggerHook(interval=N, ignore_last=...): the train lines it printed and the steps
# of scalars.json's train lines. The interval counts batches within the epoch; the last, shorter
# stretch is logged unless ignore_last, and always when the whole epoch is no longer than the interval.
LOGGED = [
    (3, True, ["[1][3/8]", "[1][6/8]", "[2][3/8]", "[2][6/8]"], [3, 6, 11, 14]),
    (3, False, ["[1][3/8]", "[1][6/8]", "[1][8/8]", "[2][3/8]", "[2][6/8]", "[2][8/8]"], [3, 6, 8, 11, 14, 16]),
    (4, True, ["[1][4/8]", "[1][8/8]", "[2][4/8]", "[2][8/8]"], [4, 8, 12, 16]),
    (5, True, ["[1][5/8]", "[2][5/8]"], [5, 13]),
    (5, False, ["[1][5/8]", "[1][8/8]", "[2][5/8]", "[2][8/8]"], [5, 8, 13, 16]),
    (10, True, ["[1][8/8]", "[2][8/8]"], [8, 16]),
    (10, False, ["[1][8/8]", "[2][8/8]"], [8, 16]),
]


@pytest.mark.parametrize(("interval", "ignore_last", "positions", "steps"), LOGGED)
def test_logged_iterations_follow_mmengine(make_runner, interval, ignore_last, positions, steps):
    runner = make_runner(default_hooks=logger(interval=interval, ignore_last=ignore_last))
    runner.train()

    train = [header for header in headers(runner) if header.startswith("Epoch(train)")]
    assert train == [f"Epoch(train) {position}" for position in positions]
    rows = [row for row in scalar_lines(runner) if "lr" in row]
    assert [row["step"] for row in rows] == steps
    assert [row["iter"] for row in rows] == steps
    assert [row["epoch"] for row in rows] == [int(p[1]) for p in positions]
    assert all(list(row) == TRAIN_KEYS for row in rows)


# --- the text of the lines ----------------------------------------------------------------------------

def test_train_and_val_lines_read_as_mmengines(make_runner):
    runner = make_runner(default_hooks=logger(interval=4))
    runner.train()

    # MMEngine 0.10.7 printed, for this run:
    #   Epoch(train) [1][4/8]  lr: 1.0000e-01  eta: 0:00:00  time: 0.0228  data_time: 0.0007  loss: 1.0762
    #   Exp name: 20261130_065409
    #   Epoch(train) [1][8/8]  lr: 1.0000e-01  eta: 0:00:00  time: 0.0219  data_time: 0.0010  loss: 1.0807
    #   Epoch(val) [1][2/2]    accuracy/top1: 0.5312  data_time: 0.0003  time: 0.0006
    #   ... and the same for epoch 2.
    number = r"\d+\.\d{4}"
    train = rf"lr: 1\.0000e-01  eta: \d+:\d\d:\d\d  time: {number}  data_time: {number}  loss: {number}"
    expected = []
    for epoch in (1, 2):
        expected += [rf"Epoch\(train\) \[{epoch}\]\[4/8\]  {train}",
                     re.escape(f"Exp name: {runner.experiment_name}"),
                     rf"Epoch\(train\) \[{epoch}\]\[8/8\]  {train}",
                     rf"Epoch\(val\) \[{epoch}\]\[2/2\]    accuracy/top1: {number}  data_time: {number}  time: {number}"]
    got = lines(runner)
    assert len(got) == len(expected), got
    for line, pattern in zip(got, expected, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"


def test_epochs_are_right_aligned_as_in_mmengine(make_runner):
    # MMEngine 0.10.7 with max_epochs=10 and 12 batches an epoch printed
    #   "Epoch(train)  [1][ 4/12]", "Epoch(train)  [9][12/12]", "Epoch(train) [10][ 8/12]", "Epoch(val) [10][2/2]".
    runner = make_runner(default_hooks=logger(interval=4), train_cfg=dict(by_epoch=True, max_epochs=10),
                         train_dataloader=dict(dataset=dict(type=ToyData, size=96),
                                               sampler=dict(type="DefaultSampler", shuffle=True), batch_size=8))
    runner.train()

    got = headers(runner)
    for header in ("Epoch(train)  [1][ 4/12]", "Epoch(train)  [9][12/12]", "Epoch(train) [10][ 8/12]",
                   "Epoch(val) [10][2/2]"):
        assert header in got


def test_iteration_based_lines_and_validation_steps(make_runner):
    iteration_based = dict(train_cfg=dict(by_epoch=False, max_iters=16, val_interval=8))
    runner = make_runner(default_hooks=logger(interval=4), **iteration_based)
    runner.train()

    # MMEngine 0.10.7 (train_cfg by_epoch=False, log_processor by_epoch=False):
    #   Iter(train) [ 4/16] ... Exp name ... Iter(train) [ 8/16] ... Iter(val) [2/2] ... Iter(train) [12/16] ...
    assert headers(runner) == ["Iter(train) [ 4/16]", f"Exp name: {runner.experiment_name}", "Iter(train) [ 8/16]",
                               "Iter(val) [2/2]", "Iter(train) [12/16]", "Iter(train) [16/16]", "Iter(val) [2/2]"]
    rows = scalar_lines(runner)
    assert [list(row) for row in rows if "lr" in row] == [["lr", "data_time", "loss", "time", "iter", "step"]] * 4
    # log_metric_by_epoch=True (the default) writes validation at the epoch, which is 0 in an
    # iteration-based run: MMEngine 0.10.7 wrote "step": 0 twice.
    assert [row["step"] for row in rows if "lr" not in row] == [0, 0]

    runner = make_runner(default_hooks=logger(interval=4, log_metric_by_epoch=False), **iteration_based)
    runner.train()
    # ... and with log_metric_by_epoch=False, at the iteration: 8 and 16.
    assert [row["step"] for row in scalar_lines(runner) if "lr" not in row] == [8, 16]


def test_exp_name_every_interval_exp_name_iterations_and_at_each_epochs_end(make_runner):
    runner = make_runner(default_hooks=logger(interval=3, interval_exp_name=5))
    runner.train()

    exp = f"Exp name: {runner.experiment_name}"
    # MMEngine 0.10.7: iterations 5 and 10 and 15, and the ends of epochs (8 and 16).
    assert headers(runner) == ["Epoch(train) [1][3/8]", exp, "Epoch(train) [1][6/8]", exp, "Epoch(val) [1][2/2]",
                               exp, "Epoch(train) [2][3/8]", "Epoch(train) [2][6/8]", exp, exp, "Epoch(val) [2][2/2]"]


def test_val_and_test_iteration_lines_and_the_test_json(make_runner):
    runner = make_runner(default_hooks=logger(interval=1), **TEST_PARTS)
    runner.train()
    runner.test()

    # MMEngine 0.10.7 with interval=1 (the eta is the training's; the lines end in two spaces):
    #   'Epoch(val) [1][1/2]    eta: 0:00:00  time: 0.0009  data_time: 0.0005  '
    #   'Epoch(val) [1][2/2]    accuracy/top1: 0.5312  data_time: 0.0004  time: 0.0007'
    #   'Epoch(test) [1/4]    eta: 0:00:00  time: 0.0006  data_time: 0.0003  '
    #   'Epoch(test) [4/4]    accuracy/top1: 0.2812  data_time: 0.0003  time: 0.0005'
    number = r"\d+\.\d{4}"
    per_iter = rf"    eta: \d+:\d\d:\d\d  time: {number}  data_time: {number}  "
    metrics = rf"    accuracy/top1: {number}  data_time: {number}  time: {number}"
    got = [line for line in lines(runner) if not line.startswith(("Epoch(train)", "Exp name"))]
    expected = [rf"Epoch\(val\) \[1\]\[1/2\]{per_iter}", rf"Epoch\(val\) \[1\]\[2/2\]{per_iter}",
                rf"Epoch\(val\) \[1\]\[2/2\]{metrics}",
                rf"Epoch\(val\) \[2\]\[1/2\]{per_iter}", rf"Epoch\(val\) \[2\]\[2/2\]{per_iter}",
                rf"Epoch\(val\) \[2\]\[2/2\]{metrics}",
                *(rf"Epoch\(test\) \[{i}/4\]{per_iter}" for i in range(1, 5)), rf"Epoch\(test\) \[4/4\]{metrics}"]
    assert len(got) == len(expected), got
    for line, pattern in zip(got, expected, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"
    # Test metrics go to <run folder>/<timestamp>.json (one object), not to scalars.json.
    result = json.loads((runner.log_dir / f"{runner.timestamp}.json").read_text())
    assert list(result) == ["accuracy/top1", "data_time", "time"]
    assert all("lr" in row or row["step"] in (1, 2) for row in scalar_lines(runner))


# --- scalars.json -------------------------------------------------------------------------------------

def test_scalars_json_has_mmengines_layout_and_analysis_tools_read_it(make_runner):
    runner = make_runner(default_hooks=logger(interval=4))
    runner.train()

    rows = scalar_lines(runner)
    # MMEngine 0.10.7 wrote, for this run (values rounded):
    #   {"lr": 0.1, "data_time": 0.0007, "loss": 1.0762, "time": 0.0228, "epoch": 1, "iter": 4, "step": 4}
    #   {"lr": 0.1, "data_time": 0.0010, "loss": 1.0807, "time": 0.0219, "epoch": 1, "iter": 8, "step": 8}
    #   {"accuracy/top1": 0.53125, "data_time": 0.0003, "time": 0.0006, "step": 1}
    #   ... and the same for epoch 2 (steps 12, 16 and 2).
    assert [list(row) for row in rows] == [TRAIN_KEYS, TRAIN_KEYS, VAL_KEYS] * 2
    assert [row["step"] for row in rows] == [4, 8, 1, 12, 16, 2]
    assert all(row["lr"] == 0.1 for row in rows if "lr" in row)
    # The hub keeps Cockpit's names; the file has MMEngine's.
    loss = runner.message_hub.get_scalar("train/loss")
    assert rows[-2]["loss"] == pytest.approx(loss.mean(10))
    assert rows[-1]["accuracy/top1"] == runner.message_hub.get_scalar("val/accuracy/top1").current()
    # The analysis tools (tools/analysis_tools/analyze_logs.py in OpenMMLab repos) tell train lines
    # by "lr", plot them against "step" scaled by "epoch", and validation lines against "step".
    train = [row for row in rows if "lr" in row]
    assert train[-1]["step"] / train[-1]["epoch"] == 8
    # MMEngine's LocalVisBackend writes the same lines to vis_data/<timestamp>.json.
    assert scalar_lines(runner, f"{runner.timestamp}.json") == rows


def read_event_scalars(folder: Path) -> dict[str, list[int]]:
    """``tag -> [step, ...]`` from the tensorboardX event file in ``folder`` (TFRecord framing, no checks)."""
    from tensorboardX.proto.event_pb2 import Event

    (path,) = folder.glob("events.out.tfevents.*")
    data, offset, steps = path.read_bytes(), 0, {}
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = Event.FromString(data[offset + 12:offset + 12 + length])
        for value in event.summary.value:
            steps.setdefault(value.tag, []).append(event.step)
        offset += 16 + length
    return steps


def test_tensorboard_keeps_the_hubs_names_at_the_logged_iterations(make_runner):
    runner = make_runner(default_hooks=dict(logger=dict(type="LoggerHook", interval=3,
                                                        backends=("json", "tensorboard"))))
    runner.train()

    steps = read_event_scalars(runner.log_dir / "vis_data")
    assert steps["train/loss"] == steps["train/lr"] == [3, 6, 11, 14]  # MMEngine's logged iterations
    assert steps["val/accuracy/top1"] == [8, 16]  # at the training iteration, as the cockpit plots it
    assert "loss" not in steps and "accuracy/top1" not in steps


# --- out_dir, keep_local, out_suffix ---------------------------------------------------------------------

def test_out_dir_receives_the_log_files_after_the_run(make_runner, tmp_path):
    shared = tmp_path / "shared"
    runner = make_runner(default_hooks=logger(interval=4, out_dir=str(shared)))
    runner.train()

    # MMEngine 0.10.7: out_dir/<work_dir's name>/ gets the run folder's .json, .log, .py and yaml files,
    # at the same relative paths; the local ones stay (keep_local=True).
    target = shared / runner.work_dir.name
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    ts = runner.timestamp
    assert copied == sorted([f"{ts}.log", f"{ts}.py", f"vis_data/{ts}.json", "vis_data/scalars.json"])
    assert (target / "vis_data" / "scalars.json").read_text() == (runner.log_dir / "vis_data" / "scalars.json").read_text()
    assert "Epoch(val) [2][2/2]" in (target / f"{ts}.log").read_text()
    assert (runner.log_dir / f"{ts}.log").is_file()
    assert any(f"Text logs will be saved to {target}" in m for _, _, m in runner.message_hub.logs())


def test_keep_local_false_removes_what_was_copied(make_runner, tmp_path):
    shared = tmp_path / "shared"
    runner = make_runner(default_hooks=logger(interval=4, out_dir=str(shared), out_suffix=".log", keep_local=False))
    runner.train()

    # MMEngine 0.10.7: only the .log file moved; the scalars stay in the run folder.
    target = shared / runner.work_dir.name
    assert [p.name for p in target.rglob("*") if p.is_file()] == [f"{runner.timestamp}.log"]
    assert not (runner.log_dir / f"{runner.timestamp}.log").exists()
    assert (runner.log_dir / "vis_data" / "scalars.json").is_file()
    assert "Epoch(val) [2][2/2]" in (target / f"{runner.timestamp}.log").read_text()


# --- what Cockpit cannot do fails loudly ------------------------------------------------------------------

@pytest.mark.parametrize(("arguments", "named"), [
    (dict(backend_args=dict(backend="petrel")), "backend_args"),
    (dict(file_client_args=dict(backend="disk"), out_dir="/tmp/x"), "file_client_args"),
    (dict(out_dir="s3://bucket/logs"), "out_dir"),
])
def test_remote_storage_is_refused_with_the_fix(make_runner, arguments, named):
    # MMEngine writes these through its file backends; Cockpit writes local files only.
    with pytest.raises(ConfigError, match=named) as error:
        make_runner(default_hooks=logger(**arguments))
    assert "local" in str(error.value)
    assert error.value.fix and "out_dir" in error.value.fix


def test_log_processor_options_are_honoured_or_refused(make_runner):
    runner = make_runner(default_hooks=logger(interval=4), log_processor=dict(by_epoch=False, num_digits=6))
    runner.train()
    # MMEngine 0.10.7 with log_processor=dict(by_epoch=False) on epoch-based training prints
    # "Iter(train) [ 4/16]" and "Iter(val) [2/2]"; num_digits sets the digits.
    got = lines(runner)
    assert got[0].startswith("Iter(train) [ 4/16]  lr: 1.000000e-01  eta: ")
    assert re.search(r"  loss: \d\.\d{6}$", got[0])
    assert any(line.startswith("Iter(val) [2/2]    accuracy/top1: ") for line in got)

    with pytest.raises(ConfigError, match="custom_cfg") as error:
        make_runner(default_hooks=logger(interval=4),
                    log_processor=dict(custom_cfg=[dict(data_src="loss", method_name="max", window_size=10)])).train()
    assert error.value.key == "log_processor.custom_cfg"


def test_hook_arguments_are_checked_as_mmengine_checks_them():
    for bad in (dict(interval=0), dict(interval_exp_name=0), dict(ignore_last=1), dict(keep_local="no"),
                dict(out_suffix=3)):
        with pytest.raises(ConfigError):
            LoggerHook(**bad)
    hook = LoggerHook(interval=7, ignore_last=False, interval_exp_name=50, out_dir="/tmp/logs", out_suffix=".log",
                      keep_local=False, log_metric_by_epoch=False)
    assert (hook.interval, hook.ignore_last, hook.interval_exp_name, hook.out_dir, hook.out_suffix,
            hook.keep_local, hook.log_metric_by_epoch) == (7, False, 50, "/tmp/logs", ".log", False, False)
