"""``--cfg-options``: overrides from the command line, read as MMEngine 0.10.7's ``DictAction`` reads them.

``train_cfg.max_epochs=5`` sets a leaf; ``model.dims=64,32`` is a list; ``a=[(1,2),(3,4)]``
nests; ``true``/``false`` are booleans and ``None`` is None; quotes and spaces are dropped, as
MMEngine drops them; a number in a key path indexes into a list (``model.layers.0.width=3``).
Several ``--cfg-options`` flags add up (``CfgOptionsAction``).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from typing import Any

from cockpit.errors import ConfigError

# --- overrides -----------------------------------------------------------------
_OPTION_FIX = "write KEY=VALUE with a dotted key, e.g. train_cfg.max_epochs=5 model.dims=64,32 model.act=None"


def parse_option(option: str) -> tuple[str, Any]:
    """``'a.b=1,2'`` as ``('a.b', [1, 2])``: split on the first ``=``, the value as :func:`parse_option_value`."""
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {option!r} is not key=value", key="--cfg-options", fix=_OPTION_FIX)
    return key, parse_option_value(text, key)


def parse_option_value(text: str, key: str = "--cfg-options") -> Any:
    """A ``--cfg-options`` value, read as MMEngine 0.10.7's ``DictAction`` reads it.

    - quotes around the value and every space in it are dropped (``'a b'`` gives ``'ab'``);
    - ``[...]`` is a list and ``(...)`` a tuple, nested as deep as you like
      (``[(1,2),(3,4)]``); a comma outside brackets makes a list (``1,2`` gives ``[1, 2]``);
    - each item is an ``int`` if ``int()`` takes it, else a ``float`` if ``float()`` does
      (``1e-3``, ``inf``), else ``True``/``False`` for ``true``/``false`` in any case, else
      ``None`` for exactly ``None``, else the string itself (``none`` stays ``'none'``).

    Beyond MMEngine (which recurses forever on them): a non-empty Python dict literal
    (``{'a': 1, 'b': [1, 2]}``) gives that dict.

    Raises:
        ConfigError: unbalanced brackets, or commas MMEngine cannot split (``f(1,2)``).
    """
    candidate = text.strip().strip("'\"").strip()
    if candidate.startswith("{"):
        try:
            literal = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            literal = None
        if isinstance(literal, dict) and literal:
            return literal
    value = text.strip("'\"").replace(" ", "")
    bracketed = value[:1] + value[-1:] in ("()", "[]")
    if not bracketed and "," not in value:
        if value[:1] in ("(", "[") or value[-1:] in (")", "]"):
            # Meant as a list or a tuple, but not closed (``[64``): MMEngine would pass the string on,
            # to fail far away (a torch error about a size of '[64').
            raise ConfigError(f"cannot read the value {text!r}: its brackets are unbalanced", key=key,
                              fix=_bracket_fix(value, key))
        return _parse_scalar(value)
    inner = value[1:-1] if bracketed else value
    items: list[Any] = []
    while inner:
        comma = _next_comma(inner, text, key)
        if not bracketed and not items and comma == len(inner):
            # MMEngine recurses forever on these.
            raise ConfigError(f"cannot read the value {text!r}: its commas are inside brackets that do not "
                              "enclose the whole value", key=key,
                              fix="wrap a list in [...] or a tuple in (...), e.g. [1,2] or [(1,2),(3,4)]")
        items.append(parse_option_value(inner[:comma], key))
        inner = inner[comma + 1:]
    return tuple(items) if value.startswith("(") and bracketed else items


def _parse_scalar(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text == "None":
        return None
    return text


def _bracket_fix(value: str, key: str) -> str:
    """How to write ``value`` with its brackets balanced, when closing the open ones is enough."""
    fix = "close every ( with ) and every [ with ]"
    closers: list[str] = []
    for char in value:
        if char in "([":
            closers.append(")" if char == "(" else "]")
        elif char in ")]":
            if not closers or closers.pop() != char:
                return fix
    if not closers:
        return fix
    return f"{fix}, e.g. {key}={value}{''.join(reversed(closers))}"


def _next_comma(text: str, whole: str, key: str) -> int:
    """The index of the first comma outside ``()`` and ``[]`` (``len(text)`` if none)."""
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        raise ConfigError(f"cannot read the value {whole!r}: its brackets are unbalanced", key=key,
                          fix=_bracket_fix(whole.strip("'\"").replace(" ", ""), key))
    for index, char in enumerate(text):
        before = text[:index]
        # MMEngine's rule: a comma whose prefix has as many ( as ) and [ as ].
        if char == "," and before.count("(") == before.count(")") and before.count("[") == before.count("]"):
            return index
    return len(text)


class CfgOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE [KEY=VALUE ...]``, repeatable: each flag adds to the earlier ones.

    Like MMEngine's ``DictAction`` (a later ``KEY`` wins), but the namespace keeps the
    ``KEY=VALUE`` strings in order, so they can be handed on to another process; each is
    checked here and read by :meth:`Config.merge_from_options`. Use with ``nargs='+'``.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        options = list(getattr(namespace, self.dest, None) or [])
        for option in [values] if isinstance(values, str) else list(values or []):
            try:
                parse_option(option)
            except ConfigError as error:
                parser.error(f"{option_string or self.dest} {option!r}: {error.message}\n  fix: {error.fix}")
            options.append(option)
        setattr(namespace, self.dest, options)
