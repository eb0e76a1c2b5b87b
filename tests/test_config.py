"""Config files: plain Python, ``_base_`` inheritance, ``--cfg-options`` overrides, dumping."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import torch

from cockpit.build import Builder
from cockpit.config import Config, ConfigDict, merge_dicts
from cockpit.errors import ConfigError


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (its first line is line 1) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# --- plain Python ----------------------------------------------------------------------
def test_module_level_names_are_the_config(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", """
        import math
        import os.path
        from collections import OrderedDict
        from torch import nn

        def scaled(x):
            return x * 2

        class Helper:
            pass

        lr = scaled(0.05)
        widths = [2 ** i for i in range(3)]
        name = f"run_{len(widths)}"
        model = dict(type=nn.Linear, in_features=4, out_features=math.floor(2.7))
        _hidden_by_convention = 1
    """)
    cfg = Config.fromfile(cfg_file)
    assert set(cfg) == {"lr", "widths", "name", "model", "_hidden_by_convention"}
    assert cfg["lr"] == pytest.approx(0.1)
    assert cfg["widths"] == [1, 2, 4]
    assert cfg["name"] == "run_3"
    assert cfg["model"]["type"] is torch.nn.Linear
    assert cfg["model"]["out_features"] == 2
    assert cfg.filename == str(cfg_file.resolve())


def test_lambdas_are_functions_not_keys(tmp_path):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", """
        square = lambda x: x * x
        value = square(3)
    """))
    assert dict(cfg) == {"value": 9}


def test_builtin_functions_imported_at_top_level_are_not_keys(tmp_path):
    # ``from math import sqrt`` is a function imported into the config, just like
    # ``from os.path import join``; neither is a config key.
    cfg = Config.fromfile(write(tmp_path / "cfg.py", """
        from math import sqrt
        from os.path import join
        from torch import randn
        side = sqrt(16)
    """))
    assert set(cfg) == {"side"}


def test_nested_dicts_become_config_dicts_with_attribute_access(tmp_path):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", """
        train_cfg = dict(max_epochs=3, inner=dict(k=1))
        hooks = [dict(type='LoggerHook')]
    """))
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.train_cfg.inner.k == 1
    assert isinstance(cfg.hooks[0], ConfigDict) and cfg.hooks[0].type == "LoggerHook"
    cfg.train_cfg.max_epochs = 7
    assert cfg["train_cfg"]["max_epochs"] == 7
    plain = cfg.to_dict()
    assert type(plain["train_cfg"]) is dict and type(plain["hooks"][0]) is dict
    with pytest.raises(AttributeError, match="no key 'missing'"):
        cfg.missing  # noqa: B018


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as info:
        Config.fromfile(tmp_path / "nope.py")
    assert "nope.py" in str(info.value)
    assert "fix:" in str(info.value)


def test_a_config_must_be_a_python_file(tmp_path):
    text_file = write(tmp_path / "cfg.txt", "lr = 1\n")
    with pytest.raises(ConfigError, match="not a .py file"):
        Config.fromfile(text_file)


# --- errors in the file itself ---------------------------------------------------------
def test_syntax_error_names_the_file_and_line(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", """
        lr = 0.1
        momentum = 0.9
        model = dict(type='Net', width=(
    """)
    with pytest.raises(ConfigError) as info:
        Config.fromfile(cfg_file)
    message = str(info.value)
    assert f"{cfg_file.resolve()}:3" in message
    assert "syntax error on line 3" in message
    assert "model = dict(type='Net', width=(" in message
    assert "\n  fix: " in message


def test_runtime_error_names_the_file_and_line(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", """
        lr = 0.1
        momentum = 0.9

        batch_size = undefined_name * 2
    """)
    with pytest.raises(ConfigError) as info:
        Config.fromfile(cfg_file)
    message = str(info.value)
    assert f"{cfg_file.resolve()}:4" in message
    assert "line 4" in message
    assert "NameError" in message and "undefined_name" in message
    assert "\n  fix: " in message
    assert isinstance(info.value.__cause__, NameError)


def test_runtime_error_inside_a_config_function_points_at_the_raising_line(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", """
        def width(n):
            if n < 0:
                raise ValueError('negative width')
            return n

        hidden = width(-1)
    """)
    with pytest.raises(ConfigError) as info:
        Config.fromfile(cfg_file)
    assert f"{cfg_file.resolve()}:3" in str(info.value)
    assert "ValueError: negative width" in str(info.value)


def test_runtime_error_in_a_base_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.py", """
        a = 1
        b = 1 / 0
    """)
    child = write(tmp_path / "child.py", "_base_ = './base.py'\nc = 3\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(child)
    assert f"{base.resolve()}:2" in str(info.value)
    assert "ZeroDivisionError" in str(info.value)


# --- _base_ ---------------------------------------------------------------------------
def test_base_path_is_relative_to_the_file_not_the_cwd(tmp_path, monkeypatch):
    write(tmp_path / "configs" / "_base_" / "schedule.py", """
        train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=1)
        lr = 0.1
    """)
    child = write(tmp_path / "configs" / "exp.py", """
        _base_ = './_base_/schedule.py'
        lr = 0.02
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = Config.fromfile(child)
    assert cfg.to_dict() == {"train_cfg": {"by_epoch": True, "max_epochs": 12, "val_interval": 1}, "lr": 0.02}
    assert "_base_" not in cfg


def test_base_as_a_list_combines_all_bases(tmp_path):
    write(tmp_path / "model.py", "model = dict(type='Net', width=4)\n")
    write(tmp_path / "data.py", "train_dataloader = dict(batch_size=8)\n")
    child = write(tmp_path / "exp.py", """
        _base_ = ['./model.py', './data.py']
        train_dataloader = dict(batch_size=16)
    """)
    cfg = Config.fromfile(child)
    assert cfg.to_dict() == {"model": {"type": "Net", "width": 4}, "train_dataloader": {"batch_size": 16}}


def test_base_as_a_tuple_is_accepted(tmp_path):
    write(tmp_path / "a.py", "a = 1\n")
    child = write(tmp_path / "exp.py", "_base_ = ('./a.py',)\nb = 2\n")
    assert Config.fromfile(child).to_dict() == {"a": 1, "b": 2}


def test_nested_bases_resolve_each_path_relative_to_its_own_file(tmp_path):
    write(tmp_path / "root.py", """
        model = dict(type='Net', width=4, depth=2)
        seed = 0
    """)
    write(tmp_path / "family" / "mid.py", """
        _base_ = '../root.py'
        model = dict(width=8)
        mid_only = True
    """)
    child = write(tmp_path / "family" / "exps" / "leaf.py", """
        _base_ = ['../mid.py']
        model = dict(depth=3)
        seed = 7
    """)
    cfg = Config.fromfile(child)
    assert cfg.to_dict() == {
        "model": {"type": "Net", "width": 8, "depth": 3},
        "seed": 7,
        "mid_only": True,
    }


def test_dicts_merge_recursively_and_other_values_are_replaced(tmp_path):
    write(tmp_path / "base.py", """
        optim_wrapper = dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            clip_grad=dict(max_norm=1.0),
        )
        custom_hooks = [dict(type='A'), dict(type='B')]
        scalar = dict(a=1)
    """)
    child = write(tmp_path / "exp.py", """
        _base_ = './base.py'
        optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))
        custom_hooks = [dict(type='C')]
        scalar = 5
    """)
    cfg = Config.fromfile(child)
    assert cfg.optim_wrapper.to_dict() == {
        "type": "OptimWrapper",
        "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "clip_grad": {"max_norm": 1.0},
    }
    assert cfg.to_dict()["custom_hooks"] == [{"type": "C"}]
    assert cfg.scalar == 5


def test_delete_true_replaces_the_base_dict(tmp_path):
    write(tmp_path / "base.py", """
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True))
        model = dict(type='Net', width=4)
    """)
    child = write(tmp_path / "exp.py", """
        _base_ = './base.py'
        optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3))
        model = dict(_delete_=False, width=8)
    """)
    cfg = Config.fromfile(child)
    assert cfg.optim_wrapper.to_dict() == {"optimizer": {"type": "AdamW", "lr": 1e-3}}
    assert cfg.model.to_dict() == {"type": "Net", "width": 8}


def test_delete_key_never_reaches_the_config(tmp_path):
    write(tmp_path / "base.py", "a = dict(x=1)\n")
    child = write(tmp_path / "exp.py", """
        _base_ = './base.py'
        a = dict(_delete_=True, y=dict(_delete_=True, z=1))
        fresh = dict(_delete_=True, k=2)
    """)
    cfg = Config.fromfile(child)
    assert cfg.to_dict() == {"a": {"y": {"z": 1}}, "fresh": {"k": 2}}


def test_merge_dicts_does_not_modify_its_inputs():
    base = {"a": {"x": 1, "y": 2}}
    child = {"a": {"_delete_": True, "z": 3}}
    assert merge_dicts(base, child) == {"a": {"z": 3}}
    assert base == {"a": {"x": 1, "y": 2}}
    assert child == {"a": {"_delete_": True, "z": 3}}


def test_base_cycle_is_a_config_error_naming_the_files(tmp_path):
    first = write(tmp_path / "a.py", "_base_ = './b.py'\nx = 1\n")
    second = write(tmp_path / "b.py", "_base_ = './a.py'\ny = 2\n")
    with pytest.raises(ConfigError, match="cycle") as info:
        Config.fromfile(first)
    message = str(info.value)
    assert str(first.resolve()) in message and str(second.resolve()) in message
    assert info.value.key == "_base_"
    assert "\n  fix: " in message


def test_a_file_that_bases_itself_is_a_cycle(tmp_path):
    selfish = write(tmp_path / "self.py", "_base_ = './self.py'\n")
    with pytest.raises(ConfigError, match="cycle"):
        Config.fromfile(selfish)


def test_a_diamond_of_bases_is_not_a_cycle(tmp_path):
    write(tmp_path / "root.py", "root = 1\n")
    write(tmp_path / "left.py", "_base_ = './root.py'\nleft = 2\n")
    write(tmp_path / "right.py", "right = 3\n")
    write(tmp_path / "mid.py", "_base_ = ['./left.py']\n")
    child = write(tmp_path / "exp.py", "_base_ = ['./mid.py', './right.py']\n")
    assert Config.fromfile(child).to_dict() == {"root": 1, "left": 2, "right": 3}


def test_missing_base_names_the_file_that_references_it(tmp_path):
    child = write(tmp_path / "exp.py", "_base_ = './missing_base.py'\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(child)
    error = info.value
    assert error.file == str(child.resolve())
    assert error.key == "_base_"
    message = str(error)
    assert message.startswith(f"{child.resolve()}: _base_: ")
    assert str((tmp_path / "missing_base.py").resolve()) in message
    assert "\n  fix: " in message


def test_missing_nested_base_names_the_intermediate_file(tmp_path):
    mid = write(tmp_path / "sub" / "mid.py", "_base_ = './gone.py'\n")
    child = write(tmp_path / "exp.py", "_base_ = './sub/mid.py'\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(child)
    assert info.value.file == str(mid.resolve())
    assert str((tmp_path / "sub" / "gone.py").resolve()) in str(info.value)


@pytest.mark.parametrize("value", ["3", "[1, 2]", "dict(a='./x.py')"])
def test_base_must_be_a_path_or_a_list_of_paths(tmp_path, value):
    child = write(tmp_path / "exp.py", f"_base_ = {value}\n")
    with pytest.raises(ConfigError, match="_base_ must be a path or a list") as info:
        Config.fromfile(child)
    assert info.value.file == str(child.resolve())
    assert "fix:" in str(info.value)


def test_two_bases_defining_the_same_key_is_an_error(tmp_path):
    write(tmp_path / "a.py", "lr = 1\n")
    write(tmp_path / "b.py", "lr = 2\n")
    child = write(tmp_path / "exp.py", "_base_ = ['./a.py', './b.py']\n")
    with pytest.raises(ConfigError, match="lr") as info:
        Config.fromfile(child)
    assert info.value.file == str(child.resolve())


# --- --cfg-options ----------------------------------------------------------------------
@pytest.fixture
def base_cfg_file(tmp_path):
    return write(tmp_path / "cfg.py", """
        a = dict(b=0, keep='me')
        train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
        model = dict(type='Net', dims=[8, 4])
        custom_hooks = [dict(type='A', priority=50), dict(type='B', priority=60)]
        lr = 0.1
    """)


def test_fromfile_applies_options_as_python_literals(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["a.b=1", "c=[1,2]", "name=abc"])
    assert cfg.a.b == 1 and isinstance(cfg.a.b, int)
    assert cfg.a.keep == "me"
    assert cfg.c == [1, 2]
    assert cfg.name == "abc"


@pytest.mark.parametrize(("option", "expected"), [
    ("x=5", 5),
    ("x=-3", -3),
    ("x=1.5e-3", 1.5e-3),
    ("x=True", True),
    ("x=None", None),
    ("x=(1, 2)", (1, 2)),
    ("x={'k': [1, 2]}", {"k": [1, 2]}),
    ("x='5'", 5),  # MMEngine's DictAction strips the quotes, then reads an int
    ("x=abc", "abc"),
    ("x=work_dirs/run 1", "work_dirs/run1"),  # and drops every space, as MMEngine does
    ("x=1+", "1+"),
    ("x=", ""),
    ("x=a=b", "a=b"),
    ("  x  =7", 7),
])
def test_option_values_are_literals_or_strings(tmp_path, option, expected):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", "x = 0\n"), [option])
    value = cfg.to_dict()["x"]
    assert value == expected
    assert type(value) is type(expected)


def test_option_overrides_a_leaf_and_keeps_its_siblings(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["train_cfg.max_epochs=5"])
    assert cfg.train_cfg.to_dict() == {"by_epoch": True, "max_epochs": 5, "val_interval": 1}


def test_option_with_a_list_index_path(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["custom_hooks.0.priority=10", "custom_hooks.-1.type=C"])
    assert cfg.to_dict()["custom_hooks"] == [dict(type="A", priority=10), dict(type="C", priority=60)]


def test_option_replacing_a_list_item(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["model.dims.1=16"])
    assert cfg.model.dims == [8, 16]


def test_option_list_index_out_of_range_is_an_error(base_cfg_file):
    with pytest.raises(ConfigError, match="not an index") as info:
        Config.fromfile(base_cfg_file, ["custom_hooks.2.priority=10"])
    assert info.value.file == str(base_cfg_file.resolve())
    assert "custom_hooks.2" in str(info.value)
    assert "fix: use an index from 0 to 1" in str(info.value)


def test_option_list_path_part_must_be_an_index(base_cfg_file):
    with pytest.raises(ConfigError, match="not an index"):
        Config.fromfile(base_cfg_file, ["custom_hooks.first.priority=10"])


def test_option_creates_missing_intermediate_dicts(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["env_cfg.dist_cfg.backend=gloo", "a.extra.deep=1"])
    assert cfg.env_cfg.dist_cfg.backend == "gloo"
    assert isinstance(cfg.env_cfg, ConfigDict)
    assert cfg.a.to_dict() == {"b": 0, "keep": "me", "extra": {"deep": 1}}


def test_option_through_a_none_value_creates_a_dict(tmp_path):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", "val_cfg = None\n"), ["val_cfg.x=1"])
    assert cfg.to_dict() == {"val_cfg": {"x": 1}}


def test_option_through_a_non_dict_is_an_error(base_cfg_file):
    with pytest.raises(ConfigError, match="not a dict") as info:
        Config.fromfile(base_cfg_file, ["lr.value.x=1"])
    assert info.value.key == "lr.value.x"
    assert info.value.file == str(base_cfg_file.resolve())
    assert "fix:" in str(info.value)


def test_option_setting_a_key_inside_a_scalar_is_an_error(base_cfg_file):
    with pytest.raises(ConfigError, match="parent is a float"):
        Config.fromfile(base_cfg_file, ["lr.x=1"])


@pytest.mark.parametrize("option", ["train_cfg.max_epochs", "=5", "noequals"])
def test_option_without_key_value_form_is_a_config_error(base_cfg_file, option):
    with pytest.raises(ConfigError, match="is not key=value") as info:
        Config.fromfile(base_cfg_file, [option])
    assert repr(option) in str(info.value)
    assert info.value.key == "--cfg-options"
    assert "fix:" in str(info.value)


def test_options_apply_in_order(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, ["lr=1", "lr=2"])
    assert cfg.lr == 2


def test_merge_from_options_with_a_mapping(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file)
    cfg.merge_from_options({"a.b": 3, "model.dims": [1], "custom_hooks.1.priority": 5, "new.key": "v"})
    assert cfg.a.to_dict() == {"b": 3, "keep": "me"}
    assert cfg.model.dims == [1]
    assert cfg.custom_hooks[1].priority == 5
    assert cfg.new.key == "v"


def test_merge_from_options_merges_a_dict_value_into_a_dict(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file)
    cfg.merge_from_options({"train_cfg": {"max_epochs": 9}})
    assert cfg.train_cfg.to_dict() == {"by_epoch": True, "max_epochs": 9, "val_interval": 1}


def test_merge_from_options_honours_delete_in_a_dict_value(base_cfg_file):
    # As in a child config (and MMEngine's merge_from_dict): _delete_=True replaces the dict,
    # and the marker itself never becomes a key (it would reach a constructor as an argument).
    cfg = Config.fromfile(base_cfg_file, ["train_cfg={'_delete_': True, 'by_epoch': False, 'max_iters': 5}"])
    assert cfg.train_cfg.to_dict() == {"by_epoch": False, "max_iters": 5}


def test_fromfile_accepts_options_as_a_mapping(base_cfg_file):
    cfg = Config.fromfile(base_cfg_file, {"train_cfg.max_epochs": 4})
    assert cfg.train_cfg.max_epochs == 4


def test_merge_from_options_on_an_in_memory_config():
    cfg = Config(dict(a=dict(b=1)))
    cfg.merge_from_options(["a.c=[1, 2]"])
    assert cfg.to_dict() == {"a": {"b": 1, "c": [1, 2]}}
    assert cfg.filename is None


# --- pretty_text and dump ---------------------------------------------------------------
PLAIN_VALUES = """
    model = dict(type='Net', dims=[64, 32], dropout=0.25, act=None, flag=False)
    train_cfg = dict(by_epoch=True, max_epochs=10)
    name = 'it\\'s "quoted"\\nmultiline'
    negative = -3
    small = 1e-08
    one_tuple = (1,)
    pair = ('a', 2)
    empty_dict = dict()
    empty_list = []
    odd_keys = {'a-b': 1, 3: 'three', 'with space': [dict(x=1)]}
    hooks = [dict(type='A', priority=10), dict(type='B', nested=dict(deep=dict(k=(1, 2))))]
"""


def test_pretty_text_is_python_that_loads_back(tmp_path):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", PLAIN_VALUES))
    out = tmp_path / "dumped" / "out.py"
    out.parent.mkdir()
    cfg.dump(out)
    assert out.read_text() == cfg.pretty_text
    reloaded = Config.fromfile(out)
    assert reloaded.to_dict() == cfg.to_dict()
    assert list(reloaded) == list(cfg)
    assert reloaded.one_tuple == (1,) and isinstance(reloaded.pair, tuple)


def test_pretty_text_names_the_source_file(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", "x = 1\n")
    text = Config.fromfile(cfg_file).pretty_text
    assert text.splitlines()[0] == f"# resolved from {cfg_file.resolve()}"
    assert "x = 1" in text.splitlines()


def test_pretty_text_of_a_config_built_in_memory(tmp_path):
    cfg = Config(dict(lr=0.5, model=dict(type="Net")))
    cfg.dump(tmp_path / "mem.py")
    assert Config.fromfile(tmp_path / "mem.py").to_dict() == {"lr": 0.5, "model": {"type": "Net"}}


def test_pretty_text_after_overrides_and_bases(tmp_path):
    write(tmp_path / "base.py", "model = dict(type='Net', width=4)\n")
    child = write(tmp_path / "exp.py", "_base_ = './base.py'\nmodel = dict(width=8)\n")
    cfg = Config.fromfile(child, ["model.depth=3"])
    cfg.dump(tmp_path / "out.py")
    assert Config.fromfile(tmp_path / "out.py").to_dict() == {"model": {"type": "Net", "width": 8, "depth": 3}}
    assert "_base_" not in (tmp_path / "out.py").read_text()


def test_classes_and_functions_are_dumped_as_dotted_paths_that_resolve(tmp_path):
    cfg = Config(dict(
        model=dict(type=torch.nn.Linear, in_features=2, out_features=1),
        optimizer=dict(type=torch.optim.AdamW),
        act=torch.nn.functional.relu,
    ))
    text = cfg.pretty_text
    assert "type='torch.nn.modules.linear.Linear'" in text
    assert "type='torch.optim.adamw.AdamW'" in text
    assert "act = 'torch.nn.functional.relu'" in text
    cfg.dump(tmp_path / "out.py")
    reloaded = Config.fromfile(tmp_path / "out.py")
    builder = Builder(reloaded.filename)
    assert builder.resolve(reloaded.model.type, "model") is torch.nn.Linear
    assert builder.resolve(reloaded.optimizer.type, "optimizer") is torch.optim.AdamW
    assert builder.resolve(reloaded.act, "act") is torch.nn.functional.relu


def test_dict_keys_that_are_python_keywords_dump_to_valid_python(tmp_path):
    # ``lambda`` is a common hyper-parameter name; ``dict(lambda=0.5)`` is not Python.
    cfg = Config(dict(loss=dict(type="Loss", **{"lambda": 0.5, "from": 1}), ok=dict(to=2)))
    cfg.dump(tmp_path / "out.py")
    assert Config.fromfile(tmp_path / "out.py").to_dict() == cfg.to_dict()


def test_non_finite_floats_dump_to_valid_python(tmp_path):
    # e.g. ``param_scheduler = dict(..., end=math.inf)``, or an override ``eta_min=float('nan')``.
    cfg = Config(dict(scheduler=dict(begin=0, end=math.inf), floor=-math.inf))
    cfg.dump(tmp_path / "out.py")
    reloaded = Config.fromfile(tmp_path / "out.py")
    assert reloaded.scheduler.end == math.inf
    assert reloaded.floor == -math.inf
