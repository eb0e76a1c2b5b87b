"""Reading the objects MMEngine pickles into checkpoints, without MMEngine and without trusting the file.

An MMEngine checkpoint holds, besides tensors, a few objects that
``torch.load(weights_only=True)`` refuses: ``HistoryBuffer`` objects in
``message_hub.log_scalars`` (with NumPy arrays inside), NumPy scalars in the runtime info (an
``eta`` of type ``numpy.float64``), NumPy dtypes, and ``ConfigDict`` objects in a meta a user
added. This module lets torch's weights-only unpickler read exactly those, by handing it
inert stand-ins under the names the file uses, and then turns the stand-ins into plain
data (lists, floats, dicts). Everything else a file names is refused as before: the
weights-only unpickler still decides, these names are all it learns.

What each name becomes:

- ``mmengine.logging.history_buffer.HistoryBuffer`` -> ``{'log_history': [...],
  'count_history': [...], 'max_length': N}`` (marked by ``HISTORY_BUFFER``);
- ``mmengine.config.config.ConfigDict`` -> a dict;
- a NumPy array of numbers or booleans -> a (nested) list; of any other dtype: refused;
- a NumPy scalar -> the Python number; a NumPy dtype -> its name (``'float64'``);
- ``getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')`` (the buffer's statistics table)
  -> the method's name; any other ``getattr``: refused.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

#: The key that marks a dict made from an MMEngine ``HistoryBuffer``.
HISTORY_BUFFER = "__mmengine_history_buffer__"

_DICTS = (dict, OrderedDict, Counter)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_STATISTICS = frozenset({"min", "max", "current", "mean"})


class Refused(pickle.UnpicklingError):
    """A stand-in met something it does not read: the file is refused (its message says what)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{REFUSED} {what}")


#: How a refusal by a stand-in starts (torch re-wraps the error, so callers look for this text).
REFUSED = "Cockpit does not read"


class _HistoryBuffer:
    """Stands in for ``mmengine.logging.HistoryBuffer``: it only keeps the state it is given."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise Refused(f"a HistoryBuffer with a state of type {type(state).__name__}")
        self.state = state


class _DType:
    """Stands in for ``numpy.dtype(spec, align, copy)``; only numeric and boolean dtypes are accepted."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str):
            raise Refused(f"a NumPy dtype given as {type(spec).__name__}")
        try:
            dtype = np.dtype(spec)
        except TypeError as error:
            raise Refused(f"an unknown NumPy dtype {spec!r}") from error
        if dtype.kind not in _NUMERIC_KINDS:
            raise Refused(f"a NumPy array of dtype {spec!r} (only numbers and booleans are read)")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, elsize, alignment, flags): only the
        # byte order matters for a plain numeric dtype.
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise Refused("a NumPy dtype with an unexpected state")
        if state[2] is not None or state[3] is not None or state[4] is not None:
            raise Refused("a structured NumPy dtype (only numbers and booleans are read)")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Stands in for ``numpy.ndarray``: ``_reconstruct`` makes an empty one, its pickled state fills it."""

    value: Any = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise Refused("a NumPy array with an unexpected state")
        _version, shape, dtype, fortran, data = state
        if not isinstance(dtype, _DType) or not isinstance(data, bytes) or not isinstance(shape, tuple):
            raise Refused("a NumPy array that is not a plain block of numbers")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Refused(f"a NumPy array of shape {shape!r}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.dtype.itemsize != len(data):
            raise Refused("a NumPy array whose data does not fill its shape")
        array = np.frombuffer(data, dtype=dtype.dtype, count=count)
        self.value = array.reshape(shape, order="F" if fortran else "C").tolist()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _Array:
        raise Refused("numpy _reconstruct of something other than an ndarray")
    return _Array()


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, _DType) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise Refused("a NumPy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype.dtype, count=1)[0].item()


def _config_dict(mapping: Any = None) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise Refused(f"a ConfigDict made from {type(mapping).__name__}")
    return dict(mapping)


def _getattr(owner: Any, name: Any) -> str:
    # HistoryBuffer pickles its table of statistics methods as getattr(HistoryBuffer, 'mean').
    if owner is _HistoryBuffer and name in _STATISTICS:
        return f"HistoryBuffer.{name}"
    owner_name = "HistoryBuffer" if owner is _HistoryBuffer else getattr(owner, "__name__", type(owner).__name__)
    raise Refused(f"getattr({owner_name}, {name!r})")


_STAND_INS: list[tuple[Any, str]] = [
    (_HistoryBuffer, "mmengine.logging.history_buffer.HistoryBuffer"),
    (_config_dict, "mmengine.config.config.ConfigDict"),
    (_getattr, "builtins.getattr"),
    (_DType, "numpy.dtype"),
    (_Array, "numpy.ndarray"),
    *((_reconstruct, f"{module}.multiarray._reconstruct") for module in ("numpy.core", "numpy._core")),
    *((_scalar, f"{module}.multiarray.scalar") for module in ("numpy.core", "numpy._core")),
]

#: The globals this module can read: a file that needs any other is refused.
KNOWN_GLOBALS = frozenset(name for _, name in _STAND_INS)

# torch keeps the extra allowed globals in one process-wide list; loads through this module
# take turns, so one load's exit never removes the names from under another's feet.
_lock = threading.Lock()


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """Inside the block, ``torch.load(weights_only=True)`` reads MMEngine's objects as stand-ins."""
    with _lock, torch.serialization.safe_globals(_STAND_INS):
        yield


def to_plain(value: Any) -> Any:
    """``value`` with every stand-in (or real MMEngine/NumPy object, after a trusted load) as plain data."""
    if isinstance(value, dict):
        items = {k: to_plain(v) for k, v in dict.items(value)}
        return type(value)(items) if type(value) in _DICTS else items
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(to_plain(v) for v in value)
    if isinstance(value, _HistoryBuffer):
        return _history(value.state)
    if type(value).__name__ == "HistoryBuffer" and hasattr(value, "_log_history"):  # MMEngine's own
        return _history(vars(value))
    if isinstance(value, _Array):
        return value.value
    if isinstance(value, _DType):
        return str(value.dtype)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _history(state: dict[str, Any]) -> dict[str, Any]:
    def values(key: str) -> list[float]:
        raw = state.get(key, [])
        raw = raw.value if isinstance(raw, _Array) else raw.tolist() if isinstance(raw, np.ndarray) else raw
        if not isinstance(raw, list):
            raise Refused(f"a HistoryBuffer whose {key} is not a list of numbers")
        return [float(v) for v in raw]

    return {HISTORY_BUFFER: True, "log_history": values("_log_history"), "count_history": values("_count_history"),
            "max_length": int(state.get("max_length", 1_000_000))}


__all__ = ["HISTORY_BUFFER", "KNOWN_GLOBALS", "REFUSED", "Refused", "stand_ins", "to_plain"]
