"""What a config file's text may refer to, replaced as MMEngine 0.10.7 replaces it.

- ``{{fileDirname}}``, ``{{fileBasename}}``, ``{{fileBasenameNoExtension}}``, ``{{fileExtname}}``:
  the file's own path parts, in its text, before it runs;
- ``{{$NAME:default}}``: the environment variable ``NAME``, or ``default``;
- ``{{_base_.xxx}}``: a whole value of the merged base configs (``model = {{_base_.model}}``).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cockpit.errors import ConfigError

BASE_KEY = "_base_"
_BASE_REFERENCE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w\.]+)\s*\}\}")
_ENVIRONMENT_REFERENCE = re.compile(r"\{\{['\"]?\s*\$(\w+)\s*\:\s*(\S*?)\s*['\"]?\}\}")


def substitute_predefined_variables(source: str, filename: str) -> str:
    """``source`` with ``{{ fileDirname }}`` etc. replaced, as MMEngine's ``_substitute_predefined_vars``.

    The values are the parts of ``filename`` (absolute) with ``\\`` written as ``/``; they
    are pasted into the text as they are, so they belong inside a string literal:
    ``work_dir = './work_dirs/{{fileBasenameNoExtension}}'``.
    """
    basename = os.path.basename(filename)
    values = {
        "fileDirname": os.path.dirname(filename),
        "fileBasename": basename,
        "fileBasenameNoExtension": os.path.splitext(basename)[0],
        "fileExtname": os.path.splitext(filename)[1],
    }
    for variable, value in values.items():
        value = value.replace("\\", "/")
        source = re.sub(r"\{\{\s*" + variable + r"\s*\}\}", lambda _, v=value: v, source)
    return source


def substitute_environment_variables(source: str, path: Path) -> str:
    """``{{$NAME:default}}`` replaced by the environment variable or the default (MMEngine's rule)."""

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if not value:
            raise ConfigError(f"environment variable {name!r} is not set and {match.group(0)} gives no default",
                              file=str(path), key=f"${name}",
                              fix=f"set {name} in the environment or write {{{{${name}:default}}}}")
        return value

    return _ENVIRONMENT_REFERENCE.sub(replace, source)


def pre_substitute_base_references(source: str) -> tuple[str, dict[str, str]]:
    """``{{_base_.a.b}}`` replaced by a unique string literal, and the map back to ``'a.b'``."""
    placeholders: dict[str, str] = {}
    for dotted in sorted(set(_BASE_REFERENCE.findall(source))):
        placeholder = f"_{dotted}_{uuid.uuid4().hex[:6]}"
        placeholders[placeholder] = dotted
        pattern = r"\{\{\s*" + BASE_KEY + r"\." + re.escape(dotted) + r"\s*\}\}"
        source = re.sub(pattern, lambda _, p=placeholder: f'"{p}"', source)
    return source, placeholders


def substitute_base_references(value: Any, placeholders: dict[str, str], base: Mapping, path: Path) -> Any:
    """Every value that is a ``{{_base_.x}}`` placeholder replaced by (a copy of) that base value."""
    if isinstance(value, str) and value in placeholders:
        return copy.deepcopy(base_value(base, placeholders[value], path))
    if isinstance(value, str) and placeholders:
        for placeholder, dotted in placeholders.items():
            if placeholder in value:
                # MMEngine leaves the placeholder's random text in the string: refuse instead.
                raise ConfigError(f"{{{{{BASE_KEY}.{dotted}}}}} is inside a string; it can only stand for a whole "
                                  "value", file=str(path), key=f"{BASE_KEY}.{dotted}",
                                  fix=f"write it outside the quotes (x = {{{{{BASE_KEY}.{dotted}}}}}), or use "
                                      f"the value in Python: f'...{{{BASE_KEY}.{dotted}}}...'")
    if isinstance(value, dict):
        return {k: substitute_base_references(v, placeholders, base, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(substitute_base_references(v, placeholders, base, path) for v in value)
    return value


def base_value(base: Mapping, dotted: str, path: Path) -> Any:
    node: Any = base
    for depth, part in enumerate(dotted.split(".")):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            here = ".".join([BASE_KEY, *dotted.split(".")[:depth]])
            known = list(node) if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, [str(k) for k in known], n=1)
            hint = f"did you mean {{{{{here}.{close[0]}}}}}? " if close else ""
            raise ConfigError(f"{{{{{BASE_KEY}.{dotted}}}}}: the base configs have no {part!r} in {here}",
                              file=str(path), key=f"{BASE_KEY}.{dotted}",
                              fix=f"{hint}name a key the _base_ files define")
    return node
