"""Plain-Python configs: module-level names are the config.

Supports MMEngine's ``_base_`` inheritance (a path or a list, relative to the
file) with recursive dict merge and ``_delete_=True``, and ``--cfg-options``
overrides such as ``train_cfg.max_epochs=5 model.dims=[64,32]``.
"""

from __future__ import annotations

import ast
import copy
import inspect
import keyword
import math
import os
import traceback
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cockpit.errors import ConfigError

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"


class ConfigDict(dict):
    """A dict whose keys can also be read and written as attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            dict.__setitem__(self, key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __deepcopy__(self, memo: dict) -> ConfigDict:
        return type(self)({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        """A plain nested dict copy."""
        return _unwrap(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, ConfigDict):
        return value
    if isinstance(value, dict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


class Config(ConfigDict):
    """A run's configuration, remembering the file it came from.

    Build one with ``Config.fromfile(path)`` or ``Config(dict(...))``.
    """

    def __init__(self, cfg: Mapping[str, Any] | None = None, filename: str | None = None) -> None:
        super().__init__(cfg or {})
        object.__setattr__(self, "filename", filename)

    def __deepcopy__(self, memo: dict) -> Config:
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()}, self.filename)

    @classmethod
    def fromfile(cls, path: str | os.PathLike, cfg_options: Iterable[str] | Mapping[str, Any] | None = None) -> Config:
        """Load ``path`` with its ``_base_`` files, then apply ``cfg_options``.

        Raises:
            ConfigError: a missing file, a syntax or run-time error in it, a bad base or override.
        """
        path = Path(path).resolve()
        cfg = cls(_load_file(path, ()), filename=str(path))
        if cfg_options:
            cfg.merge_from_options(cfg_options)
        return cfg

    def merge_from_options(self, options: Iterable[str] | Mapping[str, Any]) -> None:
        """Apply overrides: ``['a.b=1', 'c=[1,2]']`` or ``{'a.b': 1}``.

        Values are parsed as Python literals; anything else is kept as a string.
        """
        if isinstance(options, Mapping):
            items = list(options.items())
        else:
            items = [_parse_option(option) for option in options]
        for key, value in items:
            _set_by_path(self, key, value, self.filename)

    @property
    def pretty_text(self) -> str:
        """The resolved config as Python source (classes written as dotted paths)."""
        lines = []
        if self.filename:
            lines.append(f"# resolved from {self.filename}")
        for key, value in self.items():
            lines.append(f"{key} = {_format(value, 0)}")
        return "\n".join(lines) + "\n"

    def dump(self, path: str | os.PathLike) -> None:
        """Write ``pretty_text`` to ``path``."""
        Path(path).write_text(self.pretty_text)


# --- loading -------------------------------------------------------------------
def _load_file(path: Path, chain: tuple[Path, ...]) -> dict:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_base_ files include each other in a cycle: {cycle}", file=str(chain[-1]),
                          key=BASE_KEY, fix="remove one of the _base_ entries")
    if not path.is_file():
        where = str(chain[-1]) if chain else None
        raise ConfigError(f"config file {path} does not exist", file=where,
                          key=BASE_KEY if chain else None,
                          fix="check the path (a _base_ path is relative to the file that names it)")
    if path.suffix != ".py":
        raise ConfigError(f"config file {path} is not a .py file", fix="Cockpit configs are Python files")
    names = _execute(path)
    bases = names.pop(BASE_KEY, None)
    merged: dict = {}
    if bases is not None:
        if isinstance(bases, (str, os.PathLike)):
            bases = [bases]
        if not isinstance(bases, (list, tuple)) or not all(isinstance(b, (str, os.PathLike)) for b in bases):
            raise ConfigError(f"_base_ must be a path or a list of paths, got {bases!r}", file=str(path),
                              key=BASE_KEY, fix="write _base_ = './base.py' or _base_ = ['./a.py', './b.py']")
        for base in bases:
            base_cfg = _load_file((path.parent / base).resolve(), (*chain, path))
            duplicated = set(merged) & set(base_cfg)
            if duplicated:
                raise ConfigError(f"base files both define {sorted(duplicated)}", file=str(path), key=BASE_KEY,
                                  fix="define each top-level key in one base file only")
            merged.update(base_cfg)
    return merge_dicts(merged, names)


def _execute(path: Path) -> dict:
    source = path.read_text()
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as error:
        line = (error.text or "").rstrip()
        raise ConfigError(f"syntax error on line {error.lineno}: {error.msg}\n    {line}", file=f"{path}:{error.lineno}",
                          fix="correct the Python syntax on that line") from None
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    try:
        exec(code, module.__dict__)
    except Exception as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
        lineno = frames[-1].lineno if frames else "?"
        raise ConfigError(f"running the config failed on line {lineno}: {type(error).__name__}: {error}",
                          file=f"{path}:{lineno}", fix="the config is plain Python: fix the error on that line") from error
    return {
        name: value
        for name, value in module.__dict__.items()
        if not name.startswith("__")
        and not isinstance(value, (types.ModuleType, type))
        and not inspect.isroutine(value)
    }


def merge_dicts(base: Mapping, child: Mapping) -> dict:
    """``child`` merged into a copy of ``base``, recursively; ``_delete_=True`` replaces."""
    result = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping):
            value = dict(value)
            replace = value.pop(DELETE_KEY, False)
            if not replace and isinstance(result.get(key), Mapping):
                result[key] = merge_dicts(result[key], value)
            else:
                result[key] = merge_dicts({}, value)
        else:
            result[key] = value
    return result


# --- overrides -----------------------------------------------------------------
def _parse_option(option: str) -> tuple[str, Any]:
    key, sep, text = option.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {option!r} is not key=value", key="--cfg-options",
                          fix="write dotted keys and Python values, e.g. train_cfg.max_epochs=5 model.dims=[64,32]")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    return key.strip(), value


def _set_by_path(cfg: dict, dotted: str, value: Any, filename: str | None) -> None:
    parts = dotted.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = _list_item(node, part, here, filename)
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {'.'.join(parts[:depth])!r} is a {type(node).__name__}, not a dict",
                              file=filename, key=dotted, fix="override the whole value instead")
        if part not in node or node[part] is None:
            node[part] = ConfigDict()
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        index = _list_index(node, last, dotted, filename)
        node[index] = _wrap(value)
    elif isinstance(node, dict):
        if isinstance(value, dict):
            # As in a child config: merge into the existing dict, or replace it with _delete_=True.
            node[last] = merge_dicts({last: node.get(last)} if isinstance(node.get(last), dict) else {},
                                     {last: value})[last]
        else:
            node[last] = value
    else:
        raise ConfigError(f"cannot set {dotted!r}: its parent is a {type(node).__name__}", file=filename, key=dotted,
                          fix="override the whole parent value instead")


def _list_index(node: list, part: str, dotted: str, filename: str | None) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"{part!r} is not an index of a list of {len(node)} items", file=filename, key=dotted,
                          fix=f"use an index from 0 to {len(node) - 1}")
    return int(part)


def _list_item(node: list, part: str, dotted: str, filename: str | None) -> Any:
    return node[_list_index(node, part, dotted, filename)]


# --- dumping -------------------------------------------------------------------
def _format(value: Any, indent: int) -> str:
    pad = "    " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "dict()"
        if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in value):
            items = [f"{pad}{k}={_format(v, indent + 1)}," for k, v in value.items()]
            return "dict(\n" + "\n".join(items) + "\n" + "    " * indent + ")"
        items = [f"{pad}{k!r}: {_format(v, indent + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + "    " * indent + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_format(v, indent + 1) for v in value)
        if isinstance(value, tuple):
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return f"[{inner}]"
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return repr(f"{value.__module__}.{value.__qualname__}")
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)
