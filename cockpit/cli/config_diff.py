"""Comparing two dumped configs (a checkpoint's and the one a resume would train with), without running them."""

from __future__ import annotations

import ast
import contextlib
import re
from typing import Any

from cockpit.cli.common import RESUME_MAY_CHANGE


class _Source(str):
    """A value written as code (not a plain literal): compared by its text."""


def _literal(node: ast.AST) -> Any:
    """The value a node of a dumped config stands for, without running anything."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "dict" and not node.args and all(k.arg for k in node.keywords):
            return {k.arg: _literal(k.value) for k in node.keywords}
        if node.func.id == "float" and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            with contextlib.suppress(TypeError, ValueError):
                return float(node.args[0].value)
    return _Source(re.sub(r" at 0x[0-9a-f]+", "", ast.unparse(node)))


def config_values(text: str) -> dict[str, Any]:
    """The top-level keys of a dumped config (``Config.pretty_text``) as plain values; nothing is run."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        # A value whose repr is not Python (an object): compare the text of each top-level key.
        chunks = re.split(r"^([A-Za-z_]\w*) = ", text, flags=re.MULTILINE)
        return {key: _Source(re.sub(r" at 0x[0-9a-f]+", "", value.strip()))
                for key, value in zip(chunks[1::2], chunks[2::2], strict=True)}
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = _literal(node.value)
    return values


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def config_differences(old: Any, new: str, may_change: frozenset[str] = RESUME_MAY_CHANGE) -> list[str]:
    """``'key: A in the checkpoint, B now'`` for each leaf that differs between two dumped configs.

    An old config that is missing or not text (an MMEngine checkpoint without one) gives none.
    """
    if not isinstance(old, str) or not old.strip():
        return []
    missing = object()
    lines: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        for key in dict.fromkeys([*a, *b]):
            path = f"{prefix}{key}"
            if path in may_change:
                continue
            before, after = a.get(key, missing), b.get(key, missing)
            if isinstance(before, dict) and isinstance(after, dict):
                walk(before, after, f"{path}.")
            elif not _same(before, after):
                shown = ["not set" if v is missing else _short(v) for v in (before, after)]
                lines.append(f"{path}: {shown[0]} in the checkpoint, {shown[1]} now")

    walk(config_values(old), config_values(new), "")
    return lines


def _short(value: Any) -> str:
    text = value if isinstance(value, _Source) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

