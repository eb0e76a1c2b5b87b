"""Plain-Python configs: module-level names are the config.

Reads MMEngine 0.10.7's Python config files the way MMEngine does:

- ``_base_ = './base.py'`` (a path or a list, relative to the file) inherits with a
  recursive dict merge; ``_delete_=True`` replaces a dict instead.
- ``_base_.xxx`` in an expression (``lr = _base_.lr * 2``) reads the merged base configs,
  and ``{{_base_.xxx}}`` stands for a whole base value (``model = {{_base_.model}}``).
- ``{{fileDirname}}``, ``{{fileBasename}}``, ``{{fileBasenameNoExtension}}`` and
  ``{{fileExtname}}`` are replaced by the config file's own path parts, and
  ``{{$NAME:default}}`` by the environment variable ``NAME`` (or ``default``), in the text
  of the file before it runs.
- ``--cfg-options`` overrides have the meaning of MMEngine's ``DictAction`` (see
  :func:`parse_option_value`) and ``Config.merge_from_dict``: ``train_cfg.max_epochs=5``,
  ``model.dims=64,32``, ``model.layers.0.width=3``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import importlib
import inspect
import keyword
import math
import os
import sys
import traceback
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cockpit.cfg_options import parse_option
from cockpit.cfg_references import (
    BASE_KEY,
    pre_substitute_base_references,
    substitute_base_references,
    substitute_environment_variables,
    substitute_predefined_variables,
)
from cockpit.errors import ConfigError

DELETE_KEY = "_delete_"
DEPRECATION_KEY = "_deprecation_"



class ConfigDict(dict):
    """A dict whose keys can also be read and written as attributes.

    As MMEngine's ``ConfigDict``: a plain ``dict`` (or ``OrderedDict``) stored in it, by item or
    attribute assignment, ``update``, ``setdefault`` or ``|=``, becomes a ``ConfigDict``, also
    inside lists and tuples; ``update`` merges nested dicts instead of replacing them
    (``cfg.update(model=dict(depth=50))`` keeps the model's other keys); ``pop`` of a missing key
    returns ``None``; ``copy()`` is a ``ConfigDict``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Set keys from a mapping and/or keywords, merging a dict into an existing dict (as MMEngine)."""
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 positional argument, got {len(args)}")
        for key, value in dict(*args, **kwargs).items():
            current = self.get(key)
            if isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            else:
                self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, first setting it to ``default`` (wrapped) if it is missing."""
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        """Remove ``key`` and return its value, or ``default`` (``None``, as in MMEngine) if it is missing."""
        return super().pop(key, default)

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = ConfigDict(_unwrap(self))
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = ConfigDict(_unwrap(other))
        merged.update(self)
        return merged

    def __ior__(self, other: Any) -> ConfigDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __copy__(self) -> ConfigDict:
        other = type(self).__new__(type(self))
        dict.update(other, self)
        return other

    def copy(self) -> ConfigDict:  # type: ignore[override]
        """A shallow copy of the same type."""
        return self.__copy__()

    def __deepcopy__(self, memo: dict) -> ConfigDict:
        return type(self)({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        """A plain nested dict copy."""
        return _unwrap(self)


def _wrap(value: Any) -> Any:
    # As MMEngine's ConfigDict._hook: only plain dicts become ConfigDicts, not other dict subclasses.
    if type(value) in (dict, OrderedDict):
        return ConfigDict(value)
    if type(value) is list:
        return [_wrap(v) for v in value]
    if type(value) is tuple:
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

    def __copy__(self) -> Config:
        return Config(dict(self), self.filename)

    def __deepcopy__(self, memo: dict) -> Config:
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()}, self.filename)

    @classmethod
    def fromfile(cls, path: str | os.PathLike, cfg_options: Iterable[str] | Mapping[str, Any] | None = None, *,
                 use_predefined_variables: bool = True, use_environment_variables: bool = True) -> Config:
        """Load ``path`` with its ``_base_`` files, then apply ``cfg_options``.

        Args:
            path: the config file.
            cfg_options: overrides, as for :meth:`merge_from_options`.
            use_predefined_variables: replace ``{{fileDirname}}`` and the like (MMEngine's default).
            use_environment_variables: replace ``{{$NAME:default}}`` (MMEngine's default).

        Raises:
            ConfigError: a missing file, a syntax or run-time error in it, a bad base or override.
        """
        name = os.path.abspath(os.path.expanduser(os.fspath(path)))
        loader = _Loader(use_predefined_variables, use_environment_variables)
        cfg = cls(loader.load(Path(name).resolve(), name, ()), filename=str(Path(name).resolve()))
        if cfg_options:
            cfg.merge_from_options(cfg_options)
        if cfg.get("custom_imports") is not None:
            import_custom_modules(cfg["custom_imports"], cfg.filename)
        return cfg

    def merge_from_options(self, options: Iterable[str] | Mapping[str, Any]) -> None:
        """Apply overrides: ``['a.b=1', 'c=1,2']`` or ``{'a.b': 1}``, in order.

        Strings are ``KEY=VALUE`` with MMEngine's ``--cfg-options`` meaning (see
        :func:`parse_option_value`). As MMEngine's ``Config.merge_from_dict``: a dotted key
        creates missing dicts, a number in the key indexes a list (``custom_hooks.0.priority=10``),
        and a dict value merges into the dict it replaces (unless it has ``_delete_=True``).
        """
        if isinstance(options, Mapping):
            items = list(options.items())
        else:
            items = [parse_option(option) for option in options]
        for key, value in items:
            set_by_path(self, key, value, self.filename)

    def merge_from_dict(self, options: Mapping[str, Any], allow_list_keys: bool = True) -> None:
        """MMEngine's name for :meth:`merge_from_options` with a mapping of dotted keys.

        Args:
            options: ``{'model.depth': 50, 'custom_hooks.0.priority': 10}``.
            allow_list_keys: let a number in a key index a list (MMEngine's default, True).
        """
        for key, value in options.items():
            set_by_path(self, key, value, self.filename, allow_list_keys)

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
class _Loader:
    """Reads one config file and its bases, as MMEngine's ``Config._file2dict``."""

    def __init__(self, use_predefined_variables: bool, use_environment_variables: bool) -> None:
        self.use_predefined_variables = use_predefined_variables
        self.use_environment_variables = use_environment_variables

    def load(self, path: Path, name: str, chain: tuple[Path, ...]) -> dict:
        """The merged names of ``path`` (resolved, for errors) whose absolute name is ``name``."""
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
            raise ConfigError(f"config file {path} is not a .py file", file=str(chain[-1]) if chain else None,
                              fix="Cockpit configs are Python files: convert the JSON/YAML config to a .py one")
        source = path.read_text(encoding="utf-8")
        if self.use_predefined_variables:
            source = substitute_predefined_variables(source, name)
        if self.use_environment_variables:
            source = substitute_environment_variables(source, path)
        source, placeholders = pre_substitute_base_references(source)
        tree = _parse(source, path)
        base = ConfigDict()
        for base_name in _base_files(tree, path):
            base_path = os.path.abspath(os.path.join(os.path.dirname(name), base_name))
            base_cfg = self.load(Path(base_path).resolve(), base_path, (*chain, path))
            duplicated = set(base) & set(base_cfg)
            if duplicated:
                raise ConfigError(f"base files both define {sorted(duplicated)}", file=str(path), key=BASE_KEY,
                                  fix="define each top-level key in one base file only")
            base.update(base_cfg)
        names = _execute(tree, path, base)
        names.pop(BASE_KEY, None)
        deprecation = names.pop(DEPRECATION_KEY, None)
        if isinstance(deprecation, Mapping):
            message = f"The config file {name} will be deprecated in the future."
            if "expected" in deprecation:
                message += f" Please use {deprecation['expected']} instead."
            if "reference" in deprecation:
                message += f" More information can be found at {deprecation['reference']}"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
        names = substitute_base_references(names, placeholders, base, path)
        return merge_dicts(base, names)


def import_custom_modules(custom_imports: Any, filename: str | None) -> list[types.ModuleType]:
    """MMEngine's ``custom_imports=dict(imports=['pkg.module'], allow_failed_imports=False)``.

    The config's own folder is importable while the modules load (as the config's ``type`` paths
    are), and only then.
    """
    fix = "write custom_imports=dict(imports=['mypkg.hooks'], allow_failed_imports=False)"
    if not isinstance(custom_imports, Mapping):
        raise ConfigError(f"custom_imports must be a dict, got {custom_imports!r}", file=filename,
                          key="custom_imports", fix=fix)
    unknown = set(custom_imports) - {"imports", "allow_failed_imports"}
    if unknown:
        raise ConfigError(f"custom_imports has unknown keys {sorted(unknown)}", file=filename,
                          key="custom_imports", fix=fix)
    names = custom_imports.get("imports", [])
    names = [names] if isinstance(names, str) else list(names)
    modules = []
    folder = str(Path(filename).parent) if filename else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        for name in names:
            try:
                modules.append(importlib.import_module(name))
            except ImportError as error:
                if custom_imports.get("allow_failed_imports", False):
                    warnings.warn(f"custom_imports: {name} failed to import and is ignored ({error})",
                                  UserWarning, stacklevel=2)
                    continue
                raise ConfigError(f"custom_imports: cannot import {name!r}: {error}", file=filename,
                                  key="custom_imports.imports", fix="check the module path and that its package "
                                  "is installed, or set allow_failed_imports=True") from None
    finally:
        if added:
            sys.path.remove(folder)
    return modules


def _parse(source: str, path: Path) -> ast.Module:
    try:
        return ast.parse(source, str(path))
    except SyntaxError as error:
        line = (error.text or "").rstrip()
        raise ConfigError(f"syntax error on line {error.lineno}: {error.msg}\n    {line}", file=f"{path}:{error.lineno}",
                          fix="correct the Python syntax on that line") from None


def _is_base_assignment(node: ast.AST) -> bool:
    return (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == BASE_KEY)


def _base_files(tree: ast.Module, path: Path) -> list[str]:
    """The files the first top-level ``_base_ = ...`` names, read before the file runs (as MMEngine)."""
    node = next((n for n in tree.body if _is_base_assignment(n)), None)
    if node is None:
        return []
    fix = "write _base_ = './base.py' or _base_ = ['./a.py', './b.py']"
    try:
        bases = eval(compile(ast.Expression(node.value), str(path), "eval"), {"__builtins__": builtins})
    except Exception as error:
        raise ConfigError(f"_base_ on line {node.lineno} must be a path or a list of paths written out, but "
                          f"evaluating it failed: {type(error).__name__}: {error}", file=f"{path}:{node.lineno}",
                          key=BASE_KEY, fix=f"{fix} (it is read before the rest of the file runs)") from None
    if isinstance(bases, (str, os.PathLike)):
        bases = [bases]
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, (str, os.PathLike)) for b in bases):
        raise ConfigError(f"_base_ must be a path or a list of paths, got {bases!r}", file=str(path),
                          key=BASE_KEY, fix=fix)
    names = [os.fspath(b) for b in bases]
    for base_name in names:
        if "::" in base_name:
            raise ConfigError(f"_base_ {base_name!r} names a config inside an installed package (MMEngine's "
                              "'package::path' form), which Cockpit does not look up", file=str(path),
                              key=BASE_KEY, fix="copy that config file next to yours and name it by its path")
    return names


class _RemoveBaseAssignments(ast.NodeTransformer):
    """Drops ``_base_ = ...`` so that ``_base_`` keeps meaning the base configs (MMEngine's RemoveAssignFromAST)."""

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        return None if _is_base_assignment(node) else node


def _execute(tree: ast.Module, path: Path, base: ConfigDict) -> dict:
    tree = ast.fix_missing_locations(_RemoveBaseAssignments().visit(tree))
    code = compile(tree, str(path), "exec")
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    module.__dict__[BASE_KEY] = base
    # The config's own folder is importable while it runs (a ``models.py`` beside it), and only
    # then: the current folder is not on ``sys.path`` in the cockpit command (see ``cockpit.cli``).
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        exec(code, module.__dict__)
    except Exception as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
        lineno = frames[-1].lineno if frames else "?"
        raise ConfigError(f"running the config failed on line {lineno}: {type(error).__name__}: {error}",
                          file=f"{path}:{lineno}", fix="the config is plain Python: fix the error on that line") from error
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
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


def set_by_path(cfg: dict, dotted: str, value: Any, filename: str | None, allow_list_keys: bool = True) -> None:
    parts = dotted.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list) and not allow_list_keys:
            raise ConfigError(f"cannot set {dotted!r}: {'.'.join(parts[:depth])!r} is a list", file=filename,
                              key=dotted, fix="pass allow_list_keys=True to index it, or override the whole list")
        if depth == len(parts) - 1:
            break
        if isinstance(node, list):
            node = node[_list_index(node, part, here, filename)]
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
        node[index] = _merged(node[index], value)
    elif isinstance(node, dict):
        node[last] = _merged(node.get(last), value)
    else:
        raise ConfigError(f"cannot set {dotted!r}: its parent is a {type(node).__name__}", file=filename, key=dotted,
                          fix="override the whole parent value instead")


def _merged(current: Any, value: Any) -> Any:
    """``value`` as an override of ``current``: a dict merges into a dict, unless it has ``_delete_=True``."""
    if not isinstance(value, Mapping):
        return value
    return merge_dicts({"value": current} if isinstance(current, Mapping) else {}, {"value": value})["value"]


def _list_index(node: list, part: str, dotted: str, filename: str | None) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"{part!r} is not an index of a list of {len(node)} items", file=filename, key=dotted,
                          fix=f"use an index from 0 to {len(node) - 1}")
    return int(part)


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
