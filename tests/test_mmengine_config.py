"""MMEngine 0.10.7 configs behave as in MMEngine: ``--cfg-options``, base references, ConfigDict, metrics.

Each expected value is what MMEngine 0.10.7 itself gives for the same input (``DictAction`` +
``Config.merge_from_dict``, ``Config.fromfile``, ``ConfigDict``, ``BaseMetric``/``Evaluator``),
noted as "MMEngine 0.10.7 gives ...".
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

import pytest

import cockpit.dist
from cockpit.cfg_options import CfgOptionsAction, parse_option_value
from cockpit.config import Config, ConfigDict
from cockpit.errors import ConfigError
from cockpit.evaluator import Accuracy, BaseMetric, Evaluator


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def cfg_file(tmp_path) -> Path:
    return write(tmp_path / "cfg.py", """
        a = dict(b=0, keep='me')
        model = dict(type='Net', dims=[8, 4], layers=[dict(width=1), dict(width=2)])
        custom_hooks = [dict(type='A', priority=50), dict(type='B', priority=60)]
        lr = 0.1
        x = 0
    """)


# --- --cfg-options values: MMEngine's DictAction ------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("false", False),  # MMEngine 0.10.7 gives False (not the truthy string 'false')
    ("FALSE", False),  # MMEngine 0.10.7 gives False
    ("true", True),  # MMEngine 0.10.7 gives True
    ("None", None),  # MMEngine 0.10.7 gives None
    ("none", "none"),  # MMEngine 0.10.7 gives 'none': only exactly None is None
    ("1,2", [1, 2]),  # MMEngine 0.10.7 gives [1, 2]
    ("1,", [1]),  # MMEngine 0.10.7 gives [1]
    ("[(1,2),(3,4)]", [(1, 2), (3, 4)]),  # MMEngine 0.10.7 gives [(1, 2), (3, 4)]
    ("[(1, 2), [a, b], c]", [(1, 2), ["a", "b"], "c"]),  # MMEngine 0.10.7 gives [(1, 2), ['a', 'b'], 'c']
    ("(1)", (1,)),  # MMEngine 0.10.7 gives (1,)
    ("()", ()),  # MMEngine 0.10.7 gives ()
    ("True,false,None", [True, False, None]),  # MMEngine 0.10.7 gives [True, False, None]
    ("'5'", 5),  # MMEngine 0.10.7 gives 5: quotes are stripped, then int() reads it
    ('"[1,2]"', [1, 2]),  # MMEngine 0.10.7 gives [1, 2]
    ("work_dirs/run 1", "work_dirs/run1"),  # MMEngine 0.10.7 gives 'work_dirs/run1': spaces are dropped
    ("1_000", 1000),  # MMEngine 0.10.7 gives 1000 (int() reads it)
    ("0x10", "0x10"),  # MMEngine 0.10.7 gives '0x10' (neither int() nor float() reads it)
    ("1e-3", 0.001),  # MMEngine 0.10.7 gives 0.001
    ("1.", 1.0),  # MMEngine 0.10.7 gives 1.0
    ("True1", "True1"),  # MMEngine 0.10.7 gives 'True1'
    ("{a}", "{a}"),  # MMEngine 0.10.7 gives '{a}'
    ("", ""),  # MMEngine 0.10.7 gives ''
])
def test_option_values_read_as_mmengine_dict_action(text, expected):
    value = parse_option_value(text)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, list):
        assert [type(v) for v in value] == [type(v) for v in expected]


def test_inf_and_nan_are_floats():
    # MMEngine 0.10.7 gives float('inf') and float('nan') (float() reads them).
    assert parse_option_value("inf") == math.inf
    assert math.isnan(parse_option_value("nan"))


def test_false_option_is_false_in_the_config(cfg_file):
    cfg = Config.fromfile(cfg_file, ["model.use_bias=false", "a.b=None"])
    # MMEngine 0.10.7 gives model.use_bias == False and a.b is None.
    assert cfg.model.use_bias is False
    assert cfg.a.b is None


@pytest.mark.parametrize("text", ["[1,2", "(1,2))", "f(1,2)", "(1,2)x"])
def test_unreadable_values_are_config_errors_naming_the_key(cfg_file, text):
    # MMEngine 0.10.7 fails with an AssertionError ("Imbalanced brackets") or a RecursionError.
    with pytest.raises(ConfigError) as info:
        Config.fromfile(cfg_file, [f"model.dims={text}"])
    assert info.value.key == "model.dims"
    assert "fix:" in str(info.value)


# --- --cfg-options keys: Config.merge_from_dict(allow_list_keys=True) -----------------------------
def test_number_in_a_key_indexes_a_list(cfg_file):
    cfg = Config.fromfile(cfg_file, ["model.layers.0.width=3", "custom_hooks.1.priority=10"])
    # MMEngine 0.10.7 gives layers [{'width': 3}, {'width': 2}] and the second hook at priority 10.
    assert cfg.to_dict()["model"]["layers"] == [{"width": 3}, {"width": 2}]
    assert cfg.to_dict()["custom_hooks"] == [dict(type="A", priority=50), dict(type="B", priority=10)]
    assert isinstance(cfg.model.layers[0], ConfigDict)


def test_a_dict_at_a_list_index_merges_into_the_item(cfg_file):
    cfg = Config.fromfile(cfg_file)
    cfg.merge_from_dict({"custom_hooks.0": dict(type="C")})
    # MMEngine 0.10.7 gives [{'type': 'C', 'priority': 50}, {'type': 'B', 'priority': 60}].
    assert cfg.to_dict()["custom_hooks"] == [dict(type="C", priority=50), dict(type="B", priority=60)]


def test_merge_from_dict_list_keys_can_be_turned_off(cfg_file):
    cfg = Config.fromfile(cfg_file)
    cfg.merge_from_dict({"model.layers.1.width": 7})
    # MMEngine 0.10.7 gives layers [{'width': 1}, {'width': 7}] (allow_list_keys defaults to True).
    assert cfg.to_dict()["model"]["layers"] == [{"width": 1}, {"width": 7}]
    # MMEngine 0.10.7 raises TypeError ("... cannot inherit from base ...") with allow_list_keys=False.
    with pytest.raises(ConfigError, match="is a list"):
        cfg.merge_from_dict({"model.layers.1.width": 8}, allow_list_keys=False)


def test_a_number_key_into_a_dict_is_a_string_key(cfg_file):
    cfg = Config.fromfile(cfg_file, ["a.0=5"])
    # MMEngine 0.10.7 gives a == {'b': 0, 'keep': 'me', '0': 5}.
    assert cfg.to_dict()["a"] == {"b": 0, "keep": "me", "0": 5}


# --- several --cfg-options flags -------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cockpit run")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, default=[])
    return parser


def test_several_flags_accumulate(cfg_file):
    args = parser().parse_args(["--cfg-options", "a.b=1", "x=1,2", "--cfg-options", "lr=2", "model.act=false"])
    assert args.cfg_options == ["a.b=1", "x=1,2", "lr=2", "model.act=false"]
    cfg = Config.fromfile(cfg_file, args.cfg_options)
    # MMEngine 0.10.7 gives a.b == 1, x == [1, 2], lr == 2 and model.act == False: both flags apply.
    assert (cfg.a.b, cfg.x, cfg.lr, cfg.model.act) == (1, [1, 2], 2, False)


def test_a_later_flag_wins(cfg_file):
    args = parser().parse_args(["--cfg-options", "lr=1", "--cfg-options", "lr=2"])
    # MMEngine 0.10.7 gives lr == 2.
    assert Config.fromfile(cfg_file, args.cfg_options).lr == 2


def test_default_list_is_not_shared():
    first = parser()
    default = first._actions[-1].default
    first.parse_args(["--cfg-options", "lr=1"])
    assert default == []


@pytest.mark.parametrize(("option", "words"), [("noequals", "not key=value"), ("x=[1,2", "unbalanced")])
def test_bad_flag_is_a_usage_error_naming_the_option(capsys, option, words):
    with pytest.raises(SystemExit):
        parser().parse_args(["--cfg-options", option])
    err = capsys.readouterr().err
    assert option in err and words in err and "fix:" in err


# --- base references and predefined variables --------------------------------------------------
@pytest.fixture
def based(tmp_path) -> Path:
    write(tmp_path / "configs" / "_base_" / "base.py", """
        lr = 0.01
        model = dict(type='Net', depth=18, layers=[dict(w=1), dict(w=2)])
        train_pipeline = [dict(type='Load'), dict(type='Flip', p=0.5)]
        where = '{{ fileDirname }}|{{fileBasename}}|{{fileBasenameNoExtension}}|{{fileExtname}}'
    """)
    return tmp_path / "configs"


def test_base_variable_in_an_expression(based):
    child = write(based / "child.py", """
        _base_ = './_base_/base.py'
        lr = _base_.lr * 2
        depth = _base_.model.depth + _base_['model']['depth']
    """)
    cfg = Config.fromfile(child)
    # MMEngine 0.10.7 gives lr == 0.02 and depth == 36.
    assert cfg.lr == pytest.approx(0.02)
    assert cfg.depth == 36
    assert "_base_" not in cfg


def test_changing_a_base_value_through_base(based):
    child = write(based / "child.py", """
        _base_ = './_base_/base.py'
        _base_.model.depth = 50
    """)
    # MMEngine 0.10.7 gives model.depth == 50.
    assert Config.fromfile(child).model.depth == 50


def test_double_brace_base_references(based):
    child = write(based / "child.py", """
        _base_ = './_base_/base.py'
        model = {{_base_.model}}
        pipelines = [{{_base_.train_pipeline}}, {{ _base_.model.type }}]
        nested = dict(m={{_base_.model.layers}}, t=({{_base_.lr}},))
    """)
    cfg = Config.fromfile(child)
    # MMEngine 0.10.7 gives these values, with the base keys first, then the child's new keys.
    assert cfg.to_dict() == {
        "lr": 0.01,
        "model": {"type": "Net", "depth": 18, "layers": [{"w": 1}, {"w": 2}]},
        "train_pipeline": [{"type": "Load"}, {"type": "Flip", "p": 0.5}],
        "where": f"{based / '_base_'}|base.py|base|.py",
        "pipelines": [[{"type": "Load"}, {"type": "Flip", "p": 0.5}], "Net"],
        "nested": {"m": [{"w": 1}, {"w": 2}], "t": (0.01,)},
    }
    assert list(cfg) == ["lr", "model", "train_pipeline", "where", "pipelines", "nested"]
    assert isinstance(cfg.nested.m[0], ConfigDict)
    cfg.merge_from_options(["pipelines.0.0.type=Other"])
    assert cfg.train_pipeline[0].type == "Load"  # a reference is a copy, not the same object


def test_predefined_variables(based):
    child = write(based / "exp_1.py", """
        work_dir = './work_dirs/{{fileBasenameNoExtension}}'
        me = '{{fileDirname}}/{{ fileBasename }}'
        ext = '{{fileExtname}}'
    """)
    cfg = Config.fromfile(child)
    # MMEngine 0.10.7 gives './work_dirs/exp_1', the absolute path of the file, and '.py'.
    assert cfg.work_dir == "./work_dirs/exp_1"
    assert cfg.me == str(based / "exp_1.py")
    assert cfg.ext == ".py"


def test_environment_variables(based, monkeypatch):
    child = write(based / "env.py", """
        data_root = '{{$COCKPIT_TEST_ROOT:/default/data}}/images'
        num_classes = {{'$COCKPIT_TEST_NUM:80'}}
    """)
    monkeypatch.delenv("COCKPIT_TEST_ROOT", raising=False)
    monkeypatch.delenv("COCKPIT_TEST_NUM", raising=False)
    cfg = Config.fromfile(child)
    # MMEngine 0.10.7 gives '/default/data/images' and 80.
    assert (cfg.data_root, cfg.num_classes) == ("/default/data/images", 80)
    monkeypatch.setenv("COCKPIT_TEST_ROOT", "/env/root")
    monkeypatch.setenv("COCKPIT_TEST_NUM", "3")
    cfg = Config.fromfile(child)
    # MMEngine 0.10.7 gives '/env/root/images' and 3.
    assert (cfg.data_root, cfg.num_classes) == ("/env/root/images", 3)


def test_missing_environment_variable_without_default(based, monkeypatch):
    child = write(based / "env.py", "data_root = '{{$COCKPIT_TEST_UNSET:}}'\n")
    monkeypatch.delenv("COCKPIT_TEST_UNSET", raising=False)
    # MMEngine 0.10.7 raises KeyError: "`COCKPIT_TEST_UNSET` cannot be found in `os.environ`".
    with pytest.raises(ConfigError, match="COCKPIT_TEST_UNSET") as info:
        Config.fromfile(child)
    assert "fix:" in str(info.value)


def test_missing_base_reference_names_the_key(based):
    child = write(based / "child.py", """
        _base_ = './_base_/base.py'
        model = {{_base_.modle}}
    """)
    # MMEngine 0.10.7 raises KeyError('modle').
    with pytest.raises(ConfigError, match="modle") as info:
        Config.fromfile(child)
    assert info.value.file == str(child.resolve())
    assert "did you mean {{_base_.model}}" in str(info.value)


def test_base_reference_inside_a_string_is_an_error(based):
    child = write(based / "child.py", """
        _base_ = './_base_/base.py'
        name = 'lr_{{_base_.lr}}'
    """)
    # MMEngine 0.10.7 gives name == 'lr_"_lr_<6 random hex digits>"' (its placeholder text).
    with pytest.raises(ConfigError, match="inside a string") as info:
        Config.fromfile(child)
    assert "fix:" in str(info.value)


def test_deprecation_key_warns_and_is_not_a_key(based):
    child = write(based / "old.py", """
        _deprecation_ = dict(expected='new.py', reference='https://example.invalid/pr')
        lr = 1
    """)
    # MMEngine 0.10.7 warns "The config file ... will be deprecated in the future. Please use new.py instead." and drops the key.
    with pytest.warns(DeprecationWarning, match="Please use new.py instead"):
        cfg = Config.fromfile(child)
    assert dict(cfg) == {"lr": 1}


# --- ConfigDict --------------------------------------------------------------------------------
def test_update_wraps_and_merges_nested_dicts():
    cfg = Config(dict(model=dict(backbone=dict(type="ResNet", depth=18), neck=None)))
    cfg.update(model=dict(backbone=dict(depth=50)), env_cfg=dict(dist_cfg=dict(backend="gloo")))
    # MMEngine 0.10.7 gives model.backbone == {'type': 'ResNet', 'depth': 50} (update merges dicts), neck kept.
    assert cfg.model.backbone.to_dict() == {"type": "ResNet", "depth": 50}
    assert cfg.model.neck is None
    assert cfg.env_cfg.dist_cfg.backend == "gloo"
    cfg.update({"model": 3})
    assert cfg.model == 3  # MMEngine 0.10.7 gives 3: a non-dict replaces


def test_setdefault_and_item_assignment_wrap_dicts():
    cfg = ConfigDict()
    assert cfg.setdefault("env_cfg", dict(dist_cfg=dict(backend="gloo"))).dist_cfg.backend == "gloo"
    assert isinstance(cfg.env_cfg, ConfigDict)
    cfg["a"] = {"b": {"c": 1}}
    cfg.lst = [dict(x=1), (dict(y=2),)]
    # MMEngine 0.10.7 gives ConfigDicts all the way down, also inside lists and tuples.
    assert cfg.a.b.c == 1
    assert cfg.lst[0].x == 1 and cfg.lst[1][0].y == 2


def test_or_copy_pop_and_del_as_mmengine():
    cfg = ConfigDict(n=dict(x=dict(y=1)), keep=1)
    merged = cfg | {"n": {"x": {"v": 3}}}
    # MMEngine 0.10.7 gives n.x == {'y': 1, 'v': 3} in the result and leaves cfg alone.
    assert merged.n.x.to_dict() == {"y": 1, "v": 3}
    assert cfg.n.x.to_dict() == {"y": 1}
    cfg |= {"n": {"x": {"w": 2}}}
    assert cfg.n.x.to_dict() == {"y": 1, "w": 2}  # MMEngine 0.10.7 gives {'y': 1, 'w': 2}
    assert type(cfg.copy()) is ConfigDict  # MMEngine 0.10.7 gives a ConfigDict
    assert cfg.pop("missing") is None  # MMEngine 0.10.7 gives None
    del cfg.keep
    assert "keep" not in cfg


def test_config_copy_keeps_the_filename(tmp_path):
    cfg = Config.fromfile(write(tmp_path / "cfg.py", "a = dict(b=1)\n"))
    assert cfg.copy().filename == cfg.filename
    assert isinstance(cfg.copy(), Config)


# --- BaseMetric and Evaluator ----------------------------------------------------------------------
class ToyMetric(BaseMetric):
    """An OpenMMLab-style metric: passes collect_device and prefix on by keyword."""

    default_prefix = "toy"

    def __init__(self, collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples) -> None:
        self.results.append(len(data_samples))

    def compute_metrics(self, results) -> dict:
        return dict(n=sum(results), batches=len(results))


class Unprefixed(ToyMetric):
    default_prefix = None


def test_metric_accepts_collect_device_and_prefix():
    # MMEngine 0.10.7 gives prefixes 'cls', 'toy', 'toy' (an empty prefix falls back) and None.
    assert ToyMetric(collect_device="gpu", prefix="cls").prefix == "cls"
    assert ToyMetric().prefix == "toy"
    assert ToyMetric(prefix="").prefix == "toy"
    assert Unprefixed().prefix is None
    assert Accuracy(topk=1, collect_device="cpu", prefix="acc").prefix == "acc"


def test_evaluator_names_metrics_prefix_slash_key():
    evaluator = Evaluator([ToyMetric(), ToyMetric(prefix="other"), Unprefixed()])
    evaluator.process([1, 2, 3])
    evaluator.process([4])
    # MMEngine 0.10.7 gives {'toy/n': 4, 'toy/batches': 2, 'other/n': 4, 'other/batches': 2, 'n': 4, 'batches': 2}.
    assert evaluator.evaluate(4) == {"toy/n": 4, "toy/batches": 2, "other/n": 4, "other/batches": 2,
                                     "n": 4, "batches": 2}


def test_evaluate_size_drops_results_past_it():
    evaluator = Evaluator(ToyMetric())
    evaluator.process([1, 2, 3])
    evaluator.process([4])
    # MMEngine 0.10.7 gives {'toy/n': 3, 'toy/batches': 1}: collect_results keeps the first `size` results.
    assert evaluator.evaluate(1) == {"toy/n": 3, "toy/batches": 1}


def test_results_of_all_ranks_come_back_in_dataset_order(monkeypatch):
    """Rank r's sampler takes samples r, r + 2, ...: MMEngine's collect_results interleaves them back."""

    class Order(BaseMetric):
        def process(self, data_batch, data_samples) -> None:
            self.results.extend(data_samples)

        def compute_metrics(self, results) -> dict:
            return {"order": results}

    monkeypatch.setattr(cockpit.dist, "all_gather_objects", lambda part: [[0, 2, 4], [1, 3]])
    metric = Order()
    metric.process(None, [0, 2, 4])
    # MMEngine 0.10.7 gives [0, 1, 2, 3, 4] for size 5 and [0, 1, 2, 3] for size 4.
    assert metric.evaluate(5) == {"order": [0, 1, 2, 3, 4]}
    metric.process(None, [0, 2, 4])
    assert metric.evaluate(4) == {"order": [0, 1, 2, 3]}


def test_dataset_meta_reaches_every_metric():
    evaluator = Evaluator([ToyMetric(), ToyMetric(prefix="b")])
    evaluator.dataset_meta = dict(classes=("cat", "dog"))
    # MMEngine 0.10.7 gives each metric dataset_meta == {'classes': ('cat', 'dog')}.
    assert [m.dataset_meta for m in evaluator.metrics] == [dict(classes=("cat", "dog"))] * 2


def test_collect_dir_needs_cpu_and_positional_prefix_is_refused():
    # MMEngine 0.10.7 raises ValueError("`collec_dir` could only be configured when `collect_device='cpu'`").
    with pytest.raises(ValueError, match="collect_dir"):
        BaseMetric(collect_device="gpu", collect_dir="/tmp/x")
    with pytest.raises(ValueError, match="prefix=") as info:
        BaseMetric("cls")
    assert "collect_device" in str(info.value)
