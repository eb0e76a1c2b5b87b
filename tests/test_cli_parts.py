"""The command line's parts that need no process: comparing a resume's config with the checkpoint's,
``--listen`` addresses, errors told in one line, and the exit code of an interruption."""

from __future__ import annotations

import signal

import pytest

from cockpit.cli import common, config_diff, entry, parser, resume, train
from cockpit.config import Config
from cockpit.errors import CheckpointError, ConfigError


def dumped(**keys) -> str:
    return Config(keys, filename="/x/cfg.py").pretty_text


def test_config_differences_name_each_leaf_that_differs():
    old = dumped(model=dict(type="cfg.Net", hidden=128, act=None), optim_wrapper=dict(optimizer=dict(lr=0.1)),
                 train_cfg=dict(max_epochs=10), work_dir="/a", resume=False, nan=float("nan"), dims=[1, 2])
    new = dumped(model=dict(type="cfg.Net", hidden=64, act=None), optim_wrapper=dict(optimizer=dict(lr=0.1)),
                 train_cfg=dict(max_epochs=20), work_dir="/b", resume="/b/epoch_3.pth", nan=float("nan"),
                 dims=[1, 3], extra=1)
    assert config_diff.config_differences(old, new) == [
        "model.hidden: 128 in the checkpoint, 64 now",
        "dims: [1, 2] in the checkpoint, [1, 3] now",
        "extra: not set in the checkpoint, 1 now",
    ]
    assert config_diff.config_differences(old, old) == []
    assert config_diff.config_differences(None, new) == []  # a checkpoint that records no config


def test_config_values_never_run_the_text_and_survive_reprs_that_are_not_python():
    text = "model = dict(type='cfg.Net', size=(3, 4))\ncall = __import__('os').system('false')\n"
    values = config_diff.config_values(text)
    assert values["model"] == {"type": "cfg.Net", "size": (3, 4)}
    assert values["call"] == "__import__('os').system('false')"  # kept as text, not run
    odd = "a = <cfg.Thing object at 0x7f00aa>\nb = 1\n"
    assert config_diff.config_values(odd) == {"a": "<cfg.Thing object>", "b": "1"}


@pytest.mark.parametrize(("value", "expected"), [
    ("5555", "127.0.0.1:5555"), (":5555", "127.0.0.1:5555"), ("localhost:0", "localhost:0"),
    ("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:7000", "[::1]:7000"),
])
def test_listen_defaults_to_loopback(value, expected):
    assert parser.listen_address(value, remote=False) == expected


def test_listen_on_the_network_needs_the_flag_and_warns(capsys):
    with pytest.raises(common.UsageError, match="--listen-remote"):
        parser.listen_address("0.0.0.0:5555", remote=False)
    assert parser.listen_address("0.0.0.0:5555", remote=True) == "0.0.0.0:5555"
    assert "cockpit: warning: serving on 0.0.0.0:5555" in capsys.readouterr().err


def test_an_override_is_blamed_for_the_error_it_caused():
    error = ConfigError("max_epochs must be a positive int, got 'abc'", file="/x/cfg.py", key="train_cfg.max_epochs",
                        fix="set train_cfg=dict(by_epoch=True, max_epochs=10)")
    blamed = entry._blame_override(error, ["model.hidden=3", "train_cfg.max_epochs=abc"])
    assert str(blamed).startswith("--cfg-options train_cfg.max_epochs=abc: train_cfg.max_epochs: max_epochs must be")
    assert "(the override made train_cfg.max_epochs the str 'abc')" in str(blamed)
    assert "/x/cfg.py" not in str(blamed)
    assert entry._blame_override(error, ["model.hidden=3"]) is error


def test_a_corrupt_checkpoint_is_said_in_one_line_without_the_loaders_advice():
    error = CheckpointError("/w/epoch_3.pth is truncated or corrupt and cannot be loaded (RuntimeError: "
                            "PytorchStreamReader failed ... weights_only ...)")
    assert common.one_line(error) == "/w/epoch_3.pth is corrupt or not a checkpoint (it cannot be read as one)"
    assert "another checkpoint" in entry._checkpoint_hint(error)


def test_a_second_signal_has_its_own_exit_code_even_when_wrapped():
    assert train._interrupted(KeyboardInterrupt("second SIGTERM: exiting at once")) == 128 + signal.SIGTERM
    assert train._interrupted(KeyboardInterrupt()) == 128 + signal.SIGINT
    try:
        try:
            raise KeyboardInterrupt("second SIGHUP: exiting at once")
        except KeyboardInterrupt as inner:
            raise RuntimeError("the zip writer failed") from inner
    except RuntimeError as outer:
        assert train._interrupted(outer) == 128 + signal.SIGHUP
    assert train._interrupted(RuntimeError("no")) is None


def test_the_finished_check_reads_the_config_length():
    assert resume._finished_at({"train_cfg": {"max_epochs": 2}}, {"epoch": 2, "iter": 16}) == "epoch 2 of 2 (iter 16)"
    assert resume._finished_at({"train_cfg": {"max_epochs": 3}}, {"epoch": 2, "iter": 16}) == ""
    assert resume._finished_at({"train_cfg": {"by_epoch": False, "max_iters": 6}}, {"epoch": 0, "iter": 6}) == \
        "iter 6 of 6"
    assert resume._finished_at({"train_cfg": {"type": "MyLoop", "max_epochs": 1}}, {"epoch": 9, "iter": 9}) == ""


def test_a_forks_options_pass_to_its_training_process_and_name_the_optimizer_settings(tmp_path):
    from cockpit.cli.fork import fork_work_dir, optimizer_options

    checkpoint = tmp_path / "work_dirs" / "cfg" / "epoch_3.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.touch()
    args = parser.build_parser().parse_args(["run", "cfg.py", "--fork-from", str(checkpoint), "--cfg-options",
                                             "optim_wrapper.optimizer.lr=0.01"])
    line = parser.run_args(args)
    assert line[line.index("--fork-from") + 1] == str(checkpoint)
    assert fork_work_dir(checkpoint.parent, checkpoint) == tmp_path / "work_dirs" / "cfg-fork-epoch_3"
    (tmp_path / "work_dirs" / "cfg-fork-epoch_3").mkdir()
    assert fork_work_dir(checkpoint.parent, checkpoint) == tmp_path / "work_dirs" / "cfg-fork-epoch_3-2"
    assert optimizer_options(["optim_wrapper.optimizer.lr: 0.1 in the checkpoint, 0.01 now",
                              "optim_wrapper.optimizer.type: 'SGD' in the checkpoint, 'Adam' now",
                              "model.hidden: 1 in the checkpoint, 2 now"]) == {"lr"}
